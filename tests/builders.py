"""Small constructors for domain objects in tests."""

from __future__ import annotations

from datetime import date, time, timedelta

from service.domain.model import Cohort, Contact, Pair, Person, SessionRules, TimeRange, WorkingPattern


def person(
    name: str,
    timezone: str = "UTC",
    hours: str = "09:00-17:00",
    days: frozenset[int] = frozenset(range(5)),
    blackout: frozenset[date] = frozenset(),
) -> Person:
    ranges = []
    for part in hours.split(","):
        start, end = part.strip().split("-")
        ranges.append(TimeRange(start=time.fromisoformat(start), end=time.fromisoformat(end)))
    return Person(
        name=name,
        email=f"{name.lower().replace(' ', '.')}@example.org",
        availability=WorkingPattern(timezone=timezone, hours=tuple(ranges), days=days, blackout_dates=blackout),
    )


def pair(mentor: Person, mentee: Person, pair_id: str | None = None) -> Pair:
    return Pair(id=pair_id or f"{mentor.name}-{mentee.name}".lower().replace(" ", ""), mentor=mentor, mentee=mentee)


def cohort(
    *pairs: Pair,
    start: date = date(2027, 3, 1),
    end: date = date(2027, 4, 30),
    timezone: str = "America/New_York",
    **rules,
) -> Cohort:
    defaults = dict(
        length=timedelta(minutes=60),
        first_within=timedelta(weeks=3),
        min_gap=timedelta(weeks=3),
        buffer=timedelta(minutes=15),
        step=timedelta(minutes=30),
    )
    defaults.update(rules)
    return Cohort(
        name="Test cohort",
        coordinator=Contact(name="Renata Alves", email="renata@example.org"),
        start=start,
        end=end,
        timezone=timezone,
        rules=SessionRules(**defaults),
        pairs=tuple(pairs),
    )
