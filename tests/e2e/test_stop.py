"""A stop signal at any moment ends `run` cleanly: status 0, no traceback, state intact."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from service.adapters.store import open_store
from service.domain.requests import RequestKind

ROOT = Path(__file__).parents[2]


@pytest.mark.parametrize("simulate", [False, True], ids=["real clock", "simulated clock"])
def test_sigint_and_sigterm_at_random_moments_stop_cleanly(tmp_path, simulate):
    folder = tmp_path / "cohort"
    shutil.copytree(ROOT / "config", folder)
    rng = random.Random(20270301)
    for attempt in range(8):
        state = tmp_path / f"run{attempt}" / "state.sqlite"  # a state of its own: each run is a first run
        command = [sys.executable, "-m", "service", "run", "--config", str(folder / "cohort.example.yaml"), "--state", str(state)]
        command += ["--outbox", str(tmp_path / f"out{attempt}")]
        if simulate:
            command += ["--simulate", "--now", "2027-02-01T00:00:00+00:00"]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
        catching_sigterm(process)  # before that, Python itself is still starting: a signal kills it as any program
        time.sleep(rng.uniform(0.0, 1.5))  # from start-up to well into the work
        process.send_signal(rng.choice([signal.SIGINT, signal.SIGTERM]))
        out, err = process.communicate(timeout=30)
        assert process.returncode == 0, (attempt, out[-500:], err[-2000:])
        assert "Traceback" not in err and "Traceback" not in out, err
        if state.exists():  # whatever it got to is consistent: nothing left half-sent
            store = open_store(state)
            try:
                assert store.in_flight() == []
            finally:
                store.close()


def catching_sigterm(process: subprocess.Popen) -> None:
    """Wait until the process has its own SIGTERM handler (the command's first act)."""
    bit = 1 << (signal.SIGTERM - 1)
    for _ in range(600):
        status = Path(f"/proc/{process.pid}/status").read_text()
        caught = int(next(line for line in status.splitlines() if line.startswith("SigCgt:")).split()[1], 16)
        if caught & bit or process.poll() is not None:
            return
        time.sleep(0.005)


# A stop while the daemon reads a bad edit of its files

NEVER = "FREQ=HOURLY;BYMONTH=2;BYMONTHDAY=30"  # judged cheap (few steps to the program's end), matches never: scans to year 9999
SLOW_ICS = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Test//EN\r\n"
    + "".join(
        f"BEGIN:VEVENT\r\nUID:never-{n}\r\nDTSTAMP:20270101T000000Z\r\nDTSTART:20270301T09{n:02d}00Z\r\n"
        f"DTEND:20270301T100000Z\r\nRRULE:{NEVER}\r\nEND:VEVENT\r\n"
        for n in range(4)
    )
    + "END:VCALENDAR\r\n"
)
ALIAS_BOMB = "".join(f"lol{n}: &lol{n} [{', '.join([f'*lol{n - 1}'] * 9 if n else ['lol'] * 9)}]\n" for n in range(10))


def cpu_seconds(pid: int) -> float:
    """Processor time a process has used so far (user and system), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for(condition, what: str, process: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    """Poll until `condition()`; a generous bound, only so a broken daemon cannot hang the test."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise AssertionError(f"{what}: never happened\n{log.read_text()[-3000:]}")
        time.sleep(0.05)


@pytest.mark.parametrize(
    "edit", ["busy calendars that repeat on a day that never comes", "cohort file with an alias bomb", "huge pairings file"]
)
def test_sigterm_while_a_bad_edit_is_being_read_ends_the_daemon_within_two_seconds(tmp_path, edit):
    folder = tmp_path / "cohort"
    shutil.copytree(ROOT / "config", folder)
    config, state, log = folder / "cohort.example.yaml", tmp_path / "state.sqlite", tmp_path / "daemon.log"
    command = [sys.executable, "-m", "service", "run", "--config", str(config), "--state", str(state), "--outbox", str(tmp_path / "out")]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        wait_for(lambda: "booked" in log.read_text(), "the first tick", process, log)
        time.sleep(0.5)  # the first tick's sending is over
        before = cpu_seconds(process.pid)
        if edit.startswith("busy"):
            for name in ("maya.ics", "noah.ics"):
                (folder / "busy" / name).write_text(SLOW_ICS)
        elif "alias" in edit:
            config.write_text(ALIAS_BOMB + config.read_text())
        else:
            with open(folder / "pairings.example.csv", "ab") as pairings:
                pairings.truncate(60_000_000)  # far over the limit: refused without being read
        # A queued command wakes the daemon at once (the files are looked at on every tick).
        store = open_store(state)
        try:
            store.add_request(RequestKind.APPROVE, {}, datetime.now(UTC))
        finally:
            store.close()
        if edit.startswith("busy"):  # stop it in the middle of reading: it is busy with nothing else
            wait_for(lambda: cpu_seconds(process.pid) - before > 1.0, "reading the edit", process, log)
        else:  # refused at once
            wait_for(lambda: "configuration edit ignored" in log.read_text(), "the edit refused", process, log)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=2)  # what the issue asks: an answer within 2 s
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise AssertionError(f"still running 2 s after SIGTERM\n{log.read_text()[-3000:]}") from None
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = log.read_text()
    assert process.returncode == 0, text[-3000:]
    assert "Traceback" not in text
    if edit.startswith("busy"):
        assert "stopping while reading a configuration edit; it was not applied" in text, text[-3000:]
        assert "configuration edit applied" not in text and "configuration edit ignored" not in text
    store = open_store(state)
    try:
        assert store.in_flight() == []
        assert [r.outcome for r in store.pending_requests()] in ([], [None])  # applied after the edit, or not reached
    finally:
        store.close()
