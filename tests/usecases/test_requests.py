"""The coordinator's requests, applied by the daemon."""

from __future__ import annotations

from datetime import timedelta

from service.domain.requests import RequestKind
from service.usecases.booking import reconcile
from service.usecases.requests import apply_requests

from .conftest import NOW


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
