"""Time zones as people write them, read as IANA names.

An exact IANA name is taken as it is, in any letter case. A spelling that names one zone
(an old IANA name such as US/Eastern, a Windows name such as "Eastern Standard Time", a
city, an abbreviation used in one place only) is read as that zone, and the caller warns.
A spelling that could mean several zones ("EST", "Eastern Time", "GMT-3") is refused with
the likely names: guessing wrong would put a person's sessions an hour or more off.

The data: tzdata's own files (its zic source for which names are old links, zone.tab for
the names in use today) and the CLDR table of Windows names as tzlocal ships it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from difflib import get_close_matches
from functools import cache, lru_cache
from importlib import resources
from zoneinfo import ZoneInfo, available_timezones

from .problems import quote

UTC_NAME = "UTC"


@dataclass(frozen=True)
class Zone:
    name: str  # the IANA name to use
    read_as: str | None = None  # why a different spelling was read as this zone; None: as written


# Spellings that name several zones, with the likely ones first. Times in these places
# differ by an hour or more for part of the year, so none is chosen silently.
_EASTERN = ("America/New_York", "America/Toronto", "America/Panama")
_CENTRAL = ("America/Chicago", "America/Mexico_City", "America/Winnipeg")
_MOUNTAIN = ("America/Denver", "America/Phoenix", "America/Edmonton")
_PACIFIC = ("America/Los_Angeles", "America/Vancouver", "America/Tijuana")
_CENTRAL_EUROPE = ("Europe/Berlin", "Europe/Paris", "Europe/Madrid")
_EASTERN_EUROPE = ("Europe/Athens", "Europe/Helsinki", "Europe/Bucharest")
_EASTERN_AUSTRALIA = ("Australia/Sydney", "Australia/Melbourne", "Australia/Brisbane")
AMBIGUOUS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("est", "edt", "et", "eastern", "eastern time", "eastern time (us & canada)", "us eastern"), _EASTERN),
    **dict.fromkeys(("cdt", "ct", "central", "central time", "central time (us & canada)", "us central"), _CENTRAL),
    "cst": (*_CENTRAL[:2], "Asia/Shanghai"),  # also China Standard Time
    **dict.fromkeys(("mst", "mdt", "mt", "mountain", "mountain time", "mountain time (us & canada)", "us mountain"), _MOUNTAIN),
    **dict.fromkeys(("pst", "pdt", "pt", "pacific", "pacific time", "pacific time (us & canada)", "us pacific"), _PACIFIC),
    **dict.fromkeys(("gmt", "greenwich mean time"), ("Europe/London", "UTC")),
    "bst": ("Europe/London", "Asia/Dhaka"),  # British Summer Time, Bangladesh Standard Time
    **dict.fromkeys(("cet", "cest", "met", "central european time"), _CENTRAL_EUROPE),
    **dict.fromkeys(("eet", "eest", "eastern european time"), _EASTERN_EUROPE),
    **dict.fromkeys(("wet", "west", "western european time"), ("Europe/Lisbon", "Atlantic/Canary")),
    "ist": ("Asia/Kolkata", "Europe/Dublin", "Asia/Jerusalem"),
    **dict.fromkeys(("aest", "aedt", "aet", "australian eastern time"), _EASTERN_AUSTRALIA),
    **dict.fromkeys(("acst", "acdt"), ("Australia/Adelaide", "Australia/Darwin")),
    "ast": ("America/Halifax", "America/Puerto_Rico", "Asia/Riyadh"),
    # Old POSIX-style names still in tzdata, which people copy from servers.
    "est5edt": _EASTERN,
    "cst6cdt": _CENTRAL,
    "mst7mdt": _MOUNTAIN,
    "pst8pdt": _PACIFIC,
}

# Abbreviations used in one place only.
ABBREVIATIONS = {
    "jst": "Asia/Tokyo",
    "kst": "Asia/Seoul",
    "sgt": "Asia/Singapore",
    "hkt": "Asia/Hong_Kong",
    "pht": "Asia/Manila",
    "nzst": "Pacific/Auckland",
    "nzdt": "Pacific/Auckland",
    "awst": "Australia/Perth",
    "msk": "Europe/Moscow",
    "akst": "America/Anchorage",
    "akdt": "America/Anchorage",
    "hst": "Pacific/Honolulu",
}

# Where an offset is suggested as a place: one well-known zone for each common offset.
_PLACES = (
    "Pacific/Honolulu America/Anchorage America/Los_Angeles America/Denver America/Phoenix America/Chicago"
    " America/Mexico_City America/Bogota America/New_York America/Toronto America/Lima America/Halifax"
    " America/Santiago America/Caracas America/St_Johns America/Sao_Paulo America/Argentina/Buenos_Aires"
    " America/Montevideo Atlantic/Azores Atlantic/Cape_Verde Europe/London Europe/Lisbon Africa/Accra"
    " Africa/Lagos Europe/Berlin Europe/Paris Africa/Johannesburg Africa/Cairo Europe/Athens Europe/Helsinki"
    " Europe/Istanbul Europe/Moscow Africa/Nairobi Asia/Riyadh Asia/Tehran Asia/Dubai Asia/Kabul Asia/Karachi"
    " Asia/Kolkata Asia/Kathmandu Asia/Dhaka Asia/Yangon Asia/Bangkok Asia/Jakarta Asia/Shanghai"
    " Asia/Singapore Australia/Perth Asia/Tokyo Asia/Seoul Australia/Darwin Australia/Adelaide"
    " Australia/Brisbane Australia/Sydney Pacific/Noumea Pacific/Auckland Pacific/Tongatapu"
).split()
# Offsets are compared in mid-winter and mid-summer of a fixed year, so the same text
# always gets the same suggestions.
_SEASONS = (datetime(2027, 1, 15, 12), datetime(2027, 7, 15, 12))
_OFFSET = re.compile(r"^(?:utc|gmt|z)?\s*([+\-\u2212])\s*(\d{1,2})(?::?(\d{2}))?$")
# Windows shows names as "(UTC-05:00) Eastern Time (US & Canada)".
_WINDOWS_LABEL = re.compile(r"^\((?:utc|gmt)[^)]*\)\s*")


@lru_cache(maxsize=1024)  # a cohort spells the same few zones row after row
def read(text: str) -> Zone:
    """The IANA zone `text` names, or ValueError saying what to write instead."""
    written = " ".join(text.split())
    key = written.lower()
    if not key:
        raise ValueError("is empty")
    if len(key) > 60:  # no zone's name is that long; compare nothing
        raise ValueError(f"{quote(written)} is not a time zone: use an IANA name such as Europe/Berlin")
    if key in ("utc", "etc/utc"):
        return Zone(UTC_NAME)
    label = _WINDOWS_LABEL.sub("", key)
    if key in AMBIGUOUS or label in AMBIGUOUS:
        raise ValueError(f"{quote(written)} could mean several time zones: {_either(AMBIGUOUS.get(key) or AMBIGUOUS[label])}")
    if offset := _OFFSET.match(key):
        raise ValueError(_offset_message(written, offset))
    if key in ABBREVIATIONS:
        return Zone(ABBREVIATIONS[key], "an abbreviation used only there")
    name = _names().get(key.replace(" ", "_"))
    if name is not None and ("/" in name or name in _old()):
        if name in _old():
            return Zone(_old()[name], "an old name of this zone")
        return Zone(name)
    windows = _windows().get(key) or _windows().get(label)
    if windows is not None:
        return Zone(_old().get(windows, windows), "a Windows time zone name")
    cities = _cities().get(key.replace(" ", "_"), ())
    if len(cities) == 1:
        return Zone(cities[0], "a city in this zone")
    if len(cities) > 1:
        raise ValueError(f"{quote(written)} could mean several time zones: {_either(tuple(cities))}")
    hint = get_close_matches(written, _places(), n=1, cutoff=0.8)
    if hint:
        raise ValueError(f"{quote(written)} is not a time zone: did you mean {hint[0]}?")
    raise ValueError(f"{quote(written)} is not a time zone: use an IANA name such as Europe/Berlin")


def _either(names: tuple[str, ...]) -> str:
    listed = ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]
    return f"write the IANA name of the person's city, such as {listed}"


def _offset_message(written: str, match: re.Match[str]) -> str:
    sign = -1 if match[1] in "-\u2212" else 1
    minutes = sign * (int(match[2]) * 60 + int(match[3] or 0))
    # Places on that offset all year first, then those on it in winter, then in summer.
    ranked = []
    for place in _PLACES:
        offsets = sorted(_minutes(place, moment) for moment in _SEASONS)
        if minutes in offsets:
            ranked.append((0 if offsets[0] == offsets[1] else offsets.index(minutes) + 1, place))
    places = [place for _, place in sorted(ranked, key=lambda r: r[0])][:3]
    fixed = f"Etc/GMT{'-' if sign > 0 else '+'}{int(match[2])}" if not match[3] or match[3] == "00" else None
    if minutes == 0:
        fixed = UTC_NAME
    advice = f"; {_either(tuple(places))}" if places else "; write the IANA name of the person's city"
    if fixed and int(match[2]) <= 12:
        advice += f" ({fixed} is that offset all year round)"
    return f"{quote(written)} is an offset, not a time zone: it ignores daylight saving{advice}"


def _minutes(zone: str, moment: datetime) -> int:
    offset = moment.replace(tzinfo=ZoneInfo(zone)).utcoffset()
    assert offset is not None  # a ZoneInfo always has one
    return int(offset.total_seconds()) // 60


@cache
def _names() -> dict[str, str]:
    """Every name zoneinfo knows, by its lower-case spelling."""
    return {name.lower(): name for name in available_timezones()}


def _tzdata(file: str) -> list[list[str]]:
    text = resources.files("tzdata.zoneinfo").joinpath(file).read_text(encoding="utf-8")
    return [line.split("\t") if file.endswith(".tab") else line.split() for line in text.splitlines() if line and line[0] != "#"]


@cache
def _in_use() -> frozenset[str]:
    """Names of zones as tzdata lists them today: its zones, and every name zone.tab
    gives a country (Europe/Stockholm is a link to Europe/Berlin in tzdata's source,
    but the name a Swede uses)."""
    zones = {row[1] for row in _tzdata("tzdata.zi") if row[0] == "Z"}
    zones |= {row[2] for row in _tzdata("zone.tab") if len(row) > 2}
    zones |= {row[2] for row in _tzdata("zone1970.tab") if len(row) > 2}
    return frozenset(zones)


@cache
def _places() -> list[str]:
    return sorted(name for name in _in_use() if "/" in name)


@cache
def _old() -> dict[str, str]:
    """Old names (links no longer in use, such as US/Eastern or Asia/Calcutta) and the
    zone each stands for."""
    return {row[2]: row[1] for row in _tzdata("tzdata.zi") if row[0] == "L" and row[2] not in _in_use()}


@cache
def _windows() -> dict[str, str]:
    """CLDR's table of Windows zone names, each to its world-wide default zone."""
    from tzlocal.windows_tz import win_tz  # only when a name needs it

    return {name.lower(): zone for name, zone in win_tz.items()}


@cache
def _cities() -> dict[str, tuple[str, ...]]:
    """Zones in use by their last part, lower case: 'new_york' -> America/New_York."""
    found: dict[str, list[str]] = {}
    for name in sorted(_in_use()):
        if "/" in name and not name.startswith("Etc/"):
            found.setdefault(name.rsplit("/", 1)[1].lower(), []).append(name)
    return {city: tuple(names) for city, names in found.items()}


@cache
def country_of(zone: str) -> str | None:
    """The country a zone is in (ISO 3166 code): zone.tab names exactly one for each
    zone; for a zone only zone1970.tab lists, the first of its countries."""
    for row in _tzdata("zone.tab"):
        if len(row) > 2 and row[2] == zone:
            return row[0]
    for row in _tzdata("zone1970.tab"):
        if len(row) > 2 and row[2] == zone:
            return row[0].split(",")[0]
    return None
