"""Which messages should exist, and what to change so the stored ones match: pure.

A message's identity is (pair, stage, recipient, revision). Revision 0 is the program's
own email; a calendar invitation gets a new revision every time its session changes, so
an update is a new message while the old one stays as sent.
"""

from __future__ import annotations

import functools
import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import NamedTuple

from .attendance import Attendance, Reading
from .calendar import NO_ANSWER
from .model import Cohort, Pair, Person, Role, Session
from .stages import NUDGE_BEFORE, STAGES, Kind, Stage, about_session, of_kind
from .timeline import dues

MessageKey = tuple[str, Stage, str, int]  # (pair, stage, recipient, revision)

# A message is written into the outbox this long before it is due, not when its session is
# booked: a large cohort's first plan writes only what comes soon, and a message further
# off is planned from the session as it stands then. Until written, it is foreseen (see
# usecases/schedule.py), derived again at any time from the stored sessions.
HORIZON = timedelta(days=7)
# Written in batches: a tick that writes also writes what comes within the horizon during
# the next day, so that writing takes one tick a day, not one per email.
WRITE_STEP = timedelta(days=1)


class State(StrEnum):
    PLANNED = "planned"  # waiting for its time (or for a retry)
    SENDING = "sending"  # committed just before the transport was called
    SENT = "sent"
    FAILED = "failed"  # the transport refused it for good: a human must look
    UNCERTAIN = "uncertain"  # may or may not have gone out: a human must look
    CANCELLED = "cancelled"  # no longer wanted (pair removed, session moved)
    SKIPPED = "skipped"  # its moment passed before it could be sent


HANDED_OVER = {State.SENDING, State.SENT, State.UNCERTAIN}
# What the coordinator may send again: an email that went, failed for good, or may have gone.
RESENDABLE = {State.SENT, State.FAILED, State.UNCERTAIN}


class Wanted(NamedTuple):
    """A message that should exist. A tuple, ordered by due time first: a large cohort's
    first plan makes one for each of its emails (180,000 at 10,000 pairs)."""

    due: datetime
    pair_id: str
    stage: Stage
    recipient: str
    revision: int
    role: Role
    expires: datetime | None = None  # not worth sending after this

    @property
    def key(self) -> MessageKey:
        return (self.pair_id, self.stage, self.recipient, self.revision)


@dataclass(frozen=True, kw_only=True)
class MessageRow:
    pair_id: str
    stage: Stage
    recipient: str
    revision: int
    role: Role
    due: datetime
    expires: datetime | None
    state: State
    message_id: str | None = None
    verify: bool = False  # it may have gone out: ask the transport before sending again
    attempts: int = 0
    last_error: str | None = None
    sent_at: datetime | None = None
    updated_at: datetime | None = None  # its last change of state

    @property
    def key(self) -> MessageKey:
        return (self.pair_id, self.stage, self.recipient, self.revision)

    @property
    def ref(self) -> str:
        """A short handle for the coordinator's commands: m- and 8 hex digits of the key."""
        return message_ref(self.key)


def message_ref(key: MessageKey) -> str:
    pair_id, stage, recipient, revision = key
    return "m-" + hashlib.sha256(f"{pair_id}\x1f{stage.value}\x1f{recipient}\x1f{revision}".encode()).hexdigest()[:8]


@dataclass(frozen=True, kw_only=True)
class SessionRecord:
    """A stored session as the outbox needs it."""

    session: Session
    cancelled: bool
    sequence: int
    changed_at: datetime
    previous_start: datetime | None = None  # where a moved session was before
    change_reason: str | None = None
    event_sequence: int = -1  # the sequence the calendar shows (-1: no event yet)
    meet_link: str | None = None
    conference: str | None = None
    responses: Mapping[str, str] = field(default_factory=dict)
    rebooks: int = 0  # times it was moved because someone declined
    held: bool = False  # cancelled because its event was deleted by hand: not booked again
    counters: int = 0  # times someone proposed another time that did not suit both
    countered_by: str | None = None  # who proposed last, and when: they get other times
    countered_at: datetime | None = None
    agreed: bool = False  # a person chose this time (moved the event, proposed it): never re-planned
    meet_space: str | None = None  # the Meet room (spaces/ID) behind its link, once looked up
    attendance: Reading | None = None  # as last decided from Meet (perhaps for an earlier sequence)
    attendance_read_at: datetime | None = None  # when Meet was last asked about it

    @property
    def in_calendar(self) -> bool:
        """Whether the calendar shows what we store."""
        return self.event_sequence == self.sequence

    @property
    def attended(self) -> Attendance | None:
        """Whether the session as it is now took place (None: not known, or not yet)."""
        reading = self.attendance
        return reading.attendance if reading is not None and reading.sequence == self.sequence else None


