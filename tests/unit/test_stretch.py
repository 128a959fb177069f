"""Pairs whose working hours never meet: booked outside them, fairly, and said so."""

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from service.domain.model import Person, Role, Stretch
from service.domain.planning import misfit, plan_sessions
from service.domain.stages import Stage
from service.domain.stretch import Side, outside_hours, stretched
from service.mail.context import pair_context
from tests.builders import cohort, pair, person
from tests.planchecks import violations

NOW = datetime(2027, 2, 1, tzinfo=UTC)


def declared(someone: Person) -> Person:
    return replace(someone, availability=replace(someone.availability, declared=True))


def carried(item) -> list[tuple[int, int]]:
    """(mentor, mentee) minutes outside their hours, per session."""
    return [
        (
            sum(outside_hours(item.pair.mentor.availability, s.start, s.end)),
            sum(outside_hours(item.pair.mentee.availability, s.start, s.end)),
        )
        for s in item.sessions
    ]


def test_new_york_and_sydney_share_the_stretch_evenly():
    # 09-17 in both: New York's day ends at 22:00 UTC when Sydney's begins (March), so the
    # fairest hour is half an hour late for one and half an hour early for the other.
    c = cohort(pair(person("Ana Lima", "America/New_York"), person("Sam Lee", "Australia/Sydney")))
    (item,) = plan_sessions(c, {}, now=NOW).pairs
    assert item.problems == () and len(item.sessions) == 2
    assert violations(c, plan_sessions(c, {}, now=NOW), now=NOW) == []
    for mentor, mentee in carried(item):
        assert mentor == mentee > 0
    first = stretched(item.pair, item.sessions[0])
    assert {(s.person.name, s.side, s.minutes) for s in first} == {("Ana Lima", Side.LATE, 30), ("Sam Lee", Side.EARLY, 30)}


def test_an_uneven_split_is_taken_in_turns():
    # Kolkata 09-17 (03:30-11:30 UTC) and Los Angeles 09-17: 210 minutes to cover before
    # 14 March, 270 after; on a 30-minute grid each session must favour one of them.
    c = cohort(pair(person("Priya Nair", "Asia/Kolkata"), person("Daniel Kim", "America/Los_Angeles")))
    (item,) = plan_sessions(c, {}, now=NOW).pairs
    first, second = carried(item)
    assert max(first) == 120 and max(second) == 150  # the least the worse-off one can carry
    assert first[0] + second[0] == first[1] + second[1]  # and over both sessions, the same each


def test_a_pair_inside_hours_is_never_stretched_and_one_session_may_be():
    # London and Los Angeles meet 16:00-17:00 UTC from 14 March until London's clocks
    # change on 28 March; session 2 comes later and has to stretch.
    inside = pair(person("Jonas Weber", "Europe/Berlin"), person("Maya Okafor", "America/New_York"), "inside")
    half = pair(person("Olivia Smith", "Europe/London"), person("Kai Tanaka", "America/Los_Angeles"), "half")
    c = cohort(inside, half, first_within=timedelta(weeks=3))
    plan = {item.pair.id: item for item in plan_sessions(c, {}, now=NOW).pairs}
    assert all(not stretched(inside, s) for s in plan["inside"].sessions) and len(plan["inside"].sessions) == 2
    one, two = plan["half"].sessions
    assert stretched(half, one) == () and stretched(half, two) != ()


def test_the_stretch_keeps_off_days_off_busy_time_and_the_night():
    ana = person("Ana Lima", "America/New_York", blackout=frozenset({date(2027, 3, d) for d in range(1, 6)}))
    sam = person("Sam Lee", "Australia/Sydney", days=frozenset({1, 3}))  # Tuesdays and Thursdays only
    busy = {ana.email: [(datetime(2027, 3, d, 21, tzinfo=UTC), datetime(2027, 3, d, 23, tzinfo=UTC)) for d in range(8, 13)]}
    c = cohort(pair(ana, sam))
    plan = plan_sessions(c, busy, now=NOW)
    assert plan.booked == 1
    assert violations(c, plan, busy, now=NOW) == []  # working days, blackouts, busy time, 06:00-22:00 local
    for session in plan.pairs[0].sessions:
        for someone in (ana, sam):
            local = session.start.astimezone(ZoneInfo(someone.timezone))
            assert local.hour >= 6 and (local + timedelta(hours=1)).hour <= 22


