"""Stop signals: a stop asks the work under way to finish, except where nothing needs
finishing (before the daemon's loop runs, or while it reads an edit of its files), which
ends at once."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

_abandonable = False  # the main thread is inside `abandonable()`


class Stopped(BaseException):
    """A stop signal came when nothing under way had to finish. A BaseException, like
    KeyboardInterrupt, so no `except Exception` on the way catches it."""


def stop_at_once() -> None:
    """Until a loop takes over, SIGINT and SIGTERM raise Stopped."""

    def stop(signum: int, frame: FrameType | None) -> None:
        raise Stopped()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def on_stop(stop: threading.Event, then: Callable[[], None] | None = None) -> None:
    """From now on SIGINT and SIGTERM set `stop` (and call `then`, if given), so the
    work under way finishes first; inside `abandonable()` they also raise Stopped."""

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()
        if then is not None:
            then()
        if _abandonable:
            raise Stopped()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


@contextmanager
def abandonable() -> Iterator[None]:
    """Work that writes nothing, such as reading the configuration files (which a bad
    edit can make slow): a stop signal meanwhile abandons it by raising Stopped. Signals
    reach the main thread only, so elsewhere this changes nothing."""
    global _abandonable
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before, _abandonable = _abandonable, True
    try:
        yield
    finally:
        _abandonable = before
