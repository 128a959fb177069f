"""The dashboard's figures, read from the store in one pass per page."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from ..domain.bookings import Bookings, bookings
from ..domain.model import Cohort, Pair
from ..domain.outbox import State
from ..domain.ports import HeldChange, Store
from ..mail.wording import attention_items, stuck
from ..usecases.schedule import counts_with, days_with


class PairStatus:
    BOOKED = "booked"
    WAITING = "waiting"  # the planner still has to find times
    REBOOKING = "rebooking"  # one session stands, the other is being found again
    HELD = "held"  # waiting for the coordinator
    WITHDRAWN = "withdrawn"
    LEFT = "left"  # no longer in the pairings

    ALL = (BOOKED, WAITING, REBOOKING, HELD, WITHDRAWN, LEFT)


@dataclass(frozen=True)
class PairRow:
    id: str
    pair: Pair | None
    status: str
    sessions: tuple[tuple[int, datetime, str], ...]  # number, start, booked|cancelled|held
    sent: int
    total: int
    attention: int

    def matches(self, query: str) -> bool:
        if not query:
            return True
        words = [self.id]
        if self.pair:
            words += [p.name for p in self.pair.people] + [p.email for p in self.pair.people]
        return query.casefold() in " ".join(words).casefold()


@dataclass
class Snapshot:
    """What the store holds now, read once."""

    cohort: Cohort
    now: datetime
    current: Bookings
    withdrawn: set[str]
    counts: dict[str, dict[State, int]]  # emails of each pair by state
    emails_by_day: dict[date, int]
    attention: list[dict[str, str]]
    held_change: HeldChange | None
    pending: int
    rows: list[PairRow] = field(default_factory=list)


def snapshot(store: Store, cohort: Cohort, now: datetime, unplanned: Mapping[str, str], config_problems: list[str]) -> Snapshot:
    withdrawn = store.withdrawn()
    current = bookings(cohort, store.sessions(), withdrawn=withdrawn, now=now)
    held_change = store.held_change()
    attention = attention_items(
        unplanned, store.messages_needing_a_human(), config_problems, store.alerts(), held_change, stuck(store.in_flight(), now)
    )
    ahead = store.foreseen()
    shot = Snapshot(
        cohort,
        now,
        current,
        withdrawn,
        counts_with(store.message_counts(), ahead),
        days_with(store.emails_by_day(), ahead),
        attention,
        held_change,
        len(store.pending_requests()),
    )
    shot.rows = _rows(shot, store)
    return shot


def _rows(shot: Snapshot, store: Store) -> list[PairRow]:
    cohort, current = shot.cohort, shot.current
    in_pairings = {p.id: p for p in cohort.pairs}
    left = sorted(set(current.records) - set(in_pairings))
    known = store.known_pairs(left) if left else {}
    sent = {pair_id: states.get(State.SENT, 0) for pair_id, states in shot.counts.items()}
    total = {pair_id: sum(n for state, n in states.items() if state is not State.CANCELLED) for pair_id, states in shot.counts.items()}
    flagged = Counter(item["pair_id"] for item in shot.attention)
    rows = []
    for pair_id in [*in_pairings, *left]:
        records = current.records.get(pair_id, [])
        if pair_id not in in_pairings:
            status = PairStatus.LEFT
        elif pair_id in shot.withdrawn:
            status = PairStatus.WITHDRAWN
        elif pair_id in current.held:
            status = PairStatus.HELD
        elif pair_id in current.booked:
            status = PairStatus.BOOKED
        elif pair_id in current.partial:
            status = PairStatus.REBOOKING
        else:
            status = PairStatus.WAITING
        sessions = tuple(
            (r.session.number, r.session.start, "held" if r.held else "cancelled" if r.cancelled else "booked") for r in records
        )
        pair = in_pairings.get(pair_id) or known.get(pair_id)
        rows.append(PairRow(pair_id, pair, status, sessions, sent.get(pair_id, 0), total.get(pair_id, 0), flagged[pair_id]))
    return rows


def overview(shot: Snapshot) -> dict:
    statuses = Counter(row.status for row in shot.rows)
    zone = ZoneInfo(shot.cohort.timezone)
    today = shot.now.astimezone(zone).date()
    monday = today - timedelta(days=today.weekday())
    week = (datetime.combine(monday, time(0), tzinfo=zone), datetime.combine(monday + timedelta(days=7), time(0), tzinfo=zone))
    standing = [s for sessions in shot.current.standing().values() for s in sessions]
    answers = Counter(
        answer for records in shot.current.records.values() for r in records if not r.cancelled for answer in r.responses.values()
    )
    states = Counter[State]()
    for of_pair in shot.counts.values():
        states.update(of_pair)
    return {
        "pairs": {status: statuses.get(status, 0) for status in PairStatus.ALL},
        "sessions_this_week": sum(1 for s in standing if week[0] <= s.start < week[1]),
        "sessions_held": sum(1 for s in standing if s.end <= shot.now),
        "sessions_to_come": sum(1 for s in standing if s.end > shot.now),
        "week_of": monday,
        "emails": {state.value: states.get(state, 0) for state in State},
        "answers": dict(answers),
        "attention": shot.attention,
        "held_change": shot.held_change,
        "pending": shot.pending,
    }


def timeline(shot: Snapshot) -> list[tuple[date, int, int]]:
    """(day, sessions, emails) for each day (UTC) of the program, a week either side."""
    first, last = shot.cohort.start - timedelta(days=7), shot.cohort.end + timedelta(days=7)
    sessions = Counter(s.start.astimezone(UTC).date() for ss in shot.current.standing().values() for s in ss)
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    return [(day, sessions.get(day, 0), shot.emails_by_day.get(day, 0)) for day in days]
