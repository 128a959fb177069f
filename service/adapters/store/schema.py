"""Tables and migrations. Times are stored as naive UTC and handed out as aware UTC."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    false,
    inspect,
    select,
)


class UTCDateTime(TypeDecorator):
    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value} cannot be stored")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


metadata = MetaData()

meta = Table("meta", metadata, Column("key", String(255), primary_key=True), Column("value", Text, nullable=False))

sessions = Table(
    "sessions",
    metadata,
    Column("pair_id", String(64), primary_key=True),
    Column("number", Integer, primary_key=True),
    Column("start", UTCDateTime, nullable=False),
    Column("end", UTCDateTime, nullable=False),
    Column("status", String(16), nullable=False),  # booked | cancelled
    Column("sequence", Integer, nullable=False),  # bumped on every change
    Column("previous_start", UTCDateTime),
    Column("change_reason", Text),
    Column("changed_at", UTCDateTime, nullable=False),
    # Since schema 2: the calendar's copy. event_sequence is the sequence it shows (-1: none).
    Column("event_sequence", Integer, nullable=False, server_default="-1"),
    Column("meet_link", Text),
    Column("conference", String(16)),
    Column("responses", Text, nullable=False, server_default="{}"),
    Column("rebooks", Integer, nullable=False, server_default="0"),
    # Since schema 5: proposals of another time that did not suit both.
    Column("counters", Integer, nullable=False, server_default="0"),
    Column("countered_by", String(320)),
    Column("countered_at", UTCDateTime),
    Column("countered_message", Text),  # the mailbox's handle of the last proposal counted
    Column("agreed", Boolean, nullable=False, server_default=false()),  # a person chose this time
    # Since schema 6: the session's Meet room and what Meet showed of it.
    Column("meet_space", Text),  # spaces/ID, once looked up from the link
    Column("attendance", Text),  # JSON: attendance, sequence, at, people, together_minutes
    Column("attendance_read_at", UTCDateTime),  # when Meet was last asked
)

messages = Table(
    "messages",
    metadata,
    Column("pair_id", String(64), primary_key=True),
    Column("stage", String(64), primary_key=True),
    Column("recipient", String(320), primary_key=True),
    Column("revision", Integer, primary_key=True),
    Column("role", String(16), nullable=False),
    Column("due", UTCDateTime, nullable=False),
    Column("expires", UTCDateTime),
    Column("wake_at", UTCDateTime, nullable=False),  # the later of due and the next retry
    Column("state", String(16), nullable=False),
    Column("verify", Boolean, nullable=False, server_default=false()),  # ask the transport before sending
    Column("message_id", String(255)),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("sent_at", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("messages_wake", "state", "wake_at"),
    Index("messages_sent", "sent_at"),  # the last day's sends, for a mailbox's daily limits
)

pairs = Table(
    "pairs",
    metadata,
    Column("pair_id", String(64), primary_key=True),
    Column("data", Text, nullable=False),  # who they are, to write to them after removal
    Column("updated_at", UTCDateTime, nullable=False),
    Column("withdrawn_at", UTCDateTime),  # since schema 4: left the program, until released
)

# Since schema 9: each pair's emails not written yet (further off than the horizon), by day.
foreseen = Table(
    "foreseen",
    metadata,
    Column("pair_id", String(64), primary_key=True),
    Column("days", Text, nullable=False),  # JSON: {"YYYY-MM-DD": count}
)

requests = Table(
    "requests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("args", Text, nullable=False),  # JSON object of strings
    Column("created_at", UTCDateTime, nullable=False),
    Column("done_at", UTCDateTime),
    Column("outcome", Text),
    Index("requests_pending", "done_at"),
)

audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("event", String(64), nullable=False),
    Column("pair_id", String(64)),
    Column("detail", Text, nullable=False),
    Index("audit_pair", "pair_id"),  # a pair's history
)


def _create_v1(connection: Connection) -> None:
    """A new database gets the newest tables at once; later steps find nothing to do."""
    metadata.create_all(connection)


def _calendar_events_v2(connection: Connection) -> None:
    """Sessions learn about the calendar events that show them; a message can wait to
    be checked with its transport before it is sent again."""
    if "verify" not in {column["name"] for column in inspect(connection).get_columns("messages")}:
        connection.exec_driver_sql("ALTER TABLE messages ADD COLUMN verify BOOLEAN NOT NULL DEFAULT FALSE")
    have = {column["name"] for column in inspect(connection).get_columns("sessions")}
    for name, ddl in (
        ("event_sequence", "INTEGER NOT NULL DEFAULT -1"),
        ("meet_link", "TEXT"),
        ("conference", "VARCHAR(16)"),
        ("responses", "TEXT NOT NULL DEFAULT '{}'"),
        ("rebooks", "INTEGER NOT NULL DEFAULT 0"),
    ):
        if name not in have:
            connection.exec_driver_sql(f"ALTER TABLE sessions ADD COLUMN {name} {ddl}")


def _longer_meta_keys_v3(connection: Connection) -> None:
    """Alerts are kept under keys that hold a pair id: room for the longest."""
    if connection.dialect.name == "postgresql":  # SQLite does not enforce lengths
        connection.exec_driver_sql("ALTER TABLE meta ALTER COLUMN key TYPE VARCHAR(255)")


def _requests_v4(connection: Connection) -> None:
    """The coordinator's requests, and pairs that left the program."""
    metadata.create_all(connection)  # the requests table (and any other a very old state lacks)
    if "withdrawn_at" not in {column["name"] for column in inspect(connection).get_columns("pairs")}:
        connection.exec_driver_sql(f"ALTER TABLE pairs ADD COLUMN withdrawn_at {_timestamp(connection)}")


