"""The organiser's mailbox over IMAP: answers to invitations sent by email (iTIP REPLY and
COUNTER messages, RFC 5546 carried as RFC 6047 iMIP), read without marking anything \\Seen.

A message is handled once: when its answers have been applied (`done`), or at once when it
carries none, it gets the keyword DONE_KEYWORD, and the search for new messages leaves
keyword-flagged messages out. The keyword lives on the server, so a restart, or a second
machine, does not apply an answer twice. A message's handle is "<UIDVALIDITY>:<UID>": if
the folder is rebuilt (UIDVALIDITY changes), old handles match nothing and are ignored."""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import icalendar
from imapclient import IMAPClient  # type: ignore[import-untyped]
from imapclient.exceptions import (  # type: ignore[import-untyped]
    IMAPClientAbortError,
    IMAPClientError,
    LoginError,
    ProtocolError,
)

from ..domain.ports import Replies, RepliesError
from ..domain.replies import Answer, Reply
from ..logs import logger

DONE_KEYWORD = "$MentorshipDone"  # an IMAP keyword: a flag of our own, invisible in most mail clients
COMMENT_LIMIT = 500
SECURITY = ("ssl", "starttls", "none")

# Messages per command: a mailbox read for the first time may hold years of mail. Only the
# structure of each message is fetched at first; whole messages only when one may carry a
# calendar, a few at a time.
STRUCTURE_BATCH = 200
BODY_BATCH = 20
FLAG_BATCH = 500

ANSWERS = {"ACCEPTED": Answer.ACCEPTED, "TENTATIVE": Answer.TENTATIVE, "DECLINED": Answer.DECLINED}
CALENDAR_TYPES = ("text/calendar", "application/ics")
NO_CALENDAR, NO_ANSWER = "carries no calendar", "carries no answer to an invitation"
HARMLESS = (NO_CALENDAR, NO_ANSWER)  # ordinary mail, or a calendar that is not an answer

T = TypeVar("T")


@dataclass(frozen=True)
class ImapSettings:
    host: str
    port: int = 993
    security: str = "ssl"  # ssl | starttls | none
    # The names of environment variables, never the secrets: read when connecting.
    username_env: str = field(kw_only=True)
    password_env: str = field(kw_only=True)
    folder: str = "INBOX"
    timeout: float = 30.0  # seconds, for connecting and for each read

    def __post_init__(self) -> None:
        if self.security not in SECURITY:
            raise ValueError(f"IMAP security must be one of {', '.join(SECURITY)}, not {self.security!r}")


