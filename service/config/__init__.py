"""From the coordinator's files to a validated Cohort, or every problem at once."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from ..domain.model import Cohort, Contact, SessionRules, WorkingPattern
from .cohortfile import CohortFile, parse_cohort_file
from .pairings import Defaults, load_pairs
from .problems import ConfigError, Problem
from .yamlfile import load_yaml

__all__ = ["ConfigError", "Problem", "load_cohort"]


def load_cohort(config: Path, pairings: Path | None = None) -> Cohort:
    """Read and check the cohort file and its pairings; raise ConfigError listing every
    problem found. `pairings` overrides the path given in the cohort file."""
    problems: list[Problem] = []
    doc = load_yaml(config, problems)
    settings = parse_cohort_file(doc, problems) if doc else None
    if settings is None:
        raise ConfigError(problems)
    if pairings is None:
        pairings = config.parent / settings.pairings
    pattern = WorkingPattern(
        timezone=settings.working_hours.timezone or settings.program.timezone,
        hours=settings.working_hours.hours,
        days=settings.working_hours.days,
    )
    pairs = load_pairs(pairings, Defaults(availability=pattern), problems)
    if problems:
        raise ConfigError(problems)
    return _cohort(settings, pairs)


def _cohort(settings: CohortFile, pairs) -> Cohort:
    s = settings.sessions
    return Cohort(
        name=settings.name,
        coordinator=Contact(name=settings.coordinator.name, email=settings.coordinator.email),
        start=settings.program.start,
        end=settings.program.end,
        timezone=settings.program.timezone,
        rules=SessionRules(
            length=timedelta(minutes=s.length_minutes),
            first_within=timedelta(weeks=s.first_within_weeks),
            min_gap=timedelta(weeks=s.min_weeks_between),
            buffer=timedelta(minutes=s.buffer_minutes),
            step=timedelta(minutes=s.step_minutes),
        ),
        pairs=tuple(pairs),
    )
