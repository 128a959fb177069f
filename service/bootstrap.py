"""Composition root: from command-line settings to the objects the use cases need."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path

from .adapters import icsfile
from .config import ConfigError, Problem, load_cohort
from .config.problems import display
from .domain.model import Cohort
from .domain.planning import Busy


def load_inputs(config: Path, pairings: Path | None = None) -> tuple[Cohort, Busy]:
    """The cohort and everyone's known busy time; ConfigError if anything is wrong."""
    cohort = load_cohort(config, pairings)
    return cohort, read_busy_files(cohort)


def read_busy_files(cohort: Cohort) -> Busy:
    """Busy intervals from the .ics files people gave, keyed by email."""
    # A little beyond the program on both sides: local dates straddle UTC midnight.
    start = datetime.combine(cohort.start - timedelta(days=2), time(0), tzinfo=UTC)
    end = datetime.combine(cohort.end + timedelta(days=2), time(0), tzinfo=UTC)
    busy, problems = {}, []
    for email, person in cohort.people.items():
        if person.busy_calendar:
            path = Path(person.busy_calendar)
            try:
                busy[email] = icsfile.busy_intervals(path, person, start, end)
            except ValueError as exc:
                problems.append(Problem(file=display(path), line=0, message=str(exc)))
    if problems:
        raise ConfigError(problems)
    return busy
