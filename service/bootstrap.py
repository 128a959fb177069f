"""Composition root: from command-line settings to the objects the use cases need."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import sqlite3
import subprocess
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, time, timedelta
from functools import partial
from pathlib import Path

import icalendar
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from . import collector
from .adapters.filemail import FileMailer
from .adapters.smtp import SmtpMailer, SmtpSettings
from .adapters.store import SqlStore, StateError, open_store
from .config import ConfigError, Configuration, Problem, load_configuration
from .config.busyfiles import busy_intervals
from .config.problems import display
from .domain.budget import Budget
from .domain.forked import Beside
from .domain.model import Cohort
from .domain.planning import Busy
from .domain.ports import Calendar, CalendarWatch, Clock, FreeBusy, Mailer, Meet, Purpose, Replies, Store
from .domain.push import notify_address
from .logs import event
from .mail.compose import check_templates
from .mail.templates import Templates
from .signals import abandonable
from .usecases import Inputs


@collector.paused()
def load(config: Path, pairings: Path | None = None) -> tuple[Configuration, Inputs]:
    """The configuration, everyone's known busy time and the email templates, all
    checked; ConfigError listing every problem otherwise."""
    started: list[tuple[Templates, Beside[_Checked]]] = []  # at most one, begun on the first pair read

    def check(sample: Cohort) -> None:
        # The templates need one pair to be rendered with: they are checked (and compiled)
        # beside, on another processor, while the other rows are read.
        templates = _templates(sample)
        started.append((templates, Beside(partial(_check_templates, sample, templates))))

    try:
        configuration = load_configuration(config, pairings, sampled=check)
        cohort = configuration.cohort
        problems: list[Problem] = []
        busy = read_busy_files(cohort, configuration.busy_calendars, problems)
        if started:
            templates, checking = started[0]
            found, compiled = checking.answer()
            templates.add_compiled(compiled)
            problems += found
        else:  # no pairs: nothing to render the templates with
            templates = _templates(cohort)
    finally:
        for _, checking in started:
            checking.close()
    if problems:
        raise ConfigError([*problems, *configuration.warnings])
    return configuration, Inputs(cohort=cohort, busy=busy, templates=templates)


_Checked = tuple[list[Problem], dict[str, bytes]]


def _check_templates(sample: Cohort, templates: Templates) -> _Checked:
    """The problems of the templates rendered for `sample`, and their compiled code."""
    found = [Problem(file=display(Path(p.file)), line=p.line, message=p.message) for p in check_templates(sample, templates)]
    return found, templates.compiled()


def _templates(cohort: Cohort) -> Templates:
    return Templates(cohort.emails.template_dir if cohort.emails else None)


def load_inputs(config: Path, pairings: Path | None = None) -> Inputs:
    return load(config, pairings)[1]


def read_busy_files(cohort: Cohort, calendars: Mapping[str, icalendar.Calendar], problems: list[Problem]) -> Busy:
    """Busy intervals from the .ics files people gave, keyed by email."""
    # A little beyond the program on both sides: local dates straddle UTC midnight.
    start = datetime.combine(cohort.start - timedelta(days=2), time(0), tzinfo=UTC)
    end = datetime.combine(cohort.end + timedelta(days=2), time(0), tzinfo=UTC)
    busy = {}
    for email, person in cohort.people.items():
        if person.busy_calendar:
            try:
                busy[email] = busy_intervals(calendars[person.busy_calendar], person, start, end)
            except ValueError as exc:
                problems.append(Problem(file=display(Path(person.busy_calendar)), line=0, message=str(exc)))
    return busy


def shown(state: str | Path) -> str:
    """The state as messages show it: a database URL without its password."""
    text = str(state)
    if "://" not in text:
        return text
    try:
        return make_url(text).render_as_string(hide_password=True)
    except ArgumentError:
        return text.rsplit("@", 1)[-1]


def default_state(config: Path, purpose: Purpose = Purpose.REAL) -> Path:
    """state/<cohort file name>.sqlite, and a file of its own for rehearsals."""
    suffix = ".rehearsal.sqlite" if purpose is Purpose.REHEARSAL else ".sqlite"
    return Path("state") / f"{config.stem}{suffix}"


class WrongPurpose(Exception):
    pass


def claim(store: Store, state: str | Path, purpose: Purpose) -> None:
    """Mark a new state with what it holds; refuse one that holds the other kind, so a
    rehearsal never consumes the real program's emails (nor the reverse)."""
    found = store.purpose()
    if found is None:
        store.set_purpose(purpose)
    elif found is not purpose and purpose is Purpose.REAL:
        raise WrongPurpose(
            f"{shown(state)} holds a rehearsal (run --simulate); the real program needs a state of its own: drop --state or give another"
        )
    elif found is not purpose:
        raise WrongPurpose(
            f"{shown(state)} holds the real program; a rehearsal on it would use up its emails: "
            f"drop --state (a rehearsal defaults to {Path('state') / '<cohort>.rehearsal.sqlite'}) or give another"
        )


