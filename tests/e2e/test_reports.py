"""What the coordinator reads back: history and the CSV export, from a rehearsal's state."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import pytest

from service.cli import main

ROOT = Path(__file__).parents[2]


@pytest.fixture
def rehearsed(tmp_path, capsys):
    shutil.copytree(ROOT / "config", tmp_path / "config")
    config, state = str(tmp_path / "config" / "cohort.example.yaml"), str(tmp_path / "state.sqlite")
    until = ["--now", "2027-02-01T00:00:00+00:00", "--until", "2027-03-10T00:00:00+00:00"]
    assert main(["run", "--config", config, "--state", state, "--simulate", "--outbox", str(tmp_path / "out"), *until]) == 0
    capsys.readouterr()
    return ["--config", config, "--state", state]


def test_history_of_one_person_in_their_own_time(rehearsed, capsys):
    assert main(["history", *rehearsed, "--person", "zoe.nunez@example.net"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == sorted(lines)  # oldest first
    assert lines[0].endswith("maya-zoe: session 1 booked for 2027-03-01 18:00 UTC (12:00 CST)")
    welcome = next(line for line in lines if " welcome to zoe.nunez@example.net: sent" in line)
    assert welcome.startswith("2027-02-22 15:00 UTC (09:00 CST)")  # 09:00 where Zoë lives
    assert all("maya.okafor" not in line for line in lines)  # only Zoë's emails


def test_export_has_a_row_per_pair_with_local_times(rehearsed, capsys):
    assert main(["export", *rehearsed]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 14
    zoe = next(r for r in rows if r["pair"] == "maya-zoe")
    assert (zoe["mentee"], zoe["session1_utc"], zoe["session1_mentee_local"]) == ("Zoë Ñúñez", "2027-03-01 18:00", "2027-03-01 12:00 CST")
    assert zoe["session1_status"] == "booked" and int(zoe["emails_sent"]) == 10 and int(zoe["emails_total"]) == 18


def test_health_says_whether_the_daemon_ticked_lately(rehearsed, capsys, tmp_path):
    # The rehearsal's last tick was at the last moment it simulated, 2027-03-10 at the latest.
    assert main(["health", *rehearsed, "--now", "2027-03-10T00:05:00+00:00", "--max-age", "1d"]) == 0
    assert "healthy: last tick" in capsys.readouterr().out
    assert main(["health", *rehearsed, "--now", "2027-04-01T00:00:00+00:00", "--max-age", "15m"]) == 1
    assert "unhealthy: the daemon's last tick was" in capsys.readouterr().err
    config = rehearsed[1]
    assert main(["health", "--config", config, "--state", str(tmp_path / "none.sqlite")]) == 1
