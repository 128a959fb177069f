from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from service.domain.model import Session
from service.domain.planning import NOTICE, misfit, plan_sessions, replan_session
from tests.builders import cohort, pair, person
from tests.planchecks import violations

NOW = datetime(2027, 2, 1, tzinfo=UTC)


def test_every_pair_of_a_worldwide_cohort_gets_two_sessions_within_the_rules():
    zones = [
        ("America/New_York", "Europe/Berlin"),
        ("Australia/Sydney", "Australia/Lord_Howe"),
        ("Asia/Kolkata", "Europe/London"),
        ("America/Los_Angeles", "America/Sao_Paulo"),
        ("Asia/Tokyo", "Asia/Singapore"),
    ]
    c = cohort(*(pair(person(f"Mentor {i}", a), person(f"Mentee {i}", b)) for i, (a, b) in enumerate(zones)))
    plan = plan_sessions(c, {}, now=NOW)
    assert plan.booked == len(zones)
    assert violations(c, plan, now=NOW) == []


def test_a_mentor_with_four_mentees_is_never_double_booked_and_spread_over_days():
    mentor = person("Maya", "America/New_York")
    c = cohort(*(pair(mentor, person(f"Mentee {i}", "America/Chicago")) for i in range(4)))
    plan = plan_sessions(c, {}, now=NOW)
    assert plan.booked == 4
    assert violations(c, plan, now=NOW) == []
    mentor_days = [s.start.astimezone(ZoneInfo("America/New_York")).date() for p in plan.pairs for s in p.sessions]
    assert len(set(mentor_days)) == len(mentor_days)


def test_sessions_sit_well_inside_both_working_days():
    # Overlap is 14:00-17:00 UTC (New York 09-12 EST, Berlin 15-18 CET... Berlin works 09-18).
    c = cohort(pair(person("A", "America/New_York", "09:00-17:00"), person("B", "Europe/Berlin", "09:00-18:00")))
    plan = plan_sessions(c, {}, now=NOW)
    assert plan.booked == 1 and len(plan.pairs[0].sessions) == 2  # the loop below checks something
    for s in plan.pairs[0].sessions:
        ny = s.start.astimezone(ZoneInfo("America/New_York"))
        berlin = s.end.astimezone(ZoneInfo("Europe/Berlin"))
        # Not glued to the edge of the shared window: not at 09:00 New York nor ending at 18:00 Berlin.
        assert ny.hour >= 10 and berlin.hour < 18, (ny, berlin)


def test_lord_howe_and_sydney_across_the_april_dst_change():
    c = cohort(
        pair(person("Sarah", "Australia/Sydney", "09:00-10:30"), person("Tom", "Australia/Lord_Howe", "09:00-11:00")),
        start=date(2027, 3, 29),
        end=date(2027, 4, 30),
        timezone="Australia/Sydney",
        first_within=timedelta(weeks=1),
        min_gap=timedelta(weeks=2),
    )
    plan = plan_sessions(c, {}, now=NOW)
    assert plan.booked == 1
    assert violations(c, plan) == []
    first, second = plan.pairs[0].sessions
    # Before 4 April Lord Howe is 0 min ahead of Sydney (both +11); after, 30 min ahead.
    assert first.start.astimezone(ZoneInfo("Australia/Lord_Howe")).utcoffset() == timedelta(hours=11)
    assert second.start.astimezone(ZoneInfo("Australia/Lord_Howe")).utcoffset() == timedelta(hours=10, minutes=30)


def test_busy_times_and_blackout_dates_are_avoided():
    a = person("A", "UTC", "09:00-11:00", blackout=frozenset({date(2027, 3, 1)}))
    b = person("B", "UTC", "09:00-11:00")
    busy = {b.email: [(datetime(2027, 3, d, 9, tzinfo=UTC), datetime(2027, 3, d, 10, 30, tzinfo=UTC)) for d in range(2, 13)]}
    c = cohort(pair(a, b), timezone="UTC")
    plan = plan_sessions(c, busy, now=NOW)
    assert plan.booked == 1
    assert violations(c, plan, busy) == []
    assert plan.pairs[0].sessions[0].start.date() >= date(2027, 3, 15)


def test_nothing_is_planned_in_the_past():
    now = datetime(2027, 3, 10, 12, 7, tzinfo=UTC)
    c = cohort(pair(person("A", "UTC"), person("B", "UTC")), timezone="UTC")
    plan = plan_sessions(c, {}, now=now)
    assert plan.booked == 1
    assert violations(c, plan, now=now) == []


