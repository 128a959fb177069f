"""Busy time from iCalendar (.ics) files that participants export from their calendars.

An .ics file comes from outside, so reading one is bounded: its size (checked before
reading), the work its repeat rules would take (judged from the rules themselves, before
anything is expanded), the busy times it may hold, and the processor time reading it
may take. Messages about a file never quote it: it may not be a calendar at all.
"""

from __future__ import annotations

import re
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events
from icalendar.parser import Contentline

from ..domain.model import Person
from . import files
from .limits import MAX_ICS_BUSY_TIMES, MAX_ICS_BYTES, MAX_ICS_REPEAT_STEPS, MAX_ICS_SECONDS
from .problems import quote

Interval = tuple[datetime, datetime]


def busy_intervals(calendar: icalendar.Calendar, person: Person, start: datetime, end: datetime) -> list[Interval]:
    """Every busy occurrence between start and end, recurring events expanded.

    Free ("transparent") and cancelled events are not busy. All-day events and times
    without a zone are read in the person's own time zone. ValueError if the calendar
    cannot be read, or would take too much to expand (see `read`).
    """
    zone = ZoneInfo(person.timezone)
    intervals = []
    with _bounded():
        for event in _occurrences(calendar, start, end, {}):
            if str(event.get("TRANSP", "OPAQUE")).upper() == "TRANSPARENT":
                continue
            if str(event.get("STATUS", "")).upper() == "CANCELLED":
                continue
            begin, finish = _span(event, zone)
            if finish > begin:
                intervals.append((begin.astimezone(UTC), finish.astimezone(UTC)))
    return sorted(intervals)


def parse(path: Path) -> icalendar.Calendar:
    """The calendar in an .ics file; ValueError with a plain reason if it is not one
    (files.Unusable, a ValueError, if the file itself may not be read)."""
    data = files.read_bytes(path, MAX_ICS_BYTES)
    try:
        with _bounded():
            return _parse(data)[0]
    except ValueError as exc:
        raise ValueError(f"{quote(path.name)} {exc}") from None


def read(path: Path, first: date, last: date) -> icalendar.Calendar:
    """The busy times of an .ics file from `first` to `last` (whole days, in UTC), as a
    calendar of single events: its repeat rules are expanded here, once and within the
    limits, and times with a zone are stored in UTC, so that whoever reads it later has
    no rule and no time zone of the file's own left to work out.

    ValueError, starting with the file's name, if it is not a calendar or goes beyond a
    limit (files.Unusable if the file itself may not be read)."""
    data = files.read_bytes(path, MAX_ICS_BYTES)
    start = datetime.combine(first, time(0), tzinfo=UTC)
    end = datetime.combine(last + timedelta(days=1), time(0), tzinfo=UTC)
    try:
        with _bounded():
            calendar, lines = _parse(data)
            flat = icalendar.Calendar()
            for n, event in enumerate(_occurrences(calendar, start, end, lines)):
                flat.add_component(_single(event, n))
            return flat
    except ValueError as exc:
        raise ValueError(f"{quote(path.name)} {exc}") from None


# -- reading the file


def _parse(data: bytes) -> tuple[icalendar.Calendar, dict[str, list[int]]]:
    """The calendar, and the line on which each component begins, by name, in order."""
    text = data.decode("utf-8", errors="replace")
    try:
        calendar = icalendar.Calendar.from_ical(data)
    except Exception:  # icalendar reports bad input with several exception types
        line, reason = _first_fault(text)
        raise ValueError("is not an iCalendar file: " + (f"line {line} {reason}" if line else reason)) from None
    if not isinstance(calendar, icalendar.Calendar):
        raise ValueError("is not an iCalendar file: it does not begin with BEGIN:VCALENDAR")
    lines: dict[str, list[int]] = {}
    for n, content in _logical_lines(text):
        name, _, value = content.partition(":")
        if name.strip().upper() == "BEGIN":
            lines.setdefault(value.strip().upper(), []).append(n)
    return calendar, lines


def _occurrences(calendar: icalendar.Calendar, start: datetime, end: datetime, lines: dict[str, list[int]]) -> list[Any]:
    """The calendar's events between start and end, each repetition its own event. The
    repeat rules are judged first (see `_judge`); `lines` places the problems."""
    _judge(calendar, start, end, lines)
    try:
        found = recurring_ical_events.of(calendar).between(start, end)
    except Exception:  # the library raises many kinds for broken rules and dates
        raise ValueError("has an event whose dates or repeat rule cannot be read") from None
    if len(found) > MAX_ICS_BUSY_TIMES:
        raise ValueError(f"holds {len(found):,} busy times within the program; at most {MAX_ICS_BUSY_TIMES:,} are allowed")
    return found


