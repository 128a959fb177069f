"""When Google's push channel is opened, renewed or given up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from service.domain.push import Channel, needs_new, notify_address

NOW = datetime(2027, 2, 1, 9, 0, tzinfo=UTC)
ADDRESS = "https://mentors.example.org/calendar/notify"


def channel(expires: datetime, address: str = ADDRESS) -> Channel:
    return Channel(id="c", resource_id="r", token="t", address=address, expires=expires)


def test_only_a_public_https_address_can_be_told():
    assert notify_address("https://mentors.example.org/") == ADDRESS
    assert notify_address("HTTPS://mentors.example.org") == "HTTPS://mentors.example.org/calendar/notify"
    assert notify_address("http://mentors.example.org") is None  # Google posts only to HTTPS
    assert notify_address(None) is None


def test_a_channel_is_renewed_a_day_before_it_expires_or_when_the_address_changes():
    assert needs_new(None, ADDRESS, NOW)
    assert not needs_new(channel(NOW + timedelta(days=1, minutes=1)), ADDRESS, NOW)
    assert needs_new(channel(NOW + timedelta(days=1)), ADDRESS, NOW)
    assert needs_new(channel(NOW - timedelta(days=1)), ADDRESS, NOW)  # expired while the daemon was stopped
    assert needs_new(channel(NOW + timedelta(days=6), "https://old.example.org/calendar/notify"), ADDRESS, NOW)
