"""Busy time from iCalendar (.ics) files that participants export from their calendars."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events

from ..domain.model import Person

Interval = tuple[datetime, datetime]


def busy_intervals(calendar: icalendar.Calendar, person: Person, start: datetime, end: datetime) -> list[Interval]:
    """Every busy occurrence between start and end, recurring events expanded.

    Free ("transparent") and cancelled events are not busy. All-day events and times
    without a zone are read in the person's own time zone.
    """
    zone = ZoneInfo(person.timezone)
    try:
        events = recurring_ical_events.of(calendar).between(start, end)
    except Exception as exc:  # the library raises many kinds for broken rules
        raise ValueError(f"has an event that cannot be read: {exc}") from None
    intervals = []
    for event in events:
        if str(event.get("TRANSP", "OPAQUE")).upper() == "TRANSPARENT":
            continue
        if str(event.get("STATUS", "")).upper() == "CANCELLED":
            continue
        begin = _aware(event.decoded("DTSTART"), zone)
        finish = _aware(event.decoded("DTEND"), zone) if "DTEND" in event else None
        if finish is None:
            duration = event.decoded("DURATION") if "DURATION" in event else None
            finish = begin + (duration or timedelta(days=1 if _is_date(event.decoded("DTSTART")) else 0))
        if finish > begin:
            intervals.append((begin.astimezone(UTC), finish.astimezone(UTC)))
    return sorted(intervals)


def parse(path: Path) -> icalendar.Calendar:
    """The calendar in an .ics file; ValueError with a plain reason if it is not one."""
    try:
        return icalendar.Calendar.from_ical(path.read_bytes())
    except OSError as exc:
        raise ValueError(f"{path.name!r} cannot be read: {exc.strerror}") from None
    except Exception as exc:  # icalendar reports bad input with several exception types
        raise ValueError(f"{path.name!r} is not an iCalendar file: {exc}") from None


def _is_date(value: date | datetime) -> bool:
    return not isinstance(value, datetime)


def _aware(value: date | datetime, zone: ZoneInfo) -> datetime:
    if not isinstance(value, datetime):  # an all-day event: from midnight, local time
        return datetime.combine(value, time(0), tzinfo=zone)
    return value if value.tzinfo else value.replace(tzinfo=zone)
