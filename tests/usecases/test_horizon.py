"""Messages are written into the outbox HORIZON before they are due, by the ticks, from
the sessions as they stand then: none is lost, none is written twice, none is early."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from service.adapters.clock import SimulatedClock
from service.domain.memo import WorkedFrom
from service.domain.outbox import HORIZON, WRITE_STEP, State, handed_over, wanted_for_pair
from service.domain.stages import DEFAULT_TIMINGS
from service.runner import run_simulated
from service.usecases import Controller
from service.usecases.booking import sync_messages
from service.usecases.schedule import counts_with, foreseen

from .conftest import NOW


class WrittenWhen:
    """The store, noting when each new message was written and how long before its due."""

    def __init__(self, store):
        self.store, self.ahead = store, []

    def __getattr__(self, name):
        return getattr(self.store, name)

    def apply(self, changes, now):
        self.ahead += [w.due - now for w in changes.insert]
        return self.store.apply(changes, now)


def test_the_first_tick_writes_only_what_comes_soon_and_wakes_when_the_rest_comes_within_the_horizon(deps):
    controller = Controller(deps)
    wake = controller.tick(NOW)
    inputs = controller.inputs
    ahead = foreseen(deps.store, inputs.cohort)
    assert all(row.due <= NOW + HORIZON + WRITE_STEP for row in deps.store.messages())
    assert len(deps.store.messages()) + len(ahead) == 3 * 2 * len(DEFAULT_TIMINGS)
    assert ahead and wake == min(row.due for row in ahead) - HORIZON
    counted = counts_with(deps.store.message_counts(), deps.store.foreseen())
    assert sum(sum(states.values()) for states in counted.values()) == 3 * 2 * len(DEFAULT_TIMINGS)
    assert deps.store.foreseen() == {  # as noted when planned, and as worked out again
        pair_id: dict(Counter(r.due.astimezone(UTC).date() for r in ahead if r.pair_id == pair_id))
        for pair_id in {r.pair_id for r in ahead}
    }


def test_over_the_program_every_message_is_written_once_within_the_horizon_and_sent_once(deps):
    written = WrittenWhen(deps.store)
    deps.store = written
    controller = Controller(deps)
    clock = SimulatedClock(NOW)
    controller.tick(NOW)
    # A session moved before its messages are written: they are written for the new time.
    first = next(r.session for r in deps.store.sessions(["maya-zoe"]) if r.session.number == 2)
    deps.store.move(replace(first, start=first.start + timedelta(days=2), end=first.end + timedelta(days=2)), NOW, "moved by hand")
    run_simulated(controller, clock, None)
    rows = deps.store.messages()
    assert not foreseen(deps.store, controller.inputs.cohort)  # everything written
    assert len(rows) == len(written.ahead) == 3 * 2 * len(DEFAULT_TIMINGS)  # the moved session's invitation only as it is now
    assert all(row.state is State.SENT for row in rows) and all(a <= HORIZON + WRITE_STEP for a in written.ahead)
    assert deps.store.foreseen() == {}
    assert max(Counter(m["Message-ID"] for m in deps.mailer.sent).values()) == 1
    cohort, records = controller.inputs.cohort, {}
    for record in deps.store.sessions():
        records.setdefault(record.session.pair_id, []).append(record)
    for pair in cohort.pairs:
        mine = [r for r in rows if r.pair_id == pair.id]
        wanted = wanted_for_pair(cohort, pair, sorted(records[pair.id], key=lambda r: r.session.number), handed_over(mine))
        assert {(w.key, w.due) for w in wanted} <= {(r.key, r.due) for r in mine}  # as the final sessions call for


def test_a_pair_planned_while_one_of_its_emails_is_being_sent_still_gets_the_rest_written(deps):
    """Planned again as a process that starts plans it, while an email is on its way (a
    replica that took the cohort over, say): the pair's later emails are still written."""
    only = replace(deps.source.inputs.cohort, pairs=deps.source.inputs.cohort.pairs[:1])
    deps.source.edit(only)
    controller, clock = Controller(deps), SimulatedClock(NOW)
    while not deps.store.messages():  # to the first batch written
        clock.advance_to(controller.tick(clock.now()))
    row = deps.store.due(datetime.max.replace(tzinfo=UTC), 1)[0]
    deps.store.mark_sending(row, "<on-its-way@example.org>", clock.now())
    deps.planned_from = WorkedFrom()  # a process that starts plans every pair
    sync_messages(deps, controller.inputs, clock.now())
    deps.store.mark_sent(row, clock.now())  # it went
    run_simulated(controller, clock, None)
    rows = deps.store.messages()
    assert len(rows) == 2 * len(DEFAULT_TIMINGS) and all(r.state is State.SENT for r in rows)