def test_declared_hours_are_stretched_only_when_the_cohort_says_so():
    ana, sam = declared(person("Ana Lima", "America/New_York")), declared(person("Sam Lee", "Australia/Sydney"))
    c = cohort(pair(ana, sam))
    (item,) = plan_sessions(c, {}, now=NOW).pairs
    assert item.sessions == ()
    assert "Ana Lima and Sam Lee declared their hours, which are not stretched" in item.problems[0]
    assert item.problems[0].endswith("it would be planned with working_hours.stretch_declared: true")
    allowed = replace(c, stretch=Stretch(declared=True))
    assert plan_sessions(allowed, {}, now=NOW).booked == 1
    # One declared, one not: the other one carries it all, within the stretch.
    (item,) = plan_sessions(cohort(pair(ana, person("Sam Lee", "Australia/Sydney"))), {}, now=NOW).pairs
    assert [mentor for mentor, _ in carried(item)] == [0, 0] and all(mentee > 0 for _, mentee in carried(item))


def test_hours_that_meet_only_after_a_clock_change_name_the_date_and_the_fix():
    # Tokyo 09-17 (00-08 UTC) and Berlin 09-17 meet 07:00-08:00 UTC once Berlin's clocks
    # go forward on 28 March, after session 1's three weeks. Nobody is busy or away.
    c = replace(cohort(pair(person("Aiko Sato", "Asia/Tokyo"), person("Jonas Weber", "Europe/Berlin"))), stretch=Stretch(minutes=0))
    (item,) = plan_sessions(c, {}, now=NOW).pairs
    (reason,) = item.problems
    assert reason.startswith(
        "their working hours meet only after the clock change on 28 Mar 2027 in Berlin, too late for session 1 in the first 3 weeks"
    )
    assert "busy" not in reason and "blackout" not in reason
    assert reason.endswith("it would be planned with first_within_weeks: 5 or working_hours.stretch_minutes: 30")
    for fix in (replace(c, rules=replace(c.rules, first_within=timedelta(weeks=5))), replace(c, stretch=Stretch(minutes=30))):
        assert plan_sessions(fix, {}, now=NOW).booked == 1  # each fix named does plan it
    assert plan_sessions(replace(c, rules=replace(c.rules, first_within=timedelta(weeks=4))), {}, now=NOW).booked == 0


def test_a_blackout_that_keeps_a_pair_out_is_named_with_whose_it_is():
    mentee = person(
        "Bo Chen", "UTC", "09:00-10:00", days=frozenset({0}), blackout=frozenset({date(2027, 3, 1), date(2027, 3, 8), date(2027, 3, 15)})
    )
    c = cohort(pair(person("Ana Lima", "UTC", "09:00-10:00"), mentee), timezone="UTC")
    (item,) = plan_sessions(c, {}, now=NOW).pairs
    assert item.problems[0].startswith(
        "no hour when both are free in the first 3 weeks (by 21 Mar 2027) for session 1: Bo Chen's blackout dates cover every common working hour"
    )
    assert "Bo Chen's blackout date 01 Mar 2027 dropped" in item.problems[0]


def test_a_stretched_booking_stands_while_it_is_within_the_stretch():
    c = cohort(pair(person("Ana Lima", "America/New_York"), person("Sam Lee", "Australia/Sydney")))
    (item,) = plan_sessions(c, {}, now=NOW).pairs
    session = item.sessions[0]
    assert misfit(item.pair, session, {}, stretch=c.stretch) is None
    assert misfit(item.pair, session, {}) is not None  # inside hours only, it would move
    assert misfit(item.pair, session, {}, stretch=Stretch(minutes=15)) is not None


def test_the_emails_tell_the_reader_plainly():
    # Tokyo and Berlin: session 1 in March stretches both; session 2, after Berlin's
    # clocks change, fits inside both days.
    aiko, jonas = person("Aiko Sato", "Asia/Tokyo"), person("Jonas Weber", "Europe/Berlin")
    c = cohort(pair(aiko, jonas), end=date(2027, 4, 30))
    (item,) = plan_sessions(c, {}, now=NOW).pairs
    first, second = item.sessions
    assert stretched(item.pair, first) and not stretched(item.pair, second)
    context = pair_context(c, item.pair, item.sessions, Role.MENTOR, stage=Stage.SESSION1_PREP)
    assert context["session1"].stretch == (
        "This is late for you, 30 minutes after your working day ends, because Jonas is in Berlin;"
        " the next session is at a better time for you."
    )
    assert context["session2"].stretch is None
    mentee = pair_context(c, item.pair, item.sessions, Role.MENTEE, stage=Stage.SESSION1_INVITATION)
    assert mentee["session"].stretch.startswith(
        "This is early for you, 30 minutes before your working day starts, because Aiko is in Tokyo"
    )
