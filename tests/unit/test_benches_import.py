"""The benchmarks are not run by the tests (they print figures and take minutes), but they
use the service's own modules: each must at least still import against them."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

BENCHES = sorted(p.stem for p in (Path(__file__).parents[2] / "bench").glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("name", BENCHES)
def test_a_benchmark_imports(name):
    importlib.import_module(f"bench.{name}")


def test_every_benchmark_is_found():
    assert {"daemon", "planner", "google_calls", "web", "replicas", "compare"} <= set(BENCHES)
