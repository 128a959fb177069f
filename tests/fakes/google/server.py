"""The loopback HTTP server that stands in for Google: OAuth token endpoint, API
front end (routing, auth, scopes, validation), batch endpoints, faults, request log."""

from __future__ import annotations

import base64
import copy
import json
import re
import secrets
import socket
import sys
import threading
import time
import traceback
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy as email_policy
from email.message import EmailMessage
from email.parser import BytesParser, HeaderParser
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple

from .calendar_api import CalendarBackend, Ctx, Invitation, to_instant
from .discovery import Discovery, MethodSpec, Validator, apply_mask
from .errors import ApiError
from .faults import ApiCall, Chaos, Fault
from .gmail_api import GmailBackend
from .meet_api import MeetBackend
from .push import Notice, Notifier, Target

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_METHOD = "oauth2.token"
BATCH_METHOD = "batch"
BATCH_LIMITS = {"calendar": 1000, "gmail": 100}
JSON_TYPE = "application/json; charset=UTF-8"
DEFAULT_USER = "coordinator@example.org"
DEFAULT_CLIENT_EMAIL = "mentorship@project.iam.gserviceaccount.com"


class RequestRecord(NamedTuple):
    """One HTTP request the fake received (in_batch=False) or one part of a batch (in_batch=True)."""

    method_id: str  # "calendar.events.insert", "batch", "oauth2.token", or "unknown"
    http_method: str
    path: str
    query: dict[str, list[str]]
    status: int | None  # None when the connection was dropped before any processing
    in_batch: bool
    user: str | None = None
    fault: str | None = None  # the injected fault, if any
    dropped: str | None = None  # "before" | "after" when the connection was closed without a response


@dataclass
class TokenInfo:
    user: str
    scopes: frozenset[str] | None  # None: not limited by scopes (self-signed JWT with an audience)
    expires_at: float
    client: str
    kind: str  # "service_account" | "service_account_self" | "authorized_user" | "self_signed_jwt" | "issued"


@dataclass
class ServiceAccount:
    client_email: str
    client_id: str
    private_key_id: str
    delegation: bool
    delegated_scopes: frozenset[str] | None


@dataclass
class RefreshGrant:
    user: str
    client_id: str
    scopes: frozenset[str]


@dataclass
class Outcome:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    drop: str | None = None


def _json_outcome(status: int, value: Any, headers: Iterable[tuple[str, str]] = ()) -> Outcome:
    return Outcome(status, [("Content-Type", JSON_TYPE), *headers], json.dumps(value, indent=1).encode())


def _error_outcome(error: ApiError) -> Outcome:
    return Outcome(error.code, [("Content-Type", JSON_TYPE), *error.headers.items()], error.json_bytes())


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _b64url_json(segment: str) -> Any:
    padded = segment + "=" * (-len(segment) % 4)
    return json.loads(base64.urlsafe_b64decode(padded.encode()))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], fake: FakeGoogle) -> None:
        self.fake = fake
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ESF"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        # One response goes out as headers then body: without this, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every keep-alive request.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _serve(self) -> None:
        self.server.fake._serve(self)  # type: ignore[attr-defined]

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.fake.verbose:  # type: ignore[attr-defined]
            sys.stderr.write("fake-google: " + format % args + "\n")


