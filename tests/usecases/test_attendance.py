"""Reading Meet attendance as a use case: when rooms are read, what a failure does, and
rebooking a session nobody came to."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from service.domain.attendance import Attendance, Conference, Presence
from service.domain.calendar import CalendarEvent, event_id
from service.domain.ports import MeetError
from service.domain.requests import RequestKind
from service.usecases.attendance import MEET_ALERT, next_reading, prepare_rooms, read_attendance
from service.usecases.booking import reconcile
from service.usecases.requests import apply_requests

from .conftest import NOW


class ScriptedMeet:
    """The Meet port with rooms and conferences given by the test (the Google fake covers
    the API itself: tests/integration/test_google_fake_meet.py)."""

    def __init__(self):
        self.conferences_by_room: dict[str, list[Conference]] = {}
        self.failure: MeetError | None = None
        self.unknown: set[str] = set()  # links whose room Meet does not find
        self.asked: list[str] = []
        self.looked_up: list[str] = []

    def space(self, link: str) -> str:
        self.looked_up.append(link)
        if self.failure:
            raise self.failure
        if link in self.unknown:
            raise MeetError("Google Meet: 404 : Requested entity was not found.", gone=True)
        return "spaces/" + link.rsplit("/", 1)[-1]

    def conferences(self, space: str, start: datetime, end: datetime) -> list[Conference]:
        self.asked.append(space)
        if self.failure:
            raise self.failure
        return [c for c in self.conferences_by_room.get(space, []) if start <= c.start <= end]


def booked_on_google(deps):
    """The three pairs booked, as on Google Calendar: every session with its Meet link."""
    inputs, _ = deps.source.current()
    inputs = replace(inputs, cohort=replace(inputs.cohort, calendar="google"))
    deps.source.inputs = inputs
    reconcile(deps, inputs, NOW)
    for record in deps.store.sessions():
        session = record.session
        link = f"https://meet.google.com/{session.pair_id.replace('-', '')}-room-{'ab'[session.number - 1]}"
        seen = CalendarEvent(
            event_id=event_id(inputs.cohort.name, session.pair_id, session.number),
            start=session.start,
            end=session.end,
            cancelled=False,
            responses={},
            meet_link=link,
            conference="success",
        )
        deps.store.event_seen(session.pair_id, session.number, seen, NOW)
    return inputs


def first(deps, pair_id="jonas-priya"):
    return next(r for r in deps.store.sessions([pair_id]) if r.session.number == 1)


def test_rooms_are_looked_up_once_and_read_an_hour_after_each_end(deps):
    inputs = booked_on_google(deps)
    meet = ScriptedMeet()
    prepare_rooms(deps, meet, NOW)
    assert all(r.meet_space == "spaces/" + r.meet_link.rsplit("/", 1)[-1] for r in deps.store.sessions())
    earliest = min(r.session.end for r in deps.store.sessions())
    assert next_reading(deps) == earliest + timedelta(hours=1)
    assert read_attendance(deps, meet, inputs, earliest) is False and meet.asked == []  # not yet
    read_attendance(deps, meet, inputs, earliest + timedelta(hours=1))
    (settled,) = [r for r in deps.store.sessions() if r.attended is not None]
    assert settled.attended is Attendance.MISSED and settled.session.end == earliest
    assert next_reading(deps) > earliest + timedelta(hours=1)


def test_a_meet_that_cannot_be_read_waits_a_day_and_the_coordinator_is_told(deps):
    inputs = booked_on_google(deps)
    meet = ScriptedMeet()
    prepare_rooms(deps, meet, NOW)
    record = first(deps)
    at = record.session.end + timedelta(hours=1)
    meet.failure = MeetError("403 accessNotConfigured: the API is not enabled", setup=True)
    read_attendance(deps, meet, inputs, at)
    assert first(deps).attended is None  # unknown, not missed
    assert any((a.pair_id, a.session) == MEET_ALERT for a in deps.store.alerts())
    assert next_reading(deps) is not None and next_reading(deps) > at  # no busy loop on a failing Meet
    meet.failure = None
    together = Conference(
        start=record.session.start,
        end=record.session.end,
        presences=(
            Presence(who="users/1", start=record.session.start, end=record.session.end),
            Presence(who="anonymous:Priya", start=record.session.start, end=record.session.end),
        ),
    )
    meet.conferences_by_room[str(record.meet_space)] = [together]
    read_attendance(deps, meet, inputs, at + timedelta(days=1))
    assert first(deps).attended is Attendance.HELD
    assert not any((a.pair_id, a.session) == MEET_ALERT for a in deps.store.alerts())


def test_a_missed_session_can_be_moved_though_its_time_has_passed_and_a_held_one_cannot(deps):
    inputs = booked_on_google(deps)
    meet = ScriptedMeet()
    prepare_rooms(deps, meet, NOW)
    missed = first(deps, "jonas-priya")
    held = first(deps, "maya-zoe")
    meet.conferences_by_room[str(held.meet_space)] = [
        Conference(
            start=held.session.start,
            end=held.session.end,
            presences=tuple(Presence(who=w, start=held.session.start, end=held.session.end) for w in ("users/1", "users/2")),
        )
    ]
    at = max(missed.session.end, held.session.end) + timedelta(hours=1)
    read_attendance(deps, meet, inputs, at)
    assert (first(deps, "jonas-priya").attended, first(deps, "maya-zoe").attended) == (Attendance.MISSED, Attendance.HELD)
    alerts = [a.text for a in deps.store.alerts() if a.pair_id == "jonas-priya"]
    assert alerts and "mentorship reschedule jonas-priya --session 1" in alerts[0]
    for pair_id in ("jonas-priya", "maya-zoe"):
        deps.store.add_request(RequestKind.RESCHEDULE, {"pair": pair_id, "session": "1", "at": "auto", "sequence": "0"}, at)
    apply_requests(deps, inputs, at)
    outcomes = {r.args["pair"]: r.outcome for r in deps.store.requests()}
    assert outcomes["maya-zoe"] == "session 1 of maya-zoe has already started"
    assert outcomes["jonas-priya"].startswith("session 1 of jonas-priya moved to")
    # The session as it is now has not happened yet: it is read again after its new time.
    moved = first(deps, "jonas-priya")
    assert moved.session.start > at and moved.attended is None and moved.sequence == 1
    read_attendance(deps, meet, inputs, at)  # what the coordinator was told no longer stands
    assert [a for a in deps.store.alerts() if a.pair_id == "jonas-priya"] == []
    assert next_reading(deps) is not None and next_reading(deps) <= moved.session.end + timedelta(hours=1)


def test_a_room_meet_does_not_find_holds_up_no_other_is_not_asked_again_and_its_attendance_is_unknown(deps):
    inputs = booked_on_google(deps)
    meet = ScriptedMeet()
    lost = first(deps, "maya-zoe")
    meet.unknown.add(str(lost.meet_link))
    prepare_rooms(deps, meet, NOW)
    spaces = {(r.session.pair_id, r.session.number): r.meet_space for r in deps.store.sessions()}
    assert spaces.pop(("maya-zoe", 1)) == "gone:" + str(lost.meet_link) and all(s and s.startswith("spaces/") for s in spaces.values())
    for tick in range(3):
        prepare_rooms(deps, meet, NOW + timedelta(minutes=5 * tick))
    assert meet.looked_up.count(str(lost.meet_link)) == 1  # once, not every tick
    assert not any((a.pair_id, a.session) == MEET_ALERT for a in deps.store.alerts())  # Meet itself is fine
    read_attendance(deps, meet, inputs, lost.session.end + timedelta(hours=1))
    assert str(lost.meet_link) not in meet.asked  # nothing to read: not taken as missed either
    assert first(deps, "maya-zoe").attended is Attendance.UNKNOWN


def test_a_room_meet_does_not_find_is_looked_up_again_once_the_link_changes(deps):
    inputs = booked_on_google(deps)
    meet = ScriptedMeet()
    lost = first(deps, "maya-zoe")
    meet.unknown.add(str(lost.meet_link))
    prepare_rooms(deps, meet, NOW)
    new_link = "https://meet.google.com/new-room-xyz"
    session = lost.session
    event = CalendarEvent(
        event_id=event_id(inputs.cohort.name, session.pair_id, session.number),
        start=session.start,
        end=session.end,
        cancelled=False,
        responses={},
        meet_link=new_link,
        conference="success",
    )
    deps.store.event_seen(session.pair_id, session.number, event, NOW)  # a new Meet link was made for the session
    prepare_rooms(deps, meet, NOW)
    assert meet.looked_up.count(new_link) == 1 and first(deps, "maya-zoe").meet_space == "spaces/new-room-xyz"


def test_meet_refusing_to_look_rooms_up_is_told_until_it_answers(deps):
    booked_on_google(deps)
    meet = ScriptedMeet()
    meet.failure = MeetError("403 insufficientPermissions: the credentials lack a scope", setup=True)
    prepare_rooms(deps, meet, NOW)
    assert [a for a in deps.store.alerts() if (a.pair_id, a.session) == MEET_ALERT]
    assert all(r.meet_space is None for r in deps.store.sessions())
    meet.failure = None
    prepare_rooms(deps, meet, NOW)
    assert all(r.meet_space for r in deps.store.sessions()) and deps.store.alerts() == []
