"""Sessions outside someone's working hours: for whom, and by how much.

Nothing about a stretch is stored: it follows from the session's time and the person's
hours, so the plan, the status and the emails all read it from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from .availability import local_moment, outside, to_minutes, zone
from .model import Pair, Person, Session, WorkingPattern


class Side(StrEnum):
    EARLY = "early"  # before the person's working day starts
    LATE = "late"  # after it ends


@dataclass(frozen=True, kw_only=True)
class Stretched:
    """One person's share of a session outside their hours."""

    person: Person
    partner: Person  # whose time zone made it so
    side: Side
    minutes: int


def outside_hours(pattern: WorkingPattern, start: datetime, end: datetime) -> tuple[int, int]:
    """Minutes of [start, end) before and after the person's working hours that day."""
    day = start.astimezone(zone(pattern.timezone)).date()
    begin, finish, length = to_minutes(start), to_minutes(end), to_minutes(end) - to_minutes(start)
    periods = [
        (to_minutes(local_moment(day, h.start, pattern.timezone)), to_minutes(local_moment(day, h.end, pattern.timezone)))
        for h in pattern.hours
    ]
    if any(s <= begin and finish <= e for s, e in periods):
        return 0, 0
    return outside(begin, length, min(s for s, _ in periods), max(e for _, e in periods))


def stretched(pair: Pair, session: Session) -> tuple[Stretched, ...]:
    """Who of the pair meets outside their hours in this session, and by how much."""
    found = []
    for person, partner in ((pair.mentor, pair.mentee), (pair.mentee, pair.mentor)):
        early, late = outside_hours(person.availability, session.start, session.end)
        for side, minutes in ((Side.EARLY, early), (Side.LATE, late)):
            if minutes:
                found.append(Stretched(person=person, partner=partner, side=side, minutes=minutes))
    return tuple(found)
