"""When to read the calendar for what people changed in it (answers, declines, moves).

With push, Google tells the service when the calendar changes: a read follows each
notice, and one a day in case a notice was lost. Without push the calendar is polled:
at the daemon's poll interval at first and near sessions, when people decline and move
them; less and less often while nothing changes. Pure: the caller gives the times."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

LONGEST_QUIET = timedelta(hours=2)  # the longest wait between polls while nothing changes
NEAR = timedelta(hours=24)  # this close to a session, poll at the base rate
SAFETY = timedelta(days=1)  # with push: read at least this often, in case a notice was lost


@dataclass
class CalendarReads:
    base: timedelta  # the daemon's poll interval
    pushed: bool = False  # Google sends notices of changes
    last: datetime | None = None  # the last read
    quiet: int = 0  # reads in a row that found nothing

    def due(self, now: datetime, *, notified: bool = False, next_session: datetime | None = None) -> bool:
        """Whether to read now: a notice came, or the time for the next read has come."""
        at = self.next_read(next_session)
        return notified or at is None or now >= at

    def next_read(self, next_session: datetime | None = None) -> datetime | None:
        """When the calendar is next read without a notice (None: at once)."""
        if self.last is None:
            return None
        if self.pushed:
            return self.last + SAFETY
        at = self.last + min(self.base * 2**self.quiet, LONGEST_QUIET)
        if next_session is not None and next_session - at < NEAR:
            at = min(at, self.last + self.base)
        return at

    def read(self, now: datetime, *, changed: bool) -> None:
        self.last = now
        self.quiet = 0 if changed else min(self.quiet + 1, 8)

    def wrote(self) -> None:
        """The service changed the calendar: read at the next tick (Meet links come back
        that way), then at the base rate."""
        self.last, self.quiet = None, 0
