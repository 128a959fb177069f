"""The coordinator's requests, applied by the daemon."""

from __future__ import annotations

from datetime import timedelta

from service.domain.attendance import Attendance
from service.domain.outbox import State
from service.domain.ports import HeldChange, MailError
from service.domain.requests import RequestKind
from service.domain.stages import Stage
from service.usecases.booking import reconcile
from service.usecases.requests import apply_requests, approval
from service.usecases.sending import send_due

from .conftest import NOW
from .test_sending import booked


def session(deps, pair_id, number):
    return next(r for r in deps.store.sessions() if r.session.pair_id == pair_id and r.session.number == number)


def test_a_move_applied_again_after_a_crash_moves_once(deps, monkeypatch):
    inputs, _ = deps.source.current()
    reconcile(deps, inputs, NOW)
    before = session(deps, "jonas-priya", 1)
    deps.store.add_request(RequestKind.RESCHEDULE, {"pair": "jonas-priya", "session": "1", "at": "auto", "sequence": "0"}, NOW)
    finish = deps.store.finish_request
    monkeypatch.setattr(deps.store, "finish_request", lambda *args: None)  # killed before the request was marked done
    apply_requests(deps, inputs, NOW + timedelta(minutes=1))
    monkeypatch.setattr(deps.store, "finish_request", finish)
    apply_requests(deps, inputs, NOW + timedelta(minutes=2))  # the restart finds it again
    after = session(deps, "jonas-priya", 1)
    assert after.sequence == 1 and after.previous_start == before.session.start
    assert deps.store.pending_requests() == []


def test_a_withdrawal_and_its_release(deps):
    inputs, _ = deps.source.current()
    reconcile(deps, inputs, NOW)
    deps.store.add_request(RequestKind.WITHDRAW, {"pair": "maya-noah"}, NOW)
    apply_requests(deps, inputs, NOW)
    reconcile(deps, inputs, NOW)
    assert all(r.cancelled for r in deps.store.sessions(["maya-noah"]))
    deps.store.add_request(RequestKind.RELEASE, {"pair": "maya-noah"}, NOW)
    apply_requests(deps, inputs, NOW)
    reconcile(deps, inputs, NOW)
    assert not any(r.cancelled for r in deps.store.sessions(["maya-noah"]))


def test_an_email_is_sent_again_only_when_the_coordinator_asks(deps):
    inputs = booked(deps)
    at = min(r.due for r in deps.store.messages() if r.stage is Stage.WELCOME) + timedelta(hours=12)
    send_due(deps, inputs, at)
    welcome = next(r for r in deps.store.messages() if r.stage is Stage.WELCOME and r.recipient == "zoe.park@example.org")
    planned = next(r for r in deps.store.messages() if r.state is State.PLANNED)
    deps.store.add_request(RequestKind.RESEND, {"message": welcome.ref}, at)
    deps.store.add_request(RequestKind.RESEND, {"message": planned.ref}, at)
    apply_requests(deps, inputs, at)
    outcomes = [r.outcome for r in deps.store.requests()]
    assert outcomes[-2:] == [f"{welcome.ref} goes out again", f"{planned.ref} cannot be sent again: planned"]
    before = len(deps.mailer.sent)
    send_due(deps, inputs, at + timedelta(minutes=1))
    again = [m for m in deps.mailer.sent[before:] if m["To"].addresses[0].addr_spec == "zoe.park@example.org"]
    assert len(again) == 1 and "Welcome" in again[0]["Subject"]
    assert send_due(deps, inputs, at + timedelta(minutes=2)).count == 0  # once, not every tick


def test_an_uncertain_email_is_settled_as_sent_or_sent_again(deps):
    inputs = booked(deps)
    at = min(r.due for r in deps.store.messages() if r.stage is Stage.WELCOME) + timedelta(hours=12)
    deps.mailer.fault = lambda m: MailError(MailError.UNKNOWN, "connection dropped after DATA")
    send_due(deps, inputs, at)
    deps.mailer.fault = lambda m: None
    first, second = deps.store.messages_needing_a_human()[:2]
    deps.store.add_request(RequestKind.RESOLVE, {"message": first.ref, "outcome": "sent"}, at)
    deps.store.add_request(RequestKind.RESOLVE, {"message": second.ref, "outcome": "resend"}, at)
    apply_requests(deps, inputs, at)
    states = {r.ref: r.state for r in deps.store.messages()}
    assert (states[first.ref], states[second.ref]) == (State.SENT, State.PLANNED)
    before = len(deps.mailer.sent)
    send_due(deps, inputs, at + timedelta(minutes=1))
    assert [m["To"].addresses[0].addr_spec for m in deps.mailer.sent[before:]] == [second.recipient]


def test_did_you_meet_counts_for_the_session_as_it_was_seen_and_the_first_answer_stands(deps):
    inputs, _ = deps.source.current()
    reconcile(deps, inputs, NOW)
    ask = {"pair": "jonas-priya", "session": "1", "sequence": "0"}
    deps.store.add_request(RequestKind.MET, {**ask, "met": "no", "by": "priya@example.org"}, NOW)
    deps.store.add_request(RequestKind.MET, {**ask, "met": "yes", "by": "jonas@example.org"}, NOW)
    apply_requests(deps, inputs, NOW)
    reading = session(deps, "jonas-priya", 1).attendance
    assert reading.attendance is Attendance.MISSED and reading.reported_by == "priya@example.org"
    done = [q.outcome for q in deps.store.requests() if q.kind is RequestKind.MET]
    assert "already known as missed" in done[1]

    deps.store.add_request(RequestKind.RESCHEDULE, {"pair": "jonas-priya", "session": "2", "at": "auto", "sequence": "0"}, NOW)
    deps.store.add_request(RequestKind.MET, {"pair": "jonas-priya", "session": "2", "sequence": "0", "met": "yes", "by": "x"}, NOW)
    apply_requests(deps, inputs, NOW)  # the session moved before the answer was applied: it is left aside
    assert session(deps, "jonas-priya", 2).attended is None


def test_an_approval_given_for_the_edit_shown_holds_when_it_has_shrunk(deps):
    """Shown cancelling three pairs; by the time the request is applied one pair's last
    session took place and two are left: approved. An edit grown past what was shown is not."""
    inputs, _ = deps.source.current()
    shown = HeldChange(fingerprint="f3", summary=("three leave",), cancelled=("a", "b", "c"))
    deps.store.hold_change(HeldChange(fingerprint="f2", summary=("two leave",), cancelled=("a", "b")))
    deps.store.add_request(RequestKind.APPROVE, approval(shown), NOW)
    apply_requests(deps, inputs, NOW)
    assert deps.store.approved_change() == {"a", "b", "c"}
    deps.store.approve_change(())
    deps.store.hold_change(HeldChange(fingerprint="f4", summary=("four leave",), cancelled=("a", "b", "c", "d")))
    deps.store.add_request(RequestKind.APPROVE, approval(shown), NOW)
    apply_requests(deps, inputs, NOW)
    assert deps.store.approved_change() == frozenset()
    assert "not shown" in deps.store.requests()[-1].outcome
