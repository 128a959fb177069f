"""Busy time from Google free/busy, for the people whose calendars the organiser can read."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from ...domain.ports import FreeBusy
from .api import Backoff, Failure, call

ITEMS = 50  # calendars per query
WINDOW = timedelta(days=89)  # Google refuses ranges much beyond 90 days
# Per-calendar answers meaning the organiser may not read it (people outside the
# organisation): their declared hours stand in. Any other error is Google's own trouble.
CANNOT_READ = {"notFound", "forbidden", "notACalendarUser", "groupTooBig", "tooManyCalendarsRequested"}


class GoogleFreeBusy(FreeBusy):
    def __init__(self, service: Callable[[], Any], backoff: Backoff | None = None):
        self._service_factory = service
        self.backoff = backoff or Backoff()

    def busy(
        self, emails: Sequence[str], start: datetime, end: datetime
    ) -> tuple[dict[str, list[tuple[datetime, datetime]]], set[str], dict[str, str]]:
        """Busy intervals by email; the emails whose calendars cannot be read (people
        outside the organisation): those keep their declared availability; and the
        calendars Google failed to answer for (internalError, backendError), asked again
        a few times first, with the reason: they are not passed off as unreadable."""
        service = self._service_factory()
        busy: dict[str, list[tuple[datetime, datetime]]] = {}
        unreadable: set[str] = set()
        failed: dict[str, str] = {}
        for first in range(0, len(emails), ITEMS):
            group = list(emails[first : first + ITEMS])
            window = start
            while window < end:
                until = min(window + WINDOW, end)
                asked = group
                for attempt in range(self.backoff.attempts):
                    failing = self._query(service, asked, window, until, busy, unreadable)
                    if not failing:
                        break
                    if attempt == self.backoff.attempts - 1:
                        failed.update(failing)
                        break
                    self.backoff.sleep(self.backoff.delay(attempt, Failure("free/busy", retry=True)))
                    asked = sorted(failing)
                window = until
        for email in unreadable | failed.keys():
            busy.pop(email, None)  # part of their time is unknown: none of it is kept
        return busy, unreadable, failed

    def _query(self, service, emails: list[str], start: datetime, end: datetime, busy: dict, unreadable: set[str]) -> dict[str, str]:
        """One query; busy time and unreadable calendars go into `busy` and `unreadable`.
        Returns the calendars Google failed for, with the reason."""
        body = {
            "timeMin": start.isoformat(),
            "timeMax": end.isoformat(),
            "timeZone": "UTC",
            "items": [{"id": email} for email in emails],
            "calendarExpansionMax": ITEMS,
        }
        answer = call(service.freebusy().query(body=body), self.backoff)
        failed: dict[str, str] = {}
        for email, calendar in answer.get("calendars", {}).items():
            errors = calendar.get("errors")
            if errors:
                reasons = {e.get("reason", "") for e in errors}
                if reasons & CANNOT_READ:
                    unreadable.add(email.lower())
                else:
                    failed[email.lower()] = ",".join(sorted(reasons))
                continue
            busy.setdefault(email.lower(), []).extend((_moment(b["start"]), _moment(b["end"])) for b in calendar.get("busy", []))
        return failed


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
