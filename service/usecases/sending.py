"""Sending: every message whose time has come goes out exactly once. `sending` is
committed before the transport is called; a send cut short is checked, never repeated
blindly."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

from ..domain import budget
from ..domain.attendance import Attendance
from ..domain.bookings import bookings
from ..domain.goals import Goals
from ..domain.model import Pair, Session
from ..domain.outbox import MessageRow, SessionRecord, State, by_pair
from ..domain.planning import alternatives
from ..domain.ports import MailConnection, MailError, Store
from ..domain.retry import CheckAt, Delivery, GiveUp, HoldUncertain, RetryAt, after_failure, maybe_sent
from ..domain.stages import Kind, Stage
from ..logs import event
from ..mail import wording
from ..mail.compose import compose, compose_digest
from ..mail.context import change_view
from ..mail.links import PersonalLinks
from ..mail.templates import TemplateProblem
from .attendance import GONE
from .booking import pairs_by_id, sync_messages
from .deps import Deps, Inputs, LockLost


def recover_in_flight(deps: Deps, now: datetime) -> None:
    """Messages left `sending` by a stopped process are never resent blindly: they wait
    to be checked with the transport, or, if it cannot tell, are held as uncertain."""
    for row in deps.store.in_flight():
        _settle(deps, row, maybe_sent("the process stopped while sending it", now=now, verify_after=deps.mailer.verify_after), now)


MAIL_DOWN_WAIT = timedelta(minutes=5)  # between probes of a mail transport that is down
# After session 1 both are asked to write down their goals and homework; later emails quote them.
ASK_FOR_GOALS = frozenset({Stage.SESSION1_FOLLOWUP, Stage.HOMEWORK_CHECKIN})
QUOTE_GOALS = frozenset({Stage.HOMEWORK_CHECKIN, Stage.SESSION2_PREP, Stage.FOLLOW_UP})
# The first email after each session asks "Did you meet?" where no Meet room will tell.
ASK_IF_MET = frozenset({Stage.SESSION1_FOLLOWUP, Stage.PROGRAM_WRAPUP})


@dataclass(frozen=True)
class Sent:
    count: int  # how many went out
    down: bool = False  # the transport as a whole refused: try again after MAIL_DOWN_WAIT
    until: datetime | None = None  # the transport said when it takes mail again


def send_due(deps: Deps, inputs: Inputs, now: datetime) -> Sent:
    """Send every message whose time has come."""
    store = deps.store
    sent = 0
    recent = _recent_sends(deps, now)
    while not deps.stop.is_set():
        rows = store.due(now, deps.batch)
        if not rows:
            break
        waiting = [row for row in rows if row.verify]
        if waiting:  # first settle whether earlier attempts went out, late or not
            if _check(deps, waiting, now):
                sync_messages(deps, inputs, now)  # those that never left: wanted still, as things are now?
            continue
        if deps.budget is not None:
            rows = _within_budget(deps, deps.budget, rows, recent, now)
            if not rows:
                continue  # all held back for now: the next ones due, if any
        # Only what this batch needs: pairs removed from the pairings come from the store.
        needed = {row.pair_id for row in rows if row.pair_id}
        pairs = pairs_by_id(deps.store, inputs.cohort, needed)
        records = by_pair(store.sessions(needed))
        group: list[MessageRow] = []  # sent as a group, when each send can be checked afterwards
        try:
            with deps.mailer.connect() as connection:
                if deps.mailer.verify_after is not None:
                    _send_group(deps, inputs, pairs, records, rows, connection, now, group)
                else:  # never more than one message in flight that nobody could check
                    for row in rows:
                        if deps.stop.is_set():
                            break
                        _check_lock(store)
                        went = _send_one(deps, inputs, pairs, records, row, connection, now)
                        sent += went
                        if went:
                            recent.append(budget.Sent(now, row.recipient))
        except MailError as down:  # the transport as a whole: one probe a tick, no attempt spent
            if not down.transport:
                raise
            store.set_alert("", 0, wording.mail_down(down.reason))
            again = f"at {down.until:%Y-%m-%d %H:%M} UTC" if down.until else "in a few minutes"
            event(now, "mail_down", f"mail cannot go out: {down.reason}; trying again {again}", level=logging.WARNING)
            return Sent(sent + len(group), down=True, until=down.until)
        sent += len(group)
        recent += [budget.Sent(now, row.recipient) for row in group]
        if sent:
            store.set_alert("", 0, None)
    return Sent(sent)


def _recent_sends(deps: Deps, now: datetime) -> list[budget.Sent]:
    """What the mailbox sent in the last day, as its daily limits count it."""
    if deps.budget is None:
        return []
    return [budget.Sent(at, recipient) for at, recipient in deps.store.sent_since(now - budget.WINDOW) if at > now - budget.WINDOW]


def _within_budget(deps: Deps, limits: budget.Budget, rows: list[MessageRow], recent: list[budget.Sent], now: datetime) -> list[MessageRow]:
    """The rows the day's allowance has room for; the others wait for room."""
    decision = budget.decide(limits, rows, recent, now)
    for row, at in decision.later:
        deps.store.postpone(row, at, now)
        event(
            now,
            "message_postponed",
            f"{row.stage} to {row.recipient} waits until {at:%Y-%m-%d %H:%M} UTC: the day's sending allowance is used",
            wake_at=at,
            **_fields(row),
        )
    return decision.now


