"""A state deleted by mistake cannot send the program again; a backup brings it back."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

from service.adapters.store import open_store
from service.cli import main

ROOT = Path(__file__).parents[2]


def run_briefly(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    """A real daemon that runs until it says so, then gets SIGTERM."""
    command = [sys.executable, "-m", "service", "run", "--config", str(tmp_path / "config" / "cohort.example.yaml")]
    command += ["--state", str(tmp_path / "state" / "cohort.sqlite"), "--outbox", str(tmp_path / "outbox"), *extra]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    deadline = time.monotonic() + 30
    lock = tmp_path / "state" / "cohort.sqlite.lock"
    while process.poll() is None and time.monotonic() < deadline:
        holder = lock.read_text().strip() if lock.exists() else ""
        if holder == str(process.pid) and _booked(tmp_path):  # this run holds the state and has booked
            process.send_signal(signal.SIGTERM)
            break
        time.sleep(0.1)
    out, err = process.communicate(timeout=30)
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def _booked(tmp_path: Path) -> bool:
    state = tmp_path / "state" / "cohort.sqlite"
    if not state.exists():  # opening it here would make it, with this process's modes
        return False
    try:
        store = open_store(state)
    except Exception:
        return False
    try:
        return bool(store.sessions())
    finally:
        store.close()


def test_an_empty_state_for_a_cohort_that_ran_is_refused_until_restored_or_fresh(tmp_path, capsys):
    shutil.copytree(ROOT / "config", tmp_path / "config")
    first = run_briefly(tmp_path)
    assert first.returncode == 0, first.stderr
    state = tmp_path / "state" / "cohort.sqlite"
    assert stat.S_IMODE(state.stat().st_mode) == 0o600  # participants' details: owner only
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    # A consistent copy, taken as the daemon would be running.
    config = ["--config", str(tmp_path / "config" / "cohort.example.yaml")]
    assert main(["backup", *config, "--state", str(state), "--to", str(tmp_path / "backup.sqlite")]) == 0
    assert open_store(tmp_path / "backup.sqlite").sessions()
    # The state is deleted by mistake: the next start refuses, sending nothing.
    os.remove(state)
    refused = run_briefly(tmp_path)
    assert refused.returncode == 2
    assert "has already run" in refused.stderr and "--fresh" in refused.stderr and "Traceback" not in refused.stderr
    assert not any((tmp_path / "outbox").glob("*.eml"))
    # Restored from the backup, it carries on.
    shutil.copy(tmp_path / "backup.sqlite", state)
    assert run_briefly(tmp_path).returncode == 0
    # Or, on purpose, everything again.
    os.remove(state)
    assert run_briefly(tmp_path, "--fresh").returncode == 0


def test_a_symlink_to_the_state_is_locked_as_the_state(tmp_path):
    from service import bootstrap

    (tmp_path / "real").mkdir()
    real = tmp_path / "real" / "state.sqlite"
    link = tmp_path / "link.sqlite"
    store, release = bootstrap.open_locked_state(real)
    link.symlink_to(real)
    try:
        try:
            bootstrap.open_locked_state(link)
        except bootstrap.AlreadyRunning:
            pass
        else:
            raise AssertionError("a second daemon got in through the symlink")
    finally:
        release()
