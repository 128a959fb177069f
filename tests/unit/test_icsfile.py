from datetime import UTC, datetime

import pytest

from service.config.busyfiles import busy_intervals, parse
from tests.builders import person

CALENDAR = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//Test//EN\r
BEGIN:VEVENT\r
UID:weekly@test\r
DTSTAMP:20270101T000000Z\r
DTSTART;TZID=Europe/Berlin:20270301T100000\r
DTEND;TZID=Europe/Berlin:20270301T110000\r
RRULE:FREQ=WEEKLY;COUNT=6\r
EXDATE;TZID=Europe/Berlin:20270308T100000\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:free@test\r
DTSTAMP:20270101T000000Z\r
DTSTART:20270302T090000Z\r
DTEND:20270302T100000Z\r
TRANSP:TRANSPARENT\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:cancelled@test\r
DTSTAMP:20270101T000000Z\r
DTSTART:20270303T090000Z\r
DTEND:20270303T100000Z\r
STATUS:CANCELLED\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:holiday@test\r
DTSTAMP:20270101T000000Z\r
DTSTART;VALUE=DATE:20270405\r
DTEND;VALUE=DATE:20270406\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:floating@test\r
DTSTAMP:20270101T000000Z\r
DTSTART:20270410T090000\r
DURATION:PT30M\r
END:VEVENT\r
END:VCALENDAR\r
"""

WINDOW = (datetime(2027, 2, 27, tzinfo=UTC), datetime(2027, 5, 2, tzinfo=UTC))


def test_recurring_all_day_and_floating_events_are_busy_in_utc(tmp_path):
    path = tmp_path / "busy.ics"
    path.write_text(CALENDAR)
    busy = busy_intervals(parse(path), person("P", "Europe/Berlin"), *WINDOW)
    starts = [start for start, _ in busy]
    # Weekly 10:00 Berlin: 09:00 UTC in winter, 08:00 UTC from 28 March; 8 March excluded.
    assert datetime(2027, 3, 1, 9, tzinfo=UTC) in starts
    assert datetime(2027, 3, 8, 9, tzinfo=UTC) not in starts
    assert datetime(2027, 3, 29, 8, tzinfo=UTC) in starts
    # The all-day holiday covers the Berlin day; the floating event is Berlin time.
    assert (datetime(2027, 4, 4, 22, tzinfo=UTC), datetime(2027, 4, 5, 22, tzinfo=UTC)) in busy
    assert (datetime(2027, 4, 10, 7, tzinfo=UTC), datetime(2027, 4, 10, 7, 30, tzinfo=UTC)) in busy
    # Transparent and cancelled events are free time.
    assert not any(start.day in (2, 3) and start.month == 3 for start in starts)
    assert len(busy) == 5 + 2


def test_a_file_that_is_not_a_calendar_is_refused(tmp_path):
    path = tmp_path / "notes.ics"
    path.write_text("shopping list\n")
    with pytest.raises(ValueError, match="is not an iCalendar file"):
        parse(path)