def _check(deps: Deps, rows: list[MessageRow], now: datetime) -> bool:
    """Ask the transport about sends cut short. Returns whether any surely never left:
    those become planned messages again, for the outbox to keep or cancel."""
    store, unsent = deps.store, False
    for row in rows:
        fields = _fields(row)
        verdict = deps.mailer.was_sent(row.message_id or "")
        if verdict is True:
            store.mark_sent(row, now, was=State.PLANNED)
            event(now, "message_confirmed", f"confirmed {row.stage} to {row.recipient} went out before", state=State.SENT, **fields)
        elif verdict is None:
            store.mark_uncertain(row, f"{row.last_error}; the transport cannot tell whether it went out", now, was=State.PLANNED)
            event(
                now,
                "message_uncertain",
                f"UNCERTAIN {row.stage} to {row.recipient}: left for the coordinator",
                level=logging.WARNING,
                state=State.UNCERTAIN,
                **fields,
            )
        else:
            store.mark_unsent(row, now)
            event(now, "message_unsent", f"{row.stage} to {row.recipient} never left", state=State.PLANNED, **fields)
            unsent = True
    return unsent


def _check_lock(store: Store) -> None:
    if not store.lock_held():  # never send without being the only daemon
        raise LockLost("the state's lock was lost (its database connection dropped)")


def _send_group(
    deps: Deps,
    inputs: Inputs,
    pairs: Mapping[str, Pair],
    records: Mapping[str, list[SessionRecord]],
    rows: list[MessageRow],
    connection: MailConnection,
    now: datetime,
    done: list[MessageRow],
) -> None:
    """For a transport that can tell afterwards whether a message went out: the
    `sending` marks of the whole batch in one commit before the first send, the `sent`
    marks in one commit after the last. Stopped or cut short in between, the messages
    already sent are marked sent and the rest released; a crash leaves them `sending`,
    and recover_in_flight has each checked with the transport before anything else, so
    none goes twice and none is lost. The messages sent are added to `done`."""
    store = deps.store
    connection.ready()  # a transport that is down raises here, before any row is touched
    prepared = [(row, message) for row in rows if (message := _prepare(deps, inputs, pairs, records, row, now)) is not None]
    if not prepared:
        return
    _check_lock(store)
    store.mark_sending_many([(row, message["Message-ID"]) for row, message in prepared], now)
    handed = 0
    try:
        for row, message in prepared:
            if deps.stop.is_set():
                break
            _check_lock(store)
            handed += 1
            _send_one(deps, inputs, pairs, records, row, connection, now, prepared=message, group=done)
    finally:  # stopped, or the transport went down: settled now, as far as this daemon still may
        if store.lock_held():  # else another daemon may own the state: it checks what was left `sending`
            if done:
                store.mark_sent_many(done, now)
            if prepared[handed:]:
                store.mark_released([row for row, _ in prepared[handed:]], now)
            for row in done:
                _sent_event(row, now)


def _prepare(
    deps: Deps, inputs: Inputs, pairs: Mapping[str, Pair], records: Mapping[str, list[SessionRecord]], row: MessageRow, now: datetime
) -> EmailMessage | None:
    """The message for a row, or None when it is not to be sent (too late, or it cannot
    be built), with the row settled."""
    store = deps.store
    fields = _fields(row)
    if row.expires is not None and now >= row.expires:
        store.mark_skipped(row, "its session had already started", now)
        event(now, "message_skipped", f"skipped {row.stage} to {row.recipient}: too late to be useful", state=State.SKIPPED, **fields)
        return None
    stored = _read_for(store, inputs, records, row, now)  # outside the try: a database that fails is an outage
    try:
        return _compose(deps.links, inputs, pairs, records, row, now, stored)
    except Exception as problem:  # a broken template, or an address no email can carry
        built = isinstance(problem, TemplateProblem)
        reason = f"template: {problem}" if built else f"the email could not be built ({type(problem).__name__})"
        store.mark_failed(row, reason, now, was=State.PLANNED)
        event(
            now, "message_failed", f"FAILED {row.stage} to {row.recipient}: {reason}", level=logging.WARNING, state=State.FAILED, **fields
        )
        return None


