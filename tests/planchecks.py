"""An independent check that a plan obeys every rule, written without the planner's code."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from service.domain.model import Cohort, Person
from service.domain.planning import Plan


def violations(cohort: Cohort, plan: Plan, busy=None, now: datetime | None = None) -> list[str]:
    busy = busy or {}
    rules = cohort.rules
    zone = ZoneInfo(cohort.timezone)
    program_start = datetime.combine(cohort.start, datetime.min.time(), tzinfo=zone)
    program_end = datetime.combine(cohort.end + timedelta(days=1), datetime.min.time(), tzinfo=zone)
    found: list[str] = []
    by_person: dict[str, list] = {}
    by_room: dict[str, list] = {}
    for item in plan.pairs:
        if not item.sessions:
            if not item.problems:
                found.append(f"{item.pair.id}: not planned and no reason given")
            continue
        first, second = item.sessions
        if (first.number, second.number) != (1, 2):
            found.append(f"{item.pair.id}: sessions are numbered {first.number}, {second.number}")
        if first.end > program_start + rules.first_within:
            found.append(f"{item.pair.id}: session 1 ends after the first weeks")
        if second.start < first.start + rules.min_gap:
            found.append(f"{item.pair.id}: session 2 too soon after session 1")
        for session in item.sessions:
            if session.end - session.start != rules.length:
                found.append(f"{item.pair.id}: session {session.number} has the wrong length")
            if session.start < program_start or session.end > program_end:
                found.append(f"{item.pair.id}: session {session.number} outside the program")
            if now and session.start < now:
                found.append(f"{item.pair.id}: session {session.number} in the past")
            for person in item.pair.people:
                reach = cohort.stretch.allowance(person.availability)
                if not _within_hours(person, session.start, session.end, reach):
                    found.append(f"{item.pair.id}: session {session.number} outside {person.name}'s hours")
                for b_start, b_end in busy.get(person.email, ()):
                    if session.start < b_end and b_start < session.end:
                        found.append(f"{item.pair.id}: session {session.number} while {person.name} is busy")
                by_person.setdefault(person.email, []).append((session.start, session.end, item.pair.id))
            if room := cohort.link_for(item.pair):
                by_room.setdefault(room, []).append((session.start, session.end, item.pair.id))
    for email, sessions in by_person.items():
        sessions.sort()
        for (_, end, a), (start, _, b) in zip(sessions, sessions[1:]):
            if start < end + rules.buffer:
                found.append(f"{email} double-booked: {a} and {b}")
    for room, sessions in by_room.items():
        sessions.sort()
        for (_, end, a), (start, _, b) in zip(sessions, sessions[1:]):
            if start < end:
                found.append(f"room {room} double-booked: {a} and {b}")
    return found


def _within_hours(person: Person, start: datetime, end: datetime, reach: int) -> bool:
    """Inside the person's hours, or at most `reach` minutes before their day's first
    period or after its last, and never before 06:00 or after 22:00 their time."""
    pattern = person.availability
    zone = ZoneInfo(pattern.timezone)
    local_start, local_end = start.astimezone(zone), end.astimezone(zone)
    if local_start.date() != local_end.date() and local_end.time() != datetime.min.time():
        return False
    day = local_start.date()
    if local_start.weekday() not in pattern.days or day in pattern.blackout_dates or day in pattern.holidays:
        return False
    if any(r.start <= local_start.time() and local_end.time() <= r.end for r in pattern.hours):
        return True
    if not reach:
        return False
    first = datetime.combine(day, min(r.start for r in pattern.hours), tzinfo=zone)
    last = datetime.combine(day, max(r.end for r in pattern.hours), tzinfo=zone)
    earliest = max(first - timedelta(minutes=reach), datetime.combine(day, time(6), tzinfo=zone))
    latest = min(last + timedelta(minutes=reach), datetime.combine(day, time(22), tzinfo=zone))
    # Outside the hours only at the ends of the day, never across a gap between periods.
    if not (local_start < first or local_end > last):
        return False
    return earliest <= local_start and local_end <= latest and _no_gap(pattern, local_start, local_end)


def _no_gap(pattern, local_start: datetime, local_end: datetime) -> bool:
    """The session does not cover a gap between two working periods of the day."""
    periods = sorted(pattern.hours)
    for a, b in zip(periods, periods[1:]):
        if local_start.time() < b.start and local_end.time() > a.end:
            return False
    return True
