"""The outside world as the use cases see it. Adapters implement these; tests run one
contract suite against every implementation."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Protocol

from .calendar import CalendarError, CalendarEvent, EventRequest
from .model import Pair, Session
from .outbox import Changes, MessageRow, SessionRecord, State, Wanted


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, aware, in UTC. Read once per tick and passed down."""


class MailError(Exception):
    """A message could not be handed over. `kind` says what may happen next."""

    TRANSIENT = "transient"  # nothing was delivered; trying again later is safe
    PERMANENT = "permanent"  # nothing was delivered; trying again will not help
    UNKNOWN = "unknown"  # it may or may not have been delivered: never resend blindly

    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind, self.reason = kind, reason


class MailConnection(Protocol):
    def send(self, message: EmailMessage) -> None:
        """Hand one message over for delivery, or raise MailError. Returning means the
        transport accepted it (not that it reached the inbox)."""


class Mailer(Protocol):
    # How long after a send cut short the transport can tell whether it went out (a
    # search index may lag); None when it can never tell.
    verify_after: timedelta | None

    def connect(self) -> AbstractContextManager[MailConnection]:
        """A connection for a batch of messages (one SMTP session, say)."""

    def was_sent(self, message_id: str) -> bool | None:
        """Whether a message with this Message-ID was handed over before: True or False
        when the transport can tell (`verify_after` after the attempt), None when not."""


class Calendar(Protocol):
    """Where sessions live as events people see (Google Calendar)."""

    def put(self, requests: Sequence[EventRequest]) -> dict[str, CalendarEvent | CalendarError]:
        """Create each event, or bring an existing one (same id) to the requested state,
        telling the attendees. Keyed by event id; a failure is given per event."""

    def remove(self, event_ids: Sequence[str]) -> dict[str, CalendarError | None]:
        """Cancel these events, telling the attendees; already gone counts as done."""

    def changes(self, token: str | None) -> tuple[list[CalendarEvent], str]:
        """Events changed since `token` (every event when None or expired) and the token
        for next time. Raises CalendarError."""


class FreeBusy(Protocol):
    def busy(self, emails: Sequence[str], start: datetime, end: datetime) -> tuple[dict[str, list[tuple[datetime, datetime]]], set[str]]:
        """Busy intervals by email, and the emails whose calendars cannot be read."""


class Store(Protocol):
    """The single source of truth. Every method is one transaction: it happened
    completely or not at all, whatever crashes. Message state changes are guarded by
    the state they leave, so a second writer fails loudly instead of sending twice."""

    def sessions(self, pair_ids: Iterable[str] | None = None) -> list[SessionRecord]:
        """Every session ever booked (of these pairs), cancelled ones included."""

    def book(self, booked: Sequence[Session], now: datetime) -> None:
        """Record sessions as booked: sequence 0, or one more than a cancelled predecessor."""

    def move(self, session: Session, now: datetime, reason: str) -> None:
        """Give a booked session a new time; its sequence goes up by one."""

    def cancel_pair(self, pair_id: str, now: datetime, reason: str) -> None:
        """Mark a pair's booked sessions cancelled; their sequences go up by one."""

    def remember_pairs(self, known: Sequence[Pair], now: datetime) -> None:
        """Keep who each pair is, so a pair removed later can still be written to."""

    def known_pairs(self, pair_ids: Iterable[str] | None = None) -> dict[str, Pair]: ...

    def messages(self, pair_ids: Iterable[str] | None = None) -> list[MessageRow]:
        """Every message (of these pairs)."""

    def apply(self, changes: Changes, now: datetime) -> None:
        """Insert, re-time, revive and cancel planned messages. Rows that were handed to
        a transport are never touched."""

    def due(self, now: datetime, limit: int) -> list[MessageRow]:
        """Planned messages whose time (or retry time) has come, oldest first."""

    def next_due(self) -> datetime | None:
        """When the next planned message falls due."""

    def in_flight(self) -> list[MessageRow]:
        """Messages left `sending` by a process that stopped mid-send."""

    def messages_needing_a_human(self) -> list[MessageRow]:
        """Failed and uncertain messages."""

    def mark_sending(self, row: MessageRow, message_id: str, now: datetime) -> None: ...
    def mark_sent(self, row: MessageRow, now: datetime) -> None: ...
    def mark_retry(self, row: MessageRow, at: datetime, error: str, now: datetime) -> None: ...
    def mark_failed(self, row: MessageRow, error: str, now: datetime, *, was: State = State.SENDING) -> None: ...
    def mark_uncertain(self, row: MessageRow, error: str, now: datetime) -> None: ...
    def mark_skipped(self, row: MessageRow, reason: str, now: datetime) -> None: ...

    def digest_state(self, day: int) -> tuple[str | None, bool]:
        """The fingerprint of the last digest, and whether one exists for `day`."""

    def add_digest(self, wanted: Wanted, attention: list[dict], fingerprint: str, now: datetime) -> None: ...

    def digest_content(self, day: int) -> list[dict]: ...