def _send_one(
    deps: Deps,
    inputs: Inputs,
    pairs: Mapping[str, Pair],
    records: Mapping[str, list[SessionRecord]],
    row: MessageRow,
    connection: MailConnection,
    now: datetime,
    *,
    prepared: EmailMessage | None = None,
    group: list[MessageRow] | None = None,
) -> int:
    """One message handed to the transport. In a group (_send_group) it comes built and
    already `sending`, and is added to `group` for the group's `sent` commit."""
    store = deps.store
    message = prepared or _prepare(deps, inputs, pairs, records, row, now)
    if message is None:
        return 0
    if group is None:
        connection.ready()  # a transport that is down raises here, before the row is touched
        store.mark_sending(row, message["Message-ID"], now)  # committed before the transport is called
    try:
        connection.send(message)
    except Exception as raised:  # whatever happens, the row is settled now, never left `sending`
        if isinstance(raised, MailError) and raised.transport and raised.kind is not Delivery.UNKNOWN:
            _settle(deps, row, RetryAt(max(now, raised.until or now), raised.reason), now)  # not this message's fault: straight back
            raise
        failure = (
            raised if isinstance(raised, MailError) else MailError(MailError.UNKNOWN, f"the transport failed ({type(raised).__name__})")
        )
        decision = after_failure(
            failure.kind,
            failure.reason,
            attempts=row.attempts + 1,
            now=now,
            key="/".join(map(str, row.key)),
            verify_after=deps.mailer.verify_after,
        )
        _settle(deps, row, decision, now)
        return 0
    if group is not None:
        group.append(row)
        return 1
    store.mark_sent(row, now)
    _sent_event(row, now)
    return 1


def _sent_event(row: MessageRow, now: datetime) -> None:
    event(
        now,
        "message_sent",
        f"sent {row.stage} to {row.recipient}" + (f" ({row.pair_id})" if row.pair_id else ""),
        state=State.SENT,
        **_fields(row),
    )


def _settle(deps: Deps, row: MessageRow, decision: RetryAt | GiveUp | CheckAt | HoldUncertain, now: datetime) -> None:
    """Record what happens next to a message whose send failed or was cut short."""
    store, fields = deps.store, _fields(row)
    if isinstance(decision, HoldUncertain):
        store.mark_uncertain(row, decision.reason, now)
        event(
            now,
            "message_uncertain",
            f"UNCERTAIN {row.stage} to {row.recipient}: {decision.reason}; left for the coordinator",
            level=logging.WARNING,
            state=State.UNCERTAIN,
            **fields,
        )
    elif isinstance(decision, CheckAt):
        store.mark_verify(row, decision.at, decision.reason, now)
        event(
            now,
            "message_to_check",
            f"will check whether {row.stage} to {row.recipient} went out: {decision.reason}",
            check_at=decision.at,
            state=State.PLANNED,
            **fields,
        )
    elif isinstance(decision, GiveUp):
        store.mark_failed(row, decision.reason, now)
        event(
            now,
            "message_failed",
            f"FAILED {row.stage} to {row.recipient}: {decision.reason}",
            level=logging.WARNING,
            state=State.FAILED,
            **fields,
        )
    else:
        store.mark_retry(row, decision.at, decision.reason, now)
        event(
            now,
            "message_retry",
            f"will retry {row.stage} to {row.recipient} at {decision.at:%Y-%m-%d %H:%M} UTC: {decision.reason}",
            retry_at=decision.at,
            state=State.PLANNED,
            **fields,
        )


def _fields(row: MessageRow) -> dict[str, Any]:
    return {
        "pair": row.pair_id,
        "stage": row.stage.value,
        "recipient": row.recipient,
        "revision": row.revision,
        "attempt": row.attempts + 1,
    }


def written_now(store: Store, links: PersonalLinks | None, inputs: Inputs, row: MessageRow, now: datetime) -> EmailMessage:
    """A stored email as it would be written at `now` (the pair page shows it); TemplateProblem
    or KeyError (a pair no longer known) when it cannot be."""
    pairs = {**store.known_pairs([row.pair_id]), **{p.id: p for p in inputs.cohort.pairs if p.id == row.pair_id}}
    records = by_pair(store.sessions([row.pair_id]))
    return _compose(links, inputs, pairs, records, row, now, _read_for(store, inputs, records, row, now))


