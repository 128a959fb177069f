"""The sandbox email templates render in: Jinja's, with bounded size, output and work, and a
loader that reads only regular files really inside the template folders.

A cohort's templates are not trusted code (they may be pasted from anywhere), so nothing a
template does may reach Python's internals, files outside its folders, or unbounded memory or
time. Anything refused raises Refused (TooLarge for size), which Templates turns into a
TemplateProblem with the template's file and line.
"""

from __future__ import annotations

import functools
import os
import re
import stat
import string
import types
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.runtime import Context, LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import generate_lorem_ipsum

# Bounds. The shipped templates are a few KB each and their emails a few KB; these are far above that
# and far below what hurts the machine.
# A template file: reading and compiling it costs memory in proportion (Jinja's parse tree and the Python
# it compiles to are many times the text), and the text bounds how much a template can spell out.
MAX_TEMPLATE_BYTES = 256 * 1024
# One rendered part (subject, text or HTML); counted while it is written, so it is never built whole.
MAX_OUTPUT = 1_000_000  # characters
# Any one string (characters) or list (items) a template computes: an operator's result, a filter's, a
# method's, a macro's or {% set %} block's text, text joined with ~. Refused before it is built where its
# size can be known first (repetition, padding, range, formatting, ~), else as soon as it exists.
MAX_VALUE = 1_000_000
MAX_RANGE = 10_000  # numbers in one range(); Jinja's own sandbox allows 100,000
MAX_INT_BITS = 4096  # integers from * and ** (a 1,234-digit number); 10**(10**10) would take hours and GBs
# Work per part: loop steps, calls and filters (a shipped email takes under ten; a macro call, the
# dearest step, takes ~15 µs, so this is a second or two at most); and characters passing through them.
# A loop in a loop over range() allocates nothing, but would keep validate busy for hours.
MAX_STEPS = 100_000
MAX_WORK = 100_000_000  # characters


class Refused(Exception):
    """Stops a render with a message meant for the coordinator as it is."""

    def __init__(self, message: str, file: str | None = None):
        self.message, self.file = message, file
        super().__init__(message)


class TooLarge(Refused):
    pass


def _limit(size: int, what: str) -> None:
    if size > MAX_VALUE:
        raise TooLarge(f"{what} would be too large (over {MAX_VALUE:,} characters or items)")


# --- The loader ---------------------------------------------------------------------------------------


class FolderLoader(jinja2.BaseLoader):
    """Template files from the folders in order (the cohort's, then the shipped ones), but only a regular
    file whose real path, links resolved, is inside the folder it was found in. A name with a '..' segment,
    a link out of the folder, a pipe, a device or a folder is refused, not skipped, so it is reported."""

    def __init__(self, folders: list[Path]):
        # As given (how files are named in problems, like the cohort file names the folder), and real.
        self.folders = [(str(f), Path(os.path.realpath(f))) for f in folders]

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        pieces = [p for p in template.split("/") if p not in ("", ".")]
        if ".." in pieces or "\0" in template:
            raise Refused(f"template file '{template}' is outside the template folders ('..' is not allowed)")
        for shown, root in self.folders:
            path = root.joinpath(*pieces)
            try:
                os.lstat(path)
            except (FileNotFoundError, NotADirectoryError):
                continue
            name = os.path.normpath(os.path.join(shown, *pieces))
            real = os.path.realpath(path)
            if not Path(real).is_relative_to(root):
                raise Refused(f"template file '{template}' is outside the template folders (a link out of them is not allowed)", name)
            try:
                info = os.stat(real)
            except (FileNotFoundError, NotADirectoryError):
                continue  # a broken link: as if the file were not there
            if not stat.S_ISREG(info.st_mode):
                raise Refused(f"template file '{template}' is not a regular file", name)
            return _read(real, template, name), name, _uptodate(path, real, info)
        raise jinja2.TemplateNotFound(template)


