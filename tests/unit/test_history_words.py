from __future__ import annotations

from service.web.history import history, said


def test_each_event_of_a_pair_in_words():
    assert said({"event": "message_sent", "stage": "welcome", "recipient": "a@x.org"}) == "Sent: welcome to a@x.org"
    assert said({"event": "message_failed", "stage": "welcome", "recipient": "a@x.org", "last_error": None}) == (
        "Not sent: welcome to a@x.org (no reason given)"
    )
    assert said({"event": "message_skipped", "stage": "follow_up", "recipient": "a@x.org"}) == "follow up to a@x.org: skipped"
    moved = {"event": "session_moved", "number": 1, "start": "2027-03-01T10:00:00+00:00", "reason": "Zoë asked for another time"}
    assert said(moved) == "Session 1 moved to 2027-03-01 10:00 UTC: Zoë asked for another time"
    assert said({"event": "answer", "number": 2, "email": "z@x.org", "answer": "declined"}) == "Session 2: z@x.org declined"
    assert said({"event": "something_new"}) == "Something new"


def test_steps_of_sending_are_left_out():
    entries = [{"at": 1, "event": "message_sending", "stage": "welcome", "recipient": "a"}, {"at": 2, "event": "pair_withdrawn"}]
    assert history(entries) == [(2, "Withdrawn from the program")]
