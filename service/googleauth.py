"""`mentorship auth login` and `auth check`: getting and testing Google credentials."""

from __future__ import annotations

from pathlib import Path

from .adapters.google import api, auth
from .adapters.google.calendar import CREATE
from .config import Configuration


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


def check(configuration: Configuration) -> list[tuple[str, bool, str]]:
    """Try each Google API the cohort uses with a harmless call: (what, ok, detail)."""
    cohort, google = configuration.cohort, configuration.google
    path = auth.key_file(configuration.folder / google.credentials if google.credentials else None)
    if path is None:
        return [("credentials", False, "no google.credentials and no GOOGLE_APPLICATION_CREDENTIALS")]
    scopes = _scopes(configuration)
    results = [("scopes asked for", True, ", ".join(scopes) or "none")]
    try:
        credentials = auth.load_credentials(
            path, scopes=scopes, subject=google.organizer or cohort.coordinator.email, endpoint=api.endpoint()
        )
        from google.auth.transport.requests import Request

        credentials.refresh(Request())
        results.append(("token", True, f"obtained from {path.name}"))
    except Exception as error:  # shown to the coordinator as a sentence
        return results + [("token", False, f"{type(error).__name__}: {error}")]
    backoff = api.Backoff(attempts=1)
    if cohort.calendar == "google":
        calendar = api.build("calendar", "v3", credentials)
        results.append(
            _try("calendar", lambda: api.call(calendar.events().list(calendarId=configuration.calendar_id, maxResults=1), backoff))
        )
        if google.free_busy:
            organizer = google.organizer or cohort.coordinator.email
            body = {"timeMin": "2030-01-01T00:00:00Z", "timeMax": "2030-01-02T00:00:00Z", "items": [{"id": organizer}]}
            results.append(_try("free/busy", lambda: api.call(calendar.freebusy().query(body=body), backoff)))
    if configuration.mail.transport == "gmail":
        results.append(("gmail send", True, "scope granted; sending is tried with the first email"))
        if google.read_sent_mail:
            gmail = api.build("gmail", "v1", credentials)
            results.append(_try("gmail read", lambda: api.call(gmail.users().messages().list(userId="me", maxResults=1), backoff)))
    return results


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
        action()
        return (what, True, "works")
    except Exception as error:
        return (what, False, api.classify(error).reason if _classifiable(error) else f"{type(error).__name__}: {error}")


def _classifiable(error: Exception) -> bool:
    try:
        api.classify(error)
        return True
    except Exception:
        return False