def _read(real: str, template: str, name: str) -> str:
    try:
        # O_NONBLOCK: should a pipe be put in its place after the check above, opening it does not wait
        # for a writer; the fstat below then refuses it. O_NOFOLLOW: nor a link put in its place.
        fd = os.open(real, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise Refused(f"template file '{template}' cannot be read ({exc.strerror})", name) from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise Refused(f"template file '{template}' is not a regular file", name)
        data = f.read(MAX_TEMPLATE_BYTES + 1)
    if len(data) > MAX_TEMPLATE_BYTES:
        raise Refused(f"template file '{template}' is too large (over {MAX_TEMPLATE_BYTES:,} bytes)", name)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused(f"template file '{template}' is not UTF-8 text", name) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")  # as a file opened as text reads


def _uptodate(path: Path, real: str, before: os.stat_result) -> Callable[[], bool]:
    """Whether a compiled template still stands for its file: same real path (no link changed on the way),
    same file, unchanged; otherwise Jinja loads it again, through the checks above."""

    def same() -> bool:
        try:
            now = os.stat(real)
        except OSError:
            return False
        unchanged = (now.st_ino, now.st_dev, now.st_mtime_ns, now.st_size) == (
            before.st_ino,
            before.st_dev,
            before.st_mtime_ns,
            before.st_size,
        )
        return unchanged and os.path.realpath(path) == real

    return same


# --- The sandbox --------------------------------------------------------------------------------------

_SIZED = (str, bytes, list, tuple)


@dataclass
class Meter:
    """Work done rendering one part."""

    steps: int = 0
    work: int = 0


METER: ContextVar[Meter | None] = ContextVar("template_meter", default=None)


def _charge(steps: int = 1, work: int = 0) -> None:
    meter = METER.get()
    if meter is None:
        return
    meter.steps += steps
    meter.work += work
    if meter.steps > MAX_STEPS:
        raise TooLarge(f"template does too much work (over {MAX_STEPS:,} loop steps and calls)")
    if meter.work > MAX_WORK:
        raise TooLarge(f"template does too much work (over {MAX_WORK:,} characters handled)")


def _sizes(values: Iterable[Any]) -> int:
    return sum(len(v) for v in values if isinstance(v, _SIZED))


def _bounded(value: Any) -> Any:
    """A value, once it exists: refused if too large, else counted as work."""
    if isinstance(value, _SIZED):
        if len(value) > MAX_VALUE:
            raise TooLarge(f"a value in this template is too large (over {MAX_VALUE:,} characters or items)")
        _charge(0, len(value))
    return value


def _printed_size(value: Any, limit: int = MAX_VALUE) -> int:
    """About how long str(value) is, without building it (a list of a long text a million times over
    prints a million copies); counts only a little past `limit`."""
    total = 0
    todo = [value]
    while todo and total <= limit:
        item = todo.pop()
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, jinja2.Undefined):
            continue  # printing it raises Jinja's own error
        elif isinstance(item, Mapping):
            total += 2 + 4 * len(item)
            if total <= limit:
                todo.extend(item.keys())
                todo.extend(item.values())
        elif isinstance(item, Collection):
            total += 2 + 2 * len(item)
            if total <= limit:
                todo.extend(item)
        else:
            total += len(str(item))
    return total


def printable(value: Any) -> Any:
    """Jinja's `finalize`: every {{ value }} passes here before it becomes text."""
    _limit(_printed_size(value), "printing this value")
    return value


def _number(digits: str) -> int:
    return int(digits) if len(digits) <= 9 else 10**10  # a width in a format, without int()'s digit limit


