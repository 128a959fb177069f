"""The daemon killed with SIGKILL at random moments, restarted each time, until a run
finishes by itself: no email goes out twice, none is silently lost.

Each message row goes planned -> sending (committed) -> transport -> sent. A kill can land
anywhere: during start-up, while booking, between the `sending` commit and the transport,
between the transport and the `sent` commit. After a restart the rows found `sending` are
checked with the transport; the file transport can always tell, SMTP cannot (those rows
become uncertain, for the coordinator).

The kill delays come from a seeded generator; the moments they land on still depend on
the machine's speed, so the checks are on invariants, not on exact counts.

The third test does the same to a program that changes while it runs: between two runs
the coordinator saves the pairings without a quarter of the rows (held), approves that,
moves a session and withdraws a person, so kills also land while the daemon cancels,
rebooks and sends the notices.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import json
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import policy
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiosmtpd.controller import Controller as SmtpController

from service import bootstrap
from service.adapters.store import open_store
from service.domain.outbox import State, by_pair, handed_over, wanted_for_pair
from service.domain.planning import plan_sessions
from tests.contract.test_store import POSTGRES, postgres_database

ROOT = Path(__file__).parents[2]
NOW = "2027-02-01T00:00:00+00:00"
DIGEST = "coordinator_digest"
KILL_DELAYS = (0.05, 1.5)  # processor seconds after start: start-up, booking and sending
SENDING_DELAY = 0.6  # at most this much processor time after a run's first log line: while it sends
MID_SEND_SHARE = 0.3  # of the kills drawn for while it sends: those that wait for a message marked `sending`
FAULT_GRACE = (0.2, 2.0)  # processor seconds a run goes on after a fault struck, unless it stops by itself

# (mentor zone, mentee zone): default working hours (09:00-17:00, Mon-Fri) overlap in each.
ZONES = [
    ("America/New_York", "Europe/Berlin"),
    ("Europe/Berlin", "Asia/Kolkata"),
    ("Asia/Kolkata", "Australia/Lord_Howe"),
    ("Europe/Berlin", "America/New_York"),
    ("Asia/Kolkata", "Europe/Berlin"),
    ("Australia/Lord_Howe", "Asia/Kolkata"),
    ("America/New_York", "America/New_York"),
    ("Europe/Berlin", "Europe/Berlin"),
]


# The configuration, generated


def write_cohort(folder: Path, pairs: int, mail: str = "") -> Path:
    """A cohort file and its pairings CSV: distinct people, several zones, every fifth
    pair the second mentee of the previous pair's mentor."""
    rows: list[dict[str, str]] = []
    mentors = 0
    for number in range(1, pairs + 1):
        if number % 5 == 0:
            previous = rows[-1]
            mentor_name, mentor_email, mentor_zone = previous["mentor_name"], previous["mentor_email"], previous["mentor_timezone"]
            mentee_zone = next(mentee for mentor, mentee in ZONES if mentor == mentor_zone)
        else:
            mentors += 1
            mentor_zone, mentee_zone = ZONES[mentors % len(ZONES)]
            mentor_name, mentor_email = f"Mentor {mentors:03d}", f"mentor{mentors:03d}@example.org"
        rows.append(
            {
                "pair_id": f"pair-{number:03d}",
                "mentor_name": mentor_name,
                "mentor_email": mentor_email,
                "mentor_timezone": mentor_zone,
                "mentee_name": f"Mentee {number:03d}",
                "mentee_email": f"mentee{number:03d}@example.org",
                "mentee_timezone": mentee_zone,
            }
        )
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "pairings.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    cohort = folder / "cohort.yaml"
    cohort.write_text(
        "name: Crash Test Cohort\n"
        "coordinator:\n"
        "  name: Casey Coordinator\n"
        "  email: coordinator@example.org\n"
        "program:\n"
        "  start: 2027-03-01\n"
        "  end: 2027-04-30\n"
        "  timezone: America/New_York\n"
        "pairings: pairings.csv\n" + mail,
        encoding="utf-8",
    )
    return cohort


