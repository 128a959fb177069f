"""The SMTP adapter against a real SMTP server (aiosmtpd) on the loopback interface:
delivery, connection reuse, TLS, authentication, and how each failure is classified."""

from __future__ import annotations

import asyncio
import gc
import html
import json
import shutil
import socket
import ssl
import threading
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from service.adapters.smtp import SmtpMailer, SmtpSettings
from service.domain.model import Contact
from service.domain.ports import MailError
from service.mail.mime import build_message, message_id
from service.mail.templates import Rendered

HOST = "127.0.0.1"
SENDER = Contact(name="Spring Mentoring", email="coordinator@example.org")
ZOE = Contact(name="Zoë Ñúñez", email="zoe@example.net")
USER_ENV, PASSWORD_ENV = "TEST_SMTP_USER", "TEST_SMTP_PASSWORD"
USER, PASSWORD = "mentor-bot", "correct horse battery staple"


# --------------------------------------------------------------------------- messages


def make_message(number: int, *, to: Contact = ZOE, text: str | None = None) -> EmailMessage:
    if text is None:
        text = f"Hello {to.name},\n\nThis is message number {number}.\n"
    return build_message(
        Rendered(subject=f"Your first session with Maya ({number})", text=text, html=f"<p>{html.escape(text)}</p>\n"),
        sender=SENDER,
        reply_to=SENDER,
        to=to,
        message_id=message_id(("integration", str(number), to.email), "example.org"),
        date=datetime(2027, 3, 1, 9, tzinfo=UTC),
    )


def parse(content: bytes) -> EmailMessage:
    return message_from_bytes(content, policy=policy.default)


def text_body(message: EmailMessage) -> str:
    """The text part, with the CRLFs of the wire turned back into newlines."""
    return message.get_body(("plain",)).get_content().replace("\r\n", "\n")


def outcome(connection, message: EmailMessage) -> str:
    """'sent', or the kind of the MailError that send raised."""
    try:
        connection.send(message)
    except MailError as error:
        return error.kind
    return "sent"


# --------------------------------------------------------------------------- server


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    mail_options: list[str]
    smtp_utf8: bool
    content: bytes
    connection: object  # the aiosmtpd SMTP instance: one per TCP connection
    tls_version: str | None  # of the transport the message came over
    starttls: bool  # session.ssl: set once STARTTLS was negotiated
    login: bytes | None


class Recorder:
    """An aiosmtpd handler that records what arrives and misbehaves on request, keyed
    by recipient address."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.rejected: list[tuple[str, str]] = []  # (recipient, reply) after DATA
        self.connections: list[object] = []  # each TCP connection that said EHLO
        self.quits = 0
        # (no attribute may start with "auth_": aiosmtpd would offer it as a mechanism)
        self.logins_tried: list[tuple[str, bytes, bytes]] = []
        self.rcpt_replies: dict[str, str] = {}
        self.drop_at_rcpt: set[str] = set()
        self.data_replies: dict[str, str] = {}
        self.drop_after_data: set[str] = set()
        self.stall_after_data: set[str] = set()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname  # the 5-argument hook must set it itself
        if not any(seen is server for seen in self.connections):  # STARTTLS says EHLO twice
            self.connections.append(server)
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.drop_at_rcpt:
            server.transport.close()
            return "250 OK"  # never reaches the client: the transport is closed
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        recipient = envelope.rcpt_tos[0]
        if recipient in self.data_replies:
            self.rejected.append((recipient, self.data_replies[recipient]))
            return self.data_replies[recipient]
        tls = server.transport.get_extra_info("ssl_object")
        self.received.append(
            Received(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                mail_options=list(envelope.mail_options),
                smtp_utf8=envelope.smtp_utf8,
                content=envelope.original_content,
                connection=server,
                tls_version=tls.version() if tls is not None else None,
                starttls=session.ssl is not None,
                login=session.auth_data.login if session.auth_data is not None else None,
            )
        )
        if recipient in self.drop_after_data:
            server.transport.close()  # the message is here, the reply never leaves
        elif recipient in self.stall_after_data:
            await asyncio.sleep(3)  # longer than the client's timeout
        return "250 2.0.0 Queued"

    async def handle_QUIT(self, server, session, envelope):
        self.quits += 1
        return "221 Bye"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        assert isinstance(auth_data, LoginPassword)
        self.logins_tried.append((mechanism, auth_data.login, auth_data.password))
        ok = auth_data.login == USER.encode() and auth_data.password == PASSWORD.encode()
        if not ok:  # handled=False: aiosmtpd itself replies 535
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=auth_data)


class LoopbackController(Controller):
    """aiosmtpd's threaded controller on a port the kernel picks."""

    def __init__(self, handler, **kwargs):
        super().__init__(handler, hostname=HOST, port=0, ready_timeout=5, **kwargs)

    def _trigger_server(self):
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@pytest.fixture
def start_server():
    """start_server(**options) -> (recorder, controller); every server is stopped after
    the test."""
    controllers = []

    def start(**options):
        recorder = Recorder()
        if options.pop("with_auth", False):
            options["authenticator"] = recorder.authenticate
        controller = LoopbackController(recorder, **options)
        controller.start()
        controllers.append(controller)
        return recorder, controller

    yield start
    for controller in controllers:
        controller.stop()


