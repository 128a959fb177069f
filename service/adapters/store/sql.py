"""The store on SQLAlchemy Core. Every public method is one transaction."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, time
from pathlib import Path

from sqlalchemy import (
    ColumnElement,
    Connection,
    DateTime,
    Engine,
    Table,
    and_,
    bindparam,
    create_engine,
    event,
    false,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from ...domain.attendance import Attendance, Reading
from ...domain.calendar import NO_ANSWER, CalendarEvent
from ...domain.goals import Goals
from ...domain.model import Pair, Person, Role, Session, TimeRange, WorkingPattern
from ...domain.outbox import Changes, MessageKey, MessageRow, SessionRecord, State, Wanted
from ...domain.ports import Alert, HeldChange, Purpose, Store
from ...domain.push import Channel
from ...domain.requests import Request, RequestKind
from ...domain.stages import Stage
from . import schema
from .leases import Fence, cohort_engine
from .schema import audit, foreseen, messages, pairs, requests, sessions


class StateError(Exception):
    """The state cannot be opened: a plain sentence, without the database's own words."""


def open_store(url_or_path: str | Path, *, cohort: str | None = None) -> SqlStore:
    """A store at a SQLite path (created with its folder) or a PostgreSQL URL; StateError
    when it is neither, or holds something else. With `cohort`, on PostgreSQL: that
    cohort's schema of a database that holds several."""
    text = str(url_or_path)
    if text.startswith("sqlite:///"):
        text = text.removeprefix("sqlite:///")
    if "://" in text:
        if not text.startswith(("postgresql://", "postgresql+psycopg://")):
            raise StateError("the state is a SQLite file path or a postgresql+psycopg:// URL")
        engine = create_engine(text, future=True) if cohort is None else cohort_engine(text, cohort)
    else:
        path = Path(text)
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = _sqlite_engine(path)
    store = SqlStore(engine)
    try:
        store.migrate()
    except SQLAlchemyError as error:
        engine.dispose()
        cause = getattr(error, "orig", None) or error  # the driver's own error, named but not quoted
        reason = "it is not a database" if "not a database" in str(error) else f"the database answered {type(cause).__name__}"
        raise StateError(f"the state cannot be opened: {reason}") from None
    return store


def _sqlite_engine(path: Path) -> Engine:
    engine = create_engine(f"sqlite:///{path}", future=True)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection, _record) -> None:
        # Let SQLAlchemy's "begin" below issue BEGIN itself, instead of pysqlite.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
        cursor.execute("PRAGMA synchronous=FULL")  # a commit survives power loss too
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection) -> None:
        # Take the write lock up front: no deadlock-prone upgrade from a read lock.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


ADVISORY_LOCK = 0x6D656E746F72  # any fixed number: the daemon's lock in this database


