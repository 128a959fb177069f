"""How many requests the daemon makes of Google, and how much quota they use, per pair.

A cohort of --pairs pairs is generated (bench/cohorts.py) into a temporary folder as the
coordinator would write it (a cohort file and a pairings CSV; mentors with 1 to 4
mentees, people in eleven time zones, every mentee within 3.5 hours of the mentor so
that every pair can be booked, default working hours), set up for Google Workspace:
calendar backend google, mail through Gmail, free/busy on, read_sent_mail off. The
daemon is assembled as tests/e2e/test_google.py assembles it (ConfigWatcher,
google_adapters with the real googleapiclient and google-auth, SQLite state in a file,
Controller) against the loopback fake of Google (tests/fakes/google), on a simulated
clock from 2027-02-01 00:00 UTC. About half the people get a busy calendar in the fake
(FakeGoogle.set_busy), so free/busy answers with busy time for them and with notFound
for the others.

Everything is read from the fake's request log:

  round trips  HTTP requests that reached the fake: a batch counts once, token requests
               are left out;
  API calls    what each request asked for: every part of a batch counts, batch
               envelopes and token requests do not;
  quota units  Calendar: 1 per API call (events.insert, freebusy.query, events.list, ...;
               batch parts included). Gmail: 100 per users.messages.send, 5 per
               users.messages.list, printed apart.

1. Booking: the first tick, which reads free/busy and inserts every event. The booking
   calls proper (freebusy.query and events.insert, with the batches that carry the
   inserts) are set apart from the rest of the tick (the first full events.list, any
   email already due).
2. The whole program: run_simulated until nothing is left, by method id, and Gmail sends;
   also the busiest simulated day.
3. A naive per-pair client, written here with the real googleapiclient against a fresh
   fake with the same busy calendars: for each pair one freebusy.query for its two people
   and two separate events.insert (the same event bodies, no batch); one
   users.messages.send per email the daemon sent. Side by side with the daemon, with the
   ratio.
4. The targets (at most 0.1 round trips per pair for booking; at most 2.1 Calendar quota
   units per pair for the two inserts plus free/busy), with whether each is met.

    python bench/google_calls.py [--pairs 500] [--seed 2027]
    python bench/google_calls.py --gmail-days --pairs 1500   # the busiest Gmail day, before and after the budget
    python bench/google_calls.py --push --pairs 200          # calendar reads per pair, polled and pushed

--push runs the whole program twice on the same cohort: polled (as a daemon without a
public HTTPS address) and pushed (an events.watch channel; the fake's notices for it are
turned into the request the web page would queue, and the daemon reads at the next tick).
It prints events.list calls per pair, measured on the simulated clock, next to the same
for a real clock, which ticks every poll interval: that figure is arithmetic, CalendarReads
replayed over 5-minute ticks from the first to the last tick, with the measured notices at
the times they came. Nobody declines or moves anything in this cohort: the notices are
those of the daemon's own writes (bookings, Meet links coming back).

--gmail-days runs the whole program twice (without and with the daily budget) and asks
only when the emails went out. So that 1,500 pairs (27,000 emails a run) take minutes,
not hours, it simplifies what does not bear on that:
  - no wire: googleapiclient's requests are handed to the fake's router in this process
    (FakeGoogle.answer: the same checks, auth, request log and Gmail accounting), without
    sockets, an HTTP server thread, requests or urllib3;
  - the state (SQLite) lives on /dev/shm where there is one (no disk flush per commit);
  - the sent emails are not kept for a naive client (there is none in this mode).
The daemon's decisions are unchanged: the same ticks at the same simulated moments, the
same emails, booked around the same busy calendars (at 30 and 120 pairs both ways print the
same figures and tick counts). 1,500 pairs took about 7 minutes on 2 cores.

Counts are deterministic for a given seed; times are wall-clock and only for orientation.
It prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import base64
import functools
import math
import os
import random
import shutil
import sys
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from email import policy
from pathlib import Path
from time import perf_counter
from unittest.mock import patch
from zoneinfo import ZoneInfo

import httplib2
from google.auth import transport as auth_transport
from google.oauth2 import service_account

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project root: bench.cohorts, tests.fakes.google

from bench.cohorts import (
    CLOCK_START,
    COORDINATOR,
    OFFICE_HOURS,
    PROGRAM_END,
    PROGRAM_START,
    PROGRAM_ZONE,
    WEEKDAYS,
    CalendarProfile,
    Generated,
    LogSample,
    busy_calendar,
    mondays,
    write_cohort,
)
from service import bootstrap
from service.adapters.clock import SimulatedClock
from service.adapters.google import api, auth, freebusy
from service.adapters.google.api import ENDPOINT_VARIABLE, Backoff
from service.adapters.google.calendar import BATCH as BATCH_PARTS
from service.adapters.store import open_store
from service.domain.availability import local_moment
from service.domain.budget import Budget
from service.domain.calendar import TAG, cohort_tag, event_id
from service.domain.model import WorkingPattern
from service.domain.outbox import State
from service.domain.polling import CalendarReads
from service.domain.push import notify_address
from service.domain.requests import RequestKind
from service.runner import run_simulated
from service.usecases import Controller, Deps
from tests.fakes.google import FakeGoogle, RequestRecord

ORGANIZER = COORDINATOR.email

# Targets, printed next to the figures (nothing is asserted).
BOOKING_ROUND_TRIPS_TARGET = 0.1  # per pair: free/busy and the inserts, batched
BOOKING_UNITS_TARGET = 2.1  # Calendar quota units per pair: two inserts plus free/busy

# Quota cost of one call, by method id (Calendar: 1 per call, batch parts included).
GMAIL_UNITS = {"gmail.users.messages.send": 100, "gmail.users.messages.list": 5, "gmail.users.messages.get": 5}
BOOKING_METHODS = ("calendar.freebusy.query", "calendar.events.insert")
TOKEN, BATCH = "oauth2.token", "batch"

BUSY_SHARE = 0.5  # people whose calendar the fake knows (free/busy data); the rest: notFound
# The busy ones: a few weekly meetings and some one-off ones in their working hours.
BUSY_PROFILE = CalendarProfile(recurring=(1, 5), one_offs=(0, 3), vacation=0.0, lengths=(30, 30, 45, 60, 60, 90))


# --------------------------------------------------------------------------- the cohort


def write_google_cohort(folder: Path, size: int, seed: int) -> Generated:
    """cohort.yaml (Google calendar, Gmail, free/busy, key.json) and pairings.csv in
    `folder`: every mentee near the mentor, no blackout dates, default hours."""
    sections = (
        "calendar:\n  backend: google\n  calendar_id: primary\n  rebook_deleted: false\n"
        "mail:\n  transport: gmail\n"
        f"google:\n  credentials: key.json\n  organizer: {ORGANIZER}\n  read_sent_mail: false\n  free_busy: true\n"
    )
    return write_cohort(folder, size, seed, name=f"Google calls {size} pairs", sections=sections, near_share=1.0, details=False)


def busy_calendars(people: dict[str, str], seed: int) -> dict[str, list[tuple[datetime, datetime]]]:
    """Busy time for about BUSY_SHARE of the people (BUSY_PROFILE, in 09:00-17:00 local,
    Mon-Fri), from the simulated clock's start to the program's end."""
    rng = random.Random(f"{seed}-busy")
    chosen = sorted(email for email in sorted(people) if rng.random() < BUSY_SHARE)
    weeks = mondays(CLOCK_START.date(), PROGRAM_END)
    return {
        email: busy_calendar(rng, WorkingPattern(timezone=people[email], hours=OFFICE_HOURS, days=WEEKDAYS), weeks, BUSY_PROFILE)
        for email in chosen
    }


# --------------------------------------------------------------------------- counting


@dataclass
class Tally:
    """What a slice of the fake's request log amounts to."""

    round_trips: Counter = field(default_factory=Counter)  # label -> outer requests
    calls: Counter = field(default_factory=Counter)  # method id -> API calls (batch parts included)
    batched_calls: Counter = field(default_factory=Counter)  # method id -> calls that came in a batch
    statuses: Counter = field(default_factory=Counter)  # (method id, status) for calls not 2xx
    tokens: int = 0

    @classmethod
    def of(cls, records: Sequence[RequestRecord]) -> Tally:
        tally = cls()
        parts: list[RequestRecord] = []  # a batch's parts are logged before its envelope
        for record in records:
            if record.method_id == TOKEN:
                tally.tokens += 1
                continue
            if record.in_batch:
                parts.append(record)
                tally.calls[record.method_id] += 1
                tally.batched_calls[record.method_id] += 1
            elif record.method_id == BATCH:
                inside = "+".join(sorted({p.method_id for p in parts})) or "empty"
                tally.round_trips[f"batch[{inside}]"] += 1
                parts = []
            else:
                tally.round_trips[record.method_id] += 1
                tally.calls[record.method_id] += 1
            if record.method_id != BATCH and (record.status is None or not 200 <= record.status < 300):
                tally.statuses[(record.method_id, record.status)] += 1
        return tally

    @property
    def total_round_trips(self) -> int:
        return sum(self.round_trips.values())

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    def round_trips_for(self, methods: Iterable[str]) -> int:
        """Round trips that carried these methods: direct requests and batches of them."""
        wanted = set(methods)
        total = 0
        for label, count in self.round_trips.items():
            inside = set(label[len("batch[") : -1].split("+")) if label.startswith("batch[") else {label}
            if inside & wanted:
                total += count
        return total

    def calendar_units(self, methods: Iterable[str] | None = None) -> int:
        return sum(n for m, n in self.calls.items() if m.startswith("calendar.") and (methods is None or m in methods))

    def gmail_units(self) -> int:
        return sum(GMAIL_UNITS.get(m, 0) * n for m, n in self.calls.items() if m.startswith("gmail."))


