"""One tick of the daemon: the use cases in their order."""

from __future__ import annotations

from datetime import datetime, timedelta

from ..domain.polling import CalendarReads
from ..domain.push import RETRY_WATCH
from ..domain.requests import RequestKind
from .attendance import next_reading, prepare_rooms, read_attendance
from .booking import FREE_BUSY_RETRY, reconcile, sync_messages, write_coming, writing_due
from .calendar_sync import pull_calendar, push_calendar
from .changes import in_force
from .deps import Deps, Inputs, LockLost
from .digest import attention, plan_digest
from .push import keep_watching
from .replies import read_replies
from .requests import apply_requests
from .sending import MAIL_DOWN_WAIT, recover_in_flight, send_due


class Controller:
    """The daemon's memory between ticks: only what can be recomputed at any time."""

    def __init__(self, deps: Deps, *, poll: timedelta = timedelta(minutes=5)):
        self.deps = deps
        self.calendar_reads = CalendarReads(poll, pushed=False)  # when to look for what people changed in the calendar
        self.watch_again: datetime | None = None  # Google refused a push channel: not asked again before then
        self.unplanned: dict[str, str] = {}  # pair id -> why it has no sessions
        self.free_busy_failing: dict[str, datetime] = {}  # calendars Google failed to answer for, since when
        self.inputs: Inputs | None = None  # the configuration in force, pairs under their stored keys
        self.reconciled = False
        self.recovered = False
        self.lost_lock = False  # another daemon may have the state now: this one stopped

    def tick(self, now: datetime) -> datetime | None:
        """One pass: recover after a crash, settle what the configuration in force is,
        apply the coordinator's requests, read what changed in the calendar, book and
        re-plan, bring the calendar up to date, send what is due. Returns when the next
        message falls due."""
        deps = self.deps
        if not deps.store.lock_held():
            raise LockLost("the state's lock was lost (its database connection dropped)")
        given, changed = deps.source.current()
        if not self.recovered:
            recover_in_flight(deps, now)
        # Until this tick ends well: one cut short by an error (a full disk, a dropped
        # database connection) may leave a message `sending`, which the next tick settles.
        self.recovered = False
        # While an edit is held, what it would cancel shrinks as sessions take place: it is
        # worked out each tick, so status and the dashboard show it as it is now.
        if changed or self.inputs is None or deps.store.held_change() is not None:
            self.inputs = in_force(deps, given, now)
        applied = apply_requests(deps, self.inputs, now)
        notified = any(r.kind is RequestKind.CALENDAR_CHANGED for r in applied)  # Google pushed a change
        requested = any(r.kind is not RequestKind.CALENDAR_CHANGED for r in applied)
        if requested:  # an approval or a release changes what is in force
            self.inputs = in_force(deps, given, now)
        inputs = self.inputs
        observed = False
        if deps.calendar and deps.watch:
            self.watch(now)
        if deps.calendar and self.calendar_reads.due(now, notified=notified, next_session=deps.store.next_session_start(now)):
            observed = pull_calendar(deps, deps.calendar, inputs, now)
            self.calendar_reads.read(now, changed=observed)
        if deps.replies:
            observed |= read_replies(deps, deps.replies, inputs, now)
        reads = deps.meet is not None and inputs.cohort.meet.attendance
        if deps.meet:
            prepare_rooms(deps, deps.meet, now)
        if deps.meet and reads:  # before sending: emails after a session say whether it took place
            observed |= read_attendance(deps, deps.meet, inputs, now)
        if changed or observed or requested or not self.reconciled:
            self.unplanned = reconcile(deps, inputs, now, self.free_busy_failing)
            self.reconciled = not self.free_busy_failing  # pairs wait for Google: asked again next tick
        elif (writing := writing_due(deps)) is not None and now >= writing:
            write_coming(deps, inputs, now)
        if deps.calendar and push_calendar(deps, deps.calendar, inputs, now):
            self.calendar_reads.wrote()
            sync_messages(deps, inputs, now)  # an invitation now in the calendar may want a reminder
        sent = send_due(deps, inputs, now)
        if not sent.down and plan_digest(deps, inputs, self.attention(now), now):
            sent = send_due(deps, inputs, now)
        deps.store.record_tick(now)
        self.recovered = True
        next_due = deps.store.next_due()
        writing = writing_due(deps)
        if writing is not None and (next_due is None or writing < next_due):
            next_due = max(writing, now)
        reading = next_reading(deps) if reads else None
        if reading is not None and (next_due is None or reading < next_due):
            next_due = max(reading, now)
        if self.free_busy_failing and (next_due is None or now + FREE_BUSY_RETRY < next_due):
            next_due = now + FREE_BUSY_RETRY
        if sent.down and next_due is not None:  # not back at once: one probe every few minutes
            return max(next_due, sent.until or now + MAIL_DOWN_WAIT)
        return next_due

    def watch(self, now: datetime) -> None:
        """Keep Google's push channel open (with a public HTTPS address): while it is, the
        calendar is read on each notice and once a day, not polled."""
        assert self.deps.watch is not None
        may_open = self.watch_again is None or now >= self.watch_again
        watching = keep_watching(self.deps, self.deps.watch, self.deps.notify_address, now, may_open=may_open)
        if watching.refused:
            self.watch_again = now + RETRY_WATCH
        elif watching.channel is not None:
            self.watch_again = None
        if watching.fresh:  # what changed before the channel opened is read now
            self.calendar_reads.wrote()
        self.calendar_reads.pushed = watching.channel is not None

    def attention(self, now: datetime) -> list[dict[str, str]]:
        return attention(self.deps, self.unplanned, self.deps.source.problems, now)