def check_configuration(cohort: Path, pairs: int):
    """`validate` accepts the cohort and the planner books every pair; the inputs."""
    result = subprocess.run(
        [sys.executable, "-m", "service", "validate", "--config", str(cohort)], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert f"pairs           {pairs}" in result.stdout, result.stdout
    inputs = bootstrap.load_inputs(cohort)
    plan = plan_sessions(inputs.cohort, inputs.busy, now=datetime.fromisoformat(NOW))
    unplanned = {item.pair.id: item.problems for item in plan.pairs if item.problems}
    assert not unplanned, f"the generated cohort does not plan completely: {unplanned}"
    return inputs


# Killing and restarting


@dataclass
class Crashes:
    runs: int = 0
    kills_during_work: int = 0
    phases: Counter = field(default_factory=Counter)  # where the kills landed, from the log
    in_flight_at_kill: Counter = field(default_factory=Counter)  # rows left `sending` by a kill
    recovered: Counter = field(default_factory=Counter)  # verdicts on interrupted sends, from the logs
    startup: list[float] = field(default_factory=list)  # seconds to the first log line
    durations: list[float] = field(default_factory=list)  # seconds each run lived
    exits: list[str] = field(default_factory=list)  # runs that ended by themselves, not 0
    stderr: list[str] = field(default_factory=list)  # anything a run wrote to stderr
    sent_went_down: list[str] = field(default_factory=list)
    killed_runs: list[int] = field(default_factory=list)  # the numbers of the runs a kill hit
    faults: Counter = field(default_factory=Counter)  # faults that struck a running daemon, by kind
    fault_stops: int = 0  # runs that stopped by themselves because of a fault, saying so
    finished: bool = False
    seconds: float = 0.0
    last_stdout: str = ""

    @property
    def restarts(self) -> int:
        return max(self.runs - 1, 0)

    @property
    def interruptions(self) -> int:
        """Kills, and faults that struck instead."""
        return self.kills_during_work + sum(self.faults.values())

    @property
    def kills_mid_send(self) -> int:
        return sum(n for left, n in self.in_flight_at_kill.items() if isinstance(left, int) and left > 0)


def crash_until_done(
    command: list[str],
    state: Path | str,
    logs: Path,
    *,
    seed: int,
    kills_wanted: int,
    kill_window: float,
    wall_cap: float,
    max_restarts: int = 200,
    between: Callable[[int], None] | None = None,
    faults: Faults | None = None,
) -> Crashes:
    """Start the daemon, SIGKILL it after a seeded random delay, start it again, until
    `kills_wanted` kills hit a running process (or `kill_window` seconds passed); then
    let the next run finish by itself. Never runs past `wall_cap` or `max_restarts`.

    Half the delays count from the start (most land in start-up, recovery or booking),
    half from the run's first log line (they land while it sends).

    `between`, if given, is called after every run a kill hit, with that run's number
    (from 1), before the next run starts: the place for a coordinator's edits and commands.

    `faults`, if given, may strike instead of a kill at the drawn moment (fill the disk,
    cut a database connection); the run then goes on until it stops by itself or is killed
    a little later. A run that stops because of a fault must say so, without a traceback."""
    rng = random.Random(seed)
    crashes = Crashes()
    logs.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    sent_before = 0
    while crashes.runs <= max_restarts:
        elapsed = time.monotonic() - began
        if elapsed >= wall_cap:
            break
        killing = crashes.interruptions < kills_wanted and elapsed < kill_window
        from_start = rng.random() < 0.5
        delay = rng.uniform(*KILL_DELAYS) if from_start else rng.uniform(0.0, SENDING_DELAY)
        # Some kills wait for a message marked `sending` and strike at once: the narrow
        # moment between that commit and the `sent` one is hit by design, not by luck.
        mid_send = killing and not from_start and faults is None and rng.random() < MID_SEND_SHARE
        out, err = logs / f"run{crashes.runs:03d}.out", logs / f"run{crashes.runs:03d}.err"
        if faults is not None:
            faults.before(crashes.runs + 1)
        with open(out, "wb") as stdout, open(err, "wb") as stderr:
            started = time.monotonic()
            process = subprocess.Popen(faults.command(command) if faults else command, stdout=stdout, stderr=stderr, cwd=ROOT)
            crashes.runs += 1
            cap = began + wall_cap
            # Delays count the daemon's processor time, not the wall clock: on a busy
            # machine a kill still lands at the same point of its work.
            budget = delay if killing and from_start else float("inf")
            first_line = None
            while process.poll() is None and time.monotonic() < cap and cpu_seconds(process.pid) < budget:
                if first_line is None and out.stat().st_size:
                    first_line = time.monotonic() - started
                    if killing and not from_start:
                        budget = cpu_seconds(process.pid) + (2 * SENDING_DELAY if mid_send else delay)
                if mid_send and first_line is not None and sending_now(state):
                    break
                time.sleep(0.005)
            struck = None
            if process.poll() is None and killing and faults is not None and (struck := faults.strike(crashes.runs)):
                crashes.faults[struck] += 1
                budget = cpu_seconds(process.pid) + rng.uniform(*FAULT_GRACE)
                while process.poll() is None and time.monotonic() < cap and cpu_seconds(process.pid) < budget:
                    time.sleep(0.005)
            if process.poll() is None:
                process.kill()  # SIGKILL: no handler, no cleanup
            returncode = process.wait()
            crashes.durations.append(time.monotonic() - started)
        if first_line is not None:
            crashes.startup.append(first_line)
        text = out.read_text(encoding="utf-8", errors="replace")
        crashes.last_stdout = text
        for line in text.splitlines():
            for verdict in ("confirmed", "will send", "will check", "UNCERTAIN"):
                if f"UTC  {verdict} " in line:
                    crashes.recovered[verdict] += 1
        problem = err.read_text(encoding="utf-8", errors="replace").strip()
        if problem:
            crashes.stderr.append(f"{err.name}: {problem[-2000:]}")
        if returncode == -signal.SIGKILL:
            if not killing:
                break  # over the wall-clock cap
            crashes.kills_during_work += 1
            crashes.killed_runs.append(crashes.runs)
            counts = state_counts(state)
            crashes.phases[phase(text, counts)] += 1
            if counts is not None:
                crashes.in_flight_at_kill[counts["messages"].get(State.SENDING.value, 0)] += 1
                sent = counts["messages"].get(State.SENT.value, 0)
                if sent < sent_before:
                    crashes.sent_went_down.append(f"run {crashes.runs}: {sent_before} -> {sent}")
                sent_before = sent
            if between is not None and (faults is None or faults.quiet()):
                between(crashes.runs)
            continue
        if returncode == 0:
            crashes.finished = True
            break
        if faults is not None and faults.explains(returncode, problem):
            crashes.fault_stops += 1
            if between is not None and faults.quiet():
                between(crashes.runs)
            continue
        crashes.exits.append(f"run {crashes.runs} exited with {returncode}")
    crashes.seconds = time.monotonic() - began
    return crashes


def cpu_seconds(pid: int) -> float:
    """Processor time a process has used so far (user and system); 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def phase(text: str, counts: dict | None) -> str:
    """Where a kill landed, from the run's log and what the state holds."""
    if "UTC  sent " in text:
        return "sending"
    if counts is None or not counts["sessions"]:
        return "before booking"
    if not counts["messages"]:
        return "booked, no messages yet"
    if "UTC  booked " in text:
        return "booked, not sending yet"
    return "restart, not sending yet"


def read_state(state: Path | str, read: Callable) -> Any:
    """`read(connection)` on the state, without writing to it (no checkpoint between a
    kill and a restart): a SQLite file opened read-only, or a PostgreSQL URL. None when
    there is nothing to read yet (killed before the schema existed)."""
    if isinstance(state, str):
        try:
            with psycopg.connect(state.replace("postgresql+psycopg://", "postgresql://", 1), autocommit=True) as connection:
                return read(connection)
        except psycopg.Error:
            return None
    if not state.exists():
        return None
    try:
        if str(state).startswith("/proc/"):
            connection = sqlite3.connect(copied(state), timeout=5)
        else:
            connection = sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=5)
        try:
            return read(connection)
        finally:
            connection.close()
    except sqlite3.Error:
        return None


def copied(state: Path) -> Path:
    """A copy of a SQLite state (with its write-ahead log) that no daemon uses, to read. For
    a state on another mount namespace's disk, reached through /proc/<pid>/root: SQLite
    resolves that link itself, to our own root, and would open another file."""
    folder = Path(tempfile.mkdtemp(prefix="state-copy-"))
    for suffix in ("", "-wal"):
        source = state.with_name(state.name + suffix)
        if source.exists():
            shutil.copyfile(source, folder / source.name)
    return folder / state.name


def sending_now(state: Path | str) -> bool:
    """Whether a message is marked `sending` in the state at this moment."""
    return bool(
        read_state(state, lambda connection: connection.execute("SELECT 1 FROM messages WHERE state = 'sending' LIMIT 1").fetchone())
    )


def state_counts(state: Path | str) -> dict | None:
    """Sessions, and message rows per state; None when there is nothing to read yet."""
    return read_state(
        state,
        lambda connection: {
            "sessions": connection.execute("SELECT count(*) FROM sessions").fetchone()[0],
            "messages": dict(connection.execute("SELECT state, count(*) FROM messages GROUP BY state").fetchall()),
        },
    )


