"""Every broken configuration in tests/data/bad gives exactly its expected report."""

import subprocess
import sys
from pathlib import Path

import pytest

from service.cli import main

CORPUS = Path(__file__).parent.parent / "data" / "bad"
CASES = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())


def test_the_corpus_is_there():
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("command", ["validate", "plan"])
def test_bad_input_is_reported_exactly_and_nothing_else_happens(case, command, monkeypatch, capsys):
    folder = CORPUS / case
    monkeypatch.chdir(folder)
    before = sorted(p.name for p in folder.iterdir())
    status = main([command, "--config", "cohort.yaml"])
    out, err = capsys.readouterr()
    assert status == 2
    assert out == ""
    assert err == (folder / "expected.txt").read_text(encoding="utf-8")
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing written


def test_the_real_command_exits_2_without_a_traceback():
    folder = CORPUS / "both_files_broken"
    result = subprocess.run(
        [sys.executable, "-m", "service", "validate", "--config", "cohort.yaml"],
        cwd=folder,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr == (folder / "expected.txt").read_text(encoding="utf-8")
