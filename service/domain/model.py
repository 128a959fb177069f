"""The cohort and its people, as frozen, validated values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # stages.py builds on this module's Timing
    from .stages import Stage

WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


class Role(StrEnum):
    MENTOR = "mentor"
    MENTEE = "mentee"
    COORDINATOR = "coordinator"  # reads the digest of what needs a human


@dataclass(frozen=True, kw_only=True, order=True)
class TimeRange:
    """A span of wall-clock time inside one day, e.g. 09:00-17:00."""

    start: time
    end: time

    def __post_init__(self) -> None:
        if not self.start < self.end:
            raise ValueError(f"{self} ends before it starts")

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


@dataclass(frozen=True, kw_only=True)
class WorkingPattern:
    """When someone is willing to meet, in their own time zone."""

    timezone: str
    hours: tuple[TimeRange, ...]
    days: frozenset[int]  # 0 = Monday, as date.weekday()
    blackout_dates: frozenset[date] = frozenset()  # the person's own days away
    # Public holidays where the person lives, within the program: kept apart from
    # blackouts so a reason can say which of the two took a day.
    holidays: frozenset[date] = frozenset()
    # The person gave these hours in the pairings (not the cohort's default): the
    # planner stretches them only when the cohort allows it (Stretch.declared).
    declared: bool = False

    def __post_init__(self) -> None:
        if not self.hours:
            raise ValueError("working hours must not be empty")
        if not self.days <= set(range(7)):
            raise ValueError(f"weekdays must be 0..6, got {sorted(self.days)}")

    def describe_hours(self) -> str:
        return ", ".join(str(r) for r in self.hours)

    def describe_days(self) -> str:
        return ",".join(WEEKDAY_NAMES[d] for d in sorted(self.days))


@dataclass(frozen=True, kw_only=True)
class Contact:
    name: str
    email: str


@dataclass(frozen=True, kw_only=True)
class Person:
    """A participant. The same email always means the same person."""

    name: str
    email: str
    availability: WorkingPattern
    linkedin: str | None = None
    busy_calendar: str | None = None  # path of an .ics file whose events are busy time
    video_link: str | None = None  # a mentor's own meeting room
    country: str | None = None  # whose public holidays they keep: ISO 3166, maybe with a region ("DE-BE")

    @property
    def timezone(self) -> str:
        return self.availability.timezone

    @property
    def place(self) -> str:
        """The city part of the time zone, for sentences: 'America/New_York' -> 'New York'."""
        return self.timezone.rsplit("/", 1)[-1].replace("_", " ")


@dataclass(frozen=True, kw_only=True)
class Pair:
    id: str
    mentor: Person
    mentee: Person
    mentee_resume: str | None = None
    notes: str = ""
    # Columns of the pairings the service does not use itself, by their header as
    # written ("Mentee goals"), for templates. Not part of the hash: a mapping has none.
    extra: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.mentor.email == self.mentee.email:
            raise ValueError(f"pair {self.id}: the mentor and the mentee are the same person")

    @property
    def people(self) -> tuple[Person, Person]:
        return (self.mentor, self.mentee)


@dataclass(frozen=True, kw_only=True)
class SessionRules:
    """When the two sessions of a pair may fall."""

    length: timedelta = timedelta(minutes=60)
    first_within: timedelta = timedelta(weeks=3)  # session 1 within this long after the start
    min_gap: timedelta = timedelta(weeks=3)  # session 2 at least this long after session 1
    buffer: timedelta = timedelta(minutes=15)  # free time around one person's sessions
    step: timedelta = timedelta(minutes=30)  # sessions start on multiples of this (UTC)


class Anchor(StrEnum):
    """What an email's send time is measured from."""

    PROGRAM_START = "program_start"  # 09:00 in the reader's zone on the first day
    PROGRAM_END = "program_end"  # 09:00 in the reader's zone on the last day
    SESSION1_START = "session1_start"
    SESSION1_END = "session1_end"
    SESSION2_START = "session2_start"
    SESSION2_END = "session2_end"
    BETWEEN_SESSIONS = "between_sessions"  # 09:00 reader's time, halfway between the sessions


@dataclass(frozen=True, kw_only=True)
class Timing:
    anchor: Anchor
    offset: timedelta = timedelta(0)


@dataclass(frozen=True, kw_only=True)
class EmailSettings:
    timings: tuple[tuple[Stage, Timing], ...]  # (stage, when), in the order a pair lives them
    sender: Contact | None = None  # None: the coordinator
    template_dir: str | None = None  # files here override the default templates


@dataclass(frozen=True, kw_only=True)
class ChangeLimits:
    """An edit that cancels more pairs than either limit waits for the coordinator."""

    pairs: int = 3
    share: float = 0.10


@dataclass(frozen=True, kw_only=True)
class Stretch:
    """How far outside their working hours a pair whose hours never meet may be booked."""

    minutes: int = 180  # before the start or after the end of a person's working day
    declared: bool = False  # also stretch hours people declared in the pairings

    def allowance(self, pattern: WorkingPattern) -> int:
        """The minutes this person's day may be stretched at either end."""
        return 0 if pattern.declared and not self.declared else self.minutes


@dataclass(frozen=True, kw_only=True)
class MeetRules:
    """Telling from Google Meet whether a session took place."""

    min_overlap: timedelta = timedelta(minutes=20)  # both in the room this long: it was held
    attendance: bool = True  # read who came (Google Calendar sessions have Meet rooms)


@dataclass(frozen=True, kw_only=True)
class Cohort:
    name: str
    coordinator: Contact
    start: date
    end: date  # inclusive
    timezone: str  # the program's own zone: its dates begin and end at midnight there
    rules: SessionRules = field(default_factory=SessionRules)
    emails: EmailSettings | None = None  # None: the default schedule (see timeline.py)
    video_link: str | None = None  # the cohort's meeting room, unless the mentor has one
    calendar: str = "imip"  # imip: invitations by email; google: Google Calendar events
    rebook_deleted: bool = False  # google: book a session again when its event is deleted by hand
    hold_above: ChangeLimits = field(default_factory=ChangeLimits)
    stretch: Stretch = field(default_factory=Stretch)
    meet: MeetRules = field(default_factory=MeetRules)
    pairs: tuple[Pair, ...] = ()

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError("the program ends before it starts")

    def link_for(self, pair: Pair) -> str | None:
        return pair.mentor.video_link or self.video_link

    @property
    def people(self) -> dict[str, Person]:
        """Every participant once, by email."""
        return {p.email: p for pair in self.pairs for p in pair.people}


SESSIONS_PER_PAIR = 2


@dataclass(frozen=True, kw_only=True, order=True)
class Session:
    """One planned or booked meeting of a pair. Times are aware and in UTC."""

    pair_id: str
    number: int  # 1 or 2
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("session times must be time-zone aware")
        if not 1 <= self.number <= SESSIONS_PER_PAIR:
            raise ValueError(f"a pair has sessions 1 and 2, not {self.number}")
