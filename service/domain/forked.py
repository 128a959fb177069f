"""Work done in forked processes, on a machine with more than one processor: work that is
pure and large cut into runs and merged in order (planning a cohort of thousands of pairs),
or one piece done beside the caller while it goes on (checking the templates while the
pairings are read). Forked, a worker inherits what the work reads (never copied or
pickled); only the answer comes back."""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

WORKERS = 2  # at most, one per processor
RUNS_PER_WORKER = 4  # each worker takes several runs in turn: a large piece must not leave one worker the whole tail

Work = Callable[[int, int], dict[Any, Any]]  # does pieces [first, last) and answers by key
T = TypeVar("T")

# The work the workers take their share of: set just before they are forked, so they
# inherit it, and cleared after.
_inherited: Work | None = None


def in_workers(work: Work, sizes: Sequence[int]) -> dict[Any, Any] | None:
    """`work` over pieces of these sizes, in runs of consecutive pieces done by forked
    workers, the answers merged in order; None when that cannot be done here: one
    processor, or no process may be forked (_may_fork)."""
    global _inherited
    workers = min(WORKERS, _processors())
    if workers < 2 or not _may_fork():
        return None
    _inherited = work
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"), initializer=_worker_started) as pool:
            parts = [pool.submit(_run, first, last) for first, last in runs(sizes, workers * RUNS_PER_WORKER)]
            done: dict[Any, Any] = {}
            for part in parts:
                done.update(part.result())
            return done
    except (OSError, BrokenProcessPool):  # no processes to be had, or one died: the caller does it
        return None
    finally:
        _inherited = None


class Beside(Generic[T]):
    """`work` started in a forked process, on another processor, while the caller goes
    on; `answer()` waits for what it returns. The caller does the work itself, when asked,
    where no process can be forked (see in_workers) or the one forked died or failed."""

    def __init__(self, work: Callable[[], T]):
        self._work = work
        self._process: multiprocessing.process.BaseProcess | None = None
        if _processors() < 2 or not _may_fork():
            return
        context = multiprocessing.get_context("fork")
        self._answers, sending = context.Pipe(duplex=False)
        process = context.Process(target=_answer, args=(work, sending), daemon=True)
        try:
            process.start()
            self._process = process
        except OSError:
            self._answers.close()
        finally:
            sending.close()  # the worker's copy is the one that sends

    def answer(self) -> T:
        if self._process is not None:
            try:
                answered = self._answers.recv()
            except EOFError:  # the worker died
                answered = None
            finally:
                self.close()
            if answered is not None:
                return answered[0]
        return self._work()

    def close(self) -> None:
        """Stop the worker, if it still runs (its answer is not wanted after all). Killed:
        a worker forked a moment ago may still have its parent's handlers for the polite
        signals, which do not end a process."""
        if self._process is not None:
            self._process.kill()
            self._process.join()
            self._process.close()
            self._answers.close()
            self._process = None


def _answer(work: Callable[[], Any], sending: Any) -> None:
    _worker_started()
    try:
        answered = (work(),)
    except Exception:  # the caller does it again, and sees why
        answered = None
    sending.send(answered)


def _processors() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _may_fork() -> bool:
    """Not with other threads running (a fork copies their locks in whatever state they
    are), nor where there is no fork (not Linux), nor in a daemonic process, which may
    not have children."""
    if threading.active_count() > 1 or "fork" not in multiprocessing.get_all_start_methods():
        return False
    return not multiprocessing.current_process().daemon


def _worker_started() -> None:
    """A worker only works: the signal handlers it inherited (a daemon's, that stop it
    and close its store) are not its own: a signal ends it plainly, and the caller then
    does the work itself. Its collector never walks, and so copies, what it inherited."""
    for number in signal.valid_signals():
        if callable(signal.getsignal(number)):
            signal.signal(number, signal.SIG_DFL)
    gc.freeze()


def _run(first: int, last: int) -> dict[Any, Any]:
    assert _inherited is not None, "only run in a worker forked by in_workers"
    return _inherited(first, last)


def runs(sizes: Sequence[int], count: int) -> list[tuple[int, int]]:
    """Pieces of these sizes cut into about `count` runs of consecutive pieces with about
    as much in each, as (first, last) index ranges."""
    total = sum(sizes)
    cut: list[tuple[int, int]] = []
    first = done = 0
    for i, size in enumerate(sizes):
        done += size
        if done * count >= total * (len(cut) + 1):
            cut.append((first, i + 1))
            first = i + 1
    if first < len(sizes):
        cut.append((first, len(sizes)))
    return cut


@contextmanager
def collecting_new_objects_only(when: bool) -> Iterator[None]:
    """While large work runs, the garbage collector leaves alone the objects that were
    there before (gc.freeze), such as a million busy intervals: walking them all takes a
    tenth of a second each time, and the work makes nothing that refers to them in a
    cycle. Not when someone else has frozen objects: thawing would thaw theirs too."""
    if not when or gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
