"""Calendar sync: bring the calendar up to date with the sessions, and read back what
people changed there (moves, declines, deletions, answers)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..domain.calendar import CalendarError, Declined, Deleted, EventRequest, Moved, event_id, observe
from ..domain.model import Cohort, Contact, Pair, Role, Session
from ..domain.outbox import SessionRecord
from ..domain.ports import Calendar
from ..domain.stages import Kind, about_session
from ..logs import event
from ..mail import wording
from ..mail.context import pair_context
from ..mail.templates import Templates
from .booking import pairs_by_id, rebook
from .deps import Deps, Inputs

CALENDAR_ALERT = ("", -1)  # the standing note about the calendar as a whole


def ready(deps: Deps, calendar: Calendar, now: datetime) -> bool:
    """Whether the calendar exists (made for the cohort on first use, its id kept in the
    state); the coordinator is told when it cannot be made."""
    store = deps.store
    kept = store.calendar_id()
    try:
        made = calendar.prepare(kept)
    except CalendarError as error:
        store.set_alert(*CALENDAR_ALERT, wording.calendar_down(error.reason))
        event(now, "calendar_not_ready", f"calendar: cannot prepare the cohort's calendar ({error.reason})", error=error.reason)
        return False
    if made and made != kept:
        store.set_calendar_id(made)
        event(now, "calendar_created", f"calendar: made the cohort's own calendar {made}", calendar=made)
    return True


def push_calendar(deps: Deps, calendar: Calendar, inputs: Inputs, now: datetime) -> bool:
    """Create, move or cancel the events of sessions the calendar does not show yet.
    Returns whether the calendar now shows something it did not (reminders follow it)."""
    store, cohort = deps.store, inputs.cohort
    if not ready(deps, calendar, now):
        return False
    behind = store.sessions_out_of_calendar()
    if not behind:
        return False
    written = False
    pairs = pairs_by_id(deps.store, inputs.cohort, {r.session.pair_id for r in behind})
    live = {event_id(cohort.name, r.session.pair_id, r.session.number): r for r in behind if not r.cancelled}
    gone = {event_id(cohort.name, r.session.pair_id, r.session.number): r for r in behind if r.cancelled}
    requests = [event_request(cohort, inputs.templates, pairs[r.session.pair_id], r, key) for key, r in live.items()]
    refused_before = {(a.pair_id, a.session) for a in store.alerts() if a.text.startswith(wording.CALENDAR_REFUSED)}
    outcomes = calendar.put(requests)
    whole = next((o for o in outcomes.values() if isinstance(o, CalendarError) and o.whole), None)
    if whole is not None:
        store.set_alert(*CALENDAR_ALERT, wording.calendar_down(whole.reason))
    elif any(not isinstance(o, CalendarError) for o in outcomes.values()):
        store.set_alert(*CALENDAR_ALERT, None)
    for key, outcome in outcomes.items():
        session = live[key].session
        fields: dict[str, Any] = {"pair": session.pair_id, "session": session.number}
        if isinstance(outcome, CalendarError):
            if not outcome.transient and not outcome.whole:  # the coordinator must change something first
                store.set_alert(session.pair_id, session.number, wording.calendar_refused(session.number, outcome.reason))
            later = "trying again later" if outcome.transient else "waiting for a change"
            event(
                now,
                "event_not_written",
                f"calendar: could not write session {session.number} of {session.pair_id} ({outcome.reason}); {later}",
                error=outcome.reason,
                **fields,
            )
            continue
        if (session.pair_id, session.number) in refused_before:
            store.set_alert(session.pair_id, session.number, None)
        store.event_written(session.pair_id, session.number, live[key].sequence, outcome, now)
        written = True
        meet = " with Meet" if outcome.meet_link else ""
        event(
            now,
            "event_written",
            f"calendar: session {session.number} of {session.pair_id} at {session.start:%Y-%m-%d %H:%M} UTC{meet}",
            start=session.start,
            **fields,
        )
    existing = [key for key, r in gone.items() if r.event_sequence >= 0]
    removed = calendar.remove(existing) if existing else {}
    for key, record in gone.items():
        session = record.session
        error = removed.get(key)
        if error is not None:
            event(
                now,
                "event_not_removed",
                f"calendar: could not cancel session {session.number} of {session.pair_id} ({error.reason})",
                pair=session.pair_id,
                session=session.number,
                error=error.reason,
            )
            continue
        store.event_written(session.pair_id, session.number, record.sequence, None, now)
        written = True
    return written


def pull_calendar(deps: Deps, calendar: Calendar, inputs: Inputs, now: datetime) -> bool:
    """Read what people changed in the calendar since last time; returns whether any
    session moved, went away or got an answer (the plan and the emails then follow)."""
    store, cohort = deps.store, inputs.cohort
    if not ready(deps, calendar, now):
        return False
    known = store.calendar_token()
    try:
        events, token = calendar.changes(known)
    except CalendarError as error:
        if error.whole:
            store.set_alert(*CALENDAR_ALERT, wording.calendar_down(error.reason))
        event(now, "calendar_unreadable", f"calendar: cannot read changes ({error.reason}); trying again later", error=error.reason)
        return False
    if any((alert.pair_id, alert.session) == CALENDAR_ALERT for alert in store.alerts()):
        store.set_alert(*CALENDAR_ALERT, None)  # Google answers again; a write still refused sets it again
    # Most ticks find nothing changed: then the sessions need not be read.
    records = {event_id(cohort.name, r.session.pair_id, r.session.number): r for r in store.sessions()} if events else {}
    current = {p.id: p for p in cohort.pairs}
    changed = False
    for seen in events:
        record = records.get(seen.event_id)
        if record is None:
            continue
        session = record.session
        store.event_seen(session.pair_id, session.number, seen, now)
        if dict(seen.responses) != dict(record.responses):
            changed = True  # an answer came in: reminders follow it
        pair = current.get(session.pair_id)
        if pair is None or not record.in_calendar:
            continue  # a removed pair, or our own change is still on its way
        what = observe(pair, start=session.start, end=session.end, we_cancelled=record.cancelled, event=seen)
        if isinstance(what, Moved):
            moved = Session(pair_id=session.pair_id, number=session.number, start=what.start, end=what.end)
            store.move(moved, now, "the event was moved in Google Calendar", seen_in_calendar=True)
            event(
                now,
                "session_moved",
                f"calendar: session {session.number} of {session.pair_id} was moved to {what.start:%Y-%m-%d %H:%M} UTC",
                pair=session.pair_id,
                session=session.number,
                start=what.start,
            )
            changed = True
        elif isinstance(what, Declined):
            refused = next(p.email for p in pair.people if p.name == what.who)
            changed |= rebook(deps, inputs, record, now, reason=f"{what.who} declined the first time", refused_by=refused)
        elif isinstance(what, Deleted):
            if cohort.rebook_deleted:
                changed |= rebook(deps, inputs, record, now, reason="the event was deleted in Google Calendar")
            else:
                store.set_alert(session.pair_id, session.number, wording.deleted_by_hand(session.number))
                store.cancel_pair(session.pair_id, now, "a session was deleted in Google Calendar", held=True)
                changed = True
    if token != known:
        store.set_calendar_token(token)
    return changed


def event_request(cohort: Cohort, templates: Templates, pair: Pair, record: SessionRecord, key: str) -> EventRequest:
    """The event a stored session should be."""
    session = record.session
    context = pair_context(cohort, pair, (session, session), Role.MENTOR, stage=about_session(Kind.INVITATION, session.number))
    context["session"] = context["session1"]
    return EventRequest(
        event_id=key,
        exists=record.event_sequence >= 0,
        pair_id=pair.id,
        number=session.number,
        start=session.start,
        end=session.end,
        summary=f"Mentorship session {session.number}: {pair.mentor.name} and {pair.mentee.name}",
        description=templates.render_one("event/description.txt", context),
        attendees=tuple(Contact(name=p.name, email=p.email) for p in pair.people),
        tags={"pair": pair.id, "session": str(session.number)},
    )