@dataclass(frozen=True)
class _Stored:
    """What an email needs from the store besides its pair and sessions, read before it is
    written: a database that fails then stops the tick (the row stays planned) instead of
    passing for an email that cannot be built."""

    digest: list[dict[str, str]] = field(default_factory=list)  # what the coordinator's digest says
    other_times: tuple[Session, ...] = ()  # times a session could move to
    goals: Goals | None = None  # what the pair wrote down, to quote


def _read_for(store: Store, inputs: Inputs, records: Mapping[str, list[SessionRecord]], row: MessageRow, now: datetime) -> _Stored:
    if row.stage is Stage.COORDINATOR_DIGEST:
        return _Stored(digest=store.digest_content(row.revision))
    info, pair_records = row.stage.info, records.get(row.pair_id, [])
    asked = info.kind is Kind.OTHER_TIMES and info.session and len(pair_records) >= info.session
    return _Stored(
        other_times=_other_times(store, inputs, pair_records[info.session - 1], now) if asked and info.session else (),
        goals=store.goals([row.pair_id]).get(row.pair_id) if row.stage in QUOTE_GOALS else None,
    )


def _compose(
    links: PersonalLinks | None,
    inputs: Inputs,
    pairs: Mapping[str, Pair],
    records: Mapping[str, list[SessionRecord]],
    row: MessageRow,
    now: datetime,
    stored: _Stored,
) -> EmailMessage:
    cohort = inputs.cohort
    if row.stage is Stage.COORDINATOR_DIGEST:
        return compose_digest(cohort, stored.digest, inputs.templates, stamp=now, day=row.revision)
    pair = pairs[row.pair_id]
    pair_records = records[row.pair_id]
    info = row.stage.info
    # An update, or an invitation sent again because its session moved, says what changed.
    moved = info.session if info.kind is Kind.UPDATE or (info.kind is Kind.INVITATION and row.revision) else None
    change = change_view(cohort, pair, pair_records[moved - 1], row.role) if moved else None
    # Emails before a session carry the reader's "Can't make it?" link to the web pages.
    ahead = info.session and info.expires_at == info.session and info.kind is not Kind.CANCELLATION
    record = pair_records[info.session - 1] if ahead and info.session and len(pair_records) >= info.session else None
    cant_make_it = links.session(record, row.recipient) if links and record and not record.cancelled else None
    goals_link = links.goals(cohort, pair.id, row.recipient) if links and row.stage in ASK_FOR_GOALS else None
    missed = tuple(r.session.number for r in pair_records if r.attended is Attendance.MISSED)
    rebook = said = met_link = None
    if info.kind is Kind.MISSED and info.session:
        missed_record = pair_records[info.session - 1]
        if links:  # one step to book the missed session again
            rebook = links.rebook(missed_record, row.recipient, now)
        if missed_record.attendance and missed_record.attendance.reported_by:
            said = "you" if missed_record.attendance.reported_by.casefold() == row.recipient.casefold() else "partner"
    if row.stage in ASK_IF_MET and info.session and links:
        met_record = pair_records[info.session - 1]
        if _unknown_attendance(met_record):
            met_link = links.met(met_record, row.recipient)
    return compose(
        cohort,
        pair,
        tuple(r.session for r in pair_records),
        stage=row.stage,
        role=row.role,
        templates=inputs.templates,
        stamp=now,
        revision=row.revision,
        change=change,
        links=tuple(r.meet_link for r in pair_records),
        other_times=stored.other_times,
        recipient=row.recipient,
        cant_make_it=cant_make_it,
        goals=stored.goals,
        goals_link=goals_link,
        missed=missed,
        rebook=rebook,
        said=said,
        met_link=met_link,
    )


def _unknown_attendance(record: SessionRecord) -> bool:
    """Nobody has said whether the session took place, and no Meet room will tell."""
    no_room = not (record.meet_link or record.meet_space) or (record.meet_space or "").startswith(GONE)
    return not record.cancelled and record.attended is None and no_room


def _other_times(store: Store, inputs: Inputs, record: SessionRecord, now: datetime) -> tuple[Session, ...]:
    """Times the session could move to, as things stand when the email goes out."""
    session = record.session
    current = bookings(inputs.cohort, store.sessions(), withdrawn=store.withdrawn(), now=now)
    others = current.standing(but=session)
    found = alternatives(inputs.cohort, inputs.busy, pair_id=session.pair_id, number=session.number, booked=others, now=now)
    return tuple(found)