# Faults other than a kill: a full disk, a database connection cut


class Faults:
    """What strikes a running daemon besides SIGKILL. The base strikes nothing."""

    def command(self, command: list[str]) -> list[str]:
        return command

    def before(self, run: int) -> None:
        """Called before run number `run` starts."""

    def strike(self, run: int) -> str | None:
        """At a kill moment: strike instead (return what struck), or None for a kill."""
        return None

    def quiet(self) -> bool:
        """Whether the coordinator can work now (their commands write to the state)."""
        return True

    def explains(self, returncode: int, stderr: str) -> bool:
        """Whether a run that ended with `returncode` stopped because of a fault, as it should."""
        return False


class SmallDisk(Faults):
    """A filesystem of its own, small (tmpfs in a private mount namespace, which a user
    namespace lets any user make): the state and the outbox live on it, and a ballast
    file fills it until write() fails with ENOSPC, for real, in SQLite and in the file
    transport alike. Each daemon runs inside the namespace (nsenter); the test reads the
    files through /proc/<holder>/root."""

    def __init__(self, folder: Path, seed: int, size: str = "64m", chance: float = 0.35):
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.rng, self.chance = folder, random.Random(seed), chance
        script = f"mount -t tmpfs -o size={size},mode=0700 tmpfs {folder} && echo mounted && exec sleep 100000"
        self.holder = subprocess.Popen(
            ["unshare", "--user", "--map-root-user", "--mount", "--propagation", "private", "sh", "-c", script],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.holder.stdout is not None
        line = self.holder.stdout.readline()
        assert line.strip() == "mounted", f"cannot make a small filesystem: {self.holder.stderr.read() if self.holder.stderr else ''}"
        self.full_since: int | None = None  # the run during which it filled
        self.full_for = 0  # runs it stays full after that
        self.episodes = 0
        self.refused = 0  # ballast writes refused with ENOSPC: the disk was really full

    def inside(self, path: Path) -> Path:
        """How the test reaches a path on the small disk."""
        return Path(f"/proc/{self.holder.pid}/root{path}")

    def command(self, command: list[str]) -> list[str]:
        return ["nsenter", f"--target={self.holder.pid}", "--user", "--mount", "--preserve-credentials", "--", *command]

    def fill(self) -> None:
        with open(self.inside(self.folder / "ballast"), "ab", buffering=0) as ballast:
            chunk = b"\0" * 65536
            try:
                while True:
                    ballast.write(chunk)
            except OSError as error:
                assert error.errno == errno.ENOSPC, error
                self.refused += 1

    def free(self) -> None:
        self.inside(self.folder / "ballast").unlink(missing_ok=True)
        self.full_since = None

    def before(self, run: int) -> None:
        if self.full_since is not None and run > self.full_since + self.full_for:
            self.free()

    def strike(self, run: int) -> str | None:
        if self.full_since is not None or self.rng.random() >= self.chance:
            return None
        self.fill()
        self.full_since, self.full_for = run, self.rng.choice([0, 0, 1, 2])  # the next runs start on a full disk
        self.episodes += 1
        return "disk filled"

    def quiet(self) -> bool:
        return self.full_since is None

    def explains(self, returncode: int, stderr: str) -> bool:
        full = self.full_since is not None
        return full and returncode in (1, 2) and ("disk is full" in stderr or "No space left" in stderr or "cannot be opened" in stderr)

    def close(self) -> None:
        self.holder.kill()
        self.holder.wait()


class CutConnections(Faults):
    """PostgreSQL: pg_terminate_backend on the daemon's own connections while it works,
    either the one that holds its lock (it must stop: it no longer knows it is alone) or
    those it reads and writes with (the tick fails; it stops, saying so)."""

    def __init__(self, url: str, seed: int, chance: float = 0.4):
        self.url, self.rng, self.chance = url, random.Random(seed), chance
        self.database = url.rsplit("/", 1)[1]
        self.admin = POSTGRES

    def strike(self, run: int) -> str | None:
        if self.rng.random() >= self.chance:
            return None
        with psycopg.connect(self.admin, autocommit=True) as admin:
            backends = [
                row[0]
                for row in admin.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (self.database,)
                ).fetchall()
            ]
            holder = admin.execute(
                "SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
                " WHERE l.locktype = 'advisory' AND l.granted AND d.datname = %s",
                (self.database,),
            ).fetchone()
            others = [pid for pid in backends if not holder or pid != holder[0]]
            if holder and (not others or self.rng.random() < 0.5):
                victims, what = [holder[0]], "lock connection cut"
            elif others:
                victims, what = others, "work connection cut"
            else:
                return None  # not connected yet: a kill instead
            for pid in victims:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        return what

    def explains(self, returncode: int, stderr: str) -> bool:
        lost_lock = returncode == 1 and "the lock on" in stderr and "was lost" in stderr
        failed_tick = returncode == 1 and "stopped: the tick failed (the state could not be read or written" in stderr
        return lost_lock or failed_tick


# The checks at the end


@dataclass
class Outcome:
    rows: int
    states: Counter
    sent: int
    uncertain: int
    duplicates: list[str]  # keys delivered more than once
    lost: list[str]  # keys delivered zero times and not uncertain
    sent_not_once: list[str]  # sent rows not delivered exactly once
    unknown: list[str]  # deliveries that match no row
    uncertain_delivered: int  # uncertain rows that did arrive (once)


def check_deliveries(store, deliveries: Counter) -> Outcome:
    """Each (pair, stage, recipient, revision) delivered exactly once, or uncertain and
    delivered at most once; `deliveries` counts arrivals per Message-ID."""
    rows = store.messages()
    duplicates, lost, sent_not_once = [], [], []
    uncertain_delivered = 0
    by_id = {}
    for row in rows:
        count = deliveries.get(row.message_id, 0) if row.message_id else 0
        if row.message_id:
            by_id[row.message_id] = row
        key = "/".join(map(str, row.key))
        if count > 1:
            duplicates.append(f"{key} x{count}")
        if row.state is State.SENT and count != 1:
            sent_not_once.append(f"{key} sent but delivered {count} time(s)")
        if count == 0 and row.state is not State.UNCERTAIN:
            lost.append(f"{key} ({row.state.value}) never delivered")
        if row.state is State.UNCERTAIN and count == 1:
            uncertain_delivered += 1
    unknown = [f"{mid} x{n}" for mid, n in deliveries.items() if mid not in by_id]
    states = Counter(row.state.value for row in rows)
    return Outcome(
        rows=len(rows),
        states=states,
        sent=states[State.SENT.value],
        uncertain=states[State.UNCERTAIN.value],
        duplicates=duplicates,
        lost=lost,
        sent_not_once=sent_not_once,
        unknown=unknown,
        uncertain_delivered=uncertain_delivered,
    )


