"""The first tick of two revisions side by side, in one run, on one generated cohort.

Each revision is checked out into a temporary git worktree and run as a coordinator runs
it: `python -m service run --simulate` on the cohort of bench/cohorts.py, from the
simulated moment a month before the program to one second later, so that the process
loads and validates the files, plans and books every pair, plans every email and stops.
The revisions take turns round after round (the machine's speed drifts, so neither gets
the quiet minutes), each on a fresh state, and the medians are printed with the process's
CPU time. The first tick is timed from the interpreter's start (imports, loading the files
and the tick itself) to the end of the first Controller.tick, leaving out what the command
prints afterwards; bench/daemon.py times the parts of a tick from inside instead.

    python bench/compare.py [--base REV] [--head REV] [--pairs 10000] [--rounds 3]
                            [--store sqlite|postgresql] [--postgres URL] [--until MOMENT]

With --until the rehearsal goes on to that simulated moment, and the messages sent after
the first tick over the time the later ticks took give the send rate of each revision.

Both revisions run in this project's virtual environment, so a base older than a
dependency the head added still runs as long as it needs nothing the environment lacks.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from time import perf_counter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project root, for bench.*

from bench.cohorts import CLOCK_START, write_cohort
from bench.daemon import POSTGRES, new_state

ROOT = Path(__file__).resolve().parents[1]
# The baseline: the service as it stood before the engineering base was rebuilt.
BASE = "821a5fb"


@contextlib.contextmanager
def worktree(revision: str, folder: Path) -> Iterator[Path]:
    """`revision` checked out into `folder`, removed afterwards."""
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "--force", str(folder), revision], check=True, capture_output=True
    )
    try:
        yield folder
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(folder)], check=False, capture_output=True)


# Runs the command line as `python -m service` does, timing the end of the first
# Controller.tick from the start (so the imports, loading the files and the tick, but not
# what the command prints afterwards). The class moved between revisions.
DRIVER = """
import atexit, importlib, importlib.util, os, runpy, sys, time
began = time.perf_counter()
# This tree's templates, not those the environment installed as service._templates.
templates = os.path.join(os.getcwd(), "templates")
if os.path.exists(os.path.join(templates, "__init__.py")):
    spec = importlib.util.spec_from_file_location(
        "service._templates", os.path.join(templates, "__init__.py"), submodule_search_locations=[templates]
    )
    sys.modules["service._templates"] = importlib.util.module_from_spec(spec)
for name in ("service.usecases.tick", "service.jobs"):
    try:
        module = importlib.import_module(name)
    except ImportError:
        continue
    if hasattr(module, "Controller"):
        break
original, ended = module.Controller.tick, []
def tick(self, now):
    try:
        return original(self, now)
    finally:
        ended.append(time.perf_counter())
module.Controller.tick = tick
atexit.register(lambda: print(f"ticks ended {ended[0] - began:.3f} {ended[-1] - began:.3f}", file=sys.stderr))
sys.argv[0] = "mentorship"
runpy.run_module("service", run_name="__main__")
"""


@dataclass(frozen=True)
class Run:
    tick: float  # from the start to the end of the first tick
    sending: float  # from the end of the first tick to the end of the last
    sent: int
    wall: float  # the whole command
    cpu: float
    messages: str


def rehearse(tree: Path, config: Path, state: Path | str, outbox: Path, until: datetime) -> Run:
    """One rehearsal up to `until`, timed."""
    command = [sys.executable, "-c", DRIVER, "run", "--config", str(config), "--simulate"]
    command += ["--now", CLOCK_START.isoformat(), "--until", until.isoformat(), "--state", str(state), "--outbox", str(outbox)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = perf_counter()
    done = subprocess.run(command, cwd=tree, capture_output=True, text=True, check=False)
    wall = perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{tree.name}: exit {done.returncode}\n{done.stderr[-2000:]}")
    counted = re.search(r"^messages: (.*)$", done.stdout, re.MULTILINE)
    ticks = re.search(r"^ticks ended ([0-9.]+) ([0-9.]+)$", done.stderr, re.MULTILINE)
    sent = re.search(r"(\d+) sent", counted.group(1)) if counted else None
    first, last = (float(ticks.group(1)), float(ticks.group(2))) if ticks else (float("nan"), float("nan"))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Run(first, last - first, int(sent.group(1)) if sent else 0, wall, cpu, counted.group(1) if counted else "?")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default=BASE, help=f"the revision before (default {BASE}, the issue's baseline)")
    parser.add_argument("--head", default="HEAD", help="the revision after (default HEAD)")
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=2027)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--postgres", default=POSTGRES, help="with --store postgresql: the server (a new database per run)")
    parser.add_argument(
        "--until",
        type=datetime.fromisoformat,
        help="rehearse on to this simulated moment (UTC) and print the send rate after the first tick,"
        " e.g. 2027-02-22T12:00 for the welcome and invitation burst; by default only the first tick",
    )
    args = parser.parse_args()
    until = (args.until.replace(tzinfo=args.until.tzinfo or UTC)) if args.until else CLOCK_START + timedelta(seconds=1)

    temporary = Path(tempfile.mkdtemp(prefix="bench-compare-"))
    try:
        cohort = write_cohort(temporary / "cohort", args.pairs, args.seed, name=f"Benchmark {args.pairs} pairs")
        revisions = {"before": args.base, "after": args.head}
        with worktree(args.base, temporary / "before") as before, worktree(args.head, temporary / "after") as after:
            trees = {"before": before, "after": after}
            for name, tree in trees.items():
                commit = subprocess.run(["git", "-C", str(tree), "log", "-1", "--format=%h %s"], capture_output=True, text=True).stdout
                print(f"{name}: {commit.strip()[:100]}")
            print(f"{args.pairs} pairs, state in {args.store}, {args.rounds} rounds, the revisions taking turns\n", flush=True)
            runs: dict[str, list[Run]] = {name: [] for name in trees}
            for round_ in range(args.rounds):
                order = list(trees) if round_ % 2 == 0 else list(reversed(trees))
                for name in order:
                    with new_state(args, temporary, f"{name}-{round_}") as state:
                        run = rehearse(trees[name], cohort.config, state, temporary / f"outbox-{name}-{round_}", until)
                    runs[name].append(run)
                    rate = f"{run.sent / run.sending:6.1f} msg/s after it; " if args.until else ""
                    print(
                        f"round {round_ + 1} {name:6} first tick ended at {run.tick:6.2f} s; {rate}command {run.wall:6.2f} s wall,"
                        f" {run.cpu:6.2f} s CPU; messages: {run.messages}",
                        flush=True,
                    )
        print("\nmedians (the first tick: from the interpreter's start, imports included, to the end of the first tick)")
        ticks = {name: statistics.median(run.tick for run in done) for name, done in runs.items()}
        for name, done in runs.items():
            wall, cpu = statistics.median(run.wall for run in done), statistics.median(run.cpu for run in done)
            print(f"{name:6} {revisions[name]:>8}: first tick {ticks[name]:6.2f} s; whole command {wall:6.2f} s wall, {cpu:6.2f} s CPU")
        print(f"first tick, after / before: {ticks['after'] / ticks['before']:.2f}")
        if args.until:
            rates = {name: statistics.median(run.sent / run.sending for run in done) for name, done in runs.items()}
            print(
                f"send rate (file transport, after the first tick): before {rates['before']:.1f} msg/s, after {rates['after']:.1f} msg/s,"
            )
            print(f"after / before: {rates['after'] / rates['before']:.2f}")
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


if __name__ == "__main__":
    main()
