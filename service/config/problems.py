"""Configuration problems: each with the file and line a coordinator should open."""

from __future__ import annotations

import reprlib
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from . import files
from .limits import MAX_PROBLEMS_PER_FILE, PATH_CHARS, QUOTE_CHARS


class Severity(StrEnum):
    ERROR = "error"  # the configuration cannot be used
    WARNING = "warning"  # it can, but the coordinator should know how it was read


@dataclass(frozen=True, kw_only=True, order=True)
class Problem:
    file: str
    line: int  # 0: about the file as a whole (it is missing, say)
    message: str
    severity: Severity = Severity.ERROR

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def __str__(self) -> str:
        text = self.message if self.is_error else f"warning: {self.message}"
        if self.line:
            return f"{self.file}:{self.line}: {text}"
        return f"{self.file}: {text}"


def warning(*, file: str, line: int, message: str) -> Problem:
    return Problem(file=file, line=line, message=message, severity=Severity.WARNING)


def errors(problems: list[Problem]) -> int:
    return sum(1 for p in problems if p.is_error)


def in_order(problems: list[Problem]) -> list[Problem]:
    """By file and line, as an editor would walk through them."""
    return sorted(problems, key=lambda p: (p.file, p.line))


class ConfigError(Exception):
    """The configuration cannot be used; `problems` lists every reason found, and
    `warnings` what was noticed on the way."""

    def __init__(self, problems: list[Problem]):
        self.problems = in_order([p for p in problems if p.is_error])
        self.warnings = in_order([p for p in problems if not p.is_error])
        super().__init__("\n".join(str(p) for p in self.problems))

    @property
    def headline(self) -> str:
        count = len(self.problems)
        return f"{count} problem{'s' if count != 1 else ''} in the configuration; nothing was booked or sent:"


class TooManyProblems(Exception):
    """One file has more problems than are worth listing; reading stops."""

    def __init__(self, file: str):
        super().__init__(file)
        self.file = file


class ProblemList(list[Problem]):
    """The problems found so far. Once one file has MAX_PROBLEMS_PER_FILE of them, the
    next raises TooManyProblems: a file of a million bad rows must not become a million
    lines of output (nor the memory and time to make them). Warnings are few by
    construction (each kind is gathered into one) and do not count."""

    def __init__(self) -> None:
        super().__init__()
        self.per_file: Counter[str] = Counter()

    def append(self, problem: Problem) -> None:
        if not problem.is_error:
            super().append(problem)
            return
        if self.per_file[problem.file] >= MAX_PROBLEMS_PER_FILE:
            raise TooManyProblems(problem.file)
        self.per_file[problem.file] += 1
        super().append(problem)

    def stopped(self, file: str) -> list[Problem]:
        """All the problems, and a last one saying that reading `file` stopped early."""
        note = Problem(file=file, line=0, message=f"more than {MAX_PROBLEMS_PER_FILE} problems: stopped reading here; fix these first")
        return [*self, note]


_brief = reprlib.Repr()
_brief.maxstring = _brief.maxother = _brief.maxlong = QUOTE_CHARS + 10


def quote(value: object, *, bare: bool = False, limit: int = QUOTE_CHARS) -> str:
    """How every message shows something taken from an input: text in quotes (as Python
    writes it), anything else as its short representation; at most `limit` characters
    of it, cut with '…', and control characters escaped so a message stays one line.
    `bare` leaves out the quotes (for file paths and text from a library)."""
    if not isinstance(value, str):
        # reprlib stops early, so a huge list or number is never written out in full.
        try:
            shown = _brief.repr(value)
        except ValueError:  # an integer too long for Python to write out
            shown = f"<a {type(value).__name__} too long to show>"
        return quote(shown, bare=True, limit=limit)
    cut = len(value) > limit
    text = value[:limit] if cut else value
    if bare:
        shown = "".join(c if c.isprintable() else _escape(c) for c in text)
        return shown + "…" if cut else shown
    shown = repr(text)
    return shown[:-1] + "…" + shown[-1] if cut else shown


def _escape(char: str) -> str:
    return repr(char)[1:-1] if char not in "'\"" else char


def display(path: Path) -> str:
    """A path as the coordinator typed it, relative to where they are when possible."""
    try:
        shown = str(path.relative_to(Path.cwd()))
    except ValueError:
        shown = str(path)
    return quote(shown, bare=True, limit=PATH_CHARS)


def read_text(path: Path, problems: list[Problem], limit: int) -> str | None:
    """The file as text (UTF-8, a BOM allowed), or None with the problem recorded. Only a
    regular file of at most `limit` bytes is read (see files.py)."""
    name = display(path)
    try:
        data = files.read_bytes(path, limit)
    except files.Unusable as exc:
        problems.append(Problem(file=name, line=0, message=str(exc)))
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        problems.append(Problem(file=name, line=line, message="is not UTF-8 text: save it as UTF-8 (CSV UTF-8 in Excel)"))
        return None
