"""Keep Google's channel on the cohort's calendar open while the service has a public
HTTPS address: opened once, renewed a day before it expires (the old one stopped once
the new one is kept), closed when the address goes. Notices then come as requests."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from datetime import datetime

from ..domain.calendar import CalendarError
from ..domain.ports import CalendarWatch, Store
from ..domain.push import LIFETIME, Channel, needs_new
from ..logs import event
from .calendar_sync import ready
from .deps import Deps


@dataclass(frozen=True)
class Watching:
    channel: Channel | None  # open now: notices come through it
    fresh: bool = False  # opened where none was open: changes made before it are read at once
    refused: bool = False  # Google refused a new channel: asked again later, polling meanwhile


def keep_watching(deps: Deps, watch: CalendarWatch, address: str | None, now: datetime, *, may_open: bool = True) -> Watching:
    """Open, renew or close the channel as `address` (None: no public HTTPS address) and
    the time say. `may_open`: False shortly after Google refused one."""
    store = deps.store
    kept = store.calendar_channel()
    _stop_orphans(store, watch, kept, now)
    live = kept if kept is not None and now < kept.expires else None
    if address is None:
        if kept is not None:
            _stop(watch, kept, now)
            store.set_calendar_channel(None)
        return Watching(None)
    if not needs_new(kept, address, now) or not may_open:
        return Watching(live)
    if deps.calendar is None or not ready(deps, deps.calendar, now):
        return Watching(live)
    opening = Channel(id=secrets.token_hex(16), resource_id="", token=secrets.token_urlsafe(32), address=address, expires=now + LIFETIME)
    # Noted before Google is asked: a crash before its answer is kept leaves a channel found and stopped later.
    store.set_opening_channels([*store.opening_channels(), opening])
    try:
        channel = watch.watch(channel_id=opening.id, token=opening.token, address=address, ttl=LIFETIME)
    except CalendarError as error:
        store.set_opening_channels([c for c in store.opening_channels() if c.id != opening.id])  # Google opened none
        event(now, "calendar_watch_refused", f"calendar: Google did not open a push channel ({error.reason}); polling", error=error.reason)
        return Watching(live, refused=True)
    # Kept before the old one is stopped: a crash in between leaves the old one to expire.
    store.set_calendar_channel(channel)
    event(
        now,
        "calendar_watched",
        f"calendar: Google pushes changes to {address} until {channel.expires:%Y-%m-%d %H:%M} UTC",
        channel=channel.id,
        expires=channel.expires,
    )
    if kept is not None:
        _stop(watch, kept, now)
    return Watching(channel, fresh=live is None)


def _stop_orphans(store: Store, watch: CalendarWatch, kept: Channel | None, now: datetime) -> None:
    """Channels opened just before a crash, whose answer was never kept: stopped once the
    kept channel gives the calendar's resource id (Google names what is watched alike for
    every channel on one calendar), forgotten once expired."""
    orphans = store.opening_channels()
    if not orphans:
        return
    waiting = []
    for orphan in orphans:
        if orphan.expires <= now:
            continue  # closed by Google already
        if kept is None:
            waiting.append(orphan)
            continue
        _stop(watch, replace(orphan, resource_id=kept.resource_id), now)
    store.set_opening_channels(waiting)


def _stop(watch: CalendarWatch, channel: Channel, now: datetime) -> None:
    try:
        watch.stop(channel)
    except CalendarError as error:  # it expires by itself; its notices are refused meanwhile
        event(now, "calendar_watch_not_stopped", f"calendar: could not stop push channel {channel.id} ({error.reason})", error=error.reason)
