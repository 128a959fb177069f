"""Answers to invitations by email, applied to the sessions they are about."""

from __future__ import annotations

from datetime import timedelta

import pytest

from service.domain.outbox import State
from service.domain.replies import Answer, Reply
from service.domain.stages import Stage
from service.mail.invitation import event_uid
from service.usecases.booking import reconcile, sync_messages
from service.usecases.replies import read_replies
from service.usecases.sending import send_due
from tests.fakes.mailbox import Mailbox

from .conftest import NOW

LATER = NOW + timedelta(days=20)  # invitations are out; sessions are still ahead


@pytest.fixture
def booked(deps):
    inputs, _ = deps.source.current()
    reconcile(deps, inputs, NOW)
    return inputs


def record(deps, pair_id, number):
    return next(r for r in deps.store.sessions() if r.session.pair_id == pair_id and r.session.number == number)


def answer(inputs, pair_id, number, who, what, *, message="1:1", sender=None, sequence=0, proposed=None):
    pair = next(p for p in inputs.cohort.pairs if p.id == pair_id)
    return Reply(
        message=message,
        event_uid=event_uid(inputs.cohort, pair, number),
        attendee=who,
        sender=sender or who,
        answer=what,
        sequence=sequence,
        proposed=proposed,
    )


ZOE, MAYA = "zoe.park@example.org", "maya.chen@example.org"


def test_an_acceptance_is_recorded_and_moves_nothing(deps, booked):
    mailbox = Mailbox()
    mailbox.waiting.append(answer(booked, "maya-zoe", 1, ZOE, Answer.ACCEPTED))
    before = record(deps, "maya-zoe", 1)
    assert read_replies(deps, mailbox, booked, LATER)
    after = record(deps, "maya-zoe", 1)
    assert after.session == before.session and after.responses == {ZOE: "accepted"}
    assert mailbox.marked == ["1:1"] and mailbox.unread() == []


def test_a_decline_rebooks_the_session_and_both_are_told(deps, booked):
    mailbox = Mailbox()
    mailbox.waiting.append(answer(booked, "maya-zoe", 1, ZOE, Answer.DECLINED))
    before = record(deps, "maya-zoe", 1)
    read_replies(deps, mailbox, booked, LATER)
    after = record(deps, "maya-zoe", 1)
    assert after.session.start != before.session.start and after.sequence == 1
    assert after.change_reason == "Zoe Park cannot make that time"
    sync_messages(deps, booked, LATER)
    updates = [r for r in deps.store.messages() if r.stage is Stage.SESSION1_INVITATION and r.revision == 1]
    assert {r.recipient for r in updates} == {ZOE, MAYA}


@pytest.mark.parametrize(
    "forged",
    [
        {"who": "someone.else@example.org"},  # not one of the pair
        {"who": ZOE, "sender": "someone.else@example.org"},  # sent by someone else in Zoe's name
        {"who": MAYA, "sequence": -1},  # about an older version of the invitation
    ],
)
def test_answers_that_are_not_trusted_change_nothing(deps, booked, forged):
    mailbox = Mailbox()
    who = forged.pop("who")
    mailbox.waiting.append(answer(booked, "maya-zoe", 1, who, Answer.DECLINED, **forged))
    before = record(deps, "maya-zoe", 1)
    read_replies(deps, mailbox, booked, LATER)
    assert record(deps, "maya-zoe", 1) == before
    assert mailbox.marked == ["1:1"]  # read, and left alone


def test_a_proposed_time_that_suits_both_is_taken(deps, booked):
    before = record(deps, "jonas-priya", 2).session
    proposed = (before.start + timedelta(days=2), before.end + timedelta(days=2))
    mailbox = Mailbox()
    mailbox.waiting.append(answer(booked, "jonas-priya", 2, "priya.rao@example.org", Answer.COUNTER, proposed=proposed))
    read_replies(deps, mailbox, booked, LATER)
    after = record(deps, "jonas-priya", 2)
    assert (after.session.start, after.session.end) == proposed
    assert after.change_reason == "Priya Rao proposed this time" and after.counters == 0


def test_a_proposed_time_that_does_not_suit_both_is_answered_with_times_that_do(deps, booked):
    before = record(deps, "jonas-priya", 2).session
    night = before.start.replace(hour=2)  # 03:00 in Berlin: outside Jonas's hours
    mailbox = Mailbox()
    reply = answer(booked, "jonas-priya", 2, "priya.rao@example.org", Answer.COUNTER, proposed=(night, night + timedelta(hours=1)))
    mailbox.waiting.append(reply)
    read_replies(deps, mailbox, booked, LATER)
    read_replies(deps, mailbox, booked, LATER)  # read again (as after a crash before marking): counted once
    after = record(deps, "jonas-priya", 2)
    assert after.session == before and after.counters == 1
    sync_messages(deps, booked, LATER)
    (row,) = [r for r in deps.store.messages() if r.stage is Stage.SESSION2_OTHER_TIMES]
    assert (row.recipient, row.state) == ("priya.rao@example.org", State.PLANNED)
    send_due(deps, booked, LATER + timedelta(minutes=1))
    (sent,) = [m for m in deps.mailer.sent if "does not work" in str(m["Subject"])]
    text = sent.get_body(preferencelist=("plain",)).get_content()
    assert "These times are free for both of you:" in text and text.count("  - ") == 3


def test_an_unreachable_mailbox_is_tried_again_later(deps, booked):
    mailbox = Mailbox()
    mailbox.unreachable = True
    assert read_replies(deps, mailbox, booked, LATER) is False
