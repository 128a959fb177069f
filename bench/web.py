"""How fast the dashboard renders for a large cohort: the overview and the pairs table.

A generated cohort (bench/cohorts.py, --pairs pairs) runs on a simulated clock to the
middle of its program (sessions booked and moved, thousands of emails sent and planned),
then the pages are requested through the whole ASGI stack, signed in, as a browser would.
Prints the median and 95th percentile of each page's wall time against the target, and its
CPU time (the wall time swings with other work on a shared machine). Nothing is asserted.

    python bench/web.py [--pairs 1000] [--repeat 20]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter, process_time

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project root, for bench.cohorts

from starlette.testclient import TestClient

from bench.cohorts import CLOCK_START, write_cohort
from service import bootstrap
from service.adapters.clock import SimulatedClock
from service.adapters.store import open_store
from service.runner import run_simulated
from service.usecases import Deps
from service.web.app import create_app
from service.web.metrics import MeteredController, Metrics
from service.web.security import hash_password
from service.web.serve import make_site

TARGET_MS = 300.0
MIDDLE = datetime(2027, 3, 20, tzinfo=UTC)  # session 1 of most pairs has happened
PASSWORD = "benchmark password"


class NullMailer:
    """Takes every message and keeps nothing: the benchmark is about the pages."""

    verify_after = None

    @contextmanager
    def connect(self) -> Iterator[NullMailer]:
        yield self

    def ready(self) -> None:
        pass

    def send(self, message) -> None:
        pass

    def was_sent(self, message_id: str) -> bool | None:
        return None


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="keep the cohort and its state in this folder, and reuse them when there")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = args.keep or Path(scratch)
        reuse = (root / "state.sqlite").exists()
        if not reuse:
            write_cohort(
                root, args.pairs, args.seed, name="Web benchmark cohort", sections="http:\n  public_url: https://mentoring.example.org\n"
            )
        clock = SimulatedClock(CLOCK_START)
        store = open_store(root / "state.sqlite")
        if reuse:  # carry on from where the kept state stopped
            clock.advance_to(store.latest_activity() or CLOCK_START)
        watcher = bootstrap.ConfigWatcher.start(root / "cohort.yaml", None, clock)
        deps = Deps(store=store, mailer=NullMailer(), source=watcher)
        metrics = Metrics(store)
        controller = MeteredController(deps, metrics)
        given = watcher.current()[0]
        site = make_site(
            store,
            clock,
            lambda: controller.inputs or given,
            lambda: watcher.given,
            poll=watcher.configuration.poll,
            public_url=watcher.configuration.public_url,
            metrics=metrics,
            unplanned=lambda: controller.unplanned,
        )
        deps.links = site.links()
        began = perf_counter()
        run_simulated(controller, clock, MIDDLE)
        rows = store.messages()
        print(
            f"{args.pairs} pairs run to {clock.now():%Y-%m-%d} in {perf_counter() - began:.0f} s:"
            f" {len(store.sessions())} sessions, {len(rows)} emails in the state"
        )
        store.set_password_hash(hash_password(PASSWORD))
        with TestClient(create_app(site), base_url="https://mentoring.example.org") as client:
            page = client.get("/signin")
            token = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
            client.post("/signin", data={"csrf": token, "password": PASSWORD})
            first = given.cohort.pairs[0].id
            for label, path in (
                ("overview", "/"),
                ("pairs table", "/pairs"),
                ("pairs, searched", "/pairs?q=mentor1"),
                ("one pair", f"/pairs/{first}"),
                ("CSV export", "/export.csv"),
                ("metrics", "/metrics"),
            ):
                times, cpu = [], []
                for _ in range(args.repeat):
                    start, started = perf_counter(), process_time()
                    answer = client.get(path)
                    times.append((perf_counter() - start) * 1000)
                    cpu.append((process_time() - started) * 1000)
                    assert answer.status_code == 200, (path, answer.status_code)
                median, p95, busy = percentile(times, 0.5), percentile(times, 0.95), percentile(cpu, 0.5)
                verdict = "ok" if median < TARGET_MS else "OVER"
                print(
                    f"  {label:<16} median {median:6.0f} ms   p95 {p95:6.0f} ms   CPU {busy:6.0f} ms"
                    f"   ({len(answer.content) // 1024} KiB)   target {TARGET_MS:.0f} ms (median): {verdict}"
                )
        store.close()


if __name__ == "__main__":
    main()
