"""The cohort file's schema, with every default in one place."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from difflib import get_close_matches
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator, ValidationError
from pydantic_core import ErrorDetails

from ..domain.model import Anchor, TimeRange
from ..domain.stages import DEFAULT_TIMINGS
from . import fields
from .limits import EARLIEST_PROGRAM_DATE, LATEST_PROGRAM_DATE, MAX_PROGRAM_DAYS
from .problems import Problem, quote
from .yamlfile import YamlDocument


def _text(parse: Callable[[str], Any]) -> PlainValidator:
    def check(value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError(f"must be text, got {quote(value)}")
        return parse(value)

    return PlainValidator(check)


def _date(value: Any) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError(f"{quote(value)} is not a date like 2027-03-01")


Name = Annotated[str, _text(fields.name)]
Email = Annotated[str, _text(fields.email)]
TimeZone = Annotated[str, _text(fields.timezone)]
Hours = Annotated[tuple[TimeRange, ...], _text(fields.hours)]
Days = Annotated[frozenset[int], _text(fields.days)]
Day = Annotated[date, PlainValidator(_date)]
Path = Annotated[str, _text(lambda v: v.strip() or _raise("is empty"))]
Link = Annotated[str, _text(fields.url)]
Offset = Annotated[timedelta, _text(fields.offset)]


def _raise(message: str):
    raise ValueError(message)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Coordinator(_Section):
    name: Name
    email: Email


class Program(_Section):
    start: Day
    end: Day
    timezone: TimeZone = "UTC"  # program dates begin and end at midnight here


class Sessions(_Section):
    length_minutes: int = Field(60, strict=True, ge=15, le=240)
    first_within_weeks: int = Field(3, strict=True, ge=1, le=52)
    min_weeks_between: int = Field(3, strict=True, ge=0, le=52)
    buffer_minutes: int = Field(15, strict=True, ge=0, le=240)
    step_minutes: int = Field(30, strict=True, ge=5, le=120)
    video_link: Link | None = None  # the cohort's meeting room; a mentor's own link wins


class WorkingHours(_Section):
    """Defaults for anyone whose pairing row leaves these blank."""

    hours: Hours = (TimeRange(start=time(9), end=time(17)),)
    days: Days = frozenset(range(5))
    timezone: TimeZone | None = None  # None: the program's time zone
    # A pair whose hours never meet may be booked up to this many minutes before the start
    # or after the end of a person's day (never before 06:00 or after 22:00 their time).
    stretch_minutes: int = Field(180, strict=True, ge=0, le=360)
    stretch_declared: bool = Field(False, strict=True)  # also stretch hours given in the pairings


class Holidays(_Section):
    """Public holidays: no session on one of either person's (see publicholidays.py)."""

    enabled: bool = True
    work_on: tuple[Day, ...] = ()  # holidays on which sessions may be booked all the same


def _holidays(value: Any) -> Any:
    """`holidays: false` is short for `holidays: {enabled: false}`."""
    return {"enabled": value} if isinstance(value, bool) else value


class Sender(_Section):
    name: Name
    email: Email


class StageTiming(_Section):
    anchor: Anchor
    offset: Offset = timedelta(0)


class Emails(_Section):
    sender: Sender | None = None  # None: the coordinator
    templates: Path | None = None  # a folder whose files override the default templates
    schedule: dict[str, StageTiming] = {}  # per stage; the rest keep their default times


class Smtp(_Section):
    host: Annotated[str, _text(lambda v: v.strip() or _raise("is empty"))]
    port: int = Field(587, strict=True, ge=1, le=65535)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username_env: str | None = None  # names of environment variables holding the login
    password_env: str | None = None
    timeout_seconds: int = Field(30, strict=True, ge=1, le=600)


class Mail(_Section):
    transport: Literal["file", "smtp", "gmail"] = "file"
    folder: Path | None = None  # file transport; default: "outbox" beside the state file
    smtp: Smtp | None = None


