"""Python's cycle collector, kept out of bulk work.

Loading a large cohort and planning it make hundreds of thousands of objects that live on
(pairs, sessions, planned emails) and next to no cycles. With the collector on, the heap
is walked again and again as it grows: at 10,000 pairs, seven full collections took 0.45 s
of a 3.9 s first tick. Paused while the files are loaded or the sessions and emails are
planned, the collector finds what reference counting left at its first collection after.
Not while sending: a message's objects make cycles, and a burst is thousands of them.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused() -> Iterator[None]:
    if not gc.isenabled():  # paused already: by a caller, or by another thread's tick
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
