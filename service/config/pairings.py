"""The pairings file (CSV, or YAML with the same keys): one row per mentor/mentee pair."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from difflib import get_close_matches
from pathlib import Path
from typing import Any

import icalendar

from ..domain.model import Pair, Person, WorkingPattern
from . import busyfiles, fields, files
from .limits import MAX_CELL_CHARS, MAX_COLUMNS, MAX_ICS_BYTES, MAX_PAIRINGS_BYTES, MAX_ROWS, MAX_YAML_PAIRINGS_BYTES
from .problems import Problem, display, quote, read_text
from .yamlfile import load_yaml

REQUIRED = ("mentor_name", "mentor_email", "mentee_name", "mentee_email")
PERSONAL = ("timezone", "hours", "days", "blackout", "busy_ics", "linkedin")
OPTIONAL = ("pair_id", "notes", "mentee_resume", "mentor_video_link") + tuple(
    f"{role}_{item}" for role in ("mentor", "mentee") for item in PERSONAL
)
COLUMNS = REQUIRED + OPTIONAL


@dataclass
class Row:
    line: int
    values: dict[str, str]
    lines: dict[str, int]  # per column: YAML spreads a row over several lines

    def line_of(self, column: str) -> int:
        return self.lines.get(column, self.line)


@dataclass(frozen=True)
class Defaults:
    availability: WorkingPattern  # blackout dates are always per person
    # First and last day that matter (the program and a margin): blackout dates are
    # clipped to them and busy calendars read within them. None: the program is not
    # known, so those are only checked for form.
    window: tuple[date, date] | None = None


def is_yaml(path: Path) -> bool:
    return path.suffix.lower() in (".yaml", ".yml")


def size_limit(path: Path) -> int:
    """The most bytes a pairings file may have: YAML takes far longer to read than CSV."""
    return MAX_YAML_PAIRINGS_BYTES if is_yaml(path) else MAX_PAIRINGS_BYTES


def load_pairs(
    path: Path, defaults: Defaults, problems: list[Problem], calendars: dict[str, icalendar.Calendar] | None = None
) -> list[Pair]:
    """Every pair in the file; problems for every bad row, not just the first. Busy
    calendars named in the rows are read once, into `calendars` by path."""
    file = display(path)
    before = len(problems)
    rows = _read_yaml(path, problems) if is_yaml(path) else _read_csv(path, problems)
    if rows is None:
        return []
    if not rows and len(problems) == before:  # not when every row was refused, each with its own problem
        problems.append(Problem(file=file, line=1, message="no pairs: the file has no rows after its header"))
        return []
    builder = _Builder(file, path.parent, defaults, problems, {} if calendars is None else calendars)
    return [pair for row in rows if (pair := builder.pair(row)) is not None]


def _read_csv(path: Path, problems: list[Problem]) -> list[Row] | None:
    file = display(path)
    text = read_text(path, problems, size_limit(path))
    if text is None:
        return None
    if not text.strip():
        problems.append(Problem(file=file, line=1, message="file is empty: expected a header line with " + ", ".join(REQUIRED)))
        return None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[Row] = []
    header: list[str] | None = None
    records = 0
    try:
        while True:
            start = reader.line_num + 1
            try:
                record = next(reader)
            except StopIteration:
                break
            if not any(cell.strip() for cell in record):
                continue
            if header is None:
                if len(record) > MAX_COLUMNS:
                    problems.append(
                        Problem(file=file, line=start, message=f"the header has {len(record):,} columns; at most {MAX_COLUMNS} are allowed")
                    )
                    return None
                header = [_column(cell) for cell in record]
                if not _check_header(header, file, start, problems):
                    return None
                continue
            records += 1
            if records > MAX_ROWS:
                problems.append(
                    Problem(file=file, line=start, message=f"more than {MAX_ROWS:,} rows; at most {MAX_ROWS:,} pairs are allowed")
                )
                return None
            if len(record) != len(header):
                problems.append(
                    Problem(
                        file=file,
                        line=start,
                        message=f"row has {len(record)} values but the header names {len(header)} columns"
                        ' (a comma inside a value needs "quotes")',
                    )
                )
                continue
            long = next((column for column, cell in zip(header, record, strict=True) if len(cell) > MAX_CELL_CHARS), None)
            if long is not None:
                problems.append(Problem(file=file, line=start, message=_too_long(long, len(record[header.index(long)]))))
                continue
            rows.append(Row(line=start, values=dict(zip(header, record, strict=False)), lines={}))
    except csv.Error as exc:
        problems.append(Problem(file=file, line=reader.line_num, message=f"not valid CSV: {quote(str(exc), bare=True, limit=120)}"))
        return None
    return rows


def _column(cell: str) -> str:
    return re.sub(r"[\s-]+", "_", cell.strip().lower())


def _too_long(column: str, length: int) -> str:
    return f"{column} is {length:,} characters long; at most {MAX_CELL_CHARS:,} are allowed"


def _check_header(header: list[str], file: str, line: int, problems: list[Problem]) -> bool:
    if not any(column in COLUMNS for column in header):
        # Perhaps not a pairings file at all: say so without repeating what it holds.
        problems.append(
            Problem(
                file=file,
                line=line,
                message="this is not a pairings header: it names none of the known columns"
                f" (the first line must name at least {', '.join(REQUIRED)})",
            )
        )
        return False
    ok = True
    for column in header:
        if column not in COLUMNS:
            hint = _suggest(column)
            suggestion = f" (did you mean '{hint}'?)" if hint else f"; known columns: {', '.join(COLUMNS)}"
            problems.append(Problem(file=file, line=line, message=f"unknown column {quote(column)}{suggestion}"))
            ok = False
    for column, times in sorted(Counter(header).items()):
        if times > 1:
            problems.append(Problem(file=file, line=line, message=f"column {quote(column)} appears twice"))
            ok = False
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        problems.append(Problem(file=file, line=line, message="missing required column(s): " + ", ".join(missing)))
        ok = False
    return ok


def _suggest(word: str) -> str | None:
    if len(word) > 100:  # no column is that long, and comparing long text is slow
        return None
    hint = get_close_matches(word, COLUMNS, n=1)
    return hint[0] if hint else None


def _read_yaml(path: Path, problems: list[Problem]) -> list[Row] | None:
    doc = load_yaml(path, problems, size_limit(path))
    if doc is None:
        return None
    items = doc.data
    base: tuple[str, ...] = ()
    if isinstance(items, dict) and "pairs" in items:
        items, base = items["pairs"], ("pairs",)
    if not isinstance(items, list):
        problems.append(Problem(file=doc.file, line=1, message="expected a list of pairs ('- mentor_name: ...')"))
        return None
    if len(items) > MAX_ROWS:
        problems.append(
            Problem(
                file=doc.file,
                line=doc.line_of(base + (MAX_ROWS,)),
                message=f"more than {MAX_ROWS:,} pairs; at most {MAX_ROWS:,} are allowed",
            )
        )
        return None
    rows = []
    for i, item in enumerate(items):
        where = base + (i,)
        if not isinstance(item, dict):
            problems.append(Problem(file=doc.file, line=doc.line_of(where), message="each pair must be a group of 'key: value' lines"))
            continue
        if len(item) > MAX_COLUMNS:
            problems.append(
                Problem(
                    file=doc.file, line=doc.line_of(where), message=f"this pair has {len(item):,} keys; at most {MAX_COLUMNS} are allowed"
                )
            )
            continue
        values, lines, ok = {}, {}, True
        for key, value in item.items():
            line = doc.line_of(where + (key,))
            column = _column(str(key))
            if column not in COLUMNS:
                hint = _suggest(column)
                problems.append(
                    Problem(file=doc.file, line=line, message=f"unknown key {quote(key)}" + (f" (did you mean '{hint}'?)" if hint else ""))
                )
                ok = False
                continue
            text = _scalar_text(value)
            if text is None:
                problems.append(Problem(file=doc.file, line=line, message=f"{column} must be text, got {quote(value)}"))
                ok = False
                continue
            if len(text) > MAX_CELL_CHARS:
                problems.append(Problem(file=doc.file, line=line, message=_too_long(column, len(text))))
                ok = False
                continue
            values[column], lines[column] = text, line
        missing = [c for c in REQUIRED if c not in values]
        if missing and ok:
            problems.append(Problem(file=doc.file, line=doc.line_of(where), message="missing required key(s): " + ", ".join(missing)))
            ok = False
        if ok:
            rows.append(Row(line=doc.line_of(where), values=values, lines=lines))
    return rows


def _scalar_text(value: Any) -> str | None:
    if value is None:
        return ""
    if isinstance(value, bool):
        return None
    if isinstance(value, (str, int, date)):
        return value.isoformat() if isinstance(value, date) else str(value)
    if isinstance(value, list) and all(isinstance(v, (str, date)) for v in value):
        return ", ".join(v.isoformat() if isinstance(v, date) else v for v in value)
    return None


class _Builder:
    """Turns rows into pairs, checking each row and the rows against each other."""

    def __init__(self, file: str, folder: Path, defaults: Defaults, problems: list[Problem], calendars: dict[str, icalendar.Calendar]):
        self.file, self.folder, self.defaults, self.problems = file, folder, defaults, problems
        self.calendars = calendars
        self.unreadable: dict[str, str] = {}  # .ics files already refused, with why
        self.people: dict[str, tuple[Person, Row, str]] = {}
        self.pair_lines: dict[tuple[str, str], int] = {}
        self.id_lines: dict[str, int] = {}

    def pair(self, row: Row) -> Pair | None:
        before = len(self.problems)
        mentor = self._person(row, "mentor")
        mentee = self._person(row, "mentee")
        notes = self._field(row, "notes", fields.free_text)
        resume = self._field(row, "mentee_resume", fields.url)
        pair_id = self._pair_id(row, mentor, mentee)
        if mentor and mentee and mentor.email == mentee.email:
            self._report(row, None, f"{mentor.email} is both the mentor and the mentee of this pair")
        elif mentor and mentee:
            key = (mentor.email, mentee.email)
            if key in self.pair_lines:
                self._report(row, None, f"this pair ({mentor.name} and {mentee.name}) already appears on line {self.pair_lines[key]}")
            else:
                self.pair_lines[key] = row.line
        if len(self.problems) > before or not (mentor and mentee and pair_id):
            return None
        return Pair(id=pair_id, mentor=mentor, mentee=mentee, mentee_resume=resume, notes=notes or "")

    def _pair_id(self, row: Row, mentor: Person | None, mentee: Person | None) -> str | None:
        given = row.values.get("pair_id", "").strip()
        if given and not fields.PAIR_ID.match(given):
            self._report(row, "pair_id", f"{quote(given)} may contain only letters, digits, '-' and '_' (at most 63)")
            return None
        if not given:
            if not (mentor and mentee):
                return None
            # From the two addresses, short enough to be stored (ids are at most 63 characters).
            base = "-".join(re.sub(r"[^a-z0-9]+", "", p.email.split("@")[0])[:28] or "x" for p in (mentor, mentee))
            given, n = base, 2
            while given in self.id_lines:
                given, n = f"{base}-{n}", n + 1
        elif given in self.id_lines:
            self._report(row, "pair_id", f"{quote(given)} is already used on line {self.id_lines[given]}")
            return None
        self.id_lines[given] = row.line
        return given

    def _person(self, row: Row, role: str) -> Person | None:
        before = len(self.problems)
        name = self._field(row, f"{role}_name", fields.name)
        email = self._field(row, f"{role}_email", fields.email)
        default = self.defaults.availability
        timezone = self._field(row, f"{role}_timezone", fields.timezone) or default.timezone
        hours = self._field(row, f"{role}_hours", fields.hours) or default.hours
        days = self._field(row, f"{role}_days", fields.days) or default.days
        blackout = self._field(row, f"{role}_blackout", lambda text: fields.dates(text, self.defaults.window)) or frozenset()
        linkedin = self._field(row, f"{role}_linkedin", fields.url)
        busy_ics = self._field(row, f"{role}_busy_ics", self._ics_path)
        video_link = self._field(row, "mentor_video_link", fields.url) if role == "mentor" else None
        if len(self.problems) > before or not (name and email):
            return None
        person = Person(
            name=name,
            email=email,
            availability=WorkingPattern(
                timezone=timezone,
                hours=hours,
                days=days,
                blackout_dates=blackout,
                declared=bool(row.values.get(f"{role}_hours", "").strip()),  # the person's own: stretched only if allowed
            ),
            linkedin=linkedin,
            busy_calendar=busy_ics,
            video_link=video_link,
        )
        return self._same_as_before(row, role, person)

    def _same_as_before(self, row: Row, role: str, person: Person) -> Person | None:
        """A person in several rows: later rows may leave details blank, not contradict."""
        if person.email not in self.people:
            self.people[person.email] = (person, row, role)
            return person
        first, first_row, first_role = self.people[person.email]
        merged = first
        checks = [
            ("name", person.name, first.name),
            ("timezone", person.availability.timezone, first.availability.timezone),
            ("hours", person.availability.hours, first.availability.hours),
            ("days", person.availability.days, first.availability.days),
            ("blackout", person.availability.blackout_dates, first.availability.blackout_dates),
            ("linkedin", person.linkedin, first.linkedin),
            ("busy_ics", person.busy_calendar, first.busy_calendar),
            ("video_link", person.video_link, first.video_link),
        ]
        ok = True
        for item, mine, theirs in checks:
            column = f"{role}_{item}"
            given = item == "name" or row.values.get(column, "").strip()
            if given and mine != theirs:
                shown = row.values.get(column, "").strip()
                earlier = first_row.values.get(f"{first_role}_{item}", "").strip() or "the cohort default"
                self._report(
                    row,
                    column,
                    f"{quote(shown)} contradicts {quote(earlier)} given for {person.email} on line {first_row.line}",
                )
                ok = False
        return merged if ok else None

    def _ics_path(self, value: str) -> str | None:
        value = value.strip()
        if not value:
            return None
        path = self.folder / value
        try:
            path = files.check(path, MAX_ICS_BYTES)
        except files.Missing:
            raise ValueError(f"{quote(value)} is not a file (looked for {display(path)})") from None
        except files.Unusable as exc:
            raise ValueError(f"{quote(value)} {exc}") from None
        key = str(path)
        if key in self.unreadable:
            raise ValueError(self.unreadable[key])
        if key not in self.calendars:
            try:
                if self.defaults.window:
                    self.calendars[key] = busyfiles.read(path, *self.defaults.window)
                else:  # the program is not known: check the file, expand nothing
                    self.calendars[key] = busyfiles.parse(path)
            except files.Unusable as exc:
                self.unreadable[key] = f"{quote(value)} {exc}"
                raise ValueError(self.unreadable[key]) from None
            except ValueError as exc:
                self.unreadable[key] = str(exc)
                raise
        return key

    def _field(self, row: Row, column: str, parse: Callable[[str], Any]) -> Any:
        raw = row.values.get(column, "")
        if not raw.strip() and column not in REQUIRED:
            return None
        try:
            return parse(raw)
        except ValueError as exc:
            self._report(row, column, str(exc))
            return None

    def _report(self, row: Row, column: str | None, message: str) -> None:
        """A problem with one value (named by its column) or with the row as a whole."""
        if column:
            message = f"{column} {message}"
        self.problems.append(Problem(file=self.file, line=row.line_of(column or ""), message=message))