def test_no_common_working_hours_is_explained():
    c = cohort(pair(person("Ana Lima", "Pacific/Honolulu", "09:00-12:00"), person("Jonas Weber", "Europe/Berlin", "09:00-12:00")))
    (item,) = plan_sessions(c, {}, now=NOW).pairs
    assert item.sessions == ()
    assert item.problems == (
        "no common working hours: Ana Lima in Honolulu (Mon,Tue,Wed,Thu,Fri 09:00-12:00) and"
        " Jonas Weber in Berlin (Mon,Tue,Wed,Thu,Fri 09:00-12:00) never overlap for a whole session during the program,"
        " even with their days stretched by up to 180 minutes; it would be planned with working_hours.stretch_minutes: 360",
    )


def test_busy_first_weeks_are_explained():
    a, b = person("A", "UTC"), person("B", "UTC")
    busy = {a.email: [(datetime(2027, 3, 1, tzinfo=UTC), datetime(2027, 3, 22, tzinfo=UTC))]}
    (item,) = plan_sessions(cohort(pair(a, b), timezone="UTC"), busy, now=NOW).pairs
    assert item.problems == (
        "no hour when both are free in the first 3 weeks (by 21 Mar 2027) for session 1:"
        " A's busy times cover every common working hour; it would be planned with first_within_weeks: 4",
    )


def test_no_room_for_session_two_is_explained():
    a, b = person("A", "UTC"), person("B", "UTC")
    busy = {a.email: [(datetime(2027, 3, 15, tzinfo=UTC), datetime(2027, 5, 1, tzinfo=UTC))]}
    (item,) = plan_sessions(cohort(pair(a, b), timezone="UTC"), busy, now=NOW).pairs
    assert item.problems == (
        "no hour when both are free at least 3 weeks after a possible session 1 and before the program ends on 30 Apr 2027:"
        " A's busy times cover every common working hour; it would be planned with min_weeks_between: 1",
    )


def test_a_program_whose_first_weeks_have_passed_is_explained():
    c = cohort(pair(person("A", "UTC"), person("B", "UTC")), timezone="UTC")
    (item,) = plan_sessions(c, {}, now=datetime(2027, 3, 25, tzinfo=UTC)).pairs
    assert item.problems == (
        "session 1 had to take place by 21 Mar 2027, which has passed; it would be planned with first_within_weeks: 4",
    )


def test_a_mentor_with_too_little_time_books_as_many_mentees_as_fit_and_names_the_rest():
    # Maya has one free hour a week: 3 weeks for session 1 cannot serve 4 mentees.
    maya = person("Maya", "UTC", "10:00-11:00", days=frozenset({0}))
    mentees = [person(f"Mentee {i}", "UTC") for i in range(4)]
    c = cohort(*(pair(maya, m) for m in mentees), timezone="UTC")
    plan = plan_sessions(c, {}, now=NOW)
    assert plan.booked == 3
    assert violations(c, plan) == []
    (left_out,) = [p for p in plan.pairs if not p.sessions]
    others = sorted(m.name for m in mentees if m.name != left_out.pair.mentee.name)
    assert left_out.problems == (
        f"every time both are free is taken by other sessions (Maya with {', '.join(others)}):"
        " free up time or move a pair to another mentor; it would be planned with first_within_weeks: 4",
    )


def test_backtracking_finds_what_the_first_guess_misses():
    # Session 1 must fall Mon-Wed of the first week. A can meet Maya Mon or Wed, B and C
    # only Mon or Tue. The first guess gives A Monday (its preferred day), which leaves
    # B and C one day for two sessions; only backtracking finds A -> Wednesday.
    maya = person("Maya", "UTC", "09:00-10:00", days=frozenset({0, 1, 2}))
    a = person("A", "UTC", "09:00-10:00", days=frozenset({0, 2}))
    b = person("B", "UTC", "09:00-10:00", days=frozenset({0, 1}))
    c_ = person("C", "UTC", "09:00-10:00", days=frozenset({0, 1}))
    c = cohort(pair(maya, a), pair(maya, b), pair(maya, c_), timezone="UTC", first_within=timedelta(days=3), min_gap=timedelta(weeks=1))
    assert plan_sessions(c, {}, now=NOW, node_budget=4).booked == 2  # the first descent only
    plan = plan_sessions(c, {}, now=NOW)
    assert plan.booked == 3
    assert violations(c, plan) == []


