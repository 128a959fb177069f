"""What to do after a failed send: a pure decision from the kind of failure, the
attempts so far and `now`."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

FIRST_DELAY = timedelta(minutes=1)
MAX_DELAY = timedelta(hours=4)
# 1, 2, 4 ... 128 minutes, then every 4 hours: 13 waits of 18 to 24 hours in all, so a
# mail server down for a night is ridden out before a human is asked.
MAX_ATTEMPTS = 14


class Delivery(StrEnum):
    """What a failed hand-over means for the message."""

    TRANSIENT = "transient"  # nothing was delivered; trying again later is safe
    PERMANENT = "permanent"  # nothing was delivered; trying again will not help
    UNKNOWN = "unknown"  # it may or may not have been delivered: never resend blindly


@dataclass(frozen=True)
class RetryAt:
    at: datetime
    reason: str


@dataclass(frozen=True)
class GiveUp:
    reason: str


@dataclass(frozen=True)
class CheckAt:
    """It may have gone out: ask the transport at `at` before anything else."""

    at: datetime
    reason: str


@dataclass(frozen=True)
class HoldUncertain:
    """It may have gone out and the transport can never tell: a human decides."""

    reason: str


Decision = RetryAt | GiveUp | CheckAt | HoldUncertain


def after_failure(kind: Delivery, reason: str, *, attempts: int, now: datetime, key: str, verify_after: timedelta | None) -> Decision:
    """`attempts` counts this one. `verify_after`: how soon the transport can tell
    whether a message went out (None: never)."""
    if kind is Delivery.UNKNOWN:
        return maybe_sent(reason, now=now, verify_after=verify_after)
    if kind is Delivery.PERMANENT:
        return GiveUp(reason)
    decision = retry_decision(attempts=attempts, now=now, key=key)
    if isinstance(decision, GiveUp):
        return GiveUp(f"{reason}; {decision.reason}")
    return RetryAt(decision.at, reason)


def maybe_sent(reason: str, *, now: datetime, verify_after: timedelta | None) -> CheckAt | HoldUncertain:
    """A send that may have gone out is never repeated blindly."""
    if verify_after is None:
        return HoldUncertain(f"{reason}; it may or may not have gone out")
    return CheckAt(now + verify_after, reason)


def retry_decision(*, attempts: int, now: datetime, key: str) -> RetryAt | GiveUp:
    """After `attempts` failed tries: exponential backoff with jitter, capped.

    The jitter comes from the message key, so a replay decides the same way and a burst
    of failures does not retry in lockstep.
    """
    if attempts >= MAX_ATTEMPTS:
        return GiveUp(f"gave up after {attempts} attempts")
    delay = min(FIRST_DELAY * 2 ** (attempts - 1), MAX_DELAY)
    spread = int(hashlib.sha256(f"{key}:{attempts}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return RetryAt(now + delay * (0.75 + spread / 4), "backing off")
