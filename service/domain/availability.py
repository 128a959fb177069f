"""Working hours, busy time and time zones, reduced to UTC minutes.

Inside the planner a moment is an int: minutes since the Unix epoch in UTC. Integer
arithmetic keeps the search fast and free of time-zone mistakes; conversion happens only
here, at the edges, once: busy times when they are read, working hours once per pattern.
A pair's free time is then lists of ints (see Free), not an object per span: a cohort of
10,000 pairs has close to a million busy intervals and half a million free pieces.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import cache, lru_cache
from operator import itemgetter
from typing import NamedTuple
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


@cache
def zone(name: str) -> ZoneInfo:
    """A time zone by its name, kept: ZoneInfo's own cache holds only the last few, and a
    cohort in a dozen zones read them from disk again and again."""
    return ZoneInfo(name)


def local_moment(day: date, at: time, timezone: str) -> datetime:
    """The UTC instant of a wall-clock time in a zone.

    A time skipped by a DST jump (02:30 on a spring-forward night) lands just after
    the jump; a repeated time (the autumn fall-back) means its first occurrence.
    """
    return datetime.combine(day, at, tzinfo=zone(timezone)).astimezone(UTC)


def midnight(day: date, timezone: str) -> int:
    return to_minutes(local_moment(day, time(0), timezone))


class DaySpan(NamedTuple):
    """One working period of one person's local day, perhaps stretched."""

    start: int
    end: int
    day_start: int  # where the working period really begins and ends: how "inside the day"
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


def busy_minutes(intervals: Iterable[tuple[datetime, datetime]]) -> list[Span]:
    """Busy intervals as [start, end) in UTC minutes, sorted; the start floored and the
    end raised to the minute (a meeting until 10:00:30 takes the minute from 10:00), empty
    intervals left out, overlapping ones kept (free_time takes them in its stride).
    ValueError for a time without a zone.

    A cohort of 10,000 pairs brings close to a million intervals: the minutes are read
    off `moment - EPOCH` (days and seconds), twice as fast as timestamp()."""
    out = []
    try:
        for start, end in intervals:
            since, until = start - EPOCH, end - EPOCH  # a naive time cannot be subtracted
            first, last = since.days * 1440 + since.seconds // 60, until.days * 1440 + until.seconds // 60
            last += bool(until.seconds % 60 or until.microseconds)
            if first < last:
                out.append((first, last))
    except TypeError:
        raise ValueError(f"busy time {start}..{end} has no time zone") from None
    out.sort()
    return out


class BusyMinutes(dict[str, list[Span]]):
    """Busy times by email, each person's as busy_minutes gives them. Made once where busy
    times are read, it spares every later plan the conversion: a quarter of the planning
    time of a cohort of 10,000 pairs. The lists are shared: nobody changes them."""

    @classmethod
    def of(cls, busy: Mapping[str, Iterable[tuple[datetime, datetime]]]) -> BusyMinutes:
        """`busy` in minutes (as it is when it is in minutes already)."""
        if isinstance(busy, BusyMinutes):
            return busy
        return cls({email: busy_minutes(intervals) for email, intervals in busy.items()})


def busy_of(busy: Mapping[str, Iterable[tuple[datetime, datetime]]] | BusyMinutes, email: str) -> list[Span]:
    """One person's busy times in minutes, sorted, from busy times in either form."""
    if isinstance(busy, BusyMinutes):
        return busy.get(email, [])
    return busy_minutes(busy.get(email, ()))


# Where a working period of the mentor's and one of the mentee's overlap: (start, end,
# day_start, day_end, mentor_day, mentee_day), and for stretched hours (..., mentor_from,
# mentor_to, mentee_from, mentee_to). [start, end) in UTC minutes; the edges of the day
# both are inside (the later start, the earlier end); each one's local date (an
# ordinal); each one's own working period. A plain tuple of ints, not a NamedTuple: the
# garbage collector stops tracking those, and a large cohort holds some 100,000.
Overlap = tuple[int, ...]
day_of_mentor, day_of_mentee = itemgetter(4), itemgetter(5)  # each one's local date in an Overlap


class Hours(NamedTuple):
    """Where two people's working hours meet, in order."""

    periods: tuple[Overlap, ...]
    # The most minutes a period has inside both people's days (day_end - day_start; below
    # zero when their hours only meet stretched): bounds how well any time can score.
    widest: int


def meet(a: Sequence[DaySpan], b: Sequence[DaySpan], lo: int, hi: int, *, own_hours: bool = False) -> Hours:
    """Where the sorted working periods `a` (the mentor's) and `b` (the mentee's) overlap,
    cut to [lo, hi); `own_hours` keeps each side's own working period."""
    out: list[Overlap] = []
    i, j = bisect_right(a, lo, key=_end), bisect_right(b, lo, key=_end)
    while i < len(a) and j < len(b):
        a_start, a_end, a_day_start, a_day_end, a_day = a[i]
        b_start, b_end, b_day_start, b_day_end, b_day = b[j]
        if a_start >= hi or b_start >= hi:
            break
        # Comparisons rather than max() and min(): thousands of pattern pairs in a large cohort.
        start = a_start if a_start > b_start else b_start
        end = a_end if a_end < b_end else b_end
        start, end = start if start > lo else lo, end if end < hi else hi
        if start < end:
            day_start = a_day_start if a_day_start > b_day_start else b_day_start
            day_end = a_day_end if a_day_end < b_day_end else b_day_end
            if own_hours:
                out.append((start, end, day_start, day_end, a_day, b_day, a_day_start, a_day_end, b_day_start, b_day_end))
            else:
                out.append((start, end, day_start, day_end, a_day, b_day))
        if a_end <= b_end:
            i += 1
        else:
            j += 1
    return Hours(tuple(out), max((period[3] - period[2] for period in out), default=0))


def _end(span: DaySpan) -> int:
    return span.end


class Free(NamedTuple):
    """Where both people of a pair are free: pieces [starts[i], ends[i]) in UTC minutes,
    sorted and apart, each inside the period hours.periods[within[i]]. Plain lists, so
    that the planner can bisect them and read a piece without making an object for it."""

    starts: list[int]
    ends: list[int]
    within: list[int]
    hours: Hours


def free_time(
    hours: Hours, busy: Sequence[Span], mentor_off: frozenset[int] = frozenset(), mentee_off: frozenset[int] = frozenset()
) -> Free:
    """The periods of `hours` minus `busy` (sorted by start; may overlap), but for those on
    the mentor's or the mentee's days off (local dates as ordinals)."""
    starts: list[int] = []
    ends: list[int] = []
    within: list[int] = []
    first, count = 0, len(busy)
    off = mentor_off or mentee_off
    for k, period in enumerate(hours.periods):
        if off and (period[4] in mentor_off or period[5] in mentee_off):
            continue
        cursor, stop = period[0], period[1]
        while first < count and busy[first][1] <= cursor:
            first += 1  # over for good: periods come in order
        i = first  # a while loop: this runs some 1.5 million times for 10,000 pairs
        while i < count:
            start, end = busy[i]
            if start >= stop:
                break
            i += 1
            if end > cursor:
                if start > cursor:
                    starts.append(cursor)
                    ends.append(start)
                    within.append(k)
                cursor = end
                if cursor >= stop:
                    break
        if cursor < stop:
            starts.append(cursor)
            ends.append(stop)
            within.append(k)
    return Free(starts, ends, within, hours)
