"""Three replicas on one PostgreSQL share six cohorts through leases, while one of them is
SIGKILLed every few seconds (and started again) and the server ends a database
connection now and then: no email goes out twice, none is lost, every cohort finishes.

Each replica runs `run --cohorts DIR --simulate`: every cohort it holds has a simulated
clock of its own, resumed from the cohort's last recorded effect, so the cohorts' time
is shared through the store. A kill comes every few seconds, once the replicas have sent
a few more emails since the last one, so that on a slow machine the program still moves
on between kills. Leases last 10 seconds here (30 by default): a killed
replica's cohorts are taken over once its leases run out, and the one that takes over
checks each message left `sending` with the file transport before anything else.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections import Counter
from email import policy
from email.parser import BytesHeaderParser
from pathlib import Path

import psycopg
import pytest

from service.adapters.store import open_store
from service.domain.outbox import State
from tests.contract.test_store import POSTGRES, postgres_database
from tests.e2e.test_crash import NOW, write_cohort

ROOT = Path(__file__).parents[2]
COHORTS, PAIRS, REPLICAS = 6, 1, 3
LEASE = "10s"
KILL_AFTER = (4, 10)  # emails delivered between two kills: the kills keep pace with the machine
KILL_GAP = 3.0  # seconds at least between two kills
TERMINATE_EVERY = (4.0, 8.0)  # seconds between two ended database connections
WALL_CAP = 600.0  # a cap only: the test ends as soon as every cohort has finished


def write_cohorts(folder: Path, count: int, pairs: int) -> list[str]:
    """`count` cohort files in one folder, each with its own pairings and name."""
    names = []
    for number in range(1, count + 1):
        name = f"cohort-{number}"
        made = write_cohort(folder / name, pairs)
        text = made.read_text(encoding="utf-8").replace("Crash Test Cohort", f"Replica Cohort {number}")
        (folder / f"{name}.yaml").write_text(text.replace("pairings: pairings.csv", f"pairings: {name}/pairings.csv"), encoding="utf-8")
        made.unlink()
        names.append(name)
    return names


def start(folder: Path, url: str, outbox: Path, logs: Path, number: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "service", "run", "--cohorts", str(folder), "--simulate", "--now", NOW]
    command += ["--state", url, "--outbox", str(outbox), "--lease", LEASE]
    with open(logs / f"replica-{number}.log", "w", encoding="utf-8") as log:  # the process keeps its own copy
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=folder.parent)


def delivered(outbox: Path) -> int:
    return sum(1 for _ in outbox.rglob("*.eml"))


def working(log: Path) -> bool:
    return "working it" in log.read_text(encoding="utf-8")


def leases(url: str) -> list[tuple[str, int, bool]]:
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as connection:
        try:
            return connection.execute("SELECT cohort, token, done FROM fleet.leases ORDER BY cohort").fetchall()
        except psycopg.errors.UndefinedTable:
            return []


def terminate_one(url: str, rng: random.Random) -> bool:
    """End one of the replicas' connections to the database, as a server restart or a
    network cut would."""
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(POSTGRES, autocommit=True) as admin:
        pids = [row[0] for row in admin.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (name,))]
        if not pids:
            return False
        ended = admin.execute("SELECT pg_terminate_backend(%s)", (rng.choice(pids),)).fetchone()
        return bool(ended and ended[0])


@pytest.mark.postgres
@pytest.mark.slow
def test_three_replicas_killed_and_cut_off_send_every_email_of_six_cohorts_once(tmp_path):
    folder, outbox, logs = tmp_path / "cohorts", tmp_path / "outbox", tmp_path / "logs"
    names = write_cohorts(folder, COHORTS, PAIRS)
    logs.mkdir()
    rng = random.Random(20270301)
    kills = terminations = runs = 0
    with postgres_database() as url:
        replicas = {n: start(folder, url, outbox, logs, (runs := runs + 1)) for n in range(REPLICAS)}
        began = time.monotonic()
        logged = dict(enumerate(range(1, REPLICAS + 1)))  # replica slot -> its log's number
        last_kill, kill_at = began, rng.randint(*KILL_AFTER)
        next_cut = began + rng.uniform(*TERMINATE_EVERY)
        try:
            while time.monotonic() - began < WALL_CAP:
                rows = leases(url)
                if len(rows) == COHORTS and all(done for _, _, done in rows):
                    break
                now = time.monotonic()
                # Only a replica that works cohorts: on a busy machine one just started may
                # take many seconds to load its cohorts and claim any.
                up = [n for n in replicas if working(logs / f"replica-{logged[n]}.log")]
                if now - last_kill >= KILL_GAP and delivered(outbox) >= kill_at and up:
                    victim = rng.choice(up)
                    if replicas[victim].poll() is None:
                        replicas[victim].send_signal(signal.SIGKILL)
                        replicas[victim].wait()
                        kills += 1
                    replicas[victim] = start(folder, url, outbox, logs, (runs := runs + 1))
                    logged[victim] = runs
                    last_kill, kill_at = now, delivered(outbox) + rng.randint(*KILL_AFTER)
                if now >= next_cut:
                    terminations += terminate_one(url, rng)
                    next_cut = now + rng.uniform(*TERMINATE_EVERY)
                time.sleep(0.2)
            finished = leases(url)
            for process in replicas.values():  # each stops by itself once every cohort is finished
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
            seconds = time.monotonic() - began

            deliveries: Counter = Counter()
            for path in outbox.rglob("*.eml"):
                deliveries[str(BytesHeaderParser(policy=policy.default).parsebytes(path.read_bytes())["Message-ID"]).strip()] += 1
            rows_per_cohort: dict[str, int] = {}
            states: Counter = Counter()
            lost: list[str] = []
            duplicates: list[str] = []
            for name in names:
                store = open_store(url, cohort=name)
                try:
                    stored = store.messages()
                finally:
                    store.close()
                rows_per_cohort[name] = len(stored)
                for row in stored:
                    states[row.state.value] += 1
                    count = deliveries.get(row.message_id, 0) if row.message_id else 0
                    if count > 1:
                        duplicates.append(f"{name}/{row.key} x{count}")
                    if count == 0 or row.state is not State.SENT:
                        lost.append(f"{name}/{row.key} ({row.state.value}, delivered {count})")
        finally:
            for process in replicas.values():
                if process.poll() is None:
                    process.kill()
                    process.wait()
    takeovers = sum(token - 1 for _, token, _ in finished)
    tracebacks = [p.name for p in logs.iterdir() if "Traceback" in p.read_text(encoding="utf-8")]
    text = (
        f"replicas: {runs} runs, {kills} SIGKILLs, {terminations} connections ended, {takeovers} take-overs, {seconds:.0f} s\n"
        f"emails: {sum(deliveries.values())} delivered, states {dict(states)}, {len(duplicates)} duplicates, {len(lost)} lost\n"
        f"leases: {finished}"
    )
    print("\n" + text)
    assert all(done for _, _, done in finished) and len(finished) == COHORTS, f"not every cohort finished\n{text}"
    assert kills >= 3 and terminations >= 3, f"too few faults to tell\n{text}"
    assert takeovers >= 1, f"no cohort changed hands\n{text}"
    assert not duplicates, f"{text}\n{duplicates[:5]}"
    assert not lost, f"{text}\n{lost[:5]}"
    assert rows_per_cohort == {name: 18 * PAIRS for name in names}, text
    assert sum(deliveries.values()) == COHORTS * 18 * PAIRS, text
    assert not tracebacks, f"{text}\na replica failed with a traceback: {tracebacks}"
