"""How fast the session planner is, and how close it comes to the best possible plan.

Part 1 (scale) plans generated cohorts (bench/cohorts.py) of increasing size: people in
eleven time zones on five continents, varied working hours, regional holidays, and busy
calendars made of weekly recurring meetings, one-off meetings and the odd vacation week.
For each size it prints the time busy times take to be converted to minutes (once, as
the service does where it reads them), the planning time from those, pairs per second,
pairs booked and peak memory, and how the time grew next to linear and n log n growth.
Cohorts from 2,000 pairs are planned in worker processes where the machine has more than
one processor (planning.PARALLEL_PAIRS); the cpu column counts theirs too.

A pair whose hours never meet is booked outside them (the stretch, up to 180 minutes by
default; --stretch 0 turns it off): the table counts the pairs booked so.

Part 2 (quality) plans many tiny cohorts with scarce free time, where not every pair can
be booked, and compares the pairs the planner books with the true maximum. The maximum
comes from an integer program (scipy.optimize.milp) over every allowed session start,
built here from the people's free time and the session rules, without the planner's
search. The comparison is made for the full search and for its first descent alone
(its greedy answer). The integer program knows only times inside people's hours, so
these cohorts are planned without the stretch.

    python bench/planner.py [--sizes 100,1000,10000] [--seed 2027] [--instances 200] [--stretch 180]

It prints figures and asserts nothing about time.
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import gc
import math
import random
import resource
import statistics
import sys
import tracemalloc
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from time import perf_counter, process_time
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project root, for bench.cohorts

from bench.cohorts import (
    CLOCK_START,
    COORDINATOR,
    HOLIDAYS,
    NEAR_MENTEE_SHARE,
    NEAR_ZONES,
    OFFICE_HOURS,
    PROGRAM_END,
    PROGRAM_START,
    PROGRAM_ZONE,
    WEEKDAYS,
    ZONES,
    CalendarProfile,
    busy_calendar,
    draw_pairs,
    max_rss_mb,
    mondays,
    utc_offset_hours,
)
from service.domain.availability import BusyMinutes, busy_minutes, stretched_spans, to_minutes, working_spans
from service.domain.model import (
    Cohort,
    Pair,
    Person,
    SessionRules,
    Stretch,
    TimeRange,
    WorkingPattern,
)
from service.domain.planning import DEFAULT_NODE_BUDGET, Plan, plan_sessions
from service.domain.stretch import stretched

NOW = CLOCK_START
DAY = timedelta(days=1)


def _ranges(*texts: str) -> tuple[TimeRange, ...]:
    return tuple(TimeRange(start=time.fromisoformat(a), end=time.fromisoformat(b)) for a, b in (text.split("-") for text in texts))


MON_THU = frozenset(range(4))
# (weight, working hours, working days) of the usual working weeks.
SCHEDULES = (
    (60, OFFICE_HOURS, WEEKDAYS),
    (8, _ranges("08:00-16:00"), WEEKDAYS),
    (8, _ranges("10:00-18:00"), WEEKDAYS),
    (6, _ranges("07:30-15:30"), WEEKDAYS),
    (10, _ranges("09:00-12:00", "13:00-17:00"), WEEKDAYS),
    (8, OFFICE_HOURS, MON_THU),
)
OFFICE_CALENDAR = CalendarProfile(recurring=(2, 6), one_offs=(0, 5), vacation=0.15)
SPARSE_CALENDAR = CalendarProfile(recurring=(0, 1), one_offs=(0, 1), vacation=0.05)


def make_cohort(name: str, start: date, end: date, rules: SessionRules, pairs: list[Pair], stretch: Stretch) -> Cohort:
    return Cohort(
        name=name,
        coordinator=COORDINATOR,
        start=start,
        end=end,
        timezone=PROGRAM_ZONE,
        rules=rules,
        stretch=stretch,
        pairs=tuple(pairs),
    )


# --- Part 1: scale -------------------------------------------------------------------

SCALE_START, SCALE_END = PROGRAM_START, PROGRAM_END
SCALE_NEAR_SHARE = 0.8  # mentees near their mentor in the scale cohorts


def office_person(rng: random.Random, email: str, zone: str) -> Person:
    _, hours, days = rng.choices(SCHEDULES, weights=[s[0] for s in SCHEDULES])[0]
    pattern = WorkingPattern(timezone=zone, hours=hours, days=days, blackout_dates=HOLIDAYS.get(zone, frozenset()))
    return Person(name=email.split("@")[0].title(), email=email, availability=pattern)


def scale_cohort(rng: random.Random, size: int, stretch: Stretch) -> tuple[Cohort, dict[str, list]]:
    """`size` pairs; mentors with 1 to 4 mentees, mostly in nearby zones."""
    weeks = mondays(SCALE_START - DAY, SCALE_END + DAY)
    busy: dict[str, list] = {}
    pairs: list[Pair] = []

    def person(role: str, zone: str) -> Person:
        email = f"{role}{len(busy)}@example.org"
        someone = office_person(rng, email, zone)
        busy[email] = busy_calendar(rng, someone.availability, weeks, OFFICE_CALENDAR)
        return someone

    for mentor, mentee in draw_pairs(rng, size, person, SCALE_NEAR_SHARE):
        pairs.append(Pair(id=f"pair-{len(pairs) + 1:05d}", mentor=mentor, mentee=mentee))
    return make_cohort("Scale", SCALE_START, SCALE_END, SessionRules(), pairs, stretch), busy


@dataclasses.dataclass(frozen=True)
class ScaleRun:
    pairs: int
    people: int
    to_minutes_seconds: float  # busy times to minutes, once
    seconds: float
    cpu_seconds: float  # processor time, workers' included: steadier than wall time on a busy machine
    booked: int
    stretched: int  # pairs booked outside someone's hours
    traced_peak: int  # bytes
    max_rss_mb: float


def clear_caches() -> None:
    """Working hours are cached by pattern; equal patterns recur from one cohort size to the next."""
    working_spans.cache_clear()
    stretched_spans.cache_clear()


def cpu_time() -> float:
    """Processor time of this process and of its finished worker processes."""
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)
    return process_time() + workers.ru_utime + workers.ru_stime


def measure_scale(cohort: Cohort, busy: dict[str, list]) -> ScaleRun:
    """Convert the busy times to minutes, then plan twice from a cold cache: once timed,
    once under tracemalloc for the peak."""
    gc.collect()
    began = perf_counter()
    minutes = BusyMinutes.of(busy)
    to_minutes_seconds = perf_counter() - began
    clear_caches()
    gc.collect()
    began, cpu_began = perf_counter(), cpu_time()
    plan = plan_sessions(cohort, minutes, now=NOW)
    seconds, cpu_seconds = perf_counter() - began, cpu_time() - cpu_began
    clear_caches()
    gc.collect()
    tracemalloc.start()  # in this process only: workers' memory is not traced
    plan_sessions(cohort, minutes, now=NOW)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return ScaleRun(
        pairs=len(cohort.pairs),
        people=len(cohort.people),
        to_minutes_seconds=to_minutes_seconds,
        seconds=seconds,
        cpu_seconds=cpu_seconds,
        booked=plan.booked,
        stretched=sum(1 for p in plan.pairs if any(stretched(p.pair, s) for s in p.sessions)),
        traced_peak=peak,
        max_rss_mb=max_rss_mb(),
    )


def run_scale(sizes: Sequence[int], seed: int, stretch: Stretch) -> None:
    print(f"== Scale: program 2027-03-01..2027-04-30 (America/New_York), default rules, stretch {stretch.minutes} min ==")
    print(f"{len(ZONES)} zones: {', '.join(ZONES)}")
    header = (
        f"{'pairs':>7} {'people':>7} {'busy ivals':>10} {'to-min s':>8} {'plan s':>8} {'cpu s':>7} {'pairs/s':>8} {'booked':>14} {'stretched':>9}"
        f" {'traced peak':>12} {'max RSS':>9} {'t ratio':>8} {'n ratio':>8} {'nlogn r':>8}"
    )
    print(header)
    previous: ScaleRun | None = None
    for size in sizes:
        cohort, busy = scale_cohort(random.Random(f"{seed}-scale-{size}"), size, stretch)
        intervals = sum(len(v) for v in busy.values())
        run = measure_scale(cohort, busy)
        del cohort, busy
        ratios = (
            ""
            if previous is None
            else (
                f" {run.seconds / previous.seconds:8.2f} {run.pairs / previous.pairs:8.2f}"
                f" {run.pairs * math.log(run.pairs) / (previous.pairs * math.log(previous.pairs)):8.2f}"
            )
        )
        print(
            f"{run.pairs:>7} {run.people:>7} {intervals:>10} {run.to_minutes_seconds:8.2f} {run.seconds:8.2f} {run.cpu_seconds:7.2f}"
            f" {run.pairs / run.seconds:8.0f} {run.booked:>6} ({run.booked / run.pairs:5.1%}) {run.stretched:>9}"
            f" {run.traced_peak / 2**20:9.1f} MB {run.max_rss_mb:6.0f} MB{ratios}"
        )
        previous = run
    print(
        "to-min s: busy times to minutes once (BusyMinutes.of), as where they are read; plan s: wall time of plan_sessions"
        " from those (perf_counter); cpu s: its processor time, worker processes' included;"
        " traced peak: tracemalloc peak during a second, identical planning run (this process only);"
        " max RSS: the whole process so far (getrusage)."
    )
    print("t ratio: time over the previous size's; n ratio and nlogn r: what linear and n log n growth would give.")


# --- Part 2: quality ------------------------------------------------------------------

SMALL_START, SMALL_END = date(2027, 3, 1), date(2027, 4, 4)  # five weeks
SMALL_RULES = SessionRules(first_within=timedelta(weeks=2), min_gap=timedelta(weeks=2))
MAX_COMBINATIONS = 600  # larger draws are set aside, so the integer program stays quick
LARGE_BUDGET = 10 * DEFAULT_NODE_BUDGET  # to tell a budget shortfall from a blind spot
SHARED_MENTEE_SHARE = 0.4  # of two-mentor instances, those where one mentee has both


def narrow_pattern(rng: random.Random, zone: str, centre: float, days: frozenset[int]) -> WorkingPattern:
    """One window of 2 to 4 hours around `centre` (local hour), on the given days."""
    length = 30 * rng.randint(4, 8)
    start = 30 * round((centre * 60 - length / 2) / 30) + 30 * rng.randint(-2, 2)
    start = min(max(start, 6 * 60), 21 * 60 - length)
    end = start + length
    hours = TimeRange(start=time(start // 60, start % 60), end=time(end // 60, end % 60))
    blackout = {SMALL_START + timedelta(days=rng.randrange(35))} if rng.random() < 0.15 else set()
    return WorkingPattern(timezone=zone, hours=(hours,), days=days, blackout_dates=HOLIDAYS.get(zone, frozenset()) | blackout)


def some_days(rng: random.Random, like: frozenset[int] | None = None) -> frozenset[int]:
    """One to three weekdays, plus, usually, one of the days in `like`."""
    days = set(rng.sample(range(5), rng.randint(1, 3)))
    if like and rng.random() < 0.9:
        days.add(rng.choice(sorted(like)))
    return frozenset(days)


def small_cohort(rng: random.Random, number: int) -> tuple[Cohort, dict[str, list]]:
    """One or two mentors with 3-5 mentees each, all free only a few hours a week."""
    weeks = mondays(SMALL_START - DAY, SMALL_END + DAY)
    busy: dict[str, list] = {}
    pairs: list[Pair] = []

    def person(role: str, zone: str, centre: float, days: frozenset[int]) -> Person:
        email = f"{role}{len(busy)}@example.org"
        pattern = narrow_pattern(rng, zone, centre, days)
        busy[email] = busy_calendar(rng, pattern, weeks, SPARSE_CALENDAR)
        return Person(name=f"{role.title()} {len(busy)}", email=email, availability=pattern)

    mentors = []
    for _ in range(rng.choice((1, 2))):
        zone = rng.choice(ZONES)
        mentor = person("mentor", zone, rng.uniform(9, 16), some_days(rng))
        mentors.append(mentor)
        mentor_centre = _window_centre(mentor.availability)
        for _ in range(rng.randint(3, 5)):
            mentee_zone = rng.choice(NEAR_ZONES[zone]) if rng.random() < NEAR_MENTEE_SHARE else rng.choice(ZONES)
            centre = (mentor_centre + utc_offset_hours(mentee_zone) - utc_offset_hours(zone)) % 24
            mentee = person("mentee", mentee_zone, centre, some_days(rng, mentor.availability.days))
            pairs.append(Pair(id=f"i{number}-p{len(pairs) + 1}", mentor=mentor, mentee=mentee))
    if len(mentors) == 2 and rng.random() < SHARED_MENTEE_SHARE:
        shared = rng.choice([p.mentee for p in pairs if p.mentor is mentors[0]])
        pairs.append(Pair(id=f"i{number}-p{len(pairs) + 1}", mentor=mentors[1], mentee=shared))
    # Planned inside hours only: the integer program knows no other times.
    return make_cohort(f"Hard {number}", SMALL_START, SMALL_END, SMALL_RULES, pairs, Stretch(minutes=0)), busy


def _window_centre(pattern: WorkingPattern) -> float:
    """The middle of someone's working window, in local hours."""
    hours = pattern.hours[0]
    return (hours.start.hour + hours.end.hour + (hours.start.minute + hours.end.minute) / 60) / 2


