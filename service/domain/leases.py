"""Dividing cohorts among replicas: pure decisions over the lease rows.

A lease says which replica works a cohort, until when, and under which fencing token
(incremented on every take-over). A replica works a cohort only while it holds the
lease, and sends only while the lease has at least a margin left, so a replica that was
replaced can never send beside the one that replaced it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from math import ceil

DEFAULT_LEASE = timedelta(seconds=30)


class LeaseLost(Exception):
    """This replica no longer holds the cohort's lease (or too little of it is left to
    send): another replica may work the cohort now, so this one must stop at once."""


@dataclass(frozen=True, kw_only=True)
class Lease:
    cohort: str
    owner: str | None
    token: int  # the fencing token: incremented on every take-over
    expires_at: datetime
    done: bool = False  # a rehearsal that has nothing left to do


@dataclass(frozen=True, kw_only=True)
class Moves:
    claim: int  # how many free leases to try to take
    release: tuple[str, ...]  # held leases to give back: more than a fair share


def renew_every(lease: timedelta) -> timedelta:
    """How often a held lease is renewed: three chances before it runs out."""
    return lease / 3


def margin(lease: timedelta) -> timedelta:
    """How much of a lease must be left to start an effect: the effect has that long to
    finish before another replica may take over."""
    return lease / 3


def held_by(lease: Lease, owner: str, now: datetime) -> bool:
    return lease.owner == owner and lease.expires_at > now


def free(lease: Lease, now: datetime) -> bool:
    """Nobody works the cohort: never claimed, given back, or its holder stopped renewing."""
    return not lease.done and (lease.owner is None or lease.expires_at <= now)


def fair_share(cohorts: int, replicas: int) -> int:
    return ceil(cohorts / max(replicas, 1))


def divide(leases: Sequence[Lease], owner: str, replicas: int, now: datetime) -> Moves:
    """What `owner` should do so that the live replicas share the unfinished cohorts
    evenly: take free ones up to its fair share, give back the ones beyond it (the last
    by name, so a replica keeps the same cohorts while the count of replicas holds)."""
    active = [lease for lease in leases if not lease.done]
    share = fair_share(len(active), replicas)
    mine = sorted(lease.cohort for lease in active if held_by(lease, owner, now))
    available = sum(1 for lease in active if free(lease, now))
    return Moves(claim=min(max(share - len(mine), 0), available), release=tuple(mine[share:]))
