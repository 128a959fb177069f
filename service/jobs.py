"""Use cases of the daemon: close the gap between what should exist and what does.

Every step reads the state it needs from the store, decides with pure domain functions
and writes the outcome back, one transaction per effect. Running a tick twice, in another
process, or after a crash at any point leads to the same result.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from typing import Protocol

from .domain.availability import local_moment
from .domain.calendar import CalendarError, Declined, Deleted, EventRequest, Moved, event_id, observe
from .domain.model import Cohort, Contact, Pair, Role, Session
from .domain.outbox import (
    UPDATES,
    MessageRow,
    SessionRecord,
    State,
    Wanted,
    by_pair,
    changes,
    handed_over,
    wanted_for_pair,
)
from .domain.planning import Busy, plan_sessions, replan_session
from .domain.ports import Calendar, FreeBusy, Mailer, MailError, Store
from .domain.retry import GiveUp, retry_decision
from .domain.timeline import INVITATIONS, MORNING
from .mail.compose import compose, compose_digest
from .mail.context import Change, pair_context, session_view
from .mail.templates import TemplateProblem, Templates
from .timefmt import local, span

CHUNK = 500  # pairs reconciled per transaction: bounded memory for large cohorts
DIGEST = "coordinator_digest"


@dataclass(frozen=True)
class Inputs:
    cohort: Cohort
    busy: Busy
    templates: Templates


class InputsSource(Protocol):
    def current(self) -> tuple[Inputs, bool]:
        """The configuration in force, and whether it changed since the last call. An
        invalid edit is reported through `problems` and the last valid one stays."""

    @property
    def problems(self) -> list[str]: ...


@dataclass
class Deps:
    store: Store
    mailer: Mailer
    source: InputsSource
    log: Callable[[datetime, str], None] = lambda now, line: None
    stop: threading.Event = field(default_factory=threading.Event)
    batch: int = 200
    calendar: Calendar | None = None  # None: invitations go by email (iMIP)
    free_busy: FreeBusy | None = None  # None: declared hours and .ics files only


class Controller:
    """The daemon's memory between ticks: only what can be recomputed at any time."""

    def __init__(self, deps: Deps):
        self.deps = deps
        self.unplanned: dict[str, str] = {}  # pair id -> why it has no sessions
        self.reconciled = False
        self.recovered = False

    def tick(self, now: datetime) -> datetime | None:
        """One pass: recover after a crash, read what changed in the calendar, apply
        configuration changes, bring the calendar up to date, send what is due. Returns
        when the next message falls due."""
        inputs, changed = self.deps.source.current()
        if not self.recovered:
            recover_in_flight(self.deps, now)
            self.recovered = True
        observed = pull_calendar(self.deps, inputs, now) if self.deps.calendar else False
        if changed or observed or not self.reconciled:
            self.unplanned = reconcile(self.deps, inputs, now)
            self.reconciled = True
        if self.deps.calendar:
            push_calendar(self.deps, inputs, now)
        send_due(self.deps, inputs, now)
        if plan_digest(self.deps, inputs.cohort, self.attention(), now):
            send_due(self.deps, inputs, now)
        return self.deps.store.next_due()

    def attention(self) -> list[dict[str, str]]:
        store = self.deps.store
        return attention_items(self.unplanned, store.messages_needing_a_human(), self.deps.source.problems, store.alerts())


