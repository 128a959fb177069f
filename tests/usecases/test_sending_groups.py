"""A transport that can tell afterwards what it delivered gets its batch with one
`sending` commit before the first send and one `sent` commit after the last; whatever
cuts the batch short, no message goes twice and none is lost."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from service.domain.outbox import State
from service.domain.ports import MailError
from service.usecases.sending import recover_in_flight, send_due

from .test_sending import booked, welcome_time


class Watched:
    """The store, with its message marks written down in order, beside the sends."""

    def __init__(self, store, log):
        self._store, self.log = store, log

    def __getattr__(self, name):
        attribute = getattr(self._store, name)
        if not name.startswith("mark_"):
            return attribute

        def mark(rows, *args, **kwargs):
            self.log.append((name, len(rows) if isinstance(rows, list) else 1))
            return attribute(rows, *args, **kwargs)

        return mark


def checkable(deps):
    deps.mailer.verify_after = timedelta(0)  # like the file transport
    log: list[tuple[str, int]] = []
    deps.store = Watched(deps.store, log)
    return log


def test_a_batch_is_marked_sending_in_one_commit_before_the_first_send_and_sent_in_one_after(deps):
    inputs = booked(deps)
    log = checkable(deps)
    deps.mailer.fault = lambda message: log.append(("send", 1))
    count = send_due(deps, inputs, welcome_time(deps) + timedelta(hours=12)).count
    assert count == len(deps.mailer.sent) > 2
    assert log == [("mark_sending_many", count), *[("send", 1)] * count, ("mark_sent_many", count)]
    assert Counter(r.state for r in deps.store.messages())[State.SENT] == count


def test_a_stop_in_the_middle_releases_the_rest_without_spending_an_attempt(deps):
    inputs = booked(deps)
    checkable(deps)
    deps.mailer.fault = lambda message: deps.stop.set() if len(deps.mailer.sent) == 1 else None  # SIGTERM at the second
    at = welcome_time(deps) + timedelta(hours=12)
    assert send_due(deps, inputs, at).count == 2
    states = Counter((r.state, r.attempts) for r in deps.store.messages() if r.due <= at)
    assert states[(State.SENT, 1)] == 2 and states[(State.PLANNED, 0)] > 0 and deps.store.in_flight() == []
    deps.stop.clear()
    later = send_due(deps, inputs, at).count
    assert later == states[(State.PLANNED, 0)]
    assert max(Counter(m["Message-ID"] for m in deps.mailer.sent).values()) == 1


def test_a_transport_going_down_in_the_middle_settles_every_message_of_the_batch(deps):
    inputs = booked(deps)
    checkable(deps)
    down = MailError(MailError.TRANSIENT, "quota used up", transport=True)
    deps.mailer.fault = lambda message: down if len(deps.mailer.sent) == 2 else None
    at = welcome_time(deps) + timedelta(hours=12)
    result = send_due(deps, inputs, at)
    assert (result.count, result.down) == (2, True)
    states = Counter((r.state, r.attempts) for r in deps.store.messages() if r.due <= at)
    assert states[(State.SENT, 1)] == 2
    assert states[(State.PLANNED, 1)] == 1  # the one refused: an attempt, back at once
    assert states[(State.PLANNED, 0)] > 0  # never handed over: released
    assert deps.store.in_flight() == []
    deps.mailer.fault = lambda message: None
    send_due(deps, inputs, at + timedelta(minutes=10))
    assert max(Counter(m["Message-ID"] for m in deps.mailer.sent).values()) == 1
    assert all(r.state is State.SENT for r in deps.store.messages() if r.due <= at)


def test_a_crash_before_the_sent_commit_is_checked_with_the_transport_never_resent_blindly(deps):
    inputs = booked(deps)
    checkable(deps)
    at = welcome_time(deps) + timedelta(hours=12)
    store = deps.store._store

    def crash(rows, now):  # the process dies between the sends and the `sent` commit
        raise SystemExit("killed")

    deps.store.mark_sent_many = crash
    deps.mailer.fault = lambda message: deps.stop.set() if len(deps.mailer.sent) == 3 else None  # dies after 4 sends
    try:
        send_due(deps, inputs, at)
    except SystemExit:
        pass
    assert len(deps.mailer.sent) == 4 and len(store.in_flight()) > 4  # the whole batch was marked sending
    deps.store, deps.stop = store, type(deps.stop)()  # a new process on the same state
    delivered = {m["Message-ID"] for m in deps.mailer.sent}
    deps.mailer.knows = lambda message_id: message_id in delivered
    recover_in_flight(deps, at)
    send_due(deps, inputs, at)
    assert max(Counter(m["Message-ID"] for m in deps.mailer.sent).values()) == 1  # none twice
    assert all(r.state is State.SENT for r in store.messages() if r.due <= at)  # none lost
