"""On PostgreSQL the one-daemon lock is a database session: when that session dies the
daemon stops at once, with a clear message, and never sends without the lock."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from tests.contract.test_store import POSTGRES, postgres_database

ROOT = Path(__file__).parents[2]
ADVISORY_LOCK = 0x6D656E746F72


def start_daemon(tmp_path: Path, url: str) -> subprocess.Popen:
    shutil.copytree(ROOT / "config", tmp_path / "config", dirs_exist_ok=True)
    command = [sys.executable, "-m", "service", "run", "--config", str(tmp_path / "config" / "cohort.example.yaml")]
    command += ["--state", url, "--outbox", str(tmp_path / "out")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    for _ in range(200):  # until it holds the lock
        if lock_holder(url) is not None:
            return process
        time.sleep(0.1)
    process.kill()
    raise AssertionError("the daemon never took its lock: " + process.communicate()[1][-2000:])


def lock_holder(url: str) -> int | None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(POSTGRES, autocommit=True) as admin:
        row = admin.execute(
            "SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
            " WHERE l.locktype = 'advisory' AND l.granted AND d.datname = %s",
            (name,),
        ).fetchone()
    return row[0] if row else None


@pytest.mark.postgres
def test_a_lost_lock_stops_the_daemon_with_a_clear_message(tmp_path):
    with postgres_database() as url:
        process = start_daemon(tmp_path, url)
        try:
            with psycopg.connect(POSTGRES, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (lock_holder(url),))
            out, err = process.communicate(timeout=20)
        finally:
            if process.poll() is None:
                process.kill()
        assert process.returncode == 1, (out, err)
        assert "the lock on" in err and "was lost" in err and "Traceback" not in err + out


@pytest.mark.postgres
def test_sigterm_with_a_dead_lock_connection_still_exits_cleanly(tmp_path):
    with postgres_database() as url:
        process = start_daemon(tmp_path, url)
        try:
            with psycopg.connect(POSTGRES, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (lock_holder(url),))
            process.send_signal(signal.SIGTERM)
            out, err = process.communicate(timeout=20)
        finally:
            if process.poll() is None:
                process.kill()
        assert process.returncode in (0, 1), (out, err)  # stopped for the signal or for the lock, either way cleanly
        assert "Traceback" not in err + out