@dataclasses.dataclass(frozen=True)
class Limits:
    """The session rules and program edges, in UTC minutes, derived from the cohort."""

    earliest: int
    first_deadline: int
    program_end: int
    length: int
    gap: int
    buffer: int
    step: int

    @classmethod
    def of(cls, cohort: Cohort, now: datetime) -> Limits:
        rules = cohort.rules

        def midnight(day: date) -> int:
            return to_minutes(datetime.combine(day, time(0), tzinfo=ZoneInfo(cohort.timezone)))

        start, end = midnight(cohort.start), midnight(cohort.end + DAY)
        step = _minutes(rules.step)
        return cls(
            earliest=max(start, -(-to_minutes(now) // step) * step),
            # "Within the first weeks" counts whole days: it ends at a midnight in the program zone.
            first_deadline=min(midnight(cohort.start + rules.first_within), end),
            program_end=end,
            length=_minutes(rules.length),
            gap=_minutes(rules.min_gap),
            buffer=_minutes(rules.buffer),
            step=step,
        )


def _minutes(delta: timedelta) -> int:
    return int(delta.total_seconds() // 60)


def free_starts(cohort: Cohort, person: Person, busy: dict[str, list], limits: Limits) -> set[int]:
    """Every start on the step grid where a whole session fits in one of the person's
    working periods and meets none of their busy times."""
    taken = busy_minutes(busy.get(person.email, ()))
    starts = set()
    for span in working_spans(person.availability, cohort.start - DAY, cohort.end + DAY):
        lo, hi = max(span.start, limits.earliest), min(span.end, limits.program_end)
        t = -(-lo // limits.step) * limits.step
        while t + limits.length <= hi:
            if not any(start < t + limits.length and t < end for start, end in taken):
                starts.add(t)
            t += limits.step
    return starts


Combination = tuple[int, int, int]  # pair index, start of session 1, start of session 2


def combinations(cohort: Cohort, busy: dict[str, list], limits: Limits) -> list[Combination]:
    """Every allowed (session 1, session 2) of every pair, ignoring the other pairs."""
    free = {email: free_starts(cohort, p, busy, limits) for email, p in cohort.people.items()}
    found = []
    for i, pair in enumerate(cohort.pairs):
        both = sorted(free[pair.mentor.email] & free[pair.mentee.email])
        for s1 in both:
            if s1 + limits.length > limits.first_deadline:
                break
            found.extend((i, s1, s2) for s2 in both[bisect.bisect_left(both, s1 + limits.gap) :])
    return found


def conflicts(cohort: Cohort, combos: Sequence[Combination], limits: Limits) -> set[tuple[int, int]]:
    """Combinations of different pairs that give one person sessions too close together.

    Two sessions of a person clash when one starts less than length + buffer after the
    other: the planner keeps [start - buffer, end + buffer) of each session for it alone.
    """
    reach = limits.length + limits.buffer
    sessions: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    for v, (i, s1, s2) in enumerate(combos):
        for someone in cohort.pairs[i].people:
            sessions[someone.email] += [(s1, v, i), (s2, v, i)]
    found = set()
    for events in sessions.values():
        events.sort()
        for k, (t, v, i) in enumerate(events):
            for u, w, j in events[k + 1 :]:
                if u - t >= reach:
                    break
                if i != j:
                    found.add((min(v, w), max(v, w)))
    return found


def exact_maximum(cohort: Cohort, combos: Sequence[Combination], limits: Limits) -> dict[int, Combination]:
    """The largest set of pairs that can all have both sessions, by pair index."""
    import numpy as np  # the bench's own extra (scipy): only part 2 needs it
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_array

    if not combos:
        return {}
    per_pair: dict[int, list[int]] = defaultdict(list)
    for v, combo in enumerate(combos):
        per_pair[combo[0]].append(v)
    # Each row: at most one of these combinations (one pair's, or two that clash).
    at_most_one = [*per_pair.values(), *conflicts(cohort, combos, limits)]
    rows = [row for row, variables in enumerate(at_most_one) for _ in variables]
    cols = [v for variables in at_most_one for v in variables]
    matrix = coo_array((np.ones(len(rows)), (rows, cols)), shape=(len(at_most_one), len(combos)))
    result = milp(
        c=-np.ones(len(combos)),
        constraints=LinearConstraint(matrix, -np.inf, 1),
        integrality=np.ones(len(combos)),
        bounds=Bounds(0, 1),
    )
    if result.status != 0:
        raise RuntimeError(f"milp failed on {cohort.name}: {result.message}")
    return {combos[v][0]: combos[v] for v in np.flatnonzero(result.x > 0.5)}


def groups(cohort: Cohort) -> list[list[Pair]]:
    """Pairs linked by a shared person; they compete for time only with each other."""
    parent: dict[str, str] = {}

    def root(email: str) -> str:
        while parent.setdefault(email, email) != email:
            email = parent[email]
        return email

    for pair in cohort.pairs:
        parent[root(pair.mentor.email)] = root(pair.mentee.email)
    linked: dict[str, list[Pair]] = defaultdict(list)
    for pair in cohort.pairs:
        linked[root(pair.mentor.email)].append(pair)
    return list(linked.values())


@dataclasses.dataclass(frozen=True)
class Instance:
    cohort: Cohort
    busy: dict[str, list]
    limits: Limits
    combos: list[Combination]


@dataclasses.dataclass(frozen=True)
class Outcome:
    instance: Instance
    plan: Plan
    exact: dict[int, Combination]
    first_descent: int
    outside_model: int  # planner sessions not among the enumerated combinations


def draw_instances(seed: int, count: int) -> tuple[list[Instance], int]:
    """`count` instances whose combinations fit the cap, and how many draws were set aside."""
    rng = random.Random(f"{seed}-quality")
    instances, set_aside = [], 0
    while len(instances) < count:
        cohort, busy = small_cohort(rng, len(instances) + set_aside + 1)
        limits = Limits.of(cohort, NOW)
        combos = combinations(cohort, busy, limits)
        if len(combos) > MAX_COMBINATIONS:
            set_aside += 1
            continue
        instances.append(Instance(cohort, busy, limits, combos))
    return instances, set_aside


def evaluate(instance: Instance) -> tuple[Outcome, float, float]:
    """The outcome, with the seconds taken by the planner and by the integer program."""
    cohort, busy = instance.cohort, instance.busy
    began = perf_counter()
    plan = plan_sessions(cohort, busy, now=NOW)
    planner_seconds = perf_counter() - began
    began = perf_counter()
    exact = exact_maximum(cohort, instance.combos, instance.limits)
    exact_seconds = perf_counter() - began
    allowed = set(instance.combos)
    index = {pair.id: i for i, pair in enumerate(cohort.pairs)}
    outside = sum(1 for p in plan.pairs if p.sessions and (index[p.pair.id], *(to_minutes(s.start) for s in p.sessions)) not in allowed)
    outcome = Outcome(
        instance=instance,
        plan=plan,
        exact=exact,
        # A budget of 0 stops the search right after its first (greedy) descent.
        first_descent=plan_sessions(cohort, busy, now=NOW, node_budget=0).booked,
        outside_model=outside,
    )
    return outcome, planner_seconds, exact_seconds


def compare(label: str, booked: Sequence[int], exact: Sequence[int]) -> None:
    same = sum(1 for b, e in zip(booked, exact) if b == e)
    short = [(e - b) for b, e in zip(booked, exact) if b < e]
    over = sum(1 for b, e in zip(booked, exact) if b > e)
    print(
        f"  {label:<30} booked {sum(booked):>4}  = exact in {same:>3}"
        f"  < exact in {len(short):>3} (pairs lost {sum(short):>3})" + (f"  > exact in {over} (model mismatch!)" if over else "")
    )


def run_quality(seed: int, count: int) -> None:
    print()
    print(
        f"== Quality: {count} tiny hard cohorts, program {SMALL_START}..{SMALL_END}"
        f" ({PROGRAM_ZONE}), session 1 within {SMALL_RULES.first_within.days // 7} weeks,"
        f" session 2 at least {SMALL_RULES.min_gap.days // 7} weeks later =="
    )
    instances, set_aside = draw_instances(seed, count)
    outcomes, planner_time, exact_time = [], 0.0, 0.0
    for instance in instances:
        outcome, planner_seconds, exact_seconds = evaluate(instance)
        outcomes.append(outcome)
        planner_time += planner_seconds
        exact_time += exact_seconds

    exact = [len(o.exact) for o in outcomes]
    pairs = [len(o.instance.cohort.pairs) for o in outcomes]
    combos = [len(o.instance.combos) for o in outcomes]
    print(
        f"instances {len(outcomes)} (draws set aside for more than {MAX_COMBINATIONS} combinations:"
        f" {set_aside}); two mentors in {sum(1 for o in outcomes if _mentors(o) == 2)},"
        f" a mentee with two mentors in {sum(1 for o in outcomes if _shared_mentee(o))}"
    )
    print(
        f"pairs per instance {statistics.mean(pairs):.2f}, exact maximum per instance {statistics.mean(exact):.2f};"
        f" instances where not every pair fits: {sum(1 for p, e in zip(pairs, exact) if e < p)}"
    )
    print(
        f"combinations per instance: mean {statistics.mean(combos):.0f}, max {max(combos)}; integer programs solved in {exact_time:.2f} s"
    )
    print(f"planner time for all instances (default node budget): {planner_time:.2f} s")
    compare("planner, default node budget", [o.plan.booked for o in outcomes], exact)
    compare("first descent only", [o.first_descent for o in outcomes], exact)
    outside = sum(o.outside_model for o in outcomes)
    print(f"planner sessions outside the enumerated combinations: {outside}")

    missed = [o for o in outcomes if o.plan.booked < len(o.exact)]
    recovered = sum(
        1 for o in missed if plan_sessions(o.instance.cohort, o.instance.busy, now=NOW, node_budget=LARGE_BUDGET).booked == len(o.exact)
    )
    print(f"misses that node_budget={LARGE_BUDGET} turns into exact answers: {recovered} of {len(missed)}")
    if missed:
        describe(min(missed, key=lambda o: (len(o.instance.combos), len(o.instance.cohort.pairs))))


def _mentors(outcome: Outcome) -> int:
    return len({p.mentor.email for p in outcome.instance.cohort.pairs})


def _shared_mentee(outcome: Outcome) -> bool:
    mentees = [p.mentee.email for p in outcome.instance.cohort.pairs]
    return len(set(mentees)) < len(mentees)


def describe(outcome: Outcome) -> None:
    """Print one instance the planner got wrong: people, free starts, both answers, and
    what the planner books with a larger node budget or without the pairs that cannot meet."""
    instance = outcome.instance
    cohort, busy, limits = instance.cohort, instance.busy, instance.limits
    print()
    print(f"-- A miss: {cohort.name}: planner {outcome.plan.booked}, exact {len(outcome.exact)} --")
    for someone in cohort.people.values():
        a = someone.availability
        blackout = ", ".join(f"{d:%a %d %b}" for d in sorted(a.blackout_dates)) or "none"
        print(f"  {someone.name:<10} {a.timezone:<20} {a.describe_days():<12} {a.describe_hours()}  blackout: {blackout}")
    options: dict[int, list[Combination]] = defaultdict(list)
    for combo in instance.combos:
        options[combo[0]].append(combo)
    planned = {p.pair.id: p for p in outcome.plan.pairs}
    for i, pair in enumerate(cohort.pairs):
        combos = options[i]
        print(f"  {pair.id} {pair.mentor.name} + {pair.mentee.name}: {len(combos)} combinations")
        if not combos:
            continue
        print(f"    session 1 starts: {_times(sorted({c[1] for c in combos}))}")
        print(f"    session 2 starts: {_times(sorted({c[2] for c in combos}))}")
        sessions = planned[pair.id].sessions
        mine = _times([to_minutes(s.start) for s in sessions]) if sessions else "none"
        best = _times(outcome.exact[i][1:]) if i in outcome.exact else "none"
        print(f"    planner: {mine}   exact: {best}")
    print(f"  (times in UTC; sessions last {limits.length} min, buffer {limits.buffer} min)")
    hopeless = [p for i, p in enumerate(cohort.pairs) if not options[i]]
    able = dataclasses.replace(cohort, pairs=tuple(p for i, p in enumerate(cohort.pairs) if options[i]))
    print(
        f"  the planner's groups: {[len(g) for g in groups(cohort)]};"
        f" pairs that can never meet: {', '.join(p.id for p in hopeless) or 'none'}"
    )
    larger = plan_sessions(cohort, busy, now=NOW, node_budget=LARGE_BUDGET)
    print(
        f"  planner without those pairs (groups {[len(g) for g in groups(able)]}):"
        f" {plan_sessions(able, busy, now=NOW).booked}; with node_budget={LARGE_BUDGET}: {larger.booked}"
    )


def _times(minutes: Sequence[int]) -> str:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return ", ".join(f"{epoch + timedelta(minutes=m):%a %d %b %H:%M}" for m in minutes) or "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000", help="pairs per scale cohort, comma separated")
    parser.add_argument("--seed", type=int, default=2027)
    parser.add_argument("--instances", type=int, default=200, help="tiny cohorts for the quality check")
    parser.add_argument("--stretch", type=int, default=Stretch().minutes, help="minutes the scale cohorts' hours may stretch")
    args = parser.parse_args()
    began = perf_counter()
    run_scale([int(s) for s in args.sizes.split(",")], args.seed, Stretch(minutes=args.stretch))
    run_quality(args.seed, args.instances)
    print(f"\nwhole benchmark: {perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
