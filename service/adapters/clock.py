"""Clocks: the only place that reads the real time, and one that tests and rehearsals move."""

from __future__ import annotations

from datetime import UTC, datetime

from ..domain.ports import Clock


class SystemClock(Clock):
    def now(self) -> datetime:
        return datetime.now(UTC)


class SimulatedClock(Clock):
    """Time that stands still until told to jump: months of a program in seconds."""

    def __init__(self, start: datetime):
        if start.tzinfo is None:
            raise ValueError("the simulated clock needs an aware start time")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def advance_to(self, moment: datetime) -> None:
        if moment > self._now:
            self._now = moment.astimezone(UTC)
