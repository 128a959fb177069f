"""When ticks happen: the only module that knows APScheduler.

The scheduler holds no job that matters: after each tick the next one is set for when
the next message falls due, or the poll interval, whichever is first. Everything else
lives in the store.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from datetime import UTC, datetime, timedelta
from types import FrameType

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.blocking import BlockingScheduler

from .adapters.clock import SimulatedClock
from .domain.ports import Clock
from .logs import logger
from .usecases import Controller, LockLost

REQUEST_CHECK_SECONDS = 2  # how soon a queued command is applied while the daemon runs


def run_forever(controller: Controller, clock: Clock, poll: timedelta) -> None:
    """Tick until SIGTERM or SIGINT; the effect in progress finishes first."""
    stop = controller.deps.stop
    scheduler = BlockingScheduler(timezone=UTC, executors={"default": {"type": "threadpool", "max_workers": 1}})

    def tick() -> None:
        now = clock.now()
        try:
            next_due = controller.tick(now)
        except LockLost as lost:
            logger.error(f"stopping: {lost}", extra={"event": "lock_lost", "at": now, "fields": {}})
            controller.lost_lock = True
            stop.set()
            next_due = None
        except Exception:  # a bug or an outage must not end the daemon: log, try again later
            logger.exception(f"tick failed; trying again in {poll}", extra={"event": "tick_failed", "at": now, "fields": {}})
            next_due = None
        if stop.is_set():  # a stop that came before the scheduler was running ends it here
            threading.Thread(target=shut_down, daemon=True).start()
            return
        wake = now + poll if next_due is None else min(max(next_due, clock.now()), now + poll)
        scheduler.add_job(tick, "date", run_date=wake, id="tick", replace_existing=True, misfire_grace_time=None)

    def shut_down() -> None:
        try:
            scheduler.shutdown(wait=True)
        except SchedulerNotRunningError:  # a second signal, or one before the scheduler started
            pass

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()
        # Shutting down waits for the running tick, so not from inside the handler.
        threading.Thread(target=shut_down, daemon=True).start()

    def wake_for_requests() -> None:
        """A command queued a request, or the lock was lost: tick now, not at the next poll."""
        store = controller.deps.store
        if stop.is_set() or (store.lock_held() and not store.pending_requests()):
            return
        with contextlib.suppress(JobLookupError):  # no tick waiting: one is running, and will see it
            scheduler.modify_job("tick", next_run_time=clock.now())

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    scheduler.add_job(tick, "date", run_date=clock.now(), id="tick", misfire_grace_time=None)
    scheduler.add_job(wake_for_requests, "interval", seconds=REQUEST_CHECK_SECONDS, id="requests", coalesce=True)
    scheduler.start()


def run_simulated(controller: Controller, clock: SimulatedClock, until: datetime | None) -> None:
    """The same ticks on a clock that jumps straight to the next due time, until nothing
    is left to do (or `until`)."""
    stop = controller.deps.stop
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    while not stop.is_set():
        try:
            next_due = controller.tick(clock.now())
        except LockLost as lost:
            logger.error(f"stopping: {lost}", extra={"event": "lock_lost", "at": clock.now(), "fields": {}})
            controller.lost_lock = True
            return
        if next_due is None or (until is not None and next_due > until):
            return
        clock.advance_to(next_due)
