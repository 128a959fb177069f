"""The cohort file's http section: where people reach the web pages."""

from pathlib import Path

import pytest

from service.config import ConfigError, load_configuration
from tests.unit.test_config import COHORT, write

PAIRS = "mentor_name,mentor_email,mentee_name,mentee_email\nMaya,maya@example.org,Zoe,zoe@example.net\n"


def test_the_public_address_is_read(tmp_path: Path):
    config = write(tmp_path, PAIRS, cohort=COHORT + "http:\n  public_url: https://mentoring.example.org/\n")
    assert load_configuration(config).public_url == "https://mentoring.example.org/"
    assert load_configuration(write(tmp_path, PAIRS)).public_url is None  # no links in emails
    bare = write(tmp_path, PAIRS, cohort=COHORT + "http:\n  public_url: mentoring.example.org\n")
    assert load_configuration(bare).public_url == "https://mentoring.example.org"


@pytest.mark.parametrize("given", ["ftp://example.org", "the web site", "https://"])
def test_an_address_that_is_not_a_web_address_is_named_with_its_line(tmp_path: Path, given: str):
    config = write(tmp_path, PAIRS, cohort=COHORT + f"http:\n  public_url: {given}\n")
    with pytest.raises(ConfigError) as error:
        load_configuration(config)
    (problem,) = error.value.problems
    assert problem.line == 11 and "http.public_url" in problem.message and "is not a web address" in problem.message


def test_an_unknown_setting_in_the_section_is_refused(tmp_path: Path):
    config = write(tmp_path, PAIRS, cohort=COHORT + "http:\n  port: 8080\n")
    with pytest.raises(ConfigError) as error:
        load_configuration(config)
    assert [p.line for p in error.value.problems] == [11]
