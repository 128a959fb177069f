"""Gmail's daily sending limits as a budget: which due emails may go now, and when the
others may. Pure: the caller gives the sends of the last day and the time.

Gmail counts over a rolling 24 hours, per mailbox (messages, and distinct recipients);
over either limit it refuses everything for up to a day. So emails tied to a moment
(invitations, preparation before a session, reminders, moves) go first; those that can
wait (follow-ups, check-ins, the wrap-up, the welcome) leave part of the day's allowance
to them and wait up to MAX_DELAY for room.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from .outbox import MessageRow
from .stages import Stage

WINDOW = timedelta(hours=24)
MAX_DELAY = timedelta(days=3)  # a movable email waits at most this long past its time
MOVABLE = frozenset({Stage.WELCOME, Stage.SESSION1_FOLLOWUP, Stage.HOMEWORK_CHECKIN, Stage.PROGRAM_WRAPUP, Stage.FOLLOW_UP})
EXPIRY_MARGIN = timedelta(hours=12)  # a movable email is not held this close to its expiry


@dataclass(frozen=True)
class Budget:
    """`per_day`: messages in any 24 hours; `recipients_per_day`: distinct recipients in
    any 24 hours (None: not counted); `reserve`: the share of the day movable emails
    leave for emails tied to a moment."""

    per_day: int
    recipients_per_day: int | None = None
    reserve: float = 0.2

    @property
    def movable_per_day(self) -> int:
        return self.per_day - int(self.per_day * self.reserve)


@dataclass(frozen=True)
class Sent:
    at: datetime
    recipient: str


@dataclass(frozen=True)
class Decision:
    now: list[MessageRow]  # to send now, in this order
    later: list[tuple[MessageRow, datetime]]  # held back, and when each may be tried again


def urgent(row: MessageRow, now: datetime) -> bool:
    """Whether an email must go at its time: not a movable one, or one that waited long
    enough, or one about to become pointless."""
    if row.stage not in MOVABLE or now - row.due >= MAX_DELAY:
        return True
    return row.expires is not None and row.expires - now <= EXPIRY_MARGIN


def decide(budget: Budget, due: Sequence[MessageRow], sent: Iterable[Sent], now: datetime) -> Decision:
    """Which of the due emails go now. Urgent ones first (oldest first) while the day's
    allowance lasts; movable ones while they leave the reserve. Each one held back gets
    the moment a send of the last day ages out and makes room for it."""
    recent = sorted((s for s in sent if now - s.at < WINDOW), key=lambda s: s.at)
    count = len(recent)
    recipients = {s.recipient.lower() for s in recent}
    ages_out = [s.at + WINDOW for s in recent]  # when each past send stops counting
    ordered = sorted(due, key=lambda row: (not urgent(row, now), row.due))
    chosen: list[MessageRow] = []
    later: list[tuple[MessageRow, datetime]] = []
    waiting = {True: 0, False: 0}  # held back so far, urgent and not
    for row in ordered:
        pressing = urgent(row, now)
        limit = budget.per_day if pressing else budget.movable_per_day
        new_recipient = row.recipient.lower() not in recipients
        over_recipients = budget.recipients_per_day is not None and new_recipient and len(recipients) >= budget.recipients_per_day
        if count < limit and not over_recipients:
            chosen.append(row)
            count += 1
            recipients.add(row.recipient.lower())
            continue
        # Room comes when enough earlier sends age out: one more for each row held before it.
        needed = max(0, count - limit) + waiting[pressing]
        at = ages_out[min(needed, len(ages_out) - 1)] if ages_out else now + WINDOW
        if not pressing:
            at = min(at, row.due + MAX_DELAY)
            if row.expires is not None:
                at = min(at, max(now, row.expires - EXPIRY_MARGIN))
        later.append((row, max(at, now)))
        waiting[pressing] += 1
    return Decision(now=chosen, later=later)
