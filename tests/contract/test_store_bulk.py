"""Large writes, as a first tick makes them (thousands of sessions, pairs and messages in
one call), read back exactly as written on every store; on PostgreSQL they go through COPY."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from zoneinfo import ZoneInfo

from service.domain.model import Role
from service.domain.outbox import Changes, State, Wanted
from service.domain.stages import Stage
from tests.builders import pair, person
from tests.contract.test_store import T0, session, store  # noqa: F401  (the fixture over every store)

PAIRS = 1300  # above the lengths at which the SQL store splits IN lists and switches to COPY
BERLIN = ZoneInfo("Europe/Berlin")


def test_thousands_of_sessions_pairs_and_messages_read_back_as_written(store):  # noqa: F811
    people = [pair(person(f"Mentor {i}"), person(f"Mentee {i}", "Asia/Kolkata"), f"p{i}") for i in range(PAIRS)]
    store.remember_pairs(people, T0)
    booked = [
        session(f"p{i}", number, (T0 + timedelta(days=number * 7, minutes=i)).astimezone(BERLIN))  # stored as UTC
        for i in range(PAIRS)
        for number in (1, 2)
    ]
    store.book(booked, T0)
    records = {(r.session.pair_id, r.session.number): r for r in store.sessions()}
    assert {key: (r.session, r.sequence, r.cancelled) for key, r in records.items()} == {
        (s.pair_id, s.number): (s, 0, False) for s in booked
    }
    assert all(r.session.start.tzinfo is not None and r.session.start.utcoffset() == timedelta(0) for r in records.values())

    wanted = [
        Wanted(
            due=T0 + timedelta(minutes=i, seconds=30 * (i % 2)),
            pair_id=f"p{i % PAIRS}",
            stage=Stage.WELCOME if i < PAIRS else Stage.SESSION1_PREP,
            recipient=f"mentee{i % PAIRS}@example.org",
            revision=0,
            role=Role.MENTEE,
            expires=None if i % 3 else (T0 + timedelta(days=1)).astimezone(BERLIN),
        )
        for i in range(2 * PAIRS)
    ]
    store.apply(Changes(insert=tuple(wanted)), T0)
    rows = {r.key: r for r in store.messages()}
    assert {key: (r.due, r.expires, r.state, r.attempts, r.updated_at) for key, r in rows.items()} == {
        w.key: (w.due, w.expires, State.PLANNED, 0, T0) for w in wanted
    }

    # Rows written in bulk and rows changed one at a time compare as times, not as text.
    first = store.due(T0, 1)[0]
    store.mark_sending(first, "<x@example.org>", T0)
    store.mark_retry(replace(first, attempts=1), T0 + timedelta(minutes=2, seconds=15), "busy", T0)
    order = [(r.pair_id, r.stage) for r in store.due(T0 + timedelta(minutes=3), 10)]
    assert order == [("p1", Stage.WELCOME), ("p2", Stage.WELCOME), ("p0", Stage.WELCOME)]  # p3 at 3:30
    assert store.next_due() == T0 + timedelta(minutes=1, seconds=30)

    # Booked again after a cancellation: the same rows, a new sequence; changed people rewritten.
    store.cancel_pair("p7", T0 + timedelta(hours=1), "left")
    store.book([session("p7", 1, T0 + timedelta(days=30))], T0 + timedelta(hours=2))
    again = {r.session.number: r for r in store.sessions(["p7"])}
    assert (again[1].session.start, again[1].sequence, again[1].cancelled) == (T0 + timedelta(days=30), 2, False)
    assert again[2].cancelled
    renamed = replace(people[7], mentor=replace(people[7].mentor, name="Mentor Seven"))
    store.remember_pairs([*people[:7], renamed, *people[8:]], T0 + timedelta(hours=3))
    assert store.known_pairs(["p7", "p8"]) == {"p7": renamed, "p8": people[8]}


def test_times_written_in_bulk_have_the_form_sqlalchemy_gives_them(tmp_path):
    """Rows written by _insert_rows are compared in SQL with times SQLAlchemy binds: on
    SQLite both must be the same text."""
    from datetime import UTC, datetime

    from sqlalchemy import DateTime

    from service.adapters.store import open_store
    from service.adapters.store.sql import _stored_time

    sqlite = open_store(tmp_path / "state.sqlite")
    try:
        with sqlite.engine.begin() as connection:
            ours = _stored_time(connection)
            theirs = DateTime().dialect_impl(connection.dialect).bind_processor(connection.dialect)
            for moment in (datetime(2027, 3, 1, 9, tzinfo=UTC), datetime(2027, 3, 1, 9, 30, 5, 123, tzinfo=ZoneInfo("Asia/Kolkata"))):
                assert ours(moment) == theirs(moment.astimezone(UTC).replace(tzinfo=None))
            assert ours(None) is None
    finally:
        sqlite.close()
