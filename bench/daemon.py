"""How the daemon copes with a large cohort: first tick, idle ticks, a whole program, SMTP.

The cohort is generated into a temporary folder as the coordinator would write it: a
cohort file and a pairings CSV with --pairs pairs (mentors with 1 to 4 mentees, people in
eleven time zones on five continents, most mentees within a few hours of their mentor,
some blackout dates), program 2027-03-01..2027-04-30 in America/New_York, default session
rules and default working hours. The daemon is assembled as `mentorship run --simulate`
assembles it (ConfigWatcher, SQLite state in a file, Controller, run_simulated), on a
simulated clock that starts at 2027-02-01 00:00 UTC.

1. First tick: reading and validating the files, planning and booking every pair, and
   planning every email of the program (18 per booked pair), in one `controller.tick`.
2. Idle tick: `controller.tick(now)` again and again with nothing due (median and p95),
   just after the first tick, and again in the middle of the program (3 below), when the
   state holds every message and a good part of them is sent.
3. The whole program with the file transport (an .eml file per message, fsync'd), by
   run_simulated until nothing is left, the 90-day follow-up included.
4. SMTP against a local aiosmtpd server that only counts what arrives: (a) a simulated
   program (a smaller cohort, --smtp-pairs) whose mail goes over SMTP, one connection per
   batch of Deps.batch messages as the daemon does; (b) --smtp-messages messages built
   with service.mail.mime.build_message and sent straight through SmtpMailer, once with a
   new connection per message and once all through one connection.
5. Memory: the process's max RSS after each phase (getrusage; it never goes down), and
   the tracemalloc peak of the first tick, measured on a separate, identical first tick
   on a fresh state, since tracemalloc slows Python down several times.

    python bench/daemon.py [--pairs 10000] [--seed 2027] [--smtp-messages 2000] [--smtp-pairs 500]

Times are wall-clock (perf_counter) on whatever machine runs it, state and outbox on the
temporary folder's file system. It prints figures and asserts nothing about time.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import gc
import multiprocessing
import os
import random
import resource
import shutil
import statistics
import tempfile
import time as clock_time
import tracemalloc
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from time import perf_counter
from typing import Callable, Iterator
from zoneinfo import ZoneInfo

from service import bootstrap, jobs
from service.adapters.clock import SimulatedClock
from service.adapters.filemail import FileMailer
from service.adapters.smtp import SmtpMailer, SmtpSettings
from service.domain.model import Contact
from service.domain.outbox import State
from service.jobs import Controller, Deps
from service.mail.mime import build_message, message_id
from service.mail.templates import Rendered
from service.runner import run_simulated

START = datetime(2027, 2, 1, tzinfo=UTC)  # the simulated clock: a month before the program
PROGRAM_START, PROGRAM_END = date(2027, 3, 1), date(2027, 4, 30)
PROGRAM_ZONE = "America/New_York"
MID_PROGRAM = datetime(2027, 3, 20, tzinfo=UTC)  # where the second idle-tick measurement stops
HOST = "127.0.0.1"

# Targets, printed next to the figures (nothing is asserted).
IDLE_TICK_TARGET_MS = 50.0
SMTP_REUSE_TARGET = 3.0  # reused connection at least this many times per-message's rate
RSS_TARGET_MB = 150.0

ZONES = (
    "America/Los_Angeles",
    "America/New_York",
    "America/Sao_Paulo",
    "Europe/London",
    "Europe/Berlin",
    "Africa/Lagos",
    "Asia/Kolkata",
    "Asia/Singapore",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Australia/Lord_Howe",
)
GOOD_FRIDAY, EASTER_MONDAY = "2027-03-26", "2027-03-29"
HOLIDAYS = {
    "America/Sao_Paulo": [GOOD_FRIDAY],
    "Europe/London": [GOOD_FRIDAY, EASTER_MONDAY],
    "Europe/Berlin": [GOOD_FRIDAY, EASTER_MONDAY],
    "Africa/Lagos": [GOOD_FRIDAY, EASTER_MONDAY],
    "Asia/Singapore": [GOOD_FRIDAY],
    "Asia/Tokyo": ["2027-03-22", "2027-04-29"],
    "Australia/Sydney": [GOOD_FRIDAY, EASTER_MONDAY],
    "Australia/Lord_Howe": [GOOD_FRIDAY, EASTER_MONDAY],
}
NEAR_HOURS = 3.5  # a "near" mentee lives at most this many hours from the mentor
NEAR_MENTEE_SHARE = 0.85
MENTEES_PER_MENTOR = ((1, 2, 3, 4), (30, 35, 20, 15))  # values, weights
FIRST_NAMES = (
    "Maya", "Zoë", "Jonas", "Priya", "Sofia", "Daniel", "Grace", "Mateo", "Li", "Kai", "Noah",
    "Chloé", "Amara", "Ola", "Hiroshi", "Aisha", "Lucas", "Ingrid", "Tomás", "Fatima", "Chen",
    "Olivia", "Ravi", "Björn", "Nia", "Emeka", "Yuki", "Sipho", "Elena", "Omar",
)
LAST_NAMES = (
    "Okafor", "Núñez", "Weber", "Nair", "Rossi", "Kim", "Hopper", "García", "Lei", "Nakamura",
    "Williams", "Dubois", "Mensah", "Nordmann", "Tanaka", "Khan", "Silva", "Larsen", "O'Brien",
    "Haddad", "Wang", "Smith", "Iyer", "Lindqvist", "Adeyemi", "Eze", "Sato", "Dlamini", "Popescu",
)
NOTES = (
    "Moving from QA into backend engineering.",
    "Wants to grow into a tech lead role.",
    "Part-time; prefers mornings.",
    "Interested in distributed systems and on-call practice.",
    "Returning to engineering after a career break.",
)
COLUMNS = (
    "pair_id,mentor_name,mentor_email,mentor_timezone,mentor_hours,mentor_days,mentor_blackout,"
    "mentor_busy_ics,mentor_linkedin,mentee_name,mentee_email,mentee_timezone,mentee_hours,"
    "mentee_days,mentee_blackout,mentee_resume,mentee_linkedin,notes"
).split(",")


# --------------------------------------------------------------------------- the cohort


def utc_offset_hours(zone: str) -> float:
    moment = datetime(2027, 3, 1, 12, tzinfo=UTC).astimezone(ZoneInfo(zone))
    return moment.utcoffset().total_seconds() / 3600


NEAR_ZONES = {
    zone: [z for z in ZONES if abs(utc_offset_hours(z) - utc_offset_hours(zone)) <= NEAR_HOURS] for zone in ZONES
}


@dataclass(frozen=True)
class Generated:
    config: Path
    pairings: Path
    pairs: int
    people: int
    zones: int


def write_cohort(folder: Path, size: int, seed: int, smtp_port: int | None = None) -> Generated:
    """A cohort file and a pairings CSV of `size` pairs in `folder`. Hours and days are
    left blank (the defaults, 09:00-17:00 Mon-Fri in each person's own zone)."""
    rng = random.Random(f"{seed}-cohort-{size}")
    folder.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, str]] = []
    people = 0
    zones_used: set[str] = set()

    def person_fields(role: str, number: int, zone: str) -> dict[str, str]:
        blackout = list(HOLIDAYS.get(zone, []))
        if rng.random() < 0.1:  # a week away
            first = PROGRAM_START + timedelta(days=rng.randrange(0, 55))
            blackout.append(f"{first.isoformat()}..{(first + timedelta(days=4)).isoformat()}")
        name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        handle = name.lower().replace(" ", "-").replace("'", "")
        return {
            f"{role}_name": name,
            f"{role}_email": f"{role}{number}@example.{'org' if role == 'mentor' else 'net'}",
            f"{role}_timezone": zone,
            f"{role}_blackout": "; ".join(blackout),
            f"{role}_linkedin": f"https://www.linkedin.com/in/{number}-example" if rng.random() < 0.5 else "",
            **({"mentee_resume": f"https://example.net/cv/{number}.pdf"} if role == "mentee" and rng.random() < 0.3 else {}),
        }

    while len(rows) < size:
        zone = rng.choice(ZONES)
        people += 1
        mentor = person_fields("mentor", people, zone)
        zones_used.add(zone)
        for k in range(min(rng.choices(*MENTEES_PER_MENTOR)[0], size - len(rows))):
            people += 1
            mentee_zone = rng.choice(NEAR_ZONES[zone] if rng.random() < NEAR_MENTEE_SHARE else ZONES)
            zones_used.add(mentee_zone)
            row = dict.fromkeys(COLUMNS, "")
            # A mentor's details once; later rows give only the email.
            row.update(mentor if k == 0 else {"mentor_name": mentor["mentor_name"], "mentor_email": mentor["mentor_email"]})
            row.update(person_fields("mentee", people, mentee_zone))
            row["pair_id"] = f"p{len(rows) + 1:05d}"
            row["notes"] = rng.choice(NOTES) if rng.random() < 0.4 else ""
            rows.append(row)

    pairings = folder / "pairings.csv"
    with pairings.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    mail = (
        f"mail:\n  transport: smtp\n  smtp:\n    host: {HOST}\n    port: {smtp_port}\n    security: none\n"
        if smtp_port
        else ""
    )
    config = folder / "cohort.yaml"
    config.write_text(
        f"name: Benchmark {size} pairs\n"
        "coordinator:\n  name: Renata Alves\n  email: renata.alves@example.org\n"
        f"program:\n  start: {PROGRAM_START}\n  end: {PROGRAM_END}\n  timezone: {PROGRAM_ZONE}\n"
        "pairings: pairings.csv\n" + mail,
        encoding="utf-8",
    )
    return Generated(config=config, pairings=pairings, pairs=len(rows), people=people, zones=len(zones_used))