def per(count: float, pairs: int) -> str:
    return f"{count / pairs:.4f}"


def verdict(value: float, target: float) -> str:
    return "MET" if value <= target + 1e-12 else "NOT MET"


# --------------------------------------------------------------------------- the daemon


@dataclass
class DaemonRun:
    first_tick: Tally
    program: Tally
    ticks: int
    sent_per_day: Counter
    calls_per_day: Counter
    first_tick_seconds: float
    program_seconds: float
    sessions: list  # SessionRecord, for the naive client
    pairs: dict  # pair id -> Pair
    sent_raw: list[bytes]
    states: Counter
    events_live: int
    meet_links: int
    log_sample: list[str]
    free_busy_asked: list[tuple[int, datetime, datetime]]  # (people, start, end) per busy() call
    last_tick: datetime  # simulated
    poll: timedelta  # the configured poll interval of a real run
    notified: list[datetime] = field(default_factory=list)  # with push: ticks that had a notice to act on

    @property
    def booked_pairs(self) -> int:
        return len({r.session.pair_id for r in self.sessions})


def run_daemon(
    google: FakeGoogle,
    generated: Generated,
    budget: Budget | None = None,
    *,
    keep_sent: bool = True,
    state: Path | None = None,
    push: bool = False,
) -> DaemonRun:
    folder = generated.config.parent
    clock = SimulatedClock(CLOCK_START)
    google.clock = google.gmail.clock = clock.now  # Gmail's sends stamped with simulated time
    if push:
        google.calendar.clock = clock.now  # channels expire in simulated time
    watcher = bootstrap.ConfigWatcher.start(generated.config, None, clock)
    calendar, free_busy, mailer = bootstrap.google_adapters(watcher.configuration)
    quick = Backoff(attempts=6, sleep=lambda seconds: None, rng=random.Random(0))  # no real waiting
    calendar.backoff = free_busy.backoff = mailer.backoff = quick
    store = open_store(state or folder / "state.sqlite")
    log = LogSample(200)  # a sample, for looking at while changing this script
    public = "https://mentors.example.org"
    deps = Deps(store=store, mailer=mailer, source=watcher, calendar=calendar, free_busy=free_busy, budget=budget)
    if push:
        deps.watch, deps.notify_address = calendar, notify_address(public)
    controller = Controller(deps)
    notices: list[dict[str, str]] = []
    notified: list[datetime] = []

    def receive(headers: dict[str, str]) -> int:  # what POST /calendar/notify is told (its checks are tested apart)
        notices.append(headers)
        return 200

    google.route_notices(public, receive)
    asked: list[tuple[int, datetime, datetime]] = []
    busy = free_busy.busy

    def recorded_busy(emails, start, end):  # what the daemon asks free/busy for, unchanged
        asked.append((len(emails), start, end))
        return busy(emails, start, end)

    free_busy.busy = recorded_busy
    sent_per_day: Counter = Counter()
    calls_per_day: Counter = Counter()
    ticks = 0
    last_tick = CLOCK_START
    tick = controller.tick

    def counted_tick(now: datetime):
        nonlocal ticks, last_tick
        ticks += 1
        last_tick = now
        if push:  # the notices of the last tick's changes, queued as the web page queues them
            google.deliver_notices()
            if any(n["X-Goog-Resource-State"] != "sync" for n in notices) and not store.pending_requests():
                store.add_request(RequestKind.CALENDAR_CHANGED, {}, now)
                notified.append(now)
            notices.clear()
        before = len(google.requests)
        try:
            return tick(now)
        finally:
            tally = Tally.of(google.requests[before:])
            day = now.date()
            sent_per_day[day] += tally.calls["gmail.users.messages.send"]
            calls_per_day[day] += tally.total_calls

    controller.tick = counted_tick
    google.clear_requests()
    began = perf_counter()
    counted_tick(clock.now())
    first_seconds = perf_counter() - began
    first = Tally.of(google.requests)
    began = perf_counter()
    # The first tick is part of the program; run_simulated starts with a tick at the same
    # moment, which finds nothing left to book.
    run_simulated(controller, clock, None)
    log.close()
    program_seconds = perf_counter() - began + first_seconds
    program = Tally.of(google.requests)

    cohort = watcher.configuration.cohort
    events = [e for e in google.events(ORGANIZER) if e.get("status") != "cancelled"]
    run = DaemonRun(
        first_tick=first,
        program=program,
        ticks=ticks,
        sent_per_day=sent_per_day,
        calls_per_day=calls_per_day,
        first_tick_seconds=first_seconds,
        program_seconds=program_seconds,
        sessions=[r for r in store.sessions() if not r.cancelled],
        pairs={p.id: p for p in cohort.pairs},
        sent_raw=[m.as_bytes(policy=policy.SMTP) for m in google.sent_mail()] if keep_sent else [],
        states=Counter(r.state.value if isinstance(r.state, State) else str(r.state) for r in store.messages()),
        events_live=len(events),
        meet_links=sum(1 for e in events if e.get("hangoutLink")),
        log_sample=log.lines,
        free_busy_asked=asked,
        last_tick=last_tick,
        poll=watcher.configuration.poll,
        notified=notified,
    )
    store.close()
    return run