class SqlStore(Store):
    def __init__(self, engine: Engine):
        self.engine = engine
        self._lock: Connection | None = None
        self.fence: Fence | None = None  # a replica's lease on this cohort, checked with every effect
        # The pairs this process has remembered, as the objects it was given: the same
        # object again (a re-plan with the configuration unchanged) is not written again.
        self._remembered: dict[str, Pair] = {}

    def migrate(self) -> int:
        with self.engine.begin() as connection:
            return schema.migrate(connection)

    def close(self) -> None:
        if self._lock is not None:
            try:
                self._lock.exec_driver_sql(f"SELECT pg_advisory_unlock({ADVISORY_LOCK})")
                self._lock.close()
            except SQLAlchemyError:  # the connection is gone, and its lock with it
                pass
            self._lock = None
        self.engine.dispose()

    def lock_held(self) -> bool:
        if self.fence is not None:
            return self.fence.live()
        if self._lock is None:
            return True  # SQLite: the lock is a file the process holds
        try:
            return bool(self._lock.exec_driver_sql("SELECT 1").scalar())
        except SQLAlchemyError:  # the session dropped: its advisory lock went with it
            return False

    def try_lock(self) -> bool:
        """PostgreSQL: hold a session advisory lock for the life of this store, so only
        one daemon works on a database at a time."""
        if self._lock is None:
            connection = self.engine.connect()
            if not connection.exec_driver_sql(f"SELECT pg_try_advisory_lock({ADVISORY_LOCK})").scalar():
                connection.close()
                return False
            self._lock = connection
        return True

    # Sessions

    def sessions(self, pair_ids: Iterable[str] | None = None) -> list[SessionRecord]:
        query = select(sessions)
        if pair_ids is not None:
            query = query.where(sessions.c.pair_id.in_(list(pair_ids)))
        with self.engine.begin() as connection:
            rows = connection.execute(query).all()
        return [_session_record(r) for r in rows]

    def book(self, booked: Sequence[Session], now: datetime) -> list[SessionRecord]:
        """Record sessions as booked; a cancelled session booked again gets a new sequence."""
        with self.engine.begin() as connection:
            stored = _stored_time(connection)
            at = stored(now)
            known: set[tuple[str, int]] = set()
            pair_ids = sorted({session.pair_id for session in booked})
            for start in range(0, len(pair_ids), IN_LIST):
                query = select(sessions.c.pair_id, sessions.c.number).where(sessions.c.pair_id.in_(pair_ids[start : start + IN_LIST]))
                known.update((pair_id, number) for pair_id, number in connection.execute(query))
            fresh = [s for s in booked if (s.pair_id, s.number) not in known]
            again = [s for s in booked if (s.pair_id, s.number) in known]
            _insert_rows(
                connection,
                sessions,
                ("pair_id", "number", "start", "end", "status", "sequence", "changed_at"),
                [(s.pair_id, s.number, stored(s.start), stored(s.end), "booked", 0, at) for s in fresh],
            )
            if again:
                connection.execute(
                    update(sessions)
                    .where(sessions.c.pair_id == bindparam("k_pair"), sessions.c.number == bindparam("k_number"))
                    .values(
                        sequence=sessions.c.sequence + 1,
                        previous_start=None,
                        change_reason=None,
                        agreed=False,
                        start=bindparam("v_start"),
                        end=bindparam("v_end"),
                        status="booked",
                        changed_at=now,
                    ),
                    [{"k_pair": s.pair_id, "k_number": s.number, "v_start": s.start, "v_end": s.end} for s in again],
                )
            _insert_rows(
                connection,
                audit,
                ("at", "event", "pair_id", "detail"),
                [(at, "session_booked", s.pair_id, json.dumps({"number": s.number, "start": s.start.isoformat()})) for s in booked],
            )
            # A new session's record is its defaults: written as read, without reading it (a large first plan books thousands).
            changed = now.astimezone(UTC)
            records = [SessionRecord(session=_in_utc(s), cancelled=False, sequence=0, changed_at=changed) for s in fresh]
            if again:
                keys = {(s.pair_id, s.number) for s in again}
                query = select(sessions).where(sessions.c.pair_id.in_(sorted({pair_id for pair_id, _ in keys})))
                records += [_session_record(r) for r in connection.execute(query) if (r.pair_id, r.number) in keys]
            return records

    def move(
        self, session: Session, now: datetime, reason: str, *, seen_in_calendar: bool = False, rebook: bool = False, agreed: bool = False
    ) -> None:
        with self.engine.begin() as connection:
            key = (sessions.c.pair_id == session.pair_id, sessions.c.number == session.number)
            old = connection.execute(select(sessions).where(*key)).one()
            values = dict(
                start=session.start,
                end=session.end,
                sequence=old.sequence + 1,
                previous_start=old.start,
                change_reason=reason,
                changed_at=now,
                rebooks=old.rebooks + (1 if rebook else 0),
                agreed=agreed or seen_in_calendar,
            )
            if seen_in_calendar:
                values["event_sequence"] = old.sequence + 1
            connection.execute(update(sessions).where(*key).values(**values))
            _audit(connection, now, "session_moved", session.pair_id, number=session.number, start=session.start.isoformat(), reason=reason)

    def next_session_start(self, now: datetime) -> datetime | None:
        with self.engine.begin() as connection:
            query = select(func.min(sessions.c.start)).where(sessions.c.status == "booked", sessions.c.start > now)
            return connection.execute(query).scalar()

    def sessions_out_of_calendar(self) -> list[SessionRecord]:
        """Sessions whose calendar event is missing or behind."""
        with self.engine.begin() as connection:
            rows = connection.execute(select(sessions).where(sessions.c.event_sequence != sessions.c.sequence)).all()
        return [_session_record(r) for r in rows]

    def event_written(self, pair_id: str, number: int, sequence: int, event: CalendarEvent | None, now: datetime) -> None:
        """The calendar now shows `sequence` of this session (None: the event was removed)."""
        with self.engine.begin() as connection:
            self._fenced(connection)
            values: dict = {"event_sequence": sequence}
            if event is not None:
                values.update(_event_values(event))
                _note_answers(connection, now, pair_id, number, dict(event.responses))
            connection.execute(update(sessions).where(sessions.c.pair_id == pair_id, sessions.c.number == number).values(**values))
            _audit(connection, now, "event_written", pair_id, number=number, sequence=sequence)

    def event_seen(self, pair_id: str, number: int, event: CalendarEvent, now: datetime) -> None:
        with self.engine.begin() as connection:
            _note_answers(connection, now, pair_id, number, dict(event.responses))
            connection.execute(
                update(sessions).where(sessions.c.pair_id == pair_id, sessions.c.number == number).values(**_event_values(event))
            )

    def set_response(self, pair_id: str, number: int, email: str, response: str, now: datetime) -> None:
        with self.engine.begin() as connection:
            key = (sessions.c.pair_id == pair_id, sessions.c.number == number)
            stored = connection.execute(select(sessions.c.responses).where(*key)).scalar()
            if stored is not None:
                responses = {**json.loads(stored), email: response}
                _note_answers(connection, now, pair_id, number, responses, json.loads(stored))
                connection.execute(update(sessions).where(*key).values(responses=json.dumps(responses, sort_keys=True)))

    def set_meet_space(self, pair_id: str, number: int, space: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(update(sessions).where(sessions.c.pair_id == pair_id, sessions.c.number == number).values(meet_space=space))

    def record_attendance(self, pair_id: str, number: int, sequence: int, reading: Reading | None, now: datetime) -> None:
        values: dict = {"attendance_read_at": now}
        if reading is not None:
            values["attendance"] = _attendance_json(reading)
        with self.engine.begin() as connection:
            done = connection.execute(
                update(sessions)
                .where(sessions.c.pair_id == pair_id, sessions.c.number == number, sessions.c.sequence == sequence)
                .values(**values)
            )
            if reading is not None and done.rowcount:
                _audit(connection, now, "attendance", pair_id, number=number, attendance=reading.attendance.value, people=reading.people)

    def record_counter(self, pair_id: str, number: int, email: str, message: str, now: datetime) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                update(sessions)
                .where(sessions.c.pair_id == pair_id, sessions.c.number == number)
                .where(or_(sessions.c.countered_message.is_(None), sessions.c.countered_message != message))
                .values(counters=sessions.c.counters + 1, countered_by=email, countered_at=now, countered_message=message)
            )
            _audit(connection, now, "counter_declined", pair_id, number=number, by=email)

    def alerts(self) -> list[Alert]:
        with self.engine.begin() as connection:
            rows = connection.execute(select(schema.meta.c.key, schema.meta.c.value).where(schema.meta.c.key.like("alert:%"))).all()
        found = []
        for key, text in rows:  # stored as alert:<pair>/<session>
            pair_id, _, number = key.removeprefix("alert:").rpartition("/")
            found.append(Alert(pair_id=pair_id, session=int(number or 0), text=text))
        return sorted(found)

    def set_alert(self, pair_id: str, session: int, text: str | None) -> None:
        with self.engine.begin() as connection:
            _set_meta(connection, f"alert:{pair_id}/{session}", text)

    def purpose(self) -> Purpose | None:
        with self.engine.begin() as connection:
            value = _meta(connection, "state:purpose")
        return Purpose(value) if value else None

    def set_purpose(self, purpose: Purpose) -> None:
        with self.engine.begin() as connection:
            _set_meta(connection, "state:purpose", purpose.value)

    # Requests

    def add_request(self, kind: RequestKind, args: Mapping[str, str], now: datetime) -> int:
        with self.engine.begin() as connection:
            insert = requests.insert().values(kind=kind.value, args=json.dumps(dict(args), sort_keys=True), created_at=now)
            return int(connection.execute(insert.returning(requests.c.id)).scalar_one())

    def pending_requests(self) -> list[Request]:
        with self.engine.begin() as connection:
            rows = connection.execute(select(requests).where(requests.c.done_at.is_(None)).order_by(requests.c.id)).all()
        return [_request(r) for r in rows]

    def finish_request(self, request_id: int, outcome: str, now: datetime) -> None:
        with self.engine.begin() as connection:
            connection.execute(update(requests).where(requests.c.id == request_id).values(done_at=now, outcome=outcome))
            _audit(connection, now, "request_done", None, request=request_id, outcome=outcome)

    def held_change(self) -> HeldChange | None:
        with self.engine.begin() as connection:
            value = _meta(connection, "change:held")
        if not value:
            return None
        data = json.loads(value)
        return HeldChange(fingerprint=data["fingerprint"], summary=tuple(data["summary"]), cancelled=tuple(data.get("cancelled", ())))

    def hold_change(self, change: HeldChange | None) -> None:
        value = None
        if change is not None:
            value = json.dumps({"fingerprint": change.fingerprint, "summary": list(change.summary), "cancelled": list(change.cancelled)})
        with self.engine.begin() as connection:
            _set_meta(connection, "change:held", value)

    def approved_change(self) -> frozenset[str]:
        with self.engine.begin() as connection:
            value = _meta(connection, "change:approved")
        return frozenset(value.split("\n")) if value else frozenset()

    def approve_change(self, cancelled: Collection[str]) -> None:
        with self.engine.begin() as connection:
            _set_meta(connection, "change:approved", "\n".join(sorted(cancelled)) or None)

    # The web pages

    def web_secret(self, make: Callable[[], str]) -> str:
        try:
            with self.engine.begin() as connection:
                kept = _meta(connection, "web:secret")
                if kept is None:
                    kept = make()
                    connection.execute(schema.meta.insert().values(key="web:secret", value=kept))
                return kept
        except IntegrityError:  # another process kept its own a moment ago: that one stands
            with self.engine.begin() as connection:
                return str(_meta(connection, "web:secret"))

    def password_hash(self) -> str | None:
        with self.engine.begin() as connection:
            return _meta(connection, "web:password")

    def set_password_hash(self, value: str) -> None:
        with self.engine.begin() as connection:
            _set_meta(connection, "web:password", value)

    def requests(self) -> list[Request]:
        with self.engine.begin() as connection:
            rows = connection.execute(select(requests).order_by(requests.c.id)).all()
        return [_request(r) for r in rows]

    def goals(self, pair_ids: Iterable[str]) -> dict[str, Goals]:
        keys = [f"goals:{pair_id}" for pair_id in pair_ids]
        with self.engine.begin() as connection:
            rows = connection.execute(select(schema.meta.c.key, schema.meta.c.value).where(schema.meta.c.key.in_(keys))).all()
        found = {}
        for key, value in rows:  # kept in the meta table: no schema change for a few words per pair
            data = json.loads(value)
            pair_id = key.removeprefix("goals:")
            found[pair_id] = Goals(
                pair_id=pair_id,
                goals=data["goals"],
                homework=data["homework"],
                written_by=data["by"],
                written_at=datetime.fromisoformat(data["at"]),
            )
        return found

    def set_goals(self, goals: Goals) -> None:
        at = goals.written_at.astimezone(UTC).isoformat()
        value = {"goals": goals.goals, "homework": goals.homework, "by": goals.written_by, "at": at}
        with self.engine.begin() as connection:
            _set_meta(connection, f"goals:{goals.pair_id}", json.dumps(value, ensure_ascii=False))
            _audit(connection, goals.written_at, "goals_written", goals.pair_id, by=goals.written_by)

    def message_counts(self) -> dict[str, dict[State, int]]:
        query = select(messages.c.pair_id, messages.c.state, func.count()).group_by(messages.c.pair_id, messages.c.state)
        counts: dict[str, dict[State, int]] = {}
        with self.engine.begin() as connection:
            for pair_id, state, count in connection.execute(query):
                counts.setdefault(pair_id, {})[State(state)] = count
        return counts

    def emails_by_day(self) -> dict[date, int]:
        day = func.date(func.coalesce(messages.c.sent_at, messages.c.due))  # SQLite gives text, PostgreSQL a date
        query = select(day, func.count()).where(messages.c.state.not_in([State.CANCELLED.value, State.SKIPPED.value])).group_by(day)
        with self.engine.begin() as connection:
            return {d if isinstance(d, date) else date.fromisoformat(d): n for d, n in connection.execute(query)}

    def note_foreseen(self, days: Mapping[str, Mapping[date, int]]) -> None:
        with self.engine.begin() as connection:
            pair_ids = sorted(days)
            for start in range(0, len(pair_ids), IN_LIST):
                connection.execute(foreseen.delete().where(foreseen.c.pair_id.in_(pair_ids[start : start + IN_LIST])))
            by_day = {pair_id: {day.isoformat(): n for day, n in sorted(of_pair.items())} for pair_id, of_pair in days.items() if of_pair}
            rows = [(pair_id, json.dumps(of_pair)) for pair_id, of_pair in by_day.items()]
            _insert_rows(connection, foreseen, ("pair_id", "days"), rows)

    def foreseen(self) -> dict[str, dict[date, int]]:
        with self.engine.begin() as connection:
            rows = connection.execute(select(foreseen.c.pair_id, foreseen.c.days)).all()
        return {pair_id: {date.fromisoformat(day): n for day, n in json.loads(days).items()} for pair_id, days in rows}

    def record_tick(self, now: datetime) -> None:
        with self.engine.begin() as connection:
            _set_meta(connection, "daemon:last_tick", now.astimezone(UTC).isoformat())

    def last_tick(self) -> datetime | None:
        with self.engine.begin() as connection:
            value = _meta(connection, "daemon:last_tick")
        return datetime.fromisoformat(value).astimezone(UTC) if value else None

    def calendar_token(self) -> str | None:
        with self.engine.begin() as connection:
            return _meta(connection, "calendar:sync_token")

    def set_calendar_token(self, token: str | None) -> None:
        with self.engine.begin() as connection:
            _set_meta(connection, "calendar:sync_token", token)

    def calendar_id(self) -> str | None:
        with self.engine.begin() as connection:
            return _meta(connection, "calendar:id")

    def set_calendar_id(self, calendar_id: str) -> None:
        with self.engine.begin() as connection:
            _set_meta(connection, "calendar:id", calendar_id)

    def calendar_channel(self) -> Channel | None:
        with self.engine.begin() as connection:
            value = _meta(connection, "calendar:channel")
        return _channel_from(json.loads(value)) if value is not None else None

    def set_calendar_channel(self, channel: Channel | None) -> None:
        with self.engine.begin() as connection:
            _set_meta(connection, "calendar:channel", json.dumps(_channel_json(channel)) if channel is not None else None)
            if channel is not None:
                opening = [c for c in json.loads(_meta(connection, "calendar:opening") or "[]") if c["id"] != channel.id]
                _set_meta(connection, "calendar:opening", json.dumps(opening) if opening else None)

    def opening_channels(self) -> list[Channel]:
        with self.engine.begin() as connection:
            value = _meta(connection, "calendar:opening")
        return [_channel_from(c) for c in json.loads(value or "[]")]

    def set_opening_channels(self, channels: Sequence[Channel]) -> None:
        with self.engine.begin() as connection:
            _set_meta(connection, "calendar:opening", json.dumps([_channel_json(c) for c in channels]) if channels else None)

    def cancel_pair(self, pair_id: str, now: datetime, reason: str, *, held: bool = False) -> None:
        """Cancel a pair's booked sessions. `held`: a session was deleted in the calendar
        by hand (which shows it already); the pair waits for the coordinator."""
        with self.engine.begin() as connection:
            values = dict(status="held" if held else "cancelled", sequence=sessions.c.sequence + 1, change_reason=reason, changed_at=now)
            if held:
                values["event_sequence"] = sessions.c.sequence + 1
            started = sessions.c.start <= now  # what happened stays as it was
            connection.execute(
                update(sessions).where(sessions.c.pair_id == pair_id, sessions.c.status == "booked", ~started).values(**values)
            )
            _audit(connection, now, "sessions_cancelled", pair_id, reason=reason)

    # Pairs: who they are, kept so a removed pair can still be told of a cancellation

    def remember_pairs(self, known: Sequence[Pair], now: datetime) -> None:
        known = [pair for pair in known if self._remembered.get(pair.id) is not pair]
        if not known:
            return
        with self.engine.begin() as connection:
            stored = dict(connection.execute(select(pairs.c.pair_id, pairs.c.data)).all())
            fresh, changed = [], []
            people: dict[int, dict] = {}  # a mentor of several mentees is one Person, described once
            for pair in known:
                data = json.dumps(_pair_data(pair, people), ensure_ascii=False, sort_keys=True)
                if pair.id not in stored:
                    fresh.append((pair.id, data))
                elif stored[pair.id] != data:
                    changed.append({"k_pair": pair.id, "v_data": data})
            at = _stored_time(connection)(now)
            _insert_rows(connection, pairs, ("pair_id", "data", "updated_at"), [(pair_id, data, at) for pair_id, data in fresh])
            if changed:
                connection.execute(
                    update(pairs).where(pairs.c.pair_id == bindparam("k_pair")).values(data=bindparam("v_data"), updated_at=now), changed
                )
        self._remembered.update((pair.id, pair) for pair in known)

    def withdraw(self, pair_id: str, now: datetime) -> None:
        with self.engine.begin() as connection:
            connection.execute(update(pairs).where(pairs.c.pair_id == pair_id).values(withdrawn_at=now))
            _audit(connection, now, "pair_withdrawn", pair_id)

    def withdrawn(self) -> set[str]:
        with self.engine.begin() as connection:
            return set(connection.execute(select(pairs.c.pair_id).where(pairs.c.withdrawn_at.is_not(None))).scalars())

    def release(self, pair_id: str, now: datetime) -> None:
        with self.engine.begin() as connection:
            connection.execute(update(pairs).where(pairs.c.pair_id == pair_id).values(withdrawn_at=None))
            connection.execute(
                update(sessions).where(sessions.c.pair_id == pair_id, sessions.c.status == "held").values(status="cancelled")
            )
            _audit(connection, now, "pair_released", pair_id)

    def known_pairs(self, pair_ids: Iterable[str] | None = None) -> dict[str, Pair]:
        query = select(pairs.c.pair_id, pairs.c.data)
        if pair_ids is not None:
            query = query.where(pairs.c.pair_id.in_(list(pair_ids)))
        with self.engine.begin() as connection:
            rows = connection.execute(query).all()
        return {pair_id: _pair_from(pair_id, json.loads(data)) for pair_id, data in rows}

    # Messages

    def messages(self, pair_ids: Iterable[str] | None = None) -> list[MessageRow]:
        query = select(messages)
        if pair_ids is not None:
            query = query.where(messages.c.pair_id.in_(list(pair_ids)))
        with self.engine.begin() as connection:
            return [_message_row(r) for r in connection.execute(query)]

    def messaged(self, pair_ids: Iterable[str]) -> set[str]:
        wanted, found = sorted(pair_ids), set[str]()
        with self.engine.begin() as connection:
            for start in range(0, len(wanted), IN_LIST):
                query = select(messages.c.pair_id).distinct().where(messages.c.pair_id.in_(wanted[start : start + IN_LIST]))
                found.update(connection.execute(query).scalars())
        return found

    def apply(self, changes: Changes, now: datetime) -> None:
        if not len(changes):
            return
        with self.engine.begin() as connection:
            stored = _stored_time(connection)
            at = stored(now)
            # Each moment converted once: many messages share theirs (a welcome at 09:00 in one zone).
            moments = {w.due for w in changes.insert} | {w.expires for w in changes.insert}
            times = {moment: stored(moment) for moment in moments}
            rows = []
            for w in changes.insert:
                due = times[w.due]  # due, and the first wake-up
                rows.append((w.pair_id, w.stage.value, w.recipient, w.revision, w.role.value, due, times[w.expires], due, PLANNED, 0, at))
            _insert_rows(connection, messages, MESSAGE_COLUMNS, rows)
            moved = changes.retime + changes.revive
            if moved:
                connection.execute(
                    update(messages)
                    .where(_KEY_PARAMETERS)
                    .where(or_(messages.c.state == PLANNED, messages.c.state == State.CANCELLED.value), messages.c.verify == false())
                    .values(
                        due=bindparam("v_due"),
                        expires=bindparam("v_expires"),
                        wake_at=bindparam("v_wake"),
                        state=State.PLANNED.value,
                        updated_at=now,
                    ),
                    [{**_key_parameters(w.key), "v_due": w.due, "v_expires": w.expires, "v_wake": w.due} for w in moved],
                )
            if changes.cancel:
                connection.execute(
                    update(messages)
                    .where(_KEY_PARAMETERS, messages.c.state == State.PLANNED.value, messages.c.verify == false())
                    .values(state=State.CANCELLED.value, updated_at=now),
                    [_key_parameters(key) for key in changes.cancel],
                )
            _audit(
                connection,
                now,
                "messages_planned",
                None,
                added=len(changes.insert),
                retimed=len(changes.retime),
                revived=len(changes.revive),
                cancelled=len(changes.cancel),
            )

    def due(self, now: datetime, limit: int) -> list[MessageRow]:
        query = (
            select(messages)
            .where(messages.c.state == State.PLANNED.value, messages.c.wake_at <= now)
            .order_by(messages.c.wake_at, messages.c.pair_id, messages.c.stage, messages.c.recipient)
            .limit(limit)
        )
        with self.engine.begin() as connection:
            return [_message_row(r) for r in connection.execute(query)]

    def next_due(self) -> datetime | None:
        query = select(func.min(messages.c.wake_at)).where(messages.c.state == State.PLANNED.value)
        with self.engine.begin() as connection:
            return connection.execute(query).scalar()

    def in_flight(self) -> list[MessageRow]:
        with self.engine.begin() as connection:
            rows = connection.execute(select(messages).where(messages.c.state == State.SENDING.value))
            return [_message_row(r) for r in rows]

    def mark_sending(self, row: MessageRow, message_id: str, now: datetime) -> None:
        self._transition(
            row,
            State.PLANNED,
            now,
            "sending",
            state=State.SENDING.value,
            message_id=message_id,
            verify=False,
            attempts=messages.c.attempts + 1,
        )

    def mark_sent(self, row: MessageRow, now: datetime, *, was: State = State.SENDING) -> None:
        self._transition(row, was, now, "sent", state=State.SENT.value, sent_at=now, last_error=None, verify=False)

    def mark_verify(self, row: MessageRow, at: datetime, error: str, now: datetime) -> None:
        """It may have gone out: at `at`, ask the transport before anything else."""
        self._transition(row, State.SENDING, now, "verify", state=State.PLANNED.value, verify=True, wake_at=at, last_error=error)

    def mark_unsent(self, row: MessageRow, now: datetime) -> None:
        self._transition(row, State.PLANNED, now, "unsent", verify=False, wake_at=row.due)

    def mark_resend(self, row: MessageRow, now: datetime) -> None:
        self._transition(
            row, row.state, now, "resend", state=State.PLANNED.value, attempts=0, last_error=None, verify=False, wake_at=now, sent_at=None
        )

    def mark_retry(self, row: MessageRow, at: datetime, error: str, now: datetime) -> None:
        self._transition(row, State.SENDING, now, "retry", state=State.PLANNED.value, wake_at=at, last_error=error)

    def postpone(self, row: MessageRow, at: datetime, now: datetime) -> None:
        self._transition(row, State.PLANNED, now, "postponed", wake_at=at)

    def messages_needing_a_human(self) -> list[MessageRow]:
        query = select(messages).where(messages.c.state.in_([State.FAILED.value, State.UNCERTAIN.value]))
        with self.engine.begin() as connection:
            return [_message_row(r) for r in connection.execute(query.order_by(messages.c.updated_at))]

    def sent_since(self, since: datetime) -> list[tuple[datetime, str]]:
        query = select(messages.c.sent_at, messages.c.recipient).where(messages.c.state == State.SENT.value, messages.c.sent_at >= since)
        with self.engine.begin() as connection:
            return [(sent_at, recipient) for sent_at, recipient in connection.execute(query)]

    # The coordinator's digest: its message and what it says are written together.

    def digest_state(self, day: int) -> tuple[str | None, bool]:
        with self.engine.begin() as connection:
            return _meta(connection, "digest:last"), _meta(connection, f"digest:{day}") is not None

    def add_digest(self, wanted: Wanted, attention: list[dict[str, str]], fingerprint: str, now: datetime) -> None:
        with self.engine.begin() as connection:
            connection.execute(messages.insert().values(**_wanted_values(wanted), state=State.PLANNED.value, attempts=0, updated_at=now))
            _set_meta(connection, f"digest:{wanted.revision}", json.dumps(attention))
            _set_meta(connection, "digest:last", fingerprint)

    def digest_content(self, day: int) -> list[dict[str, str]]:
        with self.engine.begin() as connection:
            return json.loads(_meta(connection, f"digest:{day}") or "[]")

    def mark_failed(self, row: MessageRow, error: str, now: datetime, *, was: State = State.SENDING) -> None:
        self._transition(row, was, now, "failed", state=State.FAILED.value, last_error=error, verify=False)

    def mark_uncertain(self, row: MessageRow, error: str, now: datetime, *, was: State = State.SENDING) -> None:
        self._transition(row, was, now, "uncertain", state=State.UNCERTAIN.value, last_error=error, verify=False)

    def mark_skipped(self, row: MessageRow, reason: str, now: datetime) -> None:
        self._transition(row, State.PLANNED, now, "skipped", state=State.SKIPPED.value, last_error=reason)

    def mark_sending_many(self, rows: Sequence[tuple[MessageRow, str]], now: datetime) -> None:
        self._transitions(
            [row for row, _ in rows],
            State.PLANNED,
            now,
            "sending",
            each=[{"message_id": message_id} for _, message_id in rows],
            state=State.SENDING.value,
            verify=False,
            attempts=messages.c.attempts + 1,
        )

    def mark_sent_many(self, rows: Sequence[MessageRow], now: datetime) -> None:
        self._transitions(rows, State.SENDING, now, "sent", state=State.SENT.value, sent_at=now, last_error=None, verify=False)

    def mark_released(self, rows: Sequence[MessageRow], now: datetime) -> None:
        self._transitions(rows, State.SENDING, now, "released", state=State.PLANNED.value, attempts=messages.c.attempts - 1)

    def _transitions(
        self, rows: Sequence[MessageRow], expected: State, now: datetime, event_name: str, *, each: Sequence[dict] = (), **values
    ) -> None:
        """Like _transition for many rows in one commit, all or none; `each` gives values
        that differ from row to row."""
        if not rows:
            return
        own = sorted(each[0]) if each else []
        statement = (
            update(messages)
            .where(_KEY_PARAMETERS, messages.c.state == expected.value)
            .values(updated_at=now, **values, **{name: bindparam(f"v_{name}") for name in own})
        )
        parameters = [
            {**_key_parameters(row.key), **{f"v_{name}": value for name, value in (each[index] if each else {}).items()}}
            for index, row in enumerate(rows)
        ]
        with self.engine.begin() as connection:
            if event_name == "sending":
                self._fenced(connection)
            changed = connection.execute(statement, parameters).rowcount
            if changed != len(rows):  # the transaction is rolled back: none changed
                raise RuntimeError(
                    f"{len(rows) - changed} of {len(rows)} messages were not {expected.value}; another process may be running"
                )
            at = _stored_time(connection)(now)
            details = [
                {"stage": row.stage.value, "recipient": row.recipient, "revision": row.revision, **(each[index] if each else {})}
                for index, row in enumerate(rows)
            ]
            _insert_rows(
                connection,
                audit,
                ("at", "event", "pair_id", "detail"),
                [
                    (at, f"message_{event_name}", row.pair_id, json.dumps(detail, default=str))
                    for row, detail in zip(rows, details, strict=True)
                ],
            )

    def _transition(self, row: MessageRow, expected: State, now: datetime, event_name: str, **values) -> None:
        with self.engine.begin() as connection:
            if event_name == "sending":
                self._fenced(connection)
            result = connection.execute(
                update(messages).where(_key(row.key), messages.c.state == expected.value).values(updated_at=now, **values)
            )
            if result.rowcount != 1:
                raise RuntimeError(f"message {row.key} was not {expected.value}; another process may be running")
            detail = {k: v for k, v in values.items() if k in ("message_id", "last_error", "wake_at")}
            _audit(
                connection,
                now,
                f"message_{event_name}",
                row.pair_id,
                stage=row.stage,
                recipient=row.recipient,
                revision=row.revision,
                **{k: str(v) for k, v in detail.items()},
            )

    def _fenced(self, connection: Connection) -> None:
        """Where replicas share the database: in the transaction of an effect, that this
        replica still holds the cohort's lease under its token (LeaseLost if not)."""
        if self.fence is not None:
            self.fence.check(connection)

    def latest_activity(self) -> datetime | None:
        """When the last effect was recorded (a simulated clock resumes from there)."""
        with self.engine.begin() as connection:
            return connection.execute(select(func.max(audit.c.at))).scalar()

    def audit_log(self) -> list[dict]:
        return self._audit_rows(select(audit))

    def history(self, pair_id: str) -> list[dict]:
        return self._audit_rows(select(audit).where(audit.c.pair_id == pair_id))

    def _audit_rows(self, query) -> list[dict]:
        with self.engine.begin() as connection:
            rows = connection.execute(query.order_by(audit.c.id)).all()
        return [dict(at=r.at, event=r.event, pair_id=r.pair_id, **json.loads(r.detail)) for r in rows]


