"""Marks for a group of messages in one commit, all or none, on every store."""

from __future__ import annotations

from datetime import timedelta

import pytest

from service.domain.outbox import Changes, State
from tests.contract.test_store import T0, store, wanted  # noqa: F401  (the fixture over every store)


def test_a_group_is_marked_sending_then_sent_or_released_without_counting_an_attempt(store):  # noqa: F811
    store.apply(Changes(insert=tuple(wanted(stage, due=T0) for stage in ("welcome", "session1_prep", "homework_checkin"))), T0)
    rows = store.due(T0, 10)
    store.mark_sending_many([(row, f"<{row.stage.value}@example.org>") for row in rows], T0)
    assert store.due(T0, 10) == []
    sending = {r.stage.value: r for r in store.in_flight()}
    assert {stage: (r.message_id, r.attempts) for stage, r in sending.items()} == {
        stage: (f"<{stage}@example.org>", 1) for stage in ("welcome", "session1_prep", "homework_checkin")
    }
    later = T0 + timedelta(minutes=1)
    store.mark_sent_many([sending["welcome"], sending["session1_prep"]], later)
    store.mark_released([sending["homework_checkin"]], later)
    states = {r.stage.value: (r.state, r.attempts, r.sent_at) for r in store.messages()}
    assert states == {
        "welcome": (State.SENT, 1, later),
        "session1_prep": (State.SENT, 1, later),
        "homework_checkin": (State.PLANNED, 0, None),  # never handed over: due again, no attempt spent
    }
    assert [r.stage.value for r in store.due(later, 10)] == ["homework_checkin"]


def test_a_group_with_one_message_not_in_the_expected_state_changes_none(store):  # noqa: F811
    store.apply(Changes(insert=(wanted("welcome"), wanted("session1_prep"))), T0)
    first, second = store.due(T0, 10)
    store.mark_sending(first, "<first@example.org>", T0)  # another process took it
    with pytest.raises(RuntimeError):
        store.mark_sending_many([(first, "<first@example.org>"), (second, "<second@example.org>")], T0)
    expected = {first.stage: State.SENDING, second.stage: State.PLANNED}
    assert {r.stage: r.state for r in store.messages()} == expected
    (sending,) = store.in_flight()
    with pytest.raises(RuntimeError):
        store.mark_sent_many([sending, second], T0)
    assert {r.stage: r.state for r in store.messages()} == expected
