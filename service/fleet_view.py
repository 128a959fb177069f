"""Each cohort of a state holding several, as the pages and the digest read it: its store
opened for reading (never for effects: the replica holding the cohort applies what the
pages ask), the configuration in force, and its main figures in one line.

Any replica can read any cohort. Where this replica works the cohort, the worker's own
view is used (the configuration in force, why pairs cannot be planned); elsewhere the
same is read from the cohort's file and store, as `mentorship status` reads it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import time as day_time
from pathlib import Path

from . import bootstrap
from .adapters.clock import SystemClock
from .adapters.store import SqlStore, open_store
from .adapters.store.leases import is_database
from .config import ConfigError, Configuration
from .domain.availability import local_moment
from .domain.bookings import bookings, plan_around, unplanned
from .domain.outbox import State
from .domain.ports import Clock, Purpose
from .mail.wording import attention_items, stuck
from .usecases import Inputs
from .usecases.changes import read_change
from .usecases.schedule import counts_with

FRESH_FOR = 2.0  # seconds a cohort's configuration in force is reused (a page reads it several times)
PLANNED_FOR = 60.0  # seconds why pairs cannot be planned is reused, where another replica works the cohort


@dataclass(frozen=True)
class Worked:
    """A cohort this replica works: what its worker knows now."""

    inputs: Inputs | None  # in force, None before its first tick
    unplanned: Mapping[str, str]  # pairs it could not schedule, and why
    problems: list[str]  # why the last edit of its files was not applied
    clock: Clock


@dataclass(frozen=True)
class Held:
    """What this replica knows of who works a cohort."""

    here: Worked | None = None
    holder: str | None = None  # the replica holding its lease, when known
    done: bool = False  # a rehearsal with nothing left


@dataclass(frozen=True)
class Figures:
    """One cohort's main figures, or all cohorts' added up (`cohort` empty)."""

    cohort: str  # its file's name, the NAME of /cohorts/NAME
    title: str  # its name in the cohort file
    started: bool
    pairs: int = 0
    booked: int = 0
    sent: int = 0
    planned: int = 0  # still to go out (planned or being sent)
    attention: tuple[str, ...] = ()
    finished: bool = False
    holder: str | None = None

    def line(self) -> dict[str, str]:
        """As the digest keeps it: strings by name."""
        return {
            "cohort": self.cohort,
            "title": self.title,
            "started": "yes" if self.started else "no",
            "pairs": str(self.pairs),
            "booked": str(self.booked),
            "sent": str(self.sent),
            "planned": str(self.planned),
            "attention": str(len(self.attention)),
            "finished": "yes" if self.finished else "no",
        }


def together(each: list[Figures]) -> Figures:
    return Figures(
        cohort="",
        title=f"All {len(each)} cohorts",
        started=any(f.started for f in each),
        pairs=sum(f.pairs for f in each),
        booked=sum(f.booked for f in each),
        sent=sum(f.sent for f in each),
        planned=sum(f.planned for f in each),
        attention=tuple(item for f in each for item in f.attention),
        finished=bool(each) and all(f.finished for f in each),
    )


class CohortView:
    """One cohort, read. Its store is opened when first needed and kept open."""

    def __init__(self, name: str, path: Path, state: str, purpose: Purpose):
        self.name, self.path, self.state, self.purpose = name, path, state, purpose
        self._store: SqlStore | None = None
        self._lock = threading.Lock()
        self._loaded: tuple[tuple[int, int], Configuration, Inputs] | None = None
        self._problem: str | None = None  # why the file's last edit was not read
        self._in_force: tuple[float, Inputs] | None = None
        self._unplanned: tuple[float, Mapping[str, str]] | None = None

    def store(self) -> SqlStore | None:
        """The cohort's store; None where it has not run (no state file yet)."""
        from .fleet import cohort_state  # fleet.py builds on this module

        with self._lock:
            if self._store is None:
                place = cohort_state(self.state, self.name, self.purpose)
                if is_database(self.state):
                    self._store = open_store(place, cohort=self.name)
                elif Path(place).exists():
                    self._store = open_store(place)
            return self._store

    def loaded(self) -> tuple[Configuration, Inputs] | None:
        """The cohort file as it is now (the last valid reading while an edit is invalid)."""
        mark = file_mark(self.path)
        with self._lock:
            if self._loaded is None or self._loaded[0] != mark:
                try:
                    configuration, inputs = bootstrap.load(self.path)
                    self._loaded, self._problem = (mark, configuration, inputs), None
                except ConfigError as error:
                    self._problem = str(error).splitlines()[0] if str(error) else "the cohort file cannot be read"
            return (self._loaded[1], self._loaded[2]) if self._loaded else None

    def given(self) -> Inputs:
        loaded = self.loaded()
        if loaded is None:
            raise LookupError(f"cohort {self.name}: {self._problem}")
        return loaded[1]

    def clock(self, held: Held) -> Clock:
        if held.here is not None:
            return held.here.clock
        store = self.store()
        if self.purpose is Purpose.REHEARSAL and store is not None:
            return _AtLastActivity(store)  # a rehearsal's time is where its holder left it
        return SystemClock()

    def inputs(self, held: Held, now: datetime) -> Inputs:
        """The configuration in force, pairs under their stored keys."""
        if held.here is not None and held.here.inputs is not None:
            return held.here.inputs
        kept = self._in_force
        if kept is not None and time.monotonic() - kept[0] < FRESH_FOR:
            return kept[1]
        store, given = self.store(), self.given()
        current = read_change(store, given, now)[0] if store is not None else given
        self._in_force = (time.monotonic(), current)
        return current

    def unplanned(self, held: Held, now: datetime) -> Mapping[str, str]:
        if held.here is not None:
            return held.here.unplanned
        kept, store = self._unplanned, self.store()
        if store is None:
            return {}
        if kept is None or time.monotonic() - kept[0] > PLANNED_FOR:
            inputs = self.inputs(held, now)
            current = bookings(inputs.cohort, store.sessions(), withdrawn=store.withdrawn(), now=now)
            kept = (time.monotonic(), unplanned(plan_around(inputs.cohort, inputs.busy, current, now=now)))
            self._unplanned = kept
        return kept[1]

    def problems(self, held: Held) -> list[str]:
        if held.here is not None:
            return held.here.problems
        return [self._problem] if self._problem else []

    def figures(self, held: Held, now: datetime | None = None) -> Figures:
        loaded = self.loaded()
        title = loaded[1].cohort.name if loaded else self.name
        store = self.store()
        if loaded is None or store is None or store.last_tick() is None:
            return Figures(self.name, title, started=False, holder=held.holder, attention=tuple(self.problems(held)))
        now = now or self.clock(held).now()
        cohort = self.inputs(held, now).cohort
        withdrawn = store.withdrawn()
        current = bookings(cohort, store.sessions(), withdrawn=withdrawn, now=now)
        states: dict[State, int] = {}
        for of_pair in counts_with(store.message_counts(), store.foreseen()).values():
            for state, count in of_pair.items():
                states[state] = states.get(state, 0) + count
        items = attention_items(
            self.unplanned(held, now),
            store.messages_needing_a_human(),
            self.problems(held),
            store.alerts(),
            store.held_change(),
            stuck(store.in_flight(), now),
        )
        planned = states.get(State.PLANNED, 0) + states.get(State.SENDING, 0)
        over = now >= local_moment(cohort.end + timedelta(days=1), day_time(0), cohort.timezone)
        return Figures(
            cohort=self.name,
            title=cohort.name,
            started=True,
            pairs=len(cohort.pairs),
            booked=sum(1 for p in cohort.pairs if p.id in current.booked and p.id not in withdrawn and p.id not in current.held),
            sent=states.get(State.SENT, 0),
            planned=planned,
            attention=tuple(f"{item['pair_id']}: {item['summary']}" if item["pair_id"] else item["summary"] for item in items),
            finished=held.done or (over and not planned),
            holder=held.holder,
        )

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None