def expected_keys(inputs, store) -> tuple[set, set]:
    """The messages the program wants for the stored sessions, and the stored ones
    (without the coordinator's digests, which depend on what went wrong)."""
    records = by_pair(store.sessions())
    rows = store.messages()
    received = handed_over(rows)
    wanted = set()
    for pair in inputs.cohort.pairs:
        wanted |= {w.key for w in wanted_for_pair(inputs.cohort, pair, records.get(pair.id, []), received)}
    stored = {row.key for row in rows if row.stage != DIGEST}
    return wanted, stored


def check_sessions(inputs, store) -> list[str]:
    """Every pair has its two sessions booked, once, in order; nobody is in two at once."""
    problems = []
    records = by_pair(store.sessions())
    people = defaultdict(list)
    for pair in inputs.cohort.pairs:
        mine = records.get(pair.id, [])
        if [r.session.number for r in mine] != [1, 2] or any(r.cancelled for r in mine):
            problems.append(f"{pair.id}: sessions {[(r.session.number, r.cancelled) for r in mine]}")
            continue
        if any(r.sequence for r in mine):
            problems.append(f"{pair.id}: booked more than once (sequences {[r.sequence for r in mine]})")
        first, second = (r.session for r in mine)
        if not first.end <= second.start:
            problems.append(f"{pair.id}: session 2 does not follow session 1")
        for record in mine:
            for person in (pair.mentor, pair.mentee):
                people[person.email].append((record.session.start, record.session.end, f"{pair.id}#{record.session.number}"))
    for email, sessions in people.items():
        sessions.sort()
        for (_, end, one), (start, _, other) in zip(sessions, sessions[1:]):
            if start < end:
                problems.append(f"{email}: {one} and {other} overlap")
    return problems


def summary(title: str, crashes: Crashes, outcome: Outcome | None = None) -> str:
    lines = [
        f"{title}: restarts {crashes.restarts} (runs {crashes.runs}), kills during work {crashes.kills_during_work}, "
        f"finished {crashes.finished} in {crashes.seconds:.1f} s (last run {crashes.durations[-1] if crashes.durations else 0:.1f} s)",
        f"  kills landed in: {dict(crashes.phases)}; rows left sending per kill: {dict(crashes.in_flight_at_kill)}",
        f"  kills mid-send {crashes.kills_mid_send}; verdicts logged: {dict(crashes.recovered)}; start-up to first log line: "
        + (
            f"median {sorted(crashes.startup)[len(crashes.startup) // 2]:.2f} s, max {max(crashes.startup):.2f} s"
            if crashes.startup
            else "n/a"
        ),
    ]
    if outcome is not None:
        lines.append(
            f"  messages: {outcome.rows} rows {dict(outcome.states)}; sent {outcome.sent}, duplicates {len(outcome.duplicates)}, "
            f"lost {len(outcome.lost)}, uncertain {outcome.uncertain} (of which delivered {outcome.uncertain_delivered}), "
            f"sent-not-once {len(outcome.sent_not_once)}, unknown deliveries {len(outcome.unknown)}"
        )
    if crashes.faults or crashes.fault_stops:
        lines.append(f"  faults that struck a running daemon: {dict(crashes.faults)}; runs that stopped for a fault: {crashes.fault_stops}")
    if crashes.exits:
        lines.append(f"  runs that failed by themselves: {crashes.exits}")
    if crashes.stderr:
        lines.append("  stderr: " + " | ".join(crashes.stderr[:5]))
    if crashes.sent_went_down:
        lines.append(f"  sent rows went down: {crashes.sent_went_down}")
    return "\n".join(lines)


def assert_crash_run(crashes: Crashes, text: str, min_kills: int) -> None:
    assert not crashes.exits, text
    assert not [s for s in crashes.stderr if "Traceback" in s], text
    assert crashes.finished, f"no run finished by itself\n{text}\nlast output: {crashes.last_stdout[-2000:]}"
    assert crashes.interruptions >= min_kills, f"only {crashes.interruptions} kills or faults hit a running daemon\n{text}"
    assert not crashes.sent_went_down, text


def assert_outcome(outcome: Outcome, text: str) -> None:
    assert outcome.states.get(State.PLANNED.value, 0) == 0, text
    assert outcome.states.get(State.SENDING.value, 0) == 0, text
    assert set(outcome.states) <= {State.SENT.value, State.UNCERTAIN.value}, text
    assert not outcome.duplicates, f"{text}\nduplicates: {outcome.duplicates[:10]}"
    assert not outcome.sent_not_once, f"{text}\n{outcome.sent_not_once[:10]}"
    assert not outcome.lost, f"{text}\nlost: {outcome.lost[:10]}"
    assert not outcome.unknown, f"{text}\nunknown: {outcome.unknown[:10]}"


def message_id_of(data: bytes) -> str:
    return str(BytesHeaderParser(policy=policy.default).parsebytes(data)["Message-ID"]).strip()


def simulate_command(cohort: Path, state: Path | str, outbox: Path) -> list[str]:
    """`mentorship run --simulate` on the file transport, as a separate process."""
    command = [sys.executable, "-m", "service", "run", "--config", str(cohort), "--simulate", "--now", NOW]
    return command + ["--state", str(state), "--outbox", str(outbox)]


# The tests


