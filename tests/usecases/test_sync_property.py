"""Applying the computed changes, then computing them again, leaves nothing to do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import example, given, settings
from hypothesis import strategies as st

from service.domain.model import Role
from service.domain.outbox import Changes, State, Wanted, changes
from service.domain.stages import Stage
from tests.fakes.memory_store import MemoryStore

T0 = datetime(2027, 3, 1, 9, tzinfo=UTC)
STAGES = [Stage.WELCOME, Stage.SESSION1_PREP, Stage.HOMEWORK_CHECKIN, Stage.FOLLOW_UP]
KEYS = [(pair, stage, person) for pair in ("p1", "p2") for stage in STAGES for person in ("a@example.org", "b@example.org")]
HISTORIES = ["planned", "sent", "failed", "uncertain", "cancelled", "sending", "verify", "skipped"]


def wanted(key, hours: int, expires: int | None) -> Wanted:
    pair, stage, person = key
    return Wanted(
        due=T0 + timedelta(hours=hours),
        pair_id=pair,
        stage=stage,
        recipient=person,
        revision=0,
        role=Role.MENTOR,
        expires=None if expires is None else T0 + timedelta(hours=expires),
    )


def stored(history: list[tuple[int, int, str]]) -> MemoryStore:
    """A store whose rows went through the given histories (key index, due hours, ending)."""
    store = MemoryStore()
    rows = {KEYS[i]: (hours, ending) for i, hours, ending in history}
    store.apply(Changes(insert=tuple(wanted(key, hours, None) for key, (hours, _) in rows.items())), T0)
    for row in store.messages():
        ending = rows[(row.pair_id, row.stage, row.recipient)][1]
        if ending == "planned":
            continue
        if ending == "cancelled":
            store.apply(Changes(cancel=(row.key,)), T0)
        elif ending == "skipped":
            store.mark_skipped(row, "too late", T0)
        else:
            store.mark_sending(row, f"<{row.pair_id}.{row.stage}.{row.recipient}>", T0)
            sending = next(r for r in store.messages() if r.key == row.key)
            if ending == "sent":
                store.mark_sent(sending, T0)
            elif ending == "failed":
                store.mark_failed(sending, "550", T0)
            elif ending == "uncertain":
                store.mark_uncertain(sending, "dropped", T0)
            elif ending == "verify":
                store.mark_verify(sending, T0 + timedelta(minutes=10), "dropped", T0)
    return store


# Few distinct times, so a wish often matches a stored row in one field and not the other.
hours = st.integers(0, 3)
histories = st.lists(
    st.tuples(st.integers(0, len(KEYS) - 1), hours, st.sampled_from(HISTORIES)),
    unique_by=lambda item: item[0],
)
wishes = st.lists(
    st.tuples(st.integers(0, len(KEYS) - 1), hours, st.none() | hours),
    unique_by=lambda item: item[0],
)


@settings(max_examples=300, deadline=None)
@given(history=histories, wish=wishes)
@example(history=[(0, 1, "planned")], wish=[(0, 1, 2)])  # only the expiry moved
def test_changes_reach_a_fixed_point(history, wish):
    store = stored(history)
    want = [wanted(KEYS[i], hours, expires) for i, hours, expires in wish]
    before = {row.key: row for row in store.messages()}
    store.apply(changes(want, store.messages()), T0 + timedelta(hours=1))
    after = {row.key: row for row in store.messages()}
    assert len(changes(want, after.values())) == 0
    # Every wanted message exists, and where it is still open it is exactly as wanted.
    for item in want:
        row = after[item.key]
        if item.key not in before or before[item.key].state in (State.PLANNED, State.CANCELLED) and not before[item.key].verify:
            assert (row.state, row.due, row.expires) == (State.PLANNED, item.due, item.expires)
    # Open rows nobody wants any more are cancelled.
    wanted_keys = {item.key for item in want}
    for key, row in before.items():
        if key not in wanted_keys and row.state is State.PLANNED and not row.verify:
            assert after[key].state is State.CANCELLED
    # What went to a transport, or was given up on, is history: never touched.
    for key, row in before.items():
        if row.state not in (State.PLANNED, State.CANCELLED) or row.verify:
            assert after[key] == row
