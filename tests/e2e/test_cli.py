"""The installed `mentorship` command on the example configuration."""

import json
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from service.cli import main

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "config" / "cohort.example.yaml"
COMMAND = shutil.which("mentorship", path=str(Path(sys.executable).parent)) or "mentorship"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([COMMAND, *args], capture_output=True, text=True, cwd=ROOT)


def test_validate_summarises_the_example():
    result = run("validate", "--config", str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    assert "configuration is valid" in result.stdout
    assert "pairs           14" in result.stdout


def test_plan_as_json_has_the_documented_shape():
    result = run("plan", "--config", str(EXAMPLE), "--format", "json", "--now", "2027-02-15T00:00:00+00:00")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["cohort"] == "Spring 2027 Engineering Mentorship"
    assert len(plan["pairs"]) == 14
    for item in plan["pairs"]:
        assert set(item) >= {"id", "mentor", "mentee", "sessions", "problems"}
        assert set(item["mentor"]) >= {"name", "email", "timezone"}
        assert item["problems"] == []
        assert [s["number"] for s in item["sessions"]] == [1, 2]
        for s in item["sessions"]:
            start, end = datetime.fromisoformat(s["start"]), datetime.fromisoformat(s["end"])
            assert start.utcoffset() is not None
            assert (end - start).total_seconds() == 3600


def test_plan_table_shows_both_local_times():
    result = run("plan", "--config", str(EXAMPLE), "--now", "2027-02-15T00:00:00+00:00")
    assert result.returncode == 0, result.stderr
    assert "14 of 14 pairs fully planned" in result.stdout
    assert "mentee" in result.stdout and "UTC+10:30" in result.stdout  # Lord Howe after 4 April


def test_a_pairings_file_given_on_the_command_line_wins(tmp_path):
    other = tmp_path / "pairs.csv"
    other.write_text("mentor_name,mentor_email,mentee_name,mentee_email\nMaya,maya@,Zoe,zoe@example.net\n")
    result = run("validate", "--config", str(EXAMPLE), "--pairings", str(other))
    assert result.returncode == 2
    assert "pairs.csv:2: mentor_email 'maya@' is not an email address\n" in result.stderr


def test_a_state_that_is_not_one_is_a_clear_error(tmp_path, capsys):
    broken = tmp_path / "state.sqlite"
    broken.write_bytes(bytes(range(256)) * 20)  # a corrupted file
    config = str(ROOT / "config" / "cohort.example.yaml")
    for command in (["status"], ["run", "--outbox", str(tmp_path / "out")]):
        assert main([command[0], "--config", config, "--state", str(broken), *command[1:]]) == 2
        err = capsys.readouterr().err
        assert "the state cannot be opened: it is not a database" in err and "Traceback" not in err
    assert main(["status", "--config", config, "--state", "mysql://db.example.org/state"]) == 2
    assert "a SQLite file path or a postgresql+psycopg:// URL" in capsys.readouterr().err
