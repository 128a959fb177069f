"""The outside world as the use cases see it: each port declares exactly what its callers
use. Adapters subclass the port they implement, so mypy holds them to it; one contract
test suite runs against every implementation."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from enum import StrEnum
from typing import Protocol

from .attendance import Conference, Reading
from .calendar import CalendarError, CalendarEvent, EventRequest
from .goals import Goals
from .model import Pair, Session
from .outbox import Changes, MessageRow, SessionRecord, State, Wanted
from .push import Channel
from .replies import Reply
from .requests import Request, RequestKind
from .retry import Delivery


class Purpose(StrEnum):
    """What a state holds: the real program, or a rehearsal of it on a simulated clock."""

    REAL = "real"
    REHEARSAL = "rehearsal"


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, aware, in UTC. Read once per tick and passed down."""


class MailError(Exception):
    """A message could not be handed over. `kind` says what may happen next; `transport`
    that the transport as a whole is down or refuses us (nothing to do with this message);
    `until`, when the transport said so, that nothing goes through before that time."""

    TRANSIENT, PERMANENT, UNKNOWN = Delivery.TRANSIENT, Delivery.PERMANENT, Delivery.UNKNOWN

    def __init__(self, kind: Delivery, reason: str, *, transport: bool = False, until: datetime | None = None):
        super().__init__(reason)
        self.kind, self.reason, self.transport, self.until = kind, reason, transport, until


class MailConnection(Protocol):
    def ready(self) -> None:
        """Be ready to send (connect and log in if not yet), or raise MailError with
        `transport` set: then no message is tried until a later tick."""

    def send(self, message: EmailMessage) -> None:
        """Hand one message over for delivery, or raise MailError. Returning means the
        transport accepted it (not that it reached the inbox)."""


class Mailer(Protocol):
    @property
    def verify_after(self) -> timedelta | None:
        """How long after a send cut short the transport can tell whether it went out (a
        search index may lag); None when it can never tell."""

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

    def prepare(self, kept: str | None) -> str | None:
        """Make sure the calendar exists and is shared as configured. `kept`: the id of the
        calendar made for this cohort before, if one was. Returns the id to keep from now
        on (None: nothing to keep). Raises CalendarError."""

    def changes(self, token: str | None) -> tuple[list[CalendarEvent], str]:
        """Events changed since `token` (every event when None or expired) and the token
        for next time. Raises CalendarError."""


class CalendarWatch(Protocol):
    """Google's notices of changes to the cohort's calendar (events.watch, channels.stop)."""

    def watch(self, *, channel_id: str, token: str, address: str, ttl: timedelta) -> Channel:
        """Open a channel that posts to `address` whenever an event of the calendar
        changes, each notice carrying `token`. Raises CalendarError."""

    def stop(self, channel: Channel) -> None:
        """Close a channel; one Google no longer knows counts as closed. Raises CalendarError."""


class FreeBusy(Protocol):
    def busy(
        self, emails: Sequence[str], start: datetime, end: datetime
    ) -> tuple[dict[str, list[tuple[datetime, datetime]]], set[str], dict[str, str]]:
        """Busy intervals by email; the emails whose calendars cannot be read (for good:
        their declared hours stand in); and those the service failed to answer for this
        time, with the reason (worth asking again). Raises when it cannot be asked at all."""


class MeetError(Exception):
    """Meet could not be asked; tried again later. `setup`: only the coordinator can fix it
    (an API not enabled, a scope not granted). `gone`: this room is not there (Meet does
    not know it, or the link is not Meet's): asking again cannot help while the link stays."""

    def __init__(self, reason: str, *, setup: bool = False, gone: bool = False):
        super().__init__(reason)
        self.reason, self.setup, self.gone = reason, setup, gone


class Meet(Protocol):
    """Google Meet's rooms and who was in them."""

    def space(self, link: str) -> str:
        """The room (spaces/ID) behind a Meet link, its settings brought to the cohort's
        (who may join without knocking, recording and transcription). Raises MeetError."""

    def conferences(self, space: str, start: datetime, end: datetime) -> list[Conference]:
        """The conferences held in the room (its name, or its Meet link when it was never
        looked up) that started between `start` and `end`, with everyone's joins and
        leaves. Raises MeetError."""


