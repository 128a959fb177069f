"""A stop signal at any moment ends `run` cleanly: status 0, no traceback, state intact."""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from service.adapters.store import open_store

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
        time.sleep(rng.uniform(0.05, 1.5))  # from start-up to well into the work
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
