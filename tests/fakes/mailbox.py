"""The organiser's mailbox as a list of answers, for use-case tests (the IMAP adapter is
tested against a real Dovecot)."""

from __future__ import annotations

from collections.abc import Sequence

from service.domain.ports import Replies, RepliesError
from service.domain.replies import Reply


class Mailbox(Replies):
    def __init__(self) -> None:
        self.waiting: list[Reply] = []
        self.marked: list[str] = []
        self.unreachable = False

    def unread(self) -> list[Reply]:
        if self.unreachable:
            raise RepliesError("connection refused")
        return [r for r in self.waiting if r.message not in self.marked]

    def done(self, messages: Sequence[str]) -> None:
        self.marked.extend(messages)
