"""What makes a large cohort plan fast must not change its plan: busy times converted to
minutes once (BusyMinutes), and groups planned in worker processes."""

import os
import random
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from service.domain import forked as forked_module
from service.domain import planning
from service.domain.availability import BusyMinutes, busy_minutes
from service.domain.forked import in_workers
from service.domain.model import Cohort, Stretch
from service.domain.planning import alternatives, plan_sessions, replan_session
from tests.builders import cohort, pair, person

NOW = datetime(2027, 2, 1, tzinfo=UTC)
ZONES = ("America/New_York", "Europe/Berlin", "Asia/Kolkata", "Australia/Sydney", "America/Los_Angeles", "Europe/London")
HOURS = ("09:00-17:00", "08:00-12:00", "13:00-15:30", "10:00-12:00,14:00-16:00")


def busy_cohort(seed: int, mentors: int = 14) -> tuple[Cohort, dict[str, list[tuple[datetime, datetime]]]]:
    """Mentors with one to three mentees around the world, everyone with a full calendar:
    some pairs cannot meet, some only outside their hours, some compete for a mentor."""
    rng = random.Random(seed)
    pairs = []
    for m in range(mentors):
        mentor = person(f"Mentor {m}", rng.choice(ZONES), rng.choice(HOURS))
        for k in range(rng.randint(1, 3)):
            pairs.append(pair(mentor, person(f"Mentee {m} {k}", rng.choice(ZONES), rng.choice(HOURS))))
    c = replace(cohort(*pairs, first_within=timedelta(weeks=2)), stretch=Stretch(minutes=90))
    busy = {}
    start = datetime(2027, 3, 1, tzinfo=UTC)
    for email in c.people:
        meetings = []
        for _ in range(rng.randint(20, 80)):
            begins = start + timedelta(minutes=15 * rng.randrange(61 * 24 * 4))
            meetings.append((begins, begins + timedelta(minutes=rng.choice((30, 60, 90, 240)))))
        busy[email] = meetings
    return c, busy


def test_busy_minutes_made_once_plan_what_busy_datetimes_plan():
    c, busy = busy_cohort(1)
    minutes = BusyMinutes.of(busy)
    assert minutes == {email: busy_minutes(intervals) for email, intervals in busy.items()}
    assert BusyMinutes.of(minutes) is minutes
    plan = plan_sessions(c, busy, now=NOW)
    assert 0 < plan.booked < len(c.pairs)  # the cohort is hard enough to leave some out
    assert plan_sessions(c, minutes, now=NOW) == plan
    standing = {p.pair.id: p.sessions for p in plan.pairs if p.sessions}
    pair_id = next(iter(standing))
    others = {pid: s for pid, s in standing.items() if pid != pair_id} | {pair_id: standing[pair_id][1:]}
    asked = dict(pair_id=pair_id, number=1, booked=others, now=NOW)
    assert replan_session(c, minutes, **asked) == replan_session(c, busy, **asked)
    assert alternatives(c, minutes, **asked) == alternatives(c, busy, **asked)
    assert minutes == BusyMinutes.of(busy)  # alternatives leaves the shared lists alone


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_groups_planned_in_worker_processes_book_exactly_what_planning_in_turn_books(monkeypatch, seed):
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one processor: planning never forks")
    if threading.active_count() > 1:
        pytest.skip("other threads run in this process: planning never forks then")
    c, busy = busy_cohort(seed)
    monkeypatch.setattr(planning, "PARALLEL_PAIRS", 10**9)
    in_turn = plan_sessions(c, busy, now=NOW)
    forked = []
    monkeypatch.setattr(planning, "in_workers", lambda *args: forked.append(found := in_workers(*args)) or found)
    monkeypatch.setattr(planning, "PARALLEL_PAIRS", 2)
    monkeypatch.setattr(forked_module, "RUNS_PER_WORKER", 3)
    assert plan_sessions(c, busy, now=NOW) == in_turn
    assert forked and forked[0] is not None  # the workers did plan it
    assert any(p.problems for p in in_turn.pairs) and in_turn.booked


def test_runs_of_groups_cover_every_group_once_in_order():
    sizes = [5, 1, 1, 1, 9, 2, 2, 1, 3]
    runs = forked_module.runs(sizes, 4)
    assert [i for first, last in runs for i in range(first, last)] == list(range(len(sizes)))
    assert all(first < last for first, last in runs) and len(runs) <= 4