def test_killed_at_random_moments_the_file_transport_sends_every_email_once(tmp_path):
    pairs, min_kills = 200, 20
    cohort = write_cohort(tmp_path / "config", pairs)
    inputs = check_configuration(cohort, pairs)
    state, outbox = tmp_path / "state.sqlite", tmp_path / "outbox"
    command = simulate_command(cohort, state, outbox)

    crashes = crash_until_done(command, state, tmp_path / "logs", seed=20270301, kills_wanted=22, kill_window=120.0, wall_cap=400.0)
    text = summary("file transport", crashes)
    print("\n" + text)
    assert_crash_run(crashes, text, min_kills)

    deliveries: Counter = Counter()
    dates: dict[str, datetime] = {}
    misnamed = []
    for path in outbox.glob("*.eml"):
        headers = BytesHeaderParser(policy=policy.default).parsebytes(path.read_bytes())
        message_id = str(headers["Message-ID"]).strip()
        deliveries[message_id] += 1
        dates[message_id] = headers["Date"].datetime
        if not path.stem.endswith("-" + message_id.strip("<>").split("@")[0]):
            misnamed.append(path.name)
    leftovers = sorted(p.name for p in outbox.iterdir() if p.suffix != ".eml")
    store = open_store(state)
    try:
        outcome = check_deliveries(store, deliveries)
        wanted, stored = expected_keys(inputs, store)
        session_problems = check_sessions(inputs, store)
        # A simulation restarted at the same --now sends what it recovers at that moment.
        early = sum(1 for row in store.messages() if row.message_id in dates and dates[row.message_id] < row.due)
    finally:
        store.close()
    text = (
        summary("file transport", crashes, outcome)
        + f"\n  .eml files {sum(deliveries.values())}, other files in the outbox {len(leftovers)}, dated before their due time {early}"
    )
    print(text.splitlines()[-2] + "\n" + text.splitlines()[-1])

    assert_outcome(outcome, text)
    assert outcome.uncertain == 0, f"the file transport can always tell\n{text}"
    assert outcome.sent == outcome.rows == sum(deliveries.values()), text
    assert wanted == stored, f"{text}\nmissing {sorted(wanted - stored)[:5]}, extra {sorted(stored - wanted)[:5]}"
    assert len(stored) == 18 * pairs, text
    assert not misnamed, f"{text}\nfile names that do not carry their Message-ID: {misnamed[:5]}"
    assert not leftovers, f"{text}\nleft in the outbox: {leftovers[:5]}"
    assert not session_problems, f"{text}\n" + "\n".join(session_problems[:10])
    assert crashes.kills_mid_send >= 1, f"no kill landed between the `sending` commit and the `sent` one\n{text}"

    status = subprocess.run(
        [sys.executable, "-m", "service", "status", "--config", str(cohort), "--state", str(state), "--format", "json", "--now", NOW],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["totals"] == {"sent": 18 * pairs}, f"{text}\nstatus totals {report['totals']}"
    assert report["attention"] == [], f"{text}\n{report['attention'][:5]}"


class Recorder:
    """An SMTP server's handler: counts every message it accepts, by Message-ID."""

    def __init__(self):
        self.lock = threading.Lock()
        self.by_message_id: Counter = Counter()

    async def handle_DATA(self, server, session, envelope):
        message_id = message_id_of(envelope.content)
        with self.lock:
            self.by_message_id[message_id] += 1
        return "250 OK: queued"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_killed_at_random_moments_smtp_never_delivers_twice_and_flags_what_it_cannot_know(tmp_path):
    pairs, min_kills = 40, 10
    recorder = Recorder()
    port = free_port()
    server = SmtpController(recorder, hostname="127.0.0.1", port=port)
    server.start()
    try:
        mail = f"mail:\n  transport: smtp\n  smtp:\n    host: 127.0.0.1\n    port: {port}\n    security: none\n    timeout_seconds: 10\n"
        cohort = write_cohort(tmp_path / "config", pairs, mail)
        inputs = check_configuration(cohort, pairs)
        state = tmp_path / "state.sqlite"
        command = [sys.executable, "-m", "service", "run", "--config", str(cohort), "--simulate", "--now", NOW, "--state", str(state)]
        crashes = crash_until_done(command, state, tmp_path / "logs", seed=20270302, kills_wanted=12, kill_window=90.0, wall_cap=300.0)
    finally:
        server.stop()
    text = summary("smtp transport", crashes)
    print("\n" + text)
    assert_crash_run(crashes, text, min_kills)
    assert not (tmp_path / "outbox").exists(), "mail went to files instead of SMTP"

    store = open_store(state)
    try:
        outcome = check_deliveries(store, recorder.by_message_id)
        wanted, stored = expected_keys(inputs, store)
        session_problems = check_sessions(inputs, store)
        digests = [row for row in store.messages() if row.stage == DIGEST]
    finally:
        store.close()
    delivered = sum(recorder.by_message_id.values())
    text = summary("smtp transport", crashes, outcome) + f"\n  deliveries at the server {delivered}, coordinator digests {len(digests)}"
    print(text.splitlines()[-2] + "\n" + text.splitlines()[-1])

    assert_outcome(outcome, text)
    assert wanted == stored, f"{text}\nmissing {sorted(wanted - stored)[:5]}, extra {sorted(stored - wanted)[:5]}"
    assert len(stored) == 18 * pairs, text
    assert outcome.sent + outcome.uncertain_delivered == delivered, text
    assert outcome.uncertain <= crashes.kills_during_work, f"more uncertain messages than kills\n{text}"
    assert not session_problems, f"{text}\n" + "\n".join(session_problems[:10])
    if outcome.uncertain:
        assert digests, f"uncertain messages but no digest for the coordinator\n{text}"


# A living program in the mix: edits of the pairings and the coordinator's commands


@dataclass
class Peek:
    """What the state holds between two runs, read without writing to it."""

    now: datetime | None  # the latest moment recorded: where a resumed simulation carries on
    held: bool  # an edit waits for approval
    sessions: dict[tuple[str, int], tuple[datetime, str]]  # (pair, number) -> (start, status)
    withdrawn: set[str]
    done: set[int]  # requests the daemon has applied
    messages: list[tuple[str, str, int, str]]  # (pair, stage, revision, state) of every row


def _utc(value: str | datetime) -> datetime:
    """A stored time: text in SQLite, a naive datetime in PostgreSQL; UTC either way."""
    return (value if isinstance(value, datetime) else datetime.fromisoformat(value)).replace(tzinfo=UTC)


def peek(state: Path | str) -> Peek | None:
    def read(connection) -> Peek:
        latest = connection.execute("SELECT max(at) FROM audit").fetchone()[0]
        held = connection.execute("SELECT value FROM meta WHERE key = 'change:held'").fetchone()
        sessions = {
            (pair_id, number): (_utc(start), status)
            for pair_id, number, start, status in connection.execute("SELECT pair_id, number, start, status FROM sessions")
        }
        withdrawn = {pair_id for (pair_id,) in connection.execute("SELECT pair_id FROM pairs WHERE withdrawn_at IS NOT NULL")}
        done = {number for (number,) in connection.execute("SELECT id FROM requests WHERE done_at IS NOT NULL")}
        messages = [tuple(row) for row in connection.execute("SELECT pair_id, stage, revision, state FROM messages").fetchall()]
        return Peek(
            now=_utc(latest) if latest else None,
            held=bool(held and held[0]),
            sessions=sessions,
            withdrawn=withdrawn,
            done=done,
            messages=messages,
        )

    return read_state(state, read)


@dataclass
class Action:
    name: str
    planned: int  # the killed run after which it is due
    run: int | None = None  # the killed run after which it was done (later when its moment was not ready)
    at: datetime | None = None  # the simulated moment the state had reached then
    what: str = ""
    request: int | None = None  # the number of the request a command queued
    effective: int | None = None  # the first run after which the state showed it applied (the edit: held)


class Coordinator:
    """The coordinator, between a kill and the next start: at run numbers drawn from a
    seeded generator, one thing at a time and in this order, saves the pairings without
    a quarter of the rows (more than the limits allow: held), approves that edit, moves
    a session of a pair still running, withdraws one person."""

    def __init__(self, cohort: Path, state: Path | str, seed: int, faults: Faults | None = None, daemon_state: Path | str | None = None):
        """`state` as the test reads it; `daemon_state` and `faults.command` where and how
        the commands reach it (on a disk of the daemon's own)."""
        self.cohort, self.state = cohort, state
        self.faults, self.daemon_state = faults, daemon_state if daemon_state is not None else state
        self.rng = random.Random(seed)
        self.pairings = cohort.parent / "pairings.csv"
        with open(self.pairings, newline="", encoding="utf-8") as handle:
            self.rows = list(csv.DictReader(handle))
        edit = self.rng.randint(2, 3)
        approve = edit + self.rng.randint(2, 3)
        reschedule = approve + self.rng.randint(1, 2)
        withdraw = reschedule + self.rng.randint(1, 2)
        self.actions = [
            Action("edit", edit),
            Action("approve", approve),
            Action("reschedule", reschedule),
            Action("withdraw", withdraw),
        ]
        ids = [row["pair_id"] for row in self.rows]
        self.removed = sorted(self.rng.sample(ids, len(ids) // 4))
        self.moved: tuple[str, int] | None = None  # (pair, session) moved by `reschedule`
        self.moved_people: tuple[str, str] = ("", "")
        self.withdrawn_email = ""
        self.withdrawn_pairs: set[str] = set()
        self.cancelled_while_held: list[str] = []  # sessions cancelled before the approval: none, or the hold failed
        self.failures: list[str] = []  # commands that did not do what they should
        self.underway: Counter = Counter()  # kills that landed with an action applied but not yet carried through

    def __call__(self, run: int) -> None:
        seen = peek(self.state)
        if seen is None or seen.now is None:
            return  # nothing recorded yet: the next killed run, then
        # From the state, not the log: a kill can land between a commit and its log line.
        for done in self.actions:
            if done.run is not None and done.effective is None:
                if (done.name == "edit" and seen.held) or (done.request is not None and done.request in seen.done):
                    done.effective = run
            if done.effective is not None and self._unfinished(done, seen):
                self.underway[done.name] += 1
        action = next((a for a in self.actions if a.run is None), None)
        if action is None or run < action.planned:
            return
        if getattr(self, "_" + action.name)(seen):
            action.run, action.at = run, seen.now

    def _unfinished(self, action: Action, seen: Peek) -> bool:
        """Applied, but what follows from it not all done when the kill landed: sessions
        still to be cancelled or notices still to go (approve, withdraw), the new invitation
        not yet sent to both (reschedule)."""
        assert seen.now is not None
        if action.name in ("approve", "withdraw"):
            pairs = set(self.removed) if action.name == "approve" else self.withdrawn_pairs
            booked = any(p in pairs and status == "booked" and start > seen.now for (p, _), (start, status) in seen.sessions.items())
            notices = any(
                p in pairs and "cancellation" in stage and state in ("planned", "sending") for p, stage, _, state in seen.messages
            )
            return booked or notices
        if action.name == "reschedule" and self.moved:
            pair_id, number = self.moved
            stage = f"session{number}_invitation"
            return (
                sum(1 for p, s, revision, state in seen.messages if p == pair_id and s == stage and revision >= 1 and state == "sent") < 2
            )
        return False

    def action(self, name: str) -> Action:
        return next(a for a in self.actions if a.name == name)

    def _edit(self, seen: Peek) -> bool:
        kept = [row for row in self.rows if row["pair_id"] not in self.removed]
        with open(self.pairings, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(self.rows[0]))
            writer.writeheader()
            writer.writerows(kept)
        self.action("edit").what = f"{len(self.removed)} of {len(self.rows)} rows removed"
        return True

    def _approve(self, seen: Peek) -> bool:
        if not seen.held:
            return False  # no run has seen the edit yet: approving now would approve nothing
        self.cancelled_while_held = sorted(f"{p}#{n}" for (p, n), (_, status) in seen.sessions.items() if status != "booked")
        self._queue("approve")
        return True

    def _reschedule(self, seen: Peek) -> bool:
        assert seen.now is not None
        soon = seen.now + timedelta(days=2)
        live = self._live(seen)
        choices = sorted((pair_id, number) for (pair_id, number), (start, _) in seen.sessions.items() if pair_id in live and start > soon)
        if not choices:
            self.failures.append(f"no session left to move at {seen.now}")
            return True
        # Session 1 where it is still ahead, else session 2.
        firsts = [c for c in choices if c[1] == 1]
        self.moved = self.rng.choice(firsts or choices)
        pair_id, number = self.moved
        row = next(r for r in self.rows if r["pair_id"] == pair_id)
        self.moved_people = (row["mentor_email"], row["mentee_email"])
        self._queue("reschedule", pair_id, "--session", str(number), "--auto")
        return True

    def _withdraw(self, seen: Peek) -> bool:
        assert seen.now is not None
        live = self._live(seen) - {self.moved[0] if self.moved else ""}
        ahead = {p for (p, _), (start, _) in seen.sessions.items() if start > seen.now + timedelta(days=1)}
        pairs_of: defaultdict[str, set[str]] = defaultdict(set)
        for row in self.rows:
            pairs_of[row["mentor_email"]].add(row["pair_id"])
            pairs_of[row["mentee_email"]].add(row["pair_id"])
        # Someone with two pairs, both still running, if there is one.
        people = sorted(email for email, mine in pairs_of.items() if mine <= live and mine & ahead)
        two = [email for email in people if len(pairs_of[email]) == 2]
        if not people:
            self.failures.append(f"nobody left to withdraw at {seen.now}")
            return True
        self.withdrawn_email = self.rng.choice(two or people)
        self.withdrawn_pairs = pairs_of[self.withdrawn_email]
        self._queue("withdraw", self.withdrawn_email)
        return True

    def _live(self, seen: Peek) -> set[str]:
        """Pairs still in the pairings, not withdrawn, both sessions booked."""
        return {
            row["pair_id"]
            for row in self.rows
            if row["pair_id"] not in self.removed
            and row["pair_id"] not in seen.withdrawn
            and all(seen.sessions.get((row["pair_id"], n), (None, ""))[1] == "booked" for n in (1, 2))
        }

    def _queue(self, *args: str) -> None:
        name = args[0]
        command = [sys.executable, "-m", "service", name, "--config", str(self.cohort), "--state", str(self.daemon_state), *args[1:]]
        result = subprocess.run(self.faults.command(command) if self.faults else command, capture_output=True, text=True, cwd=ROOT)
        action = self.action(name)
        action.what = " ".join(args[1:]) or name
        found = re.search(r"request (\d+) queued", result.stdout)
        if result.returncode != 0 or not found:
            self.failures.append(f"{' '.join(args)}: exit {result.returncode}\n{result.stdout}{result.stderr}")
            return
        action.request = int(found.group(1))


def skipped_in_time(row) -> bool:
    return row.state is State.SKIPPED and row.expires is not None and row.updated_at is not None and row.updated_at >= row.expires


def overlapping(known, records) -> list[str]:
    """Sessions that still stand and put one person in two places at once."""
    people = defaultdict(list)
    for pair_id, mine in records.items():
        for record in mine:
            if not record.cancelled and pair_id in known:
                for person in known[pair_id].people:
                    people[person.email].append((record.session.start, record.session.end, f"{pair_id}#{record.session.number}"))
    problems = []
    for email, sessions in people.items():
        sessions.sort()
        for (_, end, one), (start, _, other) in zip(sessions, sessions[1:]):
            if start < end:
                problems.append(f"{email}: {one} and {other} overlap")
    return problems


DISK, POSTGRESQL = "sqlite on a disk that fills", "postgresql with its connections cut"


@pytest.mark.parametrize("backend", [DISK, pytest.param(POSTGRESQL, marks=pytest.mark.postgres)])
def test_killed_at_random_moments_with_edits_and_commands_in_the_mix_nothing_goes_twice(tmp_path, backend):
    """Besides the kills: with SQLite, the state and the outbox share a small disk that
    fills up at random moments (sometimes for the next runs too) and is freed later; with
    PostgreSQL, the daemon's database connections are cut while it works."""
    with contextlib.ExitStack() as stack:
        if backend == DISK:
            disk = SmallDisk(tmp_path / "disk", seed=20270305)
            stack.callback(disk.close)
            daemon_state, daemon_outbox = disk.folder / "state.sqlite", disk.folder / "outbox"
            state, outbox = disk.inside(daemon_state), disk.inside(daemon_outbox)
            faults: Faults = disk
        else:
            url = stack.enter_context(postgres_database())
            daemon_state, state, daemon_outbox = url, url, tmp_path / "outbox"
            outbox = daemon_outbox
            faults = CutConnections(url, seed=20270306)
        living_program(tmp_path, backend, daemon_state, state, daemon_outbox, outbox, faults)


def living_program(tmp_path: Path, backend: str, daemon_state, state, daemon_outbox: Path, outbox: Path, faults: Faults) -> None:
    """`daemon_state` and `daemon_outbox` as the daemon sees them, `state` and `outbox`
    as the test reaches them."""
    # SQLite does the program's work in less processor time: more pairs, so that enough
    # kills land before the program is over.
    pairs, min_kills = (96 if backend == DISK else 48), 12
    cohort = write_cohort(tmp_path / "config", pairs)
    check_configuration(cohort, pairs)
    logs = tmp_path / "logs"
    command = simulate_command(cohort, daemon_state, daemon_outbox)
    coordinator = Coordinator(cohort, state, seed=20270303, faults=faults, daemon_state=daemon_state)
    crashes = crash_until_done(
        command, state, logs, seed=20270304, kills_wanted=18, kill_window=360.0, wall_cap=600.0, between=coordinator, faults=faults
    )
    mix = []
    for action in coordinator.actions:
        if action.run is None or action.at is None:
            mix.append(f"{action.name} not done (planned after run {action.planned})")
            continue
        # Not seen applied after any killed run: the run that finished by itself applied it.
        effective = action.effective or (crashes.runs if crashes.finished else None)
        killed = effective in crashes.killed_runs
        before = sum(1 for run in crashes.killed_runs if action.run < run < (effective or crashes.runs + 1))
        after = sum(1 for run in crashes.killed_runs if run > action.run)
        mix.append(
            f"{action.name} {action.what!r} after run {action.run} (planned {action.planned}) at {action.at:%m-%d %H:%M}, "
            f"in force from run {effective} ({'killed' if killed else 'not killed'}), kills before that {before}, kills after it {after}"
            f" (of which while it was being carried through {coordinator.underway[action.name]})"
        )
    text = summary("living program", crashes) + "\n  " + "\n  ".join(mix)
    print("\n" + text)

    deliveries, dates = Counter(), {}
    for path in outbox.glob("*.eml"):
        headers = BytesHeaderParser(policy=policy.default).parsebytes(path.read_bytes())
        message_id = str(headers["Message-ID"]).strip()
        deliveries[message_id] += 1
        dates[message_id] = headers["Date"].datetime
    leftovers = sorted(p.name for p in outbox.iterdir() if p.suffix != ".eml")
    inputs = bootstrap.load_inputs(cohort)
    store = open_store(copied(state) if isinstance(state, Path) and str(state).startswith("/proc/") else state)
    try:
        rows = store.messages()
        records = by_pair(store.sessions())
        known = store.known_pairs()
        withdrawn = store.withdrawn()
        audit = store.audit_log()
    finally:
        store.close()

    # Every email once: per Message-ID, one file; every sent row one file, every file a sent row.
    states = Counter(row.state.value for row in rows)
    sent_ids = {row.message_id for row in rows if row.state is State.SENT}
    duplicates = [f"{mid} x{n}" for mid, n in deliveries.items() if n > 1]
    sent_not_once = ["/".join(map(str, r.key)) for r in rows if r.state is State.SENT and deliveries.get(r.message_id or "", 0) != 1]
    unknown = [mid for mid in deliveries if mid not in sent_ids]
    # Nothing lost: what the program wants now, for every pair it ever knew, went out.
    received = handed_over(rows)
    by_key = {row.key: row for row in rows}
    wanted = {w.key for pair in known.values() for w in wanted_for_pair(inputs.cohort, pair, records.get(pair.id, []), received)}
    # Skipped only when its moment had truly passed: at or after its expiry.
    lost = [
        "/".join(map(str, key)) + f" ({by_key[key].state.value if key in by_key else 'no row'})"
        for key in sorted(wanted)
        if key not in by_key or not (by_key[key].state is State.SENT or skipped_in_time(by_key[key]))
    ]
    skipped_wanted = sum(1 for key in wanted if key in by_key and by_key[key].state is State.SKIPPED)
    # A notice about a session that was never cancelled (it had already happened).
    odd_notices = sorted(
        "/".join(map(str, r.key))
        for r in rows
        if "cancellation" in r.stage.value
        and r.stage.info.session
        and not any(x.cancelled for x in records.get(r.pair_id, []) if x.session.number == r.stage.info.session)
    )

    # Cancelled pairs: after the moment their sessions were cancelled, only cancellation
    # notices. Checked twice: in the order of the audit log (nothing handed to the
    # transport after the cancellation was committed) and by the Date of the .eml files
    # against the sessions' changed_at.
    cancelled_pairs = {
        pair_id: min(r.changed_at for r in mine if r.cancelled) for pair_id, mine in records.items() if any(r.cancelled for r in mine)
    }
    first_cancel: dict[str, int] = {}
    late = []
    for index, entry in enumerate(audit):
        pair_id = entry.get("pair_id")
        if entry["event"] == "sessions_cancelled":
            first_cancel.setdefault(pair_id, index)
        elif entry["event"] == "message_sending" and pair_id in first_cancel and "cancellation" not in str(entry.get("stage")):
            late.append(f"{pair_id} {entry.get('stage')} to {entry.get('recipient')} handed over after the cancellation")
    for row in rows:
        when = cancelled_pairs.get(row.pair_id)
        dated = dates.get(row.message_id or "")
        if when and dated and row.state is State.SENT and "cancellation" not in row.stage.value:
            if dated > when.replace(microsecond=0):
                late.append(f"{row.pair_id} {row.stage} to {row.recipient} dated {dated}, cancelled {when}")
    notices = [r for r in rows if r.state is State.SENT and "cancellation" in r.stage.value]

    # The edit: held (no session cancelled) until the approval was applied; then every
    # removed pair's coming sessions cancelled, and nobody else's.
    done = {entry["request"]: index for index, entry in enumerate(audit) if entry["event"] == "request_done"}
    approve = coordinator.action("approve")
    approved_at = done.get(approve.request, len(audit))
    too_early = sorted(p for p, index in first_cancel.items() if p in coordinator.removed and index < approved_at)
    approve_moment = next((e["at"] for e in audit if e["event"] == "request_done" and e["request"] == approve.request), None)
    still_booked = sorted(
        f"{pair_id}#{r.session.number}"
        for pair_id in coordinator.removed
        for r in records.get(pair_id, [])
        if not r.cancelled and approve_moment and r.session.start > approve_moment
    )
    expected_out = set(coordinator.removed) | coordinator.withdrawn_pairs
    cancelled_others = sorted(set(cancelled_pairs) - expected_out)

    # The withdrawal: the person's pairs withdrawn, their coming sessions cancelled.
    withdraw = coordinator.action("withdraw")
    withdraw_moment = next((e["at"] for e in audit if e["event"] == "request_done" and e["request"] == withdraw.request), None)
    withdraw_booked = sorted(
        f"{pair_id}#{r.session.number}"
        for pair_id in coordinator.withdrawn_pairs
        for r in records.get(pair_id, [])
        if not r.cancelled and withdraw_moment and r.session.start > withdraw_moment
    )

    # The move: once, to another time, and both people got the new invitation.
    moves, told, moved_record = [], [], None
    if coordinator.moved:
        pair_id, number = coordinator.moved
        moved_record = records[pair_id][number - 1]
        moves = [
            e for e in audit if e["event"] == "session_moved" and e["pair_id"] == pair_id and e.get("reason") == "the coordinator moved it"
        ]
        stage = f"session{number}_invitation"
        told = sorted(
            r.recipient for r in rows if r.pair_id == pair_id and r.stage.value == stage and r.revision >= 1 and r.state is State.SENT
        )

    overlaps = overlapping(known, records)

    text = (
        summary("living program", crashes)
        + "\n  "
        + "\n  ".join(mix)
        + f"\n  messages: {len(rows)} rows {dict(states)}; .eml files {sum(deliveries.values())}, duplicates {len(duplicates)}, "
        f"sent-not-once {len(sent_not_once)}, unknown {len(unknown)}, wanted {len(wanted)} (lost {len(lost)}, skipped {skipped_wanted}), "
        f"cancellation notices sent {len(notices)}, pairs cancelled {len(cancelled_pairs)}, other files in the outbox {len(leftovers)}"
        + f"\n  cancellation notices planned for sessions that were never cancelled (they had happened): {len(odd_notices)} {odd_notices[:4]}"
        + f"\n  moved {coordinator.moved} {len(moves)} time(s), new invitation sent to {told}; "
        f"withdrawn {coordinator.withdrawn_email} -> {sorted(withdrawn)}"
    )
    print("\n".join(text.splitlines()[-3:]))

    assert not duplicates, f"{text}\nduplicates: {duplicates[:10]}"
    assert not lost, f"{text}\nlost: {lost[:10]}"
    assert_crash_run(crashes, text, min_kills)
    assert not coordinator.failures, f"{text}\n" + "\n".join(coordinator.failures)
    assert all(a.run is not None for a in coordinator.actions), text
    assert all(sum(1 for run in crashes.killed_runs if run > a.run) >= 1 for a in coordinator.actions if a.run is not None), (
        f"an action with no kill after it\n{text}"
    )
    assert states.get(State.PLANNED.value, 0) == 0 and states.get(State.SENDING.value, 0) == 0, text
    assert set(states) <= {State.SENT.value, State.CANCELLED.value, State.SKIPPED.value}, text
    assert not sent_not_once, f"{text}\n{sent_not_once[:10]}"
    assert not unknown, f"{text}\n.eml files of no sent row: {unknown[:10]}"
    assert not lost, f"{text}\nlost: {lost[:10]}"
    assert not late, f"{text}\n" + "\n".join(late[:10])
    assert not coordinator.cancelled_while_held, f"{text}\ncancelled while the edit was held: {coordinator.cancelled_while_held}"
    assert not too_early, f"{text}\ncancelled before the approval was applied: {too_early}"
    assert not still_booked, f"{text}\nremoved pairs still booked after the approval: {still_booked}"
    assert not cancelled_others, f"{text}\ncancelled though neither removed nor withdrawn: {cancelled_others}"
    assert withdrawn == coordinator.withdrawn_pairs, text
    assert not withdraw_booked, f"{text}\nwithdrawn pairs still booked: {withdraw_booked}"
    assert len(moves) == 1, f"{text}\nmoves: {moves}"
    assert moved_record is not None and moved_record.sequence >= 1 and not moved_record.cancelled, text
    assert moved_record.previous_start is not None and moved_record.previous_start != moved_record.session.start, text
    assert not overlaps, f"{text}\n" + "\n".join(overlaps[:10])
    assert told == sorted(coordinator.moved_people), text

    # The faults did strike, and the daemon met them.
    said = "".join(path.read_text(errors="replace") for path in sorted(logs.iterdir()))
    if isinstance(faults, SmallDisk):
        assert faults.episodes >= 2 and faults.refused == faults.episodes, f"{text}\nthe disk filled {faults.episodes} time(s)"
        assert "disk is full" in said or "outbox folder cannot be written (No space left on device)" in said, text
    if isinstance(faults, CutConnections):
        assert crashes.faults["lock connection cut"] >= 1 and crashes.faults["work connection cut"] >= 1, text
        assert crashes.fault_stops >= 1, text
