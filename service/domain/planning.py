"""Finding both sessions of every pair: a pure search over everyone's free time.

The cohort splits into groups of pairs linked by a shared person (a mentor and her
mentees); only pairs of one group can compete for time, so each group is searched on its
own. Inside a group the search is depth-first: the most constrained pair first, its best
session times first. The first descent is the greedy answer; when it leaves a pair out,
the search backtracks (within a node budget) looking for an arrangement that books more
pairs, so small hard groups are solved exactly.

A pair whose hours never meet in the session window may be booked outside them, up to
the cohort's stretch at either end of a person's day: at the time that keeps the larger
of the two people's minutes outside their hours smallest, taking turns over the two
sessions. A pair left out gets its true reason and the smallest change that would plan
it, found by planning that pair again with the change.

Everything here works on UTC minutes (availability.py): busy times are converted once
per person and plan, or once for every plan where they are read (BusyMinutes), where two
working patterns meet is worked out once per plan, and a pair's free time is lists of
ints. A session time is scored only for the free pieces that can still beat the best
times found so far, nearest the pair's preferred day first. A large cohort's groups are
planned in forked worker processes; each group's plan depends on that group alone, so
the plan is the same.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import NamedTuple

from .availability import (
    BusyMinutes,
    Free,
    Hours,
    Overlap,
    Span,
    busy_of,
    day_of_mentee,
    day_of_mentor,
    free_time,
    from_minutes,
    meet,
    midnight,
    stretched_spans,
    to_minutes,
    zone,
)
from .forked import collecting_new_objects_only, in_workers
from .model import Cohort, Pair, Person, Session, Stretch, WorkingPattern
from .stretch import outside_hours

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
# A stretched session: each minute the more burdened person spends outside their hours
# outweighs every other preference; then, over both sessions, the larger total of either.
STRETCH_COST = 1000
FAIR_COST = 10
# How far a fix may go when a pair is left out: stretch in steps up to the most the
# cohort file allows (working_hours.stretch_minutes).
FIX_STRETCH_STEP, FIX_STRETCH_MOST = 15, 360
FIX_BLACKOUTS_TRIED = 30
FIX_NODE_BUDGET = 2_000
# From this many pairs on, groups are planned in forked worker processes (forked.py).
# Below it, forking costs more than it saves.
PARALLEL_PAIRS = 2_000


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
# Busy times as they are read, or converted to minutes once (BusyMinutes.of) for all the
# plans made from them.
AnyBusy = Busy | BusyMinutes


def plan_sessions(
    cohort: Cohort,
    busy: AnyBusy,
    *,
    now: datetime,
    booked: Mapping[str, tuple[Session, ...]] | None = None,
    node_budget: int = DEFAULT_NODE_BUDGET,
) -> Plan:
    """Both sessions for as many pairs as possible; a reason for every pair left out.

    `busy` maps an email to that person's busy intervals (aware datetimes, or BusyMinutes). Pairs in
    `booked` keep the sessions they have, and those sessions are busy time for their
    people. Nothing new is planned before `now`.
    """
    booked = {pid: s for pid, s in (booked or {}).items() if len(s) == 2}
    frame = _Frame.of(cohort, now)
    index = {pair.id: i for i, pair in enumerate(cohort.pairs)}
    # A group booked whole keeps its sessions: nothing in it to plan (a re-plan after an
    # edit or an answer plans only the groups of the pairs still waiting).
    groups = [group for group in _groups(cohort.pairs, cohort.link_for) if any(pair.id not in booked for pair in group)]
    large = sum(map(len, groups)) >= PARALLEL_PAIRS
    with collecting_new_objects_only(large):
        work = _Work(frame, groups, busy, booked, index, node_budget)
        # Each group's plan depends on that group alone: in workers, the answer is the one planning in turn gives.
        found = in_workers(work.plan, [len(group) for group in work.groups]) if large else None
        if found is None:
            found = work.plan(0, len(work.groups))
        return Plan(cohort=cohort, pairs=tuple(_pair_plan(frame, pair, booked, found) for pair in cohort.pairs))


Found = dict[str, tuple[int, int] | str]  # by pair: the starts of both sessions, or why it has none


@dataclass(frozen=True)
class _Work:
    """A plan's groups, with all they are planned from."""

    frame: _Frame
    groups: list[list[Pair]]
    busy: AnyBusy
    booked: Mapping[str, tuple[Session, ...]]
    index: Mapping[str, int]
    node_budget: int

    def plan(self, first: int, last: int) -> Found:
        """Plan groups[first:last]. Groups share nobody, so each one's free time is worked
        out, used and dropped in turn: memory stays proportional to the largest group."""
        found: Found = {}
        for group in self.groups[first:last]:
            found.update(_plan_group(self.frame, group, self.busy, self.booked, self.index, self.node_budget))
        return found


