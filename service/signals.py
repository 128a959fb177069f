"""Stop signals before the daemon's loop runs: end the command quietly."""

from __future__ import annotations

import signal
from types import FrameType


class Stopped(BaseException):
    """A stop signal came before the daemon's loop was running: nothing to finish. A
    BaseException, like KeyboardInterrupt, so no `except Exception` on the way catches it."""


def stop_at_once() -> None:
    """Until a loop takes over, SIGINT and SIGTERM raise Stopped."""

    def stop(signum: int, frame: FrameType | None) -> None:
        raise Stopped()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
