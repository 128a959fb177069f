"""Email templates: one folder per stage, subject/text/HTML per role, overridable per cohort."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from types import TracebackType
from typing import Any

import jinja2

from ..domain.model import Role

# The package service._templates is the repository's templates/ folder (see pyproject.toml). setuptools
# installs package data as plain files (unpacked from a wheel, or read in place by an editable install),
# so files() is a real directory here, which is what jinja2's FileSystemLoader needs.
DEFAULT_DIR = Path(str(files("service._templates") / "emails")).resolve()


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


class TemplateProblem(Exception):
    """A template that cannot be rendered: where, and why, in plain words."""

    def __init__(self, file: str, line: int, message: str):
        self.file, self.line, self.message = file, line, message
        super().__init__(f"{file}:{line}: {message}")


class Templates:
    def __init__(self, override: str | Path | None = None, default: Path = DEFAULT_DIR):
        folders = [Path(override)] if override else []
        self.folders = folders + [default]
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader([str(f) for f in self.folders]),
            undefined=jinja2.StrictUndefined,
            autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )

    def render(self, folder: str, role: Role, context: Mapping[str, Any]) -> Rendered:
        """Subject, text and HTML of one email from its template folder (a stage's
        `folder`); TemplateProblem if a template is broken."""

        def part(extension: str, values: Mapping[str, Any]) -> str:
            # A role's own file, else one written for both roles.
            return self._render(f"{folder}/{role}.{extension}", values, fallback=f"{folder}/both.{extension}")

        subject = " ".join(part("subject", context).split())
        text = part("txt", context)
        html = part("html", {**context, "subject": subject})
        return Rendered(subject=subject, text=_tidy(text), html=html)

    def render_one(self, name: str, context: Mapping[str, Any]) -> str:
        """One template file (a calendar event's description, say), as text."""
        return _tidy(self._render(name, context))

    def _render(self, name: str, context: Mapping[str, Any], fallback: str | None = None) -> str:
        try:
            return self.env.select_template([name, fallback] if fallback else [name]).render(context)
        except jinja2.TemplateNotFound:
            raise TemplateProblem(str(self.folders[-1] / name), 0, "template file is missing") from None
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateProblem(exc.filename or name, exc.lineno, f"template error: {exc.message}") from None
        except Exception as exc:  # undefined names, bad filters, errors inside expressions
            file, line = _template_frame(exc.__traceback__, self.folders) or (name, 0)
            raise TemplateProblem(file, line, f"template error: {_plain(exc)}") from None


def _template_frame(tb: TracebackType | None, folders: list[Path]) -> tuple[str, int] | None:
    """The innermost traceback frame inside one of our template files."""
    roots = tuple(str(f) for f in folders)
    found = None
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.startswith(roots):
            found = (filename, tb.tb_lineno)
        tb = tb.tb_next
    return found


def _plain(exc: Exception) -> str:
    if isinstance(exc, jinja2.UndefinedError):
        # Jinja says "'x' is undefined" or "'... object' has no attribute 'x'".
        names = re.findall(r"'([^']*)'", exc.message or "")
        name = names[-1] if names else "?"
        return f"'{name}' is not available to this template (misspelt, or not one of its variables)"
    return f"{type(exc).__name__}: {exc}"


def _tidy(text: str) -> str:
    """At most one blank line in a row, one newline at the end."""
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"