@pytest.fixture
def plain_server(start_server):
    return start_server()


def mailer(
    controller, security: str = "none", *, context: ssl.SSLContext | None = None, timeout: float = 5.0, auth: bool = False
) -> SmtpMailer:
    settings = SmtpSettings(
        host=HOST,
        port=controller.port,
        security=security,
        username_env=USER_ENV if auth else None,
        password_env=PASSWORD_ENV if auth else None,
        timeout=timeout,
    )
    return SmtpMailer(settings, ssl_context=context)


# --------------------------------------------------------------------------- TLS material


@pytest.fixture
def server_tls(certificate):
    cert, key = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


@pytest.fixture
def client_tls(certificate):
    """Trusts the test certificate and nothing else; host names are checked."""
    return ssl.create_default_context(cafile=str(certificate[0]))


@pytest.fixture
def starttls_server(start_server, server_tls):
    """STARTTLS required, AUTH (PLAIN and LOGIN) offered only after it."""
    return start_server(tls_context=server_tls, require_starttls=True, with_auth=True)


@pytest.fixture
def auth_server(start_server, server_tls):
    """auth_server(mechanism): like starttls_server, offering only that mechanism."""

    def start(mechanism: str):
        other = {"PLAIN": "LOGIN", "LOGIN": "PLAIN"}[mechanism]
        return start_server(tls_context=server_tls, require_starttls=True, with_auth=True, auth_exclude_mechanism=[other])

    return start


# --------------------------------------------------------------------------- 1. delivery


def test_two_messages_in_one_session_arrive_intact(plain_server):
    recorder, controller = plain_server
    dotted = "Agenda for Monday:\n.\n.hidden starts with a dot\n..two dots\n. dot and space\nSee you, Zoë\n"
    first, second = make_message(1), make_message(2, text=dotted)

    with mailer(controller).connect() as connection:
        connection.send(first)
        connection.send(second)

    assert len(recorder.received) == 2
    for sent, got in zip((first, second), recorder.received):
        assert got.mail_from == "coordinator@example.org"
        assert got.rcpt_tos == ["zoe@example.net"]
        assert got.mail_options == [] and not got.smtp_utf8  # plain ASCII addresses need no SMTPUTF8
        assert got.content == sent.as_bytes(policy=policy.SMTP)  # byte for byte, dots un-stuffed
        parsed = parse(got.content)
        assert str(parsed["Subject"]) == str(sent["Subject"])
        assert parsed["Message-ID"] == sent["Message-ID"]
        assert parsed["To"].addresses[0].display_name == "Zoë Ñúñez"
        assert parsed["To"].addresses[0].addr_spec == "zoe@example.net"
        assert text_body(parsed) == sent.get_body(("plain",)).get_content()
    assert text_body(parse(recorder.received[1].content)) == dotted
    assert recorder.quits == 1


# --------------------------------------------------------------------------- 2. reuse


def test_one_connect_block_is_one_smtp_session(plain_server):
    recorder, controller = plain_server
    with mailer(controller).connect() as connection:
        for number in range(20):
            connection.send(make_message(number))

    assert len(recorder.received) == 20
    assert len(recorder.connections) == 1
    assert all(got.connection is recorder.connections[0] for got in recorder.received)
    assert recorder.quits == 1


def test_separate_connect_blocks_open_separate_sessions(plain_server):
    recorder, controller = plain_server
    smtp = mailer(controller)
    for number in range(20):
        with smtp.connect() as connection:
            connection.send(make_message(number))

    assert len(recorder.received) == 20
    assert len(recorder.connections) == 20
    assert len({id(got.connection) for got in recorder.received}) == 20
    assert recorder.quits == 20