# --------------------------------------------------------------------------- the daemon


@dataclass
class Counters:
    ticks: int = 0
    sent: int = 0


class Daemon:
    """A daemon as `mentorship run --simulate` assembles it, with counters on the side."""

    def __init__(self, config: Path, state: Path, clock: SimulatedClock, outbox: Path | None = None):
        self.clock = clock
        self.watcher = bootstrap.ConfigWatcher(config, None)
        self.load_seconds = timed(self.watcher.current)  # validation: ConfigError ends here
        self.store = bootstrap.open_state(state)
        self.mailer = bootstrap.make_mailer(self.watcher.configuration, state, outbox)
        self.lines: list[str] = []
        self.controller = Controller(Deps(store=self.store, mailer=self.mailer, source=self.watcher, log=self._log))
        self.counters = Counters()
        # Counted on the instances, so run_simulated drives the real objects unchanged.
        tick, mark_sent = self.controller.tick, self.store.mark_sent

        def counted_tick(now: datetime):
            self.counters.ticks += 1
            return tick(now)

        def counted_mark_sent(row, now):
            mark_sent(row, now)
            self.counters.sent += 1

        self.controller.tick = counted_tick
        self.store.mark_sent = counted_mark_sent

    def _log(self, now: datetime, line: str) -> None:
        if len(self.lines) < 1000:  # a sample: the full log of 180k messages is not the point
            self.lines.append(line)

    def tick(self) -> datetime | None:
        return self.controller.tick(self.clock.now())

    def run(self, until: datetime | None, label: str, every: float = 30.0) -> float:
        """run_simulated, printing a progress line every `every` seconds. Returns seconds."""
        began = perf_counter()
        with progress(self, label, began, every):
            run_simulated(self.controller, self.clock, until)
        return perf_counter() - began

    def close(self) -> None:
        self.store.close()


