"""How the daemon copes with a large cohort: first tick, idle ticks, a program's mail, SMTP.

The cohort is generated (bench/cohorts.py) into a temporary folder as a coordinator
would write it: a cohort file and a pairings CSV with --pairs pairs (mentors with 1 to 4
mentees, people in eleven time zones on five continents, most mentees within a few hours
of their mentor, public holidays and the odd week away as blackout dates), program
2027-03-01..2027-04-30 in America/New_York, default session rules and default working
hours. The daemon is assembled as `mentorship run --simulate` assembles it
(ConfigWatcher, SQLite state in a file, make_mailer, Controller, run_simulated), on a
simulated clock that starts at 2027-02-01 00:00 UTC, a month before the program.

1. First tick: reading and validating the files (ConfigWatcher.start), then one
   `controller.tick`: planning and booking every pair and planning its emails (18 per
   booked pair; those due within a week written into the state, the others foreseen and
   written by later ticks), with the time of each part.
2. Idle tick: `controller.tick(now)` again and again with nothing due (median and p95),
   right after the first tick, and again where phase 3 stops, with the state full; and
   a re-plan with nothing to book (`reconcile`, as after an edit or an answer).
3. The file transport (FileMailer: an fsync'd .eml file per message) under run_simulated.
   The whole program with 10,000 pairs is ~170k messages, 20 to 30 minutes here, so by
   default only a prefix is run: everything due before --until (most of the
   welcome and invitation burst a week before the program: the largest messages, with
   calendar requests). `--until none` runs the whole program and the 90-day follow-up.
4. SMTP against a local aiosmtpd server in another process, whose handler only counts:
   (a) the whole program of a smaller cohort (--smtp-pairs) with its mail over SMTP, one
   connection per batch of Deps.batch messages as the daemon does; (b) --smtp-messages
   messages made by service.mail.mime.build_message, sent straight through SmtpMailer
   with a new connect() per message and with one connect() for all, without TLS and with
   STARTTLS (a self-signed certificate from the openssl tool, trusted through
   SSL_CERT_FILE, so SmtpMailer makes its TLS context as it does in production).
5. Memory: the process's max RSS after each phase (getrusage; it never goes down), and
   the tracemalloc peak of a first tick, measured separately on a fresh state in a fresh
   process, because tracemalloc makes the tick about five times slower.

    python bench/daemon.py [--pairs 10000] [--seed 2027] [--smtp-messages 2000]
                           [--smtp-pairs 500] [--until 2027-02-22T12:00+00:00 | none]

Times are wall-clock (perf_counter) on whatever machine runs it, with the state and the
outbox in the temporary folder; the fsync time printed at the start tells how much the
disk weighs. It prints figures and asserts nothing about time. About 10 minutes on two
cores with the defaults.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import multiprocessing
import os
import random
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from time import perf_counter, process_time

from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project root, for bench.cohorts


from bench.cohorts import (
    CLOCK_START,
    FIRST_NAMES,
    LAST_NAMES,
    PROGRAM_END,
    PROGRAM_START,
    PROGRAM_ZONE,
    LogSample,
    max_rss_mb,
    write_cohort,
)
from service import bootstrap
from service.adapters.clock import SimulatedClock
from service.adapters.smtp import SmtpMailer, SmtpSettings
from service.adapters.store.schema import messages, sessions
from service.domain.model import Contact
from service.domain.ports import Purpose
from service.mail.mime import build_message, message_id
from service.mail.templates import Rendered
from service.runner import run_simulated
from service.usecases import Controller, Deps
from service.usecases.booking import reconcile

HOST = "127.0.0.1"
POSTGRES = os.environ.get("MENTORSHIP_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")

# Targets, printed next to the figures (nothing is asserted).
IDLE_TICK_TARGET_MS = 50.0
SMTP_REUSE_TARGET = 3.0  # reused connection at least this many times per-message's rate
RSS_TARGET_MB = 150.0

# --------------------------------------------------------------------------- the daemon


@dataclass
class Counters:
    ticks: int = 0
    sent: int = 0


class Daemon:
    """A daemon as `mentorship run --simulate` assembles it, with counters on the side."""

    def __init__(self, config: Path, state: Path | str, clock: SimulatedClock, outbox: Path | None = None):
        self.clock = clock
        began, cpu = perf_counter(), process_time()
        self.watcher = bootstrap.ConfigWatcher.start(config, None, clock)  # validation: ConfigError ends here
        self.load_seconds, self.load_cpu = perf_counter() - began, process_time() - cpu
        self.store, self._release = bootstrap.open_locked_state(state)
        bootstrap.claim(self.store, state, Purpose.REHEARSAL)  # a fresh state: marked as a rehearsal's
        calendar, free_busy, _ = bootstrap.google_adapters(self.watcher.configuration)  # None: no Google here
        default_outbox = bootstrap.default_outbox(state, Purpose.REHEARSAL)
        self.mailer = bootstrap.make_mailer(self.watcher.configuration, default_outbox, outbox)
        self.log = LogSample(1000)  # a sample: the full log of 180k messages is not the point
        self.controller = Controller(
            Deps(store=self.store, mailer=self.mailer, source=self.watcher, calendar=calendar, free_busy=free_busy)
        )
        self.counters = Counters()
        self.cap: int | None = None  # run() stops once this many have been sent in all
        self._label: str | None = None  # set while run() prints progress
        self._began = self._last = 0.0
        self._last_sent = 0
        # Counted on the instances, so run_simulated drives the real objects unchanged.
        tick, mark_sent = self.controller.tick, self.store.mark_sent
        mark_sent_many = getattr(self.store, "mark_sent_many", None)  # a batch in one commit, where the store has it

        def counted_tick(now: datetime):
            self.counters.ticks += 1
            return tick(now)

        def count(sent: int, now: datetime) -> None:
            before, self.counters.sent = self.counters.sent, self.counters.sent + sent
            if self.cap is not None and self.counters.sent >= self.cap:
                self.controller.deps.stop.set()  # what was sent is settled; run_simulated returns
            if self._label is not None and before // 100 != self.counters.sent // 100:
                self._progress(now)

        def counted_mark_sent(row, now, **options):
            mark_sent(row, now, **options)
            count(1, now)

        def counted_mark_sent_many(rows, now):
            mark_sent_many(rows, now)
            count(len(rows), now)

        self.controller.tick = counted_tick
        self.store.mark_sent = counted_mark_sent
        if mark_sent_many is not None:
            self.store.mark_sent_many = counted_mark_sent_many

    def _progress(self, now: datetime) -> None:
        moment = perf_counter()
        if moment - self._last < self.every:
            return
        rate = (self.counters.sent - self._last_sent) / (moment - self._last)
        print(
            f"    [{self._label}] {moment - self._began:5.0f} s  simulated {now:%Y-%m-%d %H:%M} UTC"
            f"  sent {self.counters.sent:>7}  ticks {self.counters.ticks:>5}  ({rate:.0f} msg/s lately)",
            flush=True,
        )
        self._last, self._last_sent = moment, self.counters.sent

    def tick(self) -> datetime | None:
        return self.controller.tick(self.clock.now())

    def run(self, until: datetime | None, label: str, every: float = 30.0, most: int | None = None) -> float:
        """run_simulated, with a progress line every `every` seconds, stopping after
        `most` messages if given. Returns seconds."""
        self._label, self.every = label, every
        self.cap = None if most is None else self.counters.sent + most
        self._began = self._last = perf_counter()
        self._last_sent = self.counters.sent
        try:
            run_simulated(self.controller, self.clock, until)
        finally:
            self._label, self.cap = None, None
            self.controller.deps.stop.clear()
        return perf_counter() - self._began

    def close(self) -> None:
        self.log.close()
        self._release()


def timed(action: Callable[[], object]) -> float:
    began = perf_counter()
    action()
    return perf_counter() - began


# The parts of a tick that step_times measures, as (depth, label, owner, attribute): owner
# "store" is the store, anything else the module under service/ that defines the function.
STEPS = (
    (0, "reconcile", "usecases.booking", "reconcile"),
    (1, "store.remember_pairs (pair details)", "store", "remember_pairs"),
    (1, "plan_sessions (the planner)", "domain.planning", "plan_sessions"),
    (1, "store.book (write the sessions)", "store", "book"),
    (1, "sync_messages", "usecases.booking", "sync_messages"),
    (2, "wanted_for_pair (email timelines)", "domain.outbox", "wanted_for_pair"),
    (2, "changes (wanted vs stored)", "domain.outbox", "changes"),
    (2, "store.apply (insert the messages)", "store", "apply"),
    (0, "send_due", "usecases.sending", "send_due"),
    (0, "plan_digest", "usecases.digest", "plan_digest"),
)


def _holders(function: object, name: str) -> list[object]:
    """Every loaded service module whose `name` is this function. The use cases import
    each other's functions by name (tick.py calls booking.reconcile as `reconcile`), so
    wrapping the defining module alone would miss those calls."""
    return [
        module
        for key, module in list(sys.modules.items())
        if (key == "service" or key.startswith("service.")) and getattr(module, name, None) is function
    ]


@contextlib.contextmanager
def step_times(daemon: Daemon) -> Iterator[dict[str, float]]:
    """Seconds spent in the parts of a tick, by wrapping them while it runs."""
    spent: dict[str, float] = {}
    patches: list[tuple[object, str, object]] = []
    for _, label, where, name in STEPS:
        if where == "store":
            original = getattr(daemon.store, name)
            owners: list[object] = [daemon.store]
        else:
            original = getattr(importlib.import_module(f"service.{where}"), name)
            owners = _holders(original, name)

        def wrapper(*args, _original=original, _label=label, **kwargs):
            began, cpu = perf_counter(), process_time()
            try:
                return _original(*args, **kwargs)
            finally:
                spent[_label] = spent.get(_label, 0.0) + perf_counter() - began
                spent["cpu " + _label] = spent.get("cpu " + _label, 0.0) + process_time() - cpu

        for owner in owners:
            patches.append((owner, name, original))
            setattr(owner, name, wrapper)
    try:
        yield spent
    finally:
        for owner, name, original in reversed(patches):
            if owner is daemon.store:
                delattr(owner, name)  # back to the class's method
            else:
                setattr(owner, name, original)


def print_steps(spent: dict[str, float], total: float) -> None:
    """The measured parts as a tree, each level with what its parts leave unexplained."""
    rows = [(depth, label, spent.get(label, 0.0)) for depth, label, _, _ in STEPS]

    def line(depth: int, label: str, seconds: float) -> None:
        print(f"    {'  ' * depth}{label:<{44 - 2 * depth}} {seconds:7.2f} s  {seconds / total:6.1%}")

    def level(start: int, depth: int, parent: float) -> int:
        children = 0.0
        index = start
        while index < len(rows) and rows[index][0] == depth:
            _, label, seconds = rows[index]
            line(depth, label, seconds)
            children += seconds
            index = level(index + 1, depth + 1, seconds) if index + 1 < len(rows) and rows[index + 1][0] > depth else index + 1
        line(depth, "(other)", parent - children)
        return index

    level(0, 0, total)


def state_counts(daemon: Daemon) -> dict[str, int]:
    """Messages in the state by state, counted in SQL (loading 180k rows would itself cost
    memory), and those not written yet because they are not due within the horizon."""
    store = daemon.store
    with store.engine.begin() as connection:
        rows = connection.execute(select(messages.c.state, func.count()).group_by(messages.c.state)).all()
    counts = {state: count for state, count in sorted(rows)}
    ahead = sum(n for days in store.foreseen().values() for n in days.values())
    return counts | ({"foreseen": ahead} if ahead else {})


def booked_pairs(store) -> int:
    with store.engine.begin() as connection:
        query = select(func.count(func.distinct(sessions.c.pair_id))).where(sessions.c.status == "booked")
        return connection.execute(query).scalar() or 0


def describe_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{state} {count}" for state, count in counts.items()) or "none"


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


def replan_nothing_to_book(daemon: Daemon, repeat: int) -> list[float]:
    """Seconds of each of `repeat` re-plans (reconcile) with every pair booked, as a tick
    makes one after an edit, an answer or a request."""
    controller, now = daemon.controller, daemon.clock.now()
    times = []
    for _ in range(repeat):
        began = perf_counter()
        reconcile(controller.deps, controller.inputs, now)
        times.append(perf_counter() - began)
    return times


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


# --------------------------------------------------------------------------- SMTP


def _serve_smtp(ports, received, connections, stop, certificate) -> None:
    """The SMTP server process: aiosmtpd on the loopback, counting and dropping mail,
    offering STARTTLS when given a (certificate, key) pair of paths."""
    from aiosmtpd.controller import Controller as SmtpController

    class Counting:
        async def handle_EHLO(self, server, session, envelope, hostname, responses):
            session.host_name = hostname  # the 5-argument hook must set it itself
            if not session.ssl:  # STARTTLS says EHLO twice on one connection
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

    options = {}
    if certificate:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*certificate)
        options["tls_context"] = context
    controller = Loopback(Counting(), hostname=HOST, port=0, ready_timeout=10, **options)
    controller.start()
    ports.put(controller.port)
    stop.wait()
    controller.stop()


class SmtpServer:
    """aiosmtpd in its own process, so the server does not share the client's
    interpreter lock. `received` counts messages, `connections` counts connections."""

    def __init__(self, certificate: tuple[Path, Path] | None = None):
        self.certificate = tuple(map(str, certificate)) if certificate else None

    def __enter__(self) -> SmtpServer:
        context = multiprocessing.get_context("spawn")
        self.received = context.Value("q", 0)
        self.connections = context.Value("q", 0)
        self._stop = context.Event()
        ports = context.Queue()
        self._process = context.Process(
            target=_serve_smtp, args=(ports, self.received, self.connections, self._stop, self.certificate), daemon=True
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


def make_certificate(folder: Path) -> tuple[Path, Path] | None:
    """A self-signed certificate for 127.0.0.1 (the openssl tool, as the SMTP tests make
    theirs), or None without the tool."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    try:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return cert, key


