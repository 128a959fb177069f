"""Composition root: from command-line settings to the objects the use cases need."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

from .adapters import icsfile
from .config import ConfigError, Problem, load_cohort
from .config.problems import display
from .domain.model import Cohort
from .domain.planning import Busy
from .mail.compose import check_templates
from .mail.templates import Templates


@dataclass(frozen=True)
class Inputs:
    cohort: Cohort
    busy: Busy
    templates: Templates


def load_inputs(config: Path, pairings: Path | None = None) -> Inputs:
    """The cohort, everyone's known busy time and the email templates, all checked;
    ConfigError listing every problem otherwise."""
    cohort = load_cohort(config, pairings)
    problems: list[Problem] = []
    busy = read_busy_files(cohort, problems)
    templates = Templates(cohort.emails.template_dir if cohort.emails else None)
    for problem in check_templates(cohort, templates):
        problems.append(Problem(file=display(Path(problem.file)), line=problem.line, message=problem.message))
    if problems:
        raise ConfigError(problems)
    return Inputs(cohort=cohort, busy=busy, templates=templates)


def read_busy_files(cohort: Cohort, problems: list[Problem]) -> Busy:
    """Busy intervals from the .ics files people gave, keyed by email."""
    # A little beyond the program on both sides: local dates straddle UTC midnight.
    start = datetime.combine(cohort.start - timedelta(days=2), time(0), tzinfo=UTC)
    end = datetime.combine(cohort.end + timedelta(days=2), time(0), tzinfo=UTC)
    busy = {}
    for email, person in cohort.people.items():
        if person.busy_calendar:
            path = Path(person.busy_calendar)
            try:
                busy[email] = icsfile.busy_intervals(path, person, start, end)
            except ValueError as exc:
                problems.append(Problem(file=display(path), line=0, message=str(exc)))
    return busy
