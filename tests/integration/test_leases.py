"""Leases and fencing on the real PostgreSQL: cohorts kept apart in one database, a claim
skips rows another replica is taking, a take-over increments the token, and a replica
that was replaced can no longer mark a message `sending`."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import text

from service.adapters.store import open_store
from service.adapters.store.leases import Fence, Leases
from service.domain.leases import LeaseLost, margin
from service.domain.outbox import Changes, State
from tests.contract.test_store import T0, postgres_database, wanted

LEASE = timedelta(seconds=30)


def fence(cohort: str, owner: str, token: int) -> Fence:
    return Fence(cohort, owner, token, LEASE, margin(LEASE), since=time.monotonic())


def expire(leases: Leases, cohort: str) -> None:
    """As if the holder had stopped renewing 31 seconds ago."""
    with leases.engine.begin() as connection:
        connection.execute(text("UPDATE fleet.leases SET expires_at = now() - interval '1 second' WHERE cohort = :c"), {"c": cohort})


@pytest.mark.postgres
def test_each_cohort_has_its_own_rows_in_one_database():
    with postgres_database() as url:
        spring, autumn = open_store(url, cohort="spring"), open_store(url, cohort="autumn")
        try:
            spring.apply(Changes(insert=(wanted(pair_id="p1"), wanted(pair_id="p2"))), T0)
            autumn.apply(Changes(insert=(wanted(pair_id="p1"),)), T0)
            assert (len(spring.messages()), len(autumn.messages())) == (2, 1)
        finally:
            spring.close()
            autumn.close()


@pytest.mark.postgres
def test_a_claim_takes_only_free_leases_and_a_take_over_increments_the_token():
    with postgres_database() as url:
        one, two = Leases.open(url, "one", LEASE), Leases.open(url, "two", LEASE)
        try:
            one.add(["a", "b", "c"])
            assert one.claim(["a", "b", "c"], 2) == {"a": 1, "b": 1}
            assert two.claim(["a", "b", "c"], 3) == {"c": 1}, "a and b are held"
            beat = two.heartbeat({"c": 1})
            assert beat.renewed == {"c": 1} and beat.replicas == 1
            expire(one, "a")
            assert two.claim(["a", "b", "c"], 3) == {"a": 2}
            assert one.heartbeat({"a": 1, "b": 1}).renewed == {"b": 1}, "a was taken over"
            one.release("b", 1, done=True)
            assert two.claim(["a", "b", "c"], 3) == {}, "a finished cohort is nobody's work"
        finally:
            one.close()
            two.close()


@pytest.mark.postgres
def test_a_replaced_replica_cannot_mark_a_message_sending():
    with postgres_database() as url:
        one, two = Leases.open(url, "one", LEASE), Leases.open(url, "two", LEASE)
        store = open_store(url, cohort="spring")
        try:
            one.add(["spring"])
            (token,) = one.claim(["spring"], 1).values()
            store.fence = fence("spring", "one", token)
            store.apply(Changes(insert=(wanted(recipient="a@example.org"), wanted(recipient="b@example.org"))), T0)
            first, second = store.messages()
            store.mark_sending(first, "<a@example.org>", T0)  # the lease holds

            expire(one, "spring")
            assert two.claim(["spring"], 1) == {"spring": token + 1}
            assert store.lock_held(), "this replica's own clock has not noticed yet"
            with pytest.raises(LeaseLost):
                store.mark_sending(second, "<b@example.org>", T0)
            assert not store.lock_held(), "once the database said no, it stops at once"
            assert {r.recipient: r.state for r in store.messages()} == {"a@example.org": State.SENDING, "b@example.org": State.PLANNED}
        finally:
            store.close()
            one.close()
            two.close()


@pytest.mark.postgres
def test_too_little_lease_left_is_no_lease_for_sending():
    with postgres_database() as url:
        one = Leases.open(url, "one", LEASE)
        store = open_store(url, cohort="spring")
        try:
            one.add(["spring"])
            (token,) = one.claim(["spring"], 1).values()
            store.fence = fence("spring", "one", token)
            store.apply(Changes(insert=(wanted(),)), T0)
            with one.engine.begin() as connection:  # 5 seconds left: less than a third of the lease
                connection.execute(text("UPDATE fleet.leases SET expires_at = now() + interval '5 seconds'"))
            with pytest.raises(LeaseLost):
                store.mark_sending(store.messages()[0], "<m@example.org>", T0)
            assert store.messages()[0].state is State.PLANNED
        finally:
            store.close()
            one.close()
