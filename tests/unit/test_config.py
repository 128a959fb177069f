from datetime import date, time, timedelta
from pathlib import Path

import pytest

from service.config import ConfigError, load_cohort

EXAMPLE = Path(__file__).parents[2] / "config" / "cohort.example.yaml"

COHORT = """\
name: Test Cohort
coordinator:
  name: Renata Alves
  email: Renata@Example.org
program:
  start: 2027-03-01
  end: 2027-04-30
  timezone: Europe/Berlin
pairings: {pairings}
"""


def write(folder: Path, pairings: str, name: str = "pairings.csv", cohort: str = COHORT) -> Path:
    (folder / name).write_bytes(pairings.encode("utf-8") if isinstance(pairings, str) else pairings)
    config = folder / "cohort.yaml"
    config.write_text(cohort.format(pairings=name), encoding="utf-8")
    return config


def test_the_example_configuration_loads():
    cohort = load_cohort(EXAMPLE)
    assert len(cohort.pairs) >= 12
    assert len({p.timezone for p in cohort.people.values()}) >= 5
    mentors = [pair.mentor.email for pair in cohort.pairs]
    assert any(mentors.count(m) >= 2 for m in mentors)


def test_defaults_fill_what_the_files_leave_out(tmp_path):
    cohort = load_cohort(write(tmp_path, "mentor_name,mentor_email,mentee_name,mentee_email\nMaya,maya@example.org,Zoe,zoe@example.net\n"))
    assert cohort.coordinator.email == "renata@example.org"
    assert cohort.rules.length == timedelta(minutes=60)
    assert cohort.rules.first_within == timedelta(weeks=3)
    (pair,) = cohort.pairs
    assert pair.id == "maya-zoe"
    assert pair.mentor.timezone == "Europe/Berlin"  # the program's zone
    assert [str(r) for r in pair.mentor.availability.hours] == ["09:00-17:00"]
    assert pair.mentor.availability.days == frozenset(range(5))


def test_a_bom_and_windows_line_endings_are_accepted(tmp_path):
    csv = '\ufeffmentor_name,mentor_email,mentee_name,mentee_email,notes\r\nMaya,maya@example.org,Zoë Ñúñez,zoe@example.net,"two\r\nlines"\r\n'
    cohort = load_cohort(write(tmp_path, csv))
    (pair,) = cohort.pairs
    assert pair.mentor.name == "Maya"
    assert pair.mentee.name == "Zoë Ñúñez"
    assert pair.notes == "two\r\nlines"


def test_person_details_and_header_spelling(tmp_path):
    csv = (
        "Mentor Name,Mentor Email,Mentor Timezone,Mentor Hours,Mentor Days,Mentor Blackout,"
        "Mentee Name,Mentee Email,Mentee Resume\n"
        'Maya,maya@example.org,America/New_York,"08:00-12:00, 13:00-16:30",Mon-Wed,2027-03-10;2027-03-20..2027-03-22,'
        "Zoe,zoe@example.net,https://example.net/cv.pdf\n"
        "Maya,maya@example.org,,,,,Dan,dan@example.com,\n"
    )
    cohort = load_cohort(write(tmp_path, csv))
    first, second = cohort.pairs
    assert second.mentor == first.mentor  # blank details mean "as before"
    pattern = first.mentor.availability
    assert pattern.timezone == "America/New_York"
    assert [(r.start, r.end) for r in pattern.hours] == [(time(8), time(12)), (time(13), time(16, 30))]
    assert pattern.days == frozenset({0, 1, 2})
    assert pattern.blackout_dates == {date(2027, 3, 10), date(2027, 3, 20), date(2027, 3, 21), date(2027, 3, 22)}
    assert first.mentee_resume == "https://example.net/cv.pdf"


def test_pairings_as_yaml(tmp_path):
    pairs = (
        "- mentor_name: Maya\n  mentor_email: maya@example.org\n  mentee_name: 李雷\n  mentee_email: li@example.cn\n"
        "  mentee_timezone: Asia/Shanghai\n  mentee_blackout: [2027-03-10, 2027-03-11]\n  pair_id: 7\n"
    )
    cohort = load_cohort(write(tmp_path, pairs, name="pairings.yaml"))
    (pair,) = cohort.pairs
    assert (pair.id, pair.mentee.name, pair.mentee.timezone) == ("7", "李雷", "Asia/Shanghai")
    assert pair.mentee.availability.blackout_dates == {date(2027, 3, 10), date(2027, 3, 11)}


def test_the_pairings_option_overrides_the_cohort_file(tmp_path):
    config = write(tmp_path, "mentor_name,mentor_email,mentee_name,mentee_email\nMaya,maya@example.org,Zoe,zoe@example.net\n")
    other = tmp_path / "other.csv"
    other.write_text("mentor_name,mentor_email,mentee_name,mentee_email\nJonas,jonas@example.de,Priya,priya@example.in\n")
    assert load_cohort(config, other).pairs[0].mentor.name == "Jonas"


def test_generated_pair_ids_stay_unique(tmp_path):
    csv = "mentor_name,mentor_email,mentee_name,mentee_email\nA,ann@a.org,B,bob@b.org\nA2,ann@c.org,B2,bob@d.org\n"
    assert [p.id for p in load_cohort(write(tmp_path, csv)).pairs] == ["ann-bob", "ann-bob-2"]


def test_problems_in_both_files_are_reported_together(tmp_path):
    broken = COHORT.replace("end: 2027-04-30", "end: soon")
    config = write(tmp_path, "mentor_name,mentor_email,mentee_name,mentee_email\nMaya,maya@,Zoe,zoe@example.net\n", cohort=broken)
    with pytest.raises(ConfigError) as error:
        load_cohort(config)
    messages = [p.message for p in error.value.problems]
    assert messages == ["program.end 'soon' is not a date like 2027-03-01", "mentor_email 'maya@' is not an email address"]


def test_columns_the_service_does_not_use_reach_the_email_templates(tmp_path):
    from datetime import UTC, datetime

    from service.domain.model import Role, Session
    from service.domain.stages import Stage
    from service.mail.context import pair_context

    csv = "Mentor Name,Mentor Email,Mentee Name,Mentee Email,Mentee goals\nMaya,maya@example.org,Zoe,zoe@example.net,Backend work\n"
    cohort = load_cohort(write(tmp_path, csv))
    (pair,) = cohort.pairs
    sessions = tuple(
        Session(pair_id=pair.id, number=n, start=datetime(2027, 3, n * 7, 9, tzinfo=UTC), end=datetime(2027, 3, n * 7, 10, tzinfo=UTC))
        for n in (1, 2)
    )
    context = pair_context(cohort, pair, sessions, Role.MENTOR, stage=Stage.WELCOME)
    assert context["extra"] == {"Mentee goals": "Backend work"}
