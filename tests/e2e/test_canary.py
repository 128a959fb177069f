"""No secret leaks through a runtime error. A canary secret sits in the environment (as the
SMTP and IMAP passwords, in a database URL, and in a variable nothing uses) and in files
(a secrets file, a key file, a state file that is not one); every error path the real
daemon and commands can reach at run time is driven, and the canary must appear in no
output, log line, email (outbox file or message received over SMTP) or database row.

The configuration-time cases (validate) are in tests/unit/test_config_limits.py."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from aiosmtpd.controller import Controller as SmtpController
from aiosmtpd.smtp import AuthResult

from service.adapters.store import open_store
from service.domain.requests import RequestKind
from tests.contract.test_store import POSTGRES, postgres_database
from tests.e2e.test_crash import free_port
from tests.fakes.imap_server import DovecotServer
from tests.unit.test_config_limits import CANARY, shows_canary

ROOT = Path(__file__).parents[2]
ENV = {"SMTP_USER": "renata", "SMTP_PASSWORD": CANARY, "IMAP_USER": "renata.alves@example.org", "IMAP_PASSWORD": CANARY}
ENV["UNRELATED_TOKEN"] = CANARY  # a secret of something else in the same environment
REHEARSAL = ("--simulate", "--now", "2027-02-01T00:00:00+00:00", "--until", "2027-03-10T00:00:00+00:00")  # to its end, quickly
SMTP = "mail:\n  transport: smtp\n  smtp:\n    host: 127.0.0.1\n    port: {port}\n    security: none\n"
SMTP += "    username_env: SMTP_USER\n    password_env: SMTP_PASSWORD\n    timeout_seconds: 5\n"


@pytest.fixture
def cohort(tmp_path) -> Path:
    """The example cohort, with a secrets file beside it that nothing should ever quote."""
    folder = tmp_path / "cohort"
    shutil.copytree(ROOT / "config", folder)
    (folder / "secrets").mkdir()
    (folder / "secrets" / "token.txt").write_text(f"token={CANARY}\n{CANARY}\n")
    return folder / "cohort.example.yaml"


def env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT), **ENV)


def command(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "service", *map(str, args)], capture_output=True, text=True, env=env(), cwd=cwd, timeout=120
    )


def daemon(config: Path, state: Path | str, tmp_path: Path, until: Callable[[str], bool], *extra: str, then=None) -> str:
    """A real daemon (real clock) until its output satisfies `until`, then SIGTERM; what
    it wrote. `then(output)`, if given, runs once the daemon has booked (for an edit
    while it runs), and `until` is looked at after that."""
    log = tmp_path / f"daemon-{time.monotonic_ns()}.log"
    args = ["run", "--config", str(config), "--state", str(state), *extra]
    with open(log, "wb") as out:
        # In tmp_path: a database state keeps its "has run" mark in ./state.
        process = subprocess.Popen([sys.executable, "-m", "service", *args], stdout=out, stderr=subprocess.STDOUT, env=env(), cwd=tmp_path)
    deadline = time.monotonic() + 90  # a generous bound, only so a broken daemon cannot hang the test
    try:
        while process.poll() is None and time.monotonic() < deadline:
            text = log.read_text(errors="replace")
            if then is not None and "booked" in text:
                then(text)
                then = None
            elif then is None and until(text):
                break
            time.sleep(0.1)
        else:
            if process.poll() is None:
                raise AssertionError(f"the daemon never got there:\n{log.read_text()[-3000:]}")
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return log.read_text(errors="replace")


def rows(state: Path | str) -> list[str]:
    """Every row of every table of the state, as text."""
    found = []
    if isinstance(state, str):
        with psycopg.connect(state.replace("postgresql+psycopg://", "postgresql://", 1)) as connection:
            tables = [t for (t,) in connection.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
            for table in tables:
                found += [f"{table}: {row}" for row in connection.execute(f'SELECT * FROM "{table}"')]
        return found
    connection = sqlite3.connect(f"file:{state}?mode=ro", uri=True)
    try:
        tables = [t for (t,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            found += [f"{table}: {row}" for row in connection.execute(f'SELECT * FROM "{table}"')]
    finally:
        connection.close()
    return found


def leaks(outputs: list[str], state: Path | str | None = None, outbox: Path | None = None, received: list[bytes] = ()) -> list[str]:
    """Where the canary shows: outputs, database rows, outbox files, messages received."""
    places = [f"output {n}" for n, text in enumerate(outputs) if shows_canary(text)]
    if state is not None:
        places += [row[:200] for row in rows(state) if shows_canary(row)]
    if outbox is not None and outbox.exists():
        places += [path.name for path in outbox.rglob("*") if path.is_file() and shows_canary(path.read_bytes().decode("utf-8", "replace"))]
    places += [f"message {n}" for n, data in enumerate(received) if shows_canary(data.decode("utf-8", "replace"))]
    return places


def status(config: Path, state: Path | str) -> str:
    result = command("status", "--config", config, "--state", state, cwd=config.parent)
    return result.stdout + result.stderr


# -- mail


class Echoing:
    """An SMTP server that repeats what it was told: the login it refuses, or, once it
    let someone in, that login in its refusals of recipients and messages."""

    def __init__(self, accept_login: bool):
        self.accept_login = accept_login
        self.logins: list[str] = []
        self.received: list[bytes] = []
        self.lock = threading.Lock()
        self.count = 0

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        login = f"{auth_data.login.decode()}:{auth_data.password.decode()}"
        self.logins.append(login)
        if not self.accept_login:
            return AuthResult(success=False, handled=False, message=f"535 5.7.8 no such login {login}")
        return AuthResult(success=True)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self.lock:
            self.count += 1
            turn = self.count
        if turn % 3 == 1:
            return f"550 5.1.1 {address} refused for {self.logins[-1]}"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.count % 3 == 2:
            return f"451 4.3.0 try later, {self.logins[-1]}"
        self.received.append(envelope.content)
        return "250 OK"


def smtp_server(handler: Echoing) -> SmtpController:
    server = SmtpController(
        handler, hostname="127.0.0.1", port=free_port(), authenticator=handler.authenticate, auth_require_tls=False, auth_required=True
    )
    server.start()
    return server


@pytest.mark.parametrize("accept_login", [False, True], ids=["login refused", "recipients and messages refused"])
def test_smtp_errors_never_carry_the_password(cohort, tmp_path, accept_login):
    handler = Echoing(accept_login)
    server = smtp_server(handler)
    try:
        port = server.port
        cohort.write_text(cohort.read_text() + SMTP.format(port=port))
        state = tmp_path / "state.sqlite"
        # A login refused holds all mail back (probed every few minutes, until stopped).
        until = (lambda text: text.count("mail cannot go out") >= 3) if not accept_login else (lambda text: False)
        output = daemon(cohort, state, tmp_path, until, *REHEARSAL)
    finally:
        server.stop()
    assert any(CANARY in login for login in handler.logins), "the server never saw the password: the check proves nothing"
    said = ["refused the login"] if not accept_login else ["FAILED", "will retry"]
    assert all(words in output for words in said), output[-3000:]
    found = leaks([output, status(cohort, state)], state, received=handler.received)
    assert not found, found


def test_imap_login_refused_never_carries_the_password(cohort, tmp_path):
    with DovecotServer() as mailbox:
        imap = f"calendar:\n  backend: imip\nimap:\n  host: 127.0.0.1\n  port: {mailbox.port}\n  security: none\n"
        imap += "  username_env: IMAP_USER\n  password_env: IMAP_PASSWORD\n  timeout_seconds: 5\n"
        cohort.write_text(cohort.read_text() + imap)
        state, outbox = tmp_path / "state.sqlite", tmp_path / "outbox"
        output = daemon(cohort, state, tmp_path, lambda text: "refused the login" in text, "--outbox", str(outbox))
    assert "refused the login" in output, output[-3000:]
    found = leaks([output, status(cohort, state)], state, outbox)
    assert not found, found


# -- Google


@pytest.mark.parametrize("key", ["not JSON", "a key that is not one"])
def test_a_bad_google_key_file_is_never_quoted(cohort, tmp_path, key):
    folder = cohort.parent
    if key == "not JSON":
        (folder / "secrets" / "key.json").write_text(f"-----BEGIN PRIVATE KEY-----\n{CANARY}\n")
    else:
        text = (
            '{"type": "service_account", "client_email": "a@b.iam.gserviceaccount.com", "token_uri": "https://oauth2.googleapis.com/token",'
        )
        text += f' "private_key_id": "{CANARY}", "private_key": "-----BEGIN PRIVATE KEY-----\\n{CANARY}\\n-----END PRIVATE KEY-----\\n"}}'
        (folder / "secrets" / "key.json").write_text(text)
    cohort.write_text(cohort.read_text() + "calendar:\n  backend: google\ngoogle:\n  credentials: secrets/key.json\n")
    state = tmp_path / "state.sqlite"
    result = command("run", "--config", cohort, "--state", state, "--outbox", tmp_path / "outbox")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "google.credentials" in result.stderr, result.stderr
    found = leaks([result.stdout, result.stderr], state if state.exists() else None, tmp_path / "outbox")
    assert not found, found


# -- the state


def test_a_state_that_is_not_a_database_is_never_quoted(cohort, tmp_path):
    state = tmp_path / "state.sqlite"
    state.write_text(f"SQLite format 3\n{CANARY}\n" * 100)
    run = command("run", "--config", cohort, "--state", state, "--outbox", tmp_path / "outbox")
    shown = command("status", "--config", cohort, "--state", state)
    assert run.returncode == 2 and shown.returncode == 2, (run.stderr, shown.stderr)
    assert "cannot be opened" in run.stderr and "cannot be opened" in shown.stderr
    found = leaks([run.stdout, run.stderr, shown.stdout, shown.stderr], outbox=tmp_path / "outbox")
    assert not found, found


@pytest.mark.postgres
def test_a_password_in_the_database_url_shows_nowhere_not_even_when_the_connection_is_lost(cohort, tmp_path):
    with postgres_database() as url:
        # The test server trusts local connections, so any password gets in: this one is the canary.
        secret = url.replace("://postgres@", f"://postgres:{CANARY}@", 1)
        assert CANARY in secret
        name = url.rsplit("/", 1)[1]

        def cut(text: str) -> None:
            with psycopg.connect(POSTGRES, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))

        outbox = tmp_path / "outbox"
        output = daemon(cohort, secret, tmp_path, lambda text: "was lost" in text, "--outbox", str(outbox), then=cut)
        unreachable = command("status", "--config", cohort, "--state", secret.replace("127.0.0.1:5432", "127.0.0.1:9"), cwd=tmp_path)
        assert "was lost" in output, output[-3000:]
        assert unreachable.returncode == 2, unreachable.stderr
        found = leaks([output, status(cohort, secret), unreachable.stdout, unreachable.stderr], url, outbox)
    assert not found, found


# -- templates and busy calendars read while the daemon runs


def test_a_template_that_fails_while_rendering_leaks_nothing(cohort, tmp_path):
    templates = cohort.parent / "templates" / "welcome"
    templates.mkdir(parents=True)
    # Valid when checked, but it divides by a number that is zero for one mentee only (Daniel Kim).
    body = "Hi {{ reader.first_name }}, {{ 100 // ((reader.name | length) - 10) }}\n"
    (templates / "mentee.txt").write_text(body)
    cohort.write_text(cohort.read_text() + "emails:\n  templates: templates\n")
    state, outbox = tmp_path / "state.sqlite", tmp_path / "outbox"
    output = daemon(cohort, state, tmp_path, lambda text: False, "--outbox", str(outbox), *REHEARSAL)
    assert "FAILED welcome" in output, output[-3000:]
    found = leaks([output, status(cohort, state)], state, outbox)
    assert not found, found


def test_busy_calendars_swapped_for_secrets_while_the_daemon_runs_are_never_quoted(cohort, tmp_path):
    folder = cohort.parent
    state, outbox = tmp_path / "state.sqlite", tmp_path / "outbox"

    def swap(text: str) -> None:
        (folder / "busy" / "maya.ics").unlink()
        (folder / "busy" / "maya.ics").symlink_to(folder / "secrets" / "token.txt")
        (folder / "busy" / "noah.ics").unlink()
        (folder / "busy" / "noah.ics").symlink_to("/proc/self/environ")
        store = open_store(state)  # a queued command wakes the daemon at once
        try:
            store.add_request(RequestKind.APPROVE, {}, datetime.now(UTC))
        finally:
            store.close()

    output = daemon(
        cohort,
        state,
        tmp_path,
        lambda text: "configuration edit ignored" in text and "digest for" in text,
        "--outbox",
        str(outbox),
        then=swap,
    )
    assert "configuration edit ignored" in output and "digest for" in output, output[-3000:]
    # What the coordinator's digest will say about the two files (it goes out at its hour).
    said = rows(state)
    assert any("maya.ics" in row for row in said) and any("noah.ics" in row for row in said), said[-5:]
    found = leaks([output, status(cohort, state)], state, outbox)
    assert not found, found
