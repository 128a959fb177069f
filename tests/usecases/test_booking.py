"""Booking and message planning on the in-memory store."""

from __future__ import annotations

import pickle
from dataclasses import replace
from datetime import timedelta

from service.domain.bookings import bookings
from service.domain.memo import WorkedFrom
from service.domain.model import Session
from service.domain.outbox import HORIZON, WRITE_STEP, State
from service.domain.planning import PairPlan, Plan
from service.domain.stages import DEFAULT_TIMINGS, Stage
from service.usecases import Deps, booking
from service.usecases.booking import reconcile, sync_messages
from service.usecases.schedule import foreseen
from tests.builders import cohort, pair, person
from tests.fakes.mailer import RecordingMailer
from tests.fakes.memory_store import MemoryStore
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
    written, ahead = deps.store.messages(), foreseen(deps.store, inputs.cohort)
    edge = NOW + HORIZON + WRITE_STEP  # a day's batch within the horizon
    assert all(r.due <= edge for r in written) and all(r.due > edge for r in ahead)
    rows = written + ahead
    assert len(rows) == 3 * 2 * len(DEFAULT_TIMINGS) and {r.state for r in rows} == {State.PLANNED}


def test_a_large_first_plan_works_out_the_messages_of_pairs_with_none_in_workers_as_in_turn(deps, monkeypatch):
    inputs, _ = deps.source.current()
    days_before = NOW + timedelta(days=24)  # some emails come within the horizon, the others are foreseen
    reconcile(deps, inputs, days_before)
    in_turn = (deps.store.messages(), foreseen(deps.store, inputs.cohort))
    assert in_turn[0] and in_turn[1]
    given = []

    def in_workers(work, sizes):  # what forked workers answer comes through pickle
        given.append(sizes)
        return pickle.loads(pickle.dumps(work(0, len(sizes))))

    monkeypatch.setattr(booking, "in_workers", in_workers)
    monkeypatch.setattr(booking, "PARALLEL_PAIRS", 2)
    monkeypatch.setattr(booking, "CHUNK", 2)
    first = Deps(store=MemoryStore(), mailer=RecordingMailer(), source=deps.source)
    reconcile(first, inputs, days_before)
    assert given == [[2, 1]]  # both chunks
    assert (first.store.messages(), foreseen(first.store, inputs.cohort)) == in_turn
    # A process started again over that store: every pair has messages, so none goes to workers.
    again = Deps(store=first.store, mailer=RecordingMailer(), source=deps.source)
    reconcile(again, inputs, days_before)
    assert given == [[2, 1]]
    assert (again.store.messages(), foreseen(again.store, inputs.cohort)) == in_turn


def test_reconciling_again_changes_nothing(deps):
    deps.horizon = None  # every message written at once, so that they are compared too
    inputs, _ = deps.source.current()
    reconcile(deps, inputs, NOW)
    before = (deps.store.sessions(), deps.store.messages())
    assert before[0] and before[1]
    reconcile(deps, inputs, NOW)
    assert (deps.store.sessions(), deps.store.messages()) == before


def test_a_removed_pair_is_cancelled_and_its_planned_emails_with_it(deps):
    deps.horizon = None  # every message written at once, to be cancelled
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


def test_a_re_check_looks_again_only_at_sessions_whose_pair_or_busy_times_changed(deps, monkeypatch):
    inputs, _ = deps.source.current()
    reconcile(deps, inputs, NOW)  # books: nothing to check yet
    reconcile(deps, inputs, NOW)  # every booked session checked once
    checked = []
    real = booking.misfit
    monkeypatch.setattr(booking, "misfit", lambda pair, session, busy, **kw: checked.append(pair.id) or real(pair, session, busy, **kw))
    reconcile(deps, inputs, NOW)
    assert checked == []  # nothing changed: nothing checked again
    first = next(r.session for r in deps.store.sessions(["jonas-priya"]) if r.session.number == 1)
    jonas = next(p for p in inputs.cohort.pairs if p.id == "jonas-priya").mentor
    # Jonas's calendar, read again, is busy across his first session: only his sessions are looked at, and it moves.
    busy = {**inputs.busy, jonas.email: [(first.start - timedelta(minutes=15), first.end)]}
    reconcile(deps, replace(inputs, busy=busy), NOW)
    assert set(checked) == {p.id for p in inputs.cohort.pairs if jonas in p.people}
    assert next(r.session for r in deps.store.sessions(["jonas-priya"]) if r.session.number == 1).start != first.start


