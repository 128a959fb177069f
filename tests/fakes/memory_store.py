"""The Store port in plain dicts, for fast use-case tests.

It copies SqlStore's behaviour, quirks included, and tests/contract/test_store.py runs the
same tests against both. Each method checks everything before it changes anything, so a
method that raises has changed nothing, as a rolled-back transaction would.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

from service.domain.attendance import Reading
from service.domain.calendar import NO_ANSWER, CalendarEvent
from service.domain.goals import Goals
from service.domain.model import Pair, Session
from service.domain.outbox import Changes, MessageKey, MessageRow, SessionRecord, State, Wanted
from service.domain.ports import Alert, HeldChange, Purpose, Store
from service.domain.push import Channel
from service.domain.requests import Request, RequestKind


def _utc(moment: datetime) -> datetime:
    """As the database hands times back: aware, in UTC. Naive ones are refused, as there."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment} cannot be stored")
    return moment.astimezone(UTC)


def _maybe_utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else _utc(moment)


@dataclass
class _Message:
    row: MessageRow
    wake_at: datetime  # the later of due and the next retry
    updated_at: datetime

    def out(self) -> MessageRow:
        return replace(self.row, updated_at=self.updated_at)


class MemoryStore(Store):
    def __init__(self) -> None:
        self._sessions: dict[tuple[str, int], SessionRecord] = {}
        self._messages: dict[MessageKey, _Message] = {}
        self._pairs: dict[str, Pair] = {}
        self._foreseen: dict[str, dict[date, int]] = {}
        self._alerts: dict[tuple[str, int], str] = {}
        self._digests: dict[int, str] = {}  # day -> what it says, as JSON
        self._digest_last: str | None = None
        self._calendar_token: str | None = None
        self._calendar_id: str | None = None
        self._calendar_channel: Channel | None = None
        self._opening: list[Channel] = []
        self._last_tick: datetime | None = None
        self._latest: datetime | None = None
        self.closed = False
        self._purpose: Purpose | None = None
        self._withdrawn: set[str] = set()
        self._countered: dict[tuple[str, int], str] = {}  # the last proposal counted, by session
        self._requests: dict[int, Request] = {}
        self._held_change: HeldChange | None = None
        self._approved: frozenset[str] = frozenset()
        self._web_secret: str | None = None
        self._password_hash: str | None = None
        self._goals: dict[str, Goals] = {}
        self._history: list[dict] = []

    def _did(self, now: datetime, event: str | None = None, pair_id: str | None = None, **detail) -> None:
        """What SqlStore writes to its audit table: latest_activity is the latest of these,
        and the events of a pair are its history."""
        now = _utc(now)
        self._latest = now if self._latest is None else max(self._latest, now)
        if event is not None:
            self._history.append(dict(at=now, event=event, pair_id=pair_id, **detail))

    def history(self, pair_id: str) -> list[dict]:
        return [entry for entry in self._history if entry["pair_id"] == pair_id]

    # Sessions

    def sessions(self, pair_ids: Iterable[str] | None = None) -> list[SessionRecord]:
        wanted = None if pair_ids is None else set(pair_ids)
        return [r for (pair_id, _), r in self._sessions.items() if wanted is None or pair_id in wanted]

    def book(self, booked: Sequence[Session], now: datetime) -> list[SessionRecord]:
        now = _utc(now)
        records = []
        for s in booked:
            session = replace(s, start=_utc(s.start), end=_utc(s.end))
            old = self._sessions.get((s.pair_id, s.number))
            if old is None:
                record = SessionRecord(session=session, cancelled=False, sequence=0, changed_at=now)
            else:  # calendar fields and rebooks stay, as in SqlStore
                record = replace(
                    old,
                    session=session,
                    cancelled=False,
                    held=False,
                    agreed=False,
                    sequence=old.sequence + 1,
                    changed_at=now,
                    previous_start=None,
                    change_reason=None,
                )
            self._sessions[(s.pair_id, s.number)] = record
            records.append(record)
            self._did(now, "session_booked", s.pair_id, number=s.number, start=session.start.isoformat())
        return records

    def move(
        self, session: Session, now: datetime, reason: str, *, seen_in_calendar: bool = False, rebook: bool = False, agreed: bool = False
    ) -> None:
        old = self._sessions[(session.pair_id, session.number)]  # KeyError where SqlStore raises NoResultFound
        self._sessions[(session.pair_id, session.number)] = replace(
            old,
            session=replace(session, start=_utc(session.start), end=_utc(session.end)),
            sequence=old.sequence + 1,
            previous_start=old.session.start,
            change_reason=reason,
            changed_at=_utc(now),
            rebooks=old.rebooks + (1 if rebook else 0),
            event_sequence=old.sequence + 1 if seen_in_calendar else old.event_sequence,
            agreed=agreed or seen_in_calendar,
        )
        self._did(now, "session_moved", session.pair_id, number=session.number, start=_utc(session.start).isoformat(), reason=reason)

    def cancel_pair(self, pair_id: str, now: datetime, reason: str, *, held: bool = False) -> None:
        now = _utc(now)
        for key, old in self._sessions.items():
            if key[0] == pair_id and not old.cancelled and old.session.start > now:
                self._sessions[key] = replace(
                    old,
                    cancelled=True,
                    held=held,
                    sequence=old.sequence + 1,
                    change_reason=reason,
                    changed_at=now,
                    event_sequence=old.sequence + 1 if held else old.event_sequence,
                )
        self._did(now, "sessions_cancelled", pair_id, reason=reason)

    # The calendar's copy of each session

    def next_session_start(self, now: datetime) -> datetime | None:
        return min((r.session.start for r in self._sessions.values() if not r.cancelled and r.session.start > now), default=None)

    def sessions_out_of_calendar(self) -> list[SessionRecord]:
        return [r for r in self._sessions.values() if r.event_sequence != r.sequence]

    def _seen(self, pair_id: str, number: int, event: CalendarEvent, now: datetime, **values) -> None:
        old = self._sessions.get((pair_id, number))
        if old is not None:  # SqlStore's UPDATE finds no row and does nothing
            self._note_answers(pair_id, number, dict(event.responses), old.responses, now)
            meet_link = event.meet_link or old.meet_link  # an event without a link keeps the old one
            new = replace(old, responses=dict(event.responses), conference=event.conference, meet_link=meet_link, **values)
            self._sessions[(pair_id, number)] = new

    def event_written(self, pair_id: str, number: int, sequence: int, event: CalendarEvent | None, now: datetime) -> None:
        old = self._sessions.get((pair_id, number))
        if event is not None:
            self._seen(pair_id, number, event, now, event_sequence=sequence)
        elif old is not None:
            self._sessions[(pair_id, number)] = replace(old, event_sequence=sequence)
        self._did(now, "event_written", pair_id, number=number, sequence=sequence)

    def event_seen(self, pair_id: str, number: int, event: CalendarEvent, now: datetime) -> None:
        self._seen(pair_id, number, event, now)

    def set_response(self, pair_id: str, number: int, email: str, response: str, now: datetime) -> None:
        old = self._sessions.get((pair_id, number))
        if old is not None:
            self._note_answers(pair_id, number, {email: response}, old.responses, now)
            self._sessions[(pair_id, number)] = replace(old, responses={**old.responses, email: response})

    def _note_answers(self, pair_id: str, number: int, answers: dict[str, str], before: Mapping[str, str], now: datetime) -> None:
        for email, answer in sorted(answers.items()):
            if answer != before.get(email) and answer != NO_ANSWER:
                self._did(now, "answer", pair_id, number=number, email=email, answer=answer)

    def set_meet_space(self, pair_id: str, number: int, space: str) -> None:
        old = self._sessions.get((pair_id, number))
        if old is not None:
            self._sessions[(pair_id, number)] = replace(old, meet_space=space)

    def record_attendance(self, pair_id: str, number: int, sequence: int, reading: Reading | None, now: datetime) -> None:
        old = self._sessions.get((pair_id, number))
        if old is not None and old.sequence == sequence:
            kept = old.attendance if reading is None else replace(reading, at=_utc(reading.at))
            self._sessions[(pair_id, number)] = replace(old, attendance=kept, attendance_read_at=_utc(now))
            if reading is not None:  # SqlStore writes its audit row only then
                self._did(now, "attendance", pair_id, number=number, attendance=reading.attendance.value, people=reading.people)

    def record_counter(self, pair_id: str, number: int, email: str, message: str, now: datetime) -> None:
        old = self._sessions.get((pair_id, number))
        if old is not None and self._countered.get((pair_id, number)) != message:
            self._countered[(pair_id, number)] = message
            self._sessions[(pair_id, number)] = replace(old, counters=old.counters + 1, countered_by=email, countered_at=_utc(now))
        self._did(now)

    def calendar_token(self) -> str | None:
        return self._calendar_token

    def set_calendar_token(self, token: str | None) -> None:
        self._calendar_token = token or None  # an empty token is removed, as in SqlStore

    def calendar_id(self) -> str | None:
        return self._calendar_id

    def set_calendar_id(self, calendar_id: str) -> None:
        self._calendar_id = calendar_id

    def calendar_channel(self) -> Channel | None:
        return self._calendar_channel

    def set_calendar_channel(self, channel: Channel | None) -> None:
        self._calendar_channel = channel
        if channel is not None:
            self._opening = [c for c in self._opening if c.id != channel.id]

    def opening_channels(self) -> list[Channel]:
        return list(self._opening)

    def set_opening_channels(self, channels: Sequence[Channel]) -> None:
        self._opening = list(channels)

    # Pairs

    def remember_pairs(self, known: Sequence[Pair], now: datetime) -> None:
        _utc(now)
        self._pairs.update((p.id, p) for p in known)

    def withdraw(self, pair_id: str, now: datetime) -> None:
        if pair_id in self._pairs:
            self._withdrawn.add(pair_id)
        self._did(now, "pair_withdrawn", pair_id)

    def withdrawn(self) -> set[str]:
        return set(self._withdrawn)

    def release(self, pair_id: str, now: datetime) -> None:
        self._withdrawn.discard(pair_id)
        for key, old in self._sessions.items():
            if key[0] == pair_id and old.held:
                self._sessions[key] = replace(old, held=False)
        self._did(now, "pair_released", pair_id)

    def known_pairs(self, pair_ids: Iterable[str] | None = None) -> dict[str, Pair]:
        wanted = None if pair_ids is None else set(pair_ids)
        return {pair_id: p for pair_id, p in self._pairs.items() if wanted is None or pair_id in wanted}

    # Messages

    def messages(self, pair_ids: Iterable[str] | None = None) -> list[MessageRow]:
        wanted = None if pair_ids is None else set(pair_ids)
        return [m.out() for m in self._messages.values() if wanted is None or m.row.pair_id in wanted]

    def messaged(self, pair_ids: Iterable[str]) -> set[str]:
        return set(pair_ids) & {m.row.pair_id for m in self._messages.values()}

    def _insert(self, items: Sequence[Wanted], now: datetime) -> None:
        """New planned rows; a key already stored (or given twice) fails before any is added."""
        keys = [w.key for w in items]
        if len(set(keys)) != len(keys) or any(k in self._messages for k in keys):
            raise ValueError(f"a message is already stored: {keys}")
        for w in items:
            row = MessageRow(
                pair_id=w.pair_id,
                stage=w.stage,
                recipient=w.recipient,
                revision=w.revision,
                role=w.role,
                due=_utc(w.due),
                expires=_maybe_utc(w.expires),
                state=State.PLANNED,
            )
            self._messages[w.key] = _Message(row=row, wake_at=row.due, updated_at=now)

    def apply(self, changes: Changes, now: datetime) -> None:
        if not len(changes):
            return
        now = _utc(now)
        self._insert(changes.insert, now)
        for w in changes.retime + changes.revive:
            m = self._messages.get(w.key)
            if m is not None and m.row.state in (State.PLANNED, State.CANCELLED) and not m.row.verify:
                m.row = replace(m.row, due=_utc(w.due), expires=_maybe_utc(w.expires), state=State.PLANNED)
                m.wake_at, m.updated_at = m.row.due, now
        for key in changes.cancel:
            m = self._messages.get(key)
            if m is not None and m.row.state is State.PLANNED and not m.row.verify:
                m.row, m.updated_at = replace(m.row, state=State.CANCELLED), now
        self._did(now)

    def due(self, now: datetime, limit: int) -> list[MessageRow]:
        ready = [m for m in self._messages.values() if m.row.state is State.PLANNED and m.wake_at <= now]
        ready.sort(key=lambda m: (m.wake_at, m.row.pair_id, m.row.stage.value, m.row.recipient))
        return [m.out() for m in ready[:limit]]

    def next_due(self) -> datetime | None:
        return min((m.wake_at for m in self._messages.values() if m.row.state is State.PLANNED), default=None)

    def in_flight(self) -> list[MessageRow]:
        return [m.out() for m in self._messages.values() if m.row.state is State.SENDING]

    def messages_needing_a_human(self) -> list[MessageRow]:
        waiting = [m for m in self._messages.values() if m.row.state in (State.FAILED, State.UNCERTAIN)]
        return [m.out() for m in sorted(waiting, key=lambda m: m.updated_at)]

    def sent_since(self, since: datetime) -> list[tuple[datetime, str]]:
        rows = [m.row for m in self._messages.values()]
        return [(r.sent_at, r.recipient) for r in rows if r.state is State.SENT and r.sent_at is not None and r.sent_at >= since]

    def _transition(self, row: MessageRow, expected: State, now: datetime, wake_at: datetime | None = None, **values) -> None:
        m = self._messages.get(row.key)
        if m is None or m.row.state is not expected:
            raise RuntimeError(f"message {row.key} was not {expected.value}; another process may be running")
        m.row, m.updated_at = replace(m.row, **values), _utc(now)
        if wake_at is not None:
            m.wake_at = _utc(wake_at)
        self._did(now)

    def mark_sending(self, row: MessageRow, message_id: str, now: datetime) -> None:
        attempts = self._messages[row.key].row.attempts + 1 if row.key in self._messages else 0
        self._transition(row, State.PLANNED, now, state=State.SENDING, message_id=message_id, verify=False, attempts=attempts)

    def mark_sent(self, row: MessageRow, now: datetime, *, was: State = State.SENDING) -> None:
        self._transition(row, was, now, state=State.SENT, sent_at=_utc(now), last_error=None, verify=False)

    def _all_in(self, rows: Iterable[MessageRow], expected: State) -> None:
        """All or none, as one commit: every row checked before any changes."""
        for row in rows:
            m = self._messages.get(row.key)
            if m is None or m.row.state is not expected:
                raise RuntimeError(f"message {row.key} was not {expected.value}; another process may be running")

    def mark_sending_many(self, rows: Sequence[tuple[MessageRow, str]], now: datetime) -> None:
        self._all_in((row for row, _ in rows), State.PLANNED)
        for row, message_id in rows:
            self.mark_sending(row, message_id, now)

    def mark_sent_many(self, rows: Sequence[MessageRow], now: datetime) -> None:
        self._all_in(rows, State.SENDING)
        for row in rows:
            self.mark_sent(row, now)

    def mark_released(self, rows: Sequence[MessageRow], now: datetime) -> None:
        self._all_in(rows, State.SENDING)
        for row in rows:
            attempts = self._messages[row.key].row.attempts - 1
            self._transition(row, State.SENDING, now, state=State.PLANNED, attempts=attempts)

    def mark_verify(self, row: MessageRow, at: datetime, error: str, now: datetime) -> None:
        self._transition(row, State.SENDING, now, wake_at=at, state=State.PLANNED, verify=True, last_error=error)

    def mark_unsent(self, row: MessageRow, now: datetime) -> None:
        self._transition(row, State.PLANNED, now, wake_at=row.due, verify=False)

    def mark_resend(self, row: MessageRow, now: datetime) -> None:
        self._transition(row, row.state, now, wake_at=now, state=State.PLANNED, attempts=0, last_error=None, verify=False, sent_at=None)

    def mark_retry(self, row: MessageRow, at: datetime, error: str, now: datetime) -> None:
        self._transition(row, State.SENDING, now, wake_at=at, state=State.PLANNED, last_error=error)

    def postpone(self, row: MessageRow, at: datetime, now: datetime) -> None:
        self._transition(row, State.PLANNED, now, wake_at=at)

    def mark_failed(self, row: MessageRow, error: str, now: datetime, *, was: State = State.SENDING) -> None:
        self._transition(row, was, now, state=State.FAILED, last_error=error, verify=False)

    def mark_uncertain(self, row: MessageRow, error: str, now: datetime, *, was: State = State.SENDING) -> None:
        self._transition(row, was, now, state=State.UNCERTAIN, last_error=error, verify=False)

    def mark_skipped(self, row: MessageRow, reason: str, now: datetime) -> None:
        self._transition(row, State.PLANNED, now, state=State.SKIPPED, last_error=reason)

    # What needs the coordinator

    def alerts(self) -> list[Alert]:
        return sorted(Alert(pair_id=p, session=n, text=text) for (p, n), text in self._alerts.items())

    def set_alert(self, pair_id: str, session: int, text: str | None) -> None:
        if text:
            self._alerts[(pair_id, session)] = text
        else:  # None or empty: cleared, as in SqlStore
            self._alerts.pop((pair_id, session), None)

    def digest_state(self, day: int) -> tuple[str | None, bool]:
        return self._digest_last, day in self._digests

    def add_digest(self, wanted: Wanted, attention: list[dict[str, str]], fingerprint: str, now: datetime) -> None:
        self._insert([wanted], _utc(now))  # not in SqlStore's audit: latest_activity stays
        self._digests[wanted.revision] = json.dumps(attention)
        self._digest_last = fingerprint or None

    def digest_content(self, day: int) -> list[dict[str, str]]:
        return json.loads(self._digests.get(day, "[]"))

    # The daemon itself

    def add_request(self, kind: RequestKind, args: Mapping[str, str], now: datetime) -> int:
        number = max(self._requests, default=0) + 1
        self._requests[number] = Request(id=number, kind=kind, args=dict(args), created_at=_utc(now))
        return number

    def pending_requests(self) -> list[Request]:
        return [r for _, r in sorted(self._requests.items()) if r.done_at is None]

    def finish_request(self, request_id: int, outcome: str, now: datetime) -> None:
        if request_id in self._requests:
            self._requests[request_id] = replace(self._requests[request_id], done_at=_utc(now), outcome=outcome)
        self._did(now)

    def held_change(self) -> HeldChange | None:
        return self._held_change

    def hold_change(self, change: HeldChange | None) -> None:
        self._held_change = change

    def approved_change(self) -> frozenset[str]:
        return self._approved

    def approve_change(self, cancelled: Collection[str]) -> None:
        self._approved = frozenset(cancelled)

    def web_secret(self, make: Callable[[], str]) -> str:
        if self._web_secret is None:
            self._web_secret = make()
        return self._web_secret

    def password_hash(self) -> str | None:
        return self._password_hash

    def set_password_hash(self, value: str) -> None:
        self._password_hash = value

    def requests(self) -> list[Request]:
        return [self._requests[number] for number in sorted(self._requests)]

    def goals(self, pair_ids: Iterable[str]) -> dict[str, Goals]:
        return {pair_id: self._goals[pair_id] for pair_id in pair_ids if pair_id in self._goals}

    def set_goals(self, goals: Goals) -> None:
        self._goals[goals.pair_id] = replace(goals, written_at=_utc(goals.written_at))
        self._did(goals.written_at)

    def message_counts(self) -> dict[str, dict[State, int]]:
        counts: dict[str, dict[State, int]] = {}
        for message in self._messages.values():
            of_pair = counts.setdefault(message.row.pair_id, {})
            of_pair[message.row.state] = of_pair.get(message.row.state, 0) + 1
        return counts

    def note_foreseen(self, days: Mapping[str, Mapping[date, int]]) -> None:
        for pair_id, of_pair in days.items():
            if of_pair:
                self._foreseen[pair_id] = dict(of_pair)
            else:
                self._foreseen.pop(pair_id, None)

    def foreseen(self) -> dict[str, dict[date, int]]:
        return {pair_id: dict(of_pair) for pair_id, of_pair in self._foreseen.items()}

    def emails_by_day(self) -> dict[date, int]:
        days: dict[date, int] = {}
        for message in self._messages.values():
            if message.row.state not in (State.CANCELLED, State.SKIPPED):
                day = (message.row.sent_at or message.row.due).astimezone(UTC).date()
                days[day] = days.get(day, 0) + 1
        return days

    def lock_held(self) -> bool:
        return not self.closed

    def purpose(self) -> Purpose | None:
        return self._purpose

    def set_purpose(self, purpose: Purpose) -> None:
        self._purpose = purpose

    def record_tick(self, now: datetime) -> None:
        self._last_tick = _utc(now)  # not in SqlStore's audit: latest_activity stays

    def last_tick(self) -> datetime | None:
        return self._last_tick

    def latest_activity(self) -> datetime | None:
        return self._latest

    def close(self) -> None:
        self.closed = True
