"""Personal links in emails: signed, bound to one person, pair, purpose and session
revision, and expiring. Pure: the secret and the moment are given."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum


class LinkPurpose(StrEnum):
    """What a link may do; a link works for its own purpose only."""

    SESSION = "session"  # "Can't make it?": move this session, or withdraw
    GOALS = "goals"  # write down the goals and homework agreed
    MET = "met"  # "Did you meet?"


class LinkProblem(StrEnum):
    TAMPERED = "tampered"  # not signed by us: altered, truncated or made up
    EXPIRED = "expired"
    WRONG_PURPOSE = "wrong_purpose"


class BadLink(Exception):
    def __init__(self, problem: LinkProblem):
        super().__init__(problem.value)
        self.problem = problem


@dataclass(frozen=True, kw_only=True)
class LinkClaim:
    purpose: LinkPurpose
    person: str  # the reader's email
    pair_id: str
    session: int
    revision: int  # the session's sequence when the link was made: a later change makes it stale
    expires: datetime


def sign(claim: LinkClaim, secret: bytes) -> str:
    """A URL-safe token carrying the claim and its signature."""
    body = json.dumps(
        [claim.purpose.value, claim.person, claim.pair_id, claim.session, claim.revision, int(claim.expires.timestamp())],
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    payload = _b64(body)
    return f"{payload}.{_b64(_mac(secret, payload))}"


def verify(token: str, secret: bytes, *, purpose: LinkPurpose, now: datetime) -> LinkClaim:
    """The claim a token carries, or BadLink. The signature is checked before anything
    in the token is read."""
    payload, _, signature = token.partition(".")
    # Compared as text, so nothing a lenient decoder would skip can slip through.
    if not payload or not hmac.compare_digest(signature.encode(), _b64(_mac(secret, payload)).encode()):
        raise BadLink(LinkProblem.TAMPERED)
    kind, person, pair_id, session, revision, expires = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claim = LinkClaim(
        purpose=LinkPurpose(kind),
        person=person,
        pair_id=pair_id,
        session=int(session),
        revision=int(revision),
        expires=datetime.fromtimestamp(expires, UTC),
    )
    if claim.purpose is not purpose:
        raise BadLink(LinkProblem.WRONG_PURPOSE)
    if now >= claim.expires:
        raise BadLink(LinkProblem.EXPIRED)
    return claim


def keyed(secret: bytes, *parts: str) -> str:
    """A short signature of some words (a form's CSRF token, a session cookie)."""
    return _b64(_mac(secret, "\x1f".join(parts)))


def _mac(secret: bytes, text: str) -> bytes:
    return hmac.new(secret, text.encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