def reconcile(deps: Deps, inputs: Inputs, now: datetime) -> dict[str, str]:
    """Book sessions for pairs that have none, cancel those of removed pairs, and bring
    every pair's planned messages in line with its sessions. Returns the pairs that
    could not be planned, with the reason."""
    store, cohort = deps.store, inputs.cohort
    active = {pair.id for pair in cohort.pairs}
    store.remember_pairs(cohort.pairs, now)
    records = by_pair(store.sessions())
    for pair_id, pair_records in records.items():
        if pair_id not in active and any(not r.cancelled for r in pair_records):
            store.cancel_pair(pair_id, now, "the pair was removed from the pairings")
            deps.log(now, f"cancelled the sessions of {pair_id}: removed from the pairings")
    booked = {
        pair_id: tuple(r.session for r in pair_records)
        for pair_id, pair_records in records.items()
        if pair_id in active and len(pair_records) == 2 and not any(r.cancelled for r in pair_records)
    }
    held = {pair_id for pair_id, pair_records in records.items() if any(r.held for r in pair_records)}
    if held:  # waiting for the coordinator: not booked again behind their back
        cohort = replace(cohort, pairs=tuple(p for p in cohort.pairs if p.id not in held))
    waiting = [p for p in cohort.pairs if p.id not in booked]
    # Only people who still need a time are asked about: nobody else's busy time matters.
    busy = busy_now(deps, inputs, now, {person.email for p in waiting for person in p.people}) if waiting else inputs.busy
    plan = plan_sessions(cohort, busy, now=now, booked=booked)
    new = [item for item in plan.pairs if item.sessions and item.pair.id not in booked]
    if new:
        store.book([s for item in new for s in item.sessions], now)
        for item in new:
            deps.log(now, f"booked {item.pair.id}: " + "; ".join(f"session {s.number} {s.start:%Y-%m-%d %H:%M} UTC" for s in item.sessions))
    sync_messages(deps, inputs.cohort, now)
    return {item.pair.id: item.problems[0] for item in plan.pairs if item.problems}


def busy_now(deps: Deps, inputs: Inputs, now: datetime, emails: set[str]) -> Busy:
    """Declared busy time (.ics files), plus Google free/busy of `emails` where it can be
    read, from the program's start (or now) to its end."""
    if deps.free_busy is None or not emails:
        return inputs.busy
    cohort = inputs.cohort
    start = max(now, local_moment(cohort.start, time(0), cohort.timezone))
    end = local_moment(cohort.end + timedelta(days=1), time(0), cohort.timezone)
    if start >= end:
        return inputs.busy
    try:
        seen, unreadable = deps.free_busy.busy(sorted(emails), start, end)
    except Exception as error:  # the plan can still be made from declared hours
        deps.log(now, f"free/busy unavailable ({error}); planning with declared hours")
        return inputs.busy
    busy = dict(inputs.busy)
    for email, intervals in seen.items():
        busy[email] = list(busy.get(email, ())) + intervals
    if unreadable:
        deps.log(now, f"free/busy unreadable for {len(unreadable)} people: their declared hours are used")
    return busy


def push_calendar(deps: Deps, inputs: Inputs, now: datetime) -> None:
    """Create, move or cancel the events of sessions the calendar does not show yet."""
    store, cohort, calendar = deps.store, inputs.cohort, deps.calendar
    behind = store.sessions_out_of_calendar()
    if not behind:
        return
    current = {p.id: p for p in cohort.pairs}
    pairs = {**store.known_pairs({r.session.pair_id for r in behind} - current.keys()), **current}
    live = {event_id(cohort.name, r.session.pair_id, r.session.number): r for r in behind if not r.cancelled}
    gone = {event_id(cohort.name, r.session.pair_id, r.session.number): r for r in behind if r.cancelled}
    requests = [_event_request(cohort, inputs.templates, pairs[r.session.pair_id], r, key) for key, r in live.items()]
    for key, outcome in calendar.put(requests).items():
        record = live[key]
        where = f"session {record.session.number} of {record.session.pair_id}"
        if isinstance(outcome, CalendarError):
            deps.log(now, f"calendar: could not write {where} ({outcome.reason}); trying again later")
            continue
        store.event_written(record.session.pair_id, record.session.number, record.sequence, outcome, now)
        deps.log(now, f"calendar: {where} at {record.session.start:%Y-%m-%d %H:%M} UTC" + (" with Meet" if outcome.meet_link else ""))
    existing = [key for key, r in gone.items() if r.event_sequence >= 0]
    removed = calendar.remove(existing) if existing else {}
    for key, record in gone.items():
        error = removed.get(key)
        if error is not None:
            deps.log(now, f"calendar: could not cancel session {record.session.number} of {record.session.pair_id} ({error.reason})")
            continue
        store.event_written(record.session.pair_id, record.session.number, record.sequence, None, now)


