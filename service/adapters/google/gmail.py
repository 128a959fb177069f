"""Mail through Gmail: users.messages.send with the raw message as JSON."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

from googleapiclient.errors import HttpError

from ...domain.ports import MailConnection, Mailer, MailError
from ..wire import wire_bytes
from .api import Backoff, call, classify

VERIFY_AFTER = timedelta(minutes=10)
DAILY_LIMITS = {"quotaExceeded", "dailyLimitExceeded", "rateLimitExceeded", "userRateLimitExceeded"}


class GmailMailer(Mailer):
    def __init__(self, service: Callable[[], Any], *, can_read_sent: bool, backoff: Backoff | None = None):
        self._service_factory = service
        self.can_read_sent = can_read_sent
        self.backoff = backoff or Backoff(attempts=6)
        self._reader: Any = None

    @property
    def verify_after(self) -> timedelta | None:
        # Sent mail is searchable within moments; ask only after a margin.
        return VERIFY_AFTER if self.can_read_sent else None

    @contextmanager
    def connect(self) -> Iterator[GmailConnection]:
        yield GmailConnection(self._service_factory())

    def was_sent(self, message_id: str) -> bool | None:
        """Whether Gmail's Sent mail holds the Message-ID (asked `verify_after` after the
        attempt, when the search has caught up); None without the read scope."""
        if not self.can_read_sent:
            return None
        if self._reader is None:
            self._reader = self._service_factory()
        try:
            answer = call(self._reader.users().messages().list(userId="me", q=f"rfc822msgid:{message_id.strip('<>')}"), self.backoff)
        except Exception:
            return None
        return bool(answer.get("messages"))


class GmailConnection(MailConnection):
    def __init__(self, service: Any):
        self.service = service

    def ready(self) -> None:
        pass  # each message is one request; a refused token shows on the first

    def send(self, message: EmailMessage) -> None:
        raw = base64.urlsafe_b64encode(wire_bytes(message)).decode("ascii")
        request = self.service.users().messages().send(userId="me", body={"raw": raw})
        try:
            # One attempt: the outbox schedules retries, minutes or hours apart.
            call(request, Backoff(attempts=1), idempotent=False)
        except Exception as error:
            failure = classify(error)
            if failure.maybe_done:
                raise MailError(MailError.UNKNOWN, failure.reason) from None
            # Quota and credentials problems pass with time or with a fix: not the message's fault.
            temporary = failure.retry or failure.code in DAILY_LIMITS or (isinstance(error, HttpError) and error.resp.status == 401)
            raise MailError(MailError.TRANSIENT if temporary else MailError.PERMANENT, failure.reason) from None
