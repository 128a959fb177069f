"""RFC 5322 messages: text + HTML alternatives, an optional calendar request, safe headers.

A message is built once as a plain description of its parts (headers already in their
final form, bodies already encoded). From that one description come both the
EmailMessage that callers read (`message["To"]`, `get_body()`) and the exact bytes a
transport hands over (`Composed.wire`), so sending never runs the email package's header
parser and generator again. `tests/unit/test_mime.py` checks that the bytes are what the
email package writes for the same message.
"""

from __future__ import annotations

import binascii
import hashlib
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.headerregistry import Address, BaseHeader
from email.message import EmailMessage, MIMEPart
from email.utils import format_datetime
from functools import lru_cache

from ..domain.model import Contact
from .templates import Rendered

# Python's email package decodes "=?charset?q?...?=" inside header values it is given, so
# an innocent-looking name could smuggle a line break into the header block. Headers
# are therefore built from text with every line-breaking or invisible character removed
# and every encoded-word opener broken up.
_UNSAFE = {"Cc", "Cf", "Zl", "Zp"}

# How headers are written: as RFC 6532 UTF-8 when an address is not ASCII (encoded words
# are not allowed inside an address), else with encoded words.
_POLICIES = {True: policy.SMTPUTF8, False: policy.SMTP}

# The output's line length for headers (the email package's) and for encoded bodies.
_HEADER_WIDTH = 78
_BASE64_CHUNK = 57  # bytes per base64 line: 76 characters


def header_text(value: str) -> str:
    """One line of visible text, safe to hand to the email package."""
    cleaned = "".join(" " if unicodedata.category(c) in _UNSAFE else c for c in value)
    cleaned = " ".join(cleaned.split())
    return cleaned.replace("=?", "= ?")


def address(contact: Contact) -> Address:
    local, _, domain = contact.email.rpartition("@")
    if not local or not domain or any(unicodedata.category(c) in _UNSAFE or c.isspace() for c in contact.email):
        raise ValueError(f"{contact.email!r} is not a usable address")
    return Address(display_name=header_text(contact.name), username=local, domain=domain)


def message_id(key: tuple[str, ...], domain: str) -> str:
    """A Message-ID fixed by the message's identity, so every retry carries the same one."""
    digest = hashlib.sha256("\x1f".join(key).encode("utf-8")).hexdigest()[:32]
    return f"<{digest}@{domain}>"


class Composed(EmailMessage):
    """An EmailMessage that carries what transports need, worked out once when it was
    built: its bytes on the wire (RFC 6532 UTF-8 headers when an address is not ASCII,
    encoded words otherwise), the envelope addresses and its date. Not to be changed
    after building: the bytes would no longer match."""

    wire: bytes
    envelope: tuple[str, str]
    sent_date: datetime


@dataclass(frozen=True)
class _Part:
    """One MIME part: header lines as they are written (ASCII, short) and either an
    encoded body with "\\n" line ends or the parts of a multipart with their boundary."""

    headers: tuple[tuple[str, str], ...]
    body: str | tuple[_Part, ...]
    boundary: str = ""


