from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from service.domain.availability import (
    DaySpan,
    busy_minutes,
    free_time,
    from_minutes,
    local_moment,
    meet,
    to_minutes,
    working_spans,
)
from service.domain.model import TimeRange, WorkingPattern


def pattern(timezone: str, hours=((9, 17),), days=range(7), blackout=()) -> WorkingPattern:
    return WorkingPattern(
        timezone=timezone,
        hours=tuple(TimeRange(start=time(a), end=time(b)) for a, b in hours),
        days=frozenset(days),
        blackout_dates=frozenset(blackout),
    )


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("zone", "day", "expected_utc_hour"),
    [
        # New York springs forward on 14 March 2027: 09:00 is 14:00 UTC before, 13:00 after.
        ("America/New_York", date(2027, 3, 12), 14),
        ("America/New_York", date(2027, 3, 15), 13),
        # Berlin moves on 28 March 2027.
        ("Europe/Berlin", date(2027, 3, 26), 8),
        ("Europe/Berlin", date(2027, 3, 29), 7),
        # Kolkata has no DST and a half-hour offset: 09:00 IST is 03:30 UTC.
        ("Asia/Kolkata", date(2027, 3, 29), 3.5),
    ],
)
def test_working_hours_follow_each_zones_dst(zone, day, expected_utc_hour):
    (span,) = working_spans(pattern(zone), day, day)
    start = from_minutes(span.start)
    assert start.hour + start.minute / 60 == expected_utc_hour
    assert span.end - span.start == 8 * 60


def test_lord_howe_shifts_by_half_an_hour():
    # Lord Howe leaves DST (+11 -> +10:30) on 4 April 2027: 09:00 local is 22:00 then 22:30 UTC the day before.
    before, after = working_spans(pattern("Australia/Lord_Howe"), date(2027, 4, 2), date(2027, 4, 5))[::3]
    assert from_minutes(before.start) == utc(2027, 4, 1, 22, 0)
    assert from_minutes(after.start) == utc(2027, 4, 4, 22, 30)


def test_skipped_wall_clock_time_lands_after_the_jump():
    # 02:30 does not exist in New York on 14 March 2027; it is taken as 03:30 EDT (07:30 UTC).
    assert local_moment(date(2027, 3, 14), time(2, 30), "America/New_York") == utc(2027, 3, 14, 7, 30)


def test_repeated_wall_clock_time_means_the_first_occurrence():
    # 01:30 happens twice in New York on 7 November 2027; the first is EDT (05:30 UTC).
    assert local_moment(date(2027, 11, 7), time(1, 30), "America/New_York") == utc(2027, 11, 7, 5, 30)


def test_working_days_and_blackout_dates_are_left_out():
    p = pattern("Europe/Berlin", days=range(5), blackout=[date(2027, 3, 3)])
    days = {span.day for span in working_spans(p, date(2027, 3, 1), date(2027, 3, 7))}
    assert days == {date(2027, 3, d).toordinal() for d in (1, 2, 4, 5)}


def test_split_working_day_gives_two_spans_per_day():
    p = pattern("UTC", hours=((8, 12), (14, 18)))
    spans = working_spans(p, date(2027, 3, 1), date(2027, 3, 1))
    assert [(from_minutes(s.start).hour, from_minutes(s.end).hour) for s in spans] == [(8, 12), (14, 18)]


def test_shared_hours_minus_busy_times():
    hours = meet([DaySpan(0, 600, 0, 600, 1)], [DaySpan(50, 300, 50, 300, 1)], 0, 10_000)
    assert hours.periods == ((50, 300, 50, 300, 1, 1),)
    free = free_time(hours, [(100, 200), (150, 250), (500, 700)])  # overlapping busy times are fine
    assert list(zip(free.starts, free.ends, strict=True)) == [(50, 100), (250, 300)]
    assert free.within == [0, 0]


def test_shared_hours_are_cut_to_the_window_and_can_keep_each_ones_hours():
    mentor = [DaySpan(0, 600, 60, 540, 1), DaySpan(1440, 2040, 1500, 1980, 2)]  # stretched an hour each side
    mentee = [DaySpan(300, 900, 300, 900, 1), DaySpan(1740, 2340, 1740, 2340, 2)]
    hours = meet(mentor, mentee, 400, 1800, own_hours=True)
    assert hours.periods == (
        (400, 600, 300, 540, 1, 1, 60, 540, 300, 900),
        (1740, 1800, 1740, 1980, 2, 2, 1500, 1980, 1740, 2340),
    )
    assert hours.widest == 240  # 1740-1980: the most minutes inside both days


def test_busy_times_become_sorted_whole_minutes_that_cover_them():
    busy = [
        (utc(2027, 3, 1, 10, 0, 59), utc(2027, 3, 1, 11, 30, 59)),
        (utc(2027, 3, 1, 9, 0, 10), utc(2027, 3, 1, 9, 0, 50)),  # within one minute: that minute
        (datetime(2027, 3, 1, 9, tzinfo=ZoneInfo("Europe/Berlin")), utc(2027, 3, 1, 8, 30)),
        (utc(2027, 3, 1, 12), utc(2027, 3, 1, 12)),  # empty: nothing
    ]
    assert busy_minutes(busy) == [
        (to_minutes(utc(2027, 3, 1, 8)), to_minutes(utc(2027, 3, 1, 8, 30))),
        (to_minutes(utc(2027, 3, 1, 9)), to_minutes(utc(2027, 3, 1, 9, 1))),
        (to_minutes(utc(2027, 3, 1, 10)), to_minutes(utc(2027, 3, 1, 11, 31))),
    ]


def test_naive_busy_times_are_refused():
    with pytest.raises(ValueError, match="no time zone"):
        busy_minutes([(utc(2027, 3, 1, 9), utc(2027, 3, 1, 10)), (datetime(2027, 3, 1, 9), datetime(2027, 3, 1, 10))])


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError):
        to_minutes(datetime(2027, 3, 1, 9))
