"""A pairings sheet as a form or spreadsheet exports it (extra columns, headers in their
own words, time zones in any case or as Windows names, links without https://) validates
with warnings: exit 0, each warning once, and the data read as meant."""

from pathlib import Path

from service.cli import main
from service.config import load_configuration

SHEET = Path(__file__).parent.parent / "data" / "exported"


def test_an_exported_sheet_validates_with_warnings(monkeypatch, capsys):
    monkeypatch.chdir(SHEET)
    status = main(["validate", "--config", "cohort.yaml"])
    out, err = capsys.readouterr()
    assert status == 0
    assert out.startswith("Spring 2027 Mentoring: configuration is valid.")
    assert err == (SHEET / "expected.txt").read_text(encoding="utf-8")


def test_the_exported_sheet_is_read_as_meant():
    configuration = load_configuration(SHEET / "cohort.yaml")
    pairs = {pair.mentee.name: pair for pair in configuration.cohort.pairs}
    zoe, priya, kwame, chloe, daniel = (pairs[n] for n in ("Zoë Ñúñez", "Priya Nair", "Kwame Mensah", "Chloé Martin", "Daniel Kim"))
    assert zoe.mentor.timezone == "America/New_York"  # 'Eastern Standard Time'
    assert zoe.mentee.timezone == "America/Mexico_City"  # 'america/mexico_city', silently: only the case differs
    assert priya.mentor.timezone == "Europe/Berlin" and priya.mentee.timezone == "Asia/Kolkata"
    assert kwame.mentor.timezone == "Europe/Stockholm"  # a name in use, though tzdata links it to Berlin
    assert chloe.mentor.timezone == "America/Chicago" and chloe.mentee.timezone == "Europe/Paris"
    assert daniel.mentee.timezone == "America/New_York"  # blank: the cohort's, and a warning says so
    assert zoe.mentor.linkedin == "https://linkedin.com/in/maya-okafor-example"
    assert zoe.mentee_resume == "https://example.net/cv/zoe.pdf"
    assert zoe.extra == {"Timestamp": "2027-01-10 09:14:02", "Mentee goals": "Move from QA into backend work"}
    assert priya.extra["Mentee goals"] == "Lead a team, one day"
    # Countries: given (IN-KA, FR) or read from the time zone (zone.tab: Stockholm is SE).
    assert (priya.mentee.country, chloe.mentee.country, kwame.mentor.country, zoe.mentor.country) == ("IN-KA", "FR", "SE", "US")
    assert configuration.warnings == tuple(sorted(configuration.warnings, key=lambda w: (w.file, w.line)))
