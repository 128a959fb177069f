"""A mail transport that keeps what it is given and fails on request."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import EmailMessage

from service.domain.ports import MailError


class RecordingMailer:
    def __init__(self, verify_after=None) -> None:
        self.verify_after = verify_after  # None: like SMTP, it cannot tell what it delivered
        self.sent: list[EmailMessage] = []
        self.connections = 0
        # Called before each delivery; return a MailError to make that attempt fail.
        self.fault: Callable[[EmailMessage], MailError | None] = lambda message: None
        self.knows: Callable[[str], bool | None] = lambda message_id: None
        self.down: MailError | None = None  # the whole transport refuses us (unreachable, bad login)
        self.probes = 0

    @contextmanager
    def connect(self) -> Iterator[RecordingMailer]:
        self.connections += 1
        yield self

    def ready(self) -> None:
        self.probes += 1
        if self.down is not None:
            raise self.down

    def send(self, message: EmailMessage) -> None:
        error = self.fault(message)
        if error is not None:
            if error.kind == MailError.UNKNOWN:
                self.sent.append(message)  # it did arrive; the sender cannot know
            raise error
        self.sent.append(message)

    def was_sent(self, message_id: str) -> bool | None:
        return self.knows(message_id)

    def to(self, address: str, stage_words: str = "") -> list[EmailMessage]:
        return [m for m in self.sent if m["To"].addresses[0].addr_spec == address and stage_words in str(m["Subject"])]