def _span(event: Any, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """Start and end of one occurrence; all-day and floating times are in `zone`."""
    try:
        begin = _aware(event.decoded("DTSTART"), zone)
        finish = _aware(event.decoded("DTEND"), zone) if "DTEND" in event else None
        if finish is None:
            duration = event.decoded("DURATION") if "DURATION" in event else None
            finish = begin + (duration or timedelta(days=1 if _is_date(event.decoded("DTSTART")) else 0))
    except Exception:  # icalendar raises several kinds for a broken date
        raise ValueError("has an event whose start or end cannot be read") from None
    return begin, finish


def _single(event: Any, n: int) -> icalendar.Event:
    """One occurrence as an event of its own, keeping what `busy_intervals` reads. Times
    with a zone are stored in UTC, so that the file's own time zones (whose rules can be
    costly to work out) are left behind; all-day and floating ones are kept as they are."""
    single = icalendar.Event()
    single.add("UID", f"busy-{n}")
    try:
        begin = event.decoded("DTSTART")
        if "DTEND" not in event and "DURATION" in event and isinstance(begin, datetime) and begin.tzinfo:
            # The duration is added in the event's own zone, as a calendar program would.
            single.add("DTSTART", _utc(begin))
            single.add("DTEND", _utc(begin + event.decoded("DURATION")))
        else:
            single.add("DTSTART", _utc(begin))
            for name in ("DTEND", "DURATION"):
                if name in event:
                    single.add(name, _utc(event.decoded(name)))
    except Exception:  # icalendar raises several kinds for a broken date
        raise ValueError("has an event whose start or end cannot be read") from None
    for name in ("TRANSP", "STATUS"):
        if name in event:
            single.add(name, str(event[name]))
    return single


def _utc(value: Any) -> Any:
    return value.astimezone(UTC) if isinstance(value, datetime) and value.tzinfo else value


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, text) of each content line, folded lines joined (RFC 5545 3.1)."""
    number, current = 0, None
    for n, raw in enumerate(re.split(r"\r\n|\n|\r", text), 1):
        if raw[:1] in (" ", "\t") and current is not None:
            current += raw[1:]
            continue
        if current is not None:
            yield number, current
        number, current = n, raw if raw.strip() else None
    if current is not None:
        yield number, current


def _first_fault(text: str) -> tuple[int, str]:
    """Where and why, in general terms, a file that icalendar refused is not a calendar:
    (line, what is wrong with it), or (0, a sentence) when no single line is to blame.
    Never repeats what the file says."""
    open_components: list[tuple[str, int]] = []
    closed = False
    last = 0
    for n, line in _logical_lines(text):
        last = n
        try:
            name, _, value = Contentline(line).parts()
        except Exception:
            return n, "is not of the form NAME:value"
        name, value = name.upper(), str(value).strip().upper()
        if closed:
            return n, "comes after the calendar's END:VCALENDAR"
        if not open_components and (name, value) != ("BEGIN", "VCALENDAR"):
            return n, "should be BEGIN:VCALENDAR"
        if name == "BEGIN":
            open_components.append((value, n))
        elif name == "END":
            if not open_components or open_components[-1][0] != value:
                before = f" (line {open_components[-1][1]})" if open_components else ""
                return n, f"is an END that does not match the BEGIN before it{before}"
            open_components.pop()
            closed = not open_components
    if not last:
        return 0, "the file is empty"
    if open_components:
        return last, f"is the last, but what begins on line {open_components[-1][1]} never ends"
    return 0, "a property or value in it cannot be read"


# -- judging the repeat rules before expanding them

# Seconds per step of each frequency, rounded down (a month is at least 28 days), so
# that the number of steps is over- rather than under-estimated.
_STEP = {"SECONDLY": 1, "MINUTELY": 60, "HOURLY": 3600, "DAILY": 86400, "WEEKLY": 7 * 86400, "MONTHLY": 28 * 86400, "YEARLY": 365 * 86400}


def _judge(calendar: icalendar.Calendar, start: datetime, end: datetime, lines: dict[str, list[int]]) -> None:
    """ValueError if expanding the calendar between start and end would take too much:
    more than MAX_ICS_REPEAT_STEPS repeats from the first date of each rule (the
    expander walks them all, time zone rules included, since every time given in the
    file's own zone walks them), or more than MAX_ICS_BUSY_TIMES busy times in the window."""
    steps = busy = 0
    window_start, window_end = _naive(start), _naive(end)
    # Time zones first: reading an event's time in one of them already walks its rules.
    for kind in ("STANDARD", "DAYLIGHT", "VEVENT"):
        for index, component in enumerate(calendar.walk(kind)):
            at = lines.get(kind, [])
            where = f"line {at[index]}: " if index < len(at) else ""
            try:
                first = _naive(component.decoded("DTSTART"))
            except Exception:
                if kind != "VEVENT":
                    raise ValueError(f"{where}a time zone's start cannot be read") from None
                continue  # the expansion reports it
            rules = _as_list(component.get("RRULE"))
            if kind == "VEVENT" and not rules:
                busy += 1 if window_start <= first < window_end else 0
            for rule in rules:
                try:
                    total, inside = _rule_size(rule, first, window_start, window_end)
                except (AttributeError, KeyError, TypeError, ValueError, OverflowError):
                    raise ValueError(f"{where}a repeat rule cannot be read") from None
                steps += total
                busy += inside if kind == "VEVENT" else 0
                if steps > MAX_ICS_REPEAT_STEPS:
                    what = "an event" if kind == "VEVENT" else "a time zone rule"
                    raise ValueError(
                        f"{where}{what} repeats too often to be read: about {total:,} times from its first date"
                        f" to the end of the program; a calendar may hold at most {MAX_ICS_REPEAT_STEPS:,} repeats"
                    )
            if kind == "VEVENT":
                try:
                    busy += sum(len(p.dts) for p in _as_list(component.get("RDATE")))
                except AttributeError:
                    pass
            if busy > MAX_ICS_BUSY_TIMES:
                raise ValueError(f"{where}the calendar would hold more than {MAX_ICS_BUSY_TIMES:,} busy times within the program")


def _rule_size(rule: Any, first: datetime, window_start: datetime, window_end: datetime) -> tuple[int, int]:
    """Upper bounds on the times a rule produces from `first` to window_end, and within
    the window: steps of its frequency, times what each step can expand to."""
    freq = str(rule["FREQ"][0]).upper()
    interval = max(1, int(_first(rule, "INTERVAL", 1)))
    count = _first(rule, "COUNT", None)
    until = _first(rule, "UNTIL", None)
    last = min(window_end, _naive(until)) if until is not None else window_end
    step = _STEP[freq] * interval

    def steps(since: datetime) -> int:
        if last < since:
            return 0
        n = int((last - since).total_seconds() // step) + 1
        return min(n, int(count)) if count is not None else n

    each = _per_step(rule, freq)
    return steps(first) * each, steps(max(first, window_start)) * each


def _per_step(rule: Any, freq: str) -> int:
    """How many times one step of the rule can expand to, by its BY... parts."""

    def n(part: str) -> int:
        return len(rule.get(part, ())) or 1

    def given(part: str) -> bool:
        return bool(rule.get(part))

    days = 1
    if freq == "YEARLY":
        if given("BYYEARDAY"):
            days = n("BYYEARDAY")
        elif given("BYWEEKNO"):
            days = n("BYWEEKNO") * (n("BYDAY") if given("BYDAY") else 7)
        elif given("BYMONTHDAY"):
            days = n("BYMONTHDAY") * (n("BYMONTH") if given("BYMONTH") else 12)
        elif given("BYDAY"):
            days = n("BYDAY") * (5 * n("BYMONTH") if given("BYMONTH") else 53)
        elif given("BYMONTH"):
            days = n("BYMONTH")
    elif freq == "MONTHLY":
        days = n("BYMONTHDAY") if given("BYMONTHDAY") else 5 * n("BYDAY") if given("BYDAY") else 1
    elif freq == "WEEKLY":
        days = n("BYDAY")
    # Parts finer than the frequency multiply; coarser ones only filter.
    finer = {"YEARLY": 3, "MONTHLY": 3, "WEEKLY": 3, "DAILY": 3, "HOURLY": 2, "MINUTELY": 1}.get(freq, 0)
    times = 1
    for part in ("BYSECOND", "BYMINUTE", "BYHOUR")[:finer]:
        times *= n(part)
    return days * times


def _first(rule: Any, part: str, default: Any) -> Any:
    values = rule.get(part)
    return values[0] if values else default


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def _naive(value: date | datetime) -> datetime:
    """A date or time as a plain datetime, good enough to count steps (hours off at most)."""
    if not isinstance(value, datetime):
        return datetime.combine(value, time(0))
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


# -- a wall-clock bound on the expansion


class _OutOfTime(BaseException):
    """Raised by the timer; a BaseException so that no `except Exception` swallows it."""


@contextmanager
def _bounded() -> Iterator[None]:
    """Run a block that reads a calendar: stopped after MAX_ICS_SECONDS of processor time (see `_time_limit`),
    and whatever the libraries raise turned into a ValueError that quotes nothing."""
    try:
        with _time_limit(MAX_ICS_SECONDS):
            yield
    except _OutOfTime:
        raise ValueError(
            f"takes more than {MAX_ICS_SECONDS:g} seconds of processing to read: a repeat rule matches rarely or never"
            " (check its repeat rules)"
        ) from None
    except ValueError:
        raise
    except Exception:  # RecursionError on absurd nesting, say
        raise ValueError("cannot be read as a calendar") from None


@contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Interrupt the block after `seconds` of processor time (not wall time: a busy
    machine must not fail a good file), where a timer signal can: on the main thread,
    with no profiling timer set. Elsewhere the block runs unbounded (the rules were judged)."""
    usable = (
        threading.current_thread() is threading.main_thread()
        and hasattr(signal, "setitimer")
        and signal.getitimer(signal.ITIMER_PROF)[0] == 0
        and signal.getsignal(signal.SIGPROF) in (signal.SIG_DFL, signal.SIG_IGN, None)
    )
    if not usable:
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise _OutOfTime

    previous = signal.signal(signal.SIGPROF, expire)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


def _is_date(value: date | datetime) -> bool:
    return not isinstance(value, datetime)


def _aware(value: date | datetime, zone: ZoneInfo) -> datetime:
    if not isinstance(value, datetime):  # an all-day event: from midnight, local time
        return datetime.combine(value, time(0), tzinfo=zone)
    return value if value.tzinfo else value.replace(tzinfo=zone)