def test_a_person_keeps_a_buffer_between_sessions():
    # Two hours on one Monday cannot hold two one-hour sessions plus a 15-minute buffer.
    maya = person("Maya", "UTC", "09:00-11:00", days=frozenset({0}))
    mentees = [person("A", "UTC"), person("B", "UTC")]
    tight = cohort(*(pair(maya, m) for m in mentees), timezone="UTC", first_within=timedelta(weeks=1))
    assert plan_sessions(tight, {}, now=NOW).booked == 1
    loose = cohort(*(pair(maya, m) for m in mentees), timezone="UTC", first_within=timedelta(weeks=1), buffer=timedelta(0))
    plan = plan_sessions(loose, {}, now=NOW)
    assert plan.booked == 2
    assert violations(loose, plan) == []


def test_the_plan_is_deterministic():
    c = cohort(*(pair(person(f"M{i}", "Europe/Berlin"), person(f"E{i}", "Asia/Kolkata")) for i in range(6)))
    assert plan_sessions(c, {}, now=NOW) == plan_sessions(c, {}, now=NOW)


ZONES = ["America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Kolkata", "UTC", "Pacific/Honolulu"]
HOURS = ["09:00-17:00", "08:00-12:00", "13:00-18:00", "10:00-11:30", "07:00-10:00,16:00-19:00"]


@st.composite
def cohorts(draw):
    people = [
        person(
            f"P{i}",
            draw(st.sampled_from(ZONES)),
            draw(st.sampled_from(HOURS)),
            days=frozenset(draw(st.sets(st.integers(0, 6), min_size=1, max_size=5))),
        )
        for i in range(draw(st.integers(2, 7)))
    ]
    links = draw(st.sets(st.tuples(st.integers(0, len(people) - 1), st.integers(0, len(people) - 1)), min_size=1, max_size=8))
    pairs = [pair(people[a], people[b], f"p{a}-{b}") for a, b in sorted(links) if a != b]
    seen, unique = set(), []
    for p in pairs:  # one pair per (mentor, mentee)
        if (p.mentor.email, p.mentee.email) not in seen:
            seen.add((p.mentor.email, p.mentee.email))
            unique.append(p)
    busy = {
        p.email: [
            (start, start + timedelta(minutes=draw(st.integers(30, 600))))
            for start in draw(st.lists(st.datetimes(datetime(2027, 3, 1), datetime(2027, 4, 30), timezones=st.just(UTC)), max_size=6))
        ]
        for p in people
    }
    return cohort(*unique, start=date(2027, 3, 1), end=date(2027, 4, 11), first_within=timedelta(weeks=2)), busy


@settings(max_examples=60, deadline=None)
@given(cohorts())
def test_any_plan_obeys_every_rule(case):
    c, busy = case
    if not c.pairs:
        return
    plan = plan_sessions(c, busy, now=NOW)
    assert violations(c, plan, busy, now=NOW) == []


def test_booked_sessions_are_kept_and_others_plan_around_them():
    maya = person("Maya", "UTC", "09:00-11:00", days=frozenset({0}))
    a, b = person("A", "UTC"), person("B", "UTC")
    c = cohort(pair(maya, a, "a"), pair(maya, b, "b"), timezone="UTC")
    first = plan_sessions(c, {}, now=NOW)
    kept = {"a": next(p.sessions for p in first.pairs if p.pair.id == "a")}
    again = plan_sessions(c, {}, now=NOW, booked=kept)
    assert next(p.sessions for p in again.pairs if p.pair.id == "a") == kept["a"]
    assert again.booked == 2
    assert violations(c, again) == []


def test_a_declined_session_gets_another_time_around_everything_else():
    from service.domain.planning import replan_session

    maya = person("Maya", "UTC", "09:00-12:00")
    a, b = person("A", "UTC"), person("B", "UTC")
    c = cohort(pair(maya, a, "a"), pair(maya, b, "b"), timezone="UTC")
    plan = plan_sessions(c, {}, now=NOW)
    booked = {p.pair.id: p.sessions for p in plan.pairs}
    refused = booked["a"][0]
    others = {"a": (booked["a"][1],), "b": booked["b"]}
    busy = {a.email: [(refused.start, refused.end)]}
    new = replan_session(c, busy, pair_id="a", number=1, booked=others, now=NOW)
    assert new is not None and new.number == 1 and new.start != refused.start
    booked["a"] = (new, booked["a"][1])
    again = plan_sessions(c, busy, now=NOW, booked=booked)
    assert violations(c, again, busy) == []


