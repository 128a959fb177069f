"""Public holidays: read per person from their country (given, or from their time zone),
and the real planner books no session on one of either person's."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays
import pytest

from service.config import load_configuration
from service.config.limits import WINDOW_MARGIN_DAYS
from service.config.publicholidays import country, is_known
from service.config.zones import country_of
from service.domain.planning import plan_sessions

COHORT = Path(__file__).parents[1] / "data" / "holidays" / "cohort.yaml"
NOW = datetime(2027, 1, 1, tzinfo=UTC)
# Each person's holidays as the test expects them: written out here, not read from the service.
PLACES = {
    "maya@example.org": ("US", None),  # from America/New_York
    "jonas@example.de": ("DE", "BE"),
    "lena@example.ch": ("CH", "ZH"),
    "emma@example.se": ("SE", None),  # from Europe/Stockholm (zone.tab), though tzdata links it to Berlin
    "noah@example.com": ("US", None),
    "sven@example.se": ("SE", None),
    "hannah@example.de": ("DE", "BE"),
    "marco@example.ch": ("CH", "ZH"),
    "grace@example.com": ("US", "NY"),
    "anna@example.ch": ("CH", "ZH"),
    "karin@example.se": ("SE", None),
    "paul@example.de": ("DE", "BE"),
    "daniel@example.com": ("US", None),
    "olivia@example.com": ("US", None),
    "lukas@example.de": ("DE", "BE"),
    "mia@example.de": ("DE", "BE"),
}


def days_off(email: str) -> set[date]:
    code, region = PLACES[email]
    return set(holidays.country_holidays(code, subdiv=region, years=2027))


def on_holiday(plan, people_days=days_off) -> list[tuple[str, str, date]]:
    """(pair, person, local date) of every session on one of that person's holidays."""
    found = []
    for item in plan.pairs:
        for session in item.sessions:
            for person in item.pair.people:
                day = session.start.astimezone(ZoneInfo(person.timezone)).date()
                if day in people_days(person.email):
                    found.append((item.pair.id, person.name, day))
    return found


def with_setting(tmp_path: Path, setting: str) -> Path:
    (tmp_path / "pairings.csv").write_bytes((COHORT.parent / "pairings.csv").read_bytes())
    config = tmp_path / "cohort.yaml"
    config.write_text(COHORT.read_text(encoding="utf-8") + setting, encoding="utf-8")
    return config


def test_no_session_falls_on_a_public_holiday_of_either_person():
    cohort = load_configuration(COHORT).cohort
    plan = plan_sessions(cohort, {}, now=NOW)
    assert plan.booked == len(cohort.pairs) == 8
    assert on_holiday(plan) == []
    # The cohort is one where holidays matter: Presidents' Day, Good Friday and Easter Monday
    # are among the few Mondays and Fridays these people meet.
    margin = timedelta(days=WINDOW_MARGIN_DAYS)  # the program and its margin, as blackout dates are kept
    for email in PLACES:
        expected = {d for d in days_off(email) if cohort.start - margin <= d <= cohort.end + margin}
        assert cohort.people[email].availability.holidays == expected, email
    assert date(2027, 2, 15) in cohort.people["maya@example.org"].availability.holidays  # Presidents' Day
    assert date(2027, 3, 26) in cohort.people["jonas@example.de"].availability.holidays  # Good Friday in Berlin
    assert date(2027, 3, 26) in cohort.people["lena@example.ch"].availability.holidays  # and in Zurich
    assert date(2027, 3, 29) in cohort.people["emma@example.se"].availability.holidays  # Easter Monday in Sweden
    assert date(2027, 3, 26) not in cohort.people["maya@example.org"].availability.holidays  # not a US holiday
    assert [cohort.people[e].country for e in ("maya@example.org", "jonas@example.de", "emma@example.se")] == ["US", "DE-BE", "SE"]


def test_with_holidays_off_the_same_cohort_books_sessions_on_them(tmp_path):
    # Shows that the test above can fail: the planner alone would pick these days.
    cohort = load_configuration(with_setting(tmp_path, "holidays: false\n")).cohort
    assert all(not p.availability.holidays for p in cohort.people.values())
    assert len(on_holiday(plan_sessions(cohort, {}, now=NOW))) >= 3


def test_a_holiday_the_cohort_works_on_is_a_working_day_again(tmp_path):
    config = with_setting(tmp_path, "holidays:\n  work_on: [2027-03-26]\n")
    cohort = load_configuration(config).cohort
    jonas = cohort.people["jonas@example.de"].availability
    assert date(2027, 3, 26) not in jonas.holidays  # Good Friday, worked on
    assert date(2027, 3, 29) in jonas.holidays  # Easter Monday still off
    plan = plan_sessions(cohort, {}, now=NOW)
    assert on_holiday(plan, lambda email: days_off(email) - {date(2027, 3, 26)}) == []


@pytest.mark.parametrize(
    ("written", "read"),
    [("de-be", "DE-BE"), (" US ", "US"), ("us_ca", "US-CA"), ("Germany", "DE"), ("CH-ZH", "CH-ZH")],
)
def test_countries_are_read_in_the_usual_spellings(written, read):
    assert country(written) == read


def test_a_country_comes_from_the_time_zone_when_none_is_given():
    zones = ("Europe/Stockholm", "Europe/Zurich", "America/Chicago", "Asia/Kolkata", "UTC", "Etc/GMT+3")
    assert [country_of(z) for z in zones] == ["SE", "CH", "US", "IN", None, None]
    assert [is_known(country_of(z)) for z in zones] == [True, True, True, True, False, False]


def test_people_whose_holidays_cannot_be_known_are_named_in_one_warning(tmp_path):
    (tmp_path / "pairings.csv").write_text(
        "mentor_name,mentor_email,mentor_timezone,mentee_name,mentee_email,mentee_timezone\n"
        "Maya,maya@example.org,UTC,Zoe,zoe@example.net,Etc/GMT+3\n"
        "Jonas,jonas@example.de,Europe/Berlin,Ana,ana@example.org,UTC\n",
        encoding="utf-8",
    )
    config = tmp_path / "cohort.yaml"
    config.write_text(COHORT.read_text(encoding="utf-8"), encoding="utf-8")
    warnings = [str(w) for w in load_configuration(config).warnings]
    assert warnings == [
        f"{tmp_path / 'pairings.csv'}:2: warning: public holidays not known for Maya (line 2), Zoe (line 2) and Ana (line 3):"
        " their time zone names no country whose holidays are known; give a country (such as DE or US-CA)"
    ]
