"""Booking and message planning on the in-memory store."""

from __future__ import annotations

from dataclasses import replace

from service.domain.bookings import bookings
from service.domain.model import Session
from service.domain.outbox import State
from service.domain.planning import PairPlan, Plan
from service.domain.stages import DEFAULT_TIMINGS
from service.usecases.booking import reconcile
from tests.planchecks import violations

from .conftest import NOW


def test_every_pair_is_booked_once_and_gets_its_whole_timeline(deps):
    inputs, _ = deps.source.current()
    assert reconcile(deps, inputs, NOW) == {}
    records = deps.store.sessions()
    assert len(records) == 6 and all(r.sequence == 0 and not r.cancelled for r in records)
    current = bookings(inputs.cohort, records, now=NOW)
    assert set(current.booked) == {"maya-zoe", "maya-noah", "jonas-priya"}
    booked = Plan(
        cohort=inputs.cohort,
        pairs=tuple(PairPlan(pair=p, sessions=current.booked[p.id], problems=()) for p in inputs.cohort.pairs),
    )
    assert violations(inputs.cohort, booked, now=NOW) == []  # every rule, checked independently
    rows = deps.store.messages()
    assert len(rows) == 3 * 2 * len(DEFAULT_TIMINGS) and {r.state for r in rows} == {State.PLANNED}


def test_reconciling_again_changes_nothing(deps):
    inputs, _ = deps.source.current()
    reconcile(deps, inputs, NOW)
    before = (deps.store.sessions(), deps.store.messages())
    reconcile(deps, inputs, NOW)
    assert (deps.store.sessions(), deps.store.messages()) == before


def test_a_removed_pair_is_cancelled_and_its_planned_emails_with_it(deps):
    inputs, _ = deps.source.current()
    reconcile(deps, inputs, NOW)
    smaller = replace(inputs.cohort, pairs=tuple(p for p in inputs.cohort.pairs if p.id != "maya-noah"))
    deps.source.edit(smaller)
    inputs, _ = deps.source.current()
    reconcile(deps, inputs, NOW)
    gone = [r for r in deps.store.sessions() if r.session.pair_id == "maya-noah"]
    assert len(gone) == 2 and all(r.cancelled and r.sequence == 1 for r in gone)
    rows = [r for r in deps.store.messages() if r.pair_id == "maya-noah"]
    assert rows and all(r.state is State.CANCELLED for r in rows)  # nothing had gone out yet: nothing to say
    assert all(r.state is State.PLANNED for r in deps.store.messages() if r.pair_id != "maya-noah")


def test_a_held_pair_is_not_booked_again(deps):
    inputs, _ = deps.source.current()
    reconcile(deps, inputs, NOW)
    deps.store.cancel_pair("jonas-priya", NOW, "a session was deleted in Google Calendar", held=True)
    reconcile(deps, inputs, NOW)
    held = [r for r in deps.store.sessions() if r.session.pair_id == "jonas-priya"]
    assert all(r.held and r.cancelled for r in held)
    assert "jonas-priya" not in bookings(inputs.cohort, deps.store.sessions(), now=NOW).booked


def test_a_time_a_person_chose_is_not_planned_again_by_a_re_check(deps):
    inputs, _ = deps.source.current()
    reconcile(deps, inputs, NOW)
    first = next(r.session for r in deps.store.sessions(["jonas-priya"]) if r.session.number == 1)
    night = first.start.replace(hour=2)  # 03:00 in Berlin: outside Jonas's hours
    moved = Session(pair_id="jonas-priya", number=1, start=night, end=night + (first.end - first.start))
    deps.store.move(moved, NOW, "the event was moved in Google Calendar", seen_in_calendar=True)
    reconcile(deps, inputs, NOW)
    kept = next(r for r in deps.store.sessions(["jonas-priya"]) if r.session.number == 1)
    assert kept.session == moved and kept.agreed  # they agreed on it: it stays
    deps.store.move(moved, NOW, "the service chose it")  # the same time, chosen by the service
    reconcile(deps, inputs, NOW)
    replanned = next(r for r in deps.store.sessions(["jonas-priya"]) if r.session.number == 1)
    assert replanned.session != moved and not replanned.agreed  # it no longer fits: moved
