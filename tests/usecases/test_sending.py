"""Sending on the in-memory store: once each, retries, and sends cut short."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import timedelta

import pytest

from service.domain.model import Session
from service.domain.outbox import SessionRecord, State
from service.domain.ports import MailError
from service.domain.stages import Stage
from service.usecases.booking import reconcile
from service.usecases.sending import _unknown_attendance, recover_in_flight, send_due

from .conftest import NOW


def booked(deps):
    """The cohort booked, every message written into the outbox at once: sending is what
    these tests are about, not when a message is written."""
    deps.horizon = None
    inputs, _ = deps.source.current()
    reconcile(deps, inputs, NOW)
    return inputs


def welcome_time(deps):
    return min(r.due for r in deps.store.messages() if r.stage is Stage.WELCOME)


def test_what_is_due_goes_out_once_and_nothing_early(deps):
    inputs = booked(deps)
    assert send_due(deps, inputs, NOW).count == 0
    at = welcome_time(deps)
    sent = send_due(deps, inputs, at + timedelta(hours=12)).count
    assert sent == len(deps.mailer.sent) > 0
    assert send_due(deps, inputs, at + timedelta(hours=12)).count == 0
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


def test_a_transport_that_breaks_in_any_way_leaves_nothing_sending(deps):
    inputs = booked(deps)
    at = welcome_time(deps) + timedelta(hours=12)

    def disk_full(message):
        raise OSError(28, "No space left on device")

    deps.mailer.fault = disk_full
    send_due(deps, inputs, at)
    assert deps.store.in_flight() == []  # settled at once, not stranded until a restart
    unsure = deps.store.messages_needing_a_human()
    assert unsure and all(r.state is State.UNCERTAIN and "OSError" in r.last_error for r in unsure)


def test_an_email_that_cannot_be_built_fails_alone(deps, monkeypatch):
    inputs = booked(deps)
    at = welcome_time(deps) + timedelta(hours=12)
    import service.usecases.sending as sending

    real = sending.compose

    def fussy(*args, **options):
        if options["recipient"] == "zoe.park@example.org":
            raise UnicodeEncodeError("ascii", "ü", 0, 1, "not ASCII")
        return real(*args, **options)

    monkeypatch.setattr(sending, "compose", fussy)
    send_due(deps, inputs, at)
    (failed,) = deps.store.messages_needing_a_human()[:1]
    assert failed.recipient == "zoe.park@example.org" and failed.state is State.FAILED
    assert "could not be built (UnicodeEncodeError)" in failed.last_error
    assert any(m["To"].addresses[0].addr_spec == "maya.chen@example.org" for m in deps.mailer.sent)  # the rest went out


def test_a_send_cut_short_for_a_pair_that_left_meanwhile_is_not_sent(deps):
    inputs = booked(deps)
    deps.mailer.verify_after = timedelta(minutes=10)
    at = welcome_time(deps) + timedelta(hours=12)
    (row,) = [r for r in deps.store.due(at, 50) if r.pair_id == "jonas-priya" and r.stage is Stage.WELCOME][:1]
    deps.store.mark_sending(row, "<cut-short@example.org>", at)
    recover_in_flight(deps, at)
    smaller = replace(inputs.cohort, pairs=tuple(p for p in inputs.cohort.pairs if p.id != "jonas-priya"))
    deps.source.edit(smaller)
    inputs, _ = deps.source.current()
    reconcile(deps, inputs, at)  # the edit: the row waits for its check, so it is kept for now
    deps.mailer.knows = lambda message_id: False  # it never left
    send_due(deps, inputs, at + timedelta(minutes=10))
    (settled,) = [r for r in deps.store.messages() if r.key == row.key]
    assert settled.state is State.CANCELLED
    assert not [m for m in deps.mailer.sent if "jonas" in m["To"].addresses[0].addr_spec]


def test_an_email_goes_to_the_address_it_was_planned_for(deps):
    inputs = booked(deps)
    deps.mailer.verify_after = timedelta(minutes=10)
    at = welcome_time(deps) + timedelta(hours=12)
    (row,) = [r for r in deps.store.due(at, 50) if r.recipient == "zoe.park@example.org" and r.stage is Stage.WELCOME]
    deps.store.mark_sending(row, "<cut-short@example.org>", at)
    recover_in_flight(deps, at)
    cohort = inputs.cohort
    zoe = next(p for p in cohort.pairs if p.id == "maya-zoe")
    moved = replace(zoe, mentee=replace(zoe.mentee, email="zoe.p@example.net"))
    deps.source.edit(replace(cohort, pairs=tuple(moved if p.id == "maya-zoe" else p for p in cohort.pairs)))
    inputs, _ = deps.source.current()
    reconcile(deps, inputs, at)
    deps.mailer.knows = lambda message_id: True  # it did go out, to the old address
    send_due(deps, inputs, at + timedelta(minutes=10))
    welcomes = [m["To"].addresses[0].addr_spec for m in deps.mailer.sent if "Welcome" in str(m["Subject"])]
    assert "zoe.park@example.org" not in welcomes  # not twice: it had gone out
    assert welcomes.count("zoe.p@example.net") == 1  # the new address gets its own, once


def test_a_mail_server_that_is_down_costs_one_probe_a_tick_and_no_attempts(deps):
    inputs = booked(deps)
    at = welcome_time(deps) + timedelta(hours=12)
    deps.mailer.down = MailError(MailError.TRANSIENT, "the mail server refused the login: login refused (SMTP 535)", transport=True)
    for hour in range(3):
        send_due(deps, inputs, at + timedelta(hours=hour))
    assert deps.mailer.probes == 3  # one a tick, not one per due email
    rows = deps.store.messages()
    assert all(r.attempts == 0 and r.state is State.PLANNED for r in rows)
    (alert,) = deps.store.alerts()
    assert alert.text.startswith("Email cannot go out: the mail server refused the login")
    deps.mailer.down = None
    assert send_due(deps, inputs, at + timedelta(hours=4)).count > 0
    assert deps.store.alerts() == []  # fixed: the coordinator is no longer told


def test_did_you_meet_is_asked_where_no_meet_room_will_tell():
    session = Session(pair_id="p", number=1, start=NOW, end=NOW + timedelta(hours=1))
    record = SessionRecord(session=session, cancelled=False, sequence=0, changed_at=NOW)
    link = "https://meet.google.com/abc-defg-hij"
    assert _unknown_attendance(record)  # email invitations: no room at all
    assert not _unknown_attendance(replace(record, meet_link=link))  # Meet tells
    assert _unknown_attendance(replace(record, meet_link=link, meet_space=f"gone:{link}"))  # Meet knows no such room


def test_a_store_that_fails_while_an_email_is_being_written_leaves_it_planned(deps, monkeypatch):
    """A database gone while an email reads what it quotes is an outage, not an email that
    cannot be built: the tick stops and the email goes out later, nothing marked failed."""
    inputs = booked(deps)
    checkin = min(r.due for r in deps.store.messages() if r.stage is Stage.HOMEWORK_CHECKIN)
    send_due(deps, inputs, checkin - timedelta(minutes=1))

    def gone(pair_ids):
        raise OSError("the database connection was cut")

    monkeypatch.setattr(deps.store, "goals", gone)
    with pytest.raises(OSError):
        send_due(deps, inputs, checkin)
    states = Counter(r.state for r in deps.store.messages() if r.stage is Stage.HOMEWORK_CHECKIN)
    assert State.FAILED not in states and states[State.PLANNED] > 0
    monkeypatch.undo()
    send_due(deps, inputs, checkin + timedelta(days=1))
    assert {r.state for r in deps.store.messages() if r.stage is Stage.HOMEWORK_CHECKIN and r.due <= checkin} == {State.SENT}