def pull_calendar(deps: Deps, inputs: Inputs, now: datetime) -> bool:
    """Read what people changed in the calendar since last time; returns whether any
    session moved or went away (the plan and the emails then follow)."""
    store, cohort = deps.store, inputs.cohort
    try:
        events, token = deps.calendar.changes(store.calendar_token())
    except CalendarError as error:
        deps.log(now, f"calendar: cannot read changes ({error.reason}); trying again later")
        return False
    records = {event_id(cohort.name, r.session.pair_id, r.session.number): r for r in store.sessions()}
    current = {p.id: p for p in cohort.pairs}
    changed = False
    for event in events:
        record = records.get(event.event_id)
        if record is None:
            continue
        session = record.session
        store.event_seen(session.pair_id, session.number, event)
        if dict(event.responses) != dict(record.responses):
            changed = True  # an answer came in: reminders follow it
        pair = current.get(session.pair_id)
        if pair is None or not record.in_calendar:
            continue  # a removed pair, or our own change is still on its way
        what = observe(pair, start=session.start, end=session.end, we_cancelled=record.cancelled, event=event)
        if isinstance(what, Moved):
            moved = Session(pair_id=session.pair_id, number=session.number, start=what.start, end=what.end)
            store.move(moved, now, "the event was moved in Google Calendar", seen_in_calendar=True)
            deps.log(now, f"calendar: session {session.number} of {session.pair_id} was moved to {what.start:%Y-%m-%d %H:%M} UTC")
            changed = True
        elif isinstance(what, Declined):
            refused = next(p.email for p in pair.people if p.name == what.who)
            changed |= rebook(deps, inputs, record, now, reason=f"{what.who} declined the first time", refused_by=refused)
        elif isinstance(what, Deleted):
            if cohort.rebook_deleted:
                changed |= rebook(deps, inputs, record, now, reason="the event was deleted in Google Calendar")
            else:
                store.set_alert(
                    f"{session.pair_id}/{session.number}",
                    f"Session {session.number} was deleted in Google Calendar; it was not booked again.",
                )
                store.cancel_pair(session.pair_id, now, "a session was deleted in Google Calendar", held=True)
                changed = True
    store.set_calendar_token(token)
    return changed


MAX_REBOOKS = 2  # after this many declines of one session, a human decides


def rebook(deps: Deps, inputs: Inputs, record: SessionRecord, now: datetime, *, reason: str, refused_by: str | None = None) -> bool:
    """Another time for a session, around everything else booked; a human is asked
    when there is none or the session keeps being declined."""
    store, cohort = deps.store, inputs.cohort
    session = record.session
    alert_key = f"{session.pair_id}/{session.number}"
    if record.rebooks >= MAX_REBOOKS:
        store.set_alert(alert_key, f"Session {session.number} was declined {record.rebooks + 1} times; please agree a time with them.")
        return False
    booked = {
        pair_id: tuple(r.session for r in records if not r.cancelled and r.session != session)
        for pair_id, records in by_pair(store.sessions()).items()
    }
    pair = next(p for p in cohort.pairs if p.id == session.pair_id)
    busy = dict(busy_now(deps, inputs, now, {person.email for person in pair.people}))
    if refused_by:
        busy[refused_by] = list(busy.get(refused_by, ())) + [(session.start, session.end)]
    new = replan_session(cohort, busy, pair_id=session.pair_id, number=session.number, booked=booked, now=now)
    if new is None:
        store.set_alert(alert_key, f"Session {session.number}: {reason}, and no other time fits both; please agree a time with them.")
        return False
    store.move(new, now, reason, rebook=True)
    store.set_alert(alert_key, None)
    deps.log(now, f"rebooked session {session.number} of {session.pair_id} at {new.start:%Y-%m-%d %H:%M} UTC: {reason}")
    return True


def _event_request(cohort: Cohort, templates: Templates, pair: Pair, record: SessionRecord, key: str) -> EventRequest:
    session = record.session
    context = pair_context(cohort, pair, (session, session), Role.MENTOR, stage=f"session{session.number}_invitation")
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


