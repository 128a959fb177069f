"""When each email is due, derived from the session times: a pure function of the plan."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from .availability import local_moment, zone
from .model import Anchor, Cohort, Pair, Person, Role, Session, Timing, WorkingPattern
from .stages import DEFAULT_TIMINGS, Stage

MORNING = time(9)


@dataclass(frozen=True, kw_only=True, order=True)
class PlannedMessage:
    """One email to one person. (pair_id, stage, recipient) is its identity."""

    due: datetime
    pair_id: str
    stage: Stage
    role: Role
    recipient: str

    @property
    def key(self) -> tuple[str, Stage, str]:
        return (self.pair_id, self.stage, self.recipient)


def timings(cohort: Cohort) -> Mapping[Stage, Timing]:
    return dict(cohort.emails.timings) if cohort.emails else DEFAULT_TIMINGS


def email_timeline(cohort: Cohort, pair: Pair, sessions: tuple[Session, ...]) -> list[PlannedMessage]:
    """Every program email for a pair whose two sessions are planned, in due order."""
    if len(sessions) != 2:
        return []
    messages = [
        PlannedMessage(due=due, pair_id=pair.id, stage=stage, role=role, recipient=reader.email)
        for stage, role, reader, due in dues(cohort, pair, sessions)
    ]
    return sorted(messages, key=_order)


def dues(cohort: Cohort, pair: Pair, sessions: tuple[Session, ...]) -> Iterator[tuple[Stage, Role, Person, datetime]]:
    """Each program email of a pair with two sessions: its stage, reader and due time, in
    no particular order (what email_timeline is made of)."""
    for stage, timing in timings(cohort).items():
        for role, person in ((Role.MENTOR, pair.mentor), (Role.MENTEE, pair.mentee)):
            yield stage, role, person, _due(cohort, timing, sessions, person.availability)


def _order(message: PlannedMessage) -> tuple:
    """The dataclass's own order (its fields in turn), without its slower comparisons."""
    return (message.due, message.pair_id, message.stage, message.role, message.recipient)


def due_time(cohort: Cohort, stage: Stage, sessions: tuple[Session, ...], reader: WorkingPattern) -> datetime:
    """When one stage's email is due for a reader (in UTC)."""
    return _due(cohort, timings(cohort)[stage], sessions, reader)


def _due(cohort: Cohort, timing: Timing, sessions: tuple[Session, ...], reader: WorkingPattern) -> datetime:
    first, second = sessions
    anchor = timing.anchor
    if anchor is Anchor.BETWEEN_SESSIONS:
        halfway = first.end + (second.start - first.end) / 2
        return _morning(halfway.astimezone(zone(reader.timezone)).date(), timing.offset, reader)
    if anchor is Anchor.PROGRAM_START:
        return _morning(cohort.start, timing.offset, reader)
    if anchor is Anchor.PROGRAM_END:
        return _morning(cohort.end, timing.offset, reader)
    session = first if anchor in _FIRST else second
    moment = session.start if anchor in _STARTS else session.end
    return (moment + timing.offset).astimezone(UTC)


_FIRST = frozenset({Anchor.SESSION1_START, Anchor.SESSION1_END})
_STARTS = frozenset({Anchor.SESSION1_START, Anchor.SESSION2_START})


def _morning(day: date, offset: timedelta, reader: WorkingPattern) -> datetime:
    """09:00 local on `day` moved by `offset`, on the reader's next working day.

    Whole days move the date, so the email still arrives at 09:00 across a DST change.
    """
    return _local_morning(day, offset, reader.timezone, reader.days, reader.blackout_dates)


@functools.lru_cache(maxsize=1 << 14)  # the same for everyone in a zone who works the same days: most of a cohort
def _local_morning(day: date, offset: timedelta, timezone: str, days: frozenset[int], blackout: frozenset[date]) -> datetime:
    day += timedelta(days=offset.days)
    for _ in range(14):  # a reader with no working days at all still gets the email
        if day.weekday() in days and day not in blackout:
            break
        day += timedelta(days=1)
    return local_moment(day, MORNING, timezone) + (offset - timedelta(days=offset.days))
