"""Credentials: a service account acting as the organiser (domain-wide delegation), or
an installed-app user token made by `mentorship auth login`."""

from __future__ import annotations

import json
import os
from pathlib import Path

from google.oauth2 import credentials as user_credentials
from google.oauth2 import service_account

CALENDAR_EVENTS = "https://www.googleapis.com/auth/calendar.events"
APP_CALENDARS = "https://www.googleapis.com/auth/calendar.app.created"  # calendars the app made, and their events
CALENDAR_SHARING = "https://www.googleapis.com/auth/calendar.acls"  # sharing such a calendar with the coordinator
# Finding that calendar again when its id was not kept (a crash right after making it).
CALENDAR_LIST = "https://www.googleapis.com/auth/calendar.calendarlist.readonly"
FREE_BUSY = "https://www.googleapis.com/auth/calendar.freebusy"
GMAIL_SEND = "https://www.googleapis.com/auth/gmail.send"
GMAIL_READ = "https://www.googleapis.com/auth/gmail.readonly"  # optional: checks uncertain sends
MEET_READ = "https://www.googleapis.com/auth/meetings.space.readonly"  # rooms and who was in them
MEET_SETTINGS = "https://www.googleapis.com/auth/meetings.space.settings"  # rooms made by Calendar: who may join, recording
DIRECTORY_READ = "https://www.googleapis.com/auth/directory.readonly"  # optional: Meet user ids -> emails


def scopes(*, calendar: bool, free_busy: bool, gmail: bool, read_sent: bool, own_calendar: bool = False) -> list[str]:
    """The least the configuration needs. `own_calendar`: the cohort gets a calendar of its
    own, which calendar.app.created covers (events included), calendar.acls shares and
    calendar.calendarlist.readonly finds again."""
    wanted = [
        (calendar and not own_calendar, CALENDAR_EVENTS),
        (calendar and own_calendar, APP_CALENDARS),
        (calendar and own_calendar, CALENDAR_SHARING),
        (calendar and own_calendar, CALENDAR_LIST),
        (free_busy, FREE_BUSY),
        (gmail, GMAIL_SEND),
        (gmail and read_sent, GMAIL_READ),
    ]
    return [scope for needed, scope in wanted if needed]


def meet_scopes(*, settings: bool, directory: bool = False) -> list[str]:
    """Reading rooms and their conferences; changing a room's settings, and reading the
    directory, only if asked."""
    return [MEET_READ] + [MEET_SETTINGS] * settings + [DIRECTORY_READ] * directory


def key_file(configured: Path | None) -> Path | None:
    """The credentials file: the cohort's setting, else GOOGLE_APPLICATION_CREDENTIALS."""
    if configured:
        return configured
    from_env = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    return Path(from_env) if from_env else None


def load_credentials(path: Path, *, scopes: list[str], subject: str, endpoint: str | None):
    """Credentials from a service-account key (acting as `subject`) or a user token file.

    The key is read here, when the daemon starts, and never logged nor quoted: a file that
    is not one raises ValueError saying so in general terms.
    """
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(info, dict):
            raise ValueError
        if info.get("type") == "service_account":
            return service_account.Credentials.from_service_account_info(info, scopes=scopes).with_subject(subject)
        creds = user_credentials.Credentials.from_authorized_user_info(info, scopes=scopes)
    except (OSError, ValueError, KeyError):  # JSONDecodeError is a ValueError
        raise ValueError(f"{path.name} is not a service-account key or a token file from Google") from None
    # from_authorized_user_info always points at Google's token URL.
    token_uri = info.get("token_uri") or (f"{endpoint.rstrip('/')}/token" if endpoint else None)
    return creds.with_token_uri(token_uri) if token_uri else creds


def save_user_token(path: Path, credentials) -> None:
    """Write a user's refresh token readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(credentials.to_json())
    os.chmod(path, 0o600)
