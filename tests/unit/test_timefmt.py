"""Lengths and spans in the words an email uses."""

from datetime import date, timedelta

import pytest

from service.timefmt import duration, how_many, period


@pytest.mark.parametrize(
    ("minutes", "words"),
    [
        (30, "30 minutes"),
        (45, "45 minutes"),
        (60, "one hour"),
        (75, "one hour and 15 minutes"),
        (90, "an hour and a half"),
        (120, "two hours"),
        (150, "two hours and 30 minutes"),
    ],
)
def test_a_session_length_in_words(minutes, words):
    assert duration(timedelta(minutes=minutes)) == words


@pytest.mark.parametrize(
    ("first", "last", "words"),
    [
        (date(2027, 3, 1), date(2027, 3, 1), "one day"),
        (date(2027, 3, 1), date(2027, 3, 10), "ten days"),
        (date(2027, 3, 1), date(2027, 4, 11), "six weeks"),
        (date(2027, 3, 1), date(2027, 4, 30), "two months"),
        (date(2027, 3, 1), date(2027, 6, 30), "four months"),
        (date(2027, 1, 1), date(2028, 6, 30), "18 months"),
    ],
)
def test_a_program_span_in_words(first, last, words):
    assert period(first, last) == words


def test_small_counts_are_words_and_plurals_follow_the_count():
    assert how_many(1, "session") == "one session"
    assert how_many(2, "session") == "two sessions"
    assert how_many(13, "week") == "13 weeks"
