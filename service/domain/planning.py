"""Finding both sessions of every pair: a pure search over everyone's free time.

The cohort splits into groups of pairs linked by a shared person (a mentor and her
mentees); only pairs of one group can compete for time, so each group is searched on its
own. Inside a group the search is depth-first: the most constrained pair first, its best
session times first. The first descent is the greedy answer; when it leaves a pair out,
the search backtracks (within a node budget) looking for an arrangement that books more
pairs, so small hard groups are solved exactly.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import NamedTuple
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
# Alternatives tried per session when searching, and search nodes per group after the
# first descent (which always completes).
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
    booked: Mapping[str, tuple[Session, ...]] | None = None,
    node_budget: int = DEFAULT_NODE_BUDGET,
) -> Plan:
    """Both sessions for as many pairs as possible; a reason for every pair left out.

    `busy` maps an email to that person's busy intervals (aware datetimes). Pairs in
    `booked` keep the sessions they have, and those sessions are busy time for their
    people. Nothing new is planned before `now`.
    """
    booked = {pid: s for pid, s in (booked or {}).items() if len(s) == 2}
    frame = _Frame.of(cohort, now)
    index = {pair.id: i for i, pair in enumerate(cohort.pairs)}
    outcome: dict[str, PairPlan] = {}
    # Groups share nobody, so each one's free time is worked out, used and dropped in
    # turn: memory stays proportional to the largest group, not to the cohort.
    for group in _groups(cohort.pairs, cohort.link_for):
        people = {p.email: p for pair in group for p in pair.people}
        free = {email: _free(frame, person, busy.get(email, ())) for email, person in people.items()}
        shared = {pair.id: intersect(free[pair.mentor.email], free[pair.mentee.email]) for pair in group}
        # A pair with no possible sessions of its own only slows the search down.
        hopeful = [p for p in group if p.id in booked or _could_meet(frame, shared[p.id])]
        chosen: dict[str, tuple[int, int]] = {}
        for part in _groups(hopeful, cohort.link_for):  # without them a group may fall apart: smaller searches
            chosen.update(_Search(frame, part, shared, index, node_budget, booked).run())
        sessions_of: dict[str, list[Pair]] = defaultdict(list)
        for pair in group:
            if pair.id in chosen or pair.id in booked:
                for person in pair.people:
                    sessions_of[person.email].append(pair)
        for pair in group:
            if pair.id in booked:
                outcome[pair.id] = PairPlan(pair=pair, sessions=tuple(booked[pair.id]), problems=())
            elif pair.id in chosen:
                outcome[pair.id] = PairPlan(pair=pair, sessions=frame.sessions(pair.id, chosen[pair.id]), problems=())
            else:
                reason = _explain(frame, pair, shared[pair.id], sessions_of)
                outcome[pair.id] = PairPlan(pair=pair, sessions=(), problems=(reason,))
    return Plan(cohort=cohort, pairs=tuple(outcome[pair.id] for pair in cohort.pairs))


def replan_session(
    cohort: Cohort,
    busy: Busy,
    *,
    pair_id: str,
    number: int,
    booked: Mapping[str, tuple[Session, ...]],
    now: datetime,
) -> Session | None:
    """Another time for one session of a pair (after a decline, say), around every
    session in `booked`, which holds the pair's other session but not this one. Add the
    refused time to the decliner's `busy` so it is not offered again."""
    frame = _Frame.of(cohort, now)
    group = next(g for g in _groups(cohort.pairs, cohort.link_for) if any(p.id == pair_id for p in g))
    pair = next(p for p in group if p.id == pair_id)
    people = {p.email: p for member in group for p in member.people}
    free = {email: _free(frame, person, busy.get(email, ())) for email, person in people.items()}
    shared = {pair.id: intersect(free[pair.mentor.email], free[pair.mentee.email])}
    search = _Search(frame, [], shared, {pair.id: 0}, 0, booked)
    for member in group:  # _Search books fixed sessions of the pairs it is given
        if member.id != pair.id:
            for session in booked.get(member.id, ()):
                search.book_fixed(member, session)
    other = next((s for s in booked.get(pair.id, ()) if s.number != number), None)
    if other is not None:
        search.book_fixed(pair, other)
    if number == 1:
        lo, hi = frame.earliest, frame.first_deadline
        if other is not None:  # session 2 must still come at least the gap later
            hi = min(hi, to_minutes(other.start) - frame.gap + frame.length)
    else:
        lo, hi = frame.earliest, frame.program_end
        if other is not None:
            lo = max(lo, to_minutes(other.start) + frame.gap)
    search.thorough = True
    options = search.options(pair, number, lo, hi)
    if not options:
        return None
    start = options[0].start
    return Session(pair_id=pair.id, number=number, start=from_minutes(start), end=from_minutes(start + frame.length))


