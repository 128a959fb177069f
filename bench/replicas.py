"""Emails per second with 1, 2 and 3 replicas sharing six cohorts on one PostgreSQL.

Six cohorts (the crash test's generator: --pairs pairs each, 18 emails a pair) in one
folder; for each replica count a fresh database, then that many `run --cohorts DIR
--simulate` processes on the file transport, started together. The figure is the whole
program's emails divided by the wall time from the start of the first process to the
moment every cohort's lease is marked finished (so start-up, loading, booking and the
take-over waits are all in it), beside the processor time the replicas used in all
(getrusage of the children). On a machine with two cores the point is that the rate
holds with more replicas, not that it grows: each replica is a Python process bound by
its processor, and the cores are shared.

    .venv/bin/python -m bench.replicas [--pairs 20] [--replicas 1 2 3] [--lease 10s]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.contract.test_store import postgres_database
from tests.e2e.test_crash import NOW
from tests.e2e.test_replicas import leases, write_cohorts

COHORTS = 6


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(folder: Path, replicas: int, lease: str, out: Path) -> tuple[float, float, int]:
    """(wall seconds, processor seconds, emails) for one replica count."""
    with postgres_database() as url:
        command = [sys.executable, "-m", "service", "run", "--cohorts", str(folder), "--simulate", "--now", NOW]
        command += ["--state", url, "--lease", lease]
        cpu, began = children_cpu(), time.monotonic()
        processes = [
            subprocess.Popen(command + ["--outbox", str(out / f"r{replicas}")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(replicas)
        ]
        try:
            while True:
                rows = leases(url)
                if len(rows) == COHORTS and all(done for _, _, done in rows):
                    break
                if all(process.poll() is not None for process in processes):
                    raise SystemExit(f"the replicas stopped before every cohort finished: {rows}")
                time.sleep(0.2)
            wall = time.monotonic() - began
            for process in processes:
                process.wait(timeout=60)
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        emails = sum(1 for _ in (out / f"r{replicas}").rglob("*.eml"))
        return wall, children_cpu() - cpu, emails


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20, help="pairs per cohort")
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--lease", default="10s")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        write_cohorts(root / "cohorts", COHORTS, args.pairs)
        print(f"{COHORTS} cohorts x {args.pairs} pairs, {COHORTS * args.pairs * 18} emails, lease {args.lease}")
        print(f"{'replicas':>8} {'wall s':>8} {'cpu s':>8} {'emails':>7} {'emails/s':>9} {'cpu ms/email':>13}")
        for count in args.replicas:
            wall, cpu, emails = measure(root / "cohorts", count, args.lease, root / "out")
            print(f"{count:>8} {wall:>8.1f} {cpu:>8.1f} {emails:>7} {emails / wall:>9.1f} {1000 * cpu / max(emails, 1):>13.1f}", flush=True)


if __name__ == "__main__":
    main()