def test_a_connect_block_that_sends_nothing_opens_no_session(plain_server):
    recorder, controller = plain_server
    with mailer(controller).connect():
        pass
    assert recorder.connections == [] and recorder.quits == 0


# --------------------------------------------------------------------------- 3. TLS


def test_starttls_delivers_over_an_encrypted_session(start_server, server_tls, client_tls):
    recorder, controller = start_server(tls_context=server_tls, require_starttls=True)
    message = make_message(1)
    with mailer(controller, "starttls", context=client_tls).connect() as connection:
        connection.send(message)

    (got,) = recorder.received
    assert got.starttls  # session.ssl is set only after a STARTTLS handshake
    assert got.tls_version is not None and got.tls_version.startswith("TLS")
    assert parse(got.content)["Message-ID"] == message["Message-ID"]


def test_implicit_tls_delivers_over_an_encrypted_session(start_server, server_tls, client_tls):
    recorder, controller = start_server(ssl_context=server_tls)
    message = make_message(1)
    with mailer(controller, "ssl", context=client_tls).connect() as connection:
        connection.send(message)
        connection.send(make_message(2))

    assert len(recorder.received) == 2 and len(recorder.connections) == 1
    got = recorder.received[0]
    assert not got.starttls  # encrypted from the first byte, no STARTTLS
    assert got.tls_version is not None and got.tls_version.startswith("TLS")
    assert parse(got.content)["Message-ID"] == message["Message-ID"]


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_an_untrusted_certificate_is_refused_before_anything_is_sent(start_server, server_tls, security):
    options = {"tls_context": server_tls, "require_starttls": True} if security == "starttls" else {"ssl_context": server_tls}
    recorder, controller = start_server(**options)
    with mailer(controller, security).connect() as connection:  # the system trust store only
        with pytest.raises(MailError) as caught:
            connection.send(make_message(1))
    assert caught.value.kind == MailError.TRANSIENT
    assert "certificate" in caught.value.reason.lower()
    assert recorder.received == []


# --------------------------------------------------------------------------- 4. AUTH


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_auth_with_credentials_from_the_environment(auth_server, client_tls, monkeypatch, mechanism):
    recorder, controller = auth_server(mechanism)
    monkeypatch.setenv(USER_ENV, USER)
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)

    with mailer(controller, "starttls", context=client_tls, auth=True).connect() as connection:
        connection.send(make_message(1))

    assert recorder.logins_tried == [(mechanism, USER.encode(), PASSWORD.encode())]
    (got,) = recorder.received
    assert got.login == USER.encode() and got.starttls


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_a_wrong_password_is_retried_while_someone_fixes_it(auth_server, client_tls, monkeypatch, mechanism):
    recorder, controller = auth_server(mechanism)
    monkeypatch.setenv(USER_ENV, USER)
    monkeypatch.setenv(PASSWORD_ENV, "wrong")

    with mailer(controller, "starttls", context=client_tls, auth=True).connect() as connection:
        with pytest.raises(MailError) as caught:
            connection.send(make_message(1))
    # The login is wrong, not the message: failing every message for good would be worse.
    assert caught.value.kind == MailError.TRANSIENT
    assert "535" in caught.value.reason and "login refused" in caught.value.reason
    assert recorder.logins_tried == [(mechanism, USER.encode(), b"wrong")]
    assert recorder.received == []


def test_the_password_is_read_when_connecting_not_when_configuring(starttls_server, client_tls, monkeypatch):
    recorder, controller = starttls_server
    monkeypatch.setenv(USER_ENV, USER)
    monkeypatch.setenv(PASSWORD_ENV, "old password")
    smtp = mailer(controller, "starttls", context=client_tls, auth=True)
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)  # rotated after the mailer was built
    with smtp.connect() as connection:
        connection.send(make_message(1))
    assert len(recorder.received) == 1


def test_a_non_ascii_password_fails_as_a_mail_error(starttls_server, client_tls, monkeypatch):
    """Whatever the server thinks of the password, send must answer with MailError."""
    recorder, controller = starttls_server
    monkeypatch.setenv(USER_ENV, USER)
    monkeypatch.setenv(PASSWORD_ENV, "pässwort")
    with mailer(controller, "starttls", context=client_tls, auth=True).connect() as connection:
        result = outcome(connection, make_message(1))
    assert result == MailError.TRANSIENT  # a login problem: retried, reported, never a crash


