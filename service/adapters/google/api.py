"""Talking to Google: where the APIs are, and what to do when a call fails."""

from __future__ import annotations

import json
import os
import random
import re
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httplib2
import requests
from google.auth import exceptions as auth_errors
from google.auth.transport.requests import AuthorizedSession
from googleapiclient import discovery
from googleapiclient.errors import HttpError
from googleapiclient.http import BatchHttpRequest

ENDPOINT_VARIABLE = "MENTORSHIP_GOOGLE_ENDPOINT"  # e.g. http://127.0.0.1:8765 for an emulator
GOOGLE = "https://www.googleapis.com"
TIMEOUT = 30  # seconds per HTTP request


RATE_LIMITS = {"rateLimitExceeded", "userRateLimitExceeded"}
# Problems only the coordinator can fix (in the Cloud project, the Admin console or the
# configuration): retrying does not help, but nothing is wrong with the work itself.
SETUP = {
    "accessNotConfigured": "the API is not enabled in the Google Cloud project: enable it under APIs & Services > Library",
    "SERVICE_DISABLED": "the API is not enabled in the Google Cloud project: enable it under APIs & Services > Library",
    "failedPrecondition": "the organiser's account cannot use this service (a Workspace user without a Gmail licence?)",
    "insufficientPermissions": "the credentials lack a scope this needs: grant it (Admin console, domain-wide delegation) or log in again",
    "forbiddenForServiceAccounts": "a service account needs domain-wide delegation to invite people and create Meet links",
    "authError": "Google refused the credentials: log in again, or check the service account key",
}
RETRY_AFTER = re.compile(r"Retry after (\d{4}-\d\d-\d\dT[0-9:.]+(?:Z|[+-]\d\d:\d\d))")


def endpoint() -> str | None:
    return os.environ.get(ENDPOINT_VARIABLE) or None


def build(api: str, version: str, credentials) -> Any:
    """A client for one API, pointed at the emulator when the variable is set. Each
    thread needs its own: httplib2 is not thread-safe."""
    root = endpoint()
    options = None
    if root:
        path = "calendar/v3/" if api == "calendar" else ""  # Gmail's paths carry their version
        options = {"api_endpoint": f"{root.rstrip('/')}/{path}"}
    return discovery.build(
        api, version, http=RequestsHttp(credentials), client_options=options, static_discovery=True, cache_discovery=False
    )


class RequestsHttp:
    """The transport googleapiclient expects (httplib2's shape), built on requests.

    httplib2 sends a request again, POST included, when a connection drops before the
    answer, even with RETRIES = 1 (its stale-connection rule): an email Google accepted
    would go out twice. requests never resends on its own; our retry policy decides.
    """

    def __init__(self, credentials, timeout: float = TIMEOUT):
        self.credentials = credentials  # googleapiclient signs batch parts with these
        self.session = AuthorizedSession(credentials)  # fetches and refreshes tokens
        self.timeout = timeout

    def request(self, uri, method="GET", body=None, headers=None, redirections=5, connection_type=None):
        try:
            answer = self.session.request(method, uri, data=body, headers=headers, timeout=self.timeout, allow_redirects=False)
        except requests.exceptions.ConnectionError as error:
            if _never_connected(error):
                raise ConnectionRefusedError(str(error)) from None
            raise
        response = httplib2.Response({"status": str(answer.status_code), **{k.lower(): v for k, v in answer.headers.items()}})
        return response, answer.content


def _never_connected(error: Exception) -> bool:
    """Whether the request surely never reached the server (so retrying cannot duplicate)."""
    text = repr(error)
    return "NewConnectionError" in text or "Connection refused" in text or "NameResolutionError" in text


def batch(api: str, callback: Callable) -> BatchHttpRequest:
    """A batch aimed at the right host: the client's own batches ignore the endpoint."""
    root = (endpoint() or GOOGLE).rstrip("/")
    path = "/batch/calendar/v3" if api == "calendar" else "/batch/gmail/v1"
    return BatchHttpRequest(callback=callback, batch_uri=f"{root}{path}")