_PRINTF_SPEC = re.compile(r"[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _printf_size(text: str, args: Any) -> int:
    """At most how long `text % args` is: widths and precisions, and each field as long as the longest value.
    One pass over the text (no regular expression that could rescan it for each %)."""
    values = tuple(args.values()) if isinstance(args, Mapping) else args if isinstance(args, tuple) else (args,)
    size, fields, star = len(text), 0, False
    at = text.find("%")
    while at != -1:
        at += 1
        if text.startswith("%", at):  # %%
            at = text.find("%", at + 1)
            continue
        if text.startswith("(", at):  # %(name)s
            at = text.find(")", at) + 1
            if not at:
                break  # Python refuses the format
        spec = _PRINTF_SPEC.match(text, at)
        assert spec is not None  # every part of the pattern is optional
        fields += 1
        for n in spec.groups():
            if n == "*":
                star = True
            elif n:
                size += _number(n)
        at = text.find("%", spec.end())
    if star:
        size += sum(abs(v) for v in values if isinstance(v, int))
    return size + fields * max((_printed_size(v) for v in values), default=0)


def _format_size(text: str, values: Collection[Any]) -> int:
    """The same for `text.format(...)`."""
    size, fields, nested = len(text), 0, False
    for _literal, field, spec, _conversion in string.Formatter().parse(text):
        if field is None:
            continue
        fields += 1
        nested = nested or "{" in (spec or "")
        size += sum(_number(n) for n in re.findall(r"\d+", spec or ""))
    if nested:
        size += sum(abs(v) for v in values if isinstance(v, int))
    return size + fields * max((_printed_size(v) for v in values), default=0)


def _count(text: str | bytes, old: Any) -> int:
    return text.count(old) if old else len(text) + 1


def _method_size(method: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int:
    """At most how long a string method's result is, for the methods that can make it longer than the
    string and its arguments together; 0 for any other call."""
    text = getattr(method, "__self__", None)
    if not isinstance(method, types.BuiltinMethodType | types.MethodType) or not isinstance(text, str | bytes):
        return 0
    name = method.__name__
    first = args[0] if args else None
    if name in ("center", "ljust", "rjust", "zfill"):
        return max(len(text), first if isinstance(first, int) else 0)
    if name == "expandtabs":
        tabsize = first if args else kwargs.get("tabsize", 8)
        return len(text) + _count(text, "\t" if isinstance(text, str) else b"\t") * max(tabsize if isinstance(tabsize, int) else 0, 0)
    if name == "replace" and len(args) >= 2:
        old, new = args[0], args[1]
        times = _count(text, old)
        count = args[2] if len(args) > 2 else kwargs.get("count", -1)
        if isinstance(count, int) and count >= 0:
            times = min(times, count)
        return len(text) + times * max(_sizes([new]) - _sizes([old]), 0)
    if name == "join" and isinstance(first, list):
        return _printed_size(first) + len(text) * max(len(first) - 1, 0)
    if name == "translate" and isinstance(first, Mapping):
        return len(text) * max((_sizes([v]) for v in first.values()), default=1)
    return 0


# Jinja's filters that can make a result much larger than their arguments, each with a check of the same
# parameters (those after the environment, context or eval_ctx Jinja passes first) that runs before the
# filter does. A check returning a value gives the filter that instead of its first argument (|join gets a
# list, to measure it first). tests/unit/test_template_safety.py checks these signatures against Jinja's.


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _check_center(value: Any, width: int = 80) -> None:
    _limit(max(_printed_size(value), width if isinstance(width, int) else 0), "|center")


def _check_indent(s: Any, width: int | str = 4, first: bool = False, blank: bool = False) -> None:
    step = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    _limit(_printed_size(s) + (_text(s).count("\n") + 1) * step, "|indent")


def _check_wordwrap(
    s: Any, width: int = 79, break_long_words: bool = True, wrapstring: str | None = None, break_on_hyphens: bool = True
) -> None:
    lines = sum(map(_text(s).count, " \t\n")) + 1
    _limit(_printed_size(s) + lines * _printed_size(wrapstring or "\n"), "|wordwrap")


def _check_replace(s: Any, old: Any, new: Any, count: int | None = None) -> None:
    _limit(_printed_size(old), "|replace")
    times = _count(_text(s), str(old))
    if isinstance(count, int) and count >= 0:
        times = min(times, count)
    _limit(_printed_size(s) + times * max(_printed_size(new) - len(str(old)), 0), "|replace")


def _check_format(value: Any, *args: Any, **kwargs: Any) -> None:
    _limit(_printf_size(_text(value), kwargs or args), "|format")


def _check_join(value: Iterable[Any], d: str = "", attribute: str | int | None = None) -> list[Any]:
    items = list(value)
    _limit(_printed_size(items) + _printed_size(d) * max(len(items) - 1, 0), "|join")
    return items


def _check_batch(value: Any, linecount: int, fill_with: Any = None) -> None:
    _limit(linecount if isinstance(linecount, int) else 0, "|batch")


def _check_slice(value: Any, slices: int, fill_with: Any = None) -> None:
    if isinstance(slices, int) and slices > MAX_RANGE:
        raise TooLarge(f"|slice would be too large (over {MAX_RANGE:,} slices)")


def _check_sum(iterable: Any, attribute: str | int | None = None, start: Any = 0) -> None:
    if not isinstance(start, int | float):  # adding up lists copies them over and over
        raise TooLarge("|sum would be too large (it adds up numbers only in a template)")


def _check_string(s: Any, /) -> None:
    _limit(_printed_size(s), "|string")


def _check_pprint(value: Any) -> None:
    _limit(_printed_size(value) * 2, "|pprint")


def _check_tojson(value: Any, indent: int | None = None) -> None:
    step = indent if isinstance(indent, int) else len(indent) if isinstance(indent, str) else 0
    _limit(_printed_size(value) * (6 + step), "|tojson")  # \u003c for <, and an indent per line


def _check_urlize(
    value: Any,
    trim_url_limit: int | None = None,
    nofollow: bool = False,
    target: str | None = None,
    rel: str | None = None,
    extra_schemes: Iterable[str] | None = None,
) -> None:
    extra = _printed_size(target or "") + _printed_size(rel or "")  # repeated in every link
    _limit(_printed_size(value) * 3 + extra * (len(_text(value)) // 4 + 1), "|urlize")


FILTER_CHECKS: dict[str, Callable[..., Any]] = {
    "center": _check_center,
    "indent": _check_indent,
    "wordwrap": _check_wordwrap,
    "replace": _check_replace,
    "format": _check_format,
    "join": _check_join,
    "batch": _check_batch,
    "slice": _check_slice,
    "sum": _check_sum,
    "string": _check_string,
    "pprint": _check_pprint,
    "tojson": _check_tojson,
    "urlize": _check_urlize,
}


def _guarded_filter(function: Callable[..., Any], check: Callable[..., Any] | None) -> Callable[..., Any]:
    # How Jinja calls a filter: with its environment, context or eval_ctx first if it is marked so.
    lead = 1 if getattr(function, "jinja_pass_arg", None) is not None else 0

    @functools.wraps(function)  # keeps that mark
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if check is not None and len(args) > lead:
            instead = check(*args[lead:], **kwargs)
            if instead is not None:
                args = (*args[:lead], instead, *args[lead + 1 :])
        _charge(1, _sizes(args) + _sizes(kwargs.values()))
        return _bounded(function(*args, **kwargs))

    return guarded


def _range(*args: int) -> range:
    numbers = range(*args)
    try:
        length = len(numbers)
    except OverflowError:  # more than sys.maxsize numbers
        length = MAX_RANGE + 1
    if length > MAX_RANGE:
        raise TooLarge(f"range() would be too large (over {MAX_RANGE:,} numbers)")
    return numbers


@functools.wraps(generate_lorem_ipsum)
def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:  # Jinja's names
    if n > 100 or max > 1000:
        raise TooLarge("lipsum() would be too large (at most 100 paragraphs of 1,000 words)")
    return generate_lorem_ipsum(n, html, min, max)


class _CodeGenerator(CodeGenerator):
    """Jinja's compiler, with hooks where a template could grow a value or loop without passing through
    anything the sandbox intercepts: {% for %} loops, text joined with ~, and the buffers that hold the
    output of macros, {% set %} blocks, {% filter %} and {% call %} blocks until they are done."""

    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        for loop in node.find_all(nodes.For):
            metered = nodes.Call(nodes.EnvironmentAttribute("metered"), [loop.iter], [], None, None, lineno=loop.iter.lineno)
            loop.iter = metered.set_environment(self.environment)
        super().visit_Template(node, frame)

    def buffer(self, frame: Frame) -> None:
        frame.buffer = self.temporary_identifier()
        self.writeline(f"{frame.buffer} = environment.new_buffer()")

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        if frame.eval_ctx.volatile:
            join = "(markup_join if context.eval_ctx.volatile else str_join)"
        elif frame.eval_ctx.autoescape:
            join = "markup_join"
        else:
            join = "str_join"
        self.write(f"environment.joined({join}, (")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class _Buffer(list[str]):
    """Output held back (a macro's, say): one value, so bounded like one."""

    size = 0

    def _add(self, size: int) -> None:
        self.size += size
        if self.size > MAX_VALUE:
            raise TooLarge(f"a block or macro's output would be too large (over {MAX_VALUE:,} characters)")
        _charge(0, size)

    def append(self, item: str) -> None:
        self._add(len(item))
        super().append(item)

    def extend(self, items: Iterable[str]) -> None:
        items = tuple(items)
        self._add(sum(map(len, items)))
        super().extend(items)


# Immutable rather than the plain sandbox: the context holds lists and dicts that are shared between the
# emails of a run (and between the renders of validate), so a template must not be able to change them for
# the next one with .append() or .update(). Templates only read their context; nothing shipped is refused.
class Sandbox(ImmutableSandboxedEnvironment):
    code_generator_class = _CodeGenerator
    # Operators that can build a huge value from small ones: 'x' * 10**9, 10**(10**10), and (in a loop)
    # s + s, '%999999999s' % s. Intercepted ones are never folded at compile time, so the checks below run
    # before anything is built, including while `validate` merely compiles.
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any):
        super().__init__(**options)
        self.globals.update(range=_range, lipsum=_lipsum)
        self.filters = {name: _guarded_filter(f, FILTER_CHECKS.get(name)) for name, f in self.filters.items()}

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, _SIZED) and isinstance(times, int):
                    _limit(len(seq) * times, "repeating this with *")
            if isinstance(left, int) and isinstance(right, int) and left.bit_length() + right.bit_length() > MAX_INT_BITS:
                raise TooLarge(f"multiplying these numbers would be too large (over {MAX_INT_BITS:,} bits)")
        elif operator == "**":
            if isinstance(left, int) and isinstance(right, int) and right > 0 and (abs(left).bit_length() - 1) * right > MAX_INT_BITS:
                raise TooLarge(f"this power would be too large (over {MAX_INT_BITS:,} bits)")
        elif operator == "+":
            if isinstance(left, _SIZED) and isinstance(right, _SIZED):
                _limit(len(left) + len(right), "adding these with +")
        elif operator == "%" and isinstance(left, str | bytes):
            _limit(_printf_size(left if isinstance(left, str) else left.decode("latin-1"), right), "formatting this with %")
        _charge(1, _sizes((left, right)))
        return _bounded(super().call_binop(context, operator, left, right))

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        if isinstance(obj, LoopContext) and args:  # loop(children) in a recursive loop: a loop too
            args = (self.metered(args[0]), *args[1:])
        if isinstance(getattr(obj, "__self__", None), str | bytes) and getattr(obj, "__name__", "") == "join" and args:
            args = (list(args[0]), *args[1:])  # to measure it first
        _limit(_method_size(obj, args, kwargs), f"{getattr(obj, '__name__', 'this call')}()")
        _charge(1, _sizes(args) + _sizes(kwargs.values()))
        return _bounded(super().call(context, obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        text, by_name = value.__self__, value.__name__ == "format_map"

        @functools.wraps(wrapped)
        def checked(*args: Any, **kwargs: Any) -> str:
            values = list(args[0].values()) if by_name and args and isinstance(args[0], Mapping) else [*args, *kwargs.values()]
            _limit(_format_size(text, values), f"{value.__name__}()")
            return wrapped(*args, **kwargs)

        return checked

    # Called by the code _CodeGenerator writes.

    def metered(self, iterable: Iterable[Any]) -> Iterator[Any]:
        for item in iterable:
            _charge()
            yield item

    def new_buffer(self) -> _Buffer:
        return _Buffer()

    def joined(self, join: Callable[[Iterable[Any]], str], items: tuple[Any, ...]) -> str:
        size = sum(_printed_size(item) for item in items)
        _limit(size, "joining text with ~")
        _charge(1, size)
        return join(items)