@contextlib.contextmanager
def trusting(certificate: Path, folder: Path) -> Iterator[None]:
    """Make ssl.create_default_context() trust the test certificate as well as the
    system's authorities, the way SmtpMailer builds its context: SSL_CERT_FILE pointing at
    the system bundle with the certificate appended. So each STARTTLS connection costs
    what it costs in production, loading the whole bundle included."""
    bundle = folder / "bundle.pem"
    system = ssl.get_default_verify_paths().cafile
    bundle.write_bytes((Path(system).read_bytes() if system and Path(system).exists() else b"") + certificate.read_bytes())
    before = os.environ.get("SSL_CERT_FILE")
    os.environ["SSL_CERT_FILE"] = str(bundle)
    try:
        yield
    finally:
        if before is None:
            del os.environ["SSL_CERT_FILE"]
        else:
            os.environ["SSL_CERT_FILE"] = before


def smtp_messages(first: int, count: int, seed: int) -> list[EmailMessage]:
    """Messages number first..first+count-1, program-like: text and HTML, a few hundred
    words, non-ASCII names. Each depends only on its number and the seed."""
    sender = Contact(name="Spring Mentoring", email="coordinator@example.org")
    paragraph = (
        "Your first session is on Monday 1 March at 10:00 (your time). Bring one question you"
        " would like to work on, and a small example from your own work. "
    )
    built = []
    for number in range(first, first + count):
        rng = random.Random(f"{seed}-smtp-{number}")
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


