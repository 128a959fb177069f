"""Which pairs are booked, which wait for the coordinator and which are free to plan:
one answer for the daemon and for `status`, so they cannot disagree."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from .model import Cohort, Session
from .outbox import SessionRecord, by_pair
from .planning import AnyBusy, Plan, plan_sessions


@dataclass(frozen=True, kw_only=True)
class Bookings:
    booked: Mapping[str, tuple[Session, ...]]  # pairs in the pairings whose two sessions stand
    # Pairs back in the pairings whose past session stands and whose later one was cancelled:
    # only the missing session is booked again (what happened is never moved).
    partial: Mapping[str, tuple[Session, ...]]
    held: frozenset[str]  # waiting for the coordinator (a session deleted by hand, or withdrawn)
    to_cancel: tuple[str, ...]  # pairs out of the program whose coming sessions still stand
    records: Mapping[str, list[SessionRecord]]  # every stored session, by pair, sorted by number

    def free_to_plan(self, cohort: Cohort) -> Cohort:
        """The cohort without its held pairs: what the planner may book."""
        if not self.held:
            return cohort
        return replace(cohort, pairs=tuple(p for p in cohort.pairs if p.id not in self.held))

    def waiting(self, cohort: Cohort) -> list[str]:
        """Pairs the planner still has to find both times for."""
        return [p.id for p in cohort.pairs if p.id not in self.booked and p.id not in self.held and p.id not in self.partial]

    def standing(self, *, but: Session | None = None) -> dict[str, tuple[Session, ...]]:
        """Every session that stands, by pair: what new bookings must go around (`but` the
        one being moved)."""
        return {pair_id: tuple(s for s in sessions if s != but) for pair_id, sessions in {**self.partial, **self.booked}.items()}


def bookings(cohort: Cohort, stored: Iterable[SessionRecord], *, withdrawn: Iterable[str] = (), now: datetime) -> Bookings:
    out = set(withdrawn)
    active = {pair.id for pair in cohort.pairs} - out
    records = by_pair(stored)
    booked, partial = {}, {}
    for pair_id, pair_records in records.items():
        live = tuple(r.session for r in pair_records if not r.cancelled)
        if pair_id not in active or not live:
            continue
        if len(live) == len(pair_records) == 2:
            booked[pair_id] = live
        elif not any(r.held for r in pair_records):
            partial[pair_id] = live
    return Bookings(
        booked=booked,
        partial=partial,
        held=frozenset(pair_id for pair_id, pair_records in records.items() if any(r.held for r in pair_records)) | out,
        to_cancel=tuple(
            pair_id
            for pair_id, pair_records in records.items()
            if pair_id not in active and any(not r.cancelled and r.session.start > now for r in pair_records)
        ),
        records=records,
    )


def plan_around(cohort: Cohort, busy: AnyBusy, current: Bookings, *, now: datetime) -> Plan:
    """Times for every pair free to plan, around what stands."""
    free = current.free_to_plan(cohort)
    return plan_sessions(
        replace(free, pairs=tuple(p for p in free.pairs if p.id not in current.partial)), busy, now=now, booked=current.booked
    )


def unplanned(plan: Plan) -> dict[str, str]:
    """Pairs the plan could not book, with the first reason."""
    return {item.pair.id: item.problems[0] for item in plan.pairs if item.problems}
