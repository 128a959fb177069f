"""Generated cohorts for the benchmarks, and the few helpers the benchmarks share.

The people live in eleven time zones on five continents; mentors have 1 to 4 mentees,
most of them within a few hours of their mentor. A cohort is either written out as a
coordinator would (cohort.yaml and pairings.csv, for the benchmarks that run the daemon)
or built in memory by the caller from the same drawing of pairs (the planner benchmark).
Busy calendars are weekly recurring meetings, one-off meetings and the odd week away.

Everything is drawn from a random.Random the caller seeds, in a fixed order, so a seed
always gives the same cohort.

Scripts in bench/ import this as `bench.cohorts` after putting the project root on
sys.path, so `python bench/planner.py` and `python -m bench.planner` both work.
"""

from __future__ import annotations

import csv
import logging
import random
import resource
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo

from service.domain.model import Contact, TimeRange, WorkingPattern
from service.logs import logger

CLOCK_START = datetime(2027, 2, 1, tzinfo=UTC)  # the simulated "now": a month before the program
PROGRAM_START, PROGRAM_END = date(2027, 3, 1), date(2027, 4, 30)
PROGRAM_ZONE = "America/New_York"
COORDINATOR = Contact(name="Renata Alves", email="renata.alves@example.org")

# --------------------------------------------------------------------------- where people live

ZONES = (
    "America/Los_Angeles",
    "America/New_York",
    "America/Sao_Paulo",
    "Europe/London",
    "Europe/Berlin",
    "Africa/Lagos",
    "Asia/Kolkata",
    "Asia/Singapore",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Australia/Lord_Howe",
)
# Public holidays inside the programs, taken as blackout dates by people in these zones.
GOOD_FRIDAY, EASTER_MONDAY = date(2027, 3, 26), date(2027, 3, 29)
HOLIDAYS = {
    "America/Sao_Paulo": frozenset({GOOD_FRIDAY}),
    "Europe/London": frozenset({GOOD_FRIDAY, EASTER_MONDAY}),
    "Europe/Berlin": frozenset({GOOD_FRIDAY, EASTER_MONDAY}),
    "Africa/Lagos": frozenset({GOOD_FRIDAY, EASTER_MONDAY}),
    "Asia/Singapore": frozenset({GOOD_FRIDAY}),
    "Asia/Tokyo": frozenset({date(2027, 3, 22), date(2027, 4, 29)}),
    "Australia/Sydney": frozenset({GOOD_FRIDAY, EASTER_MONDAY}),
    "Australia/Lord_Howe": frozenset({GOOD_FRIDAY, EASTER_MONDAY}),
}
# Twelve zones for a cohort drawn from everywhere: Denver too, whose working day never
# meets Singapore's or Tokyo's.
WORLD_ZONES = (*ZONES, "America/Denver")
NEAR_HOURS = 3.5  # a "near" mentee lives at most this many hours from the mentor


def utc_offset_hours(zone: str) -> float:
    """The zone's offset when the programs start (before any March DST change)."""
    moment = datetime(2027, 3, 1, 12, tzinfo=UTC).astimezone(ZoneInfo(zone))
    offset = moment.utcoffset()
    assert offset is not None
    return offset.total_seconds() / 3600


def near_zones(zones: Sequence[str]) -> dict[str, list[str]]:
    """For each zone, those of `zones` at most NEAR_HOURS away."""
    return {zone: [z for z in zones if abs(utc_offset_hours(z) - utc_offset_hours(zone)) <= NEAR_HOURS] for zone in zones}


NEAR_ZONES = near_zones(ZONES)

# --------------------------------------------------------------------------- who they are

MENTEES_PER_MENTOR = ((1, 2, 3, 4), (30, 35, 20, 15))  # values, weights
NEAR_MENTEE_SHARE = 0.85  # the usual share of mentees who live near their mentor
# A person is called by a first and a last name drawn from these (one word each).
FIRST_NAMES = tuple(
    "Maya Zoë Jonas Priya Sofia Daniel Grace Mateo Li Kai Noah Chloé Amara Ola Hiroshi Aisha Lucas Ingrid Tomás"
    " Fatima Chen Olivia Ravi Björn Nia Emeka Yuki Sipho Elena Omar".split()
)
LAST_NAMES = tuple(
    "Okafor Núñez Weber Nair Rossi Kim Hopper García Lei Nakamura Williams Dubois Mensah Nordmann Tanaka Khan Silva"
    " Larsen O'Brien Haddad Wang Smith Iyer Lindqvist Adeyemi Eze Sato Dlamini Popescu".split()
)
NOTES = (
    "Moving from QA into backend engineering.",
    "Wants to grow into a tech lead role.",
    "Part-time; prefers mornings.",
    "Interested in distributed systems and on-call practice.",
    "Returning to engineering after a career break.",
)
COLUMNS = (
    "pair_id,mentor_name,mentor_email,mentor_timezone,mentor_hours,mentor_days,mentor_blackout,"
    "mentor_busy_ics,mentor_linkedin,mentee_name,mentee_email,mentee_timezone,mentee_hours,"
    "mentee_days,mentee_blackout,mentee_resume,mentee_linkedin,notes"
).split(",")

