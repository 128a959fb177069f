"""What keeps the pages safe: the signing key, the coordinator's password, sign-in
cookies, CSRF tokens and rate limits."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..domain.links import keyed
from ..domain.ports import Store

SECRET_ENV = "MENTORSHIP_WEB_SECRET"
SIGN_IN_FOR = timedelta(hours=12)
# scrypt's cost: about 16 MB and a few tens of milliseconds per guess.
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def signing_key(store: Store, environ: Mapping[str, str] = os.environ) -> bytes:
    """The key from the environment, or else the one kept in the state (made on first use)."""
    given = environ.get(SECRET_ENV, "").strip()
    return (given or store.web_secret(lambda: secrets.token_urlsafe(32))).encode()


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return "$".join(["scrypt", str(_SCRYPT["n"]), str(_SCRYPT["r"]), str(_SCRYPT["p"]), _b64(salt), _b64(digest)])


def password_matches(password: str, stored: str | None) -> bool:
    if not stored:
        return False
    try:
        name, n, r, p, salt, digest = stored.split("$")
        expected = base64.urlsafe_b64decode(digest + "==")
        found = hashlib.scrypt(
            password.encode(), salt=base64.urlsafe_b64decode(salt + "=="), dklen=len(expected), n=int(n), r=int(r), p=int(p)
        )
    except ValueError:
        return False
    return name == "scrypt" and hmac.compare_digest(found, expected)


def sign_in_cookie(key: bytes, password_hash: str, now: datetime) -> str:
    """A sign-in that lasts SIGN_IN_FOR, and ends at once when the password changes."""
    until, nonce = str(int((now + SIGN_IN_FOR).timestamp())), secrets.token_urlsafe(12)
    return f"{until}.{nonce}.{keyed(key, 'sign-in', until, nonce, password_hash)}"


def signed_in(cookie: str | None, key: bytes, password_hash: str | None, now: datetime) -> bool:
    if not cookie or not password_hash:
        return False
    until, _, rest = cookie.partition(".")
    nonce, _, mac = rest.partition(".")
    if not until.isdigit() or not hmac.compare_digest(mac.encode(), keyed(key, "sign-in", until, nonce, password_hash).encode()):
        return False
    return now.timestamp() < int(until)


@dataclass(frozen=True)
class Door:
    """The coordinator's way in: the password's hashes (one cohort's, or every cohort's of a
    state holding several), the key that signs a sign-in and the clock it expires by. A
    sign-in is bound to all the hashes, so a new password for any of them ends it."""

    key: Callable[[], bytes]
    hashes: Callable[[], list[str | None]]
    now: Callable[[], datetime]

    def ready(self) -> bool:
        return any(self.hashes())

    def opens(self, password: str) -> bool:
        """The password of every one that has a password (it takes at least one)."""
        kept = [stored for stored in self.hashes() if stored]
        return bool(kept) and all(password_matches(password, stored) for stored in kept)

    def cookie(self) -> str:
        return sign_in_cookie(self.key(), self._bound(), self.now())

    def lets_in(self, cookie: str | None) -> bool:
        return self.ready() and signed_in(cookie, self.key(), self._bound(), self.now())

    def _bound(self) -> str:
        return "\n".join(stored or "" for stored in self.hashes())


def new_csrf_cookie() -> str:
    return secrets.token_urlsafe(24)


def csrf_token(key: bytes, cookie: str) -> str:
    """The hidden form field that goes with the browser's CSRF cookie (double submit, signed)."""
    return keyed(key, "csrf", cookie)


def csrf_ok(key: bytes, cookie: str | None, field: str | None) -> bool:
    return bool(cookie and field) and hmac.compare_digest(str(field).encode(), csrf_token(key, str(cookie)).encode())


class RateLimiter:
    """At most `limit` hits per key in any `window` seconds (a sliding window, in memory)."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic):
        self.limit, self.window, self.clock = limit, window, clock
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        now = self.clock()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return False
            hits.append(now)
            if len(self._hits) > 10_000:  # forget idle callers rather than grow without end
                self._hits = {k: v for k, v in self._hits.items() if v and v[-1] > now - self.window}
            return True


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
