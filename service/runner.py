"""When ticks happen: the only module that knows APScheduler.

The scheduler holds no job that matters: after each tick the next one is set for when
the next message falls due, or the poll interval, whichever is first. Everything else
lives in the store.

Ticks run on the main thread, where signals arrive: a stop while the tick reads an edit
of the files abandons the reading at once (it writes nothing), and the processor-time
bound on reading a busy calendar (a timer signal) holds in the daemon as in `validate`.
"""

from __future__ import annotations

import contextlib
import threading
from datetime import UTC, datetime, timedelta

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger
from sqlalchemy.exc import OperationalError

from .adapters.clock import SimulatedClock
from .config.problems import quote
from .domain.ports import Clock
from .logs import event, logger
from .signals import Stopped, on_stop
from .usecases import Controller, LockLost

REQUEST_CHECK_SECONDS = 2  # how soon a queued command is applied while the daemon runs


class NextTick(BaseTrigger):
    """When the tick runs next: the moment the last tick chose. APScheduler asks after
    each run; there is always an answer, so the job is never dropped, even by a stop
    that comes while a tick runs."""

    def __init__(self, at: datetime, poll: timedelta):
        self.at, self.poll = at, poll

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime:
        if previous_fire_time is None or self.at > previous_fire_time:
            return self.at
        return now + self.poll  # not chosen yet (the tick was stopped): the scheduler is ending anyway


def run_forever(controller: Controller, clock: Clock, poll: timedelta) -> None:
    """Tick until SIGTERM or SIGINT; the effect in progress finishes first."""
    stop = controller.deps.stop
    # The "debug" executor runs each job on the scheduler's own thread: the main thread.
    scheduler = BlockingScheduler(timezone=UTC, executors={"default": {"type": "debug"}})
    next_tick = NextTick(clock.now(), poll)

    def tick() -> None:
        now = clock.now()
        try:
            next_due = controller.tick(now)
        except Stopped:  # the signal's handler has asked the scheduler to shut down
            abandoned(now)
            return
        except LockLost as lost:
            logger.error(f"stopping: {lost}", extra={"event": "lock_lost", "at": now, "fields": {}})
            controller.lost_lock = True
            stop.set()
            next_due = None
        except Exception as error:  # a bug or an outage must not end the daemon: log, try again later
            failed(now, error, f"trying again in {poll}")
            next_due = None
        if stop.is_set():  # a stop that came before the scheduler was running ends it here
            threading.Thread(target=shut_down, daemon=True).start()
            return
        next_tick.at = now + poll if next_due is None else min(max(next_due, clock.now()), now + poll)

    def shut_down() -> None:
        try:
            scheduler.shutdown(wait=True)
        except SchedulerNotRunningError:  # a second signal, or one before the scheduler started
            pass

    def wake_for_requests() -> None:
        """A command queued a request, or the lock was lost: tick now, not at the next poll."""
        store = controller.deps.store
        if stop.is_set() or (store.lock_held() and not store.pending_requests()):
            return
        with contextlib.suppress(JobLookupError):  # no tick waiting: one is running, and will see it
            scheduler.modify_job("tick", next_run_time=clock.now())

    # Shutting down waits for the running tick, so not from inside the handler.
    on_stop(stop, then=lambda: threading.Thread(target=shut_down, daemon=True).start())
    scheduler.add_job(tick, next_tick, id="tick", misfire_grace_time=None)
    scheduler.add_job(wake_for_requests, "interval", seconds=REQUEST_CHECK_SECONDS, id="requests", coalesce=True, misfire_grace_time=None)
    scheduler.start()


def run_simulated(controller: Controller, clock: SimulatedClock, until: datetime | None) -> None:
    """The same ticks on a clock that jumps straight to the next due time, until nothing
    is left to do (or `until`)."""
    stop = controller.deps.stop
    on_stop(stop)
    while not stop.is_set():
        try:
            next_due = controller.tick(clock.now())
        except Stopped:
            abandoned(clock.now())
            return
        except LockLost as lost:
            logger.error(f"stopping: {lost}", extra={"event": "lock_lost", "at": clock.now(), "fields": {}})
            controller.lost_lock = True
            return
        except Exception as error:  # no later tick on a simulated clock: stop, and say why
            failed(clock.now(), error, "stopping")
            raise SystemExit(f"stopped: the tick failed ({outage(error) or type(error).__name__}); nothing is lost, run again") from None
        if next_due is None or (until is not None and next_due > until):
            return
        clock.advance_to(next_due)


def abandoned(now: datetime) -> None:
    event(now, "stopped_reading", "stopping while reading a configuration edit; it was not applied")


def failed(now: datetime, error: Exception, then: str) -> None:
    """Log a failed tick: an outage in one line, a bug with its traceback."""
    extra = {"event": "tick_failed", "at": now, "fields": {}}
    cause = outage(error)
    if cause:
        logger.error(f"tick failed: {cause}; {then}", extra=extra)
    else:
        logger.exception(f"tick failed; {then}", extra=extra)


def outage(error: Exception) -> str | None:
    """What went wrong, when it is the world and not the code: the state's database (a
    full disk, a dropped connection) or a file the daemon writes."""
    if isinstance(error, OperationalError):
        reason = str(error.orig).strip().splitlines()[0] if error.orig else type(error).__name__
        return f"the state could not be read or written: {quote(reason, bare=True, limit=80)}"
    if isinstance(error, OSError):
        return f"a file could not be read or written: {error.strerror or type(error).__name__}"
    return None