def test_a_failed_login_leaves_no_socket_behind(starttls_server, client_tls, monkeypatch):
    """A session that fails while being opened is closed by the adapter, not left to
    the garbage collector."""
    recorder, controller = starttls_server
    monkeypatch.setenv(USER_ENV, USER)
    monkeypatch.setenv(PASSWORD_ENV, "wrong")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        with mailer(controller, "starttls", context=client_tls, auth=True).connect() as connection:
            assert outcome(connection, make_message(1)) == MailError.TRANSIENT
        gc.collect()
    client_side = f"raddr=('{HOST}', {controller.port})"  # not the server's own objects
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning) and client_side in str(w.message)]
    assert leaks == []


# --------------------------------------------------------------------------- 5. replies


@pytest.mark.parametrize(
    "stage, reply, kind",
    [
        ("rcpt", "450 4.2.1 Mailbox busy, try again later", MailError.TRANSIENT),
        ("rcpt", "550 5.1.1 No such user here", MailError.PERMANENT),
        ("data", "451 4.3.0 Local error in processing", MailError.TRANSIENT),
        ("data", "554 5.7.1 Message refused", MailError.PERMANENT),
    ],
)
def test_replies_are_classified_and_the_connection_recovers(plain_server, stage, reply, kind):
    recorder, controller = plain_server
    refused = Contact(name="Refused Person", email="refused@example.net")
    (recorder.rcpt_replies if stage == "rcpt" else recorder.data_replies)[refused.email] = reply

    with mailer(controller).connect() as connection:
        connection.send(make_message(1))
        with pytest.raises(MailError) as caught:
            connection.send(make_message(2, to=refused))
        connection.send(make_message(3))

    assert caught.value.kind == kind
    assert reply.split()[0] in caught.value.reason
    assert [parse(got.content)["Message-ID"] for got in recorder.received] == [make_message(n)["Message-ID"] for n in (1, 3)]
    assert recorder.rejected == ([(refused.email, reply)] if stage == "data" else [])


# --------------------------------------------------------------------------- 6. lost connections


def test_a_connection_lost_after_the_data_is_unknown(plain_server):
    recorder, controller = plain_server
    recorder.drop_after_data.add("dropped@example.net")
    dropped = make_message(2, to=Contact(name="Dropped", email="dropped@example.net"))

    with mailer(controller).connect() as connection:
        with pytest.raises(MailError) as caught:
            connection.send(dropped)
        connection.send(make_message(3))

    assert caught.value.kind == MailError.UNKNOWN
    # ... and rightly so: the server does have it
    assert [parse(got.content)["Message-ID"] for got in recorder.received] == [dropped["Message-ID"], make_message(3)["Message-ID"]]
    assert len(recorder.connections) == 2


def test_a_connection_lost_before_the_data_is_transient(plain_server):
    recorder, controller = plain_server
    recorder.drop_at_rcpt.add("dropped@example.net")
    with mailer(controller).connect() as connection:
        result = outcome(connection, make_message(2, to=Contact(name="Dropped", email="dropped@example.net")))
        connection.send(make_message(3))
    assert result == MailError.TRANSIENT
    assert len(recorder.received) == 1


def test_no_reply_to_the_data_within_the_timeout_is_unknown(plain_server):
    recorder, controller = plain_server
    recorder.stall_after_data.add("slow@example.net")
    with mailer(controller, timeout=0.5).connect() as connection:
        result = outcome(connection, make_message(1, to=Contact(name="Slow", email="slow@example.net")))
    assert result == MailError.UNKNOWN
    assert len(recorder.received) == 1


def test_nothing_listening_is_transient():
    with socket.socket() as holder:
        holder.bind((HOST, 0))  # bound, never listening: connections are refused
        port = holder.getsockname()[1]
        smtp = SmtpMailer(SmtpSettings(host=HOST, port=port, security="none", timeout=2))
        with smtp.connect() as connection:
            with pytest.raises(MailError) as caught:
                connection.send(make_message(1))
    assert caught.value.kind == MailError.TRANSIENT
    assert "connect" in caught.value.reason


@pytest.mark.parametrize("security", ["none", "starttls", "ssl"])
def test_a_server_that_never_answers_times_out_as_transient(security, client_tls):
    with socket.socket() as silent:
        silent.bind((HOST, 0))
        silent.listen(8)  # the kernel completes the handshake; nobody ever reads or writes
        smtp = SmtpMailer(SmtpSettings(host=HOST, port=silent.getsockname()[1], security=security, timeout=0.5), ssl_context=client_tls)
        result: list[str] = []

        def attempt():
            with smtp.connect() as connection:
                result.append(outcome(connection, make_message(1)))

        worker = threading.Thread(target=attempt, daemon=True)
        worker.start()
        worker.join(timeout=5)
        assert not worker.is_alive(), "send hung on a silent server"
    assert result == [MailError.TRANSIENT]


