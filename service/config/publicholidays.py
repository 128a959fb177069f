"""Public holidays of a person's country, as dates within the program.

A country is an ISO 3166 code, with a subdivision where holidays differ inside a country
(DE-BE for Berlin, US-CA for California, CH-ZH for Zurich). Given none, a person's country
is read from their time zone. The dates come from the `holidays` package.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import cache

from .problems import quote


@dataclass(frozen=True)
class HolidayRules:
    """What the cohort file says about public holidays, and the days they matter on."""

    window: tuple[date, date]  # first and last day that matter
    work_on: frozenset[date] = frozenset()  # holidays on which sessions may still be booked


@cache
def _supported() -> dict[str, dict[str, str]]:
    """Country codes the holidays package covers, each with its subdivisions (upper case
    to their own spelling)."""
    import holidays  # only when a program needs it: it is large

    return {code: {s.upper(): s for s in subdivisions} for code, subdivisions in holidays.list_supported_countries().items()}


@cache
def _names() -> dict[str, str]:
    """Country names in English as tzdata's iso3166.tab gives them, lower case, to codes."""
    from importlib import resources

    text = resources.files("tzdata.zoneinfo").joinpath("iso3166.tab").read_text(encoding="utf-8")
    rows = [line.split("\t") for line in text.splitlines() if line and not line.startswith("#")]
    return {name.strip().lower(): code for code, name in rows}


def country(text: str) -> str:
    """'DE', 'de-be', 'US-CA' or a country's English name ('Germany'), as 'DE-BE' and so
    on; ValueError when the holidays calendar does not know it."""
    written = " ".join(text.split())
    code, _, subdivision = written.upper().replace("_", "-").partition("-")
    code, subdivision = code.strip(), subdivision.strip()
    if len(code) != 2:
        named = _names().get(written.lower())
        if named is None:
            raise ValueError(f"{quote(written)} is not a country code: use ISO 3166 codes such as DE, or DE-BE with a region")
        code, subdivision = named, ""
    known = _supported().get(code)
    if known is None:
        raise ValueError(f"{quote(written)} is not a country whose public holidays are known (use ISO 3166 codes such as DE or US-CA)")
    if subdivision and subdivision not in known:
        listed = ", ".join(sorted(known.values())[:12]) + (", …" if len(known) > 12 else "")
        raise ValueError(f"{quote(written)}: {code} has no region {quote(subdivision)}" + (f" (known: {listed})" if known else ""))
    return f"{code}-{known[subdivision]}" if subdivision else code


def is_known(place: str | None) -> bool:
    """Whether the holidays of a place (as `country` returns it, or a bare country code
    read from a time zone) are known."""
    return place is not None and place.partition("-")[0] in _supported()


def holidays_in(place: str, rules: HolidayRules) -> frozenset[date]:
    """The public holidays of `place` (as `country` returns it) within the window,
    less the days the cohort works on anyway."""
    return _holidays(place, *rules.window) - rules.work_on


@cache
def _holidays(place: str, first: date, last: date) -> frozenset[date]:
    import holidays

    code, _, subdivision = place.partition("-")
    found = holidays.country_holidays(code, subdiv=subdivision or None, years=range(first.year, last.year + 1))
    return frozenset(day for day in found if first <= day <= last)
