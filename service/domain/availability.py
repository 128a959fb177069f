"""Working hours, busy time and time zones, reduced to spans of UTC minutes.

Inside the planner a moment is an int: minutes since the Unix epoch in UTC. Integer
arithmetic keeps the search fast and free of time-zone mistakes; conversion happens only
here, at the edges.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from .model import WorkingPattern

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Span = tuple[int, int]  # [start, end) in UTC minutes


def to_minutes(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError(f"{moment} has no time zone")
    return int(moment.timestamp()) // 60


def from_minutes(minutes: int) -> datetime:
    return EPOCH + timedelta(minutes=minutes)


def local_moment(day: date, at: time, timezone: str) -> datetime:
    """The UTC instant of a wall-clock time in a zone.

    A time skipped by a DST jump (02:30 on a spring-forward night) lands just after
    the jump; a repeated time (the autumn fall-back) means its first occurrence.
    """
    return datetime.combine(day, at, tzinfo=ZoneInfo(timezone)).astimezone(UTC)


def midnight(day: date, timezone: str) -> int:
    return to_minutes(local_moment(day, time(0), timezone))


@dataclass(frozen=True, slots=True)
class DaySpan:
    """Free time inside one working period of one person's local day."""

    start: int
    end: int
    day_start: int  # where that working period begins and ends: how "inside the day"
    day_end: int  # a session sits is measured against these
    day: int  # the local date's ordinal, to spread sessions over days


@lru_cache(maxsize=4096)
def working_spans(pattern: WorkingPattern, first: date, last: date) -> tuple[DaySpan, ...]:
    """Every working period from `first` to `last` (local dates, inclusive), in UTC.

    Cached: most people share a handful of patterns, and DST-aware conversion is the
    costly part of planning.
    """
    spans: list[DaySpan] = []
    day = first
    while day <= last:
        if day.weekday() in pattern.days and day not in pattern.blackout_dates and day not in pattern.holidays:
            for hours in pattern.hours:
                start = to_minutes(local_moment(day, hours.start, pattern.timezone))
                end = to_minutes(local_moment(day, hours.end, pattern.timezone))
                if end > start:
                    spans.append(DaySpan(start, end, start, end, day.toordinal()))
        day += timedelta(days=1)
    return tuple(spans)


# However far hours are stretched, nobody meets before 06:00 or after 22:00 their time.
EARLIEST, LATEST = time(6), time(22)


@lru_cache(maxsize=4096)
def stretched_spans(pattern: WorkingPattern, first: date, last: date, minutes: int) -> tuple[DaySpan, ...]:
    """working_spans with each working day widened by up to `minutes` before its first
    period and after its last, never before EARLIEST or after LATEST local time. The
    spans keep the real edges of the hours in day_start and day_end, so the minutes
    outside them can be measured."""
    spans = list(working_spans(pattern, first, last))
    if minutes <= 0:
        return tuple(spans)
    bounds = _waking_hours(pattern.timezone, first, last)
    for i, span in enumerate(spans):
        start, end = span.start, span.end
        earliest, latest = bounds[span.day - first.toordinal()]
        if i == 0 or spans[i - 1].day != span.day:  # the day's first period
            start = min(start, max(start - minutes, earliest))
        if i + 1 == len(spans) or spans[i + 1].day != span.day:  # the day's last period
            end = max(end, min(end + minutes, latest))
        spans[i] = DaySpan(start, end, span.day_start, span.day_end, span.day)
    return tuple(spans)


@lru_cache(maxsize=256)
def _waking_hours(timezone: str, first: date, last: date) -> tuple[tuple[int, int], ...]:
    """EARLIEST and LATEST of each local day from `first` to `last`, in UTC minutes."""
    days = (first + timedelta(days=n) for n in range((last - first).days + 1))
    return tuple((to_minutes(local_moment(d, EARLIEST, timezone)), to_minutes(local_moment(d, LATEST, timezone))) for d in days)


def outside(start: int, length: int, day_start: int, day_end: int) -> tuple[int, int]:
    """How far a session starting at `start` reaches before `day_start` and after
    `day_end`, in minutes: what the person's day is stretched by."""
    return max(0, day_start - start), max(0, start + length - day_end)


def merge(spans: Iterable[Span]) -> list[Span]:
    """Sorted, non-overlapping union of spans."""
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(s, e) for s, e in merged]


def subtract(free: Sequence[DaySpan], busy: Sequence[Span]) -> list[DaySpan]:
    """Free spans minus busy ones; `busy` must be merged (sorted, disjoint)."""
    if not busy:
        return list(free)
    out: list[DaySpan] = []
    i, count = 0, len(busy)
    for span in free:
        start, end = span.start, span.end
        while i < count and busy[i][1] <= start:
            i += 1
        if i == count or busy[i][0] >= end:
            out.append(span)  # untouched: no need for a new object
            continue
        j = i
        while j < count and busy[j][0] < end:
            if busy[j][0] > start:
                out.append(DaySpan(start, busy[j][0], span.day_start, span.day_end, span.day))
            start = max(start, busy[j][1])
            j += 1
        if start < end:
            out.append(DaySpan(start, end, span.day_start, span.day_end, span.day))
    return out


@dataclass(frozen=True, slots=True)
class SharedSpan:
    """Time both people of a pair are free, with the edges of both working days."""

    start: int
    end: int
    day_start: int  # the later of the two working-period starts
    day_end: int  # the earlier of the two working-period ends
    mentor_day: int
    mentee_day: int


@dataclass(frozen=True, slots=True)
class StretchedSpan(SharedSpan):
    """Shared time that may lie outside someone's hours: each person's real working
    period, (start, end) in UTC minutes, is kept to measure by how much."""

    mentor_hours: tuple[int, int]
    mentee_hours: tuple[int, int]


def intersect(a: Sequence[DaySpan], b: Sequence[DaySpan], *, stretched: bool = False) -> list[SharedSpan]:
    """Where both sorted, disjoint span lists are free at once; `stretched` keeps each
    side's own working period (a is the mentor's, b the mentee's)."""
    out: list[SharedSpan] = []
    i = j = 0
    na, nb = len(a), len(b)
    while i < na and j < nb:
        x, y = a[i], b[j]
        x_end, y_end = x.end, y.end
        start = x.start if x.start > y.start else y.start
        end = x_end if x_end < y_end else y_end
        if start < end:
            day_start = x.day_start if x.day_start > y.day_start else y.day_start
            day_end = x.day_end if x.day_end < y.day_end else y.day_end
            if stretched:
                hours = (x.day_start, x.day_end), (y.day_start, y.day_end)
                out.append(StretchedSpan(start, end, day_start, day_end, x.day, y.day, *hours))
            else:
                out.append(SharedSpan(start, end, day_start, day_end, x.day, y.day))
        if x_end <= y_end:
            i += 1
        else:
            j += 1
    return out
