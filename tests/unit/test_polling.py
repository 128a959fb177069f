from __future__ import annotations

from datetime import UTC, datetime, timedelta

from service.domain.polling import LONGEST_QUIET, SAFETY, CalendarReads

T0 = datetime(2027, 2, 1, tzinfo=UTC)
POLL = timedelta(minutes=5)
FAR = T0 + timedelta(days=20)  # the next session, weeks away


def test_the_first_read_is_at_once_then_quiet_reads_space_out_up_to_a_limit():
    reads = CalendarReads(POLL)
    assert reads.due(T0, next_session=FAR)
    now, waits = T0, []
    for _ in range(8):
        reads.read(now, changed=False)
        nxt = reads.next_read(FAR)
        waits.append(nxt - now)
        assert not reads.due(nxt - timedelta(seconds=1), next_session=FAR) and reads.due(nxt, next_session=FAR)
        now = nxt
    assert waits[:4] == [POLL * 2, POLL * 4, POLL * 8, POLL * 16] and waits[-1] == LONGEST_QUIET


def test_a_change_or_a_coming_session_brings_the_base_rate_back():
    reads = CalendarReads(POLL)
    for hour in range(5):
        reads.read(T0 + timedelta(hours=hour), changed=False)
    last = T0 + timedelta(hours=4)
    assert reads.next_read(FAR) - last == LONGEST_QUIET
    assert reads.next_read(last + timedelta(hours=3)) == last + POLL  # a session tomorrow morning
    reads.read(last + timedelta(hours=2), changed=True)
    assert reads.next_read(FAR) == last + timedelta(hours=2) + POLL


def test_with_push_a_notice_reads_at_once_and_otherwise_once_a_day():
    reads = CalendarReads(POLL, pushed=True)
    reads.read(T0, changed=False)
    assert not reads.due(T0 + timedelta(hours=23), next_session=T0 + timedelta(hours=1))
    assert reads.due(T0 + timedelta(minutes=1), notified=True)
    assert reads.next_read() == T0 + SAFETY


def test_after_the_service_writes_to_the_calendar_it_reads_again_soon():
    reads = CalendarReads(POLL)
    for hour in range(5):
        reads.read(T0 + timedelta(hours=hour), changed=False)
    reads.wrote()
    assert reads.due(T0 + timedelta(hours=4, minutes=1), next_session=FAR)
    reads.read(T0 + timedelta(hours=4, minutes=1), changed=False)
    assert reads.next_read(FAR) == T0 + timedelta(hours=4, minutes=1) + POLL * 2
