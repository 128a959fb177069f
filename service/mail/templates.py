"""Email templates: one folder per stage, subject/text/HTML per role, overridable per cohort.

A cohort's own templates (`emails.templates`) are not trusted code: a coordinator may paste them from
anywhere and edit them through a web page, and `mentorship validate` renders them. So every template
renders in Jinja's sandbox (no access to Python internals), may read only regular files really inside the
template folders, and has bounded size, output and work. Anything refused becomes a TemplateProblem.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from types import TracebackType
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError

from ..domain.model import Role
from .sandbox import MAX_OUTPUT, METER, FolderLoader, Meter, Refused, Sandbox, TooLarge, printable

# The package service._templates is the repository's templates/ folder (see pyproject.toml). setuptools
# installs package data as plain files (unpacked from a wheel, or read in place by an editable install),
# so files() is a real directory here.
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


class _CodeKept(jinja2.BytecodeCache):
    """Compiled templates kept in memory only: Jinja's own files on disk could be read by
    another version of this code, whose sandbox compiles differently."""

    def __init__(self) -> None:
        self.kept: dict[str, bytes] = {}

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        if (code := self.kept.get(bucket.key)) is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self.kept[bucket.key] = bucket.bytecode_to_string()


class Templates:
    """One revision of the templates: each file is read, checked and compiled once, when
    first used, and kept. An edit to the files makes a new Templates (the configuration
    watcher loads and validates the edited revision), so nothing is read again per email.
    The code compiled by a forked copy of it (which checked them) can be handed back
    (`compiled`, `add_compiled`), so it is not made twice."""

    def __init__(self, override: str | Path | None = None, default: Path = DEFAULT_DIR):
        folders = [Path(override)] if override else []
        self.folders = folders + [default]
        self._chosen: dict[tuple[str, ...], jinja2.Template] = {}  # the names asked for -> the file that answered
        self._code = _CodeKept()
        self.env = Sandbox(
            loader=FolderLoader(self.folders),
            bytecode_cache=self._code,
            auto_reload=False,  # no stat of every file at every render: a revision does not change
            undefined=jinja2.StrictUndefined,
            autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            finalize=printable,
        )

    def compiled(self) -> dict[str, bytes]:
        """The code of every template compiled so far, by name and source."""
        return dict(self._code.kept)

    def add_compiled(self, compiled: Mapping[str, bytes]) -> None:
        """Code compiled by a copy of these templates, used instead of compiling a file
        whose source is still the same (Jinja checks it)."""
        self._code.kept.update(compiled)

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
        roots = [str(f) for f in self.folders]
        file = name
        token = METER.set(Meter())
        try:
            names = (name, fallback) if fallback else (name,)
            template = self._chosen.get(names)
            if template is None:  # a role's own file or the one for both, looked up once
                template = self._chosen[names] = self.env.select_template(list(names))
            file = template.filename or name
            out: list[str] = []
            size = 0
            for chunk in template.generate(context):  # streamed, so an endless template stops at the bound
                size += len(chunk)
                if size > MAX_OUTPUT:
                    raise TooLarge(f"template output is too large (over {MAX_OUTPUT:,} characters)")
                out.append(chunk)
            return "".join(out)
        except jinja2.TemplateNotFound as exc:
            where = _template_frame(exc.__traceback__, roots)
            if where:  # {% include %}, {% extends %} or {% import %} of a file that is not there
                raise TemplateProblem(*where, f"template file '{exc.name}' is missing") from None
            raise TemplateProblem(str(self.folders[-1] / name), 0, "template file is missing") from None
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateProblem(exc.filename or name, exc.lineno, f"template error: {exc.message}") from None
        except Refused as exc:  # the sandbox's bounds, and files the loader will not serve
            file, line = _template_frame(exc.__traceback__, roots) or (exc.file or file, 0)
            raise TemplateProblem(file, line, exc.message) from None
        except Exception as exc:  # undefined names, bad filters, errors inside expressions, the sandbox
            file, line = _template_frame(exc.__traceback__, roots) or (file, 0)
            raise TemplateProblem(file, line, f"template error: {_plain(exc)}") from None
        finally:
            METER.reset(token)


def _template_frame(tb: TracebackType | None, folders: list[str]) -> tuple[str, int] | None:
    """The innermost traceback frame inside one of our template files."""
    roots = tuple(os.path.join(f, "") for f in folders)
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
        if name.startswith("__"):  # |attr('__globals__') of an attribute the sandbox refused gives a plain undefined
            return f"not allowed in a template: access to '{name}'"
        return f"'{name}' is not available to this template (misspelt, or not one of its variables)"
    if isinstance(exc, SecurityError):
        # "access to attribute '__class__' of 'str' object is unsafe.", or "<repr> is not safely callable":
        # name the attribute, never a value.
        attribute = re.match(r"access to attribute '([^']*)'", exc.message or "")
        return f"not allowed in a template: access to '{attribute[1]}'" if attribute else "not allowed in a template: that call"
    return f"{type(exc).__name__}: {exc}"


def _tidy(text: str) -> str:
    """At most one blank line in a row, one newline at the end."""
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


# --- Refusals -----------------------------------------------------------------------------------------
