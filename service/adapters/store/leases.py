"""Leases in PostgreSQL: which replica works which cohort, in a `fleet` schema beside the
cohorts' own schemas. Times come from the database's clock, the one all replicas share.

Each cohort's rows live in a schema of its own (`cohort_<name>`), created and migrated by
the same steps as a single cohort's database; the store reaches it through the search path
of its connections.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from ...domain.leases import Lease, LeaseLost

FLEET = "fleet"
SETUP_LOCK = 0x666C656574  # a transaction's advisory lock: one replica at a time creates schemas
SETUP_ATTEMPTS = 3

_DDL = (
    f"CREATE SCHEMA IF NOT EXISTS {FLEET}",
    f"""CREATE TABLE IF NOT EXISTS {FLEET}.leases (
        cohort VARCHAR(64) PRIMARY KEY,
        owner VARCHAR(128),
        token BIGINT NOT NULL DEFAULT 0,
        expires_at TIMESTAMPTZ NOT NULL DEFAULT 'epoch',
        done BOOLEAN NOT NULL DEFAULT FALSE)""",
    f"CREATE TABLE IF NOT EXISTS {FLEET}.replicas (owner VARCHAR(128) PRIMARY KEY, seen_until TIMESTAMPTZ NOT NULL)",
)


def schema_of(cohort: str) -> str:
    """The schema that holds a cohort's rows: a name PostgreSQL takes unquoted."""
    return "cohort_" + re.sub(r"[^a-z0-9_]+", "_", cohort.lower()).strip("_")[:50]


def is_database(state: str) -> bool:
    return "://" in state and not state.startswith("sqlite:///")


def cohort_engine(url: str, cohort: str) -> Engine:
    """An engine whose connections see the cohort's schema first; the schema is made if
    it is new. Connections are checked before use: one the server ended is replaced."""
    schema = schema_of(cohort)
    engine = create_engine(url, future=True, pool_pre_ping=True, connect_args={"options": f"-csearch_path={schema}"})
    with engine.begin() as connection:
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SETUP_LOCK})
        connection.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    return engine


class Fence:
    """A held lease as one cohort's store sees it. `live` answers from this process's own
    clock (renewals push it on); `check` asks the database inside the transaction of an
    effect, and holds the lease row until that transaction ends, so a take-over waits for
    it and the effect is never recorded by a replica that was replaced."""

    def __init__(self, cohort: str, owner: str, token: int, lease: timedelta, margin: timedelta, *, since: float):
        """`since`: when (monotonic) the claim was sent, before the database set its expiry."""
        self.cohort, self.owner, self.token = cohort, owner, token
        self.margin = margin
        self._until = since + lease.total_seconds()
        self._lock = threading.Lock()

    def renewed(self, sent_at: float, lease: timedelta) -> None:
        """A renewal sent at `sent_at` (monotonic) succeeded: the lease lasts from then."""
        with self._lock:
            self._until = max(self._until, sent_at + lease.total_seconds())

    def revoke(self) -> None:
        with self._lock:
            self._until = 0.0

    def live(self) -> bool:
        with self._lock:
            return time.monotonic() < self._until - self.margin.total_seconds()

    def check(self, connection: Connection) -> None:
        if not self.live():
            raise LeaseLost(f"the lease on cohort {self.cohort!r} ran out")
        row = connection.execute(
            text(
                f"SELECT 1 FROM {FLEET}.leases WHERE cohort = :cohort AND owner = :owner AND token = :token"
                " AND expires_at > now() + make_interval(secs => :margin) FOR SHARE"
            ),
            {"cohort": self.cohort, "owner": self.owner, "token": self.token, "margin": self.margin.total_seconds()},
        ).first()
        if row is None:
            self.revoke()
            raise LeaseLost(f"the lease on cohort {self.cohort!r} was taken over or ran out")


@dataclass(frozen=True)
class Beat:
    renewed: dict[str, int]  # cohort -> token, of the leases this replica still holds
    replicas: int  # live replicas, this one included
    leases: list[Lease]
    now: datetime  # the database's clock, which the lease times follow