def _timestamp(connection: Connection) -> str:
    return "TIMESTAMP WITHOUT TIME ZONE" if connection.dialect.name == "postgresql" else "DATETIME"


def _counters_v5(connection: Connection) -> None:
    """Sessions remember proposals of another time that did not suit both, and whether a
    person chose their time."""
    have = {column["name"] for column in inspect(connection).get_columns("sessions")}
    for name, ddl in (
        ("counters", "INTEGER NOT NULL DEFAULT 0"),
        ("countered_by", "VARCHAR(320)"),
        ("countered_at", _timestamp(connection)),
        ("countered_message", "TEXT"),
        ("agreed", "BOOLEAN NOT NULL DEFAULT FALSE"),
    ):
        if name not in have:
            connection.exec_driver_sql(f"ALTER TABLE sessions ADD COLUMN {name} {ddl}")


def _attendance_v6(connection: Connection) -> None:
    """Sessions keep their Meet room and the attendance read from it."""
    have = {column["name"] for column in inspect(connection).get_columns("sessions")}
    for name, ddl in (("meet_space", "TEXT"), ("attendance", "TEXT"), ("attendance_read_at", _timestamp(connection))):
        if name not in have:
            connection.exec_driver_sql(f"ALTER TABLE sessions ADD COLUMN {name} {ddl}")


def _audit_by_pair_v7(connection: Connection) -> None:
    """A pair's history is read from the audit table by its pair."""
    connection.exec_driver_sql("CREATE INDEX IF NOT EXISTS audit_pair ON audit (pair_id)")


def _sent_index_v8(connection: Connection) -> None:
    """The last day's sends are read by when they went."""
    connection.exec_driver_sql("CREATE INDEX IF NOT EXISTS messages_sent ON messages (sent_at)")


def _foreseen_v9(connection: Connection) -> None:
    """Emails are written a week before they are due: the rest are counted by pair."""
    foreseen.create(connection, checkfirst=True)


# Each step moves the schema one version up; a released step never changes.
MIGRATIONS: list[Callable[[Connection], None]] = [
    _create_v1,
    _calendar_events_v2,
    _longer_meta_keys_v3,
    _requests_v4,
    _counters_v5,
    _attendance_v6,
    _audit_by_pair_v7,
    _sent_index_v8,
    _foreseen_v9,
]


def migrate(connection: Connection) -> int:
    """Bring the schema to the newest version inside the caller's transaction."""
    version = 0
    if inspect(connection).has_table("meta"):
        row = connection.execute(select(meta.c.value).where(meta.c.key == "schema_version")).first()
        version = int(row[0]) if row else 0
    if version > len(MIGRATIONS):
        raise RuntimeError(f"the state was written by a newer version (schema {version})")
    for step in MIGRATIONS[version:]:
        step(connection)
    if version < len(MIGRATIONS):
        connection.execute(meta.delete().where(meta.c.key == "schema_version"))
        connection.execute(meta.insert().values(key="schema_version", value=str(len(MIGRATIONS))))  # same transaction
    return len(MIGRATIONS)