def sync_messages(deps: Deps, cohort: Cohort, now: datetime) -> None:
    store = deps.store
    records = by_pair(store.sessions())
    current = {p.id: p for p in cohort.pairs}
    pairs = {**store.known_pairs(set(records) - current.keys()), **current}
    pair_ids = sorted(records)
    for start in range(0, len(pair_ids), CHUNK):
        chunk = pair_ids[start : start + CHUNK]
        stored = store.messages(chunk)
        received = handed_over(stored)
        wanted: list[Wanted] = []
        for pair_id in chunk:
            wanted += wanted_for_pair(cohort, pairs[pair_id], records[pair_id], received)
        store.apply(changes(wanted, stored), now)


def recover_in_flight(deps: Deps, now: datetime) -> None:
    """Messages left `sending` by a stopped process are never resent blindly: they wait
    to be checked with the transport, or, if it cannot tell, are held as uncertain."""
    for row in deps.store.in_flight():
        _maybe_sent(deps, row, "the process stopped while sending it", now)


def _maybe_sent(deps: Deps, row: MessageRow, why: str, now: datetime) -> None:
    if deps.mailer.verify_after is None:
        deps.store.mark_uncertain(row, f"{why}; it may or may not have gone out", now)
        deps.log(now, f"UNCERTAIN {row.stage} to {row.recipient}: {why}; left for the coordinator")
    else:
        deps.store.mark_verify(row, now + deps.mailer.verify_after, why, now)
        deps.log(now, f"will check whether {row.stage} to {row.recipient} went out: {why}")


def send_due(deps: Deps, inputs: Inputs, now: datetime) -> int:
    """Send every message whose time has come. Returns how many went out."""
    store, cohort = deps.store, inputs.cohort
    current = {p.id: p for p in cohort.pairs}
    sent = 0
    while not deps.stop.is_set():
        rows = store.due(now, deps.batch)
        if not rows:
            break
        # Only what this batch needs: pairs removed from the pairings come from the store.
        needed = {row.pair_id for row in rows if row.pair_id}
        pairs = {**store.known_pairs(needed - current.keys()), **current}
        records = by_pair(store.sessions(needed))
        with deps.mailer.connect() as connection:
            for row in rows:
                if deps.stop.is_set():
                    break
                sent += _send_one(deps, inputs, pairs, records, row, connection, now)
    return sent


def _send_one(deps: Deps, inputs: Inputs, pairs, records, row: MessageRow, connection, now: datetime) -> int:
    store = deps.store
    if row.verify:  # first settle whether an earlier attempt went out, late or not
        verdict = deps.mailer.was_sent(row.message_id or "")
        if verdict is True:
            store.mark_sent(row, now, was=State.PLANNED)
            deps.log(now, f"confirmed {row.stage} to {row.recipient} went out before")
            return 0
        if verdict is None:
            store.mark_uncertain(row, f"{row.last_error}; the transport cannot tell whether it went out", now, was=State.PLANNED)
            deps.log(now, f"UNCERTAIN {row.stage} to {row.recipient}: left for the coordinator")
            return 0
        # It surely never left: treat it as any planned message.
    if row.expires is not None and now >= row.expires:
        store.mark_skipped(row, "its session had already started", now)
        deps.log(now, f"skipped {row.stage} to {row.recipient}: too late to be useful")
        return 0
    try:
        message = _compose(inputs, pairs, records, row, now, store)
    except TemplateProblem as problem:
        store.mark_failed(row, f"template: {problem}", now, was=State.PLANNED)
        deps.log(now, f"FAILED {row.stage} to {row.recipient}: {problem}")
        return 0
    store.mark_sending(row, message["Message-ID"], now)  # committed before the transport is called
    try:
        connection.send(message)
    except MailError as error:
        _after_failure(deps, row, error, now)
        return 0
    store.mark_sent(row, now)
    deps.log(now, f"sent {row.stage} to {row.recipient}" + (f" ({row.pair_id})" if row.pair_id else ""))
    return 1


