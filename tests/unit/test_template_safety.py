"""A cohort's own templates are untrusted: they render in a sandbox, read only files inside the template
folders, and cannot make the service build huge values or work without end. With the plain
jinja2.Environment and FileSystemLoader used before, each attack below ran, leaked, took gigabytes or
minutes, or was misreported; the tests at the end check that ordinary templates still work."""

from __future__ import annotations

import inspect
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from jinja2.defaults import DEFAULT_FILTERS

from service.domain.model import Role
from service.mail.compose import check_templates
from service.mail.sandbox import FILTER_CHECKS, MAX_OUTPUT, MAX_STEPS, MAX_TEMPLATE_BYTES
from service.mail.templates import TemplateProblem, Templates
from tests.builders import cohort, pair, person

CONTEXT = {
    "stage": "welcome",
    "cohort": {"name": "Spring cohort"},
    "coordinator": {"name": "Renata Alves", "email": "renata@example.org"},
    "reader": {"first_name": "Zoë", "name": "Zoë Martin"},
    "pair": {"notes": "Likes <b>bold</b> plans & long walks. " * 5},
}
SECRET = "TOP-SECRET-OUTSIDE-THE-FOLDER"
NAME = "event/description.txt"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def problem_of(override: Path, name: str = NAME) -> TemplateProblem:
    with pytest.raises(TemplateProblem) as caught:
        Templates(override=override).render_one(name, CONTEXT)
    return caught.value


@pytest.fixture
def override(tmp_path: Path) -> Path:
    folder = tmp_path / "my-templates"
    folder.mkdir()
    return folder


@pytest.fixture
def alarm() -> Iterator[None]:
    """A test that would hang (opening a pipe, say) fails after 10 s instead."""

    def stop(signum, frame):
        raise TimeoutError("the template render hung")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(10)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


# --- Python from a template ---------------------------------------------------------------------------

ESCAPES = {
    # payload: the attribute the sandbox names. MARKER is a file the payload would create.
    "{{ ''.__class__.__mro__[1].__subclasses__() }}": "__class__",
    "{{ cycler.__init__.__globals__.os.system('touch MARKER') }}": "__init__",
    "{{ cycler.__init__.__globals__.__builtins__.open('MARKER', 'w').write('pwned') }}": "__init__",
    "{{ joiner.__init__.__globals__.os.popen('touch MARKER').read() }}": "__init__",
    "{{ namespace.__init__.__globals__.os.system('touch MARKER') }}": "__init__",
    "{{ lipsum.__globals__['os'].system('touch MARKER') }}": "__globals__",
    "{{ self._TemplateReference__context.cycler.__init__.__globals__.os.system('touch MARKER') }}": "_TemplateReference__context",
    "{{ reader.first_name.__class__.__base__.__subclasses__() }}": "__class__",
    "{{ ''['__class__']['__mro__'] }}": "__class__",
    "{{ (cycler|attr('__init__')|attr('__globals__')).os.system('touch MARKER') }}": "__globals__",
    "{{ '{0.__class__.__mro__}'.format('') }}": "__class__",
    "{% set x = cycler.__init__.__globals__.os.system('touch MARKER') %}done": "__init__",
}


@pytest.mark.parametrize("payload", ESCAPES)
def test_python_internals_are_refused_and_nothing_runs(override, tmp_path, payload):
    marker = tmp_path / "pwned"
    write(override, NAME, "Hello {{ reader.first_name }},\n\n" + payload.replace("MARKER", str(marker)) + "\n")
    problem = problem_of(override)
    assert problem.file == str(override / NAME)
    assert problem.line == 3
    assert problem.message == f"template error: not allowed in a template: access to '{ESCAPES[payload]}'"
    assert "Traceback" not in str(problem)
    assert not marker.exists()


def test_validate_reports_a_python_escape_and_runs_nothing(override, tmp_path):
    """`mentorship validate` renders every template (check_templates) and promises to write nothing."""
    marker = tmp_path / "pwned"
    write(
        override, "welcome/mentee.txt", "Hi,\n{{ cycler.__init__.__globals__.__builtins__.open('" + str(marker) + "', 'w').write('x') }}\n"
    )
    mentor, mentee = person("Ada Mentor"), person("Zoe Mentee")
    problems = check_templates(cohort(pair(mentor, mentee)), Templates(override=override))
    assert [(p.file, p.line, p.message) for p in problems] == [
        (str(override / "welcome/mentee.txt"), 2, "template error: not allowed in a template: access to '__init__'")
    ]
    assert not marker.exists()


