"""Work cut into runs and done in forked worker processes, merged in order: for work that
is pure and large (planning a cohort of thousands of pairs), on a machine with more than
one processor. Forked, the workers inherit what the work reads (never copied or pickled);
only each run's answer comes back."""

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
from typing import Any

WORKERS = 2  # at most, one per processor
RUNS_PER_WORKER = 4  # each worker takes several runs in turn: a large piece must not leave one worker the whole tail

Work = Callable[[int, int], dict[Any, Any]]  # does pieces [first, last) and answers by key

# The work the workers take their share of: set just before they are forked, so they
# inherit it, and cleared after.
_inherited: Work | None = None


def in_workers(work: Work, sizes: Sequence[int]) -> dict[Any, Any] | None:
    """`work` over pieces of these sizes, in runs of consecutive pieces done by forked
    workers, the answers merged in order; None when that cannot be done here: one
    processor, no fork (not Linux), other threads running (a fork copies their locks in
    whatever state they are), or a daemonic process, which may not have children."""
    global _inherited
    workers = min(WORKERS, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    if workers < 2 or threading.active_count() > 1 or "fork" not in multiprocessing.get_all_start_methods():
        return None
    if multiprocessing.current_process().daemon:
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
