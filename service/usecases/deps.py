"""What every use case is given: the inputs in force and the ports."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from ..domain.budget import Budget
from ..domain.memo import WorkedFrom
from ..domain.model import Cohort
from ..domain.outbox import HORIZON
from ..domain.planning import Busy
from ..domain.ports import Calendar, CalendarWatch, FreeBusy, Mailer, Meet, Replies, Store
from ..mail.links import PersonalLinks
from ..mail.templates import Templates


@dataclass(frozen=True)
class Inputs:
    cohort: Cohort
    busy: Busy
    templates: Templates


class InputsSource(Protocol):
    def current(self) -> tuple[Inputs, bool]:
        """The configuration in force, and whether it changed since the last call. An
        invalid edit is reported through `problems` and the last valid one stays."""

    @property
    def problems(self) -> list[str]:
        """Why the last edit was not applied, if it was not."""


@dataclass
class Deps:
    store: Store
    mailer: Mailer
    source: InputsSource
    stop: threading.Event = field(default_factory=threading.Event)
    batch: int = 200  # messages sent per connection and store read
    calendar: Calendar | None = None  # None: invitations go by email (iMIP)
    free_busy: FreeBusy | None = None  # None: declared hours and .ics files only
    replies: Replies | None = None  # the organiser's mailbox, for answers to invitations by email
    links: PersonalLinks | None = None  # personal links to the web pages, when they are served
    meet: Meet | None = None  # Google Meet, where attendance is read from the sessions' rooms
    budget: Budget | None = None  # the mailbox's daily sending limits (Gmail)
    watch: CalendarWatch | None = None  # Google's notices of calendar changes (push), when it can send them
    notify_address: str | None = None  # where Google posts them: the public HTTPS address's /calendar/notify
    # Where the state holds several cohorts: each one's figures in a line, and all together (for the digest).
    cohorts: Callable[[datetime], list[dict[str, str]]] | None = None
    horizon: timedelta | None = HORIZON  # a new message is written into the outbox this long before it is due (None: at once)
    # Pair -> the details and sessions its stored messages were planned from: unchanged, they need no new plan.
    planned_from: WorkedFrom = field(default_factory=WorkedFrom)
    # Session -> what it was rechecked against when no time inside both people's hours was free.
    no_time_inside: WorkedFrom = field(default_factory=WorkedFrom)
    # (pair, number) -> the session, pair and busy times it was last found to fit: while the
    # session is the same and the others the very same objects, it still fits.
    fitting: dict[tuple[str, int], tuple[object, ...]] = field(default_factory=dict)


class LockLost(Exception):
    """Another daemon may be working on this state now: this one must stop at once."""
