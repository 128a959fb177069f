"""Push notices as Google sends them: after a change to an event of a watched calendar
(made through the API or by the test controls that stand for people), a POST to the
channel's address with Google's X-Goog-* headers and no body. A channel's first notice
says `sync`; the others `exists`. Notices go out on a thread of their own, in order; a
change made while one is still waiting for the same channel adds nothing (Google too
coalesces bursts).

Google posts only to HTTPS addresses, and tests cannot serve HTTPS: a route maps the
service's public https:// prefix to the local http:// address its web server listens on
(or to a function, for callers without a server). Without a route a notice is recorded
as undeliverable."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime
from email.utils import format_datetime
from typing import NamedTuple

from .calendar_api import CalendarBackend, WatchChannel

Target = str | Callable[[dict[str, str]], int]  # a local URL prefix, or a function given the headers that returns a status


class Notice(NamedTuple):
    channel_id: str
    state: str  # sync | exists
    number: int
    status: int | None  # the receiver's answer (None: it could not be reached)


class Notifier:
    def __init__(self, lock: threading.RLock, calendar: CalendarBackend, clock: Callable[[], datetime]):
        self._lock = lock  # the fake's: channels are read under it
        self.calendar = calendar
        self.clock = clock
        self.routes: dict[str, Target] = {}
        self.sent: list[Notice] = []
        self._outbox: list[tuple[str, str]] = []  # (channel id, state) not yet posted
        self._busy = False
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        calendar.on_change = self.changed
        calendar.on_watch = self.opened

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="fake-google-push", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def opened(self, channel: WatchChannel) -> None:
        self._queue(channel.id, "sync")

    def changed(self, calendar_id: str) -> None:
        for channel in self.calendar.watching(calendar_id):
            self._queue(channel.id, "exists")

    def _queue(self, channel_id: str, state: str) -> None:
        with self._cond:
            if (channel_id, state) not in self._outbox:
                self._outbox.append((channel_id, state))
                self._cond.notify_all()

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every notice queued so far has been posted."""
        with self._cond:
            if not self._cond.wait_for(lambda: not self._outbox and not self._busy, timeout):
                raise TimeoutError("push notices were not delivered in time")

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._outbox or self._stopping.is_set(), 0.5)
                if self._stopping.is_set():
                    return
                if not self._outbox:
                    continue
                channel_id, state = self._outbox.pop(0)
                self._busy = True
            try:
                self._post(channel_id, state)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _post(self, channel_id: str, state: str) -> None:
        with self._lock:
            channel = self.calendar.channels.get(channel_id)
            if channel is None or channel.expiration <= self.clock():
                return  # stopped or expired meanwhile
            channel.messages += 1
            headers = {
                "X-Goog-Channel-ID": channel.id,
                "X-Goog-Channel-Expiration": format_datetime(channel.expiration, usegmt=True),
                "X-Goog-Resource-ID": channel.resource_id,
                "X-Goog-Resource-URI": self.calendar.resource_uri(channel),
                "X-Goog-Resource-State": state,
                "X-Goog-Message-Number": str(channel.messages),
            }
            if channel.token is not None:
                headers["X-Goog-Channel-Token"] = channel.token
            address, number = channel.address, channel.messages
        status = self._send(address, headers)
        with self._lock:
            self.sent.append(Notice(channel_id, state, number, status))

    def _send(self, address: str, headers: dict[str, str]) -> int | None:
        for prefix, target in self.routes.items():
            if address.startswith(prefix):
                if callable(target):
                    return target(headers)
                request = urllib.request.Request(target + address[len(prefix) :], data=b"", headers=headers, method="POST")
                try:
                    with urllib.request.urlopen(request, timeout=10) as response:
                        return response.status
                except urllib.error.HTTPError as error:
                    return error.code
                except OSError:
                    return None
        return None
