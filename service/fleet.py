"""Many cohorts in one process, and several such processes (replicas) on one PostgreSQL.

Each cohort keeps its own Controller, unchanged, over its own part of the store: a schema
of its own in PostgreSQL, a file of its own in a SQLite state folder. On PostgreSQL the
replicas divide the cohorts through leases (service.adapters.store.leases): a replica
works a cohort only while it holds its lease, a heartbeat thread renews the leases and
takes free ones up to a fair share, and every effect checks the lease's fencing token in
its own transaction. On SQLite one process holds every cohort, each state file locked as
a single daemon locks its state.

A cohort file added to the folder is taken up; an edited one is re-read like any edit; a
removed one is held: its work stops, nothing of it is cancelled, and it resumes when the
file comes back.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from . import bootstrap
from .adapters.clock import SimulatedClock, SystemClock
from .adapters.store import SqlStore, open_store
from .adapters.store.leases import Beat, Fence, Leases, is_database, schema_of
from .config import ConfigError, Configuration, Problem
from .config.problems import display
from .domain.leases import Lease, LeaseLost, divide, margin, renew_every
from .domain.ports import Clock, Purpose
from .fleet_view import FleetView, Held, Worked, file_mark
from .logs import event
from .mail.links import PersonalLinks
from .runner import REQUEST_CHECK_SECONDS, failed
from .signals import Stopped, on_stop
from .usecases import Controller, Deps, Inputs, LockLost

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,47}")
RETRY_AFTER_FAILURE = 1.0  # seconds before a rehearsal's failed tick is tried again


class Claims(Protocol):
    """Who works which cohort: leases in PostgreSQL, or this process alone on SQLite."""

    def add(self, cohorts: list[str]) -> None: ...
    def heartbeat(self, held: dict[str, int]) -> Beat: ...
    def claim(self, cohorts: list[str], count: int) -> dict[str, int]: ...
    def release(self, cohort: str, token: int, *, done: bool = False) -> None: ...
    def leave(self) -> None: ...
    def close(self) -> None: ...


class AloneClaims:
    """SQLite: one process works every cohort (each state file is locked as it opens)."""

    def __init__(self) -> None:
        self.done: set[str] = set()
        self.known: set[str] = set()

    def add(self, cohorts: list[str]) -> None:
        self.known |= set(cohorts)

    def heartbeat(self, held: dict[str, int]) -> Beat:
        now = SystemClock().now()
        leases = [Lease(cohort=c, owner=None, token=0, expires_at=now, done=c in self.done) for c in sorted(self.known)]
        return Beat(renewed=dict(held), replicas=1, leases=leases, now=now)

    def claim(self, cohorts: list[str], count: int) -> dict[str, int]:
        return {cohort: 0 for cohort in sorted(cohorts)[:count] if cohort not in self.done}

    def release(self, cohort: str, token: int, *, done: bool = False) -> None:
        if done:
            self.done.add(cohort)

    def leave(self) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class Worker:
    """One cohort this process works now."""

    name: str
    token: int
    store: SqlStore
    release: Callable[[], None]
    controller: Controller
    clock: Clock
    poll: timedelta
    next_at: datetime | None = None  # None: at once
    checked: float = 0.0  # when queued requests were last looked for (monotonic)


@dataclass(frozen=True, kw_only=True)
class Settings:
    folder: Path
    state: str  # a PostgreSQL URL, or a folder of SQLite files
    purpose: Purpose
    start: datetime | None  # a rehearsal's simulated start; None: the real clock
    outbox: Path | None
    lease: timedelta
    fresh: bool = False


def cohort_files(folder: Path) -> tuple[dict[str, Path], list[Problem]]:
    """Every `*.yaml` cohort in the folder by name (the file's stem), and names that cannot be one."""
    found: dict[str, Path] = {}
    problems: list[Problem] = []
    schemas: dict[str, str] = {}
    for path in sorted(folder.glob("*.yaml")):
        name = path.stem
        if not NAME.fullmatch(name):
            problems.append(Problem(file=display(path), line=0, message="a cohort file's name is letters, digits, - and _ (at most 48)"))
            continue
        twin = schemas.setdefault(schema_of(name), name)
        if twin != name:
            problems.append(Problem(file=display(path), line=0, message=f"its name and {twin!r} differ only in case or - and _"))
            continue
        found[name] = path
    return found, problems


def cohort_state(state: str, cohort: str, purpose: Purpose = Purpose.REAL) -> str:
    """Where a cohort of a state holding several is kept: its schema (a URL stays a URL),
    or its file in the state folder."""
    if is_database(state):
        return state
    suffix = ".rehearsal.sqlite" if purpose is Purpose.REHEARSAL else ".sqlite"
    return str(Path(state) / f"{cohort}{suffix}")


def found_cohort_state(state: str, cohort: str) -> str | None:
    """The cohort's part of a state holding several, for the commands that read it or
    queue requests: the real program's, else a rehearsal's; None if it has not run."""
    if is_database(state):
        return state
    for purpose in (Purpose.REAL, Purpose.REHEARSAL):
        if Path(cohort_state(state, cohort, purpose)).exists():
            return cohort_state(state, cohort, purpose)
    return None


def open_cohort(state: str, cohort: str) -> SqlStore | None:
    """A cohort's store in a state holding several; None where it has not run."""
    found = found_cohort_state(state, cohort)
    if found is None:
        return None
    return open_store(found, cohort=cohort) if is_database(state) else open_store(found)


def default_state(folder: Path) -> Path:
    """state/<folder name>/: one SQLite file per cohort."""
    return Path("state") / folder.resolve().name


class Fleet:
    def __init__(self, settings: Settings, owner: str):
        self.settings, self.owner = settings, owner
        self.stop = threading.Event()
        self.claims: Claims = AloneClaims()
        self.workers: dict[str, Worker] = {}
        self.present: dict[str, Path] = {}  # the cohort files in the folder now, those that could start
        self.files: set[str] = set()  # every cohort file in the folder now
        self.seen: dict[str, tuple[int, int]] = {}  # name -> (mtime, size) at the last scan
        self.broken: dict[str, tuple[int, int]] = {}  # files that failed to start, until they change
        self.loaded: dict[str, tuple[Configuration, Inputs]] = {}  # checked at start, used once
        self.finished: set[str] = set()  # rehearsals with nothing left, whoever finished them
        self._lock = threading.Lock()  # guards what the heartbeat thread shares: held, fences, releasing
        self.held: dict[str, int] = {}  # cohort -> fencing token
        self.fences: dict[str, Fence] = {}
        self.releasing: set[str] = set()
        self.replicas = 1
        self.leases: dict[str, Lease] = {}  # every cohort's lease at the last heartbeat
        self.beat_at: datetime | None = None  # the database's time then
        # Each cohort as pages and digests read it, whoever works it.
        self.view = FleetView(settings.folder, settings.state, settings.purpose, self.held_by)
        # The links a cohort's emails carry, where this replica serves the pages (--http).
        self.links_for: Callable[[str], PersonalLinks | None] | None = None
        # Where a cohort's pages are reached from outside, where this replica serves them: Google posts calendar notices there.
        self.public_url_of: Callable[[str], str | None] | None = None
        # A cohort's daemon, as this replica's pages want it (timing its ticks for /metrics).
        self.controller_for: Callable[[str, Deps, timedelta], Controller] = lambda _, deps, poll: Controller(deps, poll=poll)

    # Start

    def check(self) -> None:
        """Every cohort file, checked before anything is booked or sent: ConfigError
        listing every problem of every file."""
        found, problems = cohort_files(self.settings.folder)
        if not found and not problems:
            problems.append(Problem(file=display(self.settings.folder), line=0, message="no *.yaml cohort file in this folder"))
        for name, path in found.items():
            try:
                self.loaded[name] = bootstrap.load(path)
            except ConfigError as error:
                problems += [*error.problems, *error.warnings]
        if problems:
            raise ConfigError(problems)

    def run(self, claims: Claims) -> None:
        """Work the cohorts until stopped (a rehearsal: until every one is finished)."""
        self.claims = claims
        on_stop(self.stop)
        try:
            self._scan()
        except Exception as error:  # the database is away: the loop scans again
            failed(SystemClock().now(), error, "trying again shortly")
        beat = threading.Thread(target=self._beat_forever, name="leases", daemon=True)
        beat.start()
        scanned = time.monotonic()
        try:
            while not self.stop.is_set():
                try:
                    if time.monotonic() - scanned > REQUEST_CHECK_SECONDS:
                        self._scan()
                        scanned = time.monotonic()
                    self._follow_leases()
                except Exception as error:  # the database is away, say: the cohorts already worked go on
                    failed(SystemClock().now(), error, "trying again shortly")
                if self.settings.start is not None and self.present and set(self.present) <= self.finished:
                    return
                worked = self._tick_due()
                if not worked:
                    self.stop.wait(self._idle())
        except Stopped:
            event(SystemClock().now(), "stopped_reading", "stopping while reading a configuration edit; it was not applied")
        finally:
            self.stop.set()
            beat.join(timeout=5)
            for worker in list(self.workers.values()):
                self._drop(worker)
            try:
                self.claims.leave()
            except Exception:  # the database is gone: the leases run out by themselves
                pass
            self.claims.close()

    # Which cohorts this process works

    def _scan(self) -> None:
        found, problems = cohort_files(self.settings.folder)
        for problem in problems:
            if problem.file not in {display(p) for p in self.present.values()}:
                event(SystemClock().now(), "cohort_file_ignored", str(problem), level=logging.WARNING)
        marks = {name: file_mark(path) for name, path in found.items()}
        for name in set(self.files) - set(found):
            event(SystemClock().now(), "cohort_held", f"cohort {name}: its file was removed; its work is held until it comes back")
        for name in set(found) - set(self.files):
            if name in self.seen:
                event(SystemClock().now(), "cohort_back", f"cohort {name}: its file is back")
        self.files = set(found)
        self.broken = {name: mark for name, mark in self.broken.items() if marks.get(name) == mark}
        self.claims.add(sorted(found))
        with self._lock:
            self.present = {name: path for name, path in found.items() if name not in self.broken}
            self.seen.update(marks)

    def _beat_forever(self) -> None:
        period = renew_every(self.settings.lease).total_seconds()
        while not self.stop.is_set():
            self._beat()
            self.stop.wait(period)

    def _beat(self) -> None:
        """Renew what is held, learn what was lost, take a fair share of what is free."""
        with self._lock:
            held, present = dict(self.held), sorted(self.present)
        sent = time.monotonic()
        try:
            beat = self.claims.heartbeat(held)
            with self._lock:
                self.replicas = beat.replicas
                self.finished = {lease.cohort for lease in beat.leases if lease.done}
                self.leases, self.beat_at = {lease.cohort: lease for lease in beat.leases}, beat.now
                for name in held:
                    if name in beat.renewed and name in self.fences:
                        self.fences[name].renewed(sent, self.settings.lease)
                    elif self.held.get(name) == held[name]:  # not given back meanwhile
                        self.fences.pop(name).revoke()
                        self.held.pop(name)
            ours = [lease for lease in beat.leases if lease.cohort in present]
            moves = divide(ours, self.owner, beat.replicas, beat.now)
            taken = self.claims.claim(present, moves.claim) if moves.claim else {}
        except Exception as error:  # the database is away: the fences run out by themselves
            failed(SystemClock().now(), error, "renewing the leases again shortly")
            return
        with self._lock:
            for name, token in taken.items():
                self.held[name] = token
                self.fences[name] = Fence(name, self.owner, token, self.settings.lease, margin(self.settings.lease), since=sent)
            self.releasing |= set(moves.release)

    def _follow_leases(self) -> None:
        """Start work on cohorts just claimed; stop it where the lease was lost, given
        back, or the file removed."""
        with self._lock:
            held, present, releasing = dict(self.held), dict(self.present), set(self.releasing)
            self.releasing.clear()
            fences = dict(self.fences)
        for name, worker in list(self.workers.items()):
            if held.get(name) != worker.token or not fences[name].live():
                self._lost(worker, "the lease was lost")
            elif name in releasing or name not in present:
                self._give_back(worker)
        with self._lock:  # as it stands after letting go
            held, fences = dict(self.held), dict(self.fences)
        for name, token in held.items():
            if name in self.workers or name in self.finished:
                continue
            if name not in present:
                self._give_back_lease(name, token)
                continue
            self._start(name, present[name], token, fences[name])

    def _start(self, name: str, path: Path, token: int, fence: Fence) -> None:
        settings = self.settings
        simulated = SimulatedClock(settings.start) if settings.start is not None else None
        clock: Clock = simulated or SystemClock()
        try:
            if name in self.loaded:
                configuration, inputs = self.loaded.pop(name)
                watcher = bootstrap.ConfigWatcher(path, None, configuration, inputs, clock)
            else:
                watcher = bootstrap.ConfigWatcher.start(path, None, clock)
            store, release = self._open(name)
        except ConfigError as error:
            self._broken(name, path, token, str(error).splitlines()[0] if str(error) else type(error).__name__)
            return
        except (bootstrap.AlreadyRunning, bootstrap.StateError) as error:
            if not is_database(settings.state):  # a file locked by another process, or not a database
                self._broken(name, path, token, str(error))
                return
            event(clock.now(), "cohort_not_opened", f"cohort {name}: {error}; giving it back for now", level=logging.WARNING)
            self._give_back_lease(name, token)  # the database is away: claimed again later
            return
        except Exception as error:  # the database is away: given back, claimed again later
            failed(clock.now(), error, f"cohort {name}: giving it back for now")
            self._give_back_lease(name, token)
            return
        store.fence = fence if is_database(settings.state) else None
        state = cohort_state(settings.state, name, settings.purpose)
        try:
            if settings.purpose is Purpose.REAL:
                bootstrap.guard_against_lost_state(store, state, watcher.configuration.cohort.name, fresh=settings.fresh, now=clock.now())
            bootstrap.claim(store, state, settings.purpose)
            calendar, free_busy, gmail = bootstrap.google_adapters(watcher.configuration)
            meet = bootstrap.meet_adapter(watcher.configuration)
            # Not in a rehearsal: Google's channels expire in real time, which a simulated clock outruns.
            served = self.public_url_of(name) if self.public_url_of and not simulated else None
            watch, notify_address = bootstrap.calendar_watch(calendar, served)
        except (bootstrap.WrongPurpose, bootstrap.LostState, bootstrap.GoogleSetupError) as error:
            release()
            self._broken(name, path, token, str(error))
            return
        except Exception as error:  # the database is away: given back, claimed again later
            release()
            failed(clock.now(), error, f"cohort {name}: giving it back for now")
            self._give_back_lease(name, token)
            return
        if simulated:  # carry on from where the last holder of the cohort stopped
            simulated.advance_to(store.latest_activity() or simulated.now())
        outbox = settings.outbox / name if settings.outbox else None
        default = bootstrap.default_outbox(state, settings.purpose) / name
        mailer = gmail if gmail and not outbox else bootstrap.make_mailer(watcher.configuration, default, outbox)
        budget = bootstrap.send_budget(watcher.configuration) if mailer is gmail else None
        deps = Deps(
            store=store,
            mailer=mailer,
            source=watcher,
            stop=self.stop,
            calendar=calendar,
            free_busy=free_busy,
            replies=bootstrap.make_replies(watcher.configuration),
            meet=meet,
            budget=budget,
            links=self.links_for(name) if self.links_for else None,
            cohorts=self.view.lines,
            watch=watch,
            notify_address=notify_address,
        )
        poll = watcher.configuration.poll
        self.workers[name] = Worker(name, token, store, release, self.controller_for(name, deps, poll), clock, poll)
        event(clock.now(), "cohort_taken", f"cohort {name}: working it (lease token {token})", cohort=name, token=token)

    def _open(self, name: str) -> tuple[SqlStore, Callable[[], None]]:
        settings = self.settings
        if is_database(settings.state):
            store = open_store(settings.state, cohort=name)
            return store, store.close
        return bootstrap.open_locked_state(cohort_state(settings.state, name, settings.purpose))

    def _broken(self, name: str, path: Path, token: int, why: str) -> None:
        event(SystemClock().now(), "cohort_not_started", f"cohort {name} not started: {why}", level=logging.WARNING, cohort=name)
        self.broken[name] = file_mark(path)
        with self._lock:
            self.present.pop(name, None)
        self._give_back_lease(name, token)

    def held_by(self, name: str) -> Held:
        """Who works the cohort, as far as this replica knows: itself (with what its worker
        knows), another replica while its lease runs, or nobody."""
        worker = self.workers.get(name)
        if worker is not None:
            controller = worker.controller
            here = Worked(controller.inputs, controller.unplanned, controller.deps.source.problems, worker.clock)
            return Held(here=here, holder=f"{self.owner} (this replica)", done=name in self.finished)
        lease = self.leases.get(name)
        live = lease is not None and lease.owner and self.beat_at is not None and lease.expires_at > self.beat_at
        return Held(holder=lease.owner if live and lease else None, done=name in self.finished)

    # Working them

    def _tick_due(self) -> bool:
        """One tick of every cohort whose time has come; whether any ran."""
        worked = False
        for worker in list(self.workers.values()):
            if self.stop.is_set():
                break
            now = worker.clock.now()
            if worker.next_at is not None and worker.next_at > now and not self._requested(worker):
                continue
            worked = True
            self._tick(worker, now)
        return worked

    def _requested(self, worker: Worker) -> bool:
        """A command queued a request for this cohort: tick now, not at the next poll."""
        if time.monotonic() - worker.checked < REQUEST_CHECK_SECONDS:
            return False
        worker.checked = time.monotonic()
        try:
            return bool(worker.store.pending_requests())
        except Exception:  # the tick will say what is wrong
            return True

    def _tick(self, worker: Worker, now: datetime) -> None:
        try:
            next_due = worker.controller.tick(now)
        except (LeaseLost, LockLost) as lost:
            self._lost(worker, str(lost))
            return
        except Exception as error:  # an outage or a bug in one cohort must not stop the others
            failed(now, error, f"cohort {worker.name}: trying again shortly")
            worker.next_at = None if isinstance(worker.clock, SimulatedClock) else now + min(worker.poll, timedelta(seconds=30))
            if isinstance(worker.clock, SimulatedClock):
                self.stop.wait(RETRY_AFTER_FAILURE)
            return
        if isinstance(worker.clock, SimulatedClock):
            if next_due is None:
                self._finish(worker)
            else:
                worker.clock.advance_to(next_due)
                worker.next_at = None
            return
        worker.next_at = now + worker.poll if next_due is None else min(max(next_due, now), now + worker.poll)

    def _idle(self) -> float:
        """Seconds until a cohort is due, a request may be waiting, or leases change."""
        wait = min(REQUEST_CHECK_SECONDS, renew_every(self.settings.lease).total_seconds())
        for worker in self.workers.values():
            if worker.next_at is not None:
                wait = min(wait, max((worker.next_at - worker.clock.now()).total_seconds(), 0.0))
        return wait

    # Letting go

    def _finish(self, worker: Worker) -> None:
        """A rehearsal with nothing left: marked done, for every replica."""
        self._drop(worker)
        self.finished.add(worker.name)
        self._give_back_lease(worker.name, worker.token, done=True)
        event(worker.clock.now(), "cohort_finished", f"cohort {worker.name}: nothing left to do", cohort=worker.name)

    def _give_back(self, worker: Worker) -> None:
        self._drop(worker)
        self._give_back_lease(worker.name, worker.token)
        event(worker.clock.now(), "cohort_given_back", f"cohort {worker.name}: given back to share the work", cohort=worker.name)

    def _give_back_lease(self, name: str, token: int, *, done: bool = False) -> None:
        with self._lock:
            fence = self.fences.pop(name, None)
            self.held.pop(name, None)
        if fence is not None:
            fence.revoke()
        try:
            self.claims.release(name, token, done=done)
        except Exception as error:  # it runs out by itself
            failed(SystemClock().now(), error, "the lease runs out by itself")

    def _lost(self, worker: Worker, why: str) -> None:
        """Another replica may work the cohort now: stop at once, touch nothing more."""
        self._drop(worker)
        with self._lock:
            if self.held.get(worker.name) == worker.token:
                self.held.pop(worker.name)
                self.fences.pop(worker.name).revoke()
        event(worker.clock.now(), "lease_lost", f"cohort {worker.name}: stopped working it ({why})", level=logging.WARNING)

    def _drop(self, worker: Worker) -> None:
        self.workers.pop(worker.name, None)
        try:
            worker.release()
        except Exception:  # a connection already gone
            pass


def replica_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def make_claims(state: str, owner: str, lease: timedelta) -> Claims:
    return Leases.open(state, owner, lease) if is_database(state) else AloneClaims()
