"""Times as people read them: in their own zone, with the zone named."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo


def local(moment: datetime, timezone: str) -> datetime:
    return moment.astimezone(ZoneInfo(timezone))


def zone_label(local_moment: datetime) -> str:
    """'CET', or 'UTC+10:30' where the zone has no lettered abbreviation."""
    name = local_moment.strftime("%Z")
    if name[:1] in "+-":
        offset = local_moment.strftime("%z")
        return f"UTC{offset[:3]}:{offset[3:]}" if offset[3:] != "00" else f"UTC{offset[:3]}"
    return name


def long_date(day: date) -> str:
    """'Tuesday 2 March 2027'."""
    return f"{day:%A} {day.day} {day:%B %Y}"


def short_date(day: date) -> str:
    """'Tuesday 2 March'."""
    return f"{day:%A} {day.day} {day:%B}"


def clock(moment: datetime) -> str:
    return f"{moment:%H:%M}"


def span(start: datetime, end: datetime, timezone: str) -> str:
    """'Tuesday 2 March 2027, 10:00–11:00 EST'."""
    a, b = local(start, timezone), local(end, timezone)
    return f"{long_date(a.date())}, {clock(a)}–{clock(b)} {zone_label(a)}"
