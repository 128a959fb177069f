"""What the state says about each pair, and what needs a human: for `mentorship status`."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from .domain.attendance import shown
from .domain.bookings import bookings, plan_around, unplanned
from .domain.ports import Store
from .mail.wording import attention_items, stuck
from .usecases import Inputs
from .usecases.changes import read_change
from .usecases.schedule import unwritten


def status_report(inputs: Inputs, store: Store, *, now: datetime) -> dict:
    inputs, _, held = read_change(store, inputs, now)
    cohort = inputs.cohort
    current = bookings(cohort, store.sessions(), withdrawn=store.withdrawn(), now=now)
    records = current.records
    names = {p.id: p for p in cohort.pairs}
    known = store.known_pairs(set(records) - set(names))
    written = store.messages()
    rows = written + unwritten(cohort, {**known, **names}, records, written)
    problems = unplanned(plan_around(cohort, inputs.busy, current, now=now))
    messages_of: dict[str, list] = {}
    for row in sorted(rows, key=lambda r: (r.due, r.stage, r.recipient)):
        messages_of.setdefault(row.pair_id, []).append(row)
    attention = attention_items(problems, store.messages_needing_a_human(), [], store.alerts(), held, stuck(store.in_flight(), now))
    pairs = []
    for pair_id in list(names) + sorted(set(records) - set(names)):
        pair = names.get(pair_id) or known.get(pair_id)
        pairs.append(
            {
                "id": pair_id,
                "mentor": pair.mentor.name if pair else None,
                "mentee": pair.mentee.name if pair else None,
                "people": [{"name": p.name, "email": p.email, "timezone": p.timezone} for p in pair.people] if pair else [],
                "in_pairings": pair_id in names,
                "sessions": [
                    {
                        "number": r.session.number,
                        "start": r.session.start.isoformat(),
                        "end": r.session.end.isoformat(),
                        "status": "held" if r.held else "cancelled" if r.cancelled else "booked",
                        "sequence": r.sequence,
                        "changed_at": r.changed_at.isoformat(),
                        "previous_start": r.previous_start.isoformat() if r.previous_start else None,
                        "reason": r.change_reason,
                        "answers": dict(r.responses),
                        "attendance": _attendance(r, now),
                    }
                    for r in records.get(pair_id, [])
                ],
                "messages": [
                    {
                        "ref": m.ref,
                        "stage": m.stage.value,
                        "to": m.recipient,
                        "revision": m.revision,
                        "due": m.due.isoformat(),
                        "state": m.state.value,
                        "sent_at": m.sent_at.isoformat() if m.sent_at else None,
                        "attempts": m.attempts,
                        "error": m.last_error,
                    }
                    for m in messages_of.get(pair_id, [])
                ],
                "problems": [problems[pair_id]] if pair_id in problems else [],
                "attention": [item["summary"] for item in attention if item["pair_id"] == pair_id],
            }
        )
    return {
        "cohort": cohort.name,
        "pairs": pairs,
        "totals": dict(sorted(Counter(m.state.value for m in rows).items())),
        "attendance": dict(sorted(Counter(a for rs in records.values() for r in rs if (a := _attendance(r, now))).items())),
        "attention": attention,
    }


def _attendance(record, now: datetime) -> str | None:
    """held | partial | missed | unknown, or None while not known yet (or cancelled)."""
    if record.cancelled:
        return None
    found = shown(record.attended, has_meet=bool(record.meet_link or record.meet_space), end=record.session.end, now=now)
    return found.value if found else None