def smtp_section(port: int, security: str) -> str:
    """The cohort file's mail section for the SMTP server on the loopback."""
    return f"mail:\n  transport: smtp\n  smtp:\n    host: {HOST}\n    port: {port}\n    security: {security}\n"


def smtp_mailer(port: int, security: str = "none") -> SmtpMailer:
    return SmtpMailer(SmtpSettings(host=HOST, port=port, security=security, timeout=30.0))


class Variant:
    """One way of sending: one connect() per message, or a single connect() block that
    stays open from the first message to the last (QUIT included in its time)."""

    def __init__(self, name: str, mailer: SmtpMailer, reuse: bool):
        self.name, self.mailer, self.reuse = name, mailer, reuse
        self.seconds = 0.0
        self.received = self.connections = 0
        self._block: contextlib.ExitStack | None = None
        self._connection = None

    def send(self, batch: list[EmailMessage]) -> None:
        began = perf_counter()
        if not self.reuse:
            for message in batch:
                with self.mailer.connect() as connection:
                    connection.send(message)
        else:
            if self._block is None:
                self._block = contextlib.ExitStack()
                self._connection = self._block.enter_context(self.mailer.connect())
            for message in batch:
                self._connection.send(message)
        self.seconds += perf_counter() - began

    def finish(self) -> None:
        if self._block is not None:
            began = perf_counter()
            self._block.close()
            self.seconds += perf_counter() - began
            self._block = self._connection = None