P = TypeVar("P")


def draw_pairs(
    rng: random.Random,
    size: int,
    make_person: Callable[[str, str], P],
    near_share: float = NEAR_MENTEE_SHARE,
    zones: Sequence[str] = ZONES,
) -> Iterator[tuple[P, P]]:
    """`size` (mentor, mentee) pairs: a mentor in a random zone with 1 to 4 mentees, each
    near the mentor with probability `near_share` (1: always, without a draw) and in any
    zone otherwise. `make_person(role, zone)` builds each person. Lazy, so whatever the
    caller draws between pairs keeps its place in the random sequence."""
    near_to = NEAR_ZONES if zones == ZONES else near_zones(zones)
    made = 0
    while made < size:
        zone = rng.choice(zones)
        mentor = make_person("mentor", zone)
        for _ in range(min(rng.choices(*MENTEES_PER_MENTOR)[0], size - made)):
            near = near_share >= 1 or rng.random() < near_share
            mentee = make_person("mentee", rng.choice(near_to[zone] if near else zones))
            made += 1
            yield mentor, mentee


@dataclass(frozen=True)
class Generated:
    """A cohort written to a folder."""

    name: str
    config: Path
    pairings: Path
    pairs: int
    people: dict[str, str]  # email -> time zone

    @property
    def zones(self) -> int:
        return len(set(self.people.values()))


def write_cohort(
    folder: Path,
    size: int,
    seed: int,
    *,
    name: str,
    sections: str = "",
    near_share: float = NEAR_MENTEE_SHARE,
    details: bool = True,
    zones: Sequence[str] = ZONES,
) -> Generated:
    """cohort.yaml and pairings.csv for `size` pairs in `folder`: program
    PROGRAM_START..PROGRAM_END in PROGRAM_ZONE, default session rules, hours and days left
    blank (09:00-17:00 Mon-Fri in each person's zone). `sections` is YAML appended to the
    cohort file (mail, calendar, google). With `details`, people also get their holidays
    and sometimes a week away as blackout dates, LinkedIn and résumé links, and pairs a
    note; without, only names, emails and zones. People live in `zones`."""
    rng = random.Random(f"{seed}-cohort-{size}")
    folder.mkdir(parents=True, exist_ok=True)
    people: dict[str, str] = {}

    def person(role: str, zone: str) -> dict[str, str]:
        number = len(people) + 1
        email = f"{role}{number}@example.{'org' if role == 'mentor' else 'net'}"
        people[email] = zone
        blackout = [day.isoformat() for day in sorted(HOLIDAYS.get(zone, ()))] if details else []
        if details and rng.random() < 0.1:  # a week away
            first = PROGRAM_START + timedelta(days=rng.randrange(0, 55))
            blackout.append(f"{first.isoformat()}..{(first + timedelta(days=4)).isoformat()}")
        fields = {
            f"{role}_name": f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
            f"{role}_email": email,
            f"{role}_timezone": zone,
        }
        if details:
            fields[f"{role}_blackout"] = "; ".join(blackout)
            fields[f"{role}_linkedin"] = f"https://www.linkedin.com/in/{number}-example" if rng.random() < 0.5 else ""
            if role == "mentee" and rng.random() < 0.3:
                fields["mentee_resume"] = f"https://example.net/cv/{number}.pdf"
        return fields

    rows: list[dict[str, str]] = []
    previous: dict[str, str] | None = None
    for mentor, mentee in draw_pairs(rng, size, person, near_share, zones):
        row = dict.fromkeys(COLUMNS, "")
        # A mentor's details on their first row; later rows give only the name and email.
        row.update(mentor if mentor is not previous else {"mentor_name": mentor["mentor_name"], "mentor_email": mentor["mentor_email"]})
        row.update(mentee)
        row["pair_id"] = f"p{len(rows) + 1:05d}"
        if details:
            row["notes"] = rng.choice(NOTES) if rng.random() < 0.4 else ""
        rows.append(row)
        previous = mentor

    pairings = folder / "pairings.csv"
    with pairings.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    config = folder / "cohort.yaml"
    config.write_text(
        f"name: {name}\n"
        f"coordinator:\n  name: {COORDINATOR.name}\n  email: {COORDINATOR.email}\n"
        f"program:\n  start: {PROGRAM_START}\n  end: {PROGRAM_END}\n  timezone: {PROGRAM_ZONE}\n"
        "pairings: pairings.csv\n" + sections,
        encoding="utf-8",
    )
    return Generated(name=name, config=config, pairings=pairings, pairs=len(rows), people=people)