def replayed_reads(daemon: DaemonRun, *, pushed: bool, every: timedelta = timedelta(minutes=5)) -> int:
    """Arithmetic, not a measurement: the calendar reads of a real run, which ticks every
    `every`, from CalendarReads replayed over the simulated run's span. Each read is taken
    to find nothing (the only changes are the daemon's own, at the first tick); with push,
    a notice comes at the moments the measured run had one."""
    starts = sorted(r.session.start for r in daemon.sessions)
    reads = CalendarReads(every, pushed=pushed)
    notices = sorted(daemon.notified)
    now, count, at, upcoming = CLOCK_START, 0, 0, 0
    while now <= daemon.last_tick:
        notified = False
        while at < len(notices) and notices[at] <= now:
            notified, at = True, at + 1
        while upcoming < len(starts) and starts[upcoming] <= now:
            upcoming += 1
        if reads.due(now, notified=notified, next_session=starts[upcoming] if upcoming < len(starts) else None):
            reads.read(now, changed=False)
            count += 1
        now += every
    return count


def compare_reads(pairs: int, seed: int) -> None:
    """Calendar reads (events.list) per pair over the whole program, polled and pushed."""
    root = Path(tempfile.mkdtemp(prefix="google-reads-"))
    try:
        generated = write_google_cohort(root / "cohort", pairs, seed)
        busy = busy_calendars(generated.people, seed)
        runs: dict[bool, tuple[DaemonRun, float]] = {}
        for push in (False, True):
            with FakeGoogle() as google:
                os.environ[ENDPOINT_VARIABLE] = google.url
                google.service_account_file(root / "cohort" / "key.json")
                for email, intervals in busy.items():
                    google.set_busy(email, intervals)
                began = perf_counter()
                runs[push] = (
                    run_daemon(google, generated, keep_sent=False, state=root / f"state-{push}.sqlite", push=push),
                    perf_counter() - began,
                )
        polled, pushed = runs[False][0], runs[True][0]
        print(
            f"== Calendar reads (events.list) per pair over the program: {pairs} pairs, seed {seed},"
            f" clock from {CLOCK_START:%Y-%m-%d %H:%M} UTC to the last tick =="
        )
        print(f"    {'':<58} {'polled':>9} {'pushed':>9} {'polled/pushed':>14}")
        rows = [
            (
                "measured, simulated clock: events.list calls",
                polled.program.calls["calendar.events.list"],
                pushed.program.calls["calendar.events.list"],
            ),
            (
                "arithmetic, real clock (ticks every 5 min): reads",
                replayed_reads(polled, pushed=False),
                replayed_reads(pushed, pushed=True),
            ),
        ]
        for label, a, b in rows:
            print(f"    {label:<58} {a:>9} {b:>9} {a / b if b else float('nan'):>14.1f}")
            print(f"    {'  per pair':<58} {a / pairs:>9.3f} {b / pairs:>9.3f}")
        for push, (run, seconds) in runs.items():
            calls = run.program.calls
            print(
                f"  {'pushed' if push else 'polled'}: {run.ticks} ticks to {run.last_tick:%Y-%m-%d %H:%M} UTC,"
                f" {calls['calendar.events.watch']} events.watch, {calls['calendar.channels.stop']} channels.stop,"
                f" {len(run.notified)} ticks with a notice; messages {dict(sorted(run.states.items()))}; {seconds:.0f} s"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------- --gmail-days without the wire


class InProcessHttp:
    """googleapiclient's transport (httplib2's shape), handing each request to the fake in
    this process: no socket, no server thread, no requests or urllib3. Tokens come from the
    fake's token endpoint the same way."""

    def __init__(self, google: FakeGoogle, credentials):
        self.google = google
        self.credentials = credentials  # googleapiclient signs batch parts with these
        self._auth = InProcessAuthRequest(google)

    def request(self, uri, method="GET", body=None, headers=None, redirections=5, connection_type=None):
        headers = dict(headers or {})
        self.credentials.before_request(self._auth, method, uri, headers)  # a token, refreshed when due
        answer = self.google.answer(method, uri, headers, _bytes(body))
        return httplib2.Response({"status": str(answer.status), **{k.lower(): v for k, v in answer.headers}}), answer.body


class InProcessAuthRequest(auth_transport.Request):
    """What google-auth calls to reach the token endpoint, answered by the fake in process."""

    def __init__(self, google: FakeGoogle):
        self.google = google

    def __call__(self, url, method="GET", body=None, headers=None, timeout=None, **kwargs):
        return InProcessAuthResponse(self.google.answer(method, url, dict(headers or {}), _bytes(body)))


class InProcessAuthResponse(auth_transport.Response):
    def __init__(self, answer):
        self.answer = answer

    @property
    def status(self):
        return self.answer.status

    @property
    def headers(self):
        return dict(self.answer.headers)

    @property
    def data(self):
        return self.answer.body


def _bytes(body) -> bytes:
    if body is None:
        return b""
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


# --------------------------------------------------------------------------- the naive client


@dataclass
class NaiveRun:
    booking: Tally
    program: Tally
    seconds: float


def naive_client(google: FakeGoogle, folder: Path, cohort_name: str, daemon: DaemonRun) -> NaiveRun:
    """Per pair: one freebusy.query for its two people, then each session's event inserted
    on its own; then one users.messages.send per email. The real googleapiclient (its own
    httplib2 transport), the same service account and scopes as the daemon."""
    key = google.service_account_file(folder / "naive-key.json")
    scopes = auth.scopes(calendar=True, free_busy=True, gmail=True, read_sent=False)
    credentials = service_account.Credentials.from_service_account_file(str(key), scopes=scopes).with_subject(ORGANIZER)
    calendar = google.build("calendar", credentials)
    gmail = google.build("gmail", credentials)
    tag = cohort_tag(cohort_name)
    # The program's own span (61 days) fits one query; the daemon asks from "now".
    time_min = datetime.combine(PROGRAM_START, time(0), tzinfo=ZoneInfo(PROGRAM_ZONE)).astimezone(UTC)
    time_max = datetime.combine(PROGRAM_END + timedelta(days=1), time(0), tzinfo=ZoneInfo(PROGRAM_ZONE)).astimezone(UTC)
    by_pair: dict[str, list] = defaultdict(list)
    for record in daemon.sessions:
        by_pair[record.session.pair_id].append(record)

    google.clear_requests()
    began = perf_counter()
    for pair_id in sorted(by_pair):
        pair = daemon.pairs[pair_id]
        body = {
            "timeMin": time_min.isoformat(),
            "timeMax": time_max.isoformat(),
            "timeZone": "UTC",
            "items": [{"id": pair.mentor.email}, {"id": pair.mentee.email}],
        }
        calendar.freebusy().query(body=body).execute()
        for record in sorted(by_pair[pair_id], key=lambda r: r.session.number):
            session = record.session
            key_id = event_id(cohort_name, pair_id, session.number)
            event = {
                "id": key_id,
                "summary": f"Mentorship session {session.number}: {pair.mentor.name} and {pair.mentee.name}",
                "start": {"dateTime": session.start.isoformat(), "timeZone": "UTC"},
                "end": {"dateTime": session.end.isoformat(), "timeZone": "UTC"},
                "attendees": [{"email": p.email, "displayName": p.name} for p in pair.people],
                "extendedProperties": {"private": {TAG: tag, "pair": pair_id, "session": str(session.number)}},
                "conferenceData": {"createRequest": {"requestId": key_id, "conferenceSolutionKey": {"type": "hangoutsMeet"}}},
            }
            calendar.events().insert(calendarId="primary", body=event, conferenceDataVersion=1, sendUpdates="all").execute()
    booking = Tally.of(google.requests)
    for raw in daemon.sent_raw:
        encoded = base64.urlsafe_b64encode(raw).decode("ascii")
        gmail.users().messages().send(userId="me", body={"raw": encoded}).execute()
    seconds = perf_counter() - began
    return NaiveRun(booking=booking, program=Tally.of(google.requests), seconds=seconds)


# --------------------------------------------------------------------------- printing


def print_breakdown(title: str, tally: Tally, pairs: int) -> None:
    print(f"  {title}")
    print(f"    {'round trips by request':<58} {'count':>7} {'per pair':>9}")
    for label, count in sorted(tally.round_trips.items(), key=lambda item: (-item[1], item[0])):
        print(f"    {label:<58} {count:>7} {per(count, pairs):>9}")
    print(f"    {'total':<58} {tally.total_round_trips:>7} {per(tally.total_round_trips, pairs):>9}")
    print(f"    {'API calls by method id':<40} {'count':>7} {'per pair':>9} {'batched':>8} {'units':>9}")
    for method, count in sorted(tally.calls.items(), key=lambda item: (-item[1], item[0])):
        units = GMAIL_UNITS.get(method, 0) * count if method.startswith("gmail.") else count
        print(
            f"    {method:<40} {count:>7} {per(count, pairs):>9} {tally.batched_calls[method]:>8}"
            f" {units:>9} {'Gmail' if method.startswith('gmail.') else 'Calendar'}"
        )
    print(f"    {'total':<40} {tally.total_calls:>7} {per(tally.total_calls, pairs):>9}")
    failed = ", ".join(f"{m} {s}: {n}" for (m, s), n in sorted(tally.statuses.items(), key=str)) or "none"
    print(f"    calls not answered 2xx: {failed}; token requests (not counted above): {tally.tokens}")


def side_by_side(rows: Sequence[tuple[str, float, float]], pairs: int) -> None:
    print(f"    {'':<44} {'daemon':>9} {'/pair':>8} {'naive':>9} {'/pair':>8} {'naive/daemon':>13}")
    for label, ours, theirs in rows:
        ratio = f"{theirs / ours:13.1f}" if ours else f"{'-':>13}"
        print(f"    {label:<44} {ours:>9.0f} {ours / pairs:>8.4f} {theirs:>9.0f} {theirs / pairs:>8.4f} {ratio}")


def report(generated: Generated, busy_people: int, daemon: DaemonRun, naive: NaiveRun) -> None:
    pairs = generated.pairs
    first, program = daemon.first_tick, daemon.program
    booking_rt = first.round_trips_for(BOOKING_METHODS)
    booking_units = first.calendar_units(BOOKING_METHODS)
    freebusy = first.calls["calendar.freebusy.query"]
    inserts = first.calls["calendar.events.insert"]

    print(
        f"== Google calls: {pairs} pairs, {len(generated.people)} people"
        f" ({busy_people} with a calendar in the fake, {len(generated.people) - busy_people} notFound),"
        f" program {PROGRAM_START}..{PROGRAM_END} ({PROGRAM_ZONE}), clock from {CLOCK_START:%Y-%m-%d %H:%M} UTC =="
    )
    print(
        f"daemon: {daemon.booked_pairs} of {pairs} pairs booked, {daemon.ticks} ticks,"
        f" {daemon.events_live} live events ({daemon.meet_links} with Meet),"
        f" messages {dict(sorted(daemon.states.items()))}; first tick {daemon.first_tick_seconds:.1f} s,"
        f" whole program {daemon.program_seconds:.1f} s"
    )

    print("\n-- 1. Booking: the first tick --")
    print_breakdown("first tick, everything", first, pairs)
    print("  booking proper (freebusy.query, events.insert and the batches carrying them):")
    print(
        f"    round trips {booking_rt} = {per(booking_rt, pairs)} per pair"
        f"   (target <= {BOOKING_ROUND_TRIPS_TARGET}: {verdict(booking_rt / pairs, BOOKING_ROUND_TRIPS_TARGET)})"
    )
    print(
        f"    Calendar units {booking_units} (events.insert {inserts} + freebusy.query {freebusy})"
        f" = {per(booking_units, pairs)} per pair"
        f"   (target <= {BOOKING_UNITS_TARGET}: {verdict(booking_units / pairs, BOOKING_UNITS_TARGET)})"
    )
    rest_rt = first.total_round_trips - booking_rt
    print(
        f"  the rest of the first tick: {rest_rt} round trips"
        f" ({', '.join(f'{k} {v}' for k, v in sorted(first.round_trips.items()) if k not in BOOKING_METHODS and 'events.insert' not in k) or 'none'});"
        f" whole first tick {per(first.total_round_trips, pairs)} round trips per pair"
    )
    print(
        f"  Gmail in the first tick: {first.calls['gmail.users.messages.send']} messages.send"
        f" = {first.gmail_units()} Gmail units ({per(first.gmail_units(), pairs)} per pair)"
    )
    explain_free_busy(daemon, first, booking_rt, pairs)

    print("\n-- 2. The whole program (run_simulated to the end) --")
    print_breakdown("whole program", program, pairs)
    sends = program.calls["gmail.users.messages.send"]
    print(
        f"  Calendar units {program.calendar_units()} = {per(program.calendar_units(), pairs)} per pair;"
        f" Gmail: {sends} messages.send = {program.gmail_units()} Gmail units"
        f" ({per(program.gmail_units(), pairs)} per pair, {per(sends, pairs)} sends per pair)"
    )
    busiest = max(daemon.sent_per_day.items(), key=lambda item: (item[1], item[0]), default=(None, 0))
    print(
        f"  busiest simulated day for Gmail: {busiest[0]} with {busiest[1]} sends ({busiest[1] * 100} Gmail units);"
        f" days with any send: {sum(1 for v in daemon.sent_per_day.values() if v)}"
    )
    lists = program.calls["calendar.events.list"]
    print(
        f"  calendar.events.list: {lists} calls over {daemon.ticks} ticks (changes are read at every tick;"
        f" {lists - daemon.ticks} more are further pages)"
    )
    polls = (daemon.last_tick - CLOCK_START) // daemon.poll
    print(
        f"    not measured, arithmetic: a real run also ticks every poll interval ({daemon.poll}), so from"
        f" {CLOCK_START:%Y-%m-%d} to the last tick ({daemon.last_tick:%Y-%m-%d %H:%M}) at least {polls} ticks,"
        f" hence at least {polls} events.list calls ({per(polls, pairs)} per pair)"
    )

    print("\n-- 3. Daemon against a naive per-pair client (same fake, same busy calendars) --")
    nb, np_ = naive.booking, naive.program
    print("  booking:")
    side_by_side(
        [
            ("round trips (freebusy + inserts)", booking_rt, nb.round_trips_for(BOOKING_METHODS)),
            ("  freebusy.query calls", freebusy, nb.calls["calendar.freebusy.query"]),
            ("  events.insert calls", inserts, nb.calls["calendar.events.insert"]),
            ("Calendar units (freebusy + inserts)", booking_units, nb.calendar_units(BOOKING_METHODS)),
        ],
        pairs,
    )
    print("  whole program (the naive client reads no changes back):")
    methods = sorted(set(program.calls) | set(np_.calls))
    side_by_side(
        [("round trips, all", program.total_round_trips, np_.total_round_trips)]
        + [(f"  calls {m}", program.calls[m], np_.calls[m]) for m in methods]
        + [
            ("API calls, all", program.total_calls, np_.total_calls),
            ("Calendar units", program.calendar_units(), np_.calendar_units()),
            ("Gmail units", program.gmail_units(), np_.gmail_units()),
        ],
        pairs,
    )
    print(
        f"  naive client wall time {naive.seconds:.1f} s; calls not 2xx:"
        f" {', '.join(f'{m} {s}: {n}' for (m, s), n in sorted(np_.statuses.items(), key=str)) or 'none'}"
    )

    print("\n-- 4. Targets --")
    print(f"  {'':<54} {'figure':>9} {'target':>8}  verdict")
    print(
        f"  {'booking round trips per pair':<54} {booking_rt / pairs:>9.4f} {'<= 0.1':>8}"
        f"  {verdict(booking_rt / pairs, BOOKING_ROUND_TRIPS_TARGET)}"
    )
    print(
        f"  {'booking Calendar units per pair (2 inserts + free/busy)':<54} {booking_units / pairs:>9.4f} {'<= 2.1':>8}"
        f"  {verdict(booking_units / pairs, BOOKING_UNITS_TARGET)}"
    )
    whole_rt, whole_units = first.total_round_trips, first.calendar_units()
    print(
        f"  {'  whole first tick, round trips per pair':<54} {whole_rt / pairs:>9.4f} {'<= 0.1':>8}"
        f"  {verdict(whole_rt / pairs, BOOKING_ROUND_TRIPS_TARGET)} (with the first events.list)"
    )
    print(
        f"  {'  whole first tick, Calendar units per pair':<54} {whole_units / pairs:>9.4f} {'<= 2.1':>8}"
        f"  {verdict(whole_units / pairs, BOOKING_UNITS_TARGET)} (with the first events.list)"
    )
    booked = daemon.booked_pairs
    if booked and booked != pairs:
        print(
            f"  {'  the same per booked pair (' + str(booked) + ')':<54} {booking_rt / booked:>9.4f} {'<= 0.1':>8}"
            f"  {verdict(booking_rt / booked, BOOKING_ROUND_TRIPS_TARGET)}"
        )
        print(
            f"  {'  units per booked pair':<54} {booking_units / booked:>9.4f} {'<= 2.1':>8}"
            f"  {verdict(booking_units / booked, BOOKING_UNITS_TARGET)}"
        )
    insert_batches = first.round_trips_for(["calendar.events.insert"])
    fb_rt = first.round_trips_for(["calendar.freebusy.query"])
    print(
        f"  where booking round trips go: {fb_rt} freebusy.query requests (never batched,"
        f" {per(fb_rt, pairs)} per pair) + {insert_batches} insert batches ({per(insert_batches, pairs)} per pair)"
    )


def explain_free_busy(daemon: DaemonRun, first: Tally, booking_rt: int, pairs: int) -> None:
    """What the daemon asked free/busy for, how it was split into queries, and what a
    range starting where sessions may start would have cost."""
    measured = first.calls["calendar.freebusy.query"]
    earliest = local_moment(PROGRAM_START, time(0), PROGRAM_ZONE)  # no session starts before
    for people, start, end in daemon.free_busy_asked[:1]:
        groups = math.ceil(people / freebusy.ITEMS)
        windows = math.ceil((end - start) / freebusy.WINDOW)
        print(
            f"  free/busy asked (first tick): {people} people, {start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC"
            f" = {_span(end - start)}; split by ITEMS={freebusy.ITEMS} and WINDOW={_span(freebusy.WINDOW)}"
            f" into {groups} groups x {windows} windows = {groups * windows} queries (measured {measured})"
        )
        if windows > 1:
            last = end - start - (windows - 1) * freebusy.WINDOW
            useful = max(start, earliest)
            one = math.ceil((end - useful) / freebusy.WINDOW)
            print(
                f"    the last window of each group covers only {_span(last)}; no session can start before"
                f" {useful:%Y-%m-%d %H:%M} UTC (program start), and a range from there ({_span(end - useful)})"
                f" needs {one} window(s): {groups * one} queries, booking round trips"
                f" {booking_rt - measured + groups * one} = {per(booking_rt - measured + groups * one, pairs)} per pair"
            )
        events = first.calls["calendar.events.insert"]
        limit = math.floor(BOOKING_ROUND_TRIPS_TARGET * pairs + 1e-9) - math.ceil(events / BATCH_PARTS)
        room = (
            f"at most {limit // windows * freebusy.ITEMS} people at {windows} window(s) per group"
            if limit >= windows
            else "not even one group"
        )
        print(
            f"    booking round trips = {windows} x ceil(people / {freebusy.ITEMS}) + ceil(events / {BATCH_PARTS}):"
            f" with {events} events the target allows {limit} free/busy queries, i.e. {room}"
        )
    if len(daemon.free_busy_asked) > 1:
        print(f"  free/busy asked {len(daemon.free_busy_asked)} times over the whole program")


def _span(delta: timedelta) -> str:
    hours = int(delta.total_seconds() // 3600)
    return f"{hours // 24} d {hours % 24} h"


def busiest_24_hours(sent: Sequence[datetime]) -> tuple[int, datetime | None]:
    """The most sends in any 24 hours (as Gmail counts), and when that window starts."""
    times = sorted(sent)
    best, start, ahead = 0, None, 0
    for first, at in enumerate(times):
        ahead = max(ahead, first)
        while ahead < len(times) and times[ahead] < at + timedelta(hours=24):
            ahead += 1
        if ahead - first > best:
            best, start = ahead - first, at
    return best, start


def gmail_days(pairs: int, seed: int, per_day: int) -> None:
    """The program's Gmail sends without the daily budget and with it (the defaults):
    the busiest calendar day, the busiest 24 hours, and whether every email went out."""
    root = Path(tempfile.mkdtemp(prefix="gmail-days-"))
    memory = Path(tempfile.mkdtemp(prefix="gmail-days-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
    limits = Budget(per_day=per_day, recipients_per_day=per_day * 25 // 18)
    try:
        generated = write_google_cohort(root / "cohort", pairs, seed)
        busy = busy_calendars(generated.people, seed)
        print(
            f"{pairs} pairs, {len(generated.people)} people; daily budget {limits.per_day:,} messages, {limits.recipients_per_day:,} recipients"
        )
        for label, budget in (("before (no budget)", None), ("after (daily budget)", limits)):
            state = memory / "state.sqlite"
            state.unlink(missing_ok=True)
            with (
                FakeGoogle() as google,
                # See the module's docstring: the client without the wire.
                patch.object(api, "RequestsHttp", functools.partial(InProcessHttp, google)),
            ):
                os.environ[ENDPOINT_VARIABLE] = google.url
                google.service_account_file(root / "cohort" / "key.json")
                for email, intervals in busy.items():
                    google.set_busy(email, intervals)
                began = perf_counter()
                daemon = run_daemon(google, generated, budget, keep_sent=False, state=state)
                seconds = perf_counter() - began
                stamps = [t for box in google.gmail.sent_at.values() for t in box]
            day, most = max(daemon.sent_per_day.items(), key=lambda item: (item[1], item[0]))
            window, start = busiest_24_hours(stamps)
            over = sum(1 for count in daemon.sent_per_day.values() if count > limits.per_day)
            print(f"\n{label}:")
            print(f"  sent {len(stamps):,} emails; messages by state: {dict(sorted(daemon.states.items()))}")
            print(f"  busiest calendar day: {day} with {most:,} sends; days over {limits.per_day:,}: {over}")
            print(f"  busiest 24 hours: {window:,} sends from {start:%Y-%m-%d %H:%M} UTC")
            print(f"  last tick {daemon.last_tick:%Y-%m-%d %H:%M} UTC; {daemon.ticks} ticks; {seconds:.0f} s")
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(memory, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=500)
    parser.add_argument("--seed", type=int, default=2027)
    parser.add_argument("--gmail-days", action="store_true", help="only the busiest Gmail day, without and with the daily budget")
    parser.add_argument(
        "--daily-limit", type=int, default=1800, help="--gmail-days: the budget's messages a day (scaled down for small runs)"
    )
    parser.add_argument("--push", action="store_true", help="only calendar reads per pair, polled and pushed")
    args = parser.parse_args()
    if args.push:
        compare_reads(args.pairs, args.seed)
        return
    if args.gmail_days:
        gmail_days(args.pairs, args.seed, args.daily_limit)
        return
    began = perf_counter()
    root = Path(tempfile.mkdtemp(prefix="google-calls-"))
    try:
        generated = write_google_cohort(root / "cohort", args.pairs, args.seed)
        busy = busy_calendars(generated.people, args.seed)
        with FakeGoogle() as google:
            os.environ[ENDPOINT_VARIABLE] = google.url
            google.service_account_file(root / "cohort" / "key.json")
            for email, intervals in busy.items():
                google.set_busy(email, intervals)
            daemon = run_daemon(google, generated)
            internal = list(google.internal_errors)
        with FakeGoogle() as google:
            os.environ[ENDPOINT_VARIABLE] = google.url
            for email, intervals in busy.items():
                google.set_busy(email, intervals)
            naive = naive_client(google, root, generated.name, daemon)
            internal += google.internal_errors
        report(generated, len(busy), daemon, naive)
        if internal:
            print(f"\nfake internal errors: {len(internal)} (first: {internal[0].splitlines()[-1]})")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"\nwhole benchmark: {perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()  # the fakes point ENDPOINT_VARIABLE at themselves: this process only
