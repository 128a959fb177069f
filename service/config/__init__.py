"""From the coordinator's files to a validated Cohort, or every problem at once."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import icalendar

from ..domain.model import ChangeLimits, Cohort, Contact, EmailSettings, MeetRules, Pair, SessionRules, Stretch, Timing, WorkingPattern
from ..domain.stages import DEFAULT_TIMINGS, Kind
from . import files
from .cohortfile import CohortFile, Google, Imap, Mail, Meet, WorkingHours, parse_cohort_file
from .limits import MAX_COHORT_BYTES, MAX_CREDENTIALS_BYTES, WINDOW_MARGIN_DAYS
from .pairings import Defaults, load_pairs, size_limit
from .problems import ConfigError, Problem, ProblemList, TooManyProblems, display, errors, in_order, quote
from .publicholidays import HolidayRules
from .yamlfile import load_yaml

__all__ = ["ConfigError", "Configuration", "Problem", "load_cohort", "load_configuration"]


@dataclass(frozen=True)
class Configuration:
    """The cohort, and how this installation delivers mail and watches for edits."""

    cohort: Cohort
    mail: Mail
    google: Google
    calendar_id: str
    poll: timedelta
    folder: Path  # the cohort file's folder: relative paths start here
    pairings: Path  # the pairings file in use
    busy_calendars: Mapping[str, icalendar.Calendar]  # the .ics files people gave, by path, read once
    imap: Imap | None = None  # the organiser's mailbox, for answers to invitations by email
    # How some input was read (an unused column kept, a time zone spelling mapped, who got
    # the default zone): for the coordinator to check; none of them stops anything.
    warnings: tuple[Problem, ...] = ()
    public_url: str | None = None  # where the web pages are reached (http.public_url)
    meet: Meet = Meet()  # Google Meet rooms' settings and attendance


def load_cohort(config: Path, pairings: Path | None = None) -> Cohort:
    return load_configuration(config, pairings).cohort


def load_configuration(config: Path, pairings: Path | None = None, *, sampled: Callable[[Cohort], None] | None = None) -> Configuration:
    """Read and check the cohort file and its pairings; raise ConfigError listing every
    problem found. `pairings` overrides the path given in the cohort file. `sampled` is
    given the cohort with its first pair only, as soon as that pair is read, so that what
    needs only a sample can start on it while the other rows are read."""
    problems = ProblemList()
    calendars: dict[str, icalendar.Calendar] = {}
    try:
        settings, pairings, pairs = _check(config, pairings, problems, calendars, sampled)
    except TooManyProblems as exc:
        raise ConfigError(problems.stopped(exc.file)) from None
    if errors(problems) or settings is None or pairings is None:
        raise ConfigError(problems)
    return Configuration(
        cohort=_cohort(settings, pairs, config.parent),
        mail=settings.mail,
        google=settings.google,
        calendar_id=settings.calendar.calendar_id,
        poll=timedelta(minutes=settings.daemon.poll_minutes),
        folder=config.parent,
        pairings=pairings,
        busy_calendars=calendars,
        imap=settings.imap,
        meet=settings.meet,
        public_url=settings.http.public_url,
        warnings=tuple(in_order(problems)),
    )


def _check(
    config: Path,
    pairings: Path | None,
    problems: list[Problem],
    calendars: dict[str, icalendar.Calendar],
    sampled: Callable[[Cohort], None] | None = None,
) -> tuple[CohortFile | None, Path | None, list[Pair]]:
    """The cohort file's settings, the pairings file in use and its pairs, each None (or
    empty) where they cannot be read; every problem found goes into `problems`."""
    pairs: list[Pair] = []
    doc = load_yaml(config, problems, MAX_COHORT_BYTES)
    settings = parse_cohort_file(doc, problems) if doc else None
    if pairings is None:
        named = settings.pairings if settings else doc and isinstance(doc.data, dict) and doc.data.get("pairings")
        if doc is not None and isinstance(named, str) and named.strip():
            pairings = config.parent / named.strip()
            try:
                files.check(pairings, size_limit(pairings))
            except files.Missing:
                message = f"pairings file {quote(named.strip())} not found (looked for {display(pairings)})"
            except files.Unusable as exc:
                message = f"pairings file {quote(named.strip())} {exc}"
            else:
                message = ""
            if message:
                problems.append(Problem(file=doc.file, line=doc.line_of(("pairings",)), message=message))
                pairings = None
    if pairings is not None:
        # Even when the cohort file is broken, report the pairings' own problems too.
        pattern = (
            WorkingPattern(
                timezone=settings.working_hours.timezone or settings.program.timezone,
                hours=settings.working_hours.hours,
                days=settings.working_hours.days,
            )
            if settings
            else WorkingHoursFallback
        )
        margin = timedelta(days=WINDOW_MARGIN_DAYS)
        window = (settings.program.start - margin, settings.program.end + margin) if settings else None
        enabled = settings is not None and settings.holidays.enabled
        holidays = HolidayRules(window=window, work_on=frozenset(settings.holidays.work_on)) if enabled and window and settings else None
        first = _sampling(sampled, settings, config.parent) if sampled and settings and not errors(problems) else None
        pairs = load_pairs(pairings, Defaults(availability=pattern, window=window, holidays=holidays), problems, calendars, first=first)
    if doc and settings and settings.google.credentials:
        try:
            files.check(config.parent / settings.google.credentials, MAX_CREDENTIALS_BYTES)
        except files.Unusable as exc:
            problems.append(
                Problem(
                    file=doc.file,
                    line=doc.line_of(("google", "credentials")),
                    message=f"google.credentials {quote(settings.google.credentials)} "
                    + ("is not a file" if isinstance(exc, files.Missing) else str(exc)),
                )
            )
    if doc and settings and settings.emails.templates and not (config.parent / settings.emails.templates).is_dir():
        problems.append(
            Problem(
                file=doc.file,
                line=doc.line_of(("emails", "templates")),
                message=f"emails.templates {quote(settings.emails.templates)} is not a folder",
            )
        )
    if settings is not None and pairings is None and not errors(problems):
        problems.append(Problem(file=display(config), line=1, message="no pairings file: name one in the cohort file or give --pairings"))
    return settings, pairings, pairs


def _sampling(sampled: Callable[[Cohort], None], settings: CohortFile, folder: Path) -> Callable[[Pair], None]:
    """What gives `sampled` the cohort with its first pair only."""
    return lambda pair: sampled(_cohort(settings, [pair], folder))


# Defaults that let the pairings be checked while the cohort file itself is broken.
WorkingHoursFallback = WorkingPattern(timezone="UTC", hours=WorkingHours().hours, days=WorkingHours().days)


def _cohort(settings: CohortFile, pairs, folder: Path) -> Cohort:
    s = settings.sessions
    emails = settings.emails
    google = settings.calendar.backend == "google"
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
        emails=EmailSettings(
            timings=tuple(
                (stage, Timing(anchor=t.anchor, offset=t.offset) if (t := emails.schedule.get(stage)) else default)
                for stage, default in DEFAULT_TIMINGS.items()
                # Google Calendar sends its own invitations.
                if not (google and stage.info.kind is Kind.INVITATION)
            ),
            sender=Contact(name=emails.sender.name, email=emails.sender.email) if emails.sender else None,
            template_dir=str(folder / emails.templates) if emails.templates else None,
        ),
        video_link=s.video_link,
        calendar=settings.calendar.backend,
        rebook_deleted=settings.calendar.rebook_deleted,
        hold_above=ChangeLimits(pairs=settings.daemon.hold_above_pairs, share=settings.daemon.hold_above_percent / 100),
        stretch=Stretch(minutes=settings.working_hours.stretch_minutes, declared=settings.working_hours.stretch_declared),
        meet=MeetRules(min_overlap=timedelta(minutes=settings.meet.min_overlap_minutes), attendance=settings.meet.attendance),
        pairs=tuple(pairs),
    )
