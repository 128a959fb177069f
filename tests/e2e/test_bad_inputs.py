"""Every broken configuration in tests/data/bad gives exactly its expected report."""

import os
import subprocess
import sys
import tempfile
import threading
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


# Inputs that once took minutes and gigabytes: each must now be refused at once.
COSTLY = [
    "yaml_alias_bomb",  # a billion laughs
    "yaml_alias_bomb_pairings",
    "yaml_recursive_alias",
    "yaml_nested_too_deep",
    "blackout_ranges_are_clipped",  # 0001-01-01..9999-12-31
    "busy_calendar_repeats_every_second",
    "busy_calendar_costly_time_zone",
    "busy_calendar_too_many_busy_times",
    "header_too_wide",
]


def validate(folder: Path) -> tuple[int, str, float, int]:
    """Run `validate` in `folder` as a coordinator would: its exit status, what it printed
    on stderr, its processor seconds and its peak memory in kilobytes."""
    with tempfile.TemporaryFile() as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "service", "validate", "--config", "cohort.yaml"], cwd=folder, stdout=subprocess.DEVNULL, stderr=err
        )
        watchdog = threading.Timer(60, process.kill)  # a regression must fail the test, not hang it
        watchdog.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            watchdog.cancel()
        err.seek(0)
        return os.waitstatus_to_exitcode(status), err.read().decode("utf-8"), usage.ru_utime + usage.ru_stime, usage.ru_maxrss


@pytest.fixture(scope="module")
def starting_cost(tmp_path_factory) -> tuple[float, int]:
    """Processor seconds and peak kilobytes of the command refusing a missing file: Python
    and the imports. A child's peak memory counts the test process's own from before the
    command started, so memory too is judged beyond this."""
    _, _, seconds, kilobytes = validate(tmp_path_factory.mktemp("empty"))
    return seconds, kilobytes


@pytest.mark.parametrize("case", COSTLY)
def test_costly_input_is_refused_quickly_by_the_real_command(case, starting_cost):
    folder = CORPUS / case
    status, stderr, seconds, kilobytes = validate(folder)
    assert status == 2
    assert "Traceback" not in stderr
    assert stderr == (folder / "expected.txt").read_text(encoding="utf-8")
    # Processor time, not wall time, and beyond what starting the command costs (most of
    # it: about 1.5 s on a quiet machine), so that a busy machine does not fail the test.
    # The input itself adds a fraction of a second; unbounded, these took minutes.
    assert seconds - starting_cost[0] < 1.0
    assert kilobytes - starting_cost[1] < 100 * 1024
