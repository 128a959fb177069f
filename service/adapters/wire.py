"""An email as the bytes a transport hands over."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage


def addresses(message: EmailMessage) -> tuple[str, str]:
    """The envelope: sender and recipient addresses."""
    return message["From"].addresses[0].addr_spec, message["To"].addresses[0].addr_spec


def wire_bytes(message: EmailMessage) -> bytes:
    """With an address outside ASCII the headers go out as UTF-8 (RFC 6532, SMTPUTF8):
    encoded words are not allowed inside an address and would garble it."""
    international = not "".join(addresses(message)).isascii()
    return message.as_bytes(policy=policy.SMTPUTF8 if international else policy.SMTP)
