"""What the state says about each pair, and what needs a human: for `mentorship status`."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from .domain.outbox import by_pair
from .domain.planning import plan_sessions
from .domain.ports import Store
from .jobs import Inputs, attention_items


def status_report(inputs: Inputs, store: Store, *, now: datetime) -> dict:
    cohort = inputs.cohort
    records = by_pair(store.sessions())
    rows = store.messages()
    booked = {
        pair_id: tuple(r.session for r in pair_records)
        for pair_id, pair_records in records.items()
        if len(pair_records) == 2 and not any(r.cancelled for r in pair_records)
    }
    plan = plan_sessions(cohort, inputs.busy, now=now, booked=booked)
    unplanned = {item.pair.id: item.problems[0] for item in plan.pairs if item.problems}
    messages_of: dict[str, list] = {}
    for row in sorted(rows, key=lambda r: (r.due, r.stage, r.recipient)):
        messages_of.setdefault(row.pair_id, []).append(row)
    names = {p.id: p for p in cohort.pairs}
    pairs = []
    for pair_id in list(names) + sorted(set(records) - set(names)):
        pair = names.get(pair_id)
        pairs.append(
            {
                "id": pair_id,
                "mentor": pair.mentor.name if pair else None,
                "mentee": pair.mentee.name if pair else None,
                "in_pairings": pair is not None,
                "sessions": [
                    {
                        "number": r.session.number,
                        "start": r.session.start.isoformat(),
                        "end": r.session.end.isoformat(),
                        "status": "cancelled" if r.cancelled else "booked",
                        "sequence": r.sequence,
                    }
                    for r in records.get(pair_id, [])
                ],
                "messages": [
                    {
                        "stage": m.stage,
                        "to": m.recipient,
                        "revision": m.revision,
                        "due": m.due.isoformat(),
                        "state": m.state.value,
                        "attempts": m.attempts,
                        "error": m.last_error,
                    }
                    for m in messages_of.get(pair_id, [])
                ],
                "problems": [unplanned[pair_id]] if pair_id in unplanned else [],
            }
        )
    return {
        "cohort": cohort.name,
        "pairs": pairs,
        "totals": dict(sorted(Counter(m.state.value for m in rows).items())),
        "attention": attention_items(unplanned, store.messages_needing_a_human(), [], store.alerts()),
    }