@dataclass(frozen=True)
class Failure:
    """A failed call, classified."""

    reason: str
    retry: bool  # nothing happened and trying again may work
    maybe_done: bool = False  # the request may have taken effect before the line dropped
    wait: float | None = None  # what the server asked for (Retry-After), in seconds
    code: str = ""  # Google's own reason, e.g. quotaExceeded
    setup: bool = False  # a configuration problem the coordinator must fix; the work is fine
    until: datetime | None = None  # Gmail's "Retry after <time>": nothing goes through before it
    blocks_all: bool = False  # every call would fail alike (credentials, quota, no route): not this one's fault


def classify(error: BaseException) -> Failure:
    if isinstance(error, auth_errors.RefreshError):
        # Delegation not (yet) granted, a scope missing, a wrong subject or token_uri: the API
        # request never left, and changes in the Admin console take minutes to apply.
        return Failure(
            f"Google refused a token ({_first(error)}): check domain-wide delegation for the service account's"
            " client id and scopes, or run `mentorship auth login` again (changes can take some minutes to apply)",
            retry=True,
            setup=True,
            blocks_all=True,
        )
    if isinstance(error, auth_errors.TransportError):  # the token endpoint could not be reached
        return Failure(f"cannot reach Google's token service: {_first(error)}", retry=True, blocks_all=True)
    if isinstance(error, HttpError):
        status = error.resp.status
        reason = _reason(error)
        wait = _retry_after(error)
        until = _retry_time(error)
        if status == 429 or (status == 403 and reason in RATE_LIMITS):
            # A limit with a time to it (Gmail's daily limits) holds every call until then;
            # a moment's rate limit is this call's to retry.
            return Failure(
                f"rate limited ({status} {reason})", retry=True, wait=wait, code=reason, until=until, blocks_all=until is not None
            )
        if reason in SETUP or status == 401:
            advice = SETUP.get(reason) or SETUP["authError"]
            return Failure(f"{status} {reason or 'unauthorised'}: {advice}", retry=True, setup=True, code=reason, blocks_all=True)
        if status >= 500:
            # The request reached Google and may have taken effect before the error.
            return Failure(f"Google error {status} {reason}", retry=True, maybe_done=True, wait=wait, code=reason)
        return Failure(f"{status} {reason}: {_message(error)}", retry=False, code=reason, until=until)
    if isinstance(error, (ConnectionRefusedError, socket.gaierror, ssl.SSLError)):
        return Failure(f"cannot reach Google: {error}", retry=True, blocks_all=True)
    if isinstance(error, (OSError, httplib2.HttpLib2Error, requests.exceptions.RequestException)):
        # Timeouts and dropped connections: the request may have arrived.
        return Failure(f"connection lost: {error or type(error).__name__}", retry=True, maybe_done=True)
    raise error


def _first(error: Exception) -> str:
    """The first argument of a google-auth error: its sentence, not the response dict."""
    return str(error.args[0]) if error.args else type(error).__name__


@dataclass
class Backoff:
    """Bounded exponential backoff with jitter that honours Retry-After."""

    attempts: int = 5
    first: float = 0.5
    cap: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int, failure: Failure) -> float:
        if failure.wait is not None:
            return min(failure.wait, self.cap)
        return min(self.cap, self.first * 2**attempt) * (0.5 + self.rng.random() / 2)


def call(request, backoff: Backoff, *, idempotent: bool = True) -> Any:
    """Execute one request, retrying what is safe to retry."""
    for attempt in range(backoff.attempts):
        try:
            return request.execute(num_retries=0)
        except Exception as error:  # classified below; anything else is re-raised
            failure = classify(error)
            if not failure.retry or failure.setup or (failure.maybe_done and not idempotent) or attempt == backoff.attempts - 1:
                raise
            backoff.sleep(backoff.delay(attempt, failure))
    raise AssertionError("unreachable")


def _reason(error: HttpError) -> str:
    try:
        body = json.loads(error.content.decode("utf-8"))
        return body["error"]["errors"][0]["reason"]
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return ""


def _message(error: HttpError) -> str:
    try:
        return json.loads(error.content.decode("utf-8"))["error"]["message"]
    except (ValueError, KeyError, TypeError, AttributeError):
        return str(error)


def _retry_after(error: HttpError) -> float | None:
    value = error.resp.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _retry_time(error: HttpError) -> datetime | None:
    """Gmail says when a rate limit lifts in the message, not in a header."""
    found = RETRY_AFTER.search(_message(error))
    if found is None:
        return None
    try:
        return datetime.fromisoformat(found.group(1).replace("Z", "+00:00"))
    except ValueError:
        return None