def _event_values(event: CalendarEvent) -> dict:
    values = {"responses": json.dumps(dict(event.responses), sort_keys=True), "conference": event.conference}
    if event.meet_link:
        values["meet_link"] = event.meet_link
    return values


def _channel_json(channel: Channel) -> dict:
    return {**vars(channel), "expires": channel.expires.astimezone(UTC).isoformat()}


def _channel_from(kept: dict) -> Channel:
    return Channel(**{**kept, "expires": datetime.fromisoformat(kept["expires"])})


def _meta(connection, key: str) -> str | None:
    return connection.execute(select(schema.meta.c.value).where(schema.meta.c.key == key)).scalar()


def _set_meta(connection, key: str, value: str | None) -> None:
    """Write (or, with None, remove) one value of the meta table."""
    connection.execute(schema.meta.delete().where(schema.meta.c.key == key))
    if value:
        connection.execute(schema.meta.insert().values(key=key, value=value))


# Many rows at once: see _insert_rows.
IN_LIST = 500  # values in one IN (...) list
COPY_FROM = 1000  # rows: from this many, PostgreSQL's COPY is several times quicker than INSERT
PLANNED = State.PLANNED.value
MESSAGE_COLUMNS = ("pair_id", "stage", "recipient", "revision", "role", "due", "expires", "wake_at", "state", "attempts", "updated_at")


