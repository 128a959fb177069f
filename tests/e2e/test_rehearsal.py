"""A rehearsal never touches the real program, and the real program never runs on a rehearsal."""

from __future__ import annotations

import shutil
from pathlib import Path

from service.adapters.store import open_store
from service.cli import main
from service.domain.ports import Purpose

ROOT = Path(__file__).parents[2]
NOW = ["--now", "2027-02-01T00:00:00+00:00"]


def cohort_folder(tmp_path: Path, monkeypatch) -> str:
    shutil.copytree(ROOT / "config", tmp_path / "config")
    monkeypatch.chdir(tmp_path)  # the default states live in ./state
    return str(tmp_path / "config" / "cohort.example.yaml")


def test_simulate_then_run_leaves_the_real_program_untouched(tmp_path, monkeypatch, capsys):
    config = cohort_folder(tmp_path, monkeypatch)
    assert main(["run", "--config", config, "--simulate", *NOW]) == 0
    assert "messages: 252 sent" in capsys.readouterr().out
    rehearsal = tmp_path / "state" / "cohort.example.rehearsal.sqlite"
    assert rehearsal.exists() and (tmp_path / "state" / "rehearsal-outbox").is_dir()
    assert not (tmp_path / "state" / "cohort.example.sqlite").exists()
    assert not (tmp_path / "state" / "outbox").exists()
    # The real program's status: nothing has happened to it.
    assert main(["status", "--config", config]) == 2
    assert "the daemon has not run yet" in capsys.readouterr().err


def test_the_real_daemon_refuses_a_rehearsal_state(tmp_path, monkeypatch, capsys):
    config = cohort_folder(tmp_path, monkeypatch)
    assert main(["run", "--config", config, "--simulate", *NOW, "--until", "2027-02-23T00:00:00+00:00"]) == 0
    capsys.readouterr()
    assert main(["run", "--config", config, "--state", "state/cohort.example.rehearsal.sqlite"]) == 2
    err = capsys.readouterr().err
    assert "holds a rehearsal" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_a_rehearsal_refuses_the_real_programs_state(tmp_path, monkeypatch, capsys):
    config = cohort_folder(tmp_path, monkeypatch)
    real = tmp_path / "state" / "cohort.example.sqlite"
    store = open_store(real)
    store.set_purpose(Purpose.REAL)  # as the real daemon leaves it
    store.close()
    assert main(["run", "--config", config, "--simulate", *NOW, "--state", str(real)]) == 2
    assert "holds the real program" in capsys.readouterr().err
    store = open_store(real)
    try:
        assert store.messages() == [] and store.sessions() == []  # nothing was booked or planned
    finally:
        store.close()