def _free(frame: _Frame, person: Person, busy: Sequence[tuple[datetime, datetime]]) -> list[DaySpan]:
    cohort = frame.cohort
    working = working_spans(person.availability, cohort.start - _DAY, cohort.end + _DAY)
    return frame.clip(subtract(working, merge(map(_span, busy))))


def _span(interval: tuple[datetime, datetime]) -> Span:
    start, end = interval
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError(f"busy time {start}..{end} has no time zone")
    return int(start.timestamp()) // 60, int(end.timestamp()) // 60


def _could_meet(frame: _Frame, shared: Sequence[SharedSpan]) -> bool:
    """Whether some session 1 leaves room for a session 2, ignoring other pairs."""
    firsts = _starts(shared, frame.earliest, frame.first_deadline, frame)
    first = next(firsts, None)
    return first is not None and _fits(shared, first + frame.gap, frame.program_end, frame)


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
        """The spans inside [earliest, program_end); only the two edges are cut."""
        lo = bisect_right([s.end for s in spans], self.earliest)
        hi = bisect_left([s.start for s in spans], self.program_end)
        kept = list(spans[lo:hi])
        if kept and kept[0].start < self.earliest:
            s = kept[0]
            kept[0] = DaySpan(self.earliest, s.end, s.day_start, s.day_end, s.day)
        if kept and kept[-1].end > self.program_end:
            s = kept[-1]
            kept[-1] = DaySpan(s.start, self.program_end, s.day_start, s.day_end, s.day)
        return kept

    def sessions(self, pair_id: str, starts: tuple[int, int]) -> tuple[Session, ...]:
        return tuple(
            Session(pair_id=pair_id, number=n, start=from_minutes(t), end=from_minutes(t + self.length))
            for n, t in enumerate(starts, start=1)
        )

    def local_date(self, minutes: int) -> date:
        return from_minutes(minutes).astimezone(ZoneInfo(self.cohort.timezone)).date()