class RepliesError(Exception):
    """The mailbox could not be read; it is tried again on a later tick."""


class Replies(Protocol):
    """The organiser's mailbox, where answers to invitations sent by email arrive."""

    def unread(self) -> list[Reply]:
        """Answers in messages not yet marked done, oldest first. A message that carries no
        answer, or one that cannot be read, is marked done at once (and left unanswered).
        Raises RepliesError when the mailbox cannot be reached."""

    def done(self, messages: Sequence[str]) -> None:
        """Mark these messages done, so a restart does not apply them twice."""


@dataclass(frozen=True, kw_only=True)
class HeldChange:
    """An edit that would cancel too much at once, kept aside until approved."""

    fingerprint: str  # which cancellations it makes, in short (for logs)
    summary: tuple[str, ...]  # what it would do, line by line
    # The pairs whose coming sessions it cancels: an approval holds for these, or fewer
    # (a pair's last session may take place between the approval and the next tick).
    cancelled: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True, order=True)
class Alert:
    """A standing note for the coordinator about one pair (or one of its sessions)."""

    pair_id: str
    session: int  # 0: about the pair as a whole
    text: str


class Store(Protocol):
    """The single source of truth. Every method is one transaction: it happened
    completely or not at all, whatever crashes. Message state changes are guarded by
    the state they leave, so a second writer fails loudly instead of sending twice."""

    # Sessions

    def sessions(self, pair_ids: Iterable[str] | None = None) -> list[SessionRecord]:
        """Every session ever booked (of these pairs), cancelled ones included."""

    def book(self, booked: Sequence[Session], now: datetime) -> list[SessionRecord]:
        """Record sessions as booked: sequence 0, or one more than a cancelled predecessor.
        Returns their records as `sessions` now gives them."""

    def move(
        self, session: Session, now: datetime, reason: str, *, seen_in_calendar: bool = False, rebook: bool = False, agreed: bool = False
    ) -> None:
        """Give a booked session a new time; its sequence goes up by one. `seen_in_calendar`:
        the calendar shows it already (someone moved the event, so its time is agreed);
        `rebook`: chosen because someone declined, which counts towards the limit of
        rebookings; `agreed`: a person chose the time, so later re-checks leave it."""

    def cancel_pair(self, pair_id: str, now: datetime, reason: str, *, held: bool = False) -> None:
        """Mark a pair's booked sessions that have not started cancelled; their sequences go
        up by one. What already happened stays as it was. `held`: an event was deleted by
        hand (the calendar shows it already) and the pair waits for the coordinator
        instead of being booked again."""

    # The calendar's copy of each session

    def sessions_out_of_calendar(self) -> list[SessionRecord]:
        """Sessions whose calendar event is missing or behind what is stored."""

    def next_session_start(self, now: datetime) -> datetime | None:
        """When the next booked session after `now` starts."""

    def event_written(self, pair_id: str, number: int, sequence: int, event: CalendarEvent | None, now: datetime) -> None:
        """The calendar now shows `sequence` of this session (None: the event was removed)."""

    def event_seen(self, pair_id: str, number: int, event: CalendarEvent, now: datetime) -> None:
        """Answers and the Meet link as the calendar last showed them (an answer that
        changed goes into the pair's history)."""

    def set_response(self, pair_id: str, number: int, email: str, response: str, now: datetime) -> None:
        """An attendee's answer to an invitation sent by email (accepted, tentative, declined)."""

    # Meet

    def set_meet_space(self, pair_id: str, number: int, space: str) -> None:
        """The Meet room (spaces/ID) behind the session's link."""

    def record_attendance(self, pair_id: str, number: int, sequence: int, reading: Reading | None, now: datetime) -> None:
        """Meet was asked about the session at `now`: what it showed (None: not settled yet).
        Kept only while the session still has `sequence`: a session moved meanwhile is a
        new one."""

    def record_counter(self, pair_id: str, number: int, email: str, message: str, now: datetime) -> None:
        """Someone proposed another time that does not suit both: they are sent others.
        The same message counted twice (after a crash) counts once."""

    def calendar_token(self) -> str | None:
        """Where the calendar's change feed was last read up to."""

    def set_calendar_token(self, token: str | None) -> None: ...

    def calendar_id(self) -> str | None:
        """The calendar made for this cohort, once it exists."""

    def set_calendar_id(self, calendar_id: str) -> None: ...

    def calendar_channel(self) -> Channel | None:
        """The channel Google posts the calendar's changes through, while one is open."""

    def set_calendar_channel(self, channel: Channel | None) -> None:
        """Keep the channel Google opened (None: none is open); it is no longer opening."""

    def opening_channels(self) -> list[Channel]:
        """Channels asked of Google whose answer was not kept (a crash came in between):
        perhaps open, posting notices nobody takes until they are stopped."""

    def set_opening_channels(self, channels: Sequence[Channel]) -> None: ...

    # Pairs, kept so a pair removed later can still be written to

    def remember_pairs(self, known: Sequence[Pair], now: datetime) -> None:
        """Keep who each pair is, with everyone's hours and time zone."""

    def known_pairs(self, pair_ids: Iterable[str] | None = None) -> dict[str, Pair]:
        """The pairs as last remembered, exactly as they were given."""

    def history(self, pair_id: str) -> list[dict]:
        """What happened to one pair, oldest first: each entry has `at` and `event`
        (session_booked, session_moved, event_written, attendance, sessions_cancelled,
        pair_withdrawn, ...) and the event's details."""

    def withdraw(self, pair_id: str, now: datetime) -> None:
        """The pair left the program: it is not booked again until released."""

    def withdrawn(self) -> set[str]:
        """Pairs that left the program."""

    def release(self, pair_id: str, now: datetime) -> None:
        """A withdrawn or held pair may be planned again: held sessions count as cancelled."""

    # Messages

    def messages(self, pair_ids: Iterable[str] | None = None) -> list[MessageRow]:
        """Every message (of these pairs)."""

    def messaged(self, pair_ids: Iterable[str]) -> set[str]:
        """Those of these pairs that have a message stored, in any state."""

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
        """Failed and uncertain messages, oldest change first."""

    def sent_since(self, since: datetime) -> list[tuple[datetime, str]]:
        """When each message sent from `since` on went, and to whom (a mailbox's daily
        limits count them)."""

    def mark_sending(self, row: MessageRow, message_id: str, now: datetime) -> None:
        """planned -> sending, committed before the transport is called."""

    def mark_sent(self, row: MessageRow, now: datetime, *, was: State = State.SENDING) -> None:
        """-> sent. `was` planned: a check found an earlier attempt went out."""

    def mark_sending_many(self, rows: Sequence[tuple[MessageRow, str]], now: datetime) -> None:
        """planned -> sending for each (row, Message-ID), all in one commit or none: only
        for a transport that can tell afterwards whether each went out (`verify_after`)."""

    def mark_sent_many(self, rows: Sequence[MessageRow], now: datetime) -> None:
        """sending -> sent for each, all in one commit or none."""

    def mark_released(self, rows: Sequence[MessageRow], now: datetime) -> None:
        """sending -> planned again for messages marked in a group but never handed to
        the transport: the attempt does not count."""

    def mark_verify(self, row: MessageRow, at: datetime, error: str, now: datetime) -> None:
        """sending -> planned, to be checked with the transport at `at` before anything else."""

    def mark_unsent(self, row: MessageRow, now: datetime) -> None:
        """A send cut short surely never left: planned again, free to be re-timed or cancelled."""

    def mark_retry(self, row: MessageRow, at: datetime, error: str, now: datetime) -> None:
        """sending -> planned, to be tried again at `at`."""

    def postpone(self, row: MessageRow, at: datetime, now: datetime) -> None:
        """A planned message waits until `at` (the day's sending allowance is used up)."""

    def mark_failed(self, row: MessageRow, error: str, now: datetime, *, was: State = State.SENDING) -> None:
        """-> failed: a human must look."""

    def mark_uncertain(self, row: MessageRow, error: str, now: datetime, *, was: State = State.SENDING) -> None:
        """-> uncertain: it may or may not have gone out; a human must look."""

    def mark_resend(self, row: MessageRow, now: datetime) -> None:
        """sent, failed or uncertain -> planned and due now, attempts counted afresh: the
        coordinator asked for it to go (again)."""

    def mark_skipped(self, row: MessageRow, reason: str, now: datetime) -> None:
        """planned -> skipped: its moment passed."""

    # What needs the coordinator

    def alerts(self) -> list[Alert]:
        """Standing notes for the coordinator, by pair and session."""

    def set_alert(self, pair_id: str, session: int, text: str | None) -> None:
        """Set (or, with None, clear) the note about this pair's session."""

    def digest_state(self, day: int) -> tuple[str | None, bool]:
        """The fingerprint of the last digest, and whether one exists for `day`."""

    def add_digest(self, wanted: Wanted, attention: list[dict[str, str]], fingerprint: str, now: datetime) -> None:
        """Plan the digest's message and keep what it says, together."""

    def digest_content(self, day: int) -> list[dict[str, str]]:
        """What the digest of `day` says."""

    # Requests from the coordinator, applied by the daemon

    def add_request(self, kind: RequestKind, args: Mapping[str, str], now: datetime) -> int:
        """Queue a request; returns its number."""

    def pending_requests(self) -> list[Request]:
        """Requests not yet applied, oldest first."""

    def finish_request(self, request_id: int, outcome: str, now: datetime) -> None:
        """The request was applied (or refused): `outcome` says what happened."""

    def held_change(self) -> HeldChange | None:
        """The edit waiting for the coordinator's approval, if one is."""

    def hold_change(self, change: HeldChange | None) -> None:
        """Record (None: forget) the edit waiting for approval."""

    def approved_change(self) -> frozenset[str]:
        """The pairs whose cancellation the coordinator approved (empty: none)."""

    def approve_change(self, cancelled: Collection[str]) -> None:
        """Approve cancelling these pairs' coming sessions (empty: forget the approval)."""

    # The web pages

    def web_secret(self, make: Callable[[], str]) -> str:
        """The key that signs participant links and sign-ins: the one kept in the state, or
        else `make()`'s, kept from now on (two processes asking at once get the same)."""

    def password_hash(self) -> str | None:
        """The coordinator's password as `mentorship set-password` hashed it."""

    def set_password_hash(self, value: str) -> None: ...

    def requests(self) -> list[Request]:
        """Every request, oldest first, applied ones with their outcome."""

    def goals(self, pair_ids: Iterable[str]) -> dict[str, Goals]:
        """The goals and homework these pairs wrote down, by pair (none for a pair that did not)."""

    def set_goals(self, goals: Goals) -> None:
        """Keep a pair's goals and homework, replacing what it wrote before."""

    def message_counts(self) -> dict[str, dict[State, int]]:
        """How many emails each pair has in each state (the coordinator's under ""), counted
        without reading them: the dashboard of a large cohort needs only these."""

    def emails_by_day(self) -> dict[date, int]:
        """How many emails went out, or are due, on each day (UTC); cancelled and skipped
        ones left out."""

    def note_foreseen(self, days: Mapping[str, Mapping[date, int]]) -> None:
        """For these pairs, the emails foreseen but not written yet (outbox.HORIZON), by
        the day (UTC) each is due; a pair given none has none."""

    def foreseen(self) -> dict[str, dict[date, int]]:
        """Every pair's emails foreseen but not written yet, by day, as last noted."""

    # The daemon itself

    def purpose(self) -> Purpose | None:
        """Whether this state holds the real program or a rehearsal (None: not yet used)."""

    def set_purpose(self, purpose: Purpose) -> None: ...

    def record_tick(self, now: datetime) -> None:
        """The daemon finished a tick at `now` (for health checks)."""

    def last_tick(self) -> datetime | None:
        """When the daemon last finished a tick."""

    def lock_held(self) -> bool:
        """Whether this process still holds the lock that makes it the only daemon on this
        state (a database session that dropped has lost it): nothing is sent without it."""

    def latest_activity(self) -> datetime | None:
        """When the last effect was recorded (a simulated clock resumes from there)."""

    def close(self) -> None:
        """Release the connection and any lock."""
