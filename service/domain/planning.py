"""Finding both sessions of every pair: a pure search over everyone's free time.

The cohort splits into groups of pairs linked by a shared person (a mentor and her
mentees); only pairs of one group can compete for time, so each group is searched on its
own. Inside a group the search is depth-first: the most constrained pair first, its best
session times first. The first descent is the greedy answer; when it leaves a pair out,
the search backtracks (within a node budget) looking for an arrangement that books more
pairs, so small hard groups are solved exactly.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Mapping, NamedTuple, Sequence
from zoneinfo import ZoneInfo

from .availability import (
    DaySpan,
    SharedSpan,
    Span,
    from_minutes,
    intersect,
    merge,
    midnight,
    subtract,
    to_minutes,
    working_spans,
)
from .model import Cohort, Pair, Person, Session

# How a session time is scored, in minutes of "comfort": being this far inside both
# people's working day is all the comfort there is; each other session either person has
# that day costs SAME_DAY_COST; each day away from the pair's preferred day costs DAY_COST.
COMFORT_CAP = 120
SAME_DAY_COST = 100
DAY_COST = 4
# Alternatives tried per session when backtracking, and search nodes per group.
OPTIONS_PER_SESSION = 6
DEFAULT_NODE_BUDGET = 20_000
# Spreads pairs' preferred days evenly over a window, without global state.
GOLDEN = 0.6180339887


@dataclass(frozen=True, kw_only=True)
class PairPlan:
    pair: Pair
    sessions: tuple[Session, ...]  # empty, or sessions 1 and 2
    problems: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Plan:
    cohort: Cohort
    pairs: tuple[PairPlan, ...]

    @property
    def booked(self) -> int:
        return sum(1 for p in self.pairs if p.sessions)


Busy = Mapping[str, Sequence[tuple[datetime, datetime]]]


def plan_sessions(
    cohort: Cohort,
    busy: Busy,
    *,
    now: datetime,
    node_budget: int = DEFAULT_NODE_BUDGET,
) -> Plan:
    """Both sessions for as many pairs as possible; a reason for every pair left out.

    `busy` maps an email to that person's busy intervals (aware datetimes). Nothing is
    planned before `now`.
    """
    frame = _Frame.of(cohort, now)
    free = {
        email: frame.clip(
            subtract(
                working_spans(person.availability, cohort.start - _DAY, cohort.end + _DAY),
                merge((to_minutes(s), to_minutes(e)) for s, e in busy.get(email, ())),
            )
        )
        for email, person in cohort.people.items()
    }
    shared = {
        pair.id: intersect(free[pair.mentor.email], free[pair.mentee.email])
        for pair in cohort.pairs
    }
    index = {pair.id: i for i, pair in enumerate(cohort.pairs)}

    chosen: dict[str, tuple[int, int]] = {}
    for group in _groups(cohort.pairs):
        search = _Search(frame, group, shared, index, node_budget)
        chosen.update(search.run())

    sessions_of: dict[str, list[Pair]] = defaultdict(list)
    for pair in cohort.pairs:
        if pair.id in chosen:
            for person in pair.people:
                sessions_of[person.email].append(pair)

    plans = []
    for pair in cohort.pairs:
        if pair.id in chosen:
            plans.append(
                PairPlan(
                    pair=pair,
                    sessions=tuple(
                        Session(
                            pair_id=pair.id,
                            number=n,
                            start=from_minutes(t),
                            end=from_minutes(t + frame.length),
                        )
                        for n, t in enumerate(chosen[pair.id], start=1)
                    ),
                    problems=(),
                )
            )
        else:
            reason = _explain(frame, pair, shared[pair.id], sessions_of)
            plans.append(PairPlan(pair=pair, sessions=(), problems=(reason,)))
    return Plan(cohort=cohort, pairs=tuple(plans))


_DAY = timedelta(days=1)


@dataclass(frozen=True)
class _Frame:
    """The cohort's rules as UTC minutes."""

    cohort: Cohort
    earliest: int  # no session starts before this
    first_deadline: int  # session 1 ends by this
    program_end: int  # session 2 ends by this
    length: int
    gap: int
    buffer: int
    step: int

    @classmethod
    def of(cls, cohort: Cohort, now: datetime) -> _Frame:
        rules = cohort.rules
        step = _minutes(rules.step)
        program_start = midnight(cohort.start, cohort.timezone)
        program_end = midnight(cohort.end + _DAY, cohort.timezone)
        return cls(
            cohort=cohort,
            earliest=max(program_start, _ceil(to_minutes(now), step)),
            # Whole days in the program's zone: "the first 3 weeks" ends at a midnight there.
            first_deadline=min(midnight(cohort.start + rules.first_within, cohort.timezone), program_end),
            program_end=program_end,
            length=_minutes(rules.length),
            gap=_minutes(rules.min_gap),
            buffer=_minutes(rules.buffer),
            step=step,
        )

    def clip(self, spans: Sequence[DaySpan]) -> list[DaySpan]:
        return [
            DaySpan(max(s.start, self.earliest), min(s.end, self.program_end), s.day_start, s.day_end, s.day)
            for s in spans
            if s.end > self.earliest and s.start < self.program_end
        ]

    def local_date(self, minutes: int) -> date:
        return from_minutes(minutes).astimezone(ZoneInfo(self.cohort.timezone)).date()


