"""Whether a session took place, from who was in its Google Meet and when: pure.

Meet gives, per conference, each participant's joins and leaves. A participant is known
by an email only where the organiser may look signed-in users up (a Directory scope);
otherwise by an opaque key (the Meet user id, or the display name of someone not signed
in). So without that scope the decision counts distinct participants, not identities:
two people in the room is taken to be the pair.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from .model import Session


class Attendance(StrEnum):
    HELD = "held"  # both were there together for at least the minimum overlap
    PARTIAL = "partial"  # someone joined, but the two were not there together long enough
    MISSED = "missed"  # nobody joined by an hour after the end
    UNKNOWN = "unknown"  # no Meet for this session, or its records are gone: nothing is assumed


GRACE = timedelta(hours=1)  # after a session's end, the room is looked at
EARLY = timedelta(hours=1)  # a conference starting this long before the session counts for it
RECORDS_KEPT = timedelta(days=30)  # Meet deletes a conference record 30 days after it ends
READ_AGAIN = timedelta(days=1)  # a session not settled yet is looked at again a day later


@dataclass(frozen=True, kw_only=True)
class Presence:
    """One participant session: someone in the room from `start` to `end`."""

    who: str  # an email when resolved, else an opaque key ("users/123", "anonymous:Zoë")
    start: datetime
    end: datetime | None  # None: still there


@dataclass(frozen=True, kw_only=True)
class Conference:
    """One conference record of a meeting room (a meeting can come in several)."""

    start: datetime
    end: datetime | None  # None: still running
    presences: tuple[Presence, ...]


@dataclass(frozen=True, kw_only=True)
class Reading:
    """What was decided about one session, and on what."""

    attendance: Attendance
    sequence: int  # the session's sequence it was decided for: a moved session starts afresh
    at: datetime  # when it was decided
    people: int = 0  # distinct participants counted
    together_minutes: int = 0  # minutes two or more of them were in the room at once
    reported_by: str | None = None  # the participant who answered "Did you meet?" (None: read from Meet)


def reported(met: bool, sequence: int, *, by: str, now: datetime) -> Reading:
    """What a participant said on the "Did you meet?" page."""
    return Reading(attendance=Attendance.HELD if met else Attendance.MISSED, sequence=sequence, at=now, reported_by=by)


def window(session: Session) -> tuple[datetime, datetime]:
    """Conferences starting in this span belong to the session."""
    return session.start - EARLY, session.end + GRACE


def decide(
    session: Session,
    sequence: int,
    conferences: Iterable[Conference],
    *,
    now: datetime,
    min_overlap: timedelta,
    pair: Sequence[str],
) -> Reading | None:
    """The attendance of a session, or None while it cannot be told yet (before its end +
    an hour, or while a conference in its room is still running and has not already shown
    them together long enough). `pair`: the two people's emails; participants resolved to
    another email (the coordinator looking in) do not count."""
    first, last = window(session)
    if now >= first + RECORDS_KEPT:
        return Reading(attendance=Attendance.UNKNOWN, sequence=sequence, at=now)
    emails = {email.casefold() for email in pair}
    mine = [c for c in conferences if first <= c.start <= last]
    presences = [(p.who, p.start, p.end or now) for c in mine for p in c.presences if not ("@" in p.who and p.who.casefold() not in emails)]
    people = len({who for who, _, _ in presences})
    together = _together(presences)
    minutes = int(together.total_seconds() // 60)

    def reading(attendance: Attendance) -> Reading:
        return Reading(attendance=attendance, sequence=sequence, at=now, people=people, together_minutes=minutes)

    if people >= 2 and together >= min_overlap:
        return reading(Attendance.HELD)
    if now < last or any(c.end is None for c in mine):
        return None
    return reading(Attendance.PARTIAL if people else Attendance.MISSED)


def _together(presences: Sequence[tuple[str, datetime, datetime]]) -> timedelta:
    """How long at least two different participants were in the room at once."""
    edges = sorted([(start, 1, who) for who, start, _ in presences] + [(end, -1, who) for who, _, end in presences])
    inside: dict[str, int] = {}
    total = timedelta(0)
    since: datetime | None = None
    for moment, step, who in edges:
        if since is not None:
            total += moment - since
        inside[who] = inside.get(who, 0) + step
        since = moment if sum(1 for count in inside.values() if count > 0) >= 2 else None
    return total


def due(session: Session, read_at: datetime | None) -> datetime:
    """When a session whose attendance is not settled should be looked at next."""
    first = session.end + GRACE
    return first if read_at is None or read_at < first else read_at + READ_AGAIN


def shown(attended: Attendance | None, *, has_meet: bool, end: datetime, now: datetime) -> Attendance | None:
    """What to tell the coordinator about a session's attendance: what Meet showed; unknown
    where there is no Meet room to read (email invitations, another video tool) or its
    records were never read; None while it is not known yet."""
    if attended is not None:
        return attended
    if not has_meet or now >= end + RECORDS_KEPT:
        return Attendance.UNKNOWN
    return None
