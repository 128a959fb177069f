"""Push: Google tells the service when the cohort's calendar changes, through a channel
(events.watch) that posts to the service's public HTTPS address. Channels expire, so
one is renewed a day ahead; the old one is stopped once the new one is kept. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

NOTIFY_PATH = "/calendar/notify"  # where Google posts, under the service's public address
LIFETIME = timedelta(days=7)  # asked of Google (its default for Calendar channels)
RENEW_AHEAD = timedelta(days=1)  # a new channel this long before the old one expires
RETRY_WATCH = timedelta(hours=1)  # after Google refused a channel: polling meanwhile


@dataclass(frozen=True, kw_only=True)
class Channel:
    """A channel Google opened for the cohort's calendar."""

    id: str  # ours, unique per channel: a notice names it
    resource_id: str  # Google's name for what is watched (needed to stop the channel)
    token: str  # secret: every notice carries it back
    address: str  # where notices go
    expires: datetime


def notify_address(public_url: str | None) -> str | None:
    """Where Google should post notices, or None when push cannot be had: Google posts
    only to HTTPS addresses (whose domain is verified for the project)."""
    if not public_url or not public_url.lower().startswith("https://"):
        return None
    return public_url.rstrip("/") + NOTIFY_PATH


def needs_new(channel: Channel | None, address: str, now: datetime) -> bool:
    """Whether to open a channel now: none yet, one for another address, or one that
    expires within a day."""
    return channel is None or channel.address != address or now >= channel.expires - RENEW_AHEAD