def _minutes(delta: timedelta) -> int:
    return int(delta.total_seconds() // 60)


def _ceil(value: int, step: int) -> int:
    return -(-value // step) * step


def _floor(value: int, step: int) -> int:
    return value // step * step


def _groups(pairs: Sequence[Pair]) -> list[list[Pair]]:
    """Pairs linked by shared people (union-find over emails), in cohort order."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for pair in pairs:
        parent[find(pair.mentor.email)] = find(pair.mentee.email)
    groups: dict[str, list[Pair]] = defaultdict(list)
    for pair in pairs:
        groups[find(pair.mentor.email)].append(pair)
    return list(groups.values())


class _Search:
    """Depth-first search for the arrangement of one group that books the most pairs."""

    def __init__(self, frame: _Frame, group: list[Pair], shared, index, node_budget: int):
        self.frame = frame
        self.shared = shared
        self.index = index
        self.budget = node_budget
        # Most constrained first: fewest possible times for session 1.
        self.order = sorted(group, key=lambda p: (_choices(shared[p.id], frame), index[p.id]))
        self.booked: dict[str, list[Span]] = defaultdict(list)
        self.days: dict[str, Counter[int]] = defaultdict(Counter)
        self.current: dict[str, tuple[int, int]] = {}
        self.best: dict[str, tuple[int, int]] = {}
        self.nodes = 0

    def run(self) -> dict[str, tuple[int, int]]:
        self._visit(0)
        return self.best

    def _finished(self) -> bool:
        return len(self.best) == len(self.order) or self.nodes >= self.budget

    def _visit(self, k: int) -> None:
        self.nodes += 1
        if len(self.current) > len(self.best):
            self.best = dict(self.current)
        if k == len(self.order) or self._finished():
            return
        if len(self.current) + len(self.order) - k <= len(self.best):
            return  # cannot beat what is already found
        pair = self.order[k]
        frame = self.frame
        for first in self._options(pair, 1, frame.earliest, frame.first_deadline):
            self._book(pair, first)
            for second in self._options(pair, 2, first.start + frame.gap, frame.program_end):
                self._book(pair, second)
                self.current[pair.id] = (first.start, second.start)
                self._visit(k + 1)
                del self.current[pair.id]
                self._unbook(pair, second)
                if self._finished():
                    break
            self._unbook(pair, first)
            if self._finished():
                return
        self._visit(k + 1)  # this pair left out

    def _book(self, pair: Pair, option: _Option, sign: int = 1) -> None:
        frame = self.frame
        span = (option.start - frame.buffer, option.start + frame.length + frame.buffer)
        for person, day in ((pair.mentor, option.mentor_day), (pair.mentee, option.mentee_day)):
            if sign > 0:
                self.booked[person.email].append(span)
            else:
                self.booked[person.email].remove(span)
            self.days[person.email][day] += sign

    def _unbook(self, pair: Pair, option: _Option) -> None:
        self._book(pair, option, sign=-1)

    def _options(self, pair: Pair, number: int, lo: int, hi: int) -> list[_Option]:
        """The best few start times for one session in [lo, hi), best first."""
        frame = self.frame
        length, step = frame.length, frame.step
        taken = merge(self.booked[pair.mentor.email] + self.booked[pair.mentee.email])
        spread = (self.index[pair.id] * GOLDEN + (number - 1) * 0.5) % 1.0
        preferred = lo + int((hi - lo) * spread)
        mentor_days, mentee_days = self.days[pair.mentor.email], self.days[pair.mentee.email]
        scored: dict[_Option, float] = {}
        for span in self.shared[pair.id]:
            if span.end <= lo:
                continue
            if span.start >= hi:
                break
            for start, end in _pieces(max(span.start, lo), min(span.end, hi), taken):
                first, last = _ceil(start, step), _floor(end - length, step)
                if first > last:
                    continue
                centre = _floor((span.day_start + span.day_end - length) // 2 + step // 2, step)
                for t in {min(max(centre, first), last), first, last}:
                    comfort = min(t - span.day_start, span.day_end - t - length, COMFORT_CAP)
                    crowding = SAME_DAY_COST * (
                        mentor_days[span.mentor_day] + mentee_days[span.mentee_day]
                    )
                    distance = DAY_COST * abs(t - preferred) / 1440
                    option = _Option(t, span.mentor_day, span.mentee_day)
                    scored[option] = comfort - crowding - distance
        ranked = sorted(scored, key=lambda o: (-scored[o], o.start))
        return ranked[:OPTIONS_PER_SESSION]


class _Option(NamedTuple):
    start: int
    mentor_day: int  # local dates, for spreading a person's sessions over days
    mentee_day: int


def _pieces(start: int, end: int, taken: Sequence[Span]) -> list[Span]:
    """[start, end) minus the merged spans in `taken`."""
    out = []
    for s, e in taken:
        if e <= start or s >= end:
            continue
        if s > start:
            out.append((start, s))
        start = max(start, e)
    if start < end:
        out.append((start, end))
    return out


def _choices(spans: Sequence[SharedSpan], frame: _Frame) -> int:
    """How many start times session 1 could take, ignoring other pairs."""
    return sum(1 for _ in _starts(spans, frame.earliest, frame.first_deadline, frame))


def _explain(frame: _Frame, pair: Pair, shared: Sequence[SharedSpan], sessions_of) -> str:
    """Why a pair got no sessions, in a sentence a coordinator can act on."""
    cohort = frame.cohort
    mentor, mentee = pair.mentor, pair.mentee
    working = intersect(
        frame.clip(working_spans(mentor.availability, cohort.start - _DAY, cohort.end + _DAY)),
        frame.clip(working_spans(mentee.availability, cohort.start - _DAY, cohort.end + _DAY)),
    )
    if not any(s.end - s.start >= frame.length for s in working):
        return (
            f"no common working hours: {_who(mentor)} and {_who(mentee)} never overlap"
            " for a whole session during the program"
        )
    weeks = _weeks(cohort.rules.first_within)
    deadline = frame.local_date(frame.first_deadline - 1)
    if frame.earliest + frame.length > frame.first_deadline:
        return f"session 1 had to take place by {deadline:%d %b %Y}, which has passed"
    if not _fits(shared, frame.earliest, frame.first_deadline, frame):
        return (
            f"no hour when both are free in the first {weeks} (by {deadline:%d %b %Y}) for"
            " session 1: busy times and blackout dates cover every common working hour"
        )
    if not any(
        _fits(shared, t + frame.gap, frame.program_end, frame)
        for t in _starts(shared, frame.earliest, frame.first_deadline, frame)
    ):
        return (
            f"no hour when both are free at least {_weeks(cohort.rules.min_gap)} after"
            f" a possible session 1 and before the program ends on {cohort.end:%d %b %Y}"
        )
    busy_with = [
        f"{person.name} with {', '.join(others)}"
        for person in pair.people
        if (others := [o.mentee.name if o.mentor == person else o.mentor.name
                       for o in sessions_of.get(person.email, ()) if o.id != pair.id])
    ]
    return (
        "every time both are free is taken by other sessions ("
        + "; ".join(busy_with)
        + "): free up time or move a pair to another mentor"
    )


def _who(person: Person) -> str:
    a = person.availability
    return f"{person.name} in {person.place} ({a.describe_days()} {a.describe_hours()})"


def _weeks(delta: timedelta) -> str:
    days = delta.days
    if days % 7 == 0:
        return f"{days // 7} week{'s' if days != 7 else ''}"
    return f"{days} days"


def _starts(shared: Sequence[SharedSpan], lo: int, hi: int, frame: _Frame):
    for span in shared:
        start, end = max(span.start, lo), min(span.end, hi)
        t = _ceil(start, frame.step)
        while t + frame.length <= end:
            yield t
            t += frame.step


def _fits(shared: Sequence[SharedSpan], lo: int, hi: int, frame: _Frame) -> bool:
    return next(_starts(shared, lo, hi, frame), None) is not None
