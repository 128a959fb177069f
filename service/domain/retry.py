"""Whether and when to try a failed send again: a pure decision."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

FIRST_DELAY = timedelta(minutes=1)
MAX_DELAY = timedelta(hours=2)
MAX_ATTEMPTS = 8  # about five hours of trying before a human is asked


@dataclass(frozen=True)
class RetryAt:
    at: datetime


@dataclass(frozen=True)
class GiveUp:
    reason: str


def retry_decision(*, attempts: int, now: datetime, key: str) -> RetryAt | GiveUp:
    """After `attempts` failed tries: exponential backoff with jitter, capped.

    The jitter comes from the message key, so a replay decides the same way and a burst
    of failures does not retry in lockstep.
    """
    if attempts >= MAX_ATTEMPTS:
        return GiveUp(f"gave up after {attempts} attempts")
    delay = min(FIRST_DELAY * 2 ** (attempts - 1), MAX_DELAY)
    spread = int(hashlib.sha256(f"{key}:{attempts}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return RetryAt(now + delay * (0.5 + spread / 2))
