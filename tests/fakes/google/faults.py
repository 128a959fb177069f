"""Injected failures: by rule (`Fault`) or at random (`Chaos`)."""

from __future__ import annotations

import fnmatch
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import DEFAULT_MESSAGES, DEFAULT_REASONS


@dataclass(frozen=True)
class ApiCall:
    """What a fault predicate sees about one API call (a direct request or one part of a batch)."""

    method_id: str
    http_method: str
    path: str
    query: dict[str, list[str]]
    body: Any  # the parsed JSON body, or None
    user: str | None  # the acting user, when the request carried a valid token
    in_batch: bool


# Presets by kind, for Fault.of_kind and chaos(kinds=...).
KINDS: dict[str, dict[str, Any]] = {
    "429": {"status": 429, "reason": "rateLimitExceeded", "retry_after": 1},
    "403-rate": {"status": 403, "reason": "rateLimitExceeded"},
    "403-user-rate": {"status": 403, "reason": "userRateLimitExceeded"},
    "403-quota": {"status": 403, "reason": "quotaExceeded"},
    "500": {"status": 500, "reason": "backendError"},
    "503": {"status": 503, "reason": "backendError", "message": "The service is currently unavailable."},
    "409": {"status": 409, "reason": "conflict"},
    "410": {"status": 410, "reason": "deleted"},
    "drop_before": {"drop_before": True},
    "drop_after": {"drop_after": True},
    "delay": {"delay": 2.0},
}


@dataclass
class Fault:
    """A rule that makes matching API calls fail.

    Matching: `method` is a method id ("calendar.events.insert") or an fnmatch pattern
    ("calendar.events.*"); None matches every API call. `when(call)` narrows it further,
    `in_batch` restricts it to batch parts (True) or direct requests (False). `every=N`
    fires on the Nth, 2Nth, ... matching call; `times` caps how often it fires (None: no cap).

    Effect (`delay` may be combined with any other one):
      status        answer with that HTTP status and Google's error JSON (`reason`, `message`;
                    `retry_after` sets a Retry-After header), without processing the request
                    (with `processed`: after processing it, as a gateway timing out on a
                    backend that did the work);
      drop_before   close the connection without processing and without a response;
      drop_after    process the request (its effect happens), then close without a response;
      delay         sleep that many seconds before processing (to trigger client timeouts).
    """

    method: str | None = None
    status: int | None = None
    reason: str | None = None
    message: str | None = None
    retry_after: float | None = None
    drop_before: bool = False
    drop_after: bool = False
    delay: float = 0.0
    times: int | None = None
    every: int | None = None
    when: Callable[[ApiCall], bool] | None = None
    in_batch: bool | None = None
    processed: bool = False
    seen: int = field(default=0, init=False)
    fired: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        effects = sum([self.status is not None, self.drop_before, self.drop_after])
        if effects > 1:
            raise ValueError("a Fault has one of status, drop_before, drop_after (plus an optional delay)")
        if effects == 0 and not self.delay:
            raise ValueError("a Fault needs an effect: status, drop_before, drop_after or delay")
        if self.every is not None and self.every < 1:
            raise ValueError("every must be >= 1")

    @classmethod
    def of_kind(cls, kind: str, method: str | None = None, **overrides: Any) -> Fault:
        """A preset: "429", "403-rate", "403-user-rate", "403-quota", "500", "503", "409", "410",
        "drop_before", "drop_after", "delay"."""
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(KINDS)}")
        settings = dict(KINDS[kind])
        settings.update(overrides)
        return cls(method=method, **settings)

    @property
    def kind(self) -> str:
        if self.drop_before:
            return "drop_before"
        if self.drop_after:
            return "drop_after"
        if self.status is not None:
            return f"{self.status} {self.resolved_reason}"
        return "delay"

    @property
    def resolved_reason(self) -> str:
        return self.reason or DEFAULT_REASONS.get(self.status or 500, "backendError")

    @property
    def resolved_message(self) -> str:
        return self.message or DEFAULT_MESSAGES.get(self.resolved_reason, f"Error {self.status}")

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times

    def matches(self, call: ApiCall) -> bool:
        """Count the call and tell whether the fault fires on it (call with the lock held)."""
        if self.exhausted:
            return False
        if self.method is not None and not fnmatch.fnmatchcase(call.method_id, self.method):
            return False
        if self.in_batch is not None and call.in_batch != self.in_batch:
            return False
        if self.when is not None and not self.when(call):
            return False
        self.seen += 1
        if self.every is not None and self.seen % self.every:
            return False
        self.fired += 1
        return True


class Chaos:
    """Random faults on every API call (never on the token endpoint)."""

    def __init__(
        self,
        rate: float,
        seed: int | None = None,
        kinds: tuple[str, ...] = ("429", "500", "drop_before", "drop_after"),
        methods: str | None = None,
    ) -> None:
        if not 0 <= rate <= 1:
            raise ValueError("rate must be within 0..1")
        for kind in kinds:
            if kind not in KINDS:
                raise ValueError(f"unknown fault kind {kind!r}")
        self.rate = rate
        self.kinds = tuple(kinds)
        self.methods = methods
        self.random = random.Random(seed)
        self.injected: list[tuple[str, str]] = []  # (method id, kind)

    def pick(self, call: ApiCall) -> Fault | None:
        if self.methods is not None and not fnmatch.fnmatchcase(call.method_id, self.methods):
            return None
        if not self.kinds or self.random.random() >= self.rate:
            return None
        kind = self.random.choice(self.kinds)
        self.injected.append((call.method_id, kind))
        fault = Fault.of_kind(kind, method=call.method_id, times=1)
        fault.fired = 1
        return fault