def test_a_booked_session_that_no_longer_fits_says_why():

    a = person("Maya Okafor", "America/New_York", "09:00-17:00")
    b = person("Zoe Park", "Europe/Berlin", "09:00-18:00")
    start = datetime(2027, 3, 9, 15, tzinfo=UTC)  # Tuesday: 10:00 New York, 16:00 Berlin
    session = Session(pair_id="p", number=1, start=start, end=start + timedelta(hours=1))
    assert misfit(pair(a, b), session, {}) is None
    away = person("Maya Okafor", "America/New_York", blackout=frozenset({date(2027, 3, 9)}))
    assert misfit(pair(away, b), session, {}) == "Maya Okafor is away on Tuesday 9 March"
    no_tuesdays = person("Maya Okafor", "America/New_York", days=frozenset({0, 2, 3, 4}))
    assert misfit(pair(no_tuesdays, b), session, {}) == "Maya Okafor no longer meets on Tuesdays"
    moved_west = person("Maya Okafor", "America/Los_Angeles")  # 07:00 there
    assert misfit(pair(moved_west, b), session, {}) == "it falls outside Maya Okafor's hours (09:00-17:00 in Los Angeles)"
    busy = {a.email: [(start - timedelta(minutes=30), start + timedelta(minutes=30))]}
    assert misfit(pair(a, b), session, busy) == "Maya Okafor is busy then"
    itself = {a.email: [(session.start, session.end)]}  # the session in an exported calendar
    assert misfit(pair(a, b), session, itself) is None


def test_pairs_sharing_a_meeting_room_never_meet_in_it_at_once():
    # Everyone in one zone with a narrow shared window: without the room rule, several
    # pairs would take the same hour.
    people = [(person(f"Mentor {i}", "UTC", "10:00-12:00"), person(f"Mentee {i}", "UTC", "10:00-12:00")) for i in range(6)]
    c = cohort(*(pair(a, b) for a, b in people), timezone="UTC", first_within=timedelta(weeks=1))
    alone = plan_sessions(c, {}, now=NOW)
    assert alone.booked == 6
    starts = [s.start for item in alone.pairs for s in item.sessions if s.number == 1]
    assert len(set(starts)) < len(starts)  # the rule below is what spreads them
    shared = replace(c, video_link="https://meet.example.org/cohort-room")
    plan = plan_sessions(shared, {}, now=NOW)
    assert plan.booked == 5  # one session a day fits the two-hour window, buffers included
    (left,) = [item for item in plan.pairs if item.problems]
    assert "shared room https://meet.example.org/cohort-room" in left.problems[0]
    assert violations(shared, plan, now=NOW) == []  # the independent check includes rooms
    assert any("room" in v for v in violations(shared, alone, now=NOW))  # and it would have caught the clash


def test_a_busy_time_that_ends_a_moment_after_the_hour_keeps_that_hour_taken():
    c = cohort(pair(person("A", "UTC", "09:00-12:00"), person("B", "UTC", "09:00-12:00")))
    days = [c.start + timedelta(days=n) for n in range(-7, (c.end - c.start).days + 8)]
    at = [datetime(d.year, d.month, d.day, tzinfo=UTC) for d in days]
    # Free from 10:00 to 11:00 only to the minute: the first meeting ends a microsecond after 10:00.
    busy = [(t + timedelta(hours=9), t + timedelta(hours=10, microseconds=1)) for t in at]
    busy += [(t + timedelta(hours=11), t + timedelta(hours=12)) for t in at]
    plan = plan_sessions(c, {"a@example.org": busy}, now=NOW)
    assert violations(c, plan, now=NOW, busy={"a@example.org": busy}) == []


def test_a_session_booked_again_gives_both_people_notice():
    """Moved at 14:00 with the hour from 14:00 the only time A is free: not taken, since an
    invitation for a time already under way would never be sent."""
    c = cohort(pair(person("A", "UTC", "09:00-17:00"), person("B", "UTC", "09:00-17:00")))
    now = datetime(2027, 3, 2, 14, tzinfo=UTC)
    busy = {"a@example.org": [(NOW, now), (now + timedelta(hours=1), datetime(2027, 6, 1, tzinfo=UTC))]}
    new = replan_session(c, busy, pair_id=c.pairs[0].id, number=1, booked={}, now=now)
    assert new is None
    later = replan_session(c, {}, pair_id=c.pairs[0].id, number=1, booked={}, now=now)
    assert later is not None and later.start >= now + NOTICE