# --- Files outside the template folders ---------------------------------------------------------------


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the template folder, with a file whose content must not leak."""
    folder = tmp_path / "outside"
    write(folder, "secret.txt", SECRET + "\n")
    write(tmp_path, "outside.txt", SECRET + "\n")
    return folder


def link_to_file(override: Path, outside: Path) -> str:
    (override / "notes.txt").symlink_to(outside / "secret.txt")
    return "notes.txt"


def link_to_folder(override: Path, outside: Path) -> str:
    (override / "shared").symlink_to(outside, target_is_directory=True)
    return "shared/secret.txt"


def dot_dot(override: Path, outside: Path) -> str:
    return "../outside.txt"


def dot_dot_inside_a_name(override: Path, outside: Path) -> str:
    return "event/../../outside.txt"


@pytest.mark.parametrize("target", [link_to_file, link_to_folder, dot_dot, dot_dot_inside_a_name])
def test_an_include_of_a_file_outside_the_folders_is_refused(override, outside, target):
    name = target(override, outside)
    write(override, NAME, "Hello {{ reader.first_name }},\n{% include '" + name + "' %}\n")
    problem = problem_of(override)
    assert (problem.file, problem.line) == (str(override / NAME), 2)  # the including template, where
    assert problem.message.startswith(f"template file '{name}' is outside the template folders")
    assert SECRET not in str(problem)


def test_a_template_that_is_itself_a_link_out_of_the_folder_is_refused(override, outside):
    (override / "event").mkdir()
    (override / NAME).symlink_to(outside / "secret.txt")
    problem = problem_of(override)
    assert problem.file == str(override / NAME)
    assert "is outside the template folders" in problem.message
    assert SECRET not in str(problem)


def test_a_link_inside_the_folder_is_fine(override):
    write(override, "parts/greeting.txt", "Hello {{ reader.first_name }}!")
    (override / "greeting.txt").symlink_to(override / "parts" / "greeting.txt")
    write(override, NAME, "{% include 'greeting.txt' %}\n")
    assert Templates(override=override).render_one(NAME, CONTEXT) == "Hello Zoë!\n"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_pipe_is_refused_without_waiting_for_a_writer(override, alarm):
    (override / "event").mkdir()
    os.mkfifo(override / NAME)  # given as the template itself: refused, not replaced by the shipped one
    problem = problem_of(override)
    assert (problem.file, problem.message) == (str(override / NAME), f"template file '{NAME}' is not a regular file")

    os.mkfifo(override / "pipe.txt")  # and included
    write(override, "welcome/mentee.txt", "Hi\n{% include 'pipe.txt' %}\n")
    problem = problem_of(override, "welcome/mentee.txt")
    assert (problem.line, problem.message) == (2, "template file 'pipe.txt' is not a regular file")


def test_a_missing_include_is_named_where_it_is_included(override):
    write(override, NAME, "Hello\n{% include 'nope.txt' %}\n")
    problem = problem_of(override)
    assert (problem.file, problem.line, problem.message) == (str(override / NAME), 2, "template file 'nope.txt' is missing")


def test_a_folder_is_not_a_template(override):
    write(override, "parts/a.txt", "a")
    write(override, NAME, "{% include 'parts' %}\n")
    assert problem_of(override).message == "template file 'parts' is not a regular file"


def test_a_template_file_over_the_size_bound_is_refused(override):
    write(override, NAME, "x" * (MAX_TEMPLATE_BYTES + 1))
    problem = problem_of(override)
    assert problem.file == str(override / NAME)
    assert problem.message == f"template file '{NAME}' is too large (over {MAX_TEMPLATE_BYTES:,} bytes)"


# --- Huge values and endless work ---------------------------------------------------------------------

DOUBLINGS = "{% set a = 'x' * 1000 %}" + "".join("{% set a = a ~ a %}" for _ in range(20)) + "{{ a|length }}"
HUGE = [
    "{{ 'x' * 10**9 }}",
    "{{ 10**9 * 'x' }}",
    "{{ [0] * 10**9 }}",
    "{% for i in range(10**9) %}x{% endfor %}",
    "{{ range(10**30)|length }}",
    "{{ 10**(10**10) }}",  # Jinja's ** is left-associative: 10**10**10 is only 10**100
    "{{ '%999999999s' % 'x' }}",
    "{{ '%-*s'|format(10**9, 'x') }}",
    "{{ '{:>999999999}'.format('x') }}",
    "{{ 'x'|center(10**9) }}",
    "{{ 'x'.ljust(10**9) }}",
    "{{ 'x\\ny'|indent(10**9) }}",
    "{{ [1]|batch(10**9, 0)|list }}",
    "{{ [1, 2, 3]|slice(10**9)|list }}",
    "{{ ('ab' * 1000).replace('a', 'x' * 10000) }}",
    "{{ ([('x' * 100000)] * 100)|join }}",
    "{{ [('x' * 100000)] * 100 }}",
    "{{ lipsum(10**6) }}",
    pytest.param(DOUBLINGS, id="a text doubled 20 times with ~"),  # ~ is not an operator the sandbox intercepts
    pytest.param(
        "{% macro m() %}{% for i in range(10000) %}{{ 'y' * 1000 }}{% endfor %}{% endmacro %}{{ m()|length }}",
        id="10 MB held in a macro's buffer",
    ),
]


@pytest.mark.parametrize("payload", HUGE)
def test_a_huge_value_is_refused_before_it_is_built(override, payload):
    write(override, NAME, "Hello,\n" + payload + "\n")
    problem = problem_of(override)
    assert problem.file == str(override / NAME)
    assert problem.line == 2
    assert "would be too large" in problem.message or "is too large" in problem.message
    assert "Traceback" not in problem.message


@pytest.mark.parametrize("name", FILTER_CHECKS)
def test_each_filter_check_takes_the_filters_own_parameters(name):
    """A check reads its filter's arguments by position and name: if Jinja changes a filter's parameters,
    the check must change with it (else it would read the wrong argument and let a huge one through)."""
    filter_ = DEFAULT_FILTERS[name]
    sync = inspect.unwrap(filter_)  # Jinja's async_variant filters wrap a sync one, and may add eval_ctx
    params = list(inspect.signature(sync).parameters.values())
    if getattr(sync, "jinja_pass_arg", None) is not None:
        params = params[1:]  # the environment, context or eval_ctx Jinja passes first
    ours = list(inspect.signature(FILTER_CHECKS[name]).parameters.values())
    assert [(p.name, p.kind, p.default) for p in ours] == [(p.name, p.kind, p.default) for p in params]


def test_the_output_of_a_part_is_bounded(override):
    write(override, NAME, "{% for i in range(5000) %}{{ 'y' * 1000 }}\n{% endfor %}")  # 5 MB, in 1 KB pieces
    problem = problem_of(override)
    assert (problem.file, problem.line) == (str(override / NAME), 0)
    assert problem.message == f"template output is too large (over {MAX_OUTPUT:,} characters)"


ENDLESS = {
    "a loop in a loop": "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",  # 10**8 steps
    "a macro calling itself twice": "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}",
    "a recursive loop": "{% for i in range(100) recursive %}{% if loop.depth < 9 %}{{ loop(range(100)) }}{% endif %}{% endfor %}",
}


@pytest.mark.parametrize("payload", ENDLESS.values(), ids=ENDLESS.keys())
def test_endless_work_without_output_is_stopped(override, payload):
    write(override, NAME, payload + "\n")
    problem = problem_of(override)
    assert problem.message == f"template does too much work (over {MAX_STEPS:,} loop steps and calls)"


# --- Everything a coordinator may write still works ---------------------------------------------------


def test_a_normal_override_still_renders(override):
    write(override, "welcome/mentee.subject", "Welcome, {{ reader.first_name }}!\n")
    write(
        override,
        "welcome/mentee.txt",
        "{% from 'macros.txt' import sign %}\nHi {{ reader.first_name }},\n\n"
        "{{ pair.notes|wordwrap(40, break_long_words=False) }}\n"
        "{% for word in ['one', 'two'] %}{{ loop.index }}. {{ word|upper }}\n{% endfor %}\n"
        "{% set ns = namespace(n=0) %}{% for i in range(3) %}{% set ns.n = ns.n + i %}{% endfor %}Sum {{ ns.n }}, "
        "{{ '%s/%d'|format('a', 2) }}, {{ '{}!'.format('b') }}, {{ 'c' * 3 }}, {{ 'd' ~ 'e' }}\n"
        "{{ sign(coordinator.name) }}\n",
    )
    write(override, "macros.txt", "{% macro sign(name) %}-- {{ name }}{% endmacro %}")
    write(
        override,
        "welcome/mentee.html",
        '{% extends "_layout.html" %}\n{% block body %}\n<p>{{ pair.notes }}</p>\n{% include "footer.html" %}\n{% endblock %}\n',
    )
    write(override, "footer.html", "<p>Bye, {{ reader.name }}</p>\n")
    rendered = Templates(override=override).render("welcome", Role.MENTEE, CONTEXT)
    assert rendered.subject == "Welcome, Zoë!"
    assert rendered.text.startswith("Hi Zoë,\n\nLikes <b>bold</b> plans & long walks.\nLikes <b>bold</b>")
    assert "1. ONE\n2. TWO\n" in rendered.text
    assert "Sum 3, a/2, b!, ccc, de\n-- Renata Alves\n" in rendered.text
    assert "<title>Welcome, Zoë!</title>" in rendered.html  # the shipped layout, from the shipped folder
    assert "<p>Likes &lt;b&gt;bold&lt;/b&gt; plans &amp; long walks." in rendered.html
    assert "<p>Bye, Zoë Martin</p>" in rendered.html


def test_the_shipped_templates_render_as_before():
    """Every stage, every role, with and without optional details: no problems (see check_templates)."""
    mentor, mentee = person("Ada Mentor"), person("Zoe Mentee")
    assert check_templates(cohort(pair(mentor, mentee)), Templates()) == []