def make_mailer(configuration: Configuration, default_outbox: Path, outbox: Path | None = None) -> Mailer:
    mail = configuration.mail
    if mail.transport == "smtp" and outbox is None:
        s = mail.smtp
        assert s is not None, "validation guarantees an smtp section for the smtp transport"
        return SmtpMailer(
            SmtpSettings(
                host=s.host,
                port=s.port,
                security=s.security,
                username_env=s.username_env,
                password_env=s.password_env,
                timeout=float(s.timeout_seconds),
            )
        )
    if outbox is None:
        outbox = configuration.folder / mail.folder if mail.folder else default_outbox
    return FileMailer(outbox)


def open_state(state: str | Path) -> SqlStore:
    """A SQLite file, or a database URL such as postgresql+psycopg://host/db."""
    return open_store(state)


def default_outbox(state: str | Path, purpose: Purpose) -> Path:
    """Where the file transport writes unless told: beside the state, apart for rehearsals."""
    folder = Path("state") if "://" in str(state) else Path(state).parent
    return folder / ("rehearsal-outbox" if purpose is Purpose.REHEARSAL else "outbox")


class AlreadyRunning(Exception):
    pass


class LostState(Exception):
    pass


def witness(state: str | Path, cohort: str) -> Path:
    """A file beside the state that says a cohort's real program has run: it outlives a
    state file deleted by mistake."""
    folder = Path("state") if "://" in str(state) else Path(state).resolve().parent
    name = re.sub(r"[^A-Za-z0-9]+", "-", cohort).strip("-").lower() or "cohort"
    return folder / f".{name}.has-run"


