"""Composition root: from command-line settings to the objects the use cases need."""

from __future__ import annotations

from pathlib import Path

from .adapters import icsfile
from .config import load_cohort
from .domain.model import Cohort
from .domain.planning import Busy


def load_inputs(config: Path, pairings: Path | None = None) -> tuple[Cohort, Busy]:
    """The cohort and everyone's known busy time; ConfigError if anything is wrong."""
    cohort = load_cohort(config, pairings)
    return cohort, icsfile.read_busy(cohort)
