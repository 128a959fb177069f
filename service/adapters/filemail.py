"""Mail as files: each message an .eml file in a folder, for trying things out."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

from ..domain.ports import MailConnection, Mailer, MailError
from .wire import addresses, date_of, wire_bytes


class FileMailer(Mailer, MailConnection):
    """Writes each message atomically (temporary file, fsync, rename), so a file either
    exists whole or not at all and `was_sent` can always tell."""

    @property
    def verify_after(self) -> timedelta:
        return timedelta(0)  # a file is there or not, at once

    def __init__(self, folder: Path):
        self.folder = folder

    @contextmanager
    def connect(self) -> Iterator[MailConnection]:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise _unwritable(error) from None
        yield self

    def ready(self) -> None:
        pass  # the folder was made when connecting

    def send(self, message: EmailMessage) -> None:
        token = _token(message["Message-ID"])
        date = date_of(message)
        recipient = addresses(message)[1]
        final = self.folder / f"{date:%Y%m%dT%H%M}-{_safe(recipient)}-{token}.eml"
        temporary = self.folder / f".{token}.tmp"
        data = wire_bytes(message)
        try:
            with open(temporary, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as error:  # a full disk, say: no message file was made, none half-made is left
            temporary.unlink(missing_ok=True)
            raise _unwritable(error) from None
        os.replace(temporary, final)
        _fsync_folder(self.folder)

    def was_sent(self, message_id: str) -> bool:
        return any(self.folder.glob(f"*-{_token(message_id)}.eml"))


def _unwritable(error: OSError) -> MailError:
    """The folder refuses files (full, read-only): the transport is down, not the message."""
    reason = f"the outbox folder cannot be written ({error.strerror or type(error).__name__})"
    return MailError(MailError.TRANSIENT, reason, transport=True)


def _token(message_id: str) -> str:
    return _safe(message_id.strip("<>").split("@")[0])


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9@._-]+", "_", text)


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
