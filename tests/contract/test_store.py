"""One contract, every store backend: SQLite on disk and the real PostgreSQL server."""

from __future__ import annotations

import os
import uuid
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from sqlalchemy import text

from service.adapters.store import open_store
from service.adapters.store.schema import MIGRATIONS
from service.domain.model import Role, Session
from service.domain.outbox import Changes, State, Wanted
from service.domain.stages import Stage
from tests.builders import pair, person

POSTGRES = os.environ.get("MENTORSHIP_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
T0 = datetime(2027, 3, 1, 9, tzinfo=UTC)


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


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    with ExitStack() as stack:
        url = tmp_path / "state.sqlite" if request.param == "sqlite" else stack.enter_context(postgres_database())
        s = open_store(url)
        yield s
        s.close()


def session(pair_id="p1", number=1, start=T0):
    return Session(pair_id=pair_id, number=number, start=start, end=start + timedelta(hours=1))


def wanted(stage="welcome", due=T0, revision=0, pair_id="p1", recipient="a@example.org", expires=None):
    return Wanted(due=due, pair_id=pair_id, stage=Stage(stage), recipient=recipient, revision=revision, role=Role.MENTOR, expires=expires)


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
    store.book([session(start=T0 + timedelta(days=3))], T0 + timedelta(hours=3))  # the pair came back
    (record,) = store.sessions()
    assert not record.cancelled and record.sequence == 3


def test_apply_inserts_retimes_cancels_and_revives_only_planned_rows(store):
    a, b, c = wanted("welcome"), wanted("session1_prep"), wanted("homework_checkin")
    store.apply(Changes(insert=(a, b, c)), T0)
    row_c = next(r for r in store.messages() if r.stage == "homework_checkin")
    store.mark_sending(row_c, "<c@example.org>", T0)
    later = replace(a, due=T0 + timedelta(days=1))
    store.apply(Changes(retime=(later,), cancel=(b.key, c.key)), T0)
    states = {r.stage: (r.state, r.due) for r in store.messages()}
    assert states["welcome"] == (State.PLANNED, T0 + timedelta(days=1))
    assert states["session1_prep"][0] is State.CANCELLED
    assert states["homework_checkin"][0] is State.SENDING  # handed over: never touched
    store.apply(Changes(revive=(b,)), T0)
    assert {r.stage: r.state for r in store.messages()}["session1_prep"] is State.PLANNED


def test_due_next_due_and_retry_times(store):
    store.apply(Changes(insert=(wanted("welcome", T0), wanted("session1_prep", T0 + timedelta(hours=1)), wanted("follow_up", T0 + timedelta(days=1)))), T0)
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


def test_every_effect_is_in_the_audit_log(store):
    store.book([session()], T0)
    store.apply(Changes(insert=(wanted(),)), T0)
    (row,) = store.messages()
    store.mark_sending(row, "<m@example.org>", T0)
    store.mark_sent(row, T0)
    events = [e["event"] for e in store.audit_log()]
    assert events == ["session_booked", "messages_planned", "message_sending", "message_sent"]


def test_migrations_run_once_and_refuse_a_newer_schema(store):
    assert store.migrate() == len(MIGRATIONS)  # again: nothing to do
    with store.engine.begin() as connection:
        connection.execute(text("UPDATE meta SET value = '999' WHERE key = 'schema_version'"))
    with pytest.raises(RuntimeError, match="newer version"):
        store.migrate()


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
