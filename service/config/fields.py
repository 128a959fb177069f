"""Parsers for the text a coordinator writes: each returns a value or raises ValueError
with a sentence that names the bad value (the caller adds which field it was). Values are
shown with problems.quote: short, on one line."""

from __future__ import annotations

import functools
import re
import unicodedata
from datetime import date, time, timedelta
from itertools import pairwise
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email

from ..domain.model import WEEKDAY_NAMES, TimeRange
from .limits import EARLIEST_PROGRAM_DATE, LATEST_PROGRAM_DATE, MAX_OFFSET_DAYS, WINDOW_MARGIN_DAYS
from .problems import quote

_DAY_INDEX = {name.lower(): i for i, name in enumerate(WEEKDAY_NAMES)}
_TIME = re.compile(r"^(\d{1,2})(?::(\d{2}))?$")
PAIR_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")


def name(value: str) -> str:
    """A person's or cohort's name. Control characters (CR, LF, U+2028, ...) are refused:
    names end up in email headers. (Printable text has none: most names are looked at
    no further.)"""
    bad = [] if value.isprintable() else [c for c in value if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")]
    if bad:
        raise ValueError(f"{quote(value.strip(' '))} contains a control character ({_codepoint(bad[0])})")
    value = value.strip()
    if not value:
        raise ValueError("is empty")
    if "=?" in value:
        raise ValueError(f"{quote(value)} contains '=?', which mail programs would decode as hidden text")
    if len(value) > 200:
        raise ValueError("is longer than 200 characters")
    return value


def free_text(value: str) -> str:
    """Notes: any printable text, line breaks allowed."""
    bad = [] if value.isprintable() else [c for c in value if unicodedata.category(c) in ("Cc", "Cf") and c not in "\n\r\t"]
    if bad:
        raise ValueError(f"contains a control character ({_codepoint(bad[0])})")
    return value.strip()


# An everyday address (dot-separated ASCII words, a host name of plain labels with a
# letter-only top level): accepted as email_validator accepts it, without its cost.
# Anything else (quoted or non-ASCII parts, IDNA labels, special-use names) goes to it.
_PLAIN_EMAIL = re.compile(
    r"(?=[^@]{1,64}@.{4,253}$)[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*"
    r"@(?:(?!..--)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+(?!(?i:arpa|invalid|local|localhost|onion|test)$)[A-Za-z]{2,63}",
    re.ASCII,
)


@functools.lru_cache(maxsize=1 << 16)  # a mentor's address comes once per mentee; checking it is the slow part of loading
def email(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("is empty")
    if _PLAIN_EMAIL.fullmatch(value):
        return value.lower()
    try:
        result = validate_email(value, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError:
        raise ValueError(f"{quote(value)} is not an email address") from None
    return result.normalized.lower()


def timezone(value: str) -> str:
    """An IANA time zone, in any letter case or a spelling that names one zone (see
    zones.py); the pairings loader uses zones.read itself to warn about the spelling."""
    from . import zones  # on first use: a failing file is refused without it

    return zones.read(value).name


# A bare host and path, as people copy links: linkedin.com/in/x, www.example.org/cv.pdf
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_BARE_LINK = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*\.[A-Za-z]{{2,}}(?:[:/?#]|$)")
_SPACE = re.compile(r"\s")  # what str.isspace calls a space, in any script


def url(value: str) -> str | None:
    """A web address; one written without https:// (linkedin.com/in/x) gets it."""
    value = value.strip()
    if not value:
        return None
    if "://" not in value and _BARE_LINK.match(value):
        value = "https://" + value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or _SPACE.search(value):
        raise ValueError(f"{quote(value)} is not a web address starting with https://")
    return value


def clock(value: str) -> time:
    match = _TIME.match(value.strip())
    if not match:
        raise ValueError(f"{quote(value.strip())} is not a time like 09:30")
    hour, minute = int(match[1]), int(match[2] or 0)
    if hour == 24 and minute == 0:
        return time(23, 59)
    if hour > 23 or minute > 59:
        raise ValueError(f"{quote(value.strip())} is not a time like 09:30")
    return time(hour, minute)


def hours(value: str) -> tuple[TimeRange, ...]:
    """'09:00-17:00' or '08:00-12:00, 13:00-16:30'."""
    ranges = []
    for part in re.split(r"[,;]", value):
        if not part.strip():
            continue
        start, sep, end = part.partition("-")
        if not sep:
            raise ValueError(f"{quote(part.strip())} is not a range of hours like 09:00-17:00")
        first, last = clock(start), clock(end)
        if not first < last:
            raise ValueError(f"{quote(part.strip())} ends before it starts")
        ranges.append(TimeRange(start=first, end=last))
    if not ranges:
        raise ValueError("is empty")
    ranges.sort()
    for a, b in pairwise(ranges):
        if b.start < a.end:
            raise ValueError(f"{a} and {b} overlap")
    return tuple(ranges)


def days(value: str) -> frozenset[int]:
    """'Mon-Fri', 'Mon,Wed,Fri' or 'Tue-Thu, Sat'."""
    result: set[int] = set()
    for part in re.split(r"[,;\s]+", value.strip()):
        if not part:
            continue
        first, _, last = part.partition("-")
        try:
            a = _DAY_INDEX[first[:3].lower()]
            b = _DAY_INDEX[last[:3].lower()] if last else a
        except KeyError:
            raise ValueError(f"{quote(part)} is not a day or range of days like Mon-Fri") from None
        result.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    if not result:
        raise ValueError("is empty")
    return frozenset(result)


# Dates that can matter when the program is not known (its file is broken, say).
ANY_PROGRAM = (EARLIEST_PROGRAM_DATE - timedelta(days=WINDOW_MARGIN_DAYS), LATEST_PROGRAM_DATE + timedelta(days=WINDOW_MARGIN_DAYS))


def dates(value: str, window: tuple[date, date] | None = ANY_PROGRAM) -> frozenset[date]:
    """'2027-03-10; 2027-03-20..2027-03-24': single dates and inclusive ranges.

    Only the dates inside `window` (first and last day) are kept: a range such as
    0001-01-01..9999-12-31 is clipped to it, never spelled out day by day. With no
    window (the program is not known) the text is only checked, and no date kept.
    """
    lo, hi = window or (date.max, date.min)
    spans: list[tuple[date, date]] = []
    for part in re.split(r"[,;\s]+", value.strip()):
        if not part:
            continue
        first, _, last = part.partition("..")
        try:
            a = date.fromisoformat(first)
            b = date.fromisoformat(last) if last else a
        except ValueError:
            raise ValueError(f"{quote(part)} is not a date like 2027-03-10 or a range like 2027-03-10..2027-03-14") from None
        if b < a:
            raise ValueError(f"{quote(part)} ends before it starts")
        a, b = max(a, lo), min(b, hi)
        if a <= b:
            spans.append((a, b))
    # Overlapping spans are merged first, so many of them cost no more than the window.
    result: set[date] = set()
    reached: date | None = None
    for a, b in sorted(spans):
        if reached is not None:
            if b <= reached:
                continue
            a = max(a, reached + timedelta(days=1))
        result.update(a + timedelta(days=i) for i in range((b - a).days + 1))
        reached = b
    return frozenset(result)


_OFFSET = re.compile(r"^([+-]?)\s*(\d{1,6})\s*(minute|hour|day|week)s?$", re.IGNORECASE)


def offset(value: str) -> timedelta:
    """'-3 days', '2 hours', '+90 days', '1 week', '0'."""
    text = value.strip()
    if text in ("0", ""):
        return timedelta(0)
    match = _OFFSET.match(text)
    if not match:
        raise ValueError(f"{quote(text)} is not an offset like '-3 days' or '2 hours'")
    sign = -1 if match[1] == "-" else 1
    amount = timedelta(**{f"{match[3].lower()}s": int(match[2])})  # six digits of weeks still fit a timedelta
    if amount > timedelta(days=MAX_OFFSET_DAYS):
        raise ValueError(f"{quote(text)} is more than {MAX_OFFSET_DAYS} days")
    return sign * amount


def _codepoint(char: str) -> str:
    return f"U+{ord(char):04X}"