@dataclass(frozen=True)
class Changes:
    insert: tuple[Wanted, ...] = ()
    retime: tuple[Wanted, ...] = ()  # planned rows whose due or expiry moved
    revive: tuple[Wanted, ...] = ()  # cancelled rows wanted again
    cancel: tuple[MessageKey, ...] = ()  # planned rows no longer wanted

    def __len__(self) -> int:
        return len(self.insert) + len(self.retime) + len(self.revive) + len(self.cancel)


def wanted_for_pair(
    cohort: Cohort,
    pair: Pair,
    records: Sequence[SessionRecord],
    handed_over: set[tuple[str, Stage, str]],
) -> list[Wanted]:
    """Every message a pair should get, given its stored sessions (`records`, sorted by
    number) and the (pair, stage, recipient) already handed to a transport."""
    if len(records) != 2:
        return []
    sessions = tuple(r.session for r in records)
    if any(r.cancelled for r in records):
        # Google tells attendees of a cancelled event itself.
        return _cancellations(pair, records, handed_over) if cohort.calendar == "imip" else []
    wanted = _missed(pair, records)
    if cohort.calendar == "google":
        wanted += _updates(pair, records) + _nudges(pair, records)
    else:
        wanted += _other_times(pair, records)
    missed = [record.attended is Attendance.MISSED for record in records]
    for stage, role, reader, due in dues(cohort, pair, sessions):
        info = STAGES[stage]
        if info.after and missed[info.after - 1]:
            continue  # waits for the session to be booked again (and to happen)
        revision = 0
        if info.kind is Kind.INVITATION and info.session:
            record = records[info.session - 1]
            revision = record.sequence
            if revision:
                due = max(due, record.changed_at)  # an update goes out when it happens
        wanted.append(Wanted(due, pair.id, stage, reader.email, revision, role, expires(stage, sessions)))
    return wanted


def _about(kind: Kind, records: Sequence[SessionRecord]) -> list[tuple[Stage, SessionRecord]]:
    """Each stage of this kind with the record of the session it is about."""
    return [(stage, records[number - 1]) for stage, number in _sessions_of(kind)]


@functools.cache
def _sessions_of(kind: Kind) -> tuple[tuple[Stage, int], ...]:
    return tuple((stage, number) for stage in of_kind(kind) if (number := STAGES[stage].session))


def _updates(pair: Pair, records: Sequence[SessionRecord]) -> list[Wanted]:
    """Word of a moved session, to both people, when it moves."""
    return [
        _notice(pair, stage, record, role, person)
        for stage, record in _about(Kind.UPDATE, records)
        if record.previous_start is not None
        for role, person in _people(pair)
    ]


def _nudges(pair: Pair, records: Sequence[SessionRecord]) -> list[Wanted]:
    """For each person who has not answered the invitation (as the calendar last showed)."""
    return [
        _notice(pair, stage, record, role, person, due=record.session.start - NUDGE_BEFORE)
        for stage, record in _about(Kind.NUDGE, records)
        if record.in_calendar
        for role, person in _people(pair)
        if record.responses.get(person.email) == NO_ANSWER
    ]


def _missed(pair: Pair, records: Sequence[SessionRecord]) -> list[Wanted]:
    """Word to both people when a session did not take place (nobody came to its Meet, or
    one of them said so), as soon as that is known. Moved to a new time, the session is what it is again, and the word is no longer due."""
    return [
        Wanted(
            due=record.attendance.at,
            pair_id=pair.id,
            stage=stage,
            recipient=person.email,
            revision=record.sequence,
            role=role,
        )
        for stage, record in _about(Kind.MISSED, records)
        if record.attended is Attendance.MISSED and record.attendance is not None
        for role, person in _people(pair)
    ]


def _other_times(pair: Pair, records: Sequence[SessionRecord]) -> list[Wanted]:
    """To whoever proposed a time that did not suit both: times that do (one per proposal)."""
    return [
        _notice(pair, stage, record, role, person, due=record.countered_at, revision=record.counters)
        for stage, record in _about(Kind.OTHER_TIMES, records)
        if record.counters and record.countered_at is not None
        for role, person in _people(pair)
        if person.email == record.countered_by
    ]


def _cancellations(pair: Pair, records: Sequence[SessionRecord], handed_over: set[tuple[str, Stage, str]]) -> list[Wanted]:
    """A cancellation for each cancelled session whose invitation someone received (one
    that took place stays as it was)."""
    return [
        _notice(pair, stage, record, role, person)
        for stage, record in _about(Kind.CANCELLATION, records)
        if record.cancelled
        for role, person in _people(pair)
        if (pair.id, about_session(Kind.INVITATION, record.session.number), person.email) in handed_over
    ]