class Leases:
    """The `fleet` schema's lease and replica rows, for one replica (`owner`)."""

    def __init__(self, engine: Engine, owner: str, lease: timedelta):
        self.engine, self.owner, self.lease = engine, owner, lease

    @classmethod
    def open(cls, url: str, owner: str, lease: timedelta) -> Leases:
        engine = create_engine(url, future=True, pool_pre_ping=True)
        for attempt in range(SETUP_ATTEMPTS):  # a connection the server ends while starting is not the end
            try:
                with engine.begin() as connection:
                    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SETUP_LOCK})
                    for statement in _DDL:
                        connection.exec_driver_sql(statement)
                break
            except OperationalError:
                if attempt == SETUP_ATTEMPTS - 1:
                    engine.dispose()
                    raise
                time.sleep(1)
        return cls(engine, owner, lease)

    def close(self) -> None:
        self.engine.dispose()

    def _seconds(self) -> dict[str, float]:
        return {"secs": self.lease.total_seconds()}

    def add(self, cohorts: Iterable[str]) -> None:
        """Rows for cohorts seen for the first time: free, token 0."""
        names = [{"cohort": name} for name in cohorts]
        if names:
            with self.engine.begin() as connection:
                connection.execute(text(f"INSERT INTO {FLEET}.leases (cohort) VALUES (:cohort) ON CONFLICT DO NOTHING"), names)

    def heartbeat(self, held: dict[str, int]) -> Beat:
        """Say this replica lives, renew the leases it holds (`held`: cohort -> token) and
        read every lease; those not renewed were lost."""
        renewed: dict[str, int] = {}
        with self.engine.begin() as connection:
            connection.execute(
                text(
                    f"INSERT INTO {FLEET}.replicas (owner, seen_until) VALUES (:owner, now() + make_interval(secs => :secs))"
                    " ON CONFLICT (owner) DO UPDATE SET seen_until = excluded.seen_until"
                ),
                {"owner": self.owner, **self._seconds()},
            )
            for cohort, token in held.items():
                row = connection.execute(
                    text(
                        f"UPDATE {FLEET}.leases SET expires_at = now() + make_interval(secs => :secs)"
                        " WHERE cohort = :cohort AND owner = :owner AND token = :token AND expires_at > now() RETURNING token"
                    ),
                    {"cohort": cohort, "owner": self.owner, "token": token, **self._seconds()},
                ).first()
                if row is not None:
                    renewed[cohort] = token
            replicas = connection.execute(text(f"SELECT count(*) FROM {FLEET}.replicas WHERE seen_until > now()")).scalar_one()
            connection.execute(text(f"DELETE FROM {FLEET}.replicas WHERE seen_until < now() - interval '1 day'"))
            leases = self._leases(connection)
            now = connection.execute(text("SELECT now()")).scalar_one()
        return Beat(renewed=renewed, replicas=int(replicas), leases=leases, now=now)

    def claim(self, cohorts: Iterable[str], count: int) -> dict[str, int]:
        """Take up to `count` free leases among `cohorts`, skipping rows another replica
        is taking at this moment; cohort -> the new fencing token."""
        names = sorted(cohorts)
        if count <= 0 or not names:
            return {}
        with self.engine.begin() as connection:
            rows = connection.execute(
                text(
                    f"SELECT cohort FROM {FLEET}.leases WHERE cohort = ANY(:names) AND NOT done"
                    " AND (owner IS NULL OR expires_at <= now()) ORDER BY cohort LIMIT :count FOR UPDATE SKIP LOCKED"
                ),
                {"names": names, "count": count},
            ).all()
            taken = {}
            for (cohort,) in rows:
                token = connection.execute(
                    text(
                        f"UPDATE {FLEET}.leases SET owner = :owner, token = token + 1,"
                        " expires_at = now() + make_interval(secs => :secs) WHERE cohort = :cohort RETURNING token"
                    ),
                    {"cohort": cohort, "owner": self.owner, **self._seconds()},
                ).scalar_one()
                taken[cohort] = int(token)
        return taken

    def release(self, cohort: str, token: int, *, done: bool = False) -> None:
        """Give a lease back (at once claimable), or mark the cohort finished."""
        with self.engine.begin() as connection:
            connection.execute(
                text(
                    f"UPDATE {FLEET}.leases SET owner = NULL, expires_at = now(), done = done OR :done"
                    " WHERE cohort = :cohort AND owner = :owner AND token = :token"
                ),
                {"cohort": cohort, "owner": self.owner, "token": token, "done": done},
            )

    def leave(self) -> None:
        """A replica that stops gives back what it holds at once."""
        with self.engine.begin() as connection:
            connection.execute(
                text(f"UPDATE {FLEET}.leases SET owner = NULL, expires_at = now() WHERE owner = :owner"), {"owner": self.owner}
            )
            connection.execute(text(f"DELETE FROM {FLEET}.replicas WHERE owner = :owner"), {"owner": self.owner})

    def leases(self) -> list[Lease]:
        with self.engine.begin() as connection:
            return self._leases(connection)

    @staticmethod
    def _leases(connection: Connection) -> list[Lease]:
        rows = connection.execute(text(f"SELECT cohort, owner, token, expires_at, done FROM {FLEET}.leases ORDER BY cohort")).all()
        return [Lease(cohort=r.cohort, owner=r.owner, token=int(r.token), expires_at=r.expires_at, done=bool(r.done)) for r in rows]