# --------------------------------------------------------------------------- 7. SMTPUTF8

UTF8_RECIPIENT = Contact(name="Zoë Ñúñez", email="zoë@example.net")


def test_a_non_ascii_mailbox_goes_out_with_smtputf8(plain_server):
    recorder, controller = plain_server  # aiosmtpd's controller advertises SMTPUTF8
    message = make_message(1, to=UTF8_RECIPIENT)
    with mailer(controller).connect() as connection:
        connection.send(message)
        connection.send(make_message(2))  # the same session goes on with plain ASCII

    first, second = recorder.received
    assert first.smtp_utf8 and "SMTPUTF8" in first.mail_options
    assert first.rcpt_tos == ["zoë@example.net"]
    assert first.mail_from == "coordinator@example.org"
    assert parse(first.content)["Message-ID"] == message["Message-ID"]
    assert not second.smtp_utf8 and second.rcpt_tos == ["zoe@example.net"]


def test_a_non_ascii_mailbox_is_written_as_utf8_in_the_to_header(plain_server):
    """RFC 6532: with SMTPUTF8 the header carries the address itself in UTF-8. An
    RFC 2047 encoded-word is not allowed inside an addr-spec (RFC 2047 section 5)."""
    recorder, controller = plain_server
    with mailer(controller).connect() as connection:
        connection.send(make_message(1, to=UTF8_RECIPIENT))

    (got,) = recorder.received
    header_block = got.content.split(b"\r\n\r\n", 1)[0].decode("utf-8")
    to_line = next(line for line in header_block.split("\r\n") if line.startswith("To:"))
    assert "<zoë@example.net>" in to_line, to_line


def test_a_non_ascii_mailbox_without_smtputf8_is_not_sent(start_server):
    recorder, controller = start_server(enable_SMTPUTF8=False)
    with mailer(controller).connect() as connection:
        result = outcome(connection, make_message(1, to=UTF8_RECIPIENT))
        connection.send(make_message(2))
    assert result in (MailError.TRANSIENT, MailError.PERMANENT)  # never UNKNOWN: nothing left
    assert [got.rcpt_tos for got in recorder.received] == [["zoe@example.net"]]


# --------------------------------------------------------------------------- logs


def test_a_daemon_run_logs_json_events_and_never_the_password(start_server, tmp_path, monkeypatch, capsys):
    from service.cli import main

    recorder, controller = start_server(with_auth=True, auth_require_tls=False)
    folder = tmp_path / "cohort"
    shutil.copytree(Path(__file__).parents[2] / "config", folder)
    smtp = f"  smtp:\n    host: {HOST}\n    port: {controller.port}\n    security: none\n"
    smtp += f"    username_env: {USER_ENV}\n    password_env: {PASSWORD_ENV}\n    timeout_seconds: 5\n"
    config = folder / "cohort.example.yaml"
    config.write_text(config.read_text() + "\nmail:\n  transport: smtp\n" + smtp)
    run = ["run", "--config", str(config), "--state", str(tmp_path / "state.sqlite"), "--simulate", "--log-format", "json"]
    now = ["--now", "2027-02-20T00:00:00+00:00"]
    monkeypatch.setenv(USER_ENV, USER)
    monkeypatch.setenv(PASSWORD_ENV, "wrong " + PASSWORD)  # refused first: the failures are logged
    assert main([*run, *now, "--until", "2027-02-22T12:00:00+00:00"]) == 0
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    assert main([*run, *now]) == 0
    out = capsys.readouterr().out
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    refused = [e for e in events if e["event"] == "mail_down"]
    sent = [e for e in events if e["event"] == "message_sent"]
    assert refused and sent, sorted({e["event"] for e in events})
    assert "refused the login" in refused[0]["message"]
    gaps = {datetime.fromisoformat(b["at"]) - datetime.fromisoformat(a["at"]) for a, b in zip(refused, refused[1:])}
    assert min(gaps) >= timedelta(minutes=5)  # one probe every few minutes, not a loop
    assert {"pair", "stage", "recipient", "state", "attempt"} <= sent[0].keys()
    assert len(recorder.received) == len(sent)
    assert PASSWORD not in out and "horse battery" not in out