def _after_failure(deps: Deps, row: MessageRow, error: MailError, now: datetime) -> None:
    store = deps.store
    if error.kind == MailError.UNKNOWN:
        _maybe_sent(deps, row, error.reason, now)
        return
    decision = retry_decision(attempts=row.attempts + 1, now=now, key="/".join(map(str, row.key)))
    if error.kind == MailError.PERMANENT or isinstance(decision, GiveUp):
        reason = error.reason if error.kind == MailError.PERMANENT else f"{error.reason}; {decision.reason}"
        store.mark_failed(row, reason, now)
        deps.log(now, f"FAILED {row.stage} to {row.recipient}: {reason}")
    else:
        store.mark_retry(row, decision.at, error.reason, now)
        deps.log(now, f"will retry {row.stage} to {row.recipient} at {decision.at:%Y-%m-%d %H:%M} UTC: {error.reason}")


def _compose(inputs: Inputs, pairs: dict[str, Pair], records: dict[str, list[SessionRecord]], row: MessageRow, now: datetime, store):
    cohort = inputs.cohort
    if row.stage == DIGEST:
        return compose_digest(cohort, store.digest_content(row.revision), inputs.templates, stamp=now, day=row.revision)
    pair = pairs[row.pair_id]
    pair_records = records[row.pair_id]
    change = None
    role = Role(row.role)
    moved = UPDATES.get(row.stage) or (INVITATIONS.get(row.stage) if row.revision else None)
    if moved:
        record = pair_records[moved - 1]
        reader, partner = (pair.mentor, pair.mentee) if role is Role.MENTOR else (pair.mentee, pair.mentor)
        change = Change(
            session=session_view(record.session, reader, partner, cohort.link_for(pair)),
            old_when=span(record.previous_start, record.previous_start + (record.session.end - record.session.start), reader.timezone)
            if record.previous_start
            else None,
            reason=record.change_reason or "the session was changed",
        )
    return compose(
        cohort,
        pair,
        tuple(r.session for r in pair_records),
        stage=row.stage,
        role=role,
        templates=inputs.templates,
        stamp=now,
        revision=row.revision,
        change=change,
        links=tuple(r.meet_link for r in pair_records),
    )


def attention_items(
    unplanned: dict[str, str], rows: list[MessageRow], config_problems: list[str], alerts: dict[str, str]
) -> list[dict[str, str]]:
    """What needs a human, as sentences: for `status` and the coordinator's digest."""
    items = [{"pair_id": "", "summary": f"The last edit of the configuration was not applied: {p}"} for p in config_problems]
    items += [{"pair_id": key.split("/")[0], "summary": text} for key, text in sorted(alerts.items())]
    items += [{"pair_id": pair_id, "summary": f"Not scheduled: {reason}."} for pair_id, reason in sorted(unplanned.items())]
    for row in rows:
        what = f"The {row.stage.replace('_', ' ')} email to {row.recipient}"
        if row.state is State.UNCERTAIN:
            summary = f"{what} may or may not have gone out ({row.last_error}). Ask them, then resolve it."
        else:
            summary = f"{what} could not be sent: {row.last_error}."
        items.append({"pair_id": row.pair_id, "summary": summary})
    return items


def plan_digest(deps: Deps, cohort: Cohort, attention: list[dict[str, str]], now: datetime) -> bool:
    """At most one digest a day, and only when there is something new to say. Returns
    whether one was planned."""
    if not attention:
        return False
    store = deps.store
    fingerprint = json.dumps(sorted(item["summary"] for item in attention))
    today = local(now, cohort.timezone).date()
    day = today.toordinal()
    last, planned_today = store.digest_state(day)
    if last == fingerprint or planned_today:
        return False  # nothing new, or today's digest exists and tomorrow's will carry the news
    morning = local_moment(today, MORNING, cohort.timezone)
    wanted = Wanted(
        due=max(now, morning),
        pair_id="",
        stage=DIGEST,
        recipient=cohort.coordinator.email,
        revision=day,
        role=Role.COORDINATOR,
    )
    store.add_digest(wanted, attention, fingerprint, now)
    deps.log(now, f"digest for {cohort.coordinator.email}: {len(attention)} item(s) need attention")
    return True