def _plan_group(
    frame: _Frame,
    group: list[Pair],
    busy: AnyBusy,
    booked: Mapping[str, tuple[Session, ...]],
    index: Mapping[str, int],
    node_budget: int,
) -> Found:
    """The starts of both sessions of each pair of the group that can be planned, and the
    reason for each one that cannot (pairs in `booked` keep theirs)."""
    people = {p.email for pair in group for p in pair.people}
    taken = {email: busy_of(busy, email) for email in people}
    shared: dict[str, Free] = {}
    stretched: set[str] = set()
    hopeful = []  # a pair with no possible sessions of its own only slows the search down
    for pair in group:
        shared[pair.id], wide, meets = _pair_spans(frame, pair, _both(pair, taken), frame.cohort.stretch)
        if wide:
            stretched.add(pair.id)
        if meets or pair.id in booked:
            hopeful.append(pair)
    chosen: dict[str, tuple[int, int]] = {}
    # Without the others a group may fall apart: smaller searches.
    for part in _groups(hopeful, frame.cohort.link_for) if len(hopeful) < len(group) else [group]:
        chosen.update(_Search(frame, part, shared, index, node_budget, booked, stretched).run())
    found: Found = dict(chosen)
    left_out = [pair for pair in group if pair.id not in chosen and pair.id not in booked]
    if left_out:
        sessions_of: dict[str, list[Pair]] = defaultdict(list)
        for pair in group:
            if pair.id in chosen or pair.id in booked:
                for person in pair.people:
                    sessions_of[person.email].append(pair)
        fixed = {pair.id: tuple(booked[pair.id]) for pair in group if pair.id in booked}
        fixed.update((pair_id, frame.sessions(pair_id, starts)) for pair_id, starts in chosen.items())
        for pair in left_out:
            found[pair.id] = _Diagnosis(frame, pair, group, taken, fixed, index).reason(shared[pair.id], sessions_of)
    return found


def _pair_plan(
    frame: _Frame, pair: Pair, booked: Mapping[str, tuple[Session, ...]], found: Mapping[str, tuple[int, int] | str]
) -> PairPlan:
    if pair.id in booked:
        return PairPlan(pair=pair, sessions=tuple(booked[pair.id]), problems=())
    outcome = found[pair.id]
    if isinstance(outcome, str):
        return PairPlan(pair=pair, sessions=(), problems=(outcome,))
    return PairPlan(pair=pair, sessions=frame.sessions(pair.id, outcome), problems=())


