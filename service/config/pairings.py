"""The pairings file (CSV, or YAML with the same keys): one row per mentor/mentee pair."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from difflib import get_close_matches
from pathlib import Path
from typing import Any

import icalendar

from ..domain.model import Pair, Person, WorkingPattern
from . import busyfiles, fields, files, publicholidays, zones
from .limits import MAX_CELL_CHARS, MAX_COLUMNS, MAX_ICS_BYTES, MAX_PAIRINGS_BYTES, MAX_ROWS, MAX_YAML_PAIRINGS_BYTES
from .problems import Problem, display, errors, quote, read_text, warning
from .publicholidays import HolidayRules
from .yamlfile import load_yaml

REQUIRED = ("mentor_name", "mentor_email", "mentee_name", "mentee_email")
PERSONAL = ("timezone", "hours", "days", "blackout", "busy_ics", "linkedin", "country")
OPTIONAL = ("pair_id", "notes", "mentee_resume", "mentor_video_link") + tuple(
    f"{role}_{item}" for role in ("mentor", "mentee") for item in PERSONAL
)
COLUMNS = REQUIRED + OPTIONAL

# How forms and spreadsheets name the columns, besides the names above. Headers are
# compared by their letters and digits only, in any case, with the role before or after
# ("Mentor Time Zone", "Email Address (Mentee)").
_PERSON_ALIASES = {
    "name": ("full name",),
    "email": ("email address", "e-mail address", "mail address"),
    "timezone": ("time zone", "tz", "time zone name"),
    "hours": ("working hours", "work hours", "hours available"),
    "days": ("working days", "work days", "days available"),
    "blackout": ("blackouts", "blackout dates", "dates away", "away"),
    "busy_ics": ("busy calendar", "busy calendar ics", "calendar ics"),
    "linkedin": ("linkedin url", "linkedin profile", "linkedin link"),
    "country": ("country code", "country or region"),
}
_OTHER_ALIASES = {
    "pair_id": ("pair", "pair id"),
    "notes": ("note",),
    "mentee_resume": ("mentee cv", "mentee resume url", "mentee cv url", "mentee resume link", "resume", "cv"),
    "mentor_video_link": ("mentor meeting link", "mentor video url", "video link", "meeting link"),
}


def _squash(text: str) -> str:
    """A header reduced to its letters and digits, lower case: how headers are compared."""
    return re.sub(r"[\W_]+", "", text.casefold())


def _aliases() -> dict[str, str]:
    known = {_squash(column): column for column in COLUMNS}
    for column, spellings in _OTHER_ALIASES.items():
        known.update((_squash(spelling), column) for spelling in spellings)
    for role in ("mentor", "mentee"):
        for item in PERSONAL + ("name", "email"):
            for spelling in (item, *_PERSON_ALIASES.get(item, ())):
                known[_squash(f"{role} {spelling}")] = known[_squash(f"{spelling} {role}")] = f"{role}_{item}"
    return known


ALIASES = _aliases()


def known_column(header: str) -> str | None:
    """The column a header names ('Mentor Time Zone' -> 'mentor_timezone'), or None."""
    return ALIASES.get(_squash(header))


@dataclass
class Row:
    line: int
    values: dict[str, str]
    lines: dict[str, int]  # per column: YAML spreads a row over several lines
    extra: dict[str, str] = field(default_factory=dict)  # columns the service does not use, by header

    def line_of(self, column: str) -> int:
        return self.lines.get(column, self.line)


@dataclass(frozen=True)
class Defaults:
    availability: WorkingPattern  # blackout dates are always per person
    # First and last day that matter (the program and a margin): blackout dates are
    # clipped to them and busy calendars read within them. None: the program is not
    # known, so those are only checked for form.
    window: tuple[date, date] | None = None
    holidays: HolidayRules | None = None  # None: public holidays are not kept


class _Unused:
    """Columns (or YAML keys) the service does not use: kept, and named in one warning."""

    def __init__(self) -> None:
        self.names: dict[str, int] = {}  # as written, with the line first seen

    def add(self, name: str, line: int) -> None:
        self.names.setdefault(name, line)

    def warning(self, file: str) -> Problem | None:
        if not self.names:
            return None
        shown = []
        for name in list(self.names)[:20]:
            hint = _suggest(name)
            shown.append(quote(name) + (f" (did you mean '{hint}'?)" if hint else ""))
        more = f" and {len(self.names) - 20} more" if len(self.names) > 20 else ""
        return warning(
            file=file,
            line=min(self.names.values()),
            message=f"not used by the service, kept for the templates as extra: {', '.join(shown)}{more}",
        )


def is_yaml(path: Path) -> bool:
    return path.suffix.lower() in (".yaml", ".yml")


def size_limit(path: Path) -> int:
    """The most bytes a pairings file may have: YAML takes far longer to read than CSV."""
    return MAX_YAML_PAIRINGS_BYTES if is_yaml(path) else MAX_PAIRINGS_BYTES


def load_pairs(
    path: Path,
    defaults: Defaults,
    problems: list[Problem],
    calendars: dict[str, icalendar.Calendar] | None = None,
    *,
    first: Callable[[Pair], None] | None = None,
) -> list[Pair]:
    """Every pair in the file; problems for every bad row, not just the first, together
    with those of the header. Busy calendars named in the rows are read once, into
    `calendars` by path. Warnings (columns kept unused, spellings read as something
    else) come last, each kind once. `first` is given the first pair as soon as it is
    read, while no problem is found."""
    file = display(path)
    before = errors(problems)
    unused = _Unused()
    read = _read_yaml(path, problems, unused) if is_yaml(path) else _read_csv(path, problems, unused)
    if read is None:
        return []
    rows, present = read
    if (note := unused.warning(file)) is not None:
        problems.append(note)
    if not rows and errors(problems) == before:  # not when every row was refused, each with its own problem
        # Not an error: emptying the sheet is how a running cohort is ended (the change is
        # held for approval like any removal), and an empty cohort books nothing.
        problems.append(warning(file=file, line=1, message="no pairs: the file has no rows after its header, so nothing is booked"))
        return []
    builder = _Builder(file, path.parent, defaults, problems, {} if calendars is None else calendars, present)
    pairs: list[Pair] = []
    for row in rows:
        pair = builder.pair(row)
        if pair is not None:
            if first is not None and not pairs and not errors(problems):
                first(pair)
            pairs.append(pair)
    return builder.finish(pairs)


def _read_csv(path: Path, problems: list[Problem], unused: _Unused) -> tuple[list[Row], frozenset[str]] | None:
    """The rows, and the columns the header names. A header with problems still lets the
    rows be checked, so that every problem shows in one run."""
    file = display(path)
    text = read_text(path, problems, size_limit(path))
    if text is None:
        return None
    if not text.strip():
        problems.append(Problem(file=file, line=1, message="file is empty: expected a header line with " + ", ".join(REQUIRED)))
        return None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[Row] = []
    header: _Header | None = None
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
                header = _read_header(record, file, start, problems, unused)
                if header is None:
                    return None
                continue
            records += 1
            if records > MAX_ROWS:
                problems.append(
                    Problem(file=file, line=start, message=f"more than {MAX_ROWS:,} rows; at most {MAX_ROWS:,} pairs are allowed")
                )
                return None
            if len(record) != len(header.cells):
                problems.append(
                    Problem(
                        file=file,
                        line=start,
                        message=f"row has {len(record)} values but the header names {len(header.cells)} columns"
                        ' (a comma inside a value needs "quotes")',
                    )
                )
                continue
            long = next((i for i, cell in enumerate(record) if len(cell) > MAX_CELL_CHARS), None)
            if long is not None:
                problems.append(Problem(file=file, line=start, message=_too_long(header.name(long), len(record[long]))))
                continue
            rows.append(header.row(start, record))
    except csv.Error as exc:
        problems.append(Problem(file=file, line=reader.line_num, message=f"not valid CSV: {quote(str(exc), bare=True, limit=120)}"))
        return None
    return rows, header.present if header else frozenset()


@dataclass(frozen=True)
class _Header:
    cells: list[str]  # as written, stripped
    columns: list[str | None]  # per cell: the column it names, None for one the service does not use
    used: list[bool]  # per cell: whether its values are read (the first of a repeated column)

    @property
    def present(self) -> frozenset[str]:
        return frozenset(c for c in self.columns if c)

    def name(self, index: int) -> str:
        return self.columns[index] or self.cells[index]

    def row(self, line: int, record: list[str]) -> Row:
        values: dict[str, str] = {}
        extra: dict[str, str] = {}
        for column, cell, value, used in zip(self.columns, self.cells, record, self.used, strict=True):
            if not used:
                continue
            if column:
                values[column] = value
            elif cell:
                extra[cell] = value.strip()
        return Row(line=line, values=values, lines={}, extra=extra)


def _read_header(record: list[str], file: str, line: int, problems: list[Problem], unused: _Unused) -> _Header | None:
    cells = [cell.strip() for cell in record]
    columns = [known_column(cell) if cell else None for cell in cells]
    if not any(columns):
        # Perhaps not a pairings file at all: say so without repeating what it holds.
        problems.append(
            Problem(
                file=file,
                line=line,
                message="this is not a pairings header: it names none of the known columns"
                f" (the first line must name at least {', '.join(REQUIRED)})",
            )
        )
        return None
    used: list[bool] = []
    first: dict[str, int] = {}  # where each column (or unused header) is first named
    for index, (cell, column) in enumerate(zip(cells, columns, strict=True)):
        key = column or cell
        if not key:  # no header: Excel's empty trailing columns
            used.append(False)
            continue
        if key in first:
            earlier = cells[first[key]]
            if column and earlier != cell:
                message = f"columns {quote(earlier)} and {quote(cell)} both mean {column}"
            else:
                message = f"column {quote(cell)} appears twice"
            problems.append(Problem(file=file, line=line, message=message))
            used.append(False)
            continue
        first[key] = index
        used.append(True)
        if column is None:
            unused.add(cell, line)
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        problems.append(Problem(file=file, line=line, message="missing required column(s): " + ", ".join(missing)))
    return _Header(cells=cells, columns=columns, used=used)


def _column(cell: str) -> str:
    return re.sub(r"[\s-]+", "_", cell.strip().lower())


def _too_long(column: str, length: int) -> str:
    return f"{column} is {length:,} characters long; at most {MAX_CELL_CHARS:,} are allowed"


def _suggest(word: str) -> str | None:
    """The known column a header that names none may have meant."""
    if len(word) > 100:  # no column is that long, and comparing long text is slow
        return None
    hint = get_close_matches(_column(word), COLUMNS, n=1, cutoff=0.85)
    return hint[0] if hint else None


def _read_yaml(path: Path, problems: list[Problem], unused: _Unused) -> tuple[list[Row], frozenset[str]] | None:
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
        values, lines, extra, ok = {}, {}, {}, True
        for key, value in item.items():
            line = doc.line_of(where + (key,))
            column = known_column(str(key))
            text = _scalar_text(value)
            if column is None:
                unused.add(str(key), line)
                if text is not None and len(text) <= MAX_CELL_CHARS:
                    extra[str(key)] = text.strip()
                continue
            if column in values:
                problems.append(Problem(file=doc.file, line=line, message=f"{quote(key)} means {column}, which this pair already gives"))
                ok = False
                continue
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
            rows.append(Row(line=doc.line_of(where), values=values, lines=lines, extra=extra))
    return rows, frozenset(COLUMNS)


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

    def __init__(
        self,
        file: str,
        folder: Path,
        defaults: Defaults,
        problems: list[Problem],
        calendars: dict[str, icalendar.Calendar],
        present: frozenset[str],
    ):
        self.file, self.folder, self.defaults, self.problems = file, folder, defaults, problems
        self.calendars = calendars
        self.present = present  # the columns the file has: a missing one is reported once, for the header
        # Gathered for one warning each at the end.
        self.zones_read: dict[str, tuple[zones.Zone, list[int]]] = {}  # spelling -> zone, lines
        self.default_zone: dict[str, tuple[str, int]] = {}  # people given the cohort's zone: email -> name, line
        self.no_holidays: dict[str, tuple[str, int]] = {}  # people whose public holidays are not known
        self.holidays: dict[str, frozenset[date]] = {}  # by place
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
        return Pair(id=pair_id, mentor=mentor, mentee=mentee, mentee_resume=resume, notes=notes or "", extra=row.extra)

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
        zone_column = f"{role}_timezone"
        timezone = self._field(row, zone_column, lambda text: self._zone(text, row.line_of(zone_column))) or default.timezone
        hours = self._field(row, f"{role}_hours", fields.hours) or default.hours
        days = self._field(row, f"{role}_days", fields.days) or default.days
        blackout = self._field(row, f"{role}_blackout", lambda text: fields.dates(text, self.defaults.window)) or frozenset()
        linkedin = self._field(row, f"{role}_linkedin", fields.url)
        busy_ics = self._field(row, f"{role}_busy_ics", self._ics_path)
        video_link = self._field(row, "mentor_video_link", fields.url) if role == "mentor" else None
        given_country = self._field(row, f"{role}_country", publicholidays.country)
        if len(self.problems) > before or not (name and email):
            return None
        declared = bool(row.values.get(f"{role}_hours", "").strip())
        country = given_country or _country_of(timezone)
        holidays = self._holidays_in(country)
        pattern = WorkingPattern(timezone=timezone, hours=hours, days=days, blackout_dates=blackout, holidays=holidays, declared=declared)
        found = Person(
            name=name,
            email=email,
            availability=pattern,
            linkedin=linkedin,
            busy_calendar=busy_ics,
            video_link=video_link,
            country=country,
        )
        person = self._same_as_before(row, role, found)
        if person is not None and self.people[person.email][1] is row:  # seen for the first time
            if not row.values.get(zone_column, "").strip():
                self.default_zone.setdefault(person.email, (person.name, row.line))
            if self.defaults.holidays and not publicholidays.is_known(country):
                self.no_holidays[person.email] = (person.name, row.line)
        return person

    def _holidays_in(self, place: str | None) -> frozenset[date]:
        """The public holidays of a place, one set shared by everyone there. Not worked out
        once the files have an error: they are refused anyway, and the holidays calendar is
        slow to load."""
        rules = self.defaults.holidays
        if rules is None or not place or not publicholidays.is_known(place) or any(p.is_error for p in self.problems):
            return frozenset()
        if place not in self.holidays:
            self.holidays[place] = publicholidays.holidays_in(place, rules)
        return self.holidays[place]

    def _zone(self, text: str, line: int) -> str:
        zone = zones.read(text)
        if zone.read_as:
            spelling = " ".join(text.split())
            self.zones_read.setdefault(spelling, (zone, []))[1].append(line)
        return zone.name

    def finish(self, pairs: list[Pair]) -> list[Pair]:
        """The pairs, with the warnings gathered over all rows added, one of each kind."""
        for spelling, (zone, lines) in self.zones_read.items():
            also = f"; the same on {_people(len(lines) - 1, 'more row')}" if len(lines) > 1 else ""
            self.problems.append(
                warning(file=self.file, line=lines[0], message=f"time zone {quote(spelling)} read as {zone.name} ({zone.read_as}){also}")
            )
        if self.default_zone and self.defaults.window:  # no window: the cohort file is broken, its zone unknown
            people = list(self.default_zone.values())
            self.problems.append(
                warning(
                    file=self.file,
                    line=people[0][1],
                    message=f"no time zone given for {_listed(people)}: given the cohort's, {self.defaults.availability.timezone}",
                )
            )
        if self.no_holidays and not errors(self.problems):
            people = sorted(self.no_holidays.values(), key=lambda p: p[1])
            self.problems.append(
                warning(
                    file=self.file,
                    line=people[0][1],
                    message=f"public holidays not known for {_listed(people)}:"
                    " their time zone names no country whose holidays are known; give a country (such as DE or US-CA)",
                )
            )
        return pairs

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
            ("country", person.country, first.country),
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
        if not raw.strip() and (column not in REQUIRED or column not in self.present):
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


def _people(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' if count != 1 else ''}"


def _listed(people: list[tuple[str, int]]) -> str:
    """'Maya Okafor' or 'Maya Okafor (line 2), Zoe (line 3) and 4 more'."""
    if len(people) == 1:
        return people[0][0]
    shown = [f"{name} (line {line})" for name, line in people[:5]]
    if len(people) > 5:
        return ", ".join(shown) + f" and {len(people) - 5} more"
    return ", ".join(shown[:-1]) + " and " + shown[-1]


def _country_of(zone: str) -> str | None:
    return zones.country_of(zone)
