from datetime import time

import pytest
from email_validator import validate_email
from hypothesis import given, settings
from hypothesis import strategies as st

from service.config import fields


@pytest.mark.parametrize(
    "value",
    [
        "Maya\r\nBcc: x@example.org",
        "Maya\nOkafor",
        "Maya\u2028Okafor",
        "Maya\u2029",
        "Maya\x00",
        "Maya\u0085",
        "Maya\u200eOkafor",
        "",
        "=?utf-8?q?=0A?=",
        "Eve =?utf-8?q?X=0D=0ABcc=3A_a=40b.c?=",
    ],
)
def test_names_that_could_break_a_header_are_refused(value):
    with pytest.raises(ValueError):
        fields.name(value)


@pytest.mark.parametrize("value", ["Zoë Ñúñez", "李雷", "Chloé Martin-O'Neil", "Ana = ? Lima"])
def test_ordinary_and_unusual_names_are_kept(value):
    assert fields.name(f"  {value} ") == value


@pytest.mark.parametrize("value", ["ana@", "@example.org", "ana example.org", "ana@@example.org", "ana@example"])
def test_bad_emails(value):
    with pytest.raises(ValueError, match="is not an email address"):
        fields.email(value)


def test_emails_are_normalised():
    assert fields.email(" Ana.Lima@Example.ORG ") == "ana.lima@example.org"


_ADDRESS_PARTS = st.sampled_from(
    [
        "a",
        "Z",
        "9",
        ".",
        "-",
        "_",
        "+",
        "..",
        "--",
        "xn--",
        "é",
        "@",
        "test",
        "local",
        "TEST",
        "'",
        "x" * 30,
        ".org",
        ".Example",
        "xn--bcher-kva",
        "ab--c",
    ]
)


@settings(max_examples=3000, deadline=None)
@given(local=st.lists(_ADDRESS_PARTS, min_size=1, max_size=4), domain=st.lists(_ADDRESS_PARTS, min_size=1, max_size=12))
def test_the_quick_check_of_everyday_addresses_agrees_with_email_validator(local, domain):
    """An address the quick check takes is one email_validator takes, normalised alike."""
    value = "".join(local) + "@" + "".join(domain)
    if not fields._PLAIN_EMAIL.fullmatch(value):
        return
    checked = validate_email(value, check_deliverability=False, allow_smtputf8=True)
    assert value.lower() == checked.normalized.lower()


@pytest.mark.parametrize("value", ["ana.lima@example.org", "A+b_c-d@mail.example.co.uk", "x@a-b.example.technology"])
def test_everyday_addresses_take_the_quick_check(value):
    assert fields._PLAIN_EMAIL.fullmatch(value)


@pytest.mark.parametrize("value", ["Europe/Berln", "EST", "../etc/passwd", "", "Mars/Olympus"])
def test_bad_time_zones(value):
    with pytest.raises(ValueError):
        fields.timezone(value)


def test_hours_days_and_dates():
    assert [(r.start, r.end) for r in fields.hours("9-12, 13:30-17")] == [(time(9), time(12)), (time(13, 30), time(17))]
    assert fields.hours("18:00-24:00")[0].end == time(23, 59)
    assert fields.days("Fri-Mon") == {4, 5, 6, 0}
    assert fields.days("mon, wednesday") == {0, 2}
    assert len(fields.dates("2027-03-30..2027-04-02")) == 4


@pytest.mark.parametrize(
    "value", ["javascript:alert(1)", "ftp://example.org/x", "https://", "https://exa mple.org", "localhost/x", "mailto:a@example.org"]
)
def test_only_web_addresses_are_links(value):
    with pytest.raises(ValueError):
        fields.url(value)


@pytest.mark.parametrize(
    ("value", "link"),
    [
        ("linkedin.com/in/maya", "https://linkedin.com/in/maya"),
        ("www.example.org/cv.pdf", "https://www.example.org/cv.pdf"),
        ("example.org", "https://example.org"),
        ("http://example.org/x", "http://example.org/x"),
    ],
)
def test_a_link_without_its_scheme_gets_https(value, link):
    assert fields.url(value) == link