class Imap(_Section):
    """The organiser's mailbox, read for answers to invitations sent by email."""

    host: Annotated[str, _text(lambda v: v.strip() or _raise("is empty"))]
    port: int = Field(993, strict=True, ge=1, le=65535)
    security: Literal["ssl", "starttls", "none"] = "ssl"
    username_env: str  # names of environment variables holding the login, never the login
    password_env: str
    folder: str = "INBOX"
    timeout_seconds: int = Field(30, strict=True, ge=1, le=600)


class Calendar(_Section):
    backend: Literal["imip", "google"] = "imip"  # imip: invitations by email
    # google: "create" makes the cohort a calendar of its own (shared with the coordinator);
    # "primary" is the organiser's own calendar; anything else, an existing calendar's id.
    calendar_id: str = "create"
    rebook_deleted: bool = False  # google: book a session again if its event is deleted


class Google(_Section):
    credentials: Path | None = None  # key or token file; default: GOOGLE_APPLICATION_CREDENTIALS
    organizer: Email | None = None  # whom a service account acts as; default: the coordinator
    read_sent_mail: bool = False  # adds gmail.readonly to check sends cut off by a crash
    free_busy: bool = True  # read people's busy time where the organiser may
    # Gmail sends about 2,000 messages a day per Workspace user (500 on a trial account) to
    # about 3,000 distinct outside recipients; the coordinator's own mail counts too.
    daily_send_limit: int = Field(1800, strict=True, ge=1, le=10000)
    daily_recipient_limit: int = Field(2500, strict=True, ge=1, le=10000)


class Meet(_Section):
    """Google Meet rooms (with calendar.backend google) and attendance read from them."""

    trusted_access: bool = True  # invited guests from outside the organisation join without knocking
    recording: bool = False  # rooms record every meeting by themselves (with trusted_access)
    transcription: bool = False  # likewise for transcripts
    attendance: bool = True  # read who came, an hour after each session
    min_overlap_minutes: int = Field(20, strict=True, ge=1, le=240)  # both there this long: held
    directory: bool = False  # look signed-in participants up in the organisation's directory (People API)


class Daemon(_Section):
    poll_minutes: int = Field(5, strict=True, ge=1, le=1440)  # how often to look for edits
    # An edit that cancels more pairs than this, or than this share of them, waits for `approve`.
    hold_above_pairs: int = Field(3, strict=True, ge=0)
    hold_above_percent: int = Field(10, strict=True, ge=0, le=100)


class Http(_Section):
    """The web pages the daemon serves (`run --http`)."""

    public_url: Link | None = None  # how people reach them; links in emails start here


class CohortFile(_Section):
    name: Name
    coordinator: Coordinator
    program: Program
    pairings: Path
    sessions: Sessions = Sessions()
    working_hours: WorkingHours = WorkingHours()
    holidays: Annotated[Holidays, BeforeValidator(_holidays)] = Holidays()
    emails: Emails = Emails()
    mail: Mail = Mail()
    imap: Imap | None = None  # with invitations by email: where the answers arrive
    calendar: Calendar = Calendar()
    google: Google = Google()
    meet: Meet = Meet()
    daemon: Daemon = Daemon()
    http: Http = Http()


