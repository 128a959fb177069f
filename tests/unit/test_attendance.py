"""Attendance decided from Meet's conference records: held, partial, missed, unknown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from service.domain.attendance import Attendance, Conference, Presence, decide, due
from service.domain.model import Session

START = datetime(2027, 3, 2, 15, 0, tzinfo=UTC)
SESSION_END = START + timedelta(hours=1)
PAIR = ("maya@example.org", "zoe@example.net")
TWENTY = timedelta(minutes=20)

SESSION = Session(pair_id="maya-zoe", number=1, start=START, end=SESSION_END)


def at(minutes: float) -> datetime:
    return START + timedelta(minutes=minutes)


def conference(*presences: tuple[str, float, float | None], end: float | None = 0) -> Conference:
    items = tuple(Presence(who=who, start=at(a), end=None if b is None else at(b)) for who, a, b in presences)
    ends = [p.end for p in items]
    last = None if end is None or any(e is None for e in ends) else max(e for e in ends if e is not None)
    return Conference(start=min(p.start for p in items), end=last, presences=items)


def read(*conferences: Conference, now: datetime = SESSION_END + timedelta(hours=1), min_overlap: timedelta = TWENTY):
    return decide(SESSION, 0, conferences, now=now, min_overlap=min_overlap, pair=PAIR)


def test_both_in_the_room_long_enough_is_held():
    found = read(conference(("users/1", 0, 50), ("anonymous:Zoë", 5, 45)))
    assert found is not None
    assert (found.attendance, found.people, found.together_minutes) == (Attendance.HELD, 2, 40)


def test_a_meeting_in_pieces_is_joined_up():
    # Maya drops twice and the room empties once (two conference records): 12 + 10 minutes.
    pieces = (
        conference(("users/1", 0, 12), ("users/2", 0, 14)),
        conference(("users/1", 20, 30), ("users/2", 19, 30)),
    )
    assert read(*pieces).attendance is Attendance.HELD
    assert read(*pieces, min_overlap=timedelta(minutes=23)).attendance is Attendance.PARTIAL


def test_one_rejoining_person_is_counted_once_and_alone_is_partial():
    found = read(conference(("users/1", 0, 10), ("users/1", 12, 55)))
    assert (found.attendance, found.people, found.together_minutes) == (Attendance.PARTIAL, 1, 0)


def test_two_people_who_never_overlap_long_enough_are_partial():
    assert read(conference(("users/1", 0, 15), ("users/2", 10, 40))).attendance is Attendance.PARTIAL


def test_nobody_in_the_room_by_an_hour_after_the_end_is_missed():
    assert read().attendance is Attendance.MISSED
    assert read(now=SESSION_END + timedelta(minutes=59)) is None  # not yet


def test_someone_else_resolved_by_email_does_not_count():
    coordinator_and_maya = conference(("coordinator@example.org", 0, 50), ("MAYA@example.org", 0, 50))
    assert read(coordinator_and_maya).attendance is Attendance.PARTIAL
    assert read(conference(("maya@example.org", 0, 50), ("zoe@example.net", 0, 50))).attendance is Attendance.HELD


def test_a_conference_still_running_waits_unless_it_already_shows_them_together():
    running = conference(("users/1", 0, None), end=None)
    assert read(running) is None
    together = conference(("users/1", 0, None), ("users/2", 0, None), end=None)
    assert read(together, now=at(30)).attendance is Attendance.HELD


def test_conferences_outside_the_session_window_do_not_count():
    day_before = Conference(
        start=START - timedelta(days=1),
        end=START - timedelta(days=1, minutes=-50),
        presences=(
            Presence(who="users/1", start=START - timedelta(days=1), end=START - timedelta(hours=23)),
            Presence(who="users/2", start=START - timedelta(days=1), end=START - timedelta(hours=23)),
        ),
    )
    assert read(day_before).attendance is Attendance.MISSED


def test_records_gone_after_thirty_days_make_it_unknown_not_missed():
    assert read(now=START + timedelta(days=31)).attendance is Attendance.UNKNOWN


@pytest.mark.parametrize(
    ("read_at", "expected"),
    [(None, SESSION_END + timedelta(hours=1)), (SESSION_END + timedelta(hours=1), SESSION_END + timedelta(days=1, hours=1))],
)
def test_a_session_is_read_an_hour_after_its_end_then_daily(read_at, expected):
    assert due(SESSION, read_at) == expected