def replan_session(
    cohort: Cohort,
    busy: AnyBusy,
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
    taken = {p.email: busy_of(busy, p.email) for p in pair.people}
    spans, wide, _ = _pair_spans(frame, pair, _both(pair, taken), cohort.stretch)
    search = _Search(frame, [], {pair.id: spans}, {pair.id: 0}, 0, booked, {pair.id} if wide else set())
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
    options = search.best(pair, number, lo, hi, _carried(pair, other) if wide and other else None, count=1)
    if not options:
        return None
    start = options[0].start
    return Session(pair_id=pair.id, number=number, start=from_minutes(start), end=from_minutes(start + frame.length))


def _both(pair: Pair, taken: Mapping[str, list[Span]]) -> list[Span]:
    """The busy times of both people of a pair, sorted (overlaps are fine)."""
    return sorted(taken[pair.mentor.email] + taken[pair.mentee.email])


def _pair_spans(frame: _Frame, pair: Pair, busy: Sequence[Span], stretch: Stretch, inside: Free | None = None) -> tuple[Free, bool, bool]:
    """The times a pair may meet; whether they reach outside someone's hours, only when
    the pair has no room for both sessions inside both people's hours; and whether both
    sessions fit at all, other pairs aside. `busy`: both people's busy times; `inside`:
    where both are free inside hours, when known."""
    if inside is None:
        inside = frame.free(pair.mentor.availability, pair.mentee.availability, busy)
    if _could_meet(frame, inside):
        return inside, False, True
    wide = _stretched(frame, pair, busy, stretch)
    if wide is not None and _could_meet(frame, wide):
        return wide, True, True
    return inside, False, False


def _stretched(frame: _Frame, pair: Pair, busy: Sequence[Span], stretch: Stretch) -> Free | None:
    """When both are free with their days stretched as far as `stretch` allows; None when
    neither may be stretched."""
    mentor, mentee = pair.mentor.availability, pair.mentee.availability
    reach = stretch.allowance(mentor), stretch.allowance(mentee)
    if not any(reach):
        return None
    return frame.free(mentor, mentee, busy, reach, own_hours=True)


def _carried(pair: Pair, session: Session) -> _Option:
    """What each of a pair carries outside their hours in a session that stands."""
    start = to_minutes(session.start)
    mentor = sum(outside_hours(pair.mentor.availability, session.start, session.end))
    mentee = sum(outside_hours(pair.mentee.availability, session.start, session.end))
    return _Option(start, _local_day(pair.mentor, start), _local_day(pair.mentee, start), mentor, mentee)


def _could_meet(frame: _Frame, shared: Free) -> bool:
    """Whether some session 1 leaves room for a session 2, ignoring other pairs."""
    firsts = _starts(shared, frame.earliest, frame.first_deadline, frame)
    first = next(firsts, None)
    return first is not None and _fits(shared, first + frame.gap, frame.program_end, frame)


_DAY = timedelta(days=1)
# A session booked (or moved) now starts no sooner than this: both people must hear of it
# first, and an invitation for a time already under way is never sent.
NOTICE = timedelta(hours=12)
_SCHEDULES_KEPT = 4096  # pairs of weekly schedules a plan keeps where they meet


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
    # Where two weekly schedules meet (zone, hours and days of each, reach, own hours):
    # people share a handful, so each is worked out once per plan; days off are left out
    # later, per pair. Frames made from this one with replace() share these: they move
    # only the first deadline and the gap.
    met: dict[tuple, Hours] = field(default_factory=dict, compare=False, repr=False)
    days_off: dict[tuple[frozenset[date], frozenset[date]], frozenset[int]] = field(default_factory=dict, compare=False, repr=False)
    # _least_outside by the shape of a stretched period: its days repeat a few shapes.
    shapes: dict[tuple[int, int, int, int], int] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, cohort: Cohort, now: datetime) -> _Frame:
        rules = cohort.rules
        step = _minutes(rules.step)
        program_start = midnight(cohort.start, cohort.timezone)
        program_end = midnight(cohort.end + _DAY, cohort.timezone)
        return cls(
            cohort=cohort,
            earliest=max(program_start, _ceil(to_minutes(now + NOTICE), step)),
            # Whole days in the program's zone: "the first 3 weeks" ends at a midnight there.
            first_deadline=min(midnight(cohort.start + rules.first_within, cohort.timezone), program_end),
            program_end=program_end,
            length=_minutes(rules.length),
            gap=_minutes(rules.min_gap),
            buffer=_minutes(rules.buffer),
            step=step,
        )

    def free(
        self, mentor: WorkingPattern, mentee: WorkingPattern, busy: Sequence[Span], reach: tuple[int, int] = (0, 0), own_hours: bool = False
    ) -> Free:
        """Where both are free: where their working days, stretched by `reach` minutes,
        meet from `earliest` to the end of the program, but for their days off and `busy`."""
        return free_time(self.hours(mentor, mentee, reach, own_hours), busy, self._days_off(mentor), self._days_off(mentee))

    def hours(self, mentor: WorkingPattern, mentee: WorkingPattern, reach: tuple[int, int] = (0, 0), own_hours: bool = False) -> Hours:
        """Where the two patterns' working days, stretched by `reach` minutes, meet from
        `earliest` to the end of the program, days off included."""
        key = (mentor.timezone, mentor.hours, mentor.days, mentee.timezone, mentee.hours, mentee.days, reach, own_hours)
        found = self.met.get(key)
        if found is None:
            if len(self.met) == _SCHEDULES_KEPT:  # a cohort of very varied hours: memory before speed
                self.met.clear()
            first, last = self.cohort.start - _DAY, self.cohort.end + _DAY
            a, b = stretched_spans(_every_day(mentor), first, last, reach[0]), stretched_spans(_every_day(mentee), first, last, reach[1])
            found = self.met[key] = meet(a, b, self.earliest, self.program_end, own_hours=own_hours)
        return found

    def _days_off(self, pattern: WorkingPattern) -> frozenset[int]:
        """The person's blackout dates and holidays, as the ordinals an Overlap holds."""
        key = (pattern.blackout_dates, pattern.holidays)
        found = self.days_off.get(key)
        if found is None:
            if len(self.days_off) == _SCHEDULES_KEPT:
                self.days_off.clear()
            found = self.days_off[key] = frozenset(day.toordinal() for day in pattern.blackout_dates | pattern.holidays)
        return found

    def least_outside(self, periods: Sequence[Overlap]) -> int:
        """The least minutes the worse-off person spends outside their hours in a session
        that starts on the step grid anywhere in these stretched `periods`."""
        least = None
        for period in periods:
            mentor_from, mentor_to, mentee_from, mentee_to = period[6:]
            # Moved by whole steps, a period has the same grid: only its shape counts.
            base = mentor_from // self.step * self.step
            shape = (mentor_from - base, mentor_to - base, mentee_from - base, mentee_to - base)
            found = self.shapes.get(shape)
            if found is None:
                found = self.shapes[shape] = _least_outside(*shape, self.length, self.step)
            least = found if least is None or found < least else least
        return least or 0

    def sessions(self, pair_id: str, starts: tuple[int, int]) -> tuple[Session, ...]:
        return tuple(
            Session(pair_id=pair_id, number=n, start=from_minutes(t), end=from_minutes(t + self.length))
            for n, t in enumerate(starts, start=1)
        )

    def local_date(self, minutes: int) -> date:
        return from_minutes(minutes).astimezone(zone(self.cohort.timezone)).date()


