"""The outbox as it will be: the messages it holds, and those the stored sessions call for
that are not written yet (a message is written HORIZON before it is due). Figures and
timelines (status, the dashboard, the overview of cohorts) read both, so a message counts
from the moment its session is booked."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, date

from ..domain.model import Cohort
from ..domain.outbox import MessageRow, State, by_pair, plan_changes
from ..domain.ports import Store

CHUNK = 500  # pairs read at a time: bounded memory for large cohorts


def foreseen(store: Store, cohort: Cohort, pair_ids: Iterable[str] | None = None) -> list[MessageRow]:
    """The messages of these pairs (all: None) not in the outbox yet, as planned rows."""
    records = by_pair(store.sessions(pair_ids))
    current = {p.id: p for p in cohort.pairs}
    pairs = {**store.known_pairs(set(records) - current.keys()), **current}
    ids = sorted(pair_id for pair_id in records if pair_id in pairs)
    rows = []
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        change = plan_changes(cohort, {pair_id: pairs[pair_id] for pair_id in chunk}, records, store.messages(chunk))
        rows += [
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
    return rows


def counts_with(counts: Mapping[str, Mapping[State, int]], ahead: Iterable[MessageRow]) -> dict[str, dict[State, int]]:
    """Store.message_counts (by pair, then state) with the foreseen messages as planned."""
    merged = {pair_id: dict(states) for pair_id, states in counts.items()}
    for pair_id, n in Counter(row.pair_id for row in ahead).items():
        states = merged.setdefault(pair_id, {})
        states[State.PLANNED] = states.get(State.PLANNED, 0) + n
    return merged


def days_with(by_day: Mapping[date, int], ahead: Iterable[MessageRow]) -> dict[date, int]:
    """Store.emails_by_day (by the day, in UTC, each is due or went) with the foreseen messages."""
    merged = Counter(by_day)
    merged.update(row.due.astimezone(UTC).date() for row in ahead)
    return dict(merged)
