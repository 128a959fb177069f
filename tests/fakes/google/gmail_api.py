"""Gmail v1 semantics for sending mail as JSON `raw` and finding it again."""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, formataddr, getaddresses, parseaddr
from typing import Any

from .calendar_api import Ctx
from .discovery import decode_bytes
from .errors import ApiError

MAX_LIST = 500
WINDOW = timedelta(hours=24)  # Gmail's sending limits count over a rolling day


@dataclass
class StoredMessage:
    id: str
    thread_id: str
    user: str
    raw: bytes
    label_ids: list[str]
    internal_date: int  # milliseconds since the epoch
    history_id: int

    @property
    def message(self) -> EmailMessage:
        return BytesParser(policy=policy.default).parsebytes(self.raw)  # type: ignore[return-value]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii")


def bare_id(message_id: str) -> str:
    return message_id.strip().strip("<>").strip().lower()


def normalized_subject(subject: str) -> str:
    subject = subject.strip()
    while True:
        stripped = re.sub(r"^(re|fwd?|aw|wg)\s*:\s*", "", subject, flags=re.IGNORECASE)
        if stripped == subject:
            return subject.lower()
        subject = stripped


class GmailBackend:
    def __init__(self, clock: Callable[[], datetime], *, keep_message_id: bool = True) -> None:
        self.clock = clock
        self.keep_message_id = keep_message_id
        self.mailboxes: dict[str, list[StoredMessage]] = {}
        self.send_as: dict[str, set[str]] = {}
        self.daily_limit: int | None = None  # messages a user may send in 24 hours (None: no limit)
        self.sent_at: dict[str, list[datetime]] = {}
        self.next_id = 0x18F0000000000000 + secrets.randbelow(0xFFFFFFFFFF)
        self.history = 100000
        self.handlers: dict[str, Callable[[Ctx], tuple[int, Any]]] = {
            "gmail.users.messages.send": self.send,
            "gmail.users.messages.list": self.list,
            "gmail.users.messages.get": self.get,
            "gmail.users.getProfile": self.profile,
            "gmail.users.settings.sendAs.list": self.send_as_list,
        }

    def _mailbox(self, ctx: Ctx) -> list[StoredMessage]:
        user_id = ctx.params.get("userId", "me")
        if user_id != "me" and user_id.lower() != ctx.user:
            raise ApiError(403, "forbidden", f"Delegation denied for {ctx.user}")
        return self.mailboxes.setdefault(ctx.user, [])

    # ------------------------------------------------------------------ send

    def send(self, ctx: Ctx) -> tuple[int, Any]:
        mailbox = self._mailbox(ctx)
        self._within_limit(ctx.user)
        body = ctx.body or {}
        raw = decode_bytes(body.get("raw") or "")
        if not raw:
            raise ApiError(400, "invalidArgument", "'raw' RFC822 payload message string or uploading message via /upload/* URL required")
        message = BytesParser(policy=policy.default).parsebytes(raw, headersonly=True)  # the body is kept as it came
        recipients = getaddresses([str(v) for name in ("To", "Cc", "Bcc") for v in message.get_all(name, [])])
        recipients = [(n, a) for n, a in recipients if a]
        if not recipients:
            raise ApiError(400, "invalidArgument", "Recipient address required")
        for _, address in recipients:
            if "@" not in address:
                raise ApiError(400, "invalidArgument", f"Invalid To header: {address}")

        rewritten: dict[str, str] = {}  # headers Gmail sets itself
        name, sender = parseaddr(str(message.get("From", "")))
        allowed = {ctx.user} | self.send_as.get(ctx.user, set())
        if not sender or sender.lower() not in allowed:
            rewritten["From"] = formataddr((name, ctx.user)) if name else ctx.user
        if not self.keep_message_id or not message.get("Message-ID"):
            rewritten["Message-ID"] = f"<{secrets.token_hex(16)}@mail.gmail.com>"
        if not message.get("Date"):
            rewritten["Date"] = format_datetime(self.clock())
        stored_raw = raw
        if rewritten:  # the whole message this time, so that it can be written out again
            message = BytesParser(policy=policy.default).parsebytes(raw)
            for header, value in rewritten.items():
                del message[header]
                message[header] = value
            stored_raw = message.as_bytes(policy=policy.SMTP)

        thread_id = self._thread(mailbox, body.get("threadId"), message)
        self.next_id += 1 + secrets.randbelow(64)
        message_id = f"{self.next_id:016x}"
        labels = ["SENT"]
        if ctx.user in {a.lower() for _, a in recipients}:
            labels = ["UNREAD", "SENT", "INBOX"]
        self.history += 1
        stored = StoredMessage(
            message_id, thread_id or message_id, ctx.user, stored_raw, labels, int(self.clock().timestamp() * 1000), self.history
        )
        mailbox.append(stored)
        self.sent_at.setdefault(ctx.user, []).append(self.clock())
        return 200, {"id": stored.id, "threadId": stored.thread_id, "labelIds": list(labels)}

    def _within_limit(self, user: str) -> None:
        """Over the daily limit Gmail answers 429 and says in the message when to retry."""
        if self.daily_limit is None:
            return
        now = self.clock()
        recent = [t for t in self.sent_at.get(user, []) if now - t < WINDOW]
        self.sent_at[user] = recent
        if len(recent) >= self.daily_limit:
            free = (recent[len(recent) - self.daily_limit] + WINDOW).astimezone(UTC)
            raise ApiError(
                429,
                "rateLimitExceeded",
                f"User-rate limit exceeded.  Retry after {free:%Y-%m-%dT%H:%M:%S}.{free.microsecond // 1000:03d}Z",
            )

    def _thread(self, mailbox: list[StoredMessage], thread_id: str | None, message: EmailMessage) -> str | None:
        """Gmail threads a sent message only with threadId, a matching Subject and References/In-Reply-To."""
        if not thread_id:
            return None
        thread = [m for m in mailbox if m.thread_id == thread_id]
        if not thread:
            raise ApiError(400, "invalidArgument", "Invalid thread_id value")
        subject = normalized_subject(str(message.get("Subject", "")))
        if normalized_subject(str(thread[0].message.get("Subject", ""))) != subject:
            return None
        referenced = {
            bare_id(x) for x in re.findall(r"<[^>]+>", " ".join(str(message.get(name, "")) for name in ("References", "In-Reply-To")))
        }
        known = {bare_id(str(m.message.get("Message-ID", ""))) for m in thread}
        return thread_id if referenced & known else None

    # ------------------------------------------------------------------ list

    def list(self, ctx: Ctx) -> tuple[int, Any]:
        mailbox = self._mailbox(ctx)
        params = ctx.params
        size = min(params.get("maxResults", 100), MAX_LIST) or 100
        terms = self._terms(params.get("q") or "")
        labels = params.get("labelIds") or []
        hidden = set() if params.get("includeSpamTrash") else {"SPAM", "TRASH"}  # as Gmail: left out unless asked
        found = [
            m
            for m in reversed(mailbox)
            if all(label in m.label_ids for label in labels) and not hidden & set(m.label_ids) and all(t(m) for t in terms)
        ]
        offset = 0
        if "pageToken" in params:
            if not params["pageToken"].isdigit():
                raise ApiError(400, "invalidArgument", "Invalid pageToken")
            offset = int(params["pageToken"])
        page = found[offset : offset + size]
        if not found:
            return 200, {"resultSizeEstimate": 0}
        result: dict[str, Any] = {"messages": [{"id": m.id, "threadId": m.thread_id} for m in page], "resultSizeEstimate": len(found)}
        if offset + size < len(found):
            result["nextPageToken"] = str(offset + size)
        return 200, result

    def _terms(self, query: str) -> list[Callable[[StoredMessage], bool]]:
        terms: list[Callable[[StoredMessage], bool]] = []
        for operator, value, word in re.findall(r'(\w+):("[^"]*"|\S+)|("[^"]*"|\S+)', query):
            value = (value or word).strip('"').lower()
            operator = operator.lower()
            if operator == "rfc822msgid":
                wanted = bare_id(value)
                terms.append(lambda m, w=wanted: bare_id(str(m.message.get("Message-ID", ""))) == w)
            elif operator in ("in", "label"):
                label = value.upper()
                terms.append(lambda m, v=label: v in m.label_ids)
            elif operator in ("from", "to", "cc", "bcc", "subject"):
                header = {"from": "From", "to": "To", "cc": "Cc", "bcc": "Bcc", "subject": "Subject"}[operator]
                terms.append(lambda m, h=header, v=value: v in " ".join(str(x) for x in m.message.get_all(h, [])).lower())
            else:
                text = f"{operator}:{value}" if operator else value
                terms.append(lambda m, v=text: v in self._text(m).lower())
        return terms

    @staticmethod
    def _text(stored: StoredMessage) -> str:
        message = stored.message
        body = message.get_body(preferencelist=("plain", "html"))
        content = body.get_content() if body is not None else ""
        return f"{message.get('Subject', '')} {content}"

    # ------------------------------------------------------------------ get

    def get(self, ctx: Ctx) -> tuple[int, Any]:
        mailbox = self._mailbox(ctx)
        stored = next((m for m in mailbox if m.id == ctx.params["id"]), None)
        if stored is None:
            raise ApiError(404, "notFound", "Requested entity was not found.")
        fmt = ctx.params.get("format", "full")
        message = stored.message
        snippet = " ".join(self._plain(message).split())[:200]
        result: dict[str, Any] = {
            "id": stored.id,
            "threadId": stored.thread_id,
            "labelIds": list(stored.label_ids),
            "snippet": snippet,
            "sizeEstimate": len(stored.raw),
            "historyId": str(stored.history_id),
            "internalDate": str(stored.internal_date),
        }
        if fmt == "raw":
            result["raw"] = b64url(stored.raw)
        elif fmt == "metadata":
            wanted = {h.lower() for h in ctx.params.get("metadataHeaders", [])}
            headers = [{"name": k, "value": str(v)} for k, v in message.items() if not wanted or k.lower() in wanted]
            result["payload"] = {"partId": "", "mimeType": message.get_content_type(), "filename": "", "headers": headers}
        elif fmt == "full":
            result["payload"] = self._part(message, "")
        return 200, result

    @staticmethod
    def _plain(message: EmailMessage) -> str:
        body = message.get_body(preferencelist=("plain",))
        return body.get_content() if body is not None else ""

    def _part(self, part: EmailMessage, part_id: str) -> dict[str, Any]:
        result: dict[str, Any] = {
            "partId": part_id,
            "mimeType": part.get_content_type(),
            "filename": part.get_filename() or "",
            "headers": [{"name": k, "value": str(v)} for k, v in part.items()],
        }
        if part.is_multipart():
            result["body"] = {"size": 0}
            result["parts"] = [
                self._part(sub, f"{part_id}.{i}" if part_id else str(i))  # type: ignore[arg-type]
                for i, sub in enumerate(part.iter_parts())
            ]
        else:
            data = part.get_payload(decode=True) or b""
            result["body"] = {"size": len(data), "data": b64url(data)} if data else {"size": 0}
        return result

    # ------------------------------------------------------------------ profile

    def profile(self, ctx: Ctx) -> tuple[int, Any]:
        mailbox = self._mailbox(ctx)
        return 200, {
            "emailAddress": ctx.user,
            "messagesTotal": len(mailbox),
            "threadsTotal": len({m.thread_id for m in mailbox}),
            "historyId": str(self.history),
        }

    # ------------------------------------------------------------------ send-as addresses

    def send_as_list(self, ctx: Ctx) -> tuple[int, Any]:
        self._mailbox(ctx)
        entries = [{"sendAsEmail": ctx.user, "isPrimary": True, "isDefault": True}]
        entries += [{"sendAsEmail": a, "verificationStatus": "accepted"} for a in sorted(self.send_as.get(ctx.user, ()))]
        return 200, {"sendAs": entries}
