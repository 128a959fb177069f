"""Mail through Gmail: users.messages.send with the raw message as JSON."""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

from google.auth import exceptions as auth_errors
from google.auth.transport.requests import Request

from ...domain.ports import MailConnection, Mailer, MailError
from ..wire import wire_bytes
from .api import Backoff, Failure, call, classify

VERIFY_AFTER = timedelta(minutes=10)
DAILY_LIMITS = {"quotaExceeded", "dailyLimitExceeded"}  # these hold every email, not just this one


class GmailMailer(Mailer):
    """`sender`: the From address of our emails. With the read scope it is checked against
    the mailbox's send-as addresses (Gmail rewrites any other From), and Gmail keeping our
    Message-ID is confirmed before the Sent folder is trusted to say a message never left."""

    def __init__(
        self,
        service: Callable[[], Any],
        *,
        can_read_sent: bool,
        credentials: Any = None,
        sender: str | None = None,
        backoff: Backoff | None = None,
    ):
        self._service_factory = service
        self.can_read_sent = can_read_sent
        self.credentials = credentials
        self.sender = sender.lower() if sender else None
        self.backoff = backoff or Backoff(attempts=6)
        self._reader: Any = None
        self._local = threading.local()
        self.sender_checked = False
        self.ids_kept: bool | None = None  # whether Gmail keeps the Message-ID we set (None: not known yet)

    @property
    def verify_after(self) -> timedelta | None:
        # Sent mail is searchable within moments; ask only after a margin.
        return VERIFY_AFTER if self.can_read_sent else None

    @contextmanager
    def connect(self) -> Iterator[GmailConnection]:
        # One client per thread (httplib2 is not thread-safe), made once: building it and its
        # resources anew for every batch cost more than the sends of a quiet tick.
        if getattr(self._local, "connection", None) is None:
            self._local.connection = GmailConnection(self._service_factory(), self)
        yield self._local.connection

    @property
    def reader(self) -> Any:
        if self._reader is None:
            self._reader = self._service_factory()
        return self._reader

    def was_sent(self, message_id: str) -> bool | None:
        """Whether Gmail holds the Message-ID, Spam and Trash included (asked `verify_after`
        after the attempt, when the search has caught up); None when it cannot tell."""
        if not self.can_read_sent:
            return None
        messages = self.reader.users().messages()
        try:
            query = messages.list(userId="me", q=f"rfc822msgid:{message_id.strip('<>')}", includeSpamTrash=True)
            if call(query, self.backoff).get("messages"):
                return True
            if self.ids_kept is None:
                self.ids_kept = self._latest_keeps_ids()
        except Exception:
            return None
        # Not found proves nothing if Gmail may have put its own Message-ID in.
        return False if self.ids_kept else None

    def _latest_keeps_ids(self) -> bool | None:
        """Whether the newest message in Sent carries a Message-ID of ours."""
        if not self.sender:
            return None
        messages = self.reader.users().messages()
        found = call(messages.list(userId="me", labelIds=["SENT"], q=f"from:{self.sender}", maxResults=1), self.backoff)
        if not found.get("messages"):
            return None
        latest = found["messages"][0]["id"]
        return _header(self._metadata(latest), "Message-ID").lower().endswith("@" + self.sender.rpartition("@")[2] + ">")

    def _metadata(self, gmail_id: str) -> dict:
        request = self.reader.users().messages().get(userId="me", id=gmail_id, format="metadata", metadataHeaders=["Message-ID", "From"])
        return call(request, self.backoff)

    def check_sender(self) -> None:
        """Raise MailError (the transport refuses) when Gmail would rewrite our From."""
        if self.sender_checked or not self.can_read_sent or not self.sender:
            return
        try:
            answer = call(self.reader.users().settings().sendAs().list(userId="me"), self.backoff)
        except Exception as error:
            raise _transport_error(error) from None
        allowed = {
            entry["sendAsEmail"].lower()
            for entry in answer.get("sendAs", [])
            if entry.get("isPrimary") or entry.get("verificationStatus") == "accepted"
        }
        if self.sender not in allowed:
            raise MailError(
                MailError.TRANSIENT,
                f"Gmail would replace the From address {self.sender} by the organiser's: add it as a verified"
                " send-as address of the organiser's mailbox, or send from the organiser's address",
                transport=True,
            )
        self.sender_checked = True

    def confirm_ids(self, gmail_id: str, message_id: str) -> None:
        """Read back the first message sent, once: did Gmail keep our Message-ID?"""
        if self.ids_kept is not None or not self.can_read_sent:
            return
        try:
            self.ids_kept = _header(self._metadata(gmail_id), "Message-ID").strip().lower() == message_id.strip().lower()
        except Exception:  # asked again with the next message
            return


class GmailConnection(MailConnection):
    def __init__(self, service: Any, mailer: GmailMailer):
        self.service = service
        self.mailer = mailer
        self._messages: Any = None  # users().messages(), made once: the client builds its methods anew each call

    @property
    def messages(self) -> Any:
        if self._messages is None:
            self._messages = self.service.users().messages()
        return self._messages

    def ready(self) -> None:
        """A token, and a From that Gmail keeps: without them no message is touched."""
        credentials = self.mailer.credentials
        if credentials is not None and not credentials.valid:
            try:
                credentials.refresh(Request())
            except (auth_errors.RefreshError, auth_errors.TransportError) as error:
                raise _transport_error(error) from None
        self.mailer.check_sender()

    def send(self, message: EmailMessage) -> None:
        raw = base64.urlsafe_b64encode(wire_bytes(message)).decode("ascii")
        request = self.messages.send(userId="me", body={"raw": raw})
        try:
            # One attempt: the outbox schedules retries, minutes or hours apart.
            answer = call(request, Backoff(attempts=1), idempotent=False)
        except Exception as error:
            failure = classify(error)
            if failure.maybe_done:  # a dropped line or a 5xx: Gmail may have taken it
                raise MailError(MailError.UNKNOWN, failure.reason) from None
            if failure.blocks_all or failure.code in DAILY_LIMITS:
                raise _transport_error(error, failure) from None
            # A moment's rate limit, or a refusal of this message alone.
            raise MailError(MailError.TRANSIENT if failure.retry else MailError.PERMANENT, failure.reason) from None
        self.mailer.confirm_ids(answer.get("id", ""), str(message["Message-ID"]))


def _transport_error(error: Exception, failure: Failure | None = None) -> MailError:
    """Nothing wrong with the message: Gmail refuses everything for now (credentials, an API
    not enabled, a mailbox without Gmail, a rate or daily limit). The emails wait."""
    failure = failure or classify(error)
    return MailError(MailError.TRANSIENT, failure.reason, transport=True, until=failure.until)


def _header(message: dict, name: str) -> str:
    headers = message.get("payload", {}).get("headers", [])
    return next((h.get("value", "") for h in headers if h.get("name", "").lower() == name.lower()), "")