class FakeGoogle:
    """Google Calendar v3, Gmail v1, Meet v2 (People v1 for its user ids) and the OAuth 2.0 token endpoint on loopback.

    with FakeGoogle() as google:
        key = google.service_account_file(tmp_path / "key.json")
        creds = service_account.Credentials.from_service_account_file(key, scopes=[...]).with_subject(...)
        calendar = build("calendar", "v3", credentials=creds,
                         client_options={"api_endpoint": f"{google.url}/calendar/v3/"}, static_discovery=True)
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        clock: Callable[[], datetime] | None = None,
        meet_delay: float | None = None,
        token_lifetime: int = 3600,
        cancelled_detail: str = "minimal",
        keep_message_id: bool = True,
        verbose: bool = False,
    ) -> None:
        """
        clock: "now" for created/updated/Date (default: the real UTC time).
        meet_delay: seconds before a requested Meet conference is created; None: on the next read.
        token_lifetime: seconds an access token lives (expires_in).
        cancelled_detail: how events.list shows cancelled events: "minimal" (kind, etag, id, status)
            or "full". events.get always returns the whole event.
        keep_message_id: whether Gmail keeps the Message-ID header set by the client.
        """
        if cancelled_detail not in ("minimal", "full"):
            raise ValueError("cancelled_detail is 'minimal' or 'full'")
        self.host = host
        self.port = port
        self.verbose = verbose
        self.token_lifetime = token_lifetime
        self.clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

        self.apis: dict[str, tuple[Discovery, Validator]] = {}
        for name, version in (("calendar", "v3"), ("gmail", "v1"), ("meet", "v2"), ("people", "v1")):
            discovery = Discovery.load(name, version)
            self.apis[name] = (discovery, Validator(discovery))
        # Longest service path first, so /calendar/v3/ wins over Gmail's empty one.
        self._mounts = sorted(self.apis.values(), key=lambda pair: -len(pair[0].service_path))

        self.calendar = CalendarBackend(self.clock, meet_delay=meet_delay, cancelled_detail=cancelled_detail)
        self.gmail = GmailBackend(self.clock, keep_message_id=keep_message_id)
        # Meet reads the spaces Calendar made; its test controls take the server's lock.
        self.meet = MeetBackend(lambda: self.clock(), self.calendar, self._lock)
        self.push = Notifier(self._lock, self.calendar, lambda: self.clock())
        self._handlers: dict[str, Callable[[Ctx], tuple[int, Any]]] = {
            **self.calendar.handlers,
            **self.gmail.handlers,
            **self.meet.handlers,
        }

        self._accounts: dict[str, ServiceAccount] = {}
        self._tokens: dict[str, TokenInfo] = {}
        self._refresh: dict[str, RefreshGrant] = {}
        self._clients: dict[str, tuple[str, str]] = {}  # OAuth client id -> (secret, the user who signs in)
        self._codes: dict[str, tuple[str, frozenset[str], bool]] = {}  # code -> (client id, scopes, refresh token due)
        self._consented: set[tuple[str, str]] = set()  # (client id, user) that granted offline access before
        self.authorizations: list[dict[str, str]] = []  # the query of each consent screen shown
        self._faults: list[Fault] = []
        self._chaos: Chaos | None = None
        self._requests: list[RequestRecord] = []
        self.internal_errors: list[str] = []

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeGoogle is not started")
        return f"http://{self.host}:{self.port}"

    def start(self) -> FakeGoogle:
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"fake-google:{self.port}", daemon=True
        )
        self._thread.start()
        self.push.start()
        return self

    def stop(self) -> None:
        server = self._server
        if server is None:
            return
        self._stopping.set()
        self.push.stop()
        server.shutdown()
        with server.sockets_lock:
            for sock in list(server.open_sockets):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeGoogle:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ endpoints for clients

    def api_endpoint(self, api: str) -> str:
        """The `client_options={"api_endpoint": ...}` value for build(api, ...)."""
        discovery = self.apis[api][0]
        return f"{self.url}/{discovery.service_path}"

    def batch_uri(self, api: str) -> str:
        discovery = self.apis[api][0]
        return f"{self.url}/batch/{discovery.name}/{discovery.version}"

    def build(self, api: str, credentials: Any = None, **kwargs: Any) -> Any:
        """googleapiclient.discovery.build pointed at this fake (a convenience for tests)."""
        from googleapiclient.discovery import build

        version = self.apis[api][0].version
        return build(
            api, version, credentials=credentials, static_discovery=True, client_options={"api_endpoint": self.api_endpoint(api)}, **kwargs
        )

    # ------------------------------------------------------------------ credentials

    def service_account_info(
        self,
        client_email: str = DEFAULT_CLIENT_EMAIL,
        *,
        delegation: bool = True,
        delegated_scopes: Iterable[str] | None = None,
    ) -> dict[str, Any]:
        """A service-account key (fresh RSA key) whose token_uri is this fake.

        delegation: whether domain-wide delegation is granted (JWTs with `sub` are accepted).
        delegated_scopes: the scopes granted to the delegation (None: any scope).
        """
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
        account = ServiceAccount(
            client_email=client_email,
            client_id=str(100000000000000000000 + secrets.randbelow(10**20)),
            private_key_id=secrets.token_hex(20),
            delegation=delegation,
            delegated_scopes=frozenset(delegated_scopes) if delegated_scopes is not None else None,
        )
        with self._lock:
            self._accounts[client_email] = account
        project = client_email.split("@", 1)[-1].split(".", 1)[0]
        return {
            "type": "service_account",
            "project_id": project,
            "private_key_id": account.private_key_id,
            "private_key": pem,
            "client_email": client_email,
            "client_id": account.client_id,
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": f"{self.url}/token",
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/" + urllib.parse.quote(client_email),
            "universe_domain": "googleapis.com",
        }

    def service_account_file(
        self,
        path: str | Path,
        client_email: str = DEFAULT_CLIENT_EMAIL,
        *,
        delegation: bool = True,
        delegated_scopes: Iterable[str] | None = None,
    ) -> Path:
        """Write service_account_info(...) to `path` and return the path."""
        path = Path(path)
        info = self.service_account_info(client_email, delegation=delegation, delegated_scopes=delegated_scopes)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(info, indent=2), encoding="utf-8")
        return path

    def authorized_user_info(self, scopes: Iterable[str], email: str = DEFAULT_USER) -> dict[str, Any]:
        """Info for google.oauth2.credentials.Credentials.from_authorized_user_info (then call
        .with_token_uri(f"{url}/token"): from_authorized_user_info resets it to Google's)."""
        client_id = f"{secrets.randbelow(10**12)}-{secrets.token_hex(16)}.apps.googleusercontent.com"
        refresh_token = "1//" + secrets.token_urlsafe(48)
        with self._lock:
            self._refresh[refresh_token] = RefreshGrant(email.lower(), client_id, frozenset(scopes))
        return {
            "type": "authorized_user",
            "client_id": client_id,
            "client_secret": "GOCSPX-" + secrets.token_urlsafe(21),
            "refresh_token": refresh_token,
            "token_uri": f"{self.url}/token",
            "scopes": list(scopes),
            "account": email,
        }

    def client_secrets_file(self, path: str | Path, user: str = DEFAULT_USER) -> Path:
        """An OAuth client of type Desktop app (as downloaded from the Cloud console) whose
        consent screen is this fake; `user` is who signs in there and agrees."""
        client_id = f"{secrets.randbelow(10**12)}-{secrets.token_hex(16)}.apps.googleusercontent.com"
        secret = "GOCSPX-" + secrets.token_urlsafe(21)
        with self._lock:
            self._clients[client_id] = (secret, user.lower())
        info = {
            "installed": {
                "client_id": client_id,
                "client_secret": secret,
                "auth_uri": f"{self.url}/o/oauth2/auth",
                "token_uri": f"{self.url}/token",
                "redirect_uris": ["http://localhost"],
            }
        }
        path = Path(path)
        path.write_text(json.dumps(info), encoding="utf-8")
        return path

    def issue_token(self, user: str = DEFAULT_USER, scopes: Iterable[str] = (), lifetime: int | None = None) -> str:
        """An access token for `user`, as if the token endpoint had issued it."""
        return self._issue(user.lower(), frozenset(scopes), "test", "issued", lifetime)["access_token"]

    def expire_tokens(self) -> None:
        """Every access token issued so far now answers 401 (clients refresh)."""
        with self._lock:
            self._tokens.clear()

    def revoke_refresh_token(self, refresh_token: str) -> None:
        with self._lock:
            self._refresh.pop(refresh_token, None)

    def _issue(self, user: str, scopes: frozenset[str] | None, client: str, kind: str, lifetime: int | None = None) -> dict[str, Any]:
        lifetime = self.token_lifetime if lifetime is None else lifetime
        token = "ya29.fake-" + secrets.token_urlsafe(40)
        with self._lock:
            self._tokens[token] = TokenInfo(user, scopes, time.time() + lifetime, client, kind)
        return {"access_token": token, "expires_in": lifetime, "token_type": "Bearer"}

    # ------------------------------------------------------------------ faults and the request log

    def add_fault(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def remove_fault(self, fault: Fault) -> None:
        with self._lock:
            self._faults = [f for f in self._faults if f is not fault]

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._chaos = None

    def chaos(
        self,
        rate: float = 0.2,
        seed: int | None = None,
        kinds: tuple[str, ...] = ("429", "500", "drop_before", "drop_after"),
        methods: str | None = None,
    ) -> Chaos | None:
        """Random faults on every API call (batch parts included, the token endpoint never).
        rate=0 turns chaos off. Returns the Chaos object (its `injected` lists what fired)."""
        with self._lock:
            self._chaos = Chaos(rate, seed, kinds, methods) if rate > 0 else None
            return self._chaos

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def round_trips(self, include_token: bool = False) -> int:
        """HTTP requests that reached the fake (a batch counts once)."""
        return sum(1 for r in self.requests if not r.in_batch and (include_token or r.method_id != TOKEN_METHOD))

    def api_calls(self, method_id: str | None = None) -> int:
        """API calls: batch parts plus direct requests (not the batch envelopes, not tokens)."""
        return sum(
            1 for r in self.requests if r.method_id not in (BATCH_METHOD, TOKEN_METHOD) and (method_id is None or r.method_id == method_id)
        )

    def _record(self, record: RequestRecord) -> None:
        with self._lock:
            self._requests.append(record)

    def _pick_fault(self, call: ApiCall, token_endpoint: bool = False) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if token_endpoint and fault.method is None:
                    continue
                if fault.matches(call):
                    return fault
            if self._chaos is not None and not token_endpoint:
                return self._chaos.pick(call)
        return None

    # ------------------------------------------------------------------ calendar state for tests

    def add_calendar(self, calendar_id: str, time_zone: str = "UTC") -> None:
        """Make a calendar known (free/busy answers for it; other users may use it)."""
        with self._lock:
            self.calendar.add_calendar(calendar_id, time_zone)

    def calendar_info(self, calendar_id: str) -> dict[str, Any]:
        """A calendar's summary, owner and sharing, as the Calendar UI would show them."""
        with self._lock:
            calendar = self.calendar.calendars[calendar_id.lower()]
            return {"summary": calendar.summary, "owner": calendar.owner, "acl": dict(calendar.acl), "time_zone": calendar.time_zone}

    def set_busy(self, email: str, intervals: Iterable[tuple[datetime | str, datetime | str]]) -> None:
        """Declare busy time for a person (replaces what was declared before)."""
        with self._lock:
            calendar = (
                self.calendar.add_calendar(email)
                if email.lower() not in self.calendar.calendars
                else self.calendar.calendars[email.lower()]
            )
            calendar.busy = [(to_instant(s), to_instant(e)) for s, e in intervals]

    def events(self, calendar_id: str, include_cancelled: bool = True) -> list[dict[str, Any]]:
        with self._lock:
            calendar = self.calendar.calendars.get(calendar_id.lower())
            if calendar is None:
                return []
            return [self.calendar.render(e, calendar, None) for e in calendar.events.values() if include_cancelled or not e.cancelled]

    def event(self, calendar_id: str, event_id: str) -> dict[str, Any]:
        with self._lock:
            calendar, stored = self.calendar.stored(calendar_id, event_id)
            return self.calendar.render(stored, calendar, None)

    def respond(self, calendar_id: str, event_id: str, email: str, response: str) -> None:
        """An attendee answers the invitation: "accepted" | "declined" | "tentative" | "needsAction"."""
        with self._lock:
            self.calendar.respond(calendar_id, event_id, email, response)

    def move(self, calendar_id: str, event_id: str, new_start: datetime | str, new_end: datetime | str, notify: bool = False) -> None:
        """Someone drags the event in the Calendar UI (sequence and updated change)."""
        with self._lock:
            self.calendar.move(calendar_id, event_id, new_start, new_end, notify)

    def edit(self, calendar_id: str, event_id: str, changes: dict[str, Any], notify: bool = False) -> None:
        """Someone edits the event in the Calendar UI (patch semantics)."""
        with self._lock:
            self.calendar.edit(calendar_id, event_id, changes, notify)

    def delete_by_user(self, calendar_id: str, event_id: str, notify: bool = False) -> None:
        """Someone deletes the event in the Calendar UI."""
        with self._lock:
            self.calendar.delete_by_user(calendar_id, event_id, notify)

    def fail_free_busy(self, email: str, reason: str = "internalError", times: int = 1) -> None:
        """The next `times` free/busy answers for this calendar carry an error instead of busy time."""
        with self._lock:
            self.calendar.free_busy_errors.setdefault(email.lower(), []).extend([reason] * times)

    def fail_meet(self, event_id: str) -> None:
        """The next Meet conference requested for this event id ends in statusCode "failure"
        (a request with a new requestId then succeeds)."""
        with self._lock:
            self.calendar.meet_failures.add(event_id)

    def settle_meet(self) -> None:
        """Finish every pending Meet creation now."""
        with self._lock:
            saved = self.calendar.meet_delay
            self.calendar.meet_delay = None
            try:
                for calendar in self.calendar.calendars.values():
                    self.calendar.settle_conferences(calendar)
            finally:
                self.calendar.meet_delay = saved

    def route_notices(self, public_prefix: str, target: Target) -> None:
        """Deliver push notices for addresses under `public_prefix` (https://...) to `target`:
        the local http:// prefix of the receiving server (tests cannot serve HTTPS, which
        Google requires), or a function given the headers that returns a status."""
        with self._lock:
            self.push.routes[public_prefix] = target

    def deliver_notices(self, timeout: float = 10.0) -> None:
        """Wait until every push notice due so far has been posted."""
        self.push.flush(timeout)

    def notices(self) -> list[Notice]:
        """The push notices posted so far, with each receiver's answer."""
        with self._lock:
            return list(self.push.sent)

    def channels(self) -> list[dict[str, Any]]:
        """The open push channels (events.watch) with their address and expiry."""
        with self._lock:
            return [
                {"id": c.id, "resource_id": c.resource_id, "calendar": c.calendar_id, "address": c.address, "expiration": c.expiration}
                for c in self.calendar.channels.values()
                if c.expiration > self.clock()
            ]

    def expire_sync_tokens(self) -> None:
        """Every sync token handed out so far now answers 410 fullSyncRequired."""
        with self._lock:
            self.calendar.generation += 1

    def invitations(self, event_id: str, calendar_id: str | None = None) -> list[tuple[str, str]]:
        """The emails Google would have sent about one event: [(attendee email, kind)]."""
        with self._lock:
            return [
                (i.email, i.kind)
                for i in self.calendar.invitations
                if i.event_id == event_id and (calendar_id is None or i.calendar_id == calendar_id.lower())
            ]

    def all_invitations(self) -> list[Invitation]:
        with self._lock:
            return list(self.calendar.invitations)

    # ------------------------------------------------------------------ gmail state for tests

    def sent_mail(self, user: str | None = None) -> list[EmailMessage]:
        """Messages accepted by messages.send, in order (parsed, policy.default)."""
        with self._lock:
            boxes = [self.gmail.mailboxes.get(user.lower(), [])] if user else list(self.gmail.mailboxes.values())
            stored = sorted((m for box in boxes for m in box), key=lambda m: m.history_id)
            return [m.message for m in stored]

    def trash(self, message_id: str) -> None:
        """Someone moves a message (by its Message-ID header) to the Trash."""
        with self._lock:
            for box in self.gmail.mailboxes.values():
                for stored in box:
                    if str(stored.message.get("Message-ID", "")).strip().lower() == message_id.strip().lower():
                        stored.label_ids = [label for label in stored.label_ids if label != "INBOX"] + ["TRASH"]

    def limit_sending(self, per_day: int | None) -> None:
        """Gmail's daily sending limit per user (None: none), counted over a rolling 24 hours."""
        with self._lock:
            self.gmail.daily_limit = per_day

    def add_send_as(self, user: str, address: str) -> None:
        """Allow `user` to send with From: `address` (a verified send-as alias)."""
        with self._lock:
            self.gmail.send_as.setdefault(user.lower(), set()).add(address.lower())

    # ------------------------------------------------------------------ HTTP

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        try:
            body = self._read_body(handler)
            split = urllib.parse.urlsplit(handler.path)
            headers = {k.lower(): v for k, v in handler.headers.items()}
            outcome = self._route(handler.command, split.path, split.query, headers, body)
        except Exception:  # a bug in the fake: make it loud, answer 500
            text = traceback.format_exc()
            self.internal_errors.append(text)
            sys.stderr.write("fake-google internal error:\n" + text)
            outcome = _error_outcome(ApiError(500, "backendError", "Internal error in the fake"))
        if outcome.drop:
            handler.close_connection = True
            return
        try:
            handler.send_response(outcome.status, _phrase(outcome.status))
            for name, value in outcome.headers:
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(outcome.body)))
            handler.end_headers()
            if outcome.body:
                handler.wfile.write(outcome.body)
            handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True  # the client went away (a timeout, typically)

    def answer(self, method: str, url: str, headers: dict[str, str], body: bytes) -> Outcome:
        """One request answered in this process as if it had come over HTTP (the same routing,
        checks, faults and request log), without a socket: for a caller that can do without
        the wire, such as a benchmark of many simulated months."""
        split = urllib.parse.urlsplit(url)
        return self._route(method.upper(), split.path, split.query, {k.lower(): v for k, v in headers.items()}, body)

    @staticmethod
    def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
        if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    handler.rfile.readline()
                    return b"".join(chunks)
                chunks.append(handler.rfile.read(size))
                handler.rfile.readline()
        length = int(handler.headers.get("Content-Length") or 0)
        return handler.rfile.read(length) if length else b""

    def _route(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> Outcome:
        if path == "/o/oauth2/auth":
            return self._consent(query)
        if path == "/token":
            return self._token(method, path, query, headers, body)
        if method == "POST" and (path == "/batch" or path.startswith("/batch/")):
            return self._batch(path, query, headers, body)
        if path.startswith(("/upload/", "/resumable/upload/")):
            error = ApiError(400, "badRequest", 'Media upload is not served here: send the message as JSON {"raw": ...} instead.')
            self._record(RequestRecord("upload", method, path, urllib.parse.parse_qs(query), 400, False))
            return _error_outcome(error)
        return self._api(method, path, query, headers, body, in_batch=False, outer_auth=None)

    # ------------------------------------------------------------------ OAuth token endpoint

    def _token(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> Outcome:
        call = ApiCall(TOKEN_METHOD, method, path, urllib.parse.parse_qs(query), None, None, False)
        fault = self._pick_fault(call, token_endpoint=True)
        if fault is not None and fault.delay:
            self._stopping.wait(fault.delay)
        if fault is not None and fault.drop_before:
            self._record(RequestRecord(TOKEN_METHOD, method, path, call.query, None, False, None, fault.kind, "before"))
            return Outcome(0, drop="before")
        if fault is not None and fault.status is not None:
            outcome = _json_outcome(fault.status, {"error": fault.resolved_reason, "error_description": fault.resolved_message})
        else:
            outcome = self._grant(method, body, headers)
        self._record(
            RequestRecord(
                TOKEN_METHOD,
                method,
                path,
                call.query,
                outcome.status,
                False,
                None,
                fault.kind if fault else None,
                "after" if fault and fault.drop_after else None,
            )
        )
        if fault is not None and fault.drop_after:
            outcome.drop = "after"
        return outcome

    def _consent(self, query: str) -> Outcome:
        """Google's consent screen, agreed to at once: back to the app's loopback address
        with a code. Like Google, a refresh token comes with the first offline consent of a
        user to a client, and later ones only with prompt=consent."""
        asked = {k: v[0] for k, v in urllib.parse.parse_qs(query).items()}
        with self._lock:
            self.authorizations.append(asked)
            client = self._clients.get(asked.get("client_id", ""))
        redirect = asked.get("redirect_uri", "")
        if client is None or not redirect.startswith(("http://localhost", "http://127.0.0.1")):
            return _json_outcome(400, {"error": "invalid_request", "error_description": "Unknown client or redirect_uri"})
        user = client[1]
        offline = asked.get("access_type") == "offline"
        with self._lock:
            fresh = (asked["client_id"], user) not in self._consented
            if offline:
                self._consented.add((asked["client_id"], user))
            code = "4/" + secrets.token_urlsafe(32)
            self._codes[code] = (
                asked["client_id"],
                frozenset(asked.get("scope", "").split()),
                offline and (fresh or asked.get("prompt") == "consent"),
            )
        back = {"code": code, "scope": asked.get("scope", "")}
        if "state" in asked:
            back["state"] = asked["state"]
        return Outcome(302, [("Location", f"{redirect}?{urllib.parse.urlencode(back)}")])

    def _grant(self, method: str, body: bytes, headers: dict[str, str]) -> Outcome:
        def oauth_error(status: int, error: str, description: str) -> Outcome:
            return _json_outcome(status, {"error": error, "error_description": description})

        if method != "POST":
            return oauth_error(400, "invalid_request", "Token requests use POST.")
        form = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode("utf-8", "replace")).items()}
        basic = re.match(r"\s*basic\s+(\S+)", headers.get("authorization", ""), re.IGNORECASE)
        if basic:  # the client may authenticate with HTTP Basic instead of form fields
            client_id, _, secret = base64.b64decode(basic.group(1)).decode("utf-8", "replace").partition(":")
            form.setdefault("client_id", urllib.parse.unquote(client_id))
            form.setdefault("client_secret", urllib.parse.unquote(secret))
        grant = form.get("grant_type", "")
        if grant == JWT_BEARER:
            try:
                claims = _b64url_json(form.get("assertion", "").split(".")[1])
                assert isinstance(claims, dict)
            except Exception:
                return oauth_error(400, "invalid_grant", "Invalid JWT Signature.")
            with self._lock:
                account = self._accounts.get(claims.get("iss", ""))
            if account is None:
                return oauth_error(400, "invalid_grant", "Invalid grant: account not found")
            now = time.time()
            if not (claims.get("iat", 0) - 300 <= now <= claims.get("exp", 0) + 300) or claims.get("exp", 0) - claims.get("iat", 0) > 3600:
                return oauth_error(
                    400,
                    "invalid_grant",
                    "Invalid JWT: Token must be a short-lived token (60 minutes) "
                    "and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
                )
            scopes = frozenset((claims.get("scope") or "").split())
            if not scopes:
                return oauth_error(400, "invalid_scope", "Invalid OAuth scope or ID token audience provided.")
            subject = claims.get("sub")
            if subject:
                if not account.delegation or (account.delegated_scopes is not None and not scopes <= account.delegated_scopes):
                    return oauth_error(
                        401,
                        "unauthorized_client",
                        "Client is unauthorized to retrieve access tokens using this method, or client "
                        "not authorized for any of the scopes requested.",
                    )
                return _json_outcome(200, self._issue(subject.lower(), scopes, account.client_email, "service_account"))
            return _json_outcome(200, self._issue(account.client_email.lower(), scopes, account.client_email, "service_account_self"))
        if grant == "authorization_code":
            with self._lock:
                found = self._codes.pop(form.get("code", ""), None)
                client = self._clients.get(form.get("client_id", ""))
            if found is None or client is None or found[0] != form.get("client_id"):
                return oauth_error(400, "invalid_grant", "Malformed auth code.")
            if form.get("client_secret") != client[0]:
                return oauth_error(401, "invalid_client", "Unauthorized")
            _, scopes, offline = found
            answer = self._issue(client[1], scopes, form["client_id"], "authorized_user")
            answer["scope"] = " ".join(sorted(scopes))
            if offline:
                refresh_token = "1//" + secrets.token_urlsafe(48)
                with self._lock:
                    self._refresh[refresh_token] = RefreshGrant(client[1], form["client_id"], scopes)
                answer["refresh_token"] = refresh_token
            return _json_outcome(200, answer)
        if grant == "refresh_token":
            with self._lock:
                refresh = self._refresh.get(form.get("refresh_token", ""))
            if refresh is None:
                return oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
            if form.get("client_id") != refresh.client_id:
                return oauth_error(401, "invalid_client", "The OAuth client was not found.")
            scopes = refresh.scopes
            if form.get("scope"):
                wanted = frozenset(form["scope"].split())
                if not wanted <= refresh.scopes:
                    return oauth_error(400, "invalid_scope", "Bad Request")
                scopes = wanted
            answer = self._issue(refresh.user, scopes, refresh.client_id, "authorized_user")
            answer["scope"] = " ".join(sorted(scopes))
            return _json_outcome(200, answer)
        return oauth_error(400, "unsupported_grant_type", f"Invalid grant_type: {grant}")

    def _bearer(self, headers: dict[str, str], outer_auth: str | None, pairs: list[tuple[str, str]]) -> tuple[TokenInfo | None, bool]:
        """(token info, whether any credential was presented)."""
        value = headers.get("authorization") or outer_auth or ""
        token = ""
        match = re.match(r"\s*bearer\s+(\S+)", value, re.IGNORECASE)
        if match:
            token = match.group(1)
        else:
            token = next((v for k, v in pairs if k in ("access_token", "oauth_token")), "")
        if not token:
            return None, False
        with self._lock:
            info = self._tokens.get(token)
        if info is not None:
            return (info, True) if info.expires_at > time.time() else (None, True)
        if token.count(".") == 2:  # a self-signed JWT (service account without scopes)
            try:
                claims = _b64url_json(token.split(".")[1])
                with self._lock:
                    account = self._accounts.get(claims.get("iss", ""))
                if account is not None and claims.get("exp", 0) > time.time():
                    scopes = frozenset(claims["scope"].split()) if claims.get("scope") else None
                    return TokenInfo(account.client_email.lower(), scopes, claims["exp"], account.client_email, "self_signed_jwt"), True
            except Exception:
                pass
        return None, True

    # ------------------------------------------------------------------ API calls

    def _resolve(self, method: str, path: str) -> tuple[Discovery, Validator, MethodSpec, dict[str, str]]:
        for discovery, validator in self._mounts:
            prefix = "/" + discovery.service_path
            if path.startswith(prefix):
                relative = path[len(prefix) :]
                try:
                    spec, values = discovery.match(method, relative)
                except ApiError:
                    continue
                return discovery, validator, spec, values
        raise ApiError(404, "notFound", f"The requested URL {path} was not found on this server.")

    def _api(
        self,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        body: bytes,
        *,
        in_batch: bool,
        outer_auth: str | None,
        batch_api: str | None = None,
    ) -> Outcome:
        override = headers.get("x-http-method-override")
        if override and method == "POST":
            method = override.upper()
            if headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
                query = "&".join(part for part in (query, body.decode("utf-8", "replace")) if part)
                body = b""
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        query_dict = urllib.parse.parse_qs(query, keep_blank_values=True)
        try:
            discovery, validator, spec, path_values = self._resolve(method, path)
        except ApiError as error:
            self._record(RequestRecord("unknown", method, path, query_dict, error.code, in_batch))
            return _error_outcome(error)
        if batch_api is not None and discovery.name != batch_api:
            error = ApiError(400, "badRequest", f"A batch sent to /batch/{batch_api} may only call the {batch_api} API.")
            self._record(RequestRecord(spec.id, method, path, query_dict, error.code, in_batch))
            return _error_outcome(error)

        token, presented = self._bearer(headers, outer_auth, pairs)
        try:
            parsed_body = json.loads(body) if body.strip() else None
        except ValueError:
            parsed_body = None
        call = ApiCall(spec.id, method, path, query_dict, parsed_body, token.user if token else None, in_batch)
        fault = self._pick_fault(call)
        fault_kind = fault.kind if fault else None

        if fault is not None and fault.delay:
            self._stopping.wait(fault.delay)
        if fault is not None and fault.drop_before:
            self._record(RequestRecord(spec.id, method, path, query_dict, None, in_batch, call.user, fault_kind, "before"))
            return Outcome(0, drop="before")
        if fault is not None and fault.status is not None:
            if fault.processed:
                self._execute(discovery, validator, spec, path_values, pairs, body, token, presented)
            extra = {}
            if fault.retry_after is not None:
                extra["Retry-After"] = str(int(fault.retry_after) if float(fault.retry_after).is_integer() else fault.retry_after)
            elif fault.status == 429:
                extra["Retry-After"] = "1"
            error = ApiError(fault.status, fault.resolved_reason, fault.resolved_message, headers=extra)
            self._record(RequestRecord(spec.id, method, path, query_dict, error.code, in_batch, call.user, fault_kind))
            return _error_outcome(error)

        outcome = self._execute(discovery, validator, spec, path_values, pairs, body, token, presented)
        dropped = None
        if fault is not None and fault.drop_after:
            outcome.drop = dropped = "after"
        self._record(RequestRecord(spec.id, method, path, query_dict, outcome.status, in_batch, call.user, fault_kind, dropped))
        return outcome

    def _execute(
        self,
        discovery: Discovery,
        validator: Validator,
        spec: MethodSpec,
        path_values: dict[str, str],
        pairs: list[tuple[str, str]],
        body: bytes,
        token: TokenInfo | None,
        presented: bool,
    ) -> Outcome:
        try:
            if token is None:
                message = (
                    "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
                    "cookie or other valid authentication credential."
                    if presented
                    else "Request is missing required authentication credential. Expected OAuth 2 access token, "
                    "login cookie or other valid authentication credential."
                )
                raise ApiError(
                    401,
                    "authError",
                    message,
                    location="Authorization",
                    location_type="header",
                    headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
                )
            if token.scopes is not None and not token.scopes & set(spec.scopes):
                raise ApiError(
                    403,
                    "insufficientPermissions",
                    "Request had insufficient authentication scopes.",
                    headers={
                        "WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", '
                        'error="insufficient_scope", scope="' + " ".join(spec.scopes) + '"'
                    },
                )
            params = validator.query(spec, pairs, path_values)
            if params.get("alt", "json") != "json":
                raise ApiError(
                    400, "invalid", f"Only alt=json is served here, not alt={params['alt']}.", location="alt", location_type="parameter"
                )
            mask = validator.field_mask(spec, params.get("fields", ""))
            payload: Any = None
            if spec.request is not None:
                try:
                    payload = json.loads(body) if body.strip() else {}
                except ValueError as error:
                    raise ApiError(400, "parseError", f"Invalid JSON payload received. {error}.") from None
                if not isinstance(payload, dict):
                    raise ApiError(400, "invalid", "Invalid JSON payload received. Expected an object.")
                validator.body(spec, payload)
            handler = self._handlers.get(spec.id)
            if handler is None:
                raise ApiError(501, "notImplemented", f"{spec.id} is not implemented by the fake.")
            ctx = Ctx(spec.id, token.user, token.kind == "service_account_self", params, payload)
            with self._lock:
                status, result = handler(ctx)
                result = copy.deepcopy(result)
            if result is None:
                return Outcome(status)
            return _json_outcome(status, apply_mask(result, mask))
        except ApiError as error:
            return _error_outcome(error)

    # ------------------------------------------------------------------ batch

    def _batch(self, path: str, query: str, headers: dict[str, str], body: bytes) -> Outcome:
        query_dict = urllib.parse.parse_qs(query)
        api = path[len("/batch/") :].split("/")[0] if path.startswith("/batch/") else None
        if api is not None and api not in self.apis:
            self._record(RequestRecord(BATCH_METHOD, "POST", path, query_dict, 404, False))
            return _error_outcome(ApiError(404, "notFound", f"The requested URL {path} was not found."))
        content_type = headers.get("content-type", "")
        if not content_type.lower().startswith("multipart/mixed"):
            self._record(RequestRecord(BATCH_METHOD, "POST", path, query_dict, 400, False))
            return _error_outcome(ApiError(400, "badRequest", "A batch request must be multipart/mixed."))
        envelope = BytesParser(policy=email_policy.compat32).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
        parts = envelope.get_payload() if envelope.is_multipart() else []
        inner = [self._parse_inner(part) for part in parts]  # type: ignore[union-attr]
        if api is not None:
            limit = BATCH_LIMITS.get(api, 1000)
        else:
            limit = min(
                [BATCH_LIMITS["gmail"] if p[1].startswith("/gmail/") else BATCH_LIMITS["calendar"] for p in inner if p is not None]
                or [1000]
            )
        if not parts or len(parts) > limit:
            self._record(RequestRecord(BATCH_METHOD, "POST", path, query_dict, 400, False))
            message = (
                "A batch request needs at least one part."
                if not parts
                else f"Too many requests in a batch: {len(parts)}, at most {limit} are allowed."
            )
            return _error_outcome(ApiError(400, "badRequest", message))

        outer_auth = headers.get("authorization")
        answers: list[tuple[str, Outcome]] = []
        drop: str | None = None
        for part, parsed in zip(parts, inner):
            # A long Content-ID arrives folded over two lines: unfold it as RFC 5322 says.
            content_id = " ".join(str(part.get("Content-ID") or "").split())  # type: ignore[union-attr]
            if parsed is None:
                outcome = _error_outcome(ApiError(400, "badRequest", "Could not parse a batch part."))
            else:
                method, target, part_headers, part_body = parsed
                split = urllib.parse.urlsplit(target)
                outcome = self._api(
                    method, split.path, split.query, part_headers, part_body, in_batch=True, outer_auth=outer_auth, batch_api=api
                )
            if outcome.drop == "before":
                drop = "before"
                break
            if outcome.drop == "after":
                drop = "after"
                outcome.drop = None
            answers.append((content_id, outcome))
        self._record(RequestRecord(BATCH_METHOD, "POST", path, query_dict, None if drop == "before" else 200, False, None, None, drop))
        if drop:
            return Outcome(0, drop=drop)

        boundary = "batch_" + secrets.token_urlsafe(12).replace("-", "x").replace("_", "y")
        chunks: list[bytes] = []
        for content_id, outcome in answers:
            response_id = f"<response-{content_id[1:-1] if content_id.startswith('<') else content_id}>"
            phrase = _phrase(outcome.status)
            head = [
                f"--{boundary}",
                "Content-Type: application/http",
                f"Content-ID: {response_id}",
                "",
                f"HTTP/1.1 {outcome.status} {phrase}",
            ]
            head += [f"{name}: {value}" for name, value in outcome.headers]
            head += [f"Content-Length: {len(outcome.body)}", "", ""]
            chunks.append("\r\n".join(head).encode() + outcome.body + b"\r\n")
        chunks.append(f"--{boundary}--\r\n".encode())
        return Outcome(200, [("Content-Type", f"multipart/mixed; boundary={boundary}")], b"".join(chunks))

    @staticmethod
    def _parse_inner(part: Any) -> tuple[str, str, dict[str, str], bytes] | None:
        payload = part.get_payload()
        if not isinstance(payload, str):
            return None
        text = payload.lstrip("\r\n")
        request_line, _, rest = text.partition("\n")
        pieces = request_line.strip().split(" ")
        if len(pieces) < 2:
            return None
        method, target = pieces[0].upper(), pieces[1]
        if rest.startswith(("\r\n", "\n")):
            header_text, body_text = "", rest.split("\n", 1)[1]
        else:
            match = re.search(r"\r?\n\r?\n", rest)
            header_text, body_text = (rest[: match.start()], rest[match.end() :]) if match else (rest, "")
        parsed = HeaderParser().parsestr(header_text)
        headers = {k.lower(): v for k, v in parsed.items()}
        body_bytes = body_text.encode("utf-8")
        length = headers.get("content-length")
        if length and length.isdigit():
            body_bytes = body_bytes[: int(length)]
        return method, target, headers, body_bytes
