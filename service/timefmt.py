"""Times as people read them: in their own zone, with the zone named."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from .domain.availability import zone


def local(moment: datetime, timezone: str) -> datetime:
    return moment.astimezone(zone(timezone))


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


_NUMBERS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve")


def how_many(count: int, unit: str) -> str:
    """'two sessions', 'one hour', '15 minutes': small numbers in words, as people write them."""
    number = _NUMBERS[count] if count < len(_NUMBERS) else str(count)
    return f"{number} {unit}{'' if count == 1 else 's'}"


def duration(length: timedelta) -> str:
    """A session's length: 'one hour', '45 minutes', 'an hour and a half', 'one hour and 15 minutes'."""
    hours, minutes = divmod(round(length.total_seconds() / 60), 60)
    if not hours:
        return f"{minutes} minutes"
    if hours == 1 and minutes == 30:
        return "an hour and a half"
    whole = how_many(hours, "hour")
    return f"{whole} and {minutes} minutes" if minutes else whole


def period(first: date, last: date) -> str:
    """How long a program runs, first and last day included: 'ten days', 'six weeks', 'four months'."""
    days = (last - first).days + 1
    if days < 14:
        return how_many(days, "day")
    if days < 56:
        return how_many(round(days / 7), "week")
    return how_many(round(days / 30.44), "month")
