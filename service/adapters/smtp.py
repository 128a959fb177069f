"""Mail over SMTP: one connection per batch, each failure classified by what it means
for delivery."""

from __future__ import annotations

import os
import re
import smtplib
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage

from ..domain.ports import MailConnection, Mailer, MailError
from .wire import addresses, wire_bytes


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 587
    security: str = "starttls"  # starttls | ssl | none
    username_env: str | None = None  # names of environment variables, never the secrets
    password_env: str | None = None
    timeout: float = 30.0


class SmtpMailer(Mailer):
    @property
    def verify_after(self) -> None:
        return None  # SMTP cannot be asked what it delivered

    def __init__(self, settings: SmtpSettings, ssl_context: ssl.SSLContext | None = None):
        self.settings = settings
        self.ssl_context = ssl_context

    @contextmanager
    def connect(self) -> Iterator[SmtpConnection]:
        connection = SmtpConnection(self)
        try:
            yield connection
        finally:
            connection.close()

    def was_sent(self, message_id: str) -> None:
        return None

    def open(self) -> smtplib.SMTP:
        s = self.settings
        if s.security != "none" and self.ssl_context is None:
            self.ssl_context = ssl.create_default_context()  # once: building one costs ~20 ms
        context = self.ssl_context if s.security != "none" else None
        if s.security == "ssl":
            client: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=context)
        else:
            client = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        try:
            client.ehlo()
            if s.security == "starttls":
                client.starttls(context=context)
                client.ehlo()
            if s.username_env:
                client.login(_secret(s.username_env), _secret(s.password_env or ""))
        except BaseException:
            client.close()  # a half-open session must not leak its socket
            raise
        return client


class SmtpConnection(MailConnection):
    """Sends messages over one SMTP session, reconnecting after a failure."""

    def __init__(self, mailer: SmtpMailer):
        self.mailer = mailer
        self.client: smtplib.SMTP | None = None

    def ready(self) -> None:
        if self.client is not None:
            return
        s = self.mailer.settings
        try:
            self.client = self.mailer.open()
        except smtplib.SMTPAuthenticationError as exc:
            reason = f"the mail server refused the login: login refused (SMTP {exc.smtp_code}): {self._said(exc.smtp_error)}"
            raise MailError(MailError.TRANSIENT, reason, transport=True) from None
        except ssl.SSLCertVerificationError as exc:
            reason = f"the mail server {s.host}:{s.port} shows a certificate that is not trusted ({exc.verify_message})"
            raise MailError(MailError.TRANSIENT, reason, transport=True) from None
        except (smtplib.SMTPException, OSError) as exc:  # timeouts are OSErrors too
            reason = f"cannot connect to the mail server {s.host}:{s.port} ({type(exc).__name__})"
            raise MailError(MailError.TRANSIENT, reason, transport=True) from None
        except MissingSecret as exc:
            raise MailError(MailError.TRANSIENT, f"cannot log in: {exc}", transport=True) from None
        except ValueError:  # e.g. a password smtplib cannot encode; never quote it
            raise MailError(
                MailError.TRANSIENT, "cannot log in: the password has characters SMTP login cannot carry", transport=True
            ) from None

    def send(self, message: EmailMessage) -> None:
        self.ready()
        sender, recipient = addresses(message)
        international = not (sender + recipient).isascii()
        data = wire_bytes(message)
        phase = "envelope"
        try:
            assert self.client is not None
            options = ["SMTPUTF8"] if international else []
            _expect(self.client.mail(sender, options), 250)
            _expect(self.client.rcpt(recipient), 250, 251)
            _expect(self.client.docmd("DATA"), 354)
            # From here on the server may have the message: a lost reply means we
            # cannot know whether it will be delivered.
            phase = "data"
            self.client.send(_dot_stuffed(data))
            _expect(self.client.getreply(), 250)
        except smtplib.SMTPResponseException as exc:
            self._drop()
            if exc.smtp_code < 0 and phase == "data":
                kind = MailError.UNKNOWN  # a garbled reply to the message itself
            else:
                kind = MailError.PERMANENT if 500 <= exc.smtp_code < 600 else MailError.TRANSIENT
            raise MailError(kind, f"SMTP {exc.smtp_code}: {self._said(exc.smtp_error)}") from None
        except smtplib.SMTPNotSupportedError as exc:
            self._drop()
            raise MailError(MailError.PERMANENT, f"the server cannot take this message: {self._said(str(exc))}") from None
        except (smtplib.SMTPException, OSError) as exc:  # timeouts are OSErrors too
            self._drop()
            kind = MailError.UNKNOWN if phase == "data" else MailError.TRANSIENT
            raise MailError(kind, f"connection lost during {phase}: {self._said(str(exc)) or type(exc).__name__}") from None

    def _said(self, text: bytes | str) -> str:
        """What the server said, as our records keep it: cut short, and with the login's
        user name and password taken out, should the server repeat them."""
        said = _text(text)
        s = self.mailer.settings
        for variable in (s.username_env, s.password_env):
            secret = os.environ.get(variable) if variable else None
            if secret and len(secret) >= 3:
                said = said.replace(secret, "…")
        return said if len(said) <= SAID_CHARS else said[:SAID_CHARS] + "…"

    def close(self) -> None:
        if self.client is not None:
            try:
                self.client.quit()
            except (smtplib.SMTPException, OSError):
                pass
            self._drop()

    def _drop(self) -> None:
        if self.client is not None:
            try:
                self.client.close()
            except OSError:
                pass
        self.client = None


SAID_CHARS = 200  # of a server's reply, kept in an error


class MissingSecret(Exception):
    pass


def _secret(variable: str) -> str:
    value = os.environ.get(variable)
    if value is None:
        raise MissingSecret(f"the environment variable {variable} is not set")
    return value


def _expect(reply: tuple[int, bytes], *codes: int) -> None:
    code, text = reply
    if code not in codes:
        raise smtplib.SMTPResponseException(code, text)


def _dot_stuffed(data: bytes) -> bytes:
    """The DATA payload: lines starting with '.' doubled, ended by CRLF.CRLF."""
    data = re.sub(rb"(?m)^\.", b"..", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
