"""One contract, every store: the in-memory fake, SQLite on disk and the real PostgreSQL server.

Tests of what only a database has (migrations, the audit table, the advisory lock) take
`sql_store` or open their own database, and run on SQLite and PostgreSQL only."""

from __future__ import annotations

import os
import uuid
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from service.adapters.store import open_store
from service.adapters.store.schema import MIGRATIONS
from service.domain.calendar import CalendarEvent
from service.domain.model import Role, Session
from service.domain.outbox import Changes, State, Wanted
from service.domain.ports import Alert, HeldChange, Purpose
from service.domain.push import Channel
from service.domain.requests import RequestKind
from service.domain.stages import Stage
from tests.builders import pair, person
from tests.fakes.memory_store import MemoryStore

POSTGRES = os.environ.get("MENTORSHIP_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
T0 = datetime(2027, 3, 1, 9, tzinfo=UTC)

# An unreachable PostgreSQL server fails these tests; `-m "not postgres"` leaves them out.
SQL_BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
BACKENDS = ["memory", *SQL_BACKENDS]


@contextmanager
def postgres_database():
    """A new, empty database on the test server, dropped afterwards."""
    name = f"mentorship_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1) + f"/{name}"
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def _opened(backend, tmp_path):
    with ExitStack() as stack:
        if backend == "memory":
            s = MemoryStore()
        else:
            s = open_store(tmp_path / "state.sqlite" if backend == "sqlite" else stack.enter_context(postgres_database()))
        yield s
        s.close()


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    yield from _opened(request.param, tmp_path)


@pytest.fixture(params=SQL_BACKENDS)
def sql_store(request, tmp_path):
    yield from _opened(request.param, tmp_path)


def session(pair_id="p1", number=1, start=T0):
    return Session(pair_id=pair_id, number=number, start=start, end=start + timedelta(hours=1))


def wanted(stage="welcome", due=T0, revision=0, pair_id="p1", recipient="a@example.org", expires=None):
    return Wanted(due=due, pair_id=pair_id, stage=Stage(stage), recipient=recipient, revision=revision, role=Role.MENTOR, expires=expires)


def test_foreseen_emails_are_noted_by_pair_and_day_and_replaced_pair_by_pair(store):
    assert store.foreseen() == {}
    march, april = date(2027, 3, 1), date(2027, 4, 2)
    store.note_foreseen({"p1": {march: 2, april: 4}, "p2": {april: 1}})
    assert store.foreseen() == {"p1": {march: 2, april: 4}, "p2": {april: 1}}
    store.note_foreseen({"p1": {april: 2}, "p2": {}})  # p2's are all written now
    assert store.foreseen() == {"p1": {april: 2}}


def test_sessions_round_trip_as_aware_utc(store):
    store.book([session(number=1), session(number=2, start=T0 + timedelta(weeks=4))], T0)
    records = sorted(store.sessions(), key=lambda r: r.session.number)
    assert [r.session for r in records] == [session(number=1), session(number=2, start=T0 + timedelta(weeks=4))]
    assert all(r.session.start.tzinfo is UTC and r.sequence == 0 and not r.cancelled for r in records)
    assert store.sessions(["other"]) == []


def test_moving_and_cancelling_bump_the_sequence(store):
    store.book([session()], T0)
    store.move(session(start=T0 + timedelta(days=1)), T0 + timedelta(hours=1), "declined")
    (record,) = store.sessions()
    assert (record.sequence, record.previous_start, record.change_reason) == (1, T0, "declined")
    store.cancel_pair("p1", T0 + timedelta(hours=2), "removed")
    (record,) = store.sessions()
    assert record.cancelled and record.sequence == 2
    returned = store.book([session(start=T0 + timedelta(days=3))], T0 + timedelta(hours=3))  # the pair came back
    (record,) = store.sessions()
    assert (record.cancelled, record.sequence, record.previous_start, record.change_reason) == (False, 3, None, None)
    assert returned == [record]  # booking says what it stored


def test_apply_inserts_retimes_cancels_and_revives_only_planned_rows(store):
    a, b, c = wanted("welcome"), wanted("session1_prep"), wanted("homework_checkin")
    store.apply(Changes(insert=(a, b, c)), T0)
    row_c = next(r for r in store.messages() if r.stage == "homework_checkin")
    store.mark_sending(row_c, "<c@example.org>", T0)
    later = a._replace(due=T0 + timedelta(days=1))
    store.apply(Changes(retime=(later, c._replace(due=T0 + timedelta(days=2))), cancel=(b.key, c.key)), T0)
    states = {r.stage: (r.state, r.due) for r in store.messages()}
    assert states["welcome"] == (State.PLANNED, T0 + timedelta(days=1))
    assert states["session1_prep"][0] is State.CANCELLED
    assert states["homework_checkin"] == (State.SENDING, T0)  # handed over: never touched
    store.apply(Changes(revive=(b,)), T0)
    assert {r.stage: r.state for r in store.messages()}["session1_prep"] is State.PLANNED


def test_due_next_due_and_retry_times(store):
    store.apply(
        Changes(
            insert=(wanted("welcome", T0), wanted("session1_prep", T0 + timedelta(hours=1)), wanted("follow_up", T0 + timedelta(days=1)))
        ),
        T0,
    )
    assert [r.stage for r in store.due(T0 + timedelta(hours=1), 10)] == ["welcome", "session1_prep"]
    assert [r.stage for r in store.due(T0 + timedelta(hours=1), 1)] == ["welcome"]
    assert store.next_due() == T0
    row = store.due(T0, 1)[0]
    store.mark_sending(row, "<a@example.org>", T0)
    store.mark_retry(row, T0 + timedelta(hours=5), "421 busy", T0)
    assert [r.stage for r in store.due(T0 + timedelta(hours=2), 10)] == ["session1_prep"]  # waiting for its retry
    assert store.next_due() == T0 + timedelta(hours=1)
    (retried,) = [r for r in store.messages() if r.stage == "welcome"]
    assert (retried.state, retried.attempts, retried.last_error, retried.due) == (State.PLANNED, 1, "421 busy", T0)


def test_state_changes_are_guarded_by_the_state_they_leave(store):
    store.apply(Changes(insert=(wanted(),)), T0)
    (row,) = store.messages()
    with pytest.raises(RuntimeError, match="was not sending"):
        store.mark_sent(row, T0)
    store.mark_sending(row, "<m@example.org>", T0)
    with pytest.raises(RuntimeError, match="was not planned"):
        store.mark_sending(row, "<m@example.org>", T0)  # a second process would fail here
    assert [r.key for r in store.in_flight()] == [row.key]
    store.mark_uncertain(row, "stopped mid-send", T0)
    assert [(r.key, r.state) for r in store.messages_needing_a_human()] == [(row.key, State.UNCERTAIN)]
    assert store.in_flight() == []


def test_pairs_are_remembered_after_they_leave_the_pairings(store):
    p = pair(person("Zoë Ñúñez", "Europe/Berlin"), person("李雷", "Asia/Shanghai"), "p1")
    store.remember_pairs([p], T0)
    store.remember_pairs([p], T0)  # unchanged: no duplicate
    known = store.known_pairs()
    assert list(known) == ["p1"]
    assert (known["p1"].mentor.name, known["p1"].mentee.timezone) == ("Zoë Ñúñez", "Asia/Shanghai")
    assert store.known_pairs(["nobody"]) == {}


def test_a_digest_and_what_it_says_are_written_together(store):
    digest = Wanted(due=T0, pair_id="", stage=Stage.COORDINATOR_DIGEST, recipient="c@example.org", revision=738000, role=Role.COORDINATOR)
    assert store.digest_state(738000) == (None, False)
    store.add_digest(digest, [{"pair_id": "p1", "summary": "x"}], "fingerprint", T0)
    assert store.digest_state(738000) == ("fingerprint", True)
    assert store.digest_content(738000) == [{"pair_id": "p1", "summary": "x"}]
    assert [r.stage for r in store.due(T0, 10)] == ["coordinator_digest"]


def event(responses=None, meet_link=None, conference="success"):
    return CalendarEvent(
        event_id="e1",
        start=T0,
        end=T0 + timedelta(hours=1),
        cancelled=False,
        responses=responses or {},
        meet_link=meet_link,
        conference=conference,
    )


def by_number(store, pair_id="p1"):
    return {r.session.number: r for r in store.sessions([pair_id])}


def test_times_given_in_any_zone_come_back_aware_utc(store):
    berlin, new_york = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")
    start = datetime(2027, 3, 1, 10, tzinfo=berlin)  # 09:00 UTC
    returned = store.book(
        [Session(pair_id="p1", number=1, start=start, end=start + timedelta(hours=1))], datetime(2027, 2, 1, 4, tzinfo=new_york)
    )
    (record,) = store.sessions()
    assert returned == [record] and returned[0].session.start.tzinfo is UTC and returned[0].changed_at.tzinfo is UTC
    assert (record.session.start, record.session.end, record.changed_at) == (
        T0,
        T0 + timedelta(hours=1),
        datetime(2027, 2, 1, 9, tzinfo=UTC),
    )
    assert {record.session.start.tzinfo, record.session.end.tzinfo, record.changed_at.tzinfo} == {UTC}
    store.apply(Changes(insert=(wanted(due=T0.astimezone(new_york), expires=start),)), T0)
    (row,) = store.messages()
    assert (row.due, row.expires, row.due.tzinfo, row.expires.tzinfo) == (T0, T0, UTC, UTC)
    store.mark_sending(row, "<m@example.org>", T0)
    store.mark_sent(row, start + timedelta(minutes=5))
    (row,) = store.messages()
    assert (row.sent_at, row.sent_at.tzinfo) == (T0 + timedelta(minutes=5), UTC)
    assert store.latest_activity().tzinfo is UTC


def test_moves_count_rebookings_and_say_whether_the_calendar_shows_them(store):
    store.book([session()], T0)
    assert [r.session for r in store.sessions_out_of_calendar()] == [session()]  # no event yet
    store.event_written("p1", 1, 0, event(), T0)
    assert store.sessions_out_of_calendar() == []
    store.move(session(start=T0 + timedelta(days=1)), T0 + timedelta(hours=1), "Ana declined", rebook=True)
    (record,) = store.sessions()
    assert (record.sequence, record.event_sequence, record.rebooks, record.in_calendar) == (1, 0, 1, False)
    assert [r.sequence for r in store.sessions_out_of_calendar()] == [1]
    store.move(session(start=T0 + timedelta(days=2)), T0 + timedelta(hours=2), "moved in the calendar", seen_in_calendar=True)
    (record,) = store.sessions()
    assert (record.sequence, record.event_sequence, record.rebooks, record.in_calendar) == (2, 2, 1, True)
    assert (record.session.start, record.previous_start, record.change_reason) == (
        T0 + timedelta(days=2),
        T0 + timedelta(days=1),
        "moved in the calendar",
    )
    assert store.sessions_out_of_calendar() == []


def test_a_held_pair_is_cancelled_with_the_calendar_already_showing_it(store):
    store.book([session(), session(number=2, start=T0 + timedelta(weeks=4)), session("p2")], T0)
    for pair_id, number in (("p1", 1), ("p1", 2), ("p2", 1)):
        store.event_written(pair_id, number, 0, event(), T0)
    store.cancel_pair("p1", T0 - timedelta(hours=1), "event deleted by hand", held=True)
    for record in by_number(store).values():
        assert (record.cancelled, record.held, record.sequence, record.event_sequence) == (True, True, 1, 1)
        assert (record.change_reason, record.changed_at) == ("event deleted by hand", T0 - timedelta(hours=1))
    assert store.sessions_out_of_calendar() == []  # nothing left to remove
    (other,) = store.sessions(["p2"])
    assert (other.cancelled, other.held, other.sequence) == (False, False, 0)
    store.cancel_pair("p1", T0 - timedelta(minutes=30), "removed")  # only booked sessions change
    assert [(r.held, r.sequence, r.change_reason) for r in by_number(store).values()] == [(True, 1, "event deleted by hand")] * 2
    store.cancel_pair("p2", T0 - timedelta(minutes=30), "removed")
    (other,) = store.sessions(["p2"])
    assert (other.cancelled, other.held, other.sequence, other.event_sequence) == (True, False, 1, 0)
    assert [r.session.pair_id for r in store.sessions_out_of_calendar()] == ["p2"]  # its event must go
    store.book([session()], T0 + timedelta(hours=3))  # the coordinator booked it again
    record = by_number(store)[1]
    assert (record.cancelled, record.held, record.sequence, record.previous_start, record.change_reason) == (False, False, 2, None, None)


def test_the_calendars_copy_of_a_session(store):
    store.book([session()], T0)
    store.event_written("p1", 1, 0, event({"a@example.org": "needsAction"}, "https://meet.example/abc", "pending"), T0)
    (record,) = store.sessions()
    assert (record.event_sequence, dict(record.responses), record.meet_link, record.conference) == (
        0,
        {"a@example.org": "needsAction"},
        "https://meet.example/abc",
        "pending",
    )
    store.event_seen("p1", 1, event({"a@example.org": "accepted", "b@example.org": "declined"}, None, "success"), T0)
    (record,) = store.sessions()
    assert (record.event_sequence, dict(record.responses), record.conference) == (
        0,
        {"a@example.org": "accepted", "b@example.org": "declined"},
        "success",
    )
    assert record.meet_link == "https://meet.example/abc"  # an event shown without a link keeps the one known
    store.move(session(start=T0 + timedelta(days=1)), T0, "declined")
    store.event_written("p1", 1, 1, None, T0)  # the event was removed
    (record,) = store.sessions()
    assert (record.event_sequence, dict(record.responses), record.in_calendar) == (
        1,
        {"a@example.org": "accepted", "b@example.org": "declined"},
        True,
    )
    store.event_seen("nobody", 1, event(), T0)  # a session never booked: nothing to change
    assert [r.session.pair_id for r in store.sessions()] == ["p1"]
    # Answers as they changed, into the pair's history; "not answered yet" is not an answer.
    answers = [(e["email"], e["answer"]) for e in store.history("p1") if e["event"] == "answer"]
    assert answers == [("a@example.org", "accepted"), ("b@example.org", "declined")]


def test_the_calendar_token(store):
    assert store.calendar_token() is None
    store.set_calendar_token("token-1")
    store.set_calendar_token("token-2")
    assert store.calendar_token() == "token-2"
    store.set_calendar_token(None)  # expired: read everything next time
    assert store.calendar_token() is None


def test_the_calendar_channel(store):
    assert store.calendar_channel() is None
    expires = datetime(2027, 3, 1, 9, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    first = Channel(id="c-1", resource_id="r-1", token="secret", address="https://mentors.example.org/calendar/notify", expires=expires)
    store.set_calendar_channel(first)
    store.set_calendar_channel(replace(first, id="c-2", token="other"))  # renewed
    kept = store.calendar_channel()
    assert kept == replace(first, id="c-2", token="other") and kept.expires.utcoffset() is not None
    store.set_calendar_channel(None)  # push given up: polling
    assert store.calendar_channel() is None


def test_a_channel_asked_of_google_is_opening_until_its_answer_is_kept(store):
    assert store.opening_channels() == []
    expires = datetime(2027, 3, 1, 9, 30, tzinfo=UTC)
    asked = [
        Channel(id=f"c-{n}", resource_id="", token=f"t-{n}", address="https://mentors.example.org/calendar/notify", expires=expires)
        for n in (1, 2)
    ]
    store.set_opening_channels(asked)
    assert store.opening_channels() == asked
    store.set_calendar_channel(replace(asked[1], resource_id="r-1"))  # Google's answer for c-2, kept
    assert store.opening_channels() == [asked[0]]  # c-1's answer was lost: perhaps open
    store.set_opening_channels([])
    assert store.opening_channels() == []


def test_a_pair_comes_back_equal_to_the_one_remembered(store):
    mentor = replace(
        person(
            "Ana Lima",
            "America/Sao_Paulo",
            "08:30-12:00, 13:00-17:30",
            frozenset({0, 2, 4}),
            frozenset({date(2027, 3, 15), date(2027, 4, 1)}),
        ),
        linkedin="https://linkedin.example/ana",
        video_link="https://meet.example/ana",
        busy_calendar="/calendars/ana.ics",
    )
    mentee = person("Bo Chen", "Asia/Singapore", "19:00-22:00", frozenset({5, 6}))
    p1 = replace(pair(mentor, mentee, "p1"), notes="Wants to move into data work", mentee_resume="https://cv.example/bo")
    p2 = pair(person("Cy"), person("Di"), "p2")
    store.remember_pairs([p1, p2], T0)
    assert store.known_pairs() == {"p1": p1, "p2": p2}
    moved = replace(
        p1, mentor=replace(mentor, availability=replace(mentor.availability, hours=mentee.availability.hours, blackout_dates=frozenset()))
    )
    store.remember_pairs([moved], T0 + timedelta(days=1))  # changed hours replace the old ones
    assert store.known_pairs(["p1"]) == {"p1": moved}
    assert store.known_pairs(["p2", "nobody"]) == {"p2": p2}


def test_due_messages_are_ordered_by_time_pair_stage_and_recipient(store):
    assert (store.next_due(), store.due(T0, 10)) == (None, [])
    scrambled = (
        wanted("welcome", pair_id="p2"),
        wanted("welcome", recipient="b@example.org"),
        wanted("session1_prep", recipient="b@example.org"),
        wanted("welcome"),
        wanted("welcome", due=T0 - timedelta(hours=1), pair_id="p9"),
        wanted("follow_up", due=T0 + timedelta(seconds=1)),
    )
    store.apply(Changes(insert=scrambled), T0)
    expected = [
        ("p9", "welcome", "a@example.org"),
        ("p1", "session1_prep", "b@example.org"),  # stage before recipient
        ("p1", "welcome", "a@example.org"),
        ("p1", "welcome", "b@example.org"),
        ("p2", "welcome", "a@example.org"),
    ]
    assert [(r.pair_id, r.stage, r.recipient) for r in store.due(T0, 10)] == expected
    assert [(r.pair_id, r.stage, r.recipient) for r in store.due(T0, 2)] == expected[:2]
    assert store.next_due() == T0 - timedelta(hours=1)
    assert sorted((r.stage, r.recipient) for r in store.messages(["p2", "p9"])) == [("welcome", "a@example.org")] * 2


def test_a_send_cut_short_is_checked_with_the_transport_before_anything_else(store):
    store.apply(Changes(insert=(wanted(),)), T0)
    (row,) = store.messages()
    store.mark_sending(row, "<m@example.org>", T0)
    store.mark_verify(row, T0 + timedelta(minutes=10), "connection reset after DATA", T0 + timedelta(minutes=1))
    (row,) = store.messages()
    assert (row.state, row.verify, row.attempts, row.message_id, row.last_error) == (
        State.PLANNED,
        True,
        1,
        "<m@example.org>",
        "connection reset after DATA",
    )
    assert store.due(T0 + timedelta(minutes=9), 10) == []
    assert store.next_due() == T0 + timedelta(minutes=10)
    assert store.due(T0 + timedelta(minutes=10), 10) == [row]
    with pytest.raises(RuntimeError, match="was not sending"):
        store.mark_sent(row, T0 + timedelta(minutes=11))
    store.mark_sent(row, T0 + timedelta(minutes=11), was=State.PLANNED)  # the transport had it
    (row,) = store.messages()
    assert (row.state, row.verify, row.attempts, row.last_error, row.sent_at) == (State.SENT, False, 1, None, T0 + timedelta(minutes=11))
    assert (store.next_due(), store.in_flight()) == (None, [])
    with pytest.raises(RuntimeError, match="was not planned"):
        store.mark_sent(row, T0 + timedelta(minutes=12), was=State.PLANNED)


def test_failed_and_uncertain_messages_wait_for_a_human_oldest_change_first(store):
    a, b, c = wanted("welcome"), wanted("session1_prep"), wanted("homework_checkin")
    store.apply(Changes(insert=(a, b, c)), T0)
    rows = {r.stage: r for r in store.messages()}
    store.mark_sending(rows["welcome"], "<a@example.org>", T0)
    store.mark_failed(rows["welcome"], "550 no such user", T0 + timedelta(hours=2))
    store.mark_sending(rows["session1_prep"], "<b@example.org>", T0)
    store.mark_verify(rows["session1_prep"], T0, "timed out", T0)
    store.mark_uncertain(rows["session1_prep"], "the transport cannot tell", T0 + timedelta(hours=1), was=State.PLANNED)
    store.mark_failed(rows["homework_checkin"], "no address", T0 + timedelta(hours=3), was=State.PLANNED)
    waiting = store.messages_needing_a_human()
    assert [(r.stage, r.state, r.last_error) for r in waiting] == [
        ("session1_prep", State.UNCERTAIN, "the transport cannot tell"),
        ("welcome", State.FAILED, "550 no such user"),
        ("homework_checkin", State.FAILED, "no address"),
    ]
    assert waiting[0].verify is False
    assert (store.due(T0 + timedelta(days=1), 10), store.next_due(), store.in_flight()) == ([], None, [])
    with pytest.raises(RuntimeError, match="was not sending"):
        store.mark_failed(rows["welcome"], "again", T0)
    with pytest.raises(RuntimeError, match="was not planned"):
        store.mark_uncertain(rows["session1_prep"], "again", T0, was=State.PLANNED)


def test_a_message_whose_moment_passed_is_skipped_once(store):
    store.apply(Changes(insert=(wanted(), wanted("session1_prep"))), T0)
    rows = {r.stage: r for r in store.messages()}
    store.mark_skipped(rows["welcome"], "expired before it could be sent", T0 + timedelta(days=1))
    (skipped,) = [r for r in store.messages() if r.stage == "welcome"]
    assert (skipped.state, skipped.last_error, skipped.attempts) == (State.SKIPPED, "expired before it could be sent", 0)
    assert [r.stage for r in store.due(T0 + timedelta(days=1), 10)] == ["session1_prep"]
    with pytest.raises(RuntimeError, match="was not planned"):
        store.mark_skipped(rows["welcome"], "again", T0)
    store.mark_sending(rows["session1_prep"], "<p@example.org>", T0)
    with pytest.raises(RuntimeError, match="was not planned"):
        store.mark_skipped(rows["session1_prep"], "too late", T0)
    assert [r.stage for r in store.in_flight()] == ["session1_prep"]


def test_a_failed_apply_changes_nothing(store):
    a, b = wanted("welcome"), wanted("session1_prep")
    store.apply(Changes(insert=(a,)), T0)
    before = store.messages()
    with pytest.raises((IntegrityError, ValueError)):
        store.apply(
            Changes(insert=(b, a), retime=(a._replace(due=T0 + timedelta(days=1)),)), T0 + timedelta(hours=1)
        )  # a is stored already
    assert store.messages() == before
    assert store.latest_activity() == T0


def test_alerts_are_set_replaced_cleared_and_sorted(store):
    assert store.alerts() == []
    store.set_alert("p2", 0, "Bo's calendar cannot be read")
    store.set_alert("p1", 2, "declined twice")
    store.set_alert("p1", 0, "no common hours")
    store.set_alert("p1", 2, "declined three times")  # replaces
    store.set_alert("p3", 1, None)  # clearing what is not there
    assert store.alerts() == [
        Alert(pair_id="p1", session=0, text="no common hours"),
        Alert(pair_id="p1", session=2, text="declined three times"),
        Alert(pair_id="p2", session=0, text="Bo's calendar cannot be read"),
    ]
    store.set_alert("p1", 0, None)
    assert [(a.pair_id, a.session) for a in store.alerts()] == [("p1", 2), ("p2", 0)]


def test_the_daemons_last_tick(store):
    assert store.last_tick() is None
    store.record_tick(T0)
    store.record_tick(T0 + timedelta(minutes=5))
    assert store.last_tick() == T0 + timedelta(minutes=5)
    assert store.last_tick().tzinfo is not None
    berlin = (T0 + timedelta(minutes=10)).astimezone(ZoneInfo("Europe/Berlin"))
    store.record_tick(berlin)
    assert store.last_tick() == berlin and store.last_tick().utcoffset() == timedelta(0)


def test_latest_activity_is_the_latest_effect_recorded(store):
    assert store.latest_activity() is None
    store.book([session()], T0)
    assert store.latest_activity() == T0
    store.apply(Changes(insert=(wanted(),)), T0 + timedelta(hours=1))
    assert store.latest_activity() == T0 + timedelta(hours=1)
    (row,) = store.messages()
    store.mark_sending(row, "<m@example.org>", T0 + timedelta(minutes=30))  # an earlier time does not go back
    assert store.latest_activity() == T0 + timedelta(hours=1)
    store.mark_sent(row, T0 + timedelta(hours=2))
    store.cancel_pair("p1", T0 + timedelta(hours=3), "removed")
    assert store.latest_activity() == T0 + timedelta(hours=3)


def test_each_day_has_its_own_digest(store):
    def digest(day):
        return Wanted(due=T0, pair_id="", stage=Stage.COORDINATOR_DIGEST, recipient="c@example.org", revision=day, role=Role.COORDINATOR)

    store.add_digest(digest(738000), [{"pair_id": "p1", "summary": "x"}], "fp-1", T0)
    store.add_digest(digest(738001), [{"pair_id": "p2", "summary": "y"}, {"pair_id": "p3", "summary": "z"}], "fp-2", T0 + timedelta(days=1))
    assert (store.digest_state(738000), store.digest_state(738001), store.digest_state(738002)) == (
        ("fp-2", True),
        ("fp-2", True),
        ("fp-2", False),
    )
    assert store.digest_content(738001) == [{"pair_id": "p2", "summary": "y"}, {"pair_id": "p3", "summary": "z"}]
    assert store.digest_content(738002) == []
    with pytest.raises((IntegrityError, ValueError)):  # its message exists: nothing is written
        store.add_digest(digest(738001), [], "fp-3", T0 + timedelta(days=1))
    assert (store.digest_state(738001), store.digest_content(738001)[0]) == (("fp-2", True), {"pair_id": "p2", "summary": "y"})
    assert sorted((r.revision, r.state) for r in store.messages([""])) == [(738000, State.PLANNED), (738001, State.PLANNED)]


def test_the_next_session_to_start(store):
    store.book([session(), session(number=2, start=T0 + timedelta(days=30)), session(pair_id="p2", start=T0 + timedelta(days=2))], T0)
    assert store.next_session_start(T0 - timedelta(days=1)) == T0
    assert store.next_session_start(T0) == T0 + timedelta(days=2)  # one that has started is not next
    store.cancel_pair("p2", T0, "left")
    assert store.next_session_start(T0) == T0 + timedelta(days=30)
    assert store.next_session_start(T0 + timedelta(days=30)) is None


def test_a_pairs_history_is_its_own_events_oldest_first(store):
    store.book([session(), session(pair_id="p2")], T0)
    store.move(session(start=T0 + timedelta(days=1)), T0 + timedelta(minutes=5), "the mentee asked for another time")
    store.cancel_pair("p1", T0 + timedelta(minutes=10), "withdrawn")
    history = store.history("p1")
    assert [e["event"] for e in history] == ["session_booked", "session_moved", "sessions_cancelled"]
    assert history[1]["reason"] == "the mentee asked for another time" and history[1]["at"] == T0 + timedelta(minutes=5)
    assert [e["event"] for e in store.history("p2")] == ["session_booked"]


# What only a database has


def test_every_effect_is_in_the_audit_log(sql_store):
    """SqlStore's own audit table (not part of the port)."""
    sql_store.book([session()], T0)
    sql_store.apply(Changes(insert=(wanted(),)), T0)
    (row,) = sql_store.messages()
    sql_store.mark_sending(row, "<m@example.org>", T0)
    sql_store.mark_sent(row, T0)
    events = [e["event"] for e in sql_store.audit_log()]
    assert events == ["session_booked", "messages_planned", "message_sending", "message_sent"]


def test_migrations_run_once_and_refuse_a_newer_schema(sql_store):
    assert sql_store.migrate() == len(MIGRATIONS)  # again: nothing to do
    with sql_store.engine.begin() as connection:
        connection.execute(text("UPDATE meta SET value = '999' WHERE key = 'schema_version'"))
    with pytest.raises(RuntimeError, match="newer version"):
        sql_store.migrate()


@pytest.mark.postgres
def test_only_one_daemon_works_on_a_postgresql_database():
    # (SQLite holds a lock file beside the state instead: see test_daemon.)
    with postgres_database() as url:
        first, second = open_store(url), open_store(url)
        try:
            assert first.try_lock()
            assert not second.try_lock()
            first.close()
            assert second.try_lock()
        finally:
            first.close()
            second.close()


def test_a_schema_1_database_is_migrated_in_place(tmp_path):
    """A state written before calendar events existed keeps its rows and gains the columns."""
    import sqlite3

    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as old:
        old.executescript(
            """
            CREATE TABLE meta (key VARCHAR(64) PRIMARY KEY, value TEXT NOT NULL);
            INSERT INTO meta VALUES ('schema_version', '1');
            CREATE TABLE sessions (pair_id VARCHAR(64), number INTEGER, start DATETIME NOT NULL, "end" DATETIME NOT NULL,
                status VARCHAR(16) NOT NULL, sequence INTEGER NOT NULL, previous_start DATETIME, change_reason TEXT,
                changed_at DATETIME NOT NULL, PRIMARY KEY (pair_id, number));
            INSERT INTO sessions VALUES ('p1', 1, '2027-03-01 09:00:00.000000', '2027-03-01 10:00:00.000000', 'booked', 0, NULL, NULL, '2027-02-01 00:00:00.000000');
            CREATE TABLE messages (pair_id VARCHAR(64), stage VARCHAR(64), recipient VARCHAR(320), revision INTEGER,
                role VARCHAR(16) NOT NULL, due DATETIME NOT NULL, expires DATETIME, wake_at DATETIME NOT NULL,
                state VARCHAR(16) NOT NULL, message_id VARCHAR(255), attempts INTEGER NOT NULL, last_error TEXT,
                sent_at DATETIME, updated_at DATETIME NOT NULL, PRIMARY KEY (pair_id, stage, recipient, revision));
            INSERT INTO messages VALUES ('p1', 'welcome', 'a@example.org', 0, 'mentor', '2027-03-01 09:00:00.000000', NULL,
                '2027-03-01 09:00:00.000000', 'planned', NULL, 0, NULL, NULL, '2027-02-01 00:00:00.000000');
            """
        )
    store = open_store(path)
    try:
        (record,) = store.sessions()
        assert record.session == session()
        assert (record.event_sequence, record.responses, record.rebooks) == (-1, {}, 0)
        (message,) = store.messages()
        assert (message.stage, message.state, message.verify) == ("welcome", State.PLANNED, False)
    finally:
        store.close()


def test_a_row_waiting_to_be_checked_is_neither_moved_nor_cancelled_by_apply(store):
    store.apply(Changes(insert=(wanted("welcome"),)), T0)
    (row,) = store.messages()
    store.mark_sending(row, "<w@example.org>", T0)
    store.mark_verify(row, T0 + timedelta(minutes=10), "dropped after DATA", T0)
    later = wanted("welcome", due=T0 + timedelta(days=1))
    store.apply(Changes(retime=(later,), cancel=(later.key,)), T0 + timedelta(minutes=1))
    (row,) = store.messages()
    assert (row.state, row.verify, row.due) == (State.PLANNED, True, T0)
    assert store.next_due() == T0 + timedelta(minutes=10)  # still waiting for its check


def test_a_failed_check_no_longer_counts_as_waiting(store):
    store.apply(Changes(insert=(wanted("welcome"),)), T0)
    (row,) = store.messages()
    store.mark_sending(row, "<w@example.org>", T0)
    store.mark_verify(row, T0 + timedelta(minutes=10), "dropped", T0)
    (row,) = store.messages()
    store.mark_failed(row, "template: broken", T0, was=State.PLANNED)
    (row,) = store.messages()
    assert (row.state, row.verify) == (State.FAILED, False)


def test_alerts_about_pairs_with_the_longest_ids(store):
    long_id = "p" * 63
    store.set_alert(long_id, 2, "Session 2 needs a time.")
    assert [(a.pair_id, a.session) for a in store.alerts()] == [(long_id, 2)]


def test_a_state_says_what_it_holds(store):
    assert store.purpose() is None
    store.set_purpose(Purpose.REHEARSAL)
    assert store.purpose() is Purpose.REHEARSAL


def test_what_has_started_is_never_cancelled(store):
    store.book([session(number=1), session(number=2, start=T0 + timedelta(weeks=4))], T0 - timedelta(days=7))
    store.cancel_pair("p1", T0 + timedelta(minutes=30), "the pair was removed")  # during session 1
    first, second = by_number(store)[1], by_number(store)[2]
    assert (first.cancelled, first.sequence) == (False, 0)
    assert (second.cancelled, second.sequence) == (True, 1)


def test_a_withdrawn_pair_stays_out_until_released(store):
    store.remember_pairs([pair(person("Maya"), person("Zoe"), "p1"), pair(person("Ann"), person("Ben"), "p2")], T0)
    store.book([session(number=1), session(number=2, start=T0 + timedelta(weeks=4))], T0 - timedelta(days=1))
    store.cancel_pair("p1", T0 - timedelta(hours=1), "a session was deleted by hand", held=True)
    store.withdraw("p2", T0)
    assert store.withdrawn() == {"p2"}
    assert all(r.held for r in store.sessions())
    store.release("p1", T0)
    store.release("p2", T0)
    assert store.withdrawn() == set()
    assert all(r.cancelled and not r.held for r in store.sessions())


def test_requests_wait_in_order_until_applied(store):
    first = store.add_request(RequestKind.WITHDRAW, {"pair": "p1"}, T0)
    second = store.add_request(RequestKind.RESCHEDULE, {"pair": "p2", "session": "1", "at": "auto"}, T0 + timedelta(seconds=1))
    pending = store.pending_requests()
    assert [(r.id, r.kind, dict(r.args)) for r in pending] == [
        (first, RequestKind.WITHDRAW, {"pair": "p1"}),
        (second, RequestKind.RESCHEDULE, {"pair": "p2", "session": "1", "at": "auto"}),
    ]
    assert pending[0].created_at == T0 and pending[0].done_at is None
    store.finish_request(first, "p1 withdrawn", T0 + timedelta(minutes=1))
    assert [r.id for r in store.pending_requests()] == [second]


def test_a_held_change_and_its_approval(store):
    assert store.held_change() is None and store.approved_change() == frozenset()
    held = HeldChange(fingerprint="abc", summary=("17 pairs withdrawn", "34 sessions cancelled"), cancelled=("p1", "p2.2"))
    store.hold_change(held)
    assert store.held_change() == held
    store.approve_change(["p2.2", "p1"])
    assert store.approved_change() == {"p1", "p2.2"}
    store.approve_change(())
    assert store.approved_change() == frozenset()
    store.hold_change(None)
    assert store.held_change() is None


def test_answers_and_declined_proposals_by_email(store):
    store.book([session(), session(number=2, start=T0 + timedelta(weeks=4))], T0 - timedelta(days=1))
    store.set_response("p1", 1, "a@example.org", "accepted", T0)
    store.set_response("p1", 1, "b@example.org", "tentative", T0)
    store.set_response("p1", 1, "a@example.org", "declined", T0 + timedelta(minutes=1))
    store.record_counter("p1", 2, "b@example.org", "7:101", T0)
    store.record_counter("p1", 2, "b@example.org", "7:101", T0)  # the same message again: counted once
    store.record_counter("p1", 2, "b@example.org", "7:102", T0 + timedelta(hours=1))
    first, second = by_number(store)[1], by_number(store)[2]
    assert dict(first.responses) == {"a@example.org": "declined", "b@example.org": "tentative"}
    assert (second.counters, second.countered_by, second.countered_at) == (2, "b@example.org", T0 + timedelta(hours=1))
    assert (first.counters, first.countered_by) == (0, None)
    answers = [(e["at"], e["email"], e["answer"]) for e in store.history("p1") if e["event"] == "answer"]
    assert answers == [
        (T0, "a@example.org", "accepted"),
        (T0, "b@example.org", "tentative"),
        (T0 + timedelta(minutes=1), "a@example.org", "declined"),
    ]


def test_a_send_cut_short_that_never_left_is_planned_again(store):
    store.apply(Changes(insert=(wanted("welcome"),)), T0)
    (row,) = store.messages()
    store.mark_sending(row, "<w@example.org>", T0)
    store.mark_verify(row, T0 + timedelta(minutes=10), "dropped", T0)
    (row,) = store.messages()
    store.mark_unsent(row, T0 + timedelta(minutes=10))
    (row,) = store.messages()
    assert (row.state, row.verify, row.attempts) == (State.PLANNED, False, 1)
    store.apply(Changes(cancel=(row.key,)), T0 + timedelta(minutes=11))  # free to cancel now
    assert store.messages()[0].state is State.CANCELLED


def test_a_sent_or_failed_email_is_planned_again_when_the_coordinator_asks(store):
    store.apply(Changes(insert=(wanted("welcome"), wanted("session1_prep"))), T0)
    sent, failed = store.messages()
    for row in (sent, failed):
        store.mark_sending(row, "<m@example.org>", T0)
    store.mark_sent(sent, T0)
    store.mark_failed(failed, "550 no such user", T0)
    for row in store.messages():
        store.mark_resend(row, T0 + timedelta(days=1))
    assert {(r.state, r.attempts, r.last_error, r.sent_at) for r in store.messages()} == {(State.PLANNED, 0, None, None)}
    assert len(store.due(T0 + timedelta(days=1), 10)) == 2  # due at once, whatever their first time was


def test_a_time_a_person_chose_is_marked_agreed_until_booked_again(store):
    store.book([session()], T0 - timedelta(days=1))
    store.move(session(start=T0 + timedelta(days=1)), T0, "the coordinator moved it", agreed=True)
    assert by_number(store)[1].agreed
    store.move(session(start=T0 + timedelta(days=2)), T0, "a vacation")
    assert not by_number(store)[1].agreed
    store.move(session(start=T0 + timedelta(days=3)), T0, "moved in the calendar", seen_in_calendar=True)
    assert by_number(store)[1].agreed
    store.cancel_pair("p1", T0, "removed")
    store.book([session(start=T0 + timedelta(days=4))], T0)
    assert not by_number(store)[1].agreed


def test_the_web_secret_is_made_once_and_kept(store):
    assert store.web_secret(lambda: "first") == "first"
    assert store.web_secret(lambda: "second") == "first"  # already kept: `make` is not used again


def test_every_request_is_listed_with_its_outcome(store):
    first = store.add_request(RequestKind.WITHDRAW, {"pair": "p1", "by": "a@example.org"}, T0)
    second = store.add_request(RequestKind.RELEASE, {"pair": "p2"}, T0 + timedelta(seconds=1))
    store.finish_request(first, "p1 withdrawn", T0 + timedelta(minutes=1))
    listed = store.requests()
    assert [(r.id, r.outcome, dict(r.args)) for r in listed] == [
        (first, "p1 withdrawn", {"pair": "p1", "by": "a@example.org"}),
        (second, None, {"pair": "p2"}),
    ]
    assert listed[0].done_at == T0 + timedelta(minutes=1) and listed[1].done_at is None


def test_emails_counted_by_pair_and_state_and_by_day(store):
    late = T0 + timedelta(days=2, hours=23)  # 23:00 UTC: counted on its UTC day
    store.apply(
        Changes(
            insert=(
                wanted("welcome"),
                wanted("session1_prep", due=late),
                wanted("welcome", pair_id="p2"),
                wanted("session1_prep", pair_id="p2", due=late),
            )
        ),
        T0 - timedelta(days=1),
    )
    by_key = {(r.pair_id, r.stage): r for r in store.messages()}
    store.mark_sending(by_key["p1", Stage.WELCOME], "<w1@example.org>", T0 + timedelta(days=1))
    store.mark_sent(by_key["p1", Stage.WELCOME], T0 + timedelta(days=1))  # sent a day late: counted on the day it went
    store.apply(Changes(cancel=(by_key["p2", Stage.SESSION1_PREP].key,)), T0)
    assert store.message_counts() == {"p1": {State.SENT: 1, State.PLANNED: 1}, "p2": {State.PLANNED: 1, State.CANCELLED: 1}}
    assert store.emails_by_day() == {T0.date(): 1, T0.date() + timedelta(days=1): 1, late.date(): 1}


def test_goals_are_kept_per_pair_and_replaced(store):
    from service.domain.goals import Goals

    first = Goals(
        pair_id="p1", goals="Speak at a meetup.\nShip the parser.", homework="An outline", written_by="b@example.org", written_at=T0
    )
    store.set_goals(first)
    store.set_goals(replace(first, pair_id="p2", goals="Ünïcode ✓"))
    assert store.goals(["p1", "p2", "p3"]) == {"p1": first, "p2": replace(first, pair_id="p2", goals="Ünïcode ✓")}
    later = replace(first, homework="", written_by="a@example.org", written_at=T0 + timedelta(days=1))
    store.set_goals(later)
    assert store.goals(["p1"]) == {"p1": later}
    assert store.goals([]) == {}


def test_the_coordinators_password_hash(store):
    assert store.password_hash() is None
    store.set_password_hash("scrypt$1")
    store.set_password_hash("scrypt$2")
    assert store.password_hash() == "scrypt$2"


# Meet rooms and attendance


def test_attendance_is_kept_for_the_session_as_it_was_read(store):
    from service.domain.attendance import Attendance, Reading

    store.book([session(), session(number=2, start=T0 + timedelta(days=21))], T0 - timedelta(days=7))
    store.set_meet_space("p1", 1, "spaces/jQCFfuBOdN5z")
    read_at = T0 + timedelta(hours=2)
    store.record_attendance("p1", 1, 0, None, read_at)  # asked, nothing settled yet
    (first,) = [r for r in store.sessions() if r.session.number == 1]
    assert (first.meet_space, first.attendance, first.attendance_read_at, first.attended) == ("spaces/jQCFfuBOdN5z", None, read_at, None)
    held = Reading(attendance=Attendance.MISSED, sequence=0, at=read_at.astimezone(ZoneInfo("Asia/Kolkata")), people=0)
    store.record_attendance("p1", 1, 0, held, read_at)
    store.record_attendance("p1", 2, 5, held, read_at)  # for a sequence the session no longer has: nothing
    first, second = sorted(store.sessions(), key=lambda r: r.session.number)
    assert first.attendance == replace(held, at=read_at) and first.attended is Attendance.MISSED
    assert first.attendance.at.tzinfo is not None and first.attendance.at.utcoffset() == timedelta(0)
    assert (second.attendance, second.attendance_read_at) == (None, None)
    # Moved to a new time, the session has not happened yet: the old reading no longer applies.
    store.move(session(start=T0 + timedelta(days=3)), read_at, "rebooked after it was missed")
    (first,) = [r for r in store.sessions() if r.session.number == 1]
    assert first.attendance == replace(held, at=read_at) and first.attended is None
    assert first.meet_space == "spaces/jQCFfuBOdN5z"  # the event, and so its room, stays


def test_the_sends_of_the_last_day(store):
    store.apply(Changes(insert=(wanted(recipient="a@example.org"), wanted(recipient="b@example.org"), wanted(stage="follow_up"))), T0)
    a, b = sorted((r for r in store.messages() if r.stage is Stage.WELCOME), key=lambda r: r.recipient)
    for row, at in ((a, T0), (b, T0 + timedelta(hours=5))):
        store.mark_sending(row, f"<{row.recipient}>", at)
        store.mark_sent(row, at)
    assert sorted(store.sent_since(T0)) == [(T0, "a@example.org"), (T0 + timedelta(hours=5), "b@example.org")]
    assert store.sent_since(T0 + timedelta(hours=1)) == [(T0 + timedelta(hours=5), "b@example.org")]