class ImapReplies(Replies):
    """Reads one folder of the organiser's mailbox. Connects on first use and keeps the
    connection for later calls (a dropped one is opened again); `close()` ends it."""

    def __init__(self, settings: ImapSettings, ssl_context: ssl.SSLContext | None = None):
        self.settings = settings
        self.ssl_context = ssl_context
        self._client: Any = None

    def __enter__(self) -> ImapReplies:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def unread(self) -> list[Reply]:
        return self._in_folder(self._read)

    def done(self, messages: Sequence[str]) -> None:
        if not messages:
            return
        self._in_folder(lambda client, validity: self._flag(client, _uids_of(messages, validity)))

    def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.logout()
        except Exception:  # already gone: closing is all that is left to do
            try:
                client.shutdown()
            except Exception:
                pass

    # ------------------------------------------------------------------ the connection

    def _in_folder(self, work: Callable[[Any, int], T]) -> T:
        """Run `work(client, uidvalidity)` with the folder selected. A kept connection that
        the server has dropped meanwhile (IMAP servers end idle sessions) is opened again
        once; every other failure becomes a RepliesError."""
        kept = self._client is not None
        while True:
            try:
                client = self._connected()
                return work(client, self._select(client))
            except RepliesError:
                self._drop()
                raise
            except (OSError, EOFError, IMAPClientError) as exc:
                self._drop()
                if kept and isinstance(exc, (IMAPClientAbortError, ConnectionError, EOFError)):
                    kept = False
                    continue
                raise RepliesError(f"IMAP {self._where}: {_describe(exc)}") from None

    @property
    def _where(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    def _connected(self) -> Any:
        if self._client is None:
            self._client = self._open()
        return self._client

    def _open(self) -> Any:
        s = self.settings
        username, password = _secret(s.username_env), _secret(s.password_env)
        if s.security != "none" and self.ssl_context is None:
            self.ssl_context = ssl.create_default_context()
        try:
            client = IMAPClient(s.host, s.port, ssl=s.security == "ssl", ssl_context=self.ssl_context, timeout=s.timeout)
        except (OSError, EOFError, IMAPClientError) as exc:
            raise RepliesError(f"cannot reach the IMAP server {self._where}: {_hide(_describe(exc), password)}") from None
        try:
            if s.security == "starttls":
                client.starttls(self.ssl_context)
            if (username + password).isascii():
                client.login(username, password)
            else:  # LOGIN carries ASCII only; SASL PLAIN carries UTF-8
                client.plain_login(username, password)
        except LoginError as exc:
            _shut(client)
            raise RepliesError(f"IMAP {self._where} refused the login: {_hide(_describe(exc), password)}") from None
        except (OSError, EOFError, IMAPClientError, ValueError) as exc:
            _shut(client)
            raise RepliesError(f"IMAP {self._where}: cannot log in: {_hide(_describe(exc), password)}") from None
        return client

    def _select(self, client: Any) -> int:
        """Select the folder (again on every call: that also shows new messages) and return
        its UIDVALIDITY."""
        info = client.select_folder(self.settings.folder)
        validity = info.get(b"UIDVALIDITY")
        if not isinstance(validity, int):
            raise RepliesError(f"IMAP {self._where}: the folder {self.settings.folder} has no UIDVALIDITY")
        if b"READ-ONLY" in info:
            raise RepliesError(f"IMAP {self._where}: the folder {self.settings.folder} is read-only, so answers cannot be marked done")
        allowed = info.get(b"PERMANENTFLAGS")
        if allowed is not None and b"\\*" not in allowed and DONE_KEYWORD.encode() not in allowed:
            raise RepliesError(f"IMAP {self._where}: the folder {self.settings.folder} does not keep keyword flags such as {DONE_KEYWORD}")
        return validity

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            _shut(client)

    # ------------------------------------------------------------------ reading

    def _read(self, client: Any, validity: int) -> list[Reply]:
        uids = sorted(client.search(["NOT", "KEYWORD", DONE_KEYWORD]))
        finished: list[int] = []  # carry no answer: marked done at once

        candidates: list[int] = []
        for batch in _chunks(uids, STRUCTURE_BATCH):
            try:
                structures = {uid: data.get(b"BODYSTRUCTURE") for uid, data in client.fetch(batch, [b"BODYSTRUCTURE"]).items()}
            except ProtocolError:  # a structure the library cannot parse: read the whole messages
                structures = dict.fromkeys(batch)
            for uid in batch:
                if uid not in structures:
                    continue  # removed meanwhile
                if structures[uid] is None or _mentions_calendar(structures[uid]):
                    candidates.append(uid)
                else:
                    finished.append(uid)

        replies: list[Reply] = []
        for batch in _chunks(candidates, BODY_BATCH):
            for uid, raw in _bodies(client, batch).items():
                handle = f"{validity}:{uid}"
                found, problem = _replies_in(raw, handle) if raw is not None else ([], "could not be fetched")
                if found:
                    replies.extend(found)
                    continue
                finished.append(uid)
                # Says which message and what kind of problem, never what the message says.
                logger.log(
                    logging.INFO if problem in HARMLESS else logging.WARNING,
                    f"Mailbox message {handle} {problem}: marked done without an answer",
                    extra={"event": "mailbox_message_skipped", "fields": {"message": handle, "problem": problem}},
                )
        self._flag(client, finished)
        return replies

    def _flag(self, client: Any, uids: list[int]) -> None:
        for batch in _chunks(sorted(uids), FLAG_BATCH):
            client.add_flags(batch, [DONE_KEYWORD], silent=True)


def _bodies(client: Any, batch: list[int]) -> dict[int, bytes | None]:
    """The raw messages, read with BODY.PEEK so they stay unread for people. One message
    the library cannot parse is fetched alone, so it cannot block the others."""
    try:
        response = client.fetch(batch, [b"BODY.PEEK[]"])
        return {uid: response[uid].get(b"BODY[]") for uid in batch if uid in response}
    except ProtocolError:
        bodies: dict[int, bytes | None] = {}
        for uid in batch:
            try:
                bodies[uid] = client.fetch([uid], [b"BODY.PEEK[]"]).get(uid, {}).get(b"BODY[]")
            except ProtocolError:
                bodies[uid] = None
        return bodies


def _mentions_calendar(structure: Any) -> bool:
    """Whether a BODYSTRUCTURE names a calendar part anywhere: a text/calendar or
    application/ics type, or a file name ending in .ics. Errs towards yes."""
    if isinstance(structure, bytes | str):
        atom = structure.lower() if isinstance(structure, str) else structure.decode("latin-1").lower()
        return atom in ("calendar", "ics") or atom.endswith(".ics")
    if isinstance(structure, list | tuple):
        return any(_mentions_calendar(item) for item in structure)
    return False


# ---------------------------------------------------------------------- messages


def _replies_in(raw: bytes, handle: str) -> tuple[list[Reply], str]:
    """The answers in one raw message, or none and what kept it from having any."""
    try:
        message = message_from_bytes(raw, policy=policy.default)
        parts = list(_calendar_parts(message))
        sender = _sender(message)
    except Exception as exc:
        return [], f"cannot be parsed ({type(exc).__name__})"
    if not parts:
        return [], NO_CALENDAR
    found: list[Reply] = []
    broken = False
    for part in parts:
        # Anything a malformed calendar makes the parsers raise is the calendar's fault. The
        # parser skips lines it cannot read (noting them in `errors`) and drops a calendar
        # cut off before its END: either way, a part that yields no answer is called broken.
        try:
            calendars = _calendars(part)
        except Exception:
            broken = True
            continue
        broken = broken or not calendars or any(component.errors for c in calendars for component in c.walk())
        for calendar in calendars:
            method = str(calendar.get("METHOD") or part.get_param("method") or "").strip().upper()
            if method not in ("REPLY", "COUNTER"):
                continue
            for event in calendar.walk("VEVENT"):
                try:
                    found.extend(_event_replies(event, method, handle=handle, sender=sender))
                except Exception:
                    broken = True
    if found:
        return list(dict.fromkeys(found)), ""  # Gmail and Thunderbird attach the same calendar twice
    return [], "has a calendar that cannot be read" if broken else NO_ANSWER


def _calendar_parts(part: EmailMessage) -> Iterator[EmailMessage]:
    """Leaf parts that hold iCalendar data. Messages forwarded inside this one are not
    looked into: an answer comes in a message of its own."""
    if part.get_content_maintype() == "message":
        return
    if part.is_multipart():
        for sub in part.iter_parts():
            yield from _calendar_parts(sub)  # type: ignore[arg-type]
        return
    name = (part.get_filename() or "").strip().lower()
    if part.get_content_type() in CALENDAR_TYPES or name.endswith(".ics"):
        yield part


def _calendars(part: EmailMessage) -> list[icalendar.Component]:
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        return []
    charset = part.get_content_charset() or "utf-8"
    try:
        text = data.decode(charset, "replace")
    except LookupError:  # a charset Python does not know
        text = data.decode("utf-8", "replace")
    return list(icalendar.Calendar.from_ical(text.lstrip("\ufeff"), multiple=True))


def _sender(message: EmailMessage) -> str:
    return parseaddr(str(message.get("From", "")))[1].strip().lower()


def _event_replies(event: icalendar.Component, method: str, *, handle: str, sender: str) -> list[Reply]:
    uid = str(event.get("UID") or "").strip()
    if not uid:
        return []
    raw_sequence = event.get("SEQUENCE")
    sequence = 0 if raw_sequence is None else int(str(raw_sequence))
    attendees = _attendees(event)
    comment = _comment(event)

    def reply(attendee: str, answer: Answer, proposed: tuple[datetime, datetime] | None = None) -> Reply:
        return Reply(
            message=handle,
            event_uid=uid,
            attendee=attendee,
            sender=sender,
            answer=answer,
            sequence=sequence,
            proposed=proposed,
            comment=comment,
        )

    if method == "REPLY":
        # Normally one ATTENDEE, the one answering; with several, each that has answered.
        return [reply(address, ANSWERS[status]) for address, status in attendees if status in ANSWERS]
    proposed = _proposed(event)
    # A counter-proposal may list every attendee: the one proposing is the one who sent it.
    proposers = [a for a in attendees if a[0] == sender]
    if not proposers:
        proposers = attendees if len(attendees) == 1 else [a for a in attendees if a[1] != "NEEDS-ACTION"]
    return [reply(address, Answer.COUNTER, proposed) for address, _ in proposers]


def _attendees(event: icalendar.Component) -> list[tuple[str, str]]:
    """(address, PARTSTAT) of each ATTENDEE, addresses without mailto: and lower case."""
    values = event.get("ATTENDEE")
    if values is None:
        return []
    found = []
    for value in values if isinstance(values, list) else [values]:
        address = str(value).strip()
        if address.lower().startswith("mailto:"):
            address = address[len("mailto:") :]
        address = address.strip().lower()
        status = str(getattr(value, "params", {}).get("PARTSTAT", "NEEDS-ACTION")).strip().upper()
        if address:
            found.append((address, status))
    return found


def _comment(event: icalendar.Component) -> str:
    values = event.get("COMMENT")
    if values is None:
        return ""
    texts = [str(value).strip() for value in (values if isinstance(values, list) else [values])]
    return "\n".join(text for text in texts if text)[:COMMENT_LIMIT]


def _proposed(event: icalendar.Component) -> tuple[datetime, datetime]:
    """The time a COUNTER asks for, aware UTC. Raises ValueError when it names none."""
    start = _utc(event, "DTSTART")
    if "DTEND" in event:
        end = _utc(event, "DTEND")
    elif "DURATION" in event and isinstance(event.decoded("DURATION"), timedelta):
        end = start + event.decoded("DURATION")
    else:
        raise ValueError("the proposal has no end")
    if end <= start:
        raise ValueError("the proposal ends before it starts")
    return start, end


def _utc(event: icalendar.Component, name: str) -> datetime:
    prop = event.get(name)
    value = getattr(prop, "dt", None)
    if not isinstance(value, datetime):
        raise ValueError(f"{name} is not a date with a time")
    if value.tzinfo is None:
        # icalendar resolves TZIDs it knows (Olson names, Windows names, VTIMEZONEs in the
        # file); what is left is either an Olson name it could not place, or floating time.
        tzid = prop.params.get("TZID") if hasattr(prop, "params") else None
        value = value.replace(tzinfo=ZoneInfo(str(tzid)) if tzid else UTC)  # an unknown TZID raises
    return value.astimezone(UTC)


# ---------------------------------------------------------------------- helpers


def _uids_of(handles: Sequence[str], validity: int) -> list[int]:
    """The UIDs of handles made under this UIDVALIDITY; others name nothing any more."""
    uids = []
    for handle in handles:
        prefix, _, uid = handle.partition(":")
        if prefix == str(validity) and uid.isdigit():
            uids.append(int(uid))
    return uids


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _secret(variable: str) -> str:
    value = os.environ.get(variable)
    if value is None:
        raise RepliesError(f"cannot log in to the mailbox: the environment variable {variable} is not set")
    return value


def _describe(exc: BaseException) -> str:
    text = str(exc)
    if text.startswith(("b'", 'b"')):  # imapclient quotes server responses as bytes
        text = text[2:-1]
    text = " ".join(text.split())[:200]
    if isinstance(exc, TimeoutError):
        return "timed out" + (f" ({text})" if text and text != "timed out" else "")
    return text or type(exc).__name__


def _hide(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text


def _shut(client: Any) -> None:
    try:
        client.shutdown()
    except Exception:
        pass
