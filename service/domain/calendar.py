"""Sessions as calendar events, and what a change seen in the calendar means: pure."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from .model import Contact, Pair

TAG = "mentorship"  # extendedProperties.private key marking our events (value: the cohort tag)
NO_ANSWER = "needsAction"  # an invited person who has not answered yet


def cohort_tag(cohort_name: str) -> str:
    return hashlib.sha256(cohort_name.encode("utf-8")).hexdigest()[:16]


def event_id(cohort_name: str, pair_id: str, number: int) -> str:
    """Stable for (cohort, pair, session): a retried insert is a 409 we can adopt.
    Base32hex, lower case: the characters Google allows in client-chosen ids."""
    digest = hashlib.sha256(f"{cohort_name}\x1f{pair_id}\x1f{number}".encode()).digest()[:20]
    return base64.b32hexencode(digest).decode("ascii").lower().rstrip("=")


@dataclass(frozen=True, kw_only=True)
class EventRequest:
    """The event a session should be, as we want the calendar to hold it."""

    event_id: str
    exists: bool  # the calendar has had this event: change it rather than create it
    pair_id: str
    number: int
    start: datetime
    end: datetime
    summary: str
    description: str
    attendees: tuple[Contact, ...]
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class CalendarEvent:
    """An event as the calendar holds it."""

    event_id: str
    start: datetime | None
    end: datetime | None
    cancelled: bool
    responses: Mapping[str, str]  # email -> needsAction (NO_ANSWER) | accepted | declined | tentative
    meet_link: str | None = None
    conference: str | None = None  # pending | success | failure
    tags: Mapping[str, str] = field(default_factory=dict)


class CalendarError(Exception):
    """A calendar call failed. Transient ones are tried again on a later tick; others wait
    until what was asked changes. `whole`: the calendar as a whole refuses (credentials, an
    API not enabled, usage limits), so the coordinator is told once, not per event."""

    def __init__(self, reason: str, *, transient: bool, whole: bool = False):
        super().__init__(reason)
        self.reason, self.transient, self.whole = reason, transient, whole


@dataclass(frozen=True)
class Moved:
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Declined:
    who: str  # a name, for the sentence that tells both people


@dataclass(frozen=True)
class Deleted:
    pass


def observe(
    pair: Pair,
    *,
    start: datetime,
    end: datetime,
    we_cancelled: bool,
    event: CalendarEvent,
) -> Moved | Declined | Deleted | None:
    """What a change seen in the calendar means for a session we booked, if anything.

    Our own writes come back through the change feed too; they match what we store and
    mean nothing.
    """
    if event.cancelled:
        return None if we_cancelled else Deleted()
    if we_cancelled:
        return None
    for person in pair.people:
        if event.responses.get(person.email) == "declined":
            return Declined(who=person.name)
    if event.start is not None and event.end is not None and (event.start, event.end) != (start, end):
        return Moved(start=event.start, end=event.end)
    return None
