"""Use cases of the daemon: close the gap between what should exist and what does.

Every step reads the state it needs from the store, decides with pure domain functions
and writes the outcome back, one transaction per effect. Running a tick twice, in another
process, or after a crash at any point leads to the same result.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Protocol

from .domain.model import Cohort, Pair, Role
from .domain.outbox import (
    MessageRow,
    SessionRecord,
    State,
    Wanted,
    by_pair,
    changes,
    handed_over,
    wanted_for_pair,
)
from .domain.planning import Busy, plan_sessions
from .domain.ports import Mailer, MailError, Store
from .domain.retry import GiveUp, retry_decision
from .domain.timeline import INVITATIONS, MORNING
from .domain.availability import local_moment
from .mail.compose import compose, compose_digest
from .mail.context import Change, session_view
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


class Controller:
    """The daemon's memory between ticks: only what can be recomputed at any time."""

    def __init__(self, deps: Deps):
        self.deps = deps
        self.unplanned: dict[str, str] = {}  # pair id -> why it has no sessions
        self.reconciled = False
        self.recovered = False

    def tick(self, now: datetime) -> datetime | None:
        """One pass: recover after a crash, apply configuration changes, send what is due.
        Returns when the next message falls due."""
        inputs, changed = self.deps.source.current()
        if not self.recovered:
            recover_in_flight(self.deps, now)
            self.recovered = True
        if changed or not self.reconciled:
            self.unplanned = reconcile(self.deps, inputs, now)
            self.reconciled = True
        send_due(self.deps, inputs, now)
        if plan_digest(self.deps, inputs.cohort, self.attention(), now):
            send_due(self.deps, inputs, now)
        return self.deps.store.next_due()

    def attention(self) -> list[dict[str, str]]:
        return attention_items(self.unplanned, self.deps.store.messages_needing_a_human(), self.deps.source.problems)


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
    plan = plan_sessions(cohort, inputs.busy, now=now, booked=booked)
    new = [item for item in plan.pairs if item.sessions and item.pair.id not in booked]
    if new:
        store.book([s for item in new for s in item.sessions], now)
        for item in new:
            deps.log(now, f"booked {item.pair.id}: " + "; ".join(f"session {s.number} {s.start:%Y-%m-%d %H:%M} UTC" for s in item.sessions))
    sync_messages(deps, cohort, now)
    return {item.pair.id: item.problems[0] for item in plan.pairs if item.problems}


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
    """Messages left `sending` by a stopped process: never resent blindly. The transport
    is asked; if it cannot tell, the message is held as uncertain for the coordinator."""
    for row in deps.store.in_flight():
        verdict = deps.mailer.was_sent(row.message_id or "")
        if verdict is True:
            deps.store.mark_sent(row, now)
            deps.log(now, f"confirmed {row.stage} to {row.recipient} was sent before the restart")
        elif verdict is False:
            deps.store.mark_retry(row, now, "the process stopped before handing it over", now)
            deps.log(now, f"will send {row.stage} to {row.recipient}: it never left before the restart")
        else:
            deps.store.mark_uncertain(row, "the process stopped while sending; it may or may not have gone out", now)
            deps.log(now, f"UNCERTAIN {row.stage} to {row.recipient}: stopped mid-send, left for the coordinator")


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
        store.mark_uncertain(row, error.reason, now)
        deps.log(now, f"UNCERTAIN {row.stage} to {row.recipient}: {error.reason}")
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
    if row.stage in INVITATIONS and row.revision:
        record = pair_records[INVITATIONS[row.stage] - 1]
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
    )


def attention_items(unplanned: dict[str, str], rows: list[MessageRow], config_problems: list[str]) -> list[dict[str, str]]:
    """What needs a human, as sentences: for `status` and the coordinator's digest."""
    items = [{"pair_id": "", "summary": f"The last edit of the configuration was not applied: {p}"} for p in config_problems]
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

