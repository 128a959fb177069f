"""What a change seen in the calendar means for a booked session: one row per case."""

from datetime import UTC, datetime, timedelta

import pytest

from service.domain.calendar import CalendarEvent, Declined, Deleted, Moved, observe
from tests.builders import pair, person

START = datetime(2027, 3, 2, 15, tzinfo=UTC)
END = START + timedelta(hours=1)
PAIR = pair(person("Maya Chen"), person("Zoe Park"))
MENTOR, MENTEE = PAIR.mentor.email, PAIR.mentee.email


def seen(*, start=START, end=END, cancelled=False, mentor="accepted", mentee="needsAction"):
    return CalendarEvent(event_id="e", start=start, end=end, cancelled=cancelled, responses={MENTOR: mentor, MENTEE: mentee})


LATER = START + timedelta(days=1)


@pytest.mark.parametrize(
    ("we_cancelled", "event", "expected"),
    [
        (False, seen(), None),  # our own write coming back
        (False, seen(mentee="accepted"), None),  # an answer is not a change of plan
        (False, seen(mentee="tentative"), None),
        (False, seen(start=LATER, end=LATER + timedelta(hours=1)), Moved(LATER, LATER + timedelta(hours=1))),
        (False, seen(mentee="declined"), Declined(who="Zoe Park")),
        (False, seen(mentor="declined", start=LATER, end=LATER + timedelta(hours=1)), Declined(who="Maya Chen")),
        (False, seen(cancelled=True), Deleted()),  # deleted by hand
        (True, seen(cancelled=True), None),  # we cancelled it ourselves
        (True, seen(mentee="declined"), None),  # an answer to a session we already cancelled
        (False, seen(start=None, end=None), None),  # no times given: nothing to conclude
    ],
)
def test_observations(we_cancelled, event, expected):
    assert observe(PAIR, start=START, end=END, we_cancelled=we_cancelled, event=event) == expected