def parse_cohort_file(doc: YamlDocument, problems: list[Problem]) -> CohortFile | None:
    if not isinstance(doc.data, dict):
        problems.append(
            Problem(file=doc.file, line=1, message="expected settings such as 'name:' and 'program:', not a list or a single value")
        )
        return None
    try:
        settings = CohortFile.model_validate(doc.data)
    except ValidationError as exc:
        for error in exc.errors():
            problems.append(_problem(doc, error))
        return None
    start, end = settings.program.start, settings.program.end
    if not _program_dates_are_sensible(doc, start, end, problems):
        return None
    if end < start:
        problems.append(
            Problem(file=doc.file, line=doc.line_of(("program", "end")), message=f"program.end {end} is before program.start {start}")
        )
        return None
    if (end - start).days + 1 > MAX_PROGRAM_DAYS:
        problems.append(
            Problem(
                file=doc.file,
                line=doc.line_of(("program", "end")),
                message=f"the program runs {(end - start).days + 1:,} days ({start} to {end});"
                f" at most {MAX_PROGRAM_DAYS} days (two years) are allowed",
            )
        )
        return None
    days = (end - start).days + 1
    gap = settings.sessions.min_weeks_between
    if days <= gap * 7:
        problems.append(
            Problem(
                file=doc.file,
                line=doc.line_of(("sessions", "min_weeks_between")),
                message=f"the sessions cannot fit: session 2 must come at least {gap} weeks after"
                f" session 1, but the program runs only {days} days ({start} to {end})",
            )
        )
        return None
    if settings.mail.transport == "smtp" and settings.mail.smtp is None:
        problems.append(
            Problem(
                file=doc.file,
                line=doc.line_of(("mail", "transport")),
                message="mail.transport is smtp but there is no mail.smtp section with its host",
            )
        )
        return None
    for stage in settings.emails.schedule:
        if stage not in DEFAULT_TIMINGS:
            problems.append(
                Problem(
                    file=doc.file,
                    line=doc.line_of(("emails", "schedule", stage)),
                    message=f"unknown email stage {quote(stage)}" + _suggest(stage, list(DEFAULT_TIMINGS)),
                )
            )
            return None
    return settings


def _program_dates_are_sensible(doc: YamlDocument, start: date, end: date, problems: list[Problem]) -> bool:
    ok = True
    for key, day in (("start", start), ("end", end)):
        if not EARLIEST_PROGRAM_DATE <= day <= LATEST_PROGRAM_DATE:
            problems.append(
                Problem(
                    file=doc.file,
                    line=doc.line_of(("program", key)),
                    message=f"program.{key} {day} is outside the years a program may run"
                    f" ({EARLIEST_PROGRAM_DATE} to {LATEST_PROGRAM_DATE})",
                )
            )
            ok = False
    return ok


def _problem(doc: YamlDocument, error: ErrorDetails) -> Problem:
    location = tuple(error["loc"])
    # Names in the path may be keys the coordinator typed (under emails.schedule, say).
    path = ".".join(str(part) for part in location)
    where = quote(path, bare=True, limit=120)
    kind = error["type"]
    if kind == "missing":
        # Point at the section that lacks the setting, not at line 1.
        line = doc.line_of(location[:-1]) if location[:-1] else 1
        message = f"'{where}' is required"
    elif kind == "extra_forbidden":
        line = doc.line_of(location)
        message = f"unknown setting {quote(path, limit=120)}" + _did_you_mean(location)
    elif kind in ("model_type", "model_attributes_type", "dict_type"):
        line = doc.line_of(location)
        message = f"{where} must be a group of settings (indented 'key: value' lines)"
    elif kind in ("int_type", "int_parsing", "int_from_float"):
        line = doc.line_of(location)
        message = f"{where} must be a whole number, got {quote(error['input'])}"
    elif kind == "value_error":
        line = doc.line_of(location)
        text = error["msg"].removeprefix("Value error, ")
        message = f"{where} {text}" if where else text
    else:
        line = doc.line_of(location)
        message = f"{where}: {error['msg'].lower()}"
    return Problem(file=doc.file, line=line, message=message)


def _did_you_mean(location: tuple) -> str:
    model: Any = CohortFile
    for part in location[:-1]:
        model = model.model_fields[part].annotation if part in getattr(model, "model_fields", {}) else None
        if model is None:
            return ""
    return _suggest(str(location[-1]), list(getattr(model, "model_fields", {})))


def _suggest(word: str, known: list[str]) -> str:
    if len(word) > 100:  # no name is that long, and comparing long text is slow
        return ""
    match = get_close_matches(word, known, n=1)
    return f" (did you mean '{match[0]}'?)" if match else ""