class _ReadsCounted:
    """The store, counting the pairs whose messages are read."""

    def __init__(self, store):
        self.store, self.read = store, []

    def __getattr__(self, name):
        return getattr(self.store, name)

    def messages(self, pair_ids=None):
        self.read.extend(pair_ids or ["all"])
        return self.store.messages(pair_ids)


def test_only_pairs_that_changed_are_planned_again_and_as_a_fresh_start_would(deps):
    deps.horizon = None  # every message written at once, to be re-timed
    inputs, _ = deps.source.current()
    reconcile(deps, inputs, NOW)
    counted = _ReadsCounted(deps.store)
    deps.store = counted
    sync_messages(deps, inputs, NOW)
    assert counted.read == []  # nothing changed: nothing read, nothing planned

    first = next(r.session for r in counted.sessions() if r.session.pair_id == "maya-zoe" and r.session.number == 1)
    prep = {r.recipient: r.due for r in counted.messages() if r.pair_id == "maya-zoe" and r.stage is Stage.SESSION1_PREP}
    assert len(prep) == 2
    counted.read.clear()
    counted.move(replace(first, start=first.start + timedelta(days=1), end=first.end + timedelta(days=1)), NOW, "moved by hand")
    sync_messages(deps, inputs, NOW)
    assert counted.read == ["maya-zoe"]
    incremental = counted.messages()

    deps.planned_from = WorkedFrom()  # as a process starting now plans every pair
    sync_messages(deps, inputs, NOW)
    assert counted.messages() == incremental
    retimed = {r.recipient: r.due for r in incremental if r.pair_id == "maya-zoe" and r.stage is Stage.SESSION1_PREP}
    assert retimed.keys() == prep.keys() and all(retimed[who] > prep[who] for who in prep)  # the prep email followed the move


def test_new_cohort_settings_plan_every_pair_again(deps):
    inputs, _ = deps.source.current()
    reconcile(deps, inputs, NOW)
    counted = _ReadsCounted(deps.store)
    deps.store = counted
    deps.source.edit(replace(inputs.cohort, calendar="google"))
    inputs, _ = deps.source.current()
    sync_messages(deps, inputs, NOW)
    assert sorted(counted.read) == ["jonas-priya", "maya-noah", "maya-zoe"]


def test_a_pair_with_a_message_being_sent_is_planned_again_next_time(deps):
    deps.horizon = None  # every message written at once: one of them is on its way
    inputs, _ = deps.source.current()
    reconcile(deps, inputs, NOW)
    row = next(r for r in deps.store.messages() if r.pair_id == "maya-noah")
    deps.store.mark_sending(row, "<m-1@example.org>", NOW)
    deps.planned_from = WorkedFrom()
    sync_messages(deps, inputs, NOW)  # it cannot be changed while it is on its way
    counted = _ReadsCounted(deps.store)
    deps.store = counted
    sync_messages(deps, inputs, NOW)
    assert counted.read == ["maya-noah"]


def test_a_session_outside_hours_is_looked_at_again_only_when_what_it_was_booked_around_changes(deps, monkeypatch):
    far = cohort(pair(person("Aiko Sato", "Asia/Tokyo"), person("Liam Reyes", "America/Los_Angeles"), "aiko-liam"))
    deps.source.edit(far)
    inputs, _ = deps.source.current()
    reconcile(deps, inputs, NOW)
    assert len(deps.store.sessions()) == 2  # booked outside someone's hours: theirs never meet
    reconcile(deps, inputs, NOW)  # looked at: still no time inside both people's hours
    looked = []
    monkeypatch.setattr(booking, "replan_session", lambda *args, **kwargs: looked.append(kwargs["number"]))

    reconcile(deps, inputs, NOW)
    assert looked == []  # no time inside both people's hours then, and nothing changed since

    first = next(r.session for r in deps.store.sessions() if r.session.number == 1)
    busy = {"liam.reyes@example.org": [(first.start - timedelta(days=3), first.start - timedelta(days=2))]}
    deps.source.inputs = replace(inputs, busy=busy)
    inputs, _ = deps.source.current()
    reconcile(deps, inputs, NOW)
    assert looked  # Liam's calendar changed: looked at again
