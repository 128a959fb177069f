"""Sending on the in-memory store: once each, retries, and sends cut short."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from service.domain.outbox import State
from service.domain.ports import MailError
from service.domain.stages import Stage
from service.usecases.booking import reconcile
from service.usecases.sending import recover_in_flight, send_due

from .conftest import NOW


def booked(deps):
    inputs, _ = deps.source.current()
    reconcile(deps, inputs, NOW)
    return inputs


def welcome_time(deps):
    return min(r.due for r in deps.store.messages() if r.stage is Stage.WELCOME)


def test_what_is_due_goes_out_once_and_nothing_early(deps):
    inputs = booked(deps)
    assert send_due(deps, inputs, NOW) == 0
    at = welcome_time(deps)
    sent = send_due(deps, inputs, at + timedelta(hours=12))
    assert sent == len(deps.mailer.sent) > 0
    assert send_due(deps, inputs, at + timedelta(hours=12)) == 0
    assert max(Counter(m["Message-ID"] for m in deps.mailer.sent).values()) == 1
    states = Counter(r.state for r in deps.store.messages())
    assert states[State.SENT] == sent


def test_a_refused_send_is_retried_later_and_a_permanent_one_goes_to_a_human(deps):
    inputs = booked(deps)
    at = welcome_time(deps) + timedelta(hours=12)
    zoe = "zoe.park@example.org"
    deps.mailer.fault = lambda m: MailError(MailError.TRANSIENT, "421 busy") if m["To"].addresses[0].addr_spec == zoe else None
    send_due(deps, inputs, at)
    waiting = [r for r in deps.store.messages() if r.recipient == zoe and r.attempts]
    assert waiting and all(r.state is State.PLANNED and r.last_error == "421 busy" for r in waiting)
    deps.mailer.fault = lambda m: MailError(MailError.PERMANENT, "550 no such user") if m["To"].addresses[0].addr_spec == zoe else None
    send_due(deps, inputs, at + timedelta(days=1))
    failed = deps.store.messages_needing_a_human()
    assert failed and {r.recipient for r in failed} == {zoe} and all(r.state is State.FAILED for r in failed)


def test_a_send_that_may_have_gone_out_is_never_repeated_blindly(deps):
    inputs = booked(deps)
    at = welcome_time(deps) + timedelta(hours=12)
    deps.mailer.fault = lambda m: MailError(MailError.UNKNOWN, "connection dropped after DATA")
    send_due(deps, inputs, at)
    deps.mailer.fault = lambda m: None
    unsure = deps.store.messages_needing_a_human()
    assert unsure and all(r.state is State.UNCERTAIN for r in unsure)  # SMTP cannot be asked
    before = len(deps.mailer.sent)
    send_due(deps, inputs, at + timedelta(days=1))
    assert all(m["Message-ID"] not in {r.message_id for r in unsure} for m in deps.mailer.sent[before:])


def test_a_transport_that_can_tell_is_asked_before_anything_is_sent_again(deps):
    inputs = booked(deps)
    deps.mailer.verify_after = timedelta(minutes=10)
    at = welcome_time(deps) + timedelta(hours=12)
    row = deps.store.due(at, 1)[0]
    deps.store.mark_sending(row, "<cut-short@example.org>", at)  # a process died here
    recover_in_flight(deps, at)
    (waiting,) = [r for r in deps.store.messages() if r.key == row.key]
    assert waiting.state is State.PLANNED and waiting.verify
    deps.mailer.knows = lambda message_id: message_id == "<cut-short@example.org>"
    send_due(deps, inputs, at + timedelta(minutes=10))
    (settled,) = [r for r in deps.store.messages() if r.key == row.key]
    assert settled.state is State.SENT
    assert all(m["Message-ID"] != "<cut-short@example.org>" for m in deps.mailer.sent)