@contextlib.contextmanager
def progress(daemon: Daemon, label: str, began: float, every: float) -> Iterator[None]:
    tick = daemon.controller.tick
    last = [began, daemon.counters.sent]

    def tick_with_progress(now: datetime):
        moment = perf_counter()
        if moment - last[0] >= every:
            rate = (daemon.counters.sent - last[1]) / (moment - last[0])
            print(
                f"    [{label}] {moment - began:6.0f} s  simulated {now:%Y-%m-%d %H:%M} UTC"
                f"  sent {daemon.counters.sent:>7}  ticks {daemon.counters.ticks:>6}  ({rate:.0f} msg/s lately)",
                flush=True,
            )
            last[:] = [moment, daemon.counters.sent]
        return tick(now)

    daemon.controller.tick = tick_with_progress
    try:
        yield
    finally:
        daemon.controller.tick = tick


def timed(action: Callable[[], object]) -> float:
    began = perf_counter()
    action()
    return perf_counter() - began


@contextlib.contextmanager
def step_times(daemon: Daemon) -> Iterator[dict[str, float]]:
    """Seconds spent in the parts of the first tick, by wrapping them for its duration."""
    spent: dict[str, float] = {}
    patches: list[tuple[object, str, object]] = []

    def wrap(owner: object, name: str, label: str) -> None:
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            began = perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                spent[label] = spent.get(label, 0.0) + perf_counter() - began

        patches.append((owner, name, original))
        setattr(owner, name, wrapper)

    store = daemon.store
    wrap(store, "remember_pairs", "store.remember_pairs (pair details)")
    wrap(store, "sessions", "store.sessions (read sessions)")
    wrap(jobs, "plan_sessions", "plan_sessions (planner)")
    wrap(store, "book", "store.book (write sessions)")
    wrap(store, "messages", "store.messages (read messages)")
    wrap(jobs, "wanted_for_pair", "wanted_for_pair (email timeline)")
    wrap(jobs, "changes", "changes (diff)")
    wrap(store, "apply", "store.apply (insert messages)")
    wrap(jobs, "send_due", "send_due")
    wrap(jobs, "plan_digest", "plan_digest (attention digest)")
    wrap(store, "next_due", "store.next_due")
    try:
        yield spent
    finally:
        for owner, name, original in reversed(patches):
            if owner is store:
                delattr(owner, name)
            else:
                setattr(owner, name, original)


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def message_counts(store) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in store.messages():
        counts[row.state.value] = counts.get(row.state.value, 0) + 1
    return counts