def _notice(
    pair: Pair, stage: Stage, record: SessionRecord, role: Role, person: Person, *, due: datetime | None = None, revision: int | None = None
) -> Wanted:
    """Word about one session: due when it changed (unless told), pointless once it starts."""
    return Wanted(
        due=record.changed_at if due is None else due,
        pair_id=pair.id,
        stage=stage,
        recipient=person.email,
        revision=record.sequence if revision is None else revision,
        role=role,
        expires=record.session.start,
    )


def _people(pair: Pair) -> tuple[tuple[Role, Person], ...]:
    return ((Role.MENTOR, pair.mentor), (Role.MENTEE, pair.mentee))


def expires(stage: Stage, sessions: tuple[Session, ...]) -> datetime | None:
    """After this moment a stage's email has lost its point."""
    number = STAGES[stage].expires_at
    return sessions[number - 1].start if number else None


def changes(wanted: Iterable[Wanted], stored: Iterable[MessageRow]) -> Changes:
    """What to do to the stored rows (of the same pairs) so they match `wanted`.

    Only planned and cancelled rows ever change: what was handed to a transport, or
    given up on, is history.
    """
    by_key = {row.key: row for row in stored}
    if not by_key:  # a pair just booked: everything is new (the common case of a large first plan)
        return Changes(insert=tuple(wanted))
    wanted_keys = set()
    insert, retime, revive = [], [], []
    for item in wanted:
        key = item.key
        wanted_keys.add(key)
        row = by_key.get(key)
        if row is None:
            insert.append(item)
        elif _open(row) and (row.due != item.due or row.expires != item.expires):
            retime.append(item)
        elif row.state is State.CANCELLED:
            revive.append(item)
    cancel = [row.key for row in by_key.values() if _open(row) and row.key not in wanted_keys]
    return Changes(tuple(insert), tuple(retime), tuple(revive), tuple(cancel))


def _open(row: MessageRow) -> bool:
    """Planned and never handed over: free to re-time or cancel. A row waiting to be
    verified may already be in someone's inbox."""
    return row.state is State.PLANNED and not row.verify


def plan_changes(
    cohort: Cohort, pairs: Mapping[str, Pair], records: Mapping[str, Sequence[SessionRecord]], stored: Sequence[MessageRow]
) -> Changes:
    """What to do to the stored rows of these pairs (`stored`) so they match the messages
    their sessions (`records`, by pair) call for."""
    received = handed_over(stored)
    wanted = [w for pair_id, pair in pairs.items() for w in wanted_for_pair(cohort, pair, records[pair_id], received)]
    return changes(wanted, stored)


class Foreseen(NamedTuple):
    """Some pairs' messages as seen from now: the changes to make now, and for each pair
    the new messages left for later (due after the edge): the days they fall on (UTC, so
    many a day) and when the first of them is due."""

    change: Changes
    days: dict[str, Counter[date]]
    first_later: dict[str, datetime]


def foresee(
    cohort: Cohort,
    pairs: Mapping[str, Pair],
    records: Mapping[str, Sequence[SessionRecord]],
    stored: Sequence[MessageRow],
    edge: datetime | None,
) -> Foreseen:
    """plan_changes, with only the new messages due by `edge` inserted now (all of them
    when None)."""
    change = plan_changes(cohort, pairs, records, stored)
    soon, later = within(change.insert, edge) if edge is not None else (list(change.insert), {})
    days = {pair_id: Counter(w.due.astimezone(UTC).date() for w in later.get(pair_id, ())) for pair_id in pairs}
    first_later = {pair_id: min(w.due for w in items) for pair_id, items in later.items()}
    return Foreseen(replace(change, insert=tuple(soon)), days, first_later)


def within(insert: Iterable[Wanted], edge: datetime) -> tuple[list[Wanted], dict[str, list[Wanted]]]:
    """The new messages due by `edge`, to be written now, and the others by pair (they are
    written when the horizon reaches them)."""
    now_due: list[Wanted] = []
    later: dict[str, list[Wanted]] = {}
    for item in insert:
        if item.due <= edge:
            now_due.append(item)
        else:
            later.setdefault(item.pair_id, []).append(item)
    return now_due, later


def handed_over(rows: Iterable[MessageRow]) -> set[tuple[str, Stage, str]]:
    return {(r.pair_id, r.stage, r.recipient) for r in rows if r.state in HANDED_OVER or r.verify}


def by_pair(records: Iterable[SessionRecord]) -> Mapping[str, list[SessionRecord]]:
    grouped: dict[str, list[SessionRecord]] = {}
    for record in sorted(records, key=lambda r: (r.session.pair_id, r.session.number)):
        grouped.setdefault(record.session.pair_id, []).append(record)
    return grouped
