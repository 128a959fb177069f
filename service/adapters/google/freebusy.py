"""Busy time from Google free/busy, for the people whose calendars the organiser can read."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from ...domain.ports import FreeBusy
from .api import Backoff, call

ITEMS = 50  # calendars per query
WINDOW = timedelta(days=89)  # Google refuses ranges much beyond 90 days


class GoogleFreeBusy(FreeBusy):
    def __init__(self, service: Callable[[], Any], backoff: Backoff | None = None):
        self._service_factory = service
        self.backoff = backoff or Backoff()

    def busy(self, emails: Sequence[str], start: datetime, end: datetime) -> tuple[dict[str, list[tuple[datetime, datetime]]], set[str]]:
        """Busy intervals by email, and the emails whose calendars could not be read
        (people outside the organisation): those keep their declared availability."""
        service = self._service_factory()
        busy: dict[str, list[tuple[datetime, datetime]]] = {}
        unreadable: set[str] = set()
        for first in range(0, len(emails), ITEMS):
            group = list(emails[first : first + ITEMS])
            window = start
            while window < end:
                until = min(window + WINDOW, end)
                body = {
                    "timeMin": window.isoformat(),
                    "timeMax": until.isoformat(),
                    "timeZone": "UTC",
                    "items": [{"id": email} for email in group],
                    "calendarExpansionMax": ITEMS,
                }
                answer = call(service.freebusy().query(body=body), self.backoff)
                for email, calendar in answer.get("calendars", {}).items():
                    if calendar.get("errors"):
                        unreadable.add(email.lower())
                        continue
                    busy.setdefault(email.lower(), []).extend((_moment(b["start"]), _moment(b["end"])) for b in calendar.get("busy", []))
                window = until
        for email in unreadable:
            busy.pop(email, None)
        return busy, unreadable


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