class FleetView:
    """Every cohort file of the folder, each read through its CohortView."""

    def __init__(self, folder: Path, state: str, purpose: Purpose, held: Callable[[str], Held]):
        self.folder, self.state, self.purpose, self.held = folder, state, purpose, held
        self._views: dict[str, CohortView] = {}
        self._lock = threading.Lock()

    def views(self) -> dict[str, CohortView]:
        """By name, as the folder holds them now."""
        from .fleet import cohort_files  # fleet.py builds on this module

        found, _ = cohort_files(self.folder)
        with self._lock:
            for name, path in found.items():
                if name not in self._views or self._views[name].path != path:
                    self._views[name] = CohortView(name, path, self.state, self.purpose)
            return {name: self._views[name] for name in found}

    def view(self, name: str) -> CohortView | None:
        return self.views().get(name)

    def figures(self, now: datetime | None = None) -> list[Figures]:
        return [view.figures(self.held(name), now) for name, view in self.views().items()]

    def lines(self, now: datetime) -> list[dict[str, str]]:
        """For the digest: each cohort's line and, last, all together; nothing where the
        state holds one cohort."""
        each = self.figures(now)
        if len(each) < 2:
            return []
        return [figure.line() for figure in [*each, together(each)]]

    def close(self) -> None:
        with self._lock:
            for view in self._views.values():
                view.close()


class _AtLastActivity:
    """A rehearsal's cohort read from elsewhere: its time is its last recorded effect."""

    def __init__(self, store: SqlStore):
        self.store = store

    def now(self) -> datetime:
        return self.store.latest_activity() or SystemClock().now()


def file_mark(path: Path) -> tuple[int, int]:
    """When a file last changed and its size, to see that it did: (0, -1) when it is gone."""
    try:
        stat = path.stat()
    except OSError:
        return (0, -1)
    return (stat.st_mtime_ns, stat.st_size)