def _minutes(delta: timedelta) -> int:
    return int(delta.total_seconds() // 60)


def _ceil(value: int, step: int) -> int:
    return -(-value // step) * step


def _floor(value: int, step: int) -> int:
    return value // step * step


def _room(link: str) -> str:
    """A shared meeting room, booked like a person (no email has this form)."""
    return f"room {link}"


def _groups(pairs: Sequence[Pair], room_of: Callable[[Pair], str | None]) -> list[list[Pair]]:
    """Pairs linked by shared people or rooms (union-find over emails), in cohort order."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for pair in pairs:
        parent[find(pair.mentor.email)] = find(pair.mentee.email)
        if room := room_of(pair):  # pairs meeting in one room cannot meet at once either
            parent[find(_room(room))] = find(pair.mentor.email)
    groups: dict[str, list[Pair]] = defaultdict(list)
    for pair in pairs:
        groups[find(pair.mentor.email)].append(pair)
    return list(groups.values())


class _Search:
    """Depth-first search for the arrangement of one group that books the most pairs."""

    def __init__(self, frame: _Frame, group: list[Pair], shared, index, node_budget: int, fixed):
        self.frame = frame
        self.shared = shared
        self.index = index
        self.budget = node_budget
        # Most constrained first: fewest possible times for session 1.
        self.order = sorted(
            (p for p in group if p.id not in fixed),
            key=lambda p: (_choices(shared[p.id], frame), index[p.id]),
        )
        self.booked: dict[str, list[Span]] = defaultdict(list)
        self.days: dict[str, Counter[int]] = defaultdict(Counter)
        for pair in group:
            for session in fixed.get(pair.id, ()):
                self.book_fixed(pair, session)
        self.current: dict[str, tuple[int, int]] = {}
        self.best: dict[str, tuple[int, int]] = {}
        self.nodes = 0
        self.thorough = False  # the first descent only tries the best time of each free span
        self.descended = False

    def run(self) -> dict[str, tuple[int, int]]:
        # First a single greedy descent: the best time of each free span, no going back.
        self._visit(0)
        if len(self.best) < len(self.order):
            # Then a real search from the top, the edges of free spans included (two
            # sessions may share a window only if both sit at its edges), within the budget.
            self.thorough, self.nodes = True, 0
            self._visit(0)
        return self.best

    def _finished(self) -> bool:
        if len(self.best) == len(self.order):
            return True
        return self.nodes >= self.budget if self.thorough else self.descended

    def _visit(self, k: int) -> None:
        self.nodes += 1
        if len(self.current) > len(self.best):
            self.best = dict(self.current)
        if k == len(self.order):
            self.descended = True
            return
        if self._finished():
            return
        if len(self.current) + len(self.order) - k <= len(self.best):
            return  # cannot beat what is already found
        pair = self.order[k]
        frame = self.frame
        for first in self.options(pair, 1, frame.earliest, frame.first_deadline):
            self._book(pair, first)
            for second in self.options(pair, 2, first.start + frame.gap, frame.program_end):
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
        if room := frame.cohort.link_for(pair):
            if sign > 0:
                self.booked[_room(room)].append(span)
            else:
                self.booked[_room(room)].remove(span)

    def _unbook(self, pair: Pair, option: _Option) -> None:
        self._book(pair, option, sign=-1)

    def book_fixed(self, pair: Pair, session: Session) -> None:
        """A session that exists already: its time is taken for both its people."""
        start = to_minutes(session.start)
        self._book(pair, _Option(start, _local_day(pair.mentor, start), _local_day(pair.mentee, start)))

    def options(self, pair: Pair, number: int, lo: int, hi: int) -> list[_Option]:
        """The best few start times for one session in [lo, hi), best first."""
        frame = self.frame
        length, step = frame.length, frame.step
        room = frame.cohort.link_for(pair)
        taken = merge(self.booked[pair.mentor.email] + self.booked[pair.mentee.email] + (self.booked[_room(room)] if room else []))
        spread = (self.index[pair.id] * GOLDEN + (number - 1) * 0.5) % 1.0
        preferred = lo + int((hi - lo) * spread)
        mentor_days, mentee_days = self.days[pair.mentor.email], self.days[pair.mentee.email]
        scored: list[tuple[float, int, int, int]] = []  # (-score, start, mentor day, mentee day)
        spans = self.shared[pair.id]
        for i in range(bisect_right(spans, lo, key=_end), len(spans)):
            span = spans[i]
            if span.start >= hi:
                break
            day_start, day_end = span.day_start, span.day_end
            crowding = SAME_DAY_COST * (mentor_days[span.mentor_day] + mentee_days[span.mentee_day])
            open_from, open_to = max(span.start, lo), min(span.end, hi)
            for start, end in _pieces(open_from, open_to, taken) if taken else ((open_from, open_to),):
                first, last = -(-start // step) * step, (end - length) // step * step
                if first > last:
                    continue
                centre = (day_start + day_end - length + step) // 2 // step * step
                centre = min(max(centre, first), last)
                for t in {centre, first, last} if self.thorough else (centre,):
                    comfort = min(t - day_start, day_end - t - length, COMFORT_CAP)
                    distance = DAY_COST * abs(t - preferred) / 1440
                    scored.append((crowding + distance - comfort, t, span.mentor_day, span.mentee_day))
        scored.sort()
        return [_Option(t, a, b) for _, t, a, b in scored[:OPTIONS_PER_SESSION]]


def _end(span: SharedSpan) -> int:
    return span.end


def _local_day(person: Person, minutes: int) -> int:
    return from_minutes(minutes).astimezone(ZoneInfo(person.timezone)).date().toordinal()


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
    count = 0
    for span in spans:
        if span.start >= frame.first_deadline:
            break
        first = _ceil(max(span.start, frame.earliest), frame.step)
        last = _floor(min(span.end, frame.first_deadline) - frame.length, frame.step)
        if last >= first:
            count += (last - first) // frame.step + 1
    return count


def _explain(frame: _Frame, pair: Pair, shared: Sequence[SharedSpan], sessions_of) -> str:
    """Why a pair got no sessions, in a sentence a coordinator can act on."""
    cohort = frame.cohort
    mentor, mentee = pair.mentor, pair.mentee
    working = intersect(
        frame.clip(working_spans(mentor.availability, cohort.start - _DAY, cohort.end + _DAY)),
        frame.clip(working_spans(mentee.availability, cohort.start - _DAY, cohort.end + _DAY)),
    )
    if not any(s.end - s.start >= frame.length for s in working):
        return f"no common working hours: {_who(mentor)} and {_who(mentee)} never overlap for a whole session during the program"
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
        _fits(shared, t + frame.gap, frame.program_end, frame) for t in _starts(shared, frame.earliest, frame.first_deadline, frame)
    ):
        return (
            f"no hour when both are free at least {_weeks(cohort.rules.min_gap)} after"
            f" a possible session 1 and before the program ends on {cohort.end:%d %b %Y}"
        )
    busy_with = [
        f"{person.name} with {', '.join(others)}"
        for person in pair.people
        if (
            others := [o.mentee.name if o.mentor == person else o.mentor.name for o in sessions_of.get(person.email, ()) if o.id != pair.id]
        )
    ]
    room = cohort.link_for(pair)
    if not busy_with and room:
        return (
            f"every time both are free is taken by other sessions in the shared room {room}:"
            " give the mentor a room of their own (mentor_video_link)"
        )
    return (
        "every time both are free is taken by other sessions (" + "; ".join(busy_with) + "): free up time or move a pair to another mentor"
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


def misfit(pair: Pair, session: Session, busy: Busy) -> str | None:
    """Why a booked session no longer suits both people (a blackout, new hours or days, a
    new time zone, a busy calendar), in words for them; None while it does.

    A busy interval at exactly the session's time is the session itself, as it shows in
    an exported calendar: it is not a reason to move.
    """
    start, end = to_minutes(session.start), to_minutes(session.end)
    for person in pair.people:
        pattern = person.availability
        day = session.start.astimezone(ZoneInfo(pattern.timezone)).date()
        working = working_spans(pattern, day - _DAY, day + _DAY)
        if not any(s.start <= start and end <= s.end for s in working):
            if day in pattern.blackout_dates:
                return f"{person.name} is away on {day:%A} {day.day} {day:%B}"
            if day.weekday() not in pattern.days:
                return f"{person.name} no longer meets on {day:%A}s"
            return f"it falls outside {person.name}'s hours ({pattern.describe_hours()} in {person.place})"
        for busy_start, busy_end in busy.get(person.email, ()):
            if (busy_start, busy_end) != (session.start, session.end) and busy_start < session.end and session.start < busy_end:
                return f"{person.name} is busy then"
    return None


def alternatives(
    cohort: Cohort, busy: Busy, *, pair_id: str, number: int, booked: Mapping[str, tuple[Session, ...]], now: datetime, count: int = 3
) -> list[Session]:
    """Up to `count` other times for one session, each on a different day, in date order."""
    found: list[Session] = []
    busy = dict(busy)
    pair = next(p for p in cohort.pairs if p.id == pair_id)
    while len(found) < count:
        option = replan_session(cohort, busy, pair_id=pair_id, number=number, booked=booked, now=now)
        if option is None:
            break
        found.append(option)
        day = option.start.replace(hour=0, minute=0, second=0, microsecond=0)
        for person in pair.people:  # the next one on another day
            busy[person.email] = [*busy.get(person.email, ()), (day, day + _DAY)]
    return sorted(found)