def build_message(
    rendered: Rendered,
    *,
    sender: Contact,
    reply_to: Contact,
    to: Contact,
    message_id: str,
    date: datetime,
    calendar: bytes | None = None,
    calendar_method: str = "REQUEST",
) -> Composed:
    """One message to one recipient: multipart/alternative of text and HTML, plus the
    calendar request (inline for mail programs that show invitations, and attached)."""
    envelope = (_address_header("From", sender)[1], _address_header("To", to)[1])
    international = not "".join(envelope).isascii()
    # A boundary opening with "=_" cannot occur in quoted-printable or base64 text.
    tag = hashlib.sha256(message_id.encode("utf-8")).hexdigest()[:24]
    texts = (_text_part("plain", rendered.text), _text_part("html", rendered.html))
    if calendar is None:
        root = _multipart("alternative", f"=_{tag}_a", texts)
    else:
        kind = f'text/calendar; method="{calendar_method}"; charset="utf-8"'
        inline = _Part((("Content-Type", kind), ("Content-Transfer-Encoding", "base64")), _base64(calendar))
        attached = _Part(
            (
                ("Content-Type", "application/ics"),
                ("Content-Transfer-Encoding", "base64"),
                ("Content-Disposition", 'attachment; filename="invite.ics"'),
            ),
            _base64(calendar),
        )
        root = _multipart("mixed", f"=_{tag}_m", (_multipart("alternative", f"=_{tag}_a", (*texts, inline)), attached))

    wire = _POLICIES[international]
    addressed = (("From", sender), ("To", to), ("Reply-To", reply_to))
    subject = header_text(rendered.subject)
    message = Composed()
    lines = [f"{name}: {value}\r\n" for name, value in (("MIME-Version", "1.0"), *root.headers)]
    for name, value in (("MIME-Version", "1.0"), *root.headers):
        message.set_raw(name, value)
    for name, contact in addressed:
        message.set_raw(name, _address_header(name, contact)[0])
        lines.append(_folded(name, contact, international))
    if subject.isascii() and subject.isprintable() and len(subject) + len("Subject: ") <= _HEADER_WIDTH:
        message.set_raw("Subject", subject)  # the email package writes such a line unchanged
        lines.append(f"Subject: {subject}\r\n")
    else:
        header = policy.default.header_factory("Subject", subject)
        message.set_raw("Subject", header)
        lines.append(header.fold(policy=wire))
    for name, value in (("Date", format_datetime(date)), ("Message-ID", message_id), ("Auto-Submitted", "auto-generated")):
        if value.isascii():
            message.set_raw(name, value)
            lines.append(f"{name}: {value}\r\n")
        else:  # a Message-ID in an international domain
            header = policy.default.header_factory(name, value)
            message.set_raw(name, header)
            lines.append(header.fold(policy=wire))
    # RFC 3834's Auto-Submitted above: no vacation replies to us.
    assert not isinstance(root.body, str)
    message.set_payload([_tree(part) for part in root.body])
    lines.append("\r\n")
    _body(root, lines)
    message.wire = "".join(lines).encode("utf-8" if international else "ascii")
    message.envelope = envelope
    message.sent_date = date
    return message


@lru_cache(maxsize=4096)
def _address_header(name: str, contact: Contact) -> tuple[BaseHeader, str]:
    """The header object for one person, and their address: the same people get many
    messages, so each is parsed once. ValueError for an address no email can carry."""
    header = policy.default.header_factory(name, address(contact))
    return header, header.addresses[0].addr_spec


@lru_cache(maxsize=8192)
def _folded(name: str, contact: Contact, international: bool) -> str:
    """The header line as written for that policy (keyed by name and person: header
    objects compare as their text, so From and Reply-To of one person would be equal)."""
    return _address_header(name, contact)[0].fold(policy=_POLICIES[international])


def _text_part(subtype: str, text: str) -> _Part:
    """Text as UTF-8, quoted-printable, with "\\n" line ends (the email package's form)."""
    data = b"\n".join(text.encode("utf-8").splitlines()) + b"\n"
    body = binascii.b2a_qp(data, istext=True).decode("ascii")
    return _Part((("Content-Type", f'text/{subtype}; charset="utf-8"'), ("Content-Transfer-Encoding", "quoted-printable")), body)


def _base64(data: bytes) -> str:
    return "".join(binascii.b2a_base64(data[i : i + _BASE64_CHUNK]).decode("ascii") for i in range(0, len(data), _BASE64_CHUNK))


def _multipart(subtype: str, boundary: str, parts: tuple[_Part, ...]) -> _Part:
    return _Part((("Content-Type", f'multipart/{subtype}; boundary="{boundary}"'),), parts, boundary)


def _tree(part: _Part) -> MIMEPart:
    node = MIMEPart()
    for name, value in part.headers:
        node.set_raw(name, value)
    node.set_payload(part.body if isinstance(part.body, str) else [_tree(p) for p in part.body])
    return node


def _body(part: _Part, out: list[str]) -> None:
    """A part's body as the email package's generator writes it: CRLF line ends, each
    subpart after a boundary line, a blank line before every boundary after the first."""
    if isinstance(part.body, str):
        out.append(part.body.replace("\n", "\r\n"))
        return
    for index, sub in enumerate(part.body):
        out.append(("\r\n" if index else "") + f"--{part.boundary}\r\n")
        out.extend(f"{name}: {value}\r\n" for name, value in sub.headers)
        out.append("\r\n")
        _body(sub, out)
    out.append(f"\r\n--{part.boundary}--\r\n")
