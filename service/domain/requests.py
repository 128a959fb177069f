"""What the coordinator asks of the running program. Commands (and later web pages) write
requests; the daemon applies them on its next tick, so nothing races it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class RequestKind(StrEnum):
    APPROVE = "approve"  # apply the change set held for approval (args: fingerprint)
    RESCHEDULE = "reschedule"  # args: pair, session, at (ISO time) or auto
    WITHDRAW = "withdraw"  # args: pair (one of the person's pairs each)
    RELEASE = "release"  # args: pair: held or withdrawn, planned again
    RESOLVE = "resolve"  # args: message (ref), outcome: sent | resend
    GOALS = "goals"  # args: pair, goals, homework, by (a participant, on the goals page)
    RESEND = "resend"  # args: message (ref): send a sent or failed email again
    MET = "met"  # args: pair, session, sequence, met (yes | no), by (a participant, on "Did you meet?")
    CALENDAR_CHANGED = "calendar_changed"  # args: message (Google's number): read the calendar now (push)


@dataclass(frozen=True, kw_only=True)
class Request:
    id: int
    kind: RequestKind
    args: Mapping[str, str] = field(default_factory=dict)
    created_at: datetime
    done_at: datetime | None = None
    outcome: str | None = None  # what the daemon did, in words