def idle_ticks(daemon: Daemon, repeat: int) -> list[float]:
    """Milliseconds of each of `repeat` ticks at the current (unchanged) moment."""
    now = daemon.clock.now()
    before = daemon.counters.sent
    times = []
    for _ in range(repeat):
        began = perf_counter()
        daemon.controller.tick(now)
        times.append((perf_counter() - began) * 1000)
    if daemon.counters.sent != before:
        raise RuntimeError("an idle tick sent something: the measurement is not of idle ticks")
    return times


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


# --------------------------------------------------------------------------- SMTP


def _serve_smtp(ports, received, connections, stop) -> None:
    """The SMTP server process: aiosmtpd on the loopback, counting and dropping mail."""
    from aiosmtpd.controller import Controller as SmtpController

    class Counting:
        async def handle_EHLO(self, server, session, envelope, hostname, responses):
            session.host_name = hostname  # the 5-argument hook must set it itself
            with connections.get_lock():
                connections.value += 1
            return responses

        async def handle_DATA(self, server, session, envelope):
            with received.get_lock():
                received.value += 1
            return "250 2.0.0 Queued"

    class Loopback(SmtpController):
        def _trigger_server(self):
            self.port = self.server.sockets[0].getsockname()[1]
            super()._trigger_server()

    controller = Loopback(Counting(), hostname=HOST, port=0, ready_timeout=10)
    controller.start()
    ports.put(controller.port)
    stop.wait()
    controller.stop()


class SmtpServer:
    """aiosmtpd in its own process, so the server does not share the client's
    interpreter lock. `received` counts messages, `connections` counts EHLOs."""

    def __enter__(self) -> SmtpServer:
        context = multiprocessing.get_context("spawn")
        self.received = context.Value("q", 0)
        self.connections = context.Value("q", 0)
        self._stop = context.Event()
        ports = context.Queue()
        self._process = context.Process(
            target=_serve_smtp, args=(ports, self.received, self.connections, self._stop), daemon=True
        )
        self._process.start()
        self.port = ports.get(timeout=60)
        return self

    def counts(self) -> tuple[int, int]:
        return self.received.value, self.connections.value

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._process.join(timeout=30)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()


def smtp_messages(count: int, seed: int) -> list[EmailMessage]:
    """Program-like messages: text + HTML, a few hundred words, some with non-ASCII names."""
    rng = random.Random(f"{seed}-smtp")
    sender = Contact(name="Spring Mentoring", email="coordinator@example.org")
    paragraph = (
        "Your first session is on Monday 1 March at 10:00 (your time). Bring one question you"
        " would like to work on, and a small example from your own work. "
    )
    built = []
    for number in range(count):
        to = Contact(name=f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}", email=f"mentee{number}@example.net")
        text = f"Hello {to.name},\n\n" + "\n\n".join(paragraph * rng.randint(1, 3) for _ in range(6)) + "\n\nRenata\n"
        html = "".join(f"<p>{part}</p>\n" for part in text.split("\n\n"))
        built.append(
            build_message(
                Rendered(subject=f"Your first session with Maya ({number})", text=text, html=html),
                sender=sender,
                reply_to=sender,
                to=to,
                message_id=message_id(("bench", str(seed), str(number)), "example.org"),
                date=datetime(2027, 3, 1, 9, tzinfo=UTC),
            )
        )
    return built


def smtp_mailer(port: int) -> SmtpMailer:
    return SmtpMailer(SmtpSettings(host=HOST, port=port, security="none", timeout=30.0))


def send_per_message(mailer: SmtpMailer, batch: list[EmailMessage]) -> float:
    began = perf_counter()
    for message in batch:
        with mailer.connect() as connection:
            connection.send(message)
    return perf_counter() - began


def send_reused(mailer: SmtpMailer, batch: list[EmailMessage]) -> float:
    began = perf_counter()
    with mailer.connect() as connection:
        for message in batch:
            connection.send(message)
    return perf_counter() - began
