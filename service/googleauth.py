"""`mentorship auth login` and `auth check`: getting and testing Google credentials."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid, parseaddr
from pathlib import Path

from google.auth.exceptions import RefreshError
from google.auth.transport.requests import Request

from .adapters.google import api, auth
from .adapters.google.calendar import CREATE
from .config import Configuration
from .mail.compose import sender_of


class LoginFailed(Exception):
    """The consent did not give what the daemon needs; nothing was saved."""


def login(client_secrets: Path, token: Path, configuration: Configuration) -> str:
    """Run Google's installed-app consent in a browser and keep the refresh token
    (readable by its owner only)."""
    from google_auth_oauthlib.flow import InstalledAppFlow

    scopes = _scopes(configuration)
    flow = InstalledAppFlow.from_client_secrets_file(str(client_secrets), scopes=scopes)
    # Google gives a refresh token with the first consent only, unless asked to show the
    # consent screen again: a second login without it would save a token dead in an hour.
    credentials = flow.run_local_server(port=0, open_browser=True, prompt="consent", access_type="offline")
    if not credentials.refresh_token:
        raise LoginFailed(
            "Google gave no refresh token, so the daemon could not keep working after an hour; nothing was saved."
            " Remove the app's access at https://myaccount.google.com/permissions and log in again."
        )
    auth.save_user_token(token, credentials)
    return f"saved a token for {', '.join(scopes)} to {token} (mode 0600)"


def check(configuration: Configuration, now: datetime | None = None) -> list[tuple[str, bool, str]]:
    """Prove the whole chain the cohort relies on, one step a line: (what, ok, detail).
    Whatever a step writes (a test event, a test calendar) is deleted again; the test
    email goes to the organiser."""
    now = now or datetime.now(UTC)
    cohort, google = configuration.cohort, configuration.google
    path = auth.key_file(configuration.folder / google.credentials if google.credentials else None)
    if path is None:
        return [("credentials", False, "no google.credentials and no GOOGLE_APPLICATION_CREDENTIALS")]
    scopes = _scopes(configuration)
    organizer = (google.organizer or cohort.coordinator.email).lower()
    try:
        credentials = auth.load_credentials(path, scopes=scopes, subject=organizer, endpoint=api.endpoint())
    except ValueError as error:
        return [("credentials", False, str(error))]
    try:
        credentials.refresh(Request())
    except Exception as error:  # shown to the coordinator as a sentence
        failed = [("token", False, _reason(error))]
        if isinstance(error, RefreshError) and hasattr(credentials, "with_scopes"):  # which scope is missing?
            failed += [_scope(credentials, scope) for scope in scopes]
        return failed
    results = [("token", True, f"from {path.name}, acting as {organizer}")]
    results += [_scope(credentials, scope) for scope in scopes]
    if cohort.calendar == "google":
        calendar = api.build("calendar", "v3", credentials)
        results.append(_try("calendar write", lambda: _calendar_write(calendar, configuration, now)))
        if google.free_busy:
            body = {"timeMin": now.isoformat(), "timeMax": (now + timedelta(days=1)).isoformat(), "items": [{"id": organizer}]}
            results.append(_try("free/busy", lambda: _free_busy(calendar, body, organizer)))
    if configuration.mail.transport == "gmail":
        gmail = api.build("gmail", "v1", credentials)
        if google.read_sent_mail:
            results.append(_try("gmail profile", lambda: _profile(gmail, organizer)))
        sent = _try("gmail test email", lambda: _test_email(gmail, configuration, organizer, now))
        results.append(sent)
        if google.read_sent_mail and sent[1]:
            results.append(_try("gmail sent as written", lambda: _arrived(gmail, sent[2], sender_of(cohort).email)))
    return results


BACKOFF = api.Backoff(attempts=1)


def _scope(credentials, scope: str) -> tuple[str, bool, str]:
    """A token for this one scope: refused when it is not granted (to the delegation, or at login)."""
    name = scope.rsplit("/", 1)[-1]
    try:
        if hasattr(credentials, "with_scopes"):
            credentials.with_scopes([scope]).refresh(Request())
        elif scope not in (credentials.granted_scopes or credentials.scopes or ()):
            return (f"scope {name}", False, "not granted at login: run `mentorship auth login` again")
        return (f"scope {name}", True, "granted")
    except Exception as error:
        return (f"scope {name}", False, _reason(error))


def _calendar_write(calendar, configuration: Configuration, now: datetime) -> str:
    """A test event written and deleted, on the cohort's calendar (or, before the daemon
    made one, on a test calendar made and deleted the same way)."""
    target, made = configuration.calendar_id, False
    if target == CREATE:
        body = {"summary": "Mentorship service check (deleted at once)", "timeZone": "UTC"}
        target, made = api.call(calendar.calendars().insert(body=body), BACKOFF)["id"], True
    try:
        start = (now + timedelta(days=30)).replace(microsecond=0)
        event = {
            "summary": "Mentorship service check (deleted at once)",
            "start": {"dateTime": start.isoformat()},
            "end": {"dateTime": (start + timedelta(minutes=15)).isoformat()},
            "transparency": "transparent",
        }
        written = api.call(calendar.events().insert(calendarId=target, body=event, sendUpdates="none"), BACKOFF)
        api.call(calendar.events().delete(calendarId=target, eventId=written["id"], sendUpdates="none"), BACKOFF)
    finally:
        if made:
            api.call(calendar.calendars().delete(calendarId=target), BACKOFF)
    return "a test event written and deleted" + (" on a test calendar (made and deleted)" if made else f" on {target}")


def _free_busy(calendar, body: dict, organizer: str) -> str:
    answer = api.call(calendar.freebusy().query(body=body), BACKOFF)
    errors = answer.get("calendars", {}).get(organizer, {}).get("errors")
    if errors:
        raise CheckFailed(f"Google answered {', '.join(e.get('reason', '?') for e in errors)} for {organizer}")
    return f"{organizer}'s busy time can be read"


def _profile(gmail, organizer: str) -> str:
    address = api.call(gmail.users().getProfile(userId="me"), BACKOFF).get("emailAddress", "")
    if address.lower() != organizer:
        raise CheckFailed(f"the mailbox is {address}, not {organizer}")
    return f"the mailbox is {address}"


def _test_email(gmail, configuration: Configuration, organizer: str, now: datetime) -> str:
    sender = sender_of(configuration.cohort)
    message = EmailMessage()
    message["From"] = formataddr((sender.name, sender.email))
    message["To"] = organizer
    message["Subject"] = "Mentorship service: Gmail works"
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid("check", domain=sender.email.rpartition("@")[2])
    message["Auto-Submitted"] = "auto-generated"
    message.set_content("`mentorship auth check` sent this to prove the daemon can send email. Nothing else to do.\n")
    raw = base64.urlsafe_b64encode(bytes(message)).decode("ascii")
    api.call(gmail.users().messages().send(userId="me", body={"raw": raw}), BACKOFF, idempotent=False)
    return str(message["Message-ID"])


def _arrived(gmail, message_id: str, sender: str) -> str:
    """The test email in Sent, as written: our Message-ID (which a check of an interrupted
    send relies on) and our From (which Gmail rewrites unless it is a verified address)."""
    messages = gmail.users().messages()
    found = api.call(messages.list(userId="me", q=f"rfc822msgid:{message_id.strip('<>')}", includeSpamTrash=True), BACKOFF)
    if not found.get("messages"):
        raise CheckFailed("the test email is not found by its Message-ID: Gmail replaced it, so interrupted sends cannot be checked")
    got = api.call(messages.get(userId="me", id=found["messages"][0]["id"], format="metadata", metadataHeaders=["From"]), BACKOFF)
    headers = {h["name"].lower(): h["value"] for h in got.get("payload", {}).get("headers", [])}
    written_from = parseaddr(headers.get("from", ""))[1].lower()
    if written_from != sender.lower():
        raise CheckFailed(f"Gmail sent it from {written_from}, not {sender}: make {sender} a verified send-as address")
    return f"found by its Message-ID, from {sender}"


class CheckFailed(Exception):
    pass


def _reason(error: Exception) -> str:
    if isinstance(error, CheckFailed):
        return str(error)
    try:
        return api.classify(error).reason
    except Exception:
        return f"{type(error).__name__}: {error}"


def _scopes(configuration: Configuration) -> list[str]:
    cohort, google = configuration.cohort, configuration.google
    use_calendar = cohort.calendar == "google"
    return auth.scopes(
        calendar=use_calendar,
        free_busy=use_calendar and google.free_busy,
        gmail=configuration.mail.transport == "gmail",
        read_sent=google.read_sent_mail,
        own_calendar=configuration.calendar_id == CREATE,
    )


def _try(what: str, action) -> tuple[str, bool, str]:
    try:
        return (what, True, action())
    except Exception as error:
        return (what, False, _reason(error))
