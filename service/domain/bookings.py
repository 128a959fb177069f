"""Which pairs are booked, which wait for the coordinator and which are free to plan:
one answer for the daemon and for `status`, so they cannot disagree."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from .model import Cohort, Session
from .outbox import SessionRecord, by_pair
from .planning import Busy, Plan, plan_sessions


@dataclass(frozen=True, kw_only=True)
class Bookings:
    booked: Mapping[str, tuple[Session, ...]]  # pairs in the pairings whose two sessions stand
    held: frozenset[str]  # a session was deleted by hand: not booked again behind the coordinator's back
    removed: tuple[str, ...]  # pairs gone from the pairings whose sessions still stand: to cancel
    records: Mapping[str, list[SessionRecord]]  # every stored session, by pair, sorted by number

    def free_to_plan(self, cohort: Cohort) -> Cohort:
        """The cohort without its held pairs: what the planner may book."""
        if not self.held:
            return cohort
        return replace(cohort, pairs=tuple(p for p in cohort.pairs if p.id not in self.held))

    def waiting(self, cohort: Cohort) -> list[str]:
        """Pairs the planner still has to find times for."""
        return [p.id for p in cohort.pairs if p.id not in self.booked and p.id not in self.held]


def bookings(cohort: Cohort, stored: Iterable[SessionRecord]) -> Bookings:
    active = {pair.id for pair in cohort.pairs}
    records = by_pair(stored)
    return Bookings(
        booked={
            pair_id: tuple(r.session for r in pair_records)
            for pair_id, pair_records in records.items()
            if pair_id in active and len(pair_records) == 2 and not any(r.cancelled for r in pair_records)
        },
        held=frozenset(pair_id for pair_id, pair_records in records.items() if any(r.held for r in pair_records)),
        removed=tuple(
            pair_id for pair_id, pair_records in records.items() if pair_id not in active and any(not r.cancelled for r in pair_records)
        ),
        records=records,
    )


def plan_around(cohort: Cohort, busy: Busy, current: Bookings, *, now: datetime) -> Plan:
    """Times for every pair free to plan, around what is booked."""
    return plan_sessions(current.free_to_plan(cohort), busy, now=now, booked=current.booked)


def unplanned(plan: Plan) -> dict[str, str]:
    """Pairs the plan could not book, with the first reason."""
    return {item.pair.id: item.problems[0] for item in plan.pairs if item.problems}
