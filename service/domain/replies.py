"""Answers to invitations sent by email (iTIP, RFC 5546), as the organiser's mailbox
receives them: what an attendee said about which session."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Answer(StrEnum):
    ACCEPTED = "accepted"
    TENTATIVE = "tentative"
    DECLINED = "declined"
    COUNTER = "counter"  # proposes another time (METHOD:COUNTER)


@dataclass(frozen=True, kw_only=True)
class Reply:
    """One attendee's answer to one invitation, as read from one message."""

    message: str  # the mailbox's handle for the message it came in (to mark it done)
    event_uid: str  # the invitation's UID
    attendee: str  # the ATTENDEE address the answer is for, lower case
    sender: str  # the From address of the message, lower case
    answer: Answer
    sequence: int  # the invitation's SEQUENCE the answer refers to
    proposed: tuple[datetime, datetime] | None = None  # COUNTER: the time asked for, aware UTC
    comment: str = ""  # what the attendee wrote, if anything (kept short)
