"""Keeping Google's push channel open: opened, renewed a day ahead, the old one stopped,
given up when the public address goes; polling while Google refuses."""

from __future__ import annotations

from datetime import timedelta

from service.domain.calendar import CalendarError
from service.domain.push import LIFETIME, Channel
from service.usecases.push import keep_watching

from .conftest import NOW

ADDRESS = "https://mentors.example.org/calendar/notify"


class Watchable:
    """A calendar that opens channels (events.watch) and stops them; it may refuse either."""

    def __init__(self):
        self.opened: list[Channel] = []
        self.stopped: list[str] = []
        self.refuse_watch = self.refuse_stop = False
        self.now = NOW

    def prepare(self, kept):
        return None

    def watch(self, *, channel_id, token, address, ttl):
        if self.refuse_watch:
            raise CalendarError("push.webhookUrlUnauthorized", transient=False)
        channel = Channel(id=channel_id, resource_id=f"r{len(self.opened)}", token=token, address=address, expires=self.now + ttl)
        self.opened.append(channel)
        return channel

    def stop(self, channel):
        if self.refuse_stop:
            raise CalendarError("backendError", transient=True)
        self.stopped.append(channel.id)


def test_a_channel_is_opened_once_renewed_a_day_ahead_and_the_old_one_stopped(deps):
    calendar = deps.calendar = Watchable()
    first = keep_watching(deps, calendar, ADDRESS, NOW)
    assert first.channel is not None and first.fresh and deps.store.calendar_channel() == first.channel
    again = keep_watching(deps, calendar, ADDRESS, NOW + LIFETIME - timedelta(days=1, minutes=1))
    assert again.channel == first.channel and not again.fresh and len(calendar.opened) == 1
    calendar.now = renew_at = NOW + LIFETIME - timedelta(days=1)
    calendar.refuse_stop = True  # the old one then expires by itself
    renewed = keep_watching(deps, calendar, ADDRESS, renew_at)
    assert renewed.channel is not None and renewed.channel.id != first.channel.id and not renewed.fresh
    assert deps.store.calendar_channel() == renewed.channel and renewed.channel.token != first.channel.token
    calendar.refuse_stop = False
    gone = keep_watching(deps, calendar, None, renew_at)  # the public address was removed
    assert gone.channel is None and calendar.stopped == [renewed.channel.id] and deps.store.calendar_channel() is None


def test_while_google_refuses_a_channel_nothing_is_kept_and_it_is_asked_again_only_when_allowed(deps):
    calendar = deps.calendar = Watchable()
    calendar.refuse_watch = True
    refused = keep_watching(deps, calendar, ADDRESS, NOW)
    assert refused.channel is None and refused.refused and deps.store.calendar_channel() is None
    calendar.refuse_watch = False
    assert keep_watching(deps, calendar, ADDRESS, NOW, may_open=False).channel is None and not calendar.opened
    assert keep_watching(deps, calendar, ADDRESS, NOW + timedelta(hours=1)).channel is not None
