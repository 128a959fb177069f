"""What happens to a message after a failed send: one row per situation."""

from datetime import UTC, datetime, timedelta

import pytest

from service.domain.retry import MAX_ATTEMPTS, CheckAt, Delivery, GiveUp, HoldUncertain, RetryAt, after_failure

NOW = datetime(2027, 3, 1, 9, tzinfo=UTC)
TEN_MINUTES = timedelta(minutes=10)


@pytest.mark.parametrize(
    ("kind", "attempts", "verify_after", "expected"),
    [
        # Nothing went out: try again later, backing off, until the limit.
        (Delivery.TRANSIENT, 1, None, RetryAt),
        (Delivery.TRANSIENT, MAX_ATTEMPTS - 1, TEN_MINUTES, RetryAt),
        (Delivery.TRANSIENT, MAX_ATTEMPTS, None, GiveUp),
        # Trying again will not help, whatever the attempt.
        (Delivery.PERMANENT, 1, None, GiveUp),
        (Delivery.PERMANENT, 1, TEN_MINUTES, GiveUp),
        # It may have gone out: ask the transport when it can tell, else a human decides.
        (Delivery.UNKNOWN, 1, TEN_MINUTES, CheckAt),
        (Delivery.UNKNOWN, 1, timedelta(0), CheckAt),
        (Delivery.UNKNOWN, 1, None, HoldUncertain),
        (Delivery.UNKNOWN, MAX_ATTEMPTS, None, HoldUncertain),
    ],
)
def test_the_decision_follows_the_kind_of_failure(kind, attempts, verify_after, expected):
    decision = after_failure(kind, "421 try later", attempts=attempts, now=NOW, key="p/welcome/a@example.org/0", verify_after=verify_after)
    assert type(decision) is expected
    assert "421 try later" in decision.reason


def test_retries_back_off_within_bounds_and_replay_the_same_way():
    delays = []
    for attempts in range(1, MAX_ATTEMPTS):
        decision = after_failure(Delivery.TRANSIENT, "busy", attempts=attempts, now=NOW, key="k", verify_after=None)
        again = after_failure(Delivery.TRANSIENT, "busy", attempts=attempts, now=NOW, key="k", verify_after=None)
        assert isinstance(decision, RetryAt) and decision == again  # jitter comes from the key, not chance
        delays.append(decision.at - NOW)
    assert delays[0] >= timedelta(seconds=45) and max(delays) <= timedelta(hours=4)
    assert delays == sorted(delays) or delays[-5:] != sorted(delays[-5:])  # capped waits may jitter
    assert timedelta(hours=18) <= sum(delays, timedelta(0)) <= timedelta(hours=24)  # about a day in all


def test_a_check_is_due_when_the_transport_can_tell():
    decision = after_failure(Delivery.UNKNOWN, "connection dropped after DATA", attempts=1, now=NOW, key="k", verify_after=TEN_MINUTES)
    assert decision == CheckAt(NOW + TEN_MINUTES, "connection dropped after DATA")