def compare_connections(server: SmtpServer, total: int, seed: int, tls: bool, chunk: int = 100) -> tuple[list[Variant], float]:
    """Every variant sends all `total` messages, a chunk at a time, taking turns in a
    rotating order so that a slow spell of the machine hits them alike. Chunks are built
    (untimed) just before use: an EmailMessage holds ~130 KiB of header objects, so
    thousands built up front would dominate the process's memory. Returns the variants and
    the mean serialized size in KiB."""
    plain = smtp_mailer(server.port, "none")
    variants = [Variant("no TLS, one connect() for all", plain, True), Variant("no TLS, one connect() per message", plain, False)]
    if tls:
        secure = smtp_mailer(server.port, "starttls")
        variants += [
            Variant("STARTTLS, one connect() for all", secure, True),
            Variant("STARTTLS, one connect() per message", secure, False),
        ]
    for variant in variants:  # warm-up, not counted
        Variant("warm-up", variant.mailer, variant.reuse).send(smtp_messages(total, 5, seed))
    size = 0.0
    for turn, first in enumerate(range(0, total, chunk)):
        batch = smtp_messages(first, min(chunk, total - first), seed)
        size += sum(len(m.as_bytes()) for m in batch)
        shift = turn % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            received, connections = server.counts()
            variant.send(batch)
            after = server.counts()
            variant.received += after[0] - received
            variant.connections += after[1] - connections
        del batch
    for variant in variants:
        variant.finish()
    return variants, size / total / 1024


# --------------------------------------------------------------------------- memory


def peak_rss_of_this_image_mb() -> float:
    """VmHWM: the peak RSS since this process image started. (A spawned child's
    getrusage max RSS starts from its parent's, as it is forked before exec.)"""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _traced_first_tick(config: str, state: str, results) -> None:
    """In a fresh process: the first tick on a fresh state under tracemalloc."""
    gc.collect()
    baseline = peak_rss_of_this_image_mb()
    tracemalloc.start()
    began = perf_counter()
    daemon = Daemon(Path(config), Path(state), SimulatedClock(CLOCK_START), Path(state).parent / "outbox")
    daemon.tick()
    seconds = perf_counter() - began
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    daemon.close()
    results.put((seconds, peak, baseline, peak_rss_of_this_image_mb()))


