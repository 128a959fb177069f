from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from service.domain.model import Anchor, EmailSettings, Role, Session, Timing
from service.domain.timeline import DEFAULT_TIMINGS, email_timeline
from tests.builders import cohort, pair, person

MAYA = person("Maya Okafor", "America/New_York")
ZOE = person("Zoe Nunez", "Europe/Berlin")
PAIR = pair(MAYA, ZOE, "maya-zoe")
SESSIONS = (
    Session(pair_id="maya-zoe", number=1, start=datetime(2027, 3, 4, 15, tzinfo=UTC), end=datetime(2027, 3, 4, 16, tzinfo=UTC)),
    Session(pair_id="maya-zoe", number=2, start=datetime(2027, 4, 8, 14, tzinfo=UTC), end=datetime(2027, 4, 8, 15, tzinfo=UTC)),
)


def due(messages, stage, email):
    (found,) = [m.due for m in messages if m.stage == stage and m.recipient == email]
    return found


def test_every_stage_goes_to_both_people_once_in_due_order():
    messages = email_timeline(cohort(PAIR), PAIR, SESSIONS)
    assert len(messages) == 2 * len(DEFAULT_TIMINGS)
    assert len({m.key for m in messages}) == len(messages)
    assert messages == sorted(messages, key=lambda m: m.due)
    assert {m.role for m in messages if m.recipient == MAYA.email} == {Role.MENTOR}


def test_default_send_times():
    messages = email_timeline(cohort(PAIR), PAIR, SESSIONS)
    # A week before the start at 09:00 in each reader's zone.
    assert due(messages, "welcome", MAYA.email) == datetime(2027, 2, 22, 9, tzinfo=ZoneInfo("America/New_York"))
    assert due(messages, "welcome", ZOE.email) == datetime(2027, 2, 22, 9, tzinfo=ZoneInfo("Europe/Berlin"))
    assert due(messages, "session1_prep", MAYA.email) == SESSIONS[0].start - timedelta(days=3)
    assert due(messages, "session1_followup", ZOE.email) == SESSIONS[0].end + timedelta(hours=2)
    # Halfway between the sessions is early on Monday 22 March in Berlin: 09:00 that day.
    assert due(messages, "homework_checkin", ZOE.email) == datetime(2027, 3, 22, 9, tzinfo=ZoneInfo("Europe/Berlin"))
    assert due(messages, "session2_prep", ZOE.email) == SESSIONS[1].start - timedelta(days=3)
    assert due(messages, "program_wrapup", MAYA.email) == SESSIONS[1].end + timedelta(days=1)
    assert due(messages, "follow_up", MAYA.email) == datetime(2027, 7, 29, 9, tzinfo=ZoneInfo("America/New_York"))


def test_a_morning_email_stays_at_nine_across_a_dst_change():
    # Program starts 29 March in Berlin (DST began 28 March); a week before is still CET.
    c = cohort(PAIR, start=date(2027, 3, 29), end=date(2027, 5, 28))
    welcome = due(email_timeline(c, PAIR, SESSIONS), "welcome", ZOE.email)
    assert welcome.astimezone(ZoneInfo("Europe/Berlin")).hour == 9
    assert welcome.astimezone(UTC).hour == 8  # CET


def test_a_morning_email_waits_for_the_readers_next_working_day():
    # 90 days after Friday 30 April is Thursday 29 July; a Mon-Wed reader gets it on Monday 2 August.
    part_timer = replace(MAYA, availability=replace(MAYA.availability, days=frozenset({0, 1, 2})))
    p = pair(part_timer, ZOE, "maya-zoe")
    messages = email_timeline(cohort(p), p, SESSIONS)
    assert due(messages, "follow_up", MAYA.email) == datetime(2027, 8, 2, 9, tzinfo=ZoneInfo("America/New_York"))


def test_a_cohort_can_move_a_stage():
    timings = dict(DEFAULT_TIMINGS, session1_prep=Timing(anchor=Anchor.SESSION1_START, offset=timedelta(days=-5)))
    c = replace(cohort(PAIR), emails=EmailSettings(timings=tuple(timings.items())))
    assert due(email_timeline(c, PAIR, SESSIONS), "session1_prep", MAYA.email) == SESSIONS[0].start - timedelta(days=5)


def test_a_pair_without_sessions_gets_no_program_emails():
    assert email_timeline(cohort(PAIR), PAIR, ()) == []