def _stored_time(connection: Connection) -> Callable[[datetime | None], object]:
    """Aware datetimes as the database keeps them (naive UTC, in the form SQLAlchemy's
    DateTime gives the driver: a string on SQLite), so rows written by _insert_rows read
    back like any other."""
    dialect = connection.dialect
    as_text = DateTime().dialect_impl(dialect).bind_processor(dialect) is not None  # SQLite: text

    def stored(moment: datetime | None) -> object:
        if moment is None:
            return None
        if moment.tzinfo is not UTC:
            moment = moment.astimezone(UTC)
        naive = moment.replace(tzinfo=None)
        # SQLAlchemy's SQLite form, "2027-03-01 09:00:00.000000", made in C: a message
        # insert converts three times, and this was a third of the time of planning them.
        return naive.isoformat(" ", "microseconds") if as_text else naive

    return stored


def _insert_rows(connection: Connection, table: Table, columns: Sequence[str], rows: list[tuple]) -> None:
    """Rows of plain values (times already converted by _stored_time) in one go: one
    executemany of one prepared statement, or COPY on PostgreSQL for many rows, with none
    of SQLAlchemy's per-value work."""
    if not rows:
        return
    quote = connection.dialect.identifier_preparer.quote
    names = ", ".join(quote(column) for column in columns)
    if connection.dialect.name == "postgresql" and len(rows) >= COPY_FROM:
        with connection.connection.dbapi_connection.cursor() as cursor:  # type: ignore[union-attr]
            with cursor.copy(f"COPY {quote(table.name)} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        return
    mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    connection.exec_driver_sql(f"INSERT INTO {quote(table.name)} ({names}) VALUES ({', '.join([mark] * len(columns))})", rows)


_KEY_PARAMETERS = and_(
    messages.c.pair_id == bindparam("k_pair"),
    messages.c.stage == bindparam("k_stage"),
    messages.c.recipient == bindparam("k_recipient"),
    messages.c.revision == bindparam("k_revision"),
)


def _key_parameters(key: MessageKey) -> dict:
    pair_id, stage, recipient, revision = key
    return {"k_pair": pair_id, "k_stage": stage.value, "k_recipient": recipient, "k_revision": revision}


def _key(key: MessageKey) -> ColumnElement[bool]:
    pair_id, stage, recipient, revision = key
    return and_(
        messages.c.pair_id == pair_id,
        messages.c.stage == stage.value,
        messages.c.recipient == recipient,
        messages.c.revision == revision,
    )


def _wanted_values(w: Wanted) -> dict:
    return dict(
        pair_id=w.pair_id,
        stage=w.stage.value,
        recipient=w.recipient,
        revision=w.revision,
        role=w.role.value,
        due=w.due,
        expires=w.expires,
        wake_at=w.due,
    )


def _note_answers(connection, now: datetime, pair_id: str, number: int, answers: dict[str, str], before: dict | None = None) -> None:
    """Each answer to a session's invitation that changed, into the pair's history. `before`:
    the stored answers, when the caller has read them."""
    if before is None:
        stored = connection.execute(select(sessions.c.responses).where(sessions.c.pair_id == pair_id, sessions.c.number == number)).scalar()
        if stored is None:
            return
        before = json.loads(stored)
    for email, answer in sorted(answers.items()):
        if answer != before.get(email) and answer != NO_ANSWER:
            _audit(connection, now, "answer", pair_id, number=number, email=email, answer=answer)


def _audit(connection, now: datetime, event_name: str, pair_id: str | None, **detail) -> None:
    connection.execute(audit.insert().values(at=now, event=event_name, pair_id=pair_id, detail=json.dumps(detail, default=str)))


def _pair_data(pair: Pair, people: dict[int, dict]) -> dict:
    """A pair as remembered; `people`: the persons described so far, by identity."""

    def person(p: Person) -> dict:
        if id(p) not in people:
            people[id(p)] = _person_data(p)
        return people[id(p)]

    return {"mentor": person(pair.mentor), "mentee": person(pair.mentee), "notes": pair.notes, "mentee_resume": pair.mentee_resume}


def _person_data(p: Person) -> dict:
    pattern = p.availability
    return {
        "name": p.name,
        "email": p.email,
        "timezone": p.timezone,
        "hours": [[r.start.isoformat(), r.end.isoformat()] for r in pattern.hours],
        "days": sorted(pattern.days),
        "blackout_dates": sorted(d.isoformat() for d in pattern.blackout_dates),
        "linkedin": p.linkedin,
        "video_link": p.video_link,
        "busy_calendar": p.busy_calendar,
    }


# Pairs remembered before hours were kept: what the configuration's defaults were then.
_OLD_HOURS, _OLD_DAYS = [["09:00:00", "17:00:00"]], list(range(5))


def _pair_from(pair_id: str, data: dict) -> Pair:
    def person(d: dict) -> Person:
        pattern = WorkingPattern(
            timezone=d["timezone"],
            hours=tuple(TimeRange(start=time.fromisoformat(a), end=time.fromisoformat(b)) for a, b in d.get("hours", _OLD_HOURS)),
            days=frozenset(d.get("days", _OLD_DAYS)),
            blackout_dates=frozenset(date.fromisoformat(x) for x in d.get("blackout_dates", ())),
        )
        return Person(
            name=d["name"],
            email=d["email"],
            availability=pattern,
            linkedin=d["linkedin"],
            video_link=d["video_link"],
            busy_calendar=d.get("busy_calendar"),
        )

    return Pair(
        id=pair_id, mentor=person(data["mentor"]), mentee=person(data["mentee"]), notes=data["notes"], mentee_resume=data["mentee_resume"]
    )


def _request(r) -> Request:
    return Request(
        id=r.id, kind=RequestKind(r.kind), args=json.loads(r.args), created_at=r.created_at, done_at=r.done_at, outcome=r.outcome
    )


def _in_utc(session: Session) -> Session:
    """As it reads back: in UTC (which the planner's already are)."""
    if session.start.tzinfo is UTC and session.end.tzinfo is UTC:
        return session
    return replace(session, start=session.start.astimezone(UTC), end=session.end.astimezone(UTC))


def _session_record(r) -> SessionRecord:
    return SessionRecord(
        session=Session(pair_id=r.pair_id, number=r.number, start=r.start, end=r.end),
        cancelled=r.status in ("cancelled", "held"),
        held=r.status == "held",
        sequence=r.sequence,
        changed_at=r.changed_at,
        previous_start=r.previous_start,
        change_reason=r.change_reason,
        event_sequence=r.event_sequence,
        meet_link=r.meet_link,
        conference=r.conference,
        responses=json.loads(r.responses) if r.responses != "{}" else {},  # most have no answer yet
        rebooks=r.rebooks,
        counters=r.counters,
        countered_by=r.countered_by,
        countered_at=r.countered_at,
        agreed=r.agreed,
        meet_space=r.meet_space,
        attendance=_attendance_from(r.attendance),
        attendance_read_at=r.attendance_read_at,
    )


def _attendance_json(reading: Reading) -> str:
    return json.dumps(
        {
            "attendance": reading.attendance.value,
            "sequence": reading.sequence,
            "at": reading.at.astimezone(UTC).isoformat(),
            "people": reading.people,
            "together_minutes": reading.together_minutes,
            "reported_by": reading.reported_by,
        }
    )


def _attendance_from(value: str | None) -> Reading | None:
    if not value:
        return None
    data = json.loads(value)
    return Reading(
        attendance=Attendance(data["attendance"]),
        sequence=data["sequence"],
        at=datetime.fromisoformat(data["at"]),
        people=data["people"],
        together_minutes=data["together_minutes"],
        reported_by=data.get("reported_by"),  # absent before "Did you meet?"
    )


def _message_row(r) -> MessageRow:
    return MessageRow(
        pair_id=r.pair_id,
        stage=Stage(r.stage),
        recipient=r.recipient,
        revision=r.revision,
        role=Role(r.role),
        due=r.due,
        expires=r.expires,
        state=State(r.state),
        message_id=r.message_id,
        verify=r.verify,
        attempts=r.attempts,
        last_error=r.last_error,
        sent_at=r.sent_at,
        updated_at=r.updated_at,
    )
