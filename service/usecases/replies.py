"""Answers to invitations sent by email, read from the organiser's mailbox: a decline
rebooks the session, an acceptance is recorded, a proposed time is taken when it suits
both people, or answered with times that do."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from ..domain.bookings import bookings
from ..domain.model import Pair, Session
from ..domain.outbox import SessionRecord, by_pair
from ..domain.planning import misfit
from ..domain.ports import Replies, RepliesError
from ..domain.replies import Answer, Reply
from ..logs import event
from ..mail.invitation import event_uid
from .booking import rebook
from .deps import Deps, Inputs

RESPONSES = {Answer.ACCEPTED: "accepted", Answer.TENTATIVE: "tentative", Answer.DECLINED: "declined"}


def read_replies(deps: Deps, replies: Replies, inputs: Inputs, now: datetime) -> bool:
    """Apply every answer waiting in the mailbox; returns whether a session changed or an
    answer came in (the emails then follow)."""
    try:
        answers = replies.unread()
    except RepliesError as error:
        event(now, "mailbox_unreadable", f"mailbox: cannot read replies ({error}); trying again later", level=logging.WARNING)
        return False
    if not answers:
        return False
    cohort = inputs.cohort
    records = by_pair(deps.store.sessions([p.id for p in cohort.pairs]))
    sessions = {event_uid(cohort, pair, r.session.number): (pair, r) for pair in cohort.pairs for r in records.get(pair.id, [])}
    changed = False
    for reply in answers:
        found = sessions.get(reply.event_uid)
        if found is not None:
            changed |= _apply(deps, inputs, reply, *found, now)
        replies.done([reply.message])  # after its effect: a crash in between applies it again, harmlessly
    return changed


def _apply(deps: Deps, inputs: Inputs, reply: Reply, pair: Pair, record: SessionRecord, now: datetime) -> bool:
    store, session = deps.store, record.session
    person = next((p for p in pair.people if p.email.lower() == reply.attendee), None)
    fields: dict[str, Any] = {"pair": pair.id, "session": session.number, "answer": reply.answer.value}
    if person is None or reply.sender != reply.attendee:
        event(now, "reply_ignored", f"ignored an answer about session {session.number} of {pair.id}: not from one of its people", **fields)
        return False
    if record.cancelled or reply.sequence < record.sequence or session.start <= now:
        return False  # about a time that no longer stands, or too late to matter
    if reply.answer in RESPONSES:
        store.set_response(pair.id, session.number, person.email, RESPONSES[reply.answer], now)
        event(now, "reply_recorded", f"{person.name} {RESPONSES[reply.answer]} session {session.number} of {pair.id}", **fields)
    if reply.answer is Answer.DECLINED:
        rebook(deps, inputs, record, now, reason=f"{person.name} cannot make that time", refused_by=person.email)
    if reply.answer is Answer.COUNTER and reply.proposed is not None:
        return _counter(deps, inputs, reply, pair, person.name, person.email, record, now)
    return True


def _counter(deps: Deps, inputs: Inputs, reply: Reply, pair: Pair, name: str, email: str, record: SessionRecord, now: datetime) -> bool:
    """A proposed time is taken when it suits both and clashes with nothing; otherwise the
    proposer is sent times that do."""
    assert reply.proposed is not None
    store, session = deps.store, record.session
    start, end = reply.proposed
    proposed = Session(pair_id=pair.id, number=session.number, start=start, end=end)
    if start > now and misfit(pair, proposed, inputs.busy) is None and not _clashes(deps, inputs, pair, proposed, now):
        store.move(proposed, now, f"{name} proposed this time", agreed=True)
        event(
            now,
            "session_moved",
            f"moved session {session.number} of {pair.id} to {start:%Y-%m-%d %H:%M} UTC, as {name} proposed",
            pair=pair.id,
        )
    else:
        store.record_counter(pair.id, session.number, email, reply.message, now)
        event(
            now,
            "counter_declined",
            f"{name} proposed a time for session {session.number} of {pair.id} that does not suit both",
            pair=pair.id,
        )
    return True


def _clashes(deps: Deps, inputs: Inputs, pair: Pair, proposed: Session, now: datetime) -> bool:
    """Whether the proposed time overlaps another session of either person or of their room,
    or puts the two sessions too close (or out of order)."""
    cohort = inputs.cohort
    standing = bookings(cohort, deps.store.sessions(), withdrawn=deps.store.withdrawn(), now=now).standing()
    people, room = {p.email for p in pair.people}, cohort.link_for(pair)
    for other in cohort.pairs:
        shared = people & {p.email for p in other.people} or (room and cohort.link_for(other) == room)
        for session in standing.get(other.id, ()) if shared else ():
            if (other.id, session.number) == (pair.id, proposed.number):
                continue
            if session.start - cohort.rules.buffer < proposed.end and proposed.start < session.end + cohort.rules.buffer:
                return True
    mine = {s.number: s for s in standing.get(pair.id, ())}
    mine[proposed.number] = proposed
    if len(mine) == 2:
        return mine[2].start < mine[1].start + cohort.rules.min_gap
    return False