def guard_against_lost_state(store: Store, state: str | Path, cohort: str, *, fresh: bool, now: datetime) -> None:
    """An empty state for a cohort that has already run would send the whole program again:
    refuse it, unless told to start over. A first run leaves the witness."""
    if store.latest_activity() is not None:
        return
    mark = witness(state, cohort)
    if mark.exists() and not fresh:
        try:
            seen = json.loads(mark.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            seen = {}
        raise LostState(
            f"the cohort {cohort!r} has already run (first on {seen.get('first_run', '?')[:10]}, state at {seen.get('state', '?')}),"
            f" but the state at {shown(state)} is empty: restore it from a backup (mentorship backup), or pass --fresh to start the"
            " whole program again"
        )
    mark.parent.mkdir(parents=True, exist_ok=True)
    mark.write_text(json.dumps({"cohort": cohort, "state": shown(state), "first_run": now.isoformat()}), encoding="utf-8")


def open_locked_state(state: str | Path) -> tuple[SqlStore, Callable[[], None]]:
    """The store, locked for this process, and the function that releases both."""
    if "://" in str(state) and not str(state).startswith("sqlite:///"):
        store = open_store(state)
        if not store.try_lock():
            store.close()
            raise AlreadyRunning(f"another daemon is already working on {shown(state)}")
        return store, store.close
    path = Path(str(state).removeprefix("sqlite:///")).resolve()  # a symlink to the state locks the state itself
    descriptor = lock_state(path)
    store = open_store(path)

    def release() -> None:
        store.close()
        os.close(descriptor)

    return store, release


def lock_state(state: Path) -> int:
    """Hold an exclusive lock beside the state for the life of the process, so a second
    daemon on the same state refuses to start."""
    path = state.with_name(state.name + ".lock")
    try:
        state.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as error:
        raise StateError(f"the state's lock file cannot be made: {error.strerror or type(error).__name__}") from None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(descriptor, 32).decode(errors="replace").strip() or "another process"
        os.close(descriptor)
        raise AlreadyRunning(f"another daemon (pid {holder}) is already running on {state}") from None
    pid = str(os.getpid()).encode()
    try:  # written over the last one in place, so a full disk can still take it
        os.pwrite(descriptor, pid, 0)
        os.ftruncate(descriptor, len(pid))
    except OSError:  # it only tells a second daemon who holds the lock
        os.ftruncate(descriptor, 0)
    return descriptor


def backup(state: str | Path, target: Path) -> str:
    """A consistent copy of the state while the daemon runs: SQLite's online backup, or
    pg_dump for PostgreSQL. Returns what was done, in words."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if "://" in str(state):
        url = str(state).replace("postgresql+psycopg://", "postgresql://", 1)
        with open(target, "wb") as out:
            subprocess.run(["pg_dump", "--format=custom", url], stdout=out, check=True)
        return f"pg_dump of the state written to {target} (restore with pg_restore)"
    source = sqlite3.connect(f"file:{Path(state).resolve()}?mode=ro", uri=True)
    copy = sqlite3.connect(target)
    try:
        source.backup(copy)
    finally:
        copy.close()
        source.close()
    return f"a copy of {state} written to {target}"


class ConfigWatcher:
    """The configuration in force. Files are re-read when they change; an invalid edit
    is reported and ignored, and the last valid configuration stays in force."""

    def __init__(self, config: Path, pairings: Path | None, configuration: Configuration, inputs: Inputs, clock: Clock):
        self.config, self.pairings, self.clock = config, pairings, clock
        self.problems: list[str] = []
        self.configuration, self._inputs = configuration, inputs
        self._files = self._watched(configuration, inputs)
        self._seen = self._fingerprint()

    @classmethod
    def start(cls, config: Path, pairings: Path | None, clock: Clock) -> ConfigWatcher:
        """Watch from the configuration as it is now, which must be valid (ConfigError)."""
        configuration, inputs = load(config, pairings)
        _log_warnings(configuration, clock)
        return cls(config, pairings, configuration, inputs, clock)

    @property
    def given(self) -> Inputs:
        """The last valid configuration as the files say it, without looking at them again."""
        return self._inputs

    def current(self) -> tuple[Inputs, bool]:
        seen = self._fingerprint()
        if seen == self._seen:
            return self._inputs, False
        self._seen = seen
        try:
            with abandonable():  # a bad edit can be slow to read: a stop does not wait for it
                configuration, inputs = load(self.config, self.pairings)
        except ConfigError as error:
            self.problems = [str(p) for p in error.problems]
            event(
                self.clock.now(),
                "config_edit_ignored",
                f"configuration edit ignored ({len(self.problems)} problem(s)); the previous one stays in force",
                level=logging.WARNING,
                problems=len(self.problems),
            )
            return self._inputs, False
        self._inputs, self.configuration, self.problems = inputs, configuration, []
        self._files = self._watched(configuration, inputs)
        self._seen = self._fingerprint()
        event(self.clock.now(), "config_applied", "configuration edit applied")
        _log_warnings(configuration, self.clock)
        return inputs, True

    def _watched(self, configuration: Configuration, inputs: Inputs) -> list[Path]:
        cohort = inputs.cohort
        files = [self.config, configuration.pairings]
        files += [Path(p.busy_calendar) for p in cohort.people.values() if p.busy_calendar]
        if cohort.emails and cohort.emails.template_dir:
            files += sorted(p for p in Path(cohort.emails.template_dir).rglob("*") if p.is_file())
        return files

    def _fingerprint(self) -> tuple[tuple[str, int | None, int | None], ...]:
        marks: list[tuple[str, int | None, int | None]] = []
        for path in self._files:
            try:
                stat = path.stat()
                marks.append((str(path), stat.st_mtime_ns, stat.st_size))
            except OSError:
                marks.append((str(path), None, None))
        return tuple(marks)


def _log_warnings(configuration: Configuration, clock: Clock) -> None:
    """How some input was read (a column kept unused, a time zone spelling mapped): one
    event each, as `validate` prints them."""
    for problem in configuration.warnings:
        event(clock.now(), "config_warning", str(problem), level=logging.WARNING, file=problem.file, line=problem.line)


def make_replies(configuration: Configuration) -> Replies | None:
    """The organiser's mailbox, when answers to invitations by email are to be read."""
    imap = configuration.imap
    if imap is None or configuration.cohort.calendar != "imip":
        return None
    from .adapters.imap import ImapReplies, ImapSettings  # only then: imapclient loads on demand

    settings = ImapSettings(
        imap.host,
        imap.port,
        imap.security,
        username_env=imap.username_env,
        password_env=imap.password_env,
        folder=imap.folder,
        timeout=float(imap.timeout_seconds),
    )
    return ImapReplies(settings)


def send_budget(configuration: Configuration) -> Budget | None:
    """Gmail's daily limits, when mail goes through Gmail."""
    if configuration.mail.transport != "gmail":
        return None
    google = configuration.google
    return Budget(per_day=google.daily_send_limit, recipients_per_day=google.daily_recipient_limit)


class GoogleSetupError(Exception):
    pass


def calendar_watch(calendar: Calendar | None, public_url: str | None) -> tuple[CalendarWatch | None, str | None]:
    """Google's push channel on the calendar, and the address Google posts to: only a
    daemon serving the cohort's pages (`--http`) at a public HTTPS address, `public_url`,
    can be told. With a Google calendar and no such address, the address is None and a
    channel left open is stopped."""
    if calendar is None:
        return None, None
    from .adapters.google.calendar import GoogleCalendar

    if not isinstance(calendar, GoogleCalendar):
        return None, None
    return calendar, notify_address(public_url)


def google_adapters(configuration: Configuration) -> tuple[Calendar | None, FreeBusy | None, Mailer | None]:
    """(calendar, free/busy, mailer) for what the cohort asks of Google; Nones otherwise.
    Credentials are read here, when the daemon starts."""
    cohort, google = configuration.cohort, configuration.google
    use_calendar = cohort.calendar == "google"
    use_gmail = configuration.mail.transport == "gmail"
    use_free_busy = use_calendar and google.free_busy
    if not (use_calendar or use_gmail):
        return None, None, None
    # Only now: Google's libraries cost some 20 MB and 0.2 s to load.
    from .adapters.google import api, auth
    from .adapters.google.calendar import CREATE, GoogleCalendar, NewCalendar
    from .adapters.google.freebusy import GoogleFreeBusy
    from .adapters.google.gmail import GmailMailer
    from .domain.calendar import cohort_tag

    path = auth.key_file(configuration.folder / google.credentials if google.credentials else None)
    if path is None:
        raise GoogleSetupError(
            "Google is configured but no credentials were given: set google.credentials or GOOGLE_APPLICATION_CREDENTIALS"
        )
    own_calendar = configuration.calendar_id == CREATE
    scopes = auth.scopes(
        calendar=use_calendar, free_busy=use_free_busy, gmail=use_gmail, read_sent=google.read_sent_mail, own_calendar=own_calendar
    )
    try:
        credentials = auth.load_credentials(
            path, scopes=scopes, subject=google.organizer or cohort.coordinator.email, endpoint=api.endpoint()
        )
    except ValueError as error:
        raise GoogleSetupError(f"google.credentials: {error}") from None
    calendar: Calendar | None = None
    free_busy: FreeBusy | None = None
    mailer: Mailer | None = None
    if use_calendar:
        organizer = (google.organizer or cohort.coordinator.email).lower()
        coordinator = cohort.coordinator.email.lower()
        new = NewCalendar(f"Mentorship: {cohort.name}", cohort.timezone, None if coordinator == organizer else coordinator)
        calendar = GoogleCalendar(
            lambda: api.build("calendar", "v3", credentials),
            calendar_id=configuration.calendar_id,
            cohort_tag=cohort_tag(cohort.name),
            new=new if own_calendar else None,
        )
    if use_free_busy:
        free_busy = GoogleFreeBusy(lambda: api.build("calendar", "v3", credentials))
    if use_gmail:
        from .mail.compose import sender_of

        mailer = GmailMailer(
            lambda: api.build("gmail", "v1", credentials),
            can_read_sent=google.read_sent_mail,
            credentials=credentials,
            sender=sender_of(cohort).email,
        )
    return calendar, free_busy, mailer


def meet_adapter(configuration: Configuration) -> Meet | None:
    """Google Meet, where sessions are Google Calendar events (which carry Meet links) and
    the cohort wants their rooms set up or their attendance read; None otherwise."""
    cohort, google, meet = configuration.cohort, configuration.google, configuration.meet
    if cohort.calendar != "google" or not (meet.attendance or meet.trusted_access):
        return None
    from .adapters.google import api, auth
    from .adapters.google.meet import GoogleMeet

    path = auth.key_file(configuration.folder / google.credentials if google.credentials else None)
    if path is None:
        raise GoogleSetupError(
            "Google is configured but no credentials were given: set google.credentials or GOOGLE_APPLICATION_CREDENTIALS"
        )
    try:
        credentials = auth.load_credentials(
            path,
            scopes=auth.meet_scopes(settings=meet.trusted_access, directory=meet.directory and meet.attendance),
            subject=google.organizer or cohort.coordinator.email,
            endpoint=api.endpoint(),
        )
    except ValueError as error:
        raise GoogleSetupError(f"google.credentials: {error}") from None
    return GoogleMeet(
        lambda: api.build("meet", "v2", credentials),
        trusted_access=meet.trusted_access,
        recording=meet.recording,
        transcription=meet.transcription,
        people=(lambda: api.build("people", "v1", credentials)) if meet.directory and meet.attendance else None,
    )
