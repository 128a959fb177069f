"""The daemon killed with SIGKILL at random moments, restarted each time, until a run
finishes by itself: no email goes out twice, none is silently lost.

Each message row goes planned -> sending (committed) -> transport -> sent. A kill can land
anywhere: during start-up, while booking, between the `sending` commit and the transport,
between the transport and the `sent` commit. After a restart the rows found `sending` are
checked with the transport; the file transport can always tell, SMTP cannot (those rows
become uncertain, for the coordinator).

The kill delays come from a seeded generator; the moments they land on still depend on
the machine's speed, so the checks are on invariants, not on exact counts.
"""

from __future__ import annotations

import csv
import json
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.parser import BytesHeaderParser
from pathlib import Path

from aiosmtpd.controller import Controller as SmtpController

from service import bootstrap
from service.adapters.store import open_store
from service.domain.outbox import State, by_pair, handed_over, wanted_for_pair
from service.domain.planning import plan_sessions

ROOT = Path(__file__).parents[2]
NOW = "2027-02-01T00:00:00+00:00"
DIGEST = "coordinator_digest"
KILL_DELAYS = (0.05, 1.5)  # seconds after start: start-up, booking and sending
SENDING_DELAY = 0.6  # at most this long after a run's first log line: while it sends

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
    finished: bool = False
    seconds: float = 0.0
    last_stdout: str = ""

    @property
    def restarts(self) -> int:
        return max(self.runs - 1, 0)

    @property
    def kills_mid_send(self) -> int:
        return sum(n for left, n in self.in_flight_at_kill.items() if isinstance(left, int) and left > 0)


def crash_until_done(
    command: list[str],
    state: Path,
    logs: Path,
    *,
    seed: int,
    kills_wanted: int,
    kill_window: float,
    wall_cap: float,
    max_restarts: int = 200,
) -> Crashes:
    """Start the daemon, SIGKILL it after a seeded random delay, start it again, until
    `kills_wanted` kills hit a running process (or `kill_window` seconds passed); then
    let the next run finish by itself. Never runs past `wall_cap` or `max_restarts`.

    Half the delays count from the start (most land in start-up, recovery or booking),
    half from the run's first log line (they land while it sends)."""
    rng = random.Random(seed)
    crashes = Crashes()
    logs.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    sent_before = 0
    while crashes.runs <= max_restarts:
        elapsed = time.monotonic() - began
        if elapsed >= wall_cap:
            break
        killing = crashes.kills_during_work < kills_wanted and elapsed < kill_window
        from_start = rng.random() < 0.5
        delay = rng.uniform(*KILL_DELAYS) if from_start else rng.uniform(0.0, SENDING_DELAY)
        out, err = logs / f"run{crashes.runs:03d}.out", logs / f"run{crashes.runs:03d}.err"
        with open(out, "wb") as stdout, open(err, "wb") as stderr:
            started = time.monotonic()
            process = subprocess.Popen(command, stdout=stdout, stderr=stderr, cwd=ROOT)
            crashes.runs += 1
            cap = began + wall_cap
            deadline = min(started + delay, cap) if killing and from_start else cap
            first_line = None
            while process.poll() is None and time.monotonic() < deadline:
                if first_line is None and out.stat().st_size:
                    first_line = time.monotonic() - started
                    if killing and not from_start:
                        deadline = min(time.monotonic() + delay, cap)
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
            counts = state_counts(state)
            crashes.phases[phase(text, counts)] += 1
            if counts is None:
                continue
            crashes.in_flight_at_kill[counts["messages"].get(State.SENDING.value, 0)] += 1
            sent = counts["messages"].get(State.SENT.value, 0)
            if sent < sent_before:
                crashes.sent_went_down.append(f"run {crashes.runs}: {sent_before} -> {sent}")
            sent_before = sent
            continue
        if returncode == 0:
            crashes.finished = True
            break
        crashes.exits.append(f"run {crashes.runs} exited with {returncode}")
    crashes.seconds = time.monotonic() - began
    return crashes


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


def state_counts(state: Path) -> dict | None:
    """Sessions, and message rows per state, read without writing (no checkpoint between
    a kill and a restart); None when there is nothing to read yet."""
    if not state.exists():
        return None
    try:
        connection = sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=5)
        try:
            return {
                "sessions": connection.execute("SELECT count(*) FROM sessions").fetchone()[0],
                "messages": dict(connection.execute("SELECT state, count(*) FROM messages GROUP BY state").fetchall()),
            }
        finally:
            connection.close()
    except sqlite3.Error:
        return None  # killed before the schema existed


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
    assert crashes.kills_during_work >= min_kills, f"only {crashes.kills_during_work} kills hit a running daemon\n{text}"
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


# The tests


def test_killed_at_random_moments_the_file_transport_sends_every_email_once(tmp_path):
    pairs, min_kills = 200, 20
    cohort = write_cohort(tmp_path / "config", pairs)
    inputs = check_configuration(cohort, pairs)
    state, outbox = tmp_path / "state.sqlite", tmp_path / "outbox"
    command = [
        sys.executable,
        "-m",
        "service",
        "run",
        "--config",
        str(cohort),
        "--simulate",
        "--now",
        NOW,
        "--state",
        str(state),
        "--outbox",
        str(outbox),
    ]

    crashes = crash_until_done(command, state, tmp_path / "logs", seed=20270301, kills_wanted=22, kill_window=45.0, wall_cap=150.0)
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
        crashes = crash_until_done(command, state, tmp_path / "logs", seed=20270302, kills_wanted=12, kill_window=25.0, wall_cap=90.0)
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
