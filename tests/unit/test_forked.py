"""Work done beside the caller in a forked process: answered from there, done by the
caller itself where no process can be forked or the one forked fails; and the templates
checked that way while the pairings are read, their compiled code handed back.

Forking is only tried in a process with no other thread, which a test session cannot
promise (servers of other tests may still run): each case runs in a fresh interpreter."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from service.domain.forked import Beside

ROOT = Path(__file__).parents[2]


def run_fresh(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_work_beside_is_done_in_another_process_and_its_answer_comes_back():
    answered = run_fresh(
        """
        import os
        from service.domain.forked import Beside
        beside = Beside(lambda: ("done by", os.getpid()))
        print(beside.answer()[1] != os.getpid())
        """
    )
    assert answered == "True"


def test_a_worker_that_fails_or_dies_leaves_the_work_to_the_caller():
    answered = run_fresh(
        """
        import os
        from service.domain.forked import Beside
        caller = os.getpid()

        def fails():
            if os.getpid() != caller:
                raise RuntimeError("only in the worker")
            return "the caller did it"

        def dies():
            if os.getpid() != caller:
                os._exit(3)
            return "the caller did it"

        print(Beside(fails).answer(), Beside(dies).answer(), sep=", ")
        """
    )
    assert answered == "the caller did it, the caller did it"


def test_a_worker_whose_answer_is_not_wanted_is_stopped_even_while_it_ignores_a_polite_stop():
    # As a worker forked a moment ago does with its parent's handlers (a daemon's only set
    # a flag): then, with a large answer the parent no longer reads, it would wait forever.
    answered = run_fresh(
        """
        import multiprocessing, signal, time
        from service.domain.forked import Beside

        def work():
            signal.signal(signal.SIGTERM, lambda *args: None)
            time.sleep(0.5)
            return b"x" * 1_000_000

        beside = Beside(work)
        time.sleep(0.2)
        running = len(multiprocessing.active_children())
        beside.close()
        print(running, len(multiprocessing.active_children()))
        """
    )
    assert answered == "1 0"


def test_with_another_thread_running_the_caller_does_the_work_when_asked():
    asked = []
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        beside = Beside(lambda: asked.append(threading.get_native_id()) or "answered")
        assert asked == []  # nothing done until it is asked for
        assert beside.answer() == "answered"
        assert asked == [threading.get_native_id()]  # here, in this process
    finally:
        stop.set()
        other.join()


def test_templates_checked_beside_while_the_pairings_are_read_are_not_compiled_again():
    answered = run_fresh(
        """
        from pathlib import Path
        from service import bootstrap
        from service.mail.compose import check_templates

        inputs = bootstrap.load_inputs(Path("config/cohort.example.yaml"))
        templates = inputs.templates
        print(len(templates.env.cache), len(templates.compiled()) > 50)

        def compile_again(*args, **kwargs):
            raise AssertionError("compiled again")

        templates.env.compile = compile_again
        print(check_templates(inputs.cohort, templates))
        """
    )
    # None loaded here by the check, the code of every template handed back, and every
    # one of them rendered again from that code.
    assert answered.splitlines() == ["0 True", "[]"]


def test_a_broken_template_found_beside_is_reported_with_its_file_and_line(tmp_path):
    folder = tmp_path / "cohort"
    shutil.copytree(ROOT / "config", folder)
    (folder / "my-templates" / "session1_prep").mkdir(parents=True)
    (folder / "my-templates" / "session1_prep" / "mentor.txt").write_text("Hi {{ reader.first_name }},\n\n{{ session1.whenn }}.\n")
    config = folder / "cohort.example.yaml"
    config.write_text(config.read_text() + "\nemails:\n  templates: my-templates\n")
    done = subprocess.run(
        [sys.executable, "-m", "service", "validate", "--config", "cohort.example.yaml"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines()[:2] == [
        "1 problem in the configuration; nothing was booked or sent:",
        "my-templates/session1_prep/mentor.txt:3: template error: 'whenn' is not available to this"
        " template (misspelt, or not one of its variables)",
    ]