# --------------------------------------------------------------------------- when they are busy

OFFICE_HOURS = (TimeRange(start=time(9), end=time(17)),)
WEEKDAYS = frozenset(range(5))
MEETING_MINUTES = (30, 30, 45, 60, 60, 90, 120)


@dataclass(frozen=True)
class CalendarProfile:
    """How busy a generated person is."""

    recurring: tuple[int, int]  # weekly meetings, at least and at most
    one_offs: tuple[int, int]  # meetings per week that happen once
    vacation: float  # chance of one whole week away
    lengths: tuple[int, ...] = MEETING_MINUTES  # meeting lengths to draw from, in minutes


def mondays(first: date, last: date) -> list[date]:
    """The Mondays of every week touching [first, last]."""
    monday = first - timedelta(days=first.weekday())
    weeks = []
    while monday <= last:
        weeks.append(monday)
        monday += timedelta(weeks=1)
    return weeks


def busy_calendar(
    rng: random.Random, pattern: WorkingPattern, weeks: Sequence[date], profile: CalendarProfile
) -> list[tuple[datetime, datetime]]:
    """Busy intervals (aware, UTC) over the given weeks, inside the working hours and days
    of `pattern`, plus perhaps a week away."""
    zone = ZoneInfo(pattern.timezone)
    days = sorted(pattern.days)

    def slot() -> tuple[int, int, int]:
        """A weekday, a local start minute on a quarter hour, and a length in minutes."""
        hours = rng.choice(pattern.hours)
        first = hours.start.hour * 60 + hours.start.minute
        last = hours.end.hour * 60 + hours.end.minute
        length = rng.choice(profile.lengths)
        return rng.choice(days), first + 15 * rng.randint(0, max(0, (last - first - length) // 15)), length

    def meeting(day: date, minute: int, length: int) -> tuple[datetime, datetime]:
        start = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=zone).astimezone(UTC)
        return start, start + timedelta(minutes=length)

    recurring = [slot() for _ in range(rng.randint(*profile.recurring))]
    busy = []
    for monday in weeks:
        for weekday, minute, length in recurring + [slot() for _ in range(rng.randint(*profile.one_offs))]:
            busy.append(meeting(monday + timedelta(days=weekday), minute, length))
    if rng.random() < profile.vacation:
        monday = rng.choice(weeks)
        away = datetime.combine(monday, time(0), tzinfo=zone).astimezone(UTC)
        back = datetime.combine(monday + timedelta(weeks=1), time(0), tzinfo=zone).astimezone(UTC)
        busy.append((away, back))
    return busy


# --------------------------------------------------------------------------- measuring


def max_rss_mb() -> float:
    """This process's peak resident set so far, in MiB (getrusage; it never goes down)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class LogSample(logging.Handler):
    """Keeps the first `keep` lines the service logs while attached. Attaching sets the
    service's logger to INFO, as `mentorship run` does, so the events cost what they cost
    in production; close() detaches and puts the level back."""

    def __init__(self, keep: int):
        super().__init__(logging.INFO)
        self.keep = keep
        self.lines: list[str] = []
        self._level = logger.level
        logger.addHandler(self)
        logger.setLevel(logging.INFO)

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.lines) < self.keep:
            at = getattr(record, "at", None) or datetime.fromtimestamp(record.created, UTC)
            self.lines.append(f"{at:%Y-%m-%d %H:%M} {record.getMessage()}")

    def close(self) -> None:
        if self in logger.handlers:
            logger.removeHandler(self)
            logger.setLevel(self._level)
        super().close()