def _minutes(delta: timedelta) -> int:
    return int(delta.total_seconds() // 60)


def _ceil(value: int, step: int) -> int:
    return -(-value // step) * step


def _room(link: str) -> str:
    """A shared meeting room, booked like a person (no email has this form)."""
    return f"room {link}"


def linked(cohort: Cohort) -> dict[str, tuple[Pair, ...]]:
    """Each pair's group: the pairs it shares a person or a room with, directly or through
    others. Sessions outside a pair's group never stand in its way."""
    return {pair.id: group for group in map(tuple, _groups(cohort.pairs, cohort.link_for)) for pair in group}


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

    def __init__(self, frame: _Frame, group: list[Pair], shared: Mapping[str, Free], index, node_budget: int, fixed, stretched=frozenset()):
        self.frame = frame
        self.shared = shared
        self.stretched = stretched  # ids of pairs whose spans reach outside someone's hours
        self.index = index
        self.budget = node_budget
        # Most constrained first: fewest possible times for session 1.
        hopeful = [p for p in group if p.id not in fixed]
        self.order = sorted(hopeful, key=lambda p: (_choices(shared[p.id], frame), index[p.id])) if len(hopeful) > 1 else hopeful
        self.booked: dict[str, list[Span]] = defaultdict(list)
        self.days: dict[str, dict[int, int]] = defaultdict(dict)  # sessions per person per local date
        for pair in group:
            for session in fixed.get(pair.id, ()):
                self.book_fixed(pair, session)
        self.current: dict[str, tuple[int, int]] = {}
        self.best_found: dict[str, tuple[int, int]] = {}
        self.nodes = 0
        self.thorough = False  # the first descent only tries the best time of each free span
        self.descended = False

    def run(self) -> dict[str, tuple[int, int]]:
        # First a single greedy descent: the best time of each free span, no going back.
        self._visit(0)
        if len(self.best_found) < len(self.order):
            # Then a real search from the top, the edges of free spans included (two
            # sessions may share a window only if both sit at its edges), within the budget.
            self.thorough, self.nodes = True, 0
            self._visit(0)
        return self.best_found

    def _finished(self) -> bool:
        if len(self.best_found) == len(self.order):
            return True
        return self.nodes >= self.budget if self.thorough else self.descended

    def _visit(self, k: int) -> None:
        self.nodes += 1
        if len(self.current) > len(self.best_found):
            self.best_found = dict(self.current)
        if k == len(self.order):
            self.descended = True
            return
        if self._finished():
            return
        if len(self.current) + len(self.order) - k <= len(self.best_found):
            return  # cannot beat what is already found
        pair = self.order[k]
        frame = self.frame
        for first in self.options(pair, 1, frame.earliest, frame.first_deadline):
            self._book(pair, first)
            for second in self.options(pair, 2, first.start + frame.gap, frame.program_end, first):
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
            days = self.days[person.email]
            days[day] = days.get(day, 0) + sign
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

    def options(self, pair: Pair, number: int, lo: int, hi: int, other: _Option | None = None) -> Iterator[_Option]:
        """The best few start times for one session in [lo, hi), best first. The first
        descent seldom looks past the best one, so that one is found alone first. Taken
        lazily: the search books and unbooks around each one, and it is back to the same
        state whenever the next is asked for."""
        count = OPTIONS_PER_SESSION if self.thorough else 1
        found = self.best(pair, number, lo, hi, other, count)
        yield from found
        if count < OPTIONS_PER_SESSION and found:
            yield from self.best(pair, number, lo, hi, other, OPTIONS_PER_SESSION)[count:]

    def best(
        self, pair: Pair, number: int, lo: int, hi: int, other: _Option | None = None, count: int = OPTIONS_PER_SESSION
    ) -> list[_Option]:
        """The `count` best start times for one session in [lo, hi), best first. `other`:
        the pair's other session, whose minutes outside hours a stretched pair weighs.

        Free pieces are scored outwards from the preferred time, nearer side first. Each
        day away costs DAY_COST and no time can score below _score_floor, so once a
        side's next piece is too far away to beat the `count`-th best time found, nothing
        beyond it can: the answer is the one scoring every piece would give."""
        frame = self.frame
        length, step = frame.length, frame.step
        free = self.shared[pair.id]
        starts, ends, within, periods = free.starts, free.ends, free.within, free.hours.periods
        room = frame.cohort.link_for(pair)
        taken = self.booked[pair.mentor.email] + self.booked[pair.mentee.email] + (self.booked[_room(room)] if room else [])
        taken.sort()
        spread = (self.index[pair.id] * GOLDEN + (number - 1) * 0.5) % 1.0
        preferred = lo + int((hi - lo) * spread)
        mentor_days, mentee_days = self.days[pair.mentor.email], self.days[pair.mentee.email]
        wide = pair.id in self.stretched
        first_piece, stop = bisect_right(ends, lo), bisect_left(starts, hi)
        # A stretched pair: what the periods of these pieces force outside hours at the least.
        least = frame.least_outside(periods[within[first_piece] : within[stop - 1] + 1]) if wide and first_piece < stop else None
        least, carried, most = _score_floor(free.hours.widest, length, least, other)
        scored: list[tuple] = []  # the best so far: (score, start, mentor day, mentee day, mentor outside, mentee outside)
        right = min(max(bisect_right(ends, preferred), first_piece), stop)  # pieces from here end after `preferred`
        left = right - 1
        while True:
            # How far from `preferred` the next piece on each side starts at the nearest.
            after = max(starts[right], lo) - preferred if right < stop else None
            before = preferred - (min(ends[left], hi) - length) if left >= first_piece else None
            if after is not None and (before is None or after <= before):
                i, away = right, after
                right += 1
            elif before is not None:
                i, away = left, before
                left -= 1
            else:
                break
            # The least any time in that piece can score, summed in the order a score is.
            if len(scored) == count and DAY_COST * max(away, 0) / 1440 + STRETCH_COST * least + FAIR_COST * carried - most > scored[-1][0]:
                break  # and the other side's next piece is further still
            period = periods[within[i]]
            day_start, day_end, mentor_day, mentee_day = period[2:6]
            crowding = SAME_DAY_COST * (mentor_days.get(mentor_day, 0) + mentee_days.get(mentee_day, 0))
            open_from, open_to = max(starts[i], lo), min(ends[i], hi)
            for start, end in _pieces(open_from, open_to, taken) if taken else ((open_from, open_to),):
                first, last = -(-start // step) * step, (end - length) // step * step
                if first > last:
                    continue
                if wide:
                    candidates = _stretched_options(period, first, last, length, step, crowding, preferred, other)
                else:
                    candidates = []
                    centre = (day_start + day_end - length + step) // 2 // step * step
                    centre = min(max(centre, first), last)
                    for t in {centre, first, last} if self.thorough else (centre,):
                        comfort = min(t - day_start, day_end - t - length, COMFORT_CAP)
                        distance = DAY_COST * abs(t - preferred) / 1440
                        candidates.append((crowding + distance - comfort, t, mentor_day, mentee_day, 0, 0))
                for candidate in candidates:
                    if len(scored) < count or candidate < scored[-1]:
                        insort(scored, candidate)
                        del scored[count:]
        return [_Option._make(option[1:]) for option in scored]


def _score_floor(widest: int, length: int, least: int | None, other: _Option | None) -> tuple[int, int, int]:
    """What bounds the score of any session time in shared hours whose widest period has
    `widest` minutes inside both people's days, distance from the preferred time aside:
    the least minutes the worse-off person spends outside their hours (`least`, for a
    stretched pair; None otherwise), the least the worse-off one carries over both
    sessions (with `other`), and the most comfort a time can have.

    Over both sessions, the worse-off person carries at least `least` plus the smaller
    share of the other session; and at least half of all the minutes both spend outside
    their hours: each minute of a session outside the common hours, and each minute of a
    gap between the two days, is outside someone's hours."""
    most = max(0, min(COMFORT_CAP, (widest - length) // 2))
    if least is None:
        return 0, 0, most
    if other is None:
        return least, least, most
    both = max(0, length - widest)  # the least minutes outside one session, both people together
    carried = max(least + min(other.mentor_out, other.mentee_out), -(-(both + other.mentor_out + other.mentee_out) // 2))
    return least, carried, most


def _least_outside(mentor_from: int, mentor_to: int, mentee_from: int, mentee_to: int, length: int, step: int) -> int:
    """The least, over session starts on the step grid, of the minutes the worse-off of two
    people spends outside their hours, counted as _stretched_options counts them. That is
    convex in the start: scanned from before both days until it rises."""
    t = (min(mentor_from, mentee_from) - length) // step * step
    least = None
    while True:
        end = t + length
        mentor = (mentor_from - t if t < mentor_from else 0) + (end - mentor_to if end > mentor_to else 0)
        mentee = (mentee_from - t if t < mentee_from else 0) + (end - mentee_to if end > mentee_to else 0)
        worst = max(mentor, mentee)
        if least is not None and worst > least:
            return least
        least = worst
        t += step


def _stretched_options(
    span: Overlap, first: int, last: int, length: int, step: int, crowding: float, preferred: int, other: _Option | None
) -> list[tuple]:
    """Scored start times in [first, last] of a span that may reach outside someone's
    hours. Each person's minutes outside are piecewise linear in the start, so the best
    times lie on the grid next to their bends and crossings: only those are scored."""
    _, _, day_start, day_end, mentor_day, mentee_day, mentor_from, mentor_to, mentee_from, mentee_to = span
    marks = (
        first,
        last,
        mentor_from,
        mentee_from,
        mentor_to - length,
        mentee_to - length,
        (mentor_from + mentee_to - length) // 2,
        (mentee_from + mentor_to - length) // 2,
    )
    times = {min(max(t, first), last) for mark in marks for t in (mark // step * step, -(-mark // step) * step)}
    scored = []
    for t in times:
        end = t + length  # minutes outside each one's hours, as outside() counts them
        mentor = (mentor_from - t if t < mentor_from else 0) + (end - mentor_to if end > mentor_to else 0)
        mentee = (mentee_from - t if t < mentee_from else 0) + (end - mentee_to if end > mentee_to else 0)
        worst = max(mentor, mentee)
        carried = max(mentor + other.mentor_out, mentee + other.mentee_out) if other else worst
        comfort = 0 if worst else min(t - day_start, day_end - t - length, COMFORT_CAP)
        score = crowding + DAY_COST * abs(t - preferred) / 1440 + STRETCH_COST * worst + FAIR_COST * carried - comfort
        scored.append((score, t, mentor_day, mentee_day, mentor, mentee))
    return scored


def _local_day(person: Person, minutes: int) -> int:
    return from_minutes(minutes).astimezone(zone(person.timezone)).date().toordinal()


class _Option(NamedTuple):
    start: int
    mentor_day: int  # local dates, for spreading a person's sessions over days
    mentee_day: int
    mentor_out: int = 0  # minutes outside each one's hours
    mentee_out: int = 0


def _pieces(start: int, end: int, taken: Sequence[Span]) -> list[Span]:
    """[start, end) minus the spans in `taken` (sorted by start; may overlap)."""
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


def _choices(free: Free, frame: _Frame) -> int:
    """How many start times session 1 could take, ignoring other pairs."""
    count, step, earliest, deadline = 0, frame.step, frame.earliest, frame.first_deadline
    for start, end in zip(free.starts, free.ends, strict=True):
        if start >= deadline:
            break
        first = -(-(start if start > earliest else earliest) // step) * step
        last = ((end if end < deadline else deadline) - frame.length) // step * step
        if last >= first:
            count += (last - first) // step + 1
    return count


class _Diagnosis:
    """Why one pair was left out, and the smallest change that would plan it: each change
    is tried by planning the pair again around the sessions its group got."""

    def __init__(self, frame: _Frame, pair: Pair, group: list[Pair], taken: Mapping[str, list[Span]], fixed, index):
        self.frame, self.pair, self.group = frame, pair, group
        self.taken, self.fixed, self.index = taken, fixed, index
        self.busy = _both(pair, taken)
        self.inside = frame.free(pair.mentor.availability, pair.mentee.availability, self.busy)
        cohort = frame.cohort
        self.reach = tuple(cohort.stretch.allowance(p.availability) for p in pair.people)
        # Their hours alone: every working day, nobody busy, stretched as far as allowed.
        self.hours = free_time(frame.hours(pair.mentor.availability, pair.mentee.availability, (self.reach[0], self.reach[1])), [])

    def reason(self, shared: Free, sessions_of) -> str:
        cause = self._cause(shared, sessions_of)
        fixes = self._fixes()
        if fixes:
            return f"{cause}; it would be planned with {' or '.join(fixes)}"
        return f"{cause}; no single change of the session window, the stretch or a blackout date would plan it"

    def _cause(self, shared: Free, sessions_of) -> str:
        frame, pair, hours = self.frame, self.pair, self.hours
        cohort = frame.cohort
        mentor, mentee = pair.mentor, pair.mentee
        if not any(end - start >= frame.length for start, end in zip(hours.starts, hours.ends, strict=True)):
            return (
                f"no common working hours: {_who(mentor)} and {_who(mentee)} never overlap for a whole session"
                f" during the program{self._stretch_note()}"
            )
        weeks = _weeks(cohort.rules.first_within)
        deadline = frame.local_date(frame.first_deadline - 1)
        if frame.earliest + frame.length > frame.first_deadline:
            return f"session 1 had to take place by {deadline:%d %b %Y}, which has passed"
        if not _fits(hours, frame.earliest, frame.first_deadline, frame):
            met = next(_starts(hours, frame.earliest, frame.program_end, frame), None)
            if met is None:
                return f"their working hours do not meet again before the program ends on {cohort.end:%d %b %Y}"
            change = _clock_change(pair.people, frame.local_date(frame.earliest), frame.local_date(met))
            if change:
                day, place = change
                return (
                    f"their working hours meet only after the clock change on {day:%d %b %Y} in {place},"
                    f" too late for session 1 in the first {weeks} (by {deadline:%d %b %Y})"
                )
            return f"their working hours first meet on {frame.local_date(met):%d %b %Y}, too late for session 1 in the first {weeks}"
        wide = _stretched(frame, pair, self.busy, cohort.stretch)
        if wide is None or not wide.starts:
            wide = shared
        if not _fits(wide, frame.earliest, frame.first_deadline, frame):
            return (
                f"no hour when both are free in the first {weeks} (by {deadline:%d %b %Y}) for session 1:"
                f" {self._covering(frame.earliest, frame.first_deadline)} cover every common working hour"
            )
        firsts = list(_starts(wide, frame.earliest, frame.first_deadline, frame))
        if not any(_fits(wide, t + frame.gap, frame.program_end, frame) for t in firsts):
            gap = _weeks(cohort.rules.min_gap)
            later = firsts[0] + frame.gap
            if _fits(hours, later, frame.program_end, frame):
                return (
                    f"no hour when both are free at least {gap} after a possible session 1 and before the program"
                    f" ends on {cohort.end:%d %b %Y}: {self._covering(later, frame.program_end)} cover every common working hour"
                )
            return (
                f"the program is too short for {gap} between sessions: their working hours do not meet at least"
                f" {gap} after a possible session 1 and before the program ends on {cohort.end:%d %b %Y}"
            )
        busy_with = [
            f"{person.name} with {', '.join(others)}"
            for person in pair.people
            if (
                others := [
                    o.mentee.name if o.mentor == person else o.mentor.name for o in sessions_of.get(person.email, ()) if o.id != pair.id
                ]
            )
        ]
        room = cohort.link_for(pair)
        if not busy_with and room:
            return (
                f"every time both are free is taken by other sessions in the shared room {room}:"
                " give the mentor a room of their own (mentor_video_link)"
            )
        return (
            f"every time both are free is taken by other sessions ({'; '.join(busy_with)}): free up time or move a pair to another mentor"
        )

    def _stretch_note(self) -> str:
        stretch = self.frame.cohort.stretch
        note = f", even with their days stretched by up to {max(self.reach)} minutes" if any(self.reach) else ""
        own = [p.name for p, reach in zip(self.pair.people, self.reach, strict=True) if not reach and stretch.minutes]
        if own:
            note += f" ({' and '.join(own)} declared {'their' if len(own) > 1 else 'own'} hours, which are not stretched)"
        return note

    def _covering(self, lo: int, hi: int) -> str:
        """Whose busy times, blackout dates and public holidays take the common hours in [lo, hi)."""
        free, periods = self.hours, self.hours.hours.periods
        spans = [
            (start, end, periods[k]) for start, end, k in zip(free.starts, free.ends, free.within, strict=True) if end > lo and start < hi
        ]
        found = []
        for person, day_of in zip(self.pair.people, (day_of_mentor, day_of_mentee), strict=True):
            taken = self.taken.get(person.email, ())
            if any(b_start < end and start < b_end for start, end, _ in spans for b_start, b_end in taken):
                found.append(f"{person.name}'s busy times")
            own = {date.fromordinal(day_of(period)) for _, _, period in spans}
            if own & person.availability.blackout_dates:
                found.append(f"{person.name}'s blackout dates")
            if own & person.availability.holidays:
                found.append(f"{person.name}'s public holidays")
        if not found:
            return "other sessions"
        return ", ".join(found[:-1]) + " and " + found[-1] if len(found) > 1 else found[0]

    def _fixes(self) -> list[str]:
        frame, cohort = self.frame, self.frame.cohort
        rules, found = cohort.rules, []
        most = ((cohort.end - cohort.start).days + 1) // 7
        weeks = _smallest(list(range(rules.first_within.days // 7 + 1, most + 1)), lambda n: self._attempt(self._within(n)))
        if weeks is not None:
            found.append(f"first_within_weeks: {weeks}")
        gap = _smallest(list(range(-(-rules.min_gap.days // 7) - 1, -1, -1)), lambda n: self._attempt(replace(frame, gap=n * 7 * 1440)))
        if gap is not None:
            found.append(f"min_weeks_between: {gap}")
        if stretch := self._stretch_fix():
            found.append(stretch)
        if blackout := self._blackout_fix():
            found.append(blackout)
        return found

    def _within(self, weeks: int) -> _Frame:
        cohort = self.frame.cohort
        deadline = midnight(cohort.start + timedelta(weeks=weeks), cohort.timezone)
        return replace(self.frame, first_deadline=min(deadline, self.frame.program_end))

    def _stretch_fix(self) -> str | None:
        frame, stretch = self.frame, self.frame.cohort.stretch
        if _could_meet(frame, self.inside):
            return None  # the planner never stretches a pair that can meet inside hours
        steps = range(FIX_STRETCH_STEP, FIX_STRETCH_MOST + 1, FIX_STRETCH_STEP)
        minutes = _smallest(
            [m for m in steps if m > stretch.minutes], lambda m: self._attempt(frame, Stretch(minutes=m, declared=stretch.declared))
        )
        if minutes is not None:
            return f"working_hours.stretch_minutes: {minutes}"
        if stretch.declared or not any(p.availability.declared for p in self.pair.people):
            return None
        minutes = _smallest(list(steps), lambda m: self._attempt(frame, Stretch(minutes=m, declared=True)))
        if minutes is None:
            return None
        more = f" and stretch_minutes: {minutes}" if minutes > stretch.minutes else ""
        return f"working_hours.stretch_declared: true{more}"

    def _blackout_fix(self) -> str | None:
        """The first blackout date whose loss would plan the pair, among those that fall
        on a day both could otherwise meet."""
        tried = 0
        for person, day_of in zip(self.pair.people, (day_of_mentor, day_of_mentee), strict=True):
            pattern = person.availability
            usable = {date.fromordinal(day_of(self.hours.hours.periods[k])) for k in self.hours.within}
            for day in sorted(usable & pattern.blackout_dates):
                if tried == FIX_BLACKOUTS_TRIED:
                    return None
                tried += 1
                back = replace(person, availability=replace(pattern, blackout_dates=pattern.blackout_dates - {day}))
                if self._attempt(self.frame, changed=back).plans():
                    return f"{person.name}'s blackout date {day:%d %b %Y} dropped"
        return None

    def _attempt(self, frame: _Frame, stretch: Stretch | None = None, changed: Person | None = None) -> _Attempt:
        """The pair under a changed frame, stretch or person, ready to be planned again."""
        pair = self.pair
        inside: Free | None = self.inside  # unchanged unless a person changes
        if changed is not None:
            inside = None
            pair = replace(pair, mentor=changed) if pair.mentor.email == changed.email else replace(pair, mentee=changed)
        return _Attempt(self, frame, pair, *_pair_spans(frame, pair, self.busy, stretch or frame.cohort.stretch, inside))


@dataclass(frozen=True)
class _Attempt:
    diagnosis: _Diagnosis
    frame: _Frame
    pair: Pair
    spans: Free
    wide: bool
    possible: bool  # both sessions fit, other pairs aside: needed, and cheap to know

    def plans(self) -> bool:
        """The planner books the pair, around the sessions the rest of its group got."""
        if not self.possible:
            return False
        d, pair = self.diagnosis, self.pair
        others = [p for p in d.group if p.id in d.fixed]
        stretched = {pair.id} if self.wide else set()
        return pair.id in _Search(self.frame, [pair, *others], {pair.id: self.spans}, d.index, FIX_NODE_BUDGET, d.fixed, stretched).run()


def _smallest(changes: list[int], attempt: Callable[[int], _Attempt], tries: int = 2) -> int | None:
    """The first of `changes` (ordered from least to most) that plans the pair. A larger
    change keeps every time a smaller one allows, so the first change that makes room at
    all is found by halving; from there a few are planned in turn (other pairs' sessions
    and the search's limits may still keep the pair out)."""
    if not changes or not attempt(changes[-1]).possible:
        return None
    lo, hi = 0, len(changes) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if attempt(changes[mid]).possible:
            hi = mid
        else:
            lo = mid + 1
    return next((change for change in changes[lo : lo + tries] if attempt(change).plans()), None)


def _every_day(pattern: WorkingPattern) -> WorkingPattern:
    """The same hours without days off."""
    return replace(pattern, blackout_dates=frozenset(), holidays=frozenset())


def _clock_change(people: Sequence[Person], first: date, last: date) -> tuple[date, str] | None:
    """The latest day in (first, last] on which either person's clocks change, and where."""
    found: tuple[date, str] | None = None
    for person in people:
        place = zone(person.timezone)
        offset = datetime.combine(first, time(12), place).utcoffset()
        day = first
        while day < last:
            day += _DAY
            now = datetime.combine(day, time(12), place).utcoffset()
            if now != offset:
                offset = now
                if found is None or day > found[0]:
                    found = (day, person.place)
    return found


def _who(person: Person) -> str:
    a = person.availability
    return f"{person.name} in {person.place} ({a.describe_days()} {a.describe_hours()})"


def _weeks(delta: timedelta) -> str:
    days = delta.days
    if days % 7 == 0:
        return f"{days // 7} week{'s' if days != 7 else ''}"
    return f"{days} days"


def _starts(free: Free, lo: int, hi: int, frame: _Frame) -> Iterator[int]:
    """Every start in [lo, hi) on the step grid where a session fits in `free`, in order."""
    starts, ends = free.starts, free.ends
    for i in range(bisect_right(ends, lo), bisect_left(starts, hi)):
        t = _ceil(max(starts[i], lo), frame.step)
        end = min(ends[i], hi)
        while t + frame.length <= end:
            yield t
            t += frame.step


def _fits(free: Free, lo: int, hi: int, frame: _Frame) -> bool:
    return next(_starts(free, lo, hi, frame), None) is not None


def misfit(pair: Pair, session: Session, busy: Busy, *, stretch: Stretch | None = None) -> str | None:
    """Why a booked session no longer suits both people (a blackout, new hours or days, a
    new time zone, a busy calendar), in words for them; None while it does. With the
    cohort's `stretch`, a session outside someone's hours suits them as far as their
    hours may be stretched.

    A busy interval at exactly the session's time is the session itself, as it shows in
    an exported calendar: it is not a reason to move.
    """
    start, end = to_minutes(session.start), to_minutes(session.end)
    for person in pair.people:
        pattern = person.availability
        day = session.start.astimezone(zone(pattern.timezone)).date()
        working = stretched_spans(pattern, day - _DAY, day + _DAY, stretch.allowance(pattern) if stretch else 0)
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
    cohort: Cohort, busy: AnyBusy, *, pair_id: str, number: int, booked: Mapping[str, tuple[Session, ...]], now: datetime, count: int = 3
) -> list[Session]:
    """Up to `count` other times for one session, each on a different day, in date order."""
    found: list[Session] = []
    pair = next(p for p in cohort.pairs if p.id == pair_id)
    # Only the pair's own busy times count, converted once for every option.
    theirs = BusyMinutes({person.email: list(busy_of(busy, person.email)) for person in pair.people})
    while len(found) < count:
        option = replan_session(cohort, theirs, pair_id=pair_id, number=number, booked=booked, now=now)
        if option is None:
            break
        found.append(option)
        day = to_minutes(option.start.replace(hour=0, minute=0, second=0, microsecond=0))
        for person in pair.people:  # the next one on another day
            insort(theirs[person.email], (day, day + 1440))
    return sorted(found)
