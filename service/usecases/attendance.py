"""Meet attendance: look up each session's room once its link exists, and read who was
in it an hour after the session's end (then once a day until it is settled), well
within the 30 days Meet keeps its records."""

from __future__ import annotations

import logging
from datetime import datetime

from ..domain import attendance
from ..domain.attendance import Attendance, Reading
from ..domain.outbox import SessionRecord
from ..domain.ports import Meet, MeetError
from ..logs import event
from ..mail import wording
from .booking import pairs_by_id
from .deps import Deps, Inputs

MEET_ALERT = ("", -2)  # the standing note about Meet as a whole
# Kept as a session's room, followed by its link, when Meet said there is no room behind
# that link: it is not asked again unless the link changes, and attendance is unknown.
GONE = "gone:"


def prepare_rooms(deps: Deps, meet: Meet, now: datetime) -> None:
    """Every session to come with a Meet link gets its room looked up (and its settings
    set); the room is kept with the session."""
    for record in deps.store.sessions():
        if record.cancelled or not record.meet_link or record.session.end <= now or _room(record) or _gone(record):
            continue
        session = record.session
        try:
            space = meet.space(record.meet_link)
        except MeetError as error:
            if error.gone:
                _no_room(deps, record, error, now)
                continue
            _unreachable(deps, error, now, f"cannot look up the Meet room of session {session.number} of {session.pair_id}")
            if error.setup:  # Meet as a whole refuses: the others would fail alike
                return
            continue  # this link only: its attendance is then read by meeting code
        deps.store.set_meet_space(session.pair_id, session.number, space)
        event(now, "meet_room", f"meet: session {session.number} of {session.pair_id} has room {space}", pair=session.pair_id)
        _meet_answers(deps)


def read_attendance(deps: Deps, meet: Meet, inputs: Inputs, now: datetime) -> bool:
    """Read the rooms of sessions whose time to be read has come. Returns whether any
    session's attendance was settled (the emails that follow from it are then planned)."""
    store, cohort = deps.store, inputs.cohort
    records = store.sessions()
    _forget_old_news(deps, records)
    due = [record for record in records if _due(record, now)]
    if not due:
        return False
    pairs = pairs_by_id(deps.store, inputs.cohort, {r.session.pair_id for r in due})
    settled = False
    for record in due:
        session = record.session
        pair = pairs.get(session.pair_id)
        first, last = attendance.window(session)
        if _gone(record):  # nothing to read: not known whether it took place
            store.record_attendance(session.pair_id, session.number, record.sequence, _unknown(record, now), now)
            settled = True
            continue
        try:
            conferences = meet.conferences(_room(record) or str(record.meet_link), first, min(last, now))
        except MeetError as error:
            if error.gone:
                _no_room(deps, record, error, now)
                store.record_attendance(session.pair_id, session.number, record.sequence, _unknown(record, now), now)
                settled = True
                continue
            _unreachable(deps, error, now, f"cannot read who came to session {session.number} of {session.pair_id}")
            # Asked, in vain: tried again a day later; when Meet as a whole refuses, so are the others.
            for waiting in due[due.index(record) :] if error.setup else [record]:
                store.record_attendance(waiting.session.pair_id, waiting.session.number, waiting.sequence, None, now)
            if error.setup:
                return settled
            continue
        if pair is None:  # no longer known: nothing to decide for
            store.record_attendance(session.pair_id, session.number, record.sequence, None, now)
            continue
        reading = attendance.decide(
            session,
            record.sequence,
            conferences,
            now=now,
            min_overlap=cohort.meet.min_overlap,
            pair=[person.email for person in pair.people],
        )
        if reading is not None:  # the note first: a crash before the reading is kept reads the room again
            store.set_alert(session.pair_id, session.number, _alert(reading.attendance, session.pair_id, session.number, deps))
        store.record_attendance(session.pair_id, session.number, record.sequence, reading, now)
        if reading is None:
            continue
        settled = True
        event(
            now,
            "attendance",
            f"meet: session {session.number} of {session.pair_id} {reading.attendance.value}"
            f" ({reading.people} in the room, {reading.together_minutes} minutes together)",
            pair=session.pair_id,
            session=session.number,
            attendance=reading.attendance.value,
        )
    _meet_answers(deps)
    return settled


def next_reading(deps: Deps) -> datetime | None:
    """When the next session's room is to be read."""
    times = [attendance.due(r.session, r.attendance_read_at) for r in deps.store.sessions() if _waiting(r)]
    return min(times, default=None)


def _room(record: SessionRecord) -> str | None:
    """The room looked up for the session (spaces/ID), if it was."""
    return record.meet_space if record.meet_space and not record.meet_space.startswith(GONE) else None


def _gone(record: SessionRecord) -> bool:
    """Whether Meet said there is no room behind the session's link as it is now."""
    return record.meet_space == GONE + str(record.meet_link)


def _no_room(deps: Deps, record: SessionRecord, error: MeetError, now: datetime) -> None:
    """Meet has no room behind this link: kept, so it is not asked again while the link stays."""
    session = record.session
    deps.store.set_meet_space(session.pair_id, session.number, GONE + str(record.meet_link))
    event(
        now,
        "meet_room_gone",
        f"meet: no room behind the link of session {session.number} of {session.pair_id} ({error.reason}); its attendance will be unknown",
        level=logging.WARNING,
        pair=session.pair_id,
        session=session.number,
        error=error.reason,
    )


def _unknown(record: SessionRecord, now: datetime) -> Reading:
    return Reading(attendance=Attendance.UNKNOWN, sequence=record.sequence, at=now)


def _waiting(record: SessionRecord) -> bool:
    """A session as it is now, with a Meet room (its link comes from Google Calendar), and
    whose attendance is not settled yet."""
    return not record.cancelled and bool(record.meet_space or record.meet_link) and record.attended is None


def _due(record: SessionRecord, now: datetime) -> bool:
    return _waiting(record) and now >= attendance.due(record.session, record.attendance_read_at)


def _forget_old_news(deps: Deps, records: list[SessionRecord]) -> None:
    """A session booked again since Meet was read has not happened yet: what the
    coordinator was told about its attendance no longer stands."""
    told = {(a.pair_id, a.session) for a in deps.store.alerts() if a.text.startswith(wording.ATTENDANCE_NEWS)}
    for record in records:
        key = (record.session.pair_id, record.session.number)
        if key in told and record.attended is None:
            deps.store.set_alert(*key, None)


def _alert(found: Attendance, pair_id: str, number: int, deps: Deps) -> str | None:
    """What the coordinator is told about a session's attendance, if anything."""
    if found is Attendance.MISSED:
        return wording.session_missed(number, pair_id, rebook_link=deps.links is not None)
    if found is Attendance.PARTIAL:
        return wording.session_partial(number)
    return None


def _meet_answers(deps: Deps) -> None:
    """Meet answered: the note that it cannot be read no longer stands."""
    if any((a.pair_id, a.session) == MEET_ALERT for a in deps.store.alerts()):
        deps.store.set_alert(*MEET_ALERT, None)


def _unreachable(deps: Deps, error: MeetError, now: datetime, what: str) -> None:
    if error.setup:
        deps.store.set_alert(*MEET_ALERT, wording.meet_down(error.reason))
    event(now, "meet_unreadable", f"meet: {what} ({error.reason}); trying again later", level=logging.WARNING, error=error.reason)
