"""RFC 5322 messages: text + HTML alternatives, an optional calendar request, safe headers."""

from __future__ import annotations

import hashlib
import unicodedata
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from ..domain.model import Contact
from .templates import Rendered

# Python's email package decodes "=?charset?q?...?=" inside header values it is given, so
# an innocent-looking name could smuggle a line break into the header block. Headers
# are therefore built from text with every line-breaking or invisible character removed
# and every encoded-word opener broken up.
_UNSAFE = {"Cc", "Cf", "Zl", "Zp"}


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
) -> EmailMessage:
    """One message to one recipient: multipart/alternative of text and HTML, plus the
    calendar request (inline for mail programs that show invitations, and attached)."""
    body = EmailMessage()
    body.set_content(rendered.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    body.add_alternative(rendered.html, subtype="html", charset="utf-8", cte="quoted-printable")
    if calendar is None:
        message = body
    else:
        body.add_alternative(
            calendar, maintype="text", subtype="calendar", params={"method": calendar_method, "charset": "utf-8"}, cte="base64"
        )
        message = EmailMessage()
        message.make_mixed()
        message.attach(body)
        message.add_attachment(calendar, maintype="application", subtype="ics", filename="invite.ics")
    message["From"] = address(sender)
    message["To"] = address(to)
    message["Reply-To"] = address(reply_to)
    message["Subject"] = header_text(rendered.subject)
    message["Date"] = format_datetime(date)
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to us
    return message
