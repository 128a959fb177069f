"""Calendar invitations as iCalendar (RFC 5545) meeting requests."""

from __future__ import annotations

import hashlib
from datetime import datetime

import icalendar

from ..domain.model import Cohort, Pair, Session


def event_uid(cohort: Cohort, pair: Pair, number: int) -> str:
    """Stable for the life of the session, so an update replaces the invitation."""
    cohort_tag = hashlib.sha256(cohort.name.encode("utf-8")).hexdigest()[:10]
    domain = cohort.coordinator.email.rpartition("@")[2]
    return f"{cohort_tag}-{pair.id}-session{number}@{domain}"


def invitation(
    cohort: Cohort,
    pair: Pair,
    session: Session,
    *,
    stamp: datetime,
    sequence: int = 0,
    description: str = "",
    method: str = "REQUEST",
) -> bytes:
    """A REQUEST (or CANCEL) for one session, organised by the coordinator, with both
    people as attendees who are asked to reply."""
    link = cohort.link_for(pair)
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//Mentorship service//EN")
    calendar.add("version", "2.0")
    calendar.add("method", method)
    event = icalendar.Event()
    event.add("uid", event_uid(cohort, pair, session.number))
    event.add("sequence", sequence)
    event.add("dtstamp", stamp)
    event.add("dtstart", session.start)
    event.add("dtend", session.end)
    event.add("summary", f"Mentorship session {session.number}: {pair.mentor.name} and {pair.mentee.name}")
    event.add("description", description + (f"\n\nJoin: {link}" if link else ""))
    if link:
        event.add("location", link)
        event.add("url", link)
    event.add("status", "CANCELLED" if method == "CANCEL" else "CONFIRMED")
    organizer = icalendar.vCalAddress(f"mailto:{cohort.coordinator.email}")
    organizer.params["cn"] = cohort.coordinator.name
    event.add("organizer", organizer)
    for person in pair.people:
        attendee = icalendar.vCalAddress(f"mailto:{person.email}")
        attendee.params.update({"cn": person.name, "role": "REQ-PARTICIPANT", "partstat": "NEEDS-ACTION", "rsvp": "TRUE"})
        event.add("attendee", attendee)
    calendar.add_component(event)
    return calendar.to_ical()
