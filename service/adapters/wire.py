"""An email as the bytes a transport hands over."""

from __future__ import annotations

from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.utils import parsedate_to_datetime

# A message built by service.mail.mime carries these, worked out once when it was built
# (see Composed there); any other EmailMessage is read the slow way.


def addresses(message: EmailMessage) -> tuple[str, str]:
    """The envelope: sender and recipient addresses."""
    envelope = getattr(message, "envelope", None)
    if envelope is not None:
        return envelope
    return message["From"].addresses[0].addr_spec, message["To"].addresses[0].addr_spec


def wire_bytes(message: EmailMessage) -> bytes:
    """With an address outside ASCII the headers go out as UTF-8 (RFC 6532, SMTPUTF8):
    encoded words are not allowed inside an address and would garble it."""
    wire = getattr(message, "wire", None)
    if wire is not None:
        return wire
    international = not "".join(addresses(message)).isascii()
    return message.as_bytes(policy=policy.SMTPUTF8 if international else policy.SMTP)


def date_of(message: EmailMessage) -> datetime:
    """The message's Date header as a datetime."""
    date = getattr(message, "sent_date", None)
    return date if date is not None else parsedate_to_datetime(message["Date"])
