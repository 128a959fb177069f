"""The outbox as it will be: the messages it holds, and those the stored sessions call for
that are not written yet (a message is written HORIZON before it is due). Figures and
timelines (status, the dashboard, the overview of cohorts) read both, so a message counts
from the moment its session is booked: a pair's timeline works the foreseen ones out
again; figures take the counts the daemon noted when it planned them (Store.foreseen)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import date

from ..domain.model import Cohort, Pair
from ..domain.outbox import MessageRow, SessionRecord, State, by_pair, plan_changes
from ..domain.ports import Store
from .booking import pairs_by_id


def foreseen(store: Store, cohort: Cohort, pair_ids: Iterable[str] | None = None) -> list[MessageRow]:
    """The messages of these pairs (all: None) not in the outbox yet, as planned rows."""
    return _foreseen(store, cohort, pair_ids, store.messages(pair_ids))


def with_foreseen(store: Store, cohort: Cohort, pair_ids: Iterable[str] | None = None) -> list[MessageRow]:
    """The messages of these pairs (all: None) in the outbox, then those foreseen."""
    written = store.messages(pair_ids)
    return written + _foreseen(store, cohort, pair_ids, written)


def _foreseen(store: Store, cohort: Cohort, pair_ids: Iterable[str] | None, written: Sequence[MessageRow]) -> list[MessageRow]:
    records = by_pair(store.sessions(pair_ids))
    return unwritten(cohort, pairs_by_id(store, cohort, set(records)), records, written)


def unwritten(
    cohort: Cohort, pairs: Mapping[str, Pair], records: Mapping[str, Sequence[SessionRecord]], stored: Sequence[MessageRow]
) -> list[MessageRow]:
    """The messages the sessions (`records`, by pair) call for that `stored` does not hold."""
    change = plan_changes(cohort, {pair_id: pairs[pair_id] for pair_id in records if pair_id in pairs}, records, stored)
    return [
        MessageRow(
            pair_id=w.pair_id,
            stage=w.stage,
            recipient=w.recipient,
            revision=w.revision,
            role=w.role,
            due=w.due,
            expires=w.expires,
            state=State.PLANNED,
        )
        for w in change.insert
    ]


def counts_with(counts: Mapping[str, Mapping[State, int]], noted: Mapping[str, Mapping[date, int]]) -> dict[str, dict[State, int]]:
    """Store.message_counts (by pair, then state) with the foreseen messages
    (Store.foreseen, by pair, then day) as planned."""
    merged = {pair_id: dict(states) for pair_id, states in counts.items()}
    for pair_id, days in noted.items():
        states = merged.setdefault(pair_id, {})
        states[State.PLANNED] = states.get(State.PLANNED, 0) + sum(days.values())
    return merged


def days_with(by_day: Mapping[date, int], noted: Mapping[str, Mapping[date, int]]) -> dict[date, int]:
    """Store.emails_by_day (by the day, in UTC, each is due or went) with the foreseen messages."""
    merged = Counter(by_day)
    for days in noted.values():
        merged.update(days)
    return dict(merged)