def traced_first_tick(config: Path, state: Path) -> tuple[float, int, float, float]:
    """(seconds under tracemalloc, traced peak in bytes, the child's peak RSS before the
    tick and after it, tracemalloc's own bookkeeping included)."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    process = context.Process(target=_traced_first_tick, args=(str(config), str(state), results))
    process.start()
    outcome = results.get()
    process.join()
    return outcome


# --------------------------------------------------------------------------- report


@dataclass
class Summary:
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)

    def add(self, figure: str, value: str, target: str = "", met: bool | None = None) -> None:
        verdict = "" if met is None else ("met" if met else "MISSED")
        self.rows.append((figure, value, target, verdict))

    def print(self) -> None:
        widths = [max(len(row[i]) for row in self.rows + [HEADER]) for i in range(4)]
        for row in [HEADER, tuple("-" * w for w in widths), *self.rows]:
            print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


HEADER = ("figure", "value", "target", "")


def heading(text: str) -> None:
    print(f"\n== {text} ==", flush=True)


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("nan")


def folder_size_mb(folder: Path) -> tuple[int, float]:
    count = size = 0
    if folder.exists():
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_file():
                    count += entry.name.endswith(".eml")
                    size += entry.stat().st_size
    return count, size / 2**20


def moment(text: str) -> datetime | None:
    if text.lower() in ("none", "end", "all"):
        return None
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@contextlib.contextmanager
def new_state(args: argparse.Namespace, folder: Path, name: str) -> Iterator[Path | str]:
    """A fresh state: a SQLite file in `folder`, or a new database on the PostgreSQL
    server of --postgres, dropped afterwards."""
    if args.store == "sqlite":
        yield folder / f"{name}.sqlite"
        return
    import psycopg

    database = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(args.postgres, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    try:
        yield args.postgres.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1) + f"/{database}"
    finally:
        with psycopg.connect(args.postgres, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{database}" WITH (FORCE)')


# --------------------------------------------------------------------------- phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10_000, help="pairs in the main cohort")
    parser.add_argument("--seed", type=int, default=2027)
    parser.add_argument("--smtp-messages", type=int, default=2000, help="messages for the connection comparison (4b)")
    parser.add_argument("--smtp-pairs", type=int, default=500, help="pairs in the cohort run over SMTP (4a)")
    parser.add_argument("--idle-ticks", type=int, default=50, help="idle ticks timed in each idle measurement")
    parser.add_argument(
        "--until",
        type=moment,
        default=moment("2027-02-22T12:00+00:00"),
        help="stop the file-transport run before this simulated moment (UTC unless an offset is given);"
        " 'none' runs the whole program and the follow-up (some 20-30 min for 10,000 pairs)",
    )
    parser.add_argument(
        "--smtp-security",
        choices=("none", "starttls"),
        default="none",
        help="mail.smtp.security of the cohort run over SMTP (4a); 4b measures both when openssl is there",
    )
    parser.add_argument("--no-tracemalloc", action="store_true", help="skip the traced first tick (about 5x the first tick)")
    parser.add_argument("--max-messages", type=int, default=0, help="stop the file-transport run after this many messages (0: no cap)")
    parser.add_argument("--no-smtp", action="store_true", help="skip the SMTP phase (4)")
    parser.add_argument(
        "--store", choices=("sqlite", "postgresql"), default="sqlite", help="the state of the main cohort (phases 1-3 and 5)"
    )
    parser.add_argument("--postgres", default=POSTGRES, help="with --store postgresql: the server (a new database is made on it)")
    args = parser.parse_args()

    began = perf_counter()
    temporary = Path(tempfile.mkdtemp(prefix="bench-daemon-"))
    summary = Summary()
    rss: list[tuple[str, float]] = []
    try:
        with new_state(args, temporary, "state") as state:
            run_phases(args, temporary, state, summary, rss)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    heading("Summary")
    summary.print()
    print(f"\nwhole benchmark: {perf_counter() - began:.0f} s; {_load()}; temporary files removed ({temporary})")


def run_phases(args: argparse.Namespace, temporary: Path, state: Path | str, summary: Summary, rss: list[tuple[str, float]]) -> None:
    print(
        f"service at {_revision()}; Python {'.'.join(map(str, sys.version_info[:3]))}, {os.cpu_count()} CPUs; temporary folder {temporary}"
        f" ({_filesystem(temporary)}); state {'SQLite in WAL mode with synchronous=FULL, as the daemon opens it' if args.store == 'sqlite' else 'in PostgreSQL at ' + args.postgres.rsplit('@', 1)[-1]};"
        f" fsync of 4 KiB there: {fsync_ms(temporary):.2f} ms (median); {_load()}",
        flush=True,
    )
    rss.append(("after imports", max_rss_mb()))

    # 1. Set-up and the first tick ---------------------------------------------------------
    heading(f"1. Set-up and first tick: {args.pairs} pairs, simulated clock at {CLOCK_START:%Y-%m-%d %H:%M} UTC")
    generated_in = perf_counter()
    cohort = write_cohort(temporary / "cohort", args.pairs, args.seed, name=f"Benchmark {args.pairs} pairs")
    generated_in = perf_counter() - generated_in
    print(
        f"generated {cohort.pairs} pairs, {len(cohort.people)} people in {cohort.zones} time zones in {generated_in:.1f} s;"
        f" pairings.csv {cohort.pairings.stat().st_size / 2**20:.1f} MB; program {PROGRAM_START}..{PROGRAM_END}"
        f" ({PROGRAM_ZONE}), default rules and hours (09:00-17:00 Mon-Fri in each person's zone)",
        flush=True,
    )
    clock = SimulatedClock(CLOCK_START)
    outbox = temporary / "outbox"
    daemon = Daemon(cohort.config, state, clock, outbox)
    gc.collect()
    with step_times(daemon) as spent:
        tick_cpu = process_time()
        tick_seconds = timed(daemon.tick)
        tick_cpu = process_time() - tick_cpu
    first_tick = daemon.load_seconds + tick_seconds
    counts = state_counts(daemon)
    booked = booked_pairs(daemon.store)
    planned = sum(counts.values())
    print(f"load and validate (ConfigWatcher.start, as `mentorship run` does first):   {daemon.load_seconds:7.2f} s")
    print(f"controller.tick (reconcile: plan, book, plan the emails; send what is due): {tick_seconds:7.2f} s")
    print(f"first tick in all:                                                         {first_tick:7.2f} s")
    print(
        f"CPU of this process in the first tick: {daemon.load_cpu + tick_cpu:.2f} s (load {daemon.load_cpu:.2f} s, tick {tick_cpu:.2f} s)"
        + ("; PostgreSQL's own is in its server processes" if args.store == "postgresql" else "")
    )
    print_steps(spent, tick_seconds)
    print(
        f"booked {booked} of {cohort.pairs} pairs ({len(daemon.controller.unplanned)} could not be planned);"
        f" {planned} messages planned: {describe_counts(counts)}"
        f" (the digest about the unplanned pairs is due at once)"
    )
    rss.append(("after first tick", max_rss_mb()))
    print(f"max RSS so far {rss[-1][1]:.0f} MB", flush=True)
    summary.add("first tick (load + tick)", f"{first_tick:.1f} s", "")
    summary.add("  CPU of this process in it", f"{daemon.load_cpu + tick_cpu:.1f} s", "")
    for prefix, what in (("", "wall"), ("cpu ", "CPU of this process")):
        writes = spent.get(prefix + "store.remember_pairs (pair details)", 0.0) + spent.get(prefix + "store.book (write the sessions)", 0.0)
        summary.add(f"  of which store.book + remember_pairs ({what})", f"{writes:.2f} s", "")
        summary.add(
            f"  of which message inserts, store.apply ({what})", f"{spent.get(prefix + 'store.apply (insert the messages)', 0.0):.2f} s", ""
        )
    summary.add("  messages planned by it", f"{planned}", "~180k for 10k pairs")

    # 2. Idle ticks ------------------------------------------------------------------------
    heading(f"2. Idle tick: controller.tick(now) x {args.idle_ticks}, nothing due, at {clock.now():%Y-%m-%d %H:%M} UTC")
    idle = idle_ticks(daemon, args.idle_ticks)
    idle_median, idle_p95 = statistics.median(idle), percentile(idle, 0.95)
    print(f"median {idle_median:.2f} ms, p95 {idle_p95:.2f} ms, min {min(idle):.2f} ms, max {max(idle):.2f} ms")
    rss.append(("after idle ticks", max_rss_mb()))
    summary.add(
        "idle tick after first tick, median", f"{idle_median:.2f} ms", f"< {IDLE_TICK_TARGET_MS:.0f} ms", idle_median < IDLE_TICK_TARGET_MS
    )
    summary.add("idle tick after first tick, p95", f"{idle_p95:.2f} ms", f"< {IDLE_TICK_TARGET_MS:.0f} ms", idle_p95 < IDLE_TICK_TARGET_MS)
    replans = replan_nothing_to_book(daemon, 3)
    print(f"re-plan with nothing to book (reconcile, as after an edit or an answer) x 3: median {statistics.median(replans):.2f} s")
    summary.add("re-plan with nothing to book, median", f"{statistics.median(replans):.2f} s", "")

    # 3. The program with the file transport -----------------------------------------------
    whole = args.until is None
    scope = "the whole program and the follow-up" if whole else f"a PREFIX: everything due before {args.until:%Y-%m-%d %H:%M} UTC"
    if args.max_messages:
        scope += f", at most {args.max_messages} messages"
    heading(f"3. File transport (FileMailer, fsync'd .eml files): run_simulated over {scope}")
    if not whole:
        print(
            "    (not the whole program: all ~170k messages at the rate below would take far longer than this"
            " benchmark's time budget; pass --until none for the full run. The prefix is most of the burst of"
            " welcome and invitation emails a week before the program; the invitations carry .ics requests)",
            flush=True,
        )
    sent_before, ticks_before = daemon.counters.sent, daemon.counters.ticks
    gc.collect()
    cpu = process_time()
    file_seconds = daemon.run(args.until, "file", most=args.max_messages or None)
    cpu = process_time() - cpu
    file_sent = daemon.counters.sent - sent_before
    file_ticks = daemon.counters.ticks - ticks_before
    file_rate = rate(file_sent, file_seconds)
    counts = state_counts(daemon)
    files, outbox_mb = folder_size_mb(outbox)
    state_mb = sum(p.stat().st_size for p in temporary.glob("state.sqlite*")) / 2**20  # 0 on PostgreSQL
    print(
        f"{'whole program' if whole else 'prefix'}: {file_seconds:.1f} s, {file_sent} messages sent, {file_rate:.1f} messages/s,"
        f" {file_ticks} ticks; simulated clock stopped at {clock.now():%Y-%m-%d %H:%M} UTC"
    )
    print(f"state now: {describe_counts(counts)}")
    print(
        f"outbox: {files} .eml files, {outbox_mb:.0f} MB; state files {state_mb:.0f} MB;"
        f" {'every sent message has its file' if files == counts.get('sent', 0) else 'MISMATCH between sent rows and .eml files'}"
    )
    print(
        f"CPU of this process: {cpu:.1f} s, {cpu / max(1, file_sent) * 1000:.2f} ms per message"
        + (" (PostgreSQL's own CPU is in its server processes, not counted here)" if args.store == "postgresql" else "")
    )
    print(f"fsync of 4 KiB now: {fsync_ms(temporary):.2f} ms (median); {_load()}")
    left = counts.get("planned", 0)
    if left:
        print(f"at this rate the {left} messages still planned would take about {left / file_rate / 60:.0f} min more")
    rss.append(("after file-transport run", max_rss_mb()))
    print(f"max RSS so far {rss[-1][1]:.0f} MB", flush=True)
    summary.add(
        "file transport " + ("(whole program)" if whole else f"(prefix to {args.until:%m-%d %H:%M} UTC)"),
        f"{file_rate:.0f} msg/s",
        f"{file_sent} msgs in {file_seconds:.0f} s, {file_ticks} ticks",
    )
    summary.add("  CPU per message (this process)", f"{cpu / max(1, file_sent) * 1000:.2f} ms", "")
    if left:
        summary.add(
            "  whole program at that rate (estimate)",
            f"~{(planned - counts.get('sent', 0) + file_sent) / file_rate / 60:.0f} min",
            f"{planned} messages",
        )

    if args.max_messages and counts.get("planned", 0) and daemon.store.next_due() <= clock.now():
        print("\n(2b, the idle tick with the state full, left out: --max-messages stopped the run with messages still due)")
    else:
        heading(f"2b. Idle tick again, state full ({describe_counts(counts)}), at {clock.now():%Y-%m-%d %H:%M} UTC")
        idle = idle_ticks(daemon, args.idle_ticks)
        late_median, late_p95 = statistics.median(idle), percentile(idle, 0.95)
        print(f"median {late_median:.2f} ms, p95 {late_p95:.2f} ms, min {min(idle):.2f} ms, max {max(idle):.2f} ms", flush=True)
        summary.add(
            "idle tick after the file run, median",
            f"{late_median:.2f} ms",
            f"< {IDLE_TICK_TARGET_MS:.0f} ms",
            late_median < IDLE_TICK_TARGET_MS,
        )
        summary.add(
            "idle tick after the file run, p95", f"{late_p95:.2f} ms", f"< {IDLE_TICK_TARGET_MS:.0f} ms", late_p95 < IDLE_TICK_TARGET_MS
        )
    daemon.close()
    del daemon
    shutil.rmtree(outbox, ignore_errors=True)  # the disk space is not needed any more
    gc.collect()

    # 4. SMTP ------------------------------------------------------------------------------
    if not args.no_smtp:
        run_smtp(args, temporary, summary, rss)

    # 5. Memory ----------------------------------------------------------------------------
    memory(args, temporary, cohort.config, summary, rss)


def run_smtp(args: argparse.Namespace, temporary: Path, summary: Summary, rss: list[tuple[str, float]]) -> None:
    certificate = make_certificate(temporary)
    tls = certificate is not None
    if args.smtp_security == "starttls" and certificate is None:
        raise SystemExit("--smtp-security starttls needs the openssl tool to make a certificate")
    with SmtpServer(certificate) as server, trusting(certificate[0], temporary) if certificate else contextlib.nullcontext():
        heading(
            f"4a. SMTP, the daemon's way: {args.smtp_pairs} pairs, whole program, aiosmtpd on {HOST}:{server.port}"
            f" (another process), security {args.smtp_security}, one connection per batch of up to {Deps.batch} messages"
        )
        print(
            f"    (a smaller cohort than phase 3: {args.pairs} pairs over SMTP would take as long as the file run;"
            " the rate per message is what is compared)",
            flush=True,
        )
        small = write_cohort(
            temporary / "smtp-cohort",
            args.smtp_pairs,
            args.seed,
            name=f"Benchmark {args.smtp_pairs} pairs",
            sections=smtp_section(server.port, args.smtp_security),
        )
        smtp_daemon = Daemon(small.config, temporary / "smtp-state.sqlite", SimulatedClock(CLOCK_START))
        if not isinstance(smtp_daemon.mailer, SmtpMailer):
            raise RuntimeError("the SMTP cohort did not get an SMTP mailer")
        first = smtp_daemon.load_seconds + timed(smtp_daemon.tick)
        sent_before, ticks_before = smtp_daemon.counters.sent, smtp_daemon.counters.ticks
        received_before, connections_before = server.counts()
        smtp_seconds = smtp_daemon.run(None, "smtp", every=15.0)
        smtp_sent = smtp_daemon.counters.sent - sent_before
        smtp_ticks = smtp_daemon.counters.ticks - ticks_before
        received, connections = server.counts()
        counts = state_counts(smtp_daemon)
        smtp_rate = rate(smtp_sent, smtp_seconds)
        print(
            f"first tick {first:.1f} s (not in the rate); then {smtp_seconds:.1f} s, {smtp_sent} messages sent,"
            f" {smtp_rate:.1f} messages/s, {smtp_ticks} ticks, {connections - connections_before} SMTP connections"
            f" ({smtp_sent / max(1, connections - connections_before):.1f} messages per connection)"
        )
        print(
            f"server received {received} messages in all (sent by the daemon: {smtp_daemon.counters.sent});"
            f" state: {describe_counts(counts)}" + ("" if received == smtp_daemon.counters.sent == counts.get("sent", 0) else "  MISMATCH")
        )
        smtp_daemon.close()
        rss.append(("after SMTP program", max_rss_mb()))
        summary.add(
            f"SMTP, daemon ({args.smtp_pairs} pairs, {args.smtp_security})",
            f"{smtp_rate:.0f} msg/s",
            f"{smtp_sent} msgs, {connections - connections_before} connections",
        )

        heading(f"4b. SmtpMailer alone: {args.smtp_messages} messages (build_message), one connection each vs one for all")
        print(
            "    (each variant sends every message; they take turns 100 messages at a time."
            + (
                " STARTTLS: SmtpMailer as make_mailer builds it, so each connection makes its own TLS context"
                " from the system's authorities plus the test certificate)"
                if tls
                else " No openssl tool: STARTTLS left out)"
            ),
            flush=True,
        )
        variants, size = compare_connections(server, args.smtp_messages, args.seed, tls)
        print(f"messages of {size:.1f} KiB on average (text + HTML, quoted-printable)")
        for variant in variants:
            print(
                f"{variant.name + ':':<37} {variant.seconds:7.2f} s, {rate(args.smtp_messages, variant.seconds):7.1f} messages/s"
                f"  ({variant.received} received over {variant.connections} connection{'s' if variant.connections != 1 else ''})"
            )
        for security, (reused, single) in zip(("no TLS", "STARTTLS"), zip(variants[::2], variants[1::2])):
            ratio = single.seconds / reused.seconds
            print(f"{security}: one connection for all is {ratio:.1f}x as fast as one per message", flush=True)
            summary.add(
                f"SMTP {security}, one connection for all",
                f"{rate(args.smtp_messages, reused.seconds):.0f} msg/s",
                f"{args.smtp_messages} msgs",
            )
            summary.add(
                f"SMTP {security}, one connection per message",
                f"{rate(args.smtp_messages, single.seconds):.0f} msg/s",
                f"{args.smtp_messages} msgs",
            )
            summary.add(f"  reused / per-message ({security})", f"{ratio:.1f}x", f">= {SMTP_REUSE_TARGET:.0f}x", ratio >= SMTP_REUSE_TARGET)
        rss.append(("after SMTP comparison", max_rss_mb()))


def memory(args: argparse.Namespace, temporary: Path, config: Path, summary: Summary, rss: list[tuple[str, float]]) -> None:
    heading("5. Memory")
    for label, value in rss:
        print(f"max RSS {label:<26} {value:6.0f} MB")
    peak_rss = max(value for _, value in rss)
    daemon_rss = next(value for label, value in rss if label == "after file-transport run")
    print(
        "(the first three phases are the large daemon alone; after them the same process also runs the SMTP"
        " daemon and the SMTP comparison, on a heap the large daemon has already grown and fragmented)"
    )
    summary.add(
        f"max RSS, {args.pairs}-pair daemon (phases 1-3)", f"{daemon_rss:.0f} MB", f"< {RSS_TARGET_MB:.0f} MB", daemon_rss < RSS_TARGET_MB
    )
    summary.add("max RSS, whole process (then phase 4 too)", f"{peak_rss:.0f} MB", f"< {RSS_TARGET_MB:.0f} MB", peak_rss < RSS_TARGET_MB)
    if args.no_tracemalloc:
        print("tracemalloc: skipped (--no-tracemalloc)")
        return
    print(
        f"tracemalloc: a separate first tick of the same {args.pairs}-pair cohort on a fresh state, in a fresh"
        " process (tracemalloc slows Python down several times, and its own bookkeeping inflates RSS)...",
        flush=True,
    )
    (temporary / "traced").mkdir()
    seconds, peak, baseline, child_rss = traced_first_tick(config, temporary / "traced" / "state.sqlite")
    print(
        f"traced first tick {seconds:.1f} s; tracemalloc peak {peak / 2**20:.1f} MB (Python allocations made by"
        f" the load and the tick); that process's peak RSS (VmHWM, tracemalloc's bookkeeping included):"
        f" {baseline:.0f} MB after imports, {child_rss:.0f} MB after the tick"
    )
    summary.add("tracemalloc peak of the first tick", f"{peak / 2**20:.0f} MB", "(separate, traced run)")


def fsync_ms(folder: Path, count: int = 200) -> float:
    """Median milliseconds to write 4 KiB and fsync it: what the disk adds to every commit
    and every .eml file, so runs on different machines (or moments) can be compared."""
    path = folder / "fsync-probe"
    times = []
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for _ in range(count):
            os.write(descriptor, b"x" * 4096)
            began = perf_counter()
            os.fsync(descriptor)
            times.append((perf_counter() - began) * 1000)
    finally:
        os.close(descriptor)
        path.unlink()
    return statistics.median(times)


def _load() -> str:
    """Other work on the machine skews every figure: the load averages say how much."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "load average unknown"
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def _revision() -> str:
    """The commit measured, and whether service/ differs from it."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "service"], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "an unknown revision"
    if commit.returncode != 0:
        return "an unknown revision"
    return f"commit {commit.stdout.strip()}" + (" with uncommitted changes in service/" if dirty.stdout.strip() else "")


def _filesystem(path: Path) -> str:
    try:
        with open("/proc/mounts", encoding="utf-8") as mounts:
            best = ("", "unknown")
            for line in mounts:
                device, point, kind = line.split()[:3]
                if str(path).startswith(point) and len(point) > len(best[0]):
                    best = (point, kind)
        return f"{best[1]} at {best[0]}"
    except OSError:
        return "file system unknown"


if __name__ == "__main__":
    main()
