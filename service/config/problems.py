"""Configuration problems: each with the file and line a coordinator should open."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, kw_only=True, order=True)
class Problem:
    file: str
    line: int  # 0: about the file as a whole (it is missing, say)
    message: str

    def __str__(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}: {self.message}"
        return f"{self.file}: {self.message}"


class ConfigError(Exception):
    """The configuration cannot be used; `problems` lists every reason found."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems, key=lambda p: (p.file, p.line))
        super().__init__("\n".join(str(p) for p in self.problems))


def display(path: Path) -> str:
    """A path as the coordinator typed it, relative to where they are when possible."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def read_text(path: Path, problems: list[Problem]) -> str | None:
    """The file as text (UTF-8, a BOM allowed), or None with the problem recorded."""
    name = display(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        problems.append(Problem(file=name, line=0, message="file not found"))
        return None
    except OSError as exc:
        problems.append(Problem(file=name, line=0, message=f"cannot be read: {exc.strerror}"))
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        problems.append(Problem(file=name, line=line, message="is not UTF-8 text: save it as UTF-8 (CSV UTF-8 in Excel)"))
        return None
