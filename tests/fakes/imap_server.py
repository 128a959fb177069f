"""A real IMAP server for tests: Debian's Dovecot, started with a configuration of its own
in a temporary folder, listening on a free loopback port, with one user whose mail is a
Maildir in that folder. Nothing of a system Dovecot (its config, its ports, its runtime
folder) is used or touched.

    with DovecotServer() as server:
        server.append(raw_message)
        ...  # connect to server.host:server.port as server.user / server.password

Starting takes a fraction of a second; a test module can share one server and call
`clear()` between tests. When Dovecot cannot run here, `start()` raises DovecotUnavailable
with the reason (tests should fail on it, never skip)."""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from imapclient import IMAPClient

HOST = "127.0.0.1"
START_TIMEOUT = 15.0


class DovecotUnavailable(RuntimeError):
    pass


def dovecot_binary() -> str | None:
    """The dovecot executable: on PATH, or in /usr/sbin where Debian puts it (not on a
    normal user's PATH)."""
    return shutil.which("dovecot") or shutil.which("dovecot", path="/usr/sbin:/usr/local/sbin:/sbin")


class DovecotServer:
    def __init__(
        self,
        *,
        user: str = "renata.alves@example.org",
        password: str = "Tangerine-Harbour-42!",
        other_users: dict[str, str] | None = None,
        tls: tuple[Path, Path] | None = None,
    ):
        """`user` is the one `append`, `flags` and the like act as; `other_users` (name:
        password) can log in too, each to a mailbox of their own. `tls`: a certificate and
        its key (PEM files); with them the server offers STARTTLS on `port` and implicit TLS
        on `tls_port`, without them plain IMAP only."""
        self.user, self.password = user, password
        self.other_users = dict(other_users or {})
        self.tls = tls
        self.host = HOST
        self.port = 0
        self.tls_port = 0
        self.root: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> DovecotServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        binary = dovecot_binary()
        if binary is None:
            raise DovecotUnavailable("Dovecot is not installed: run scripts/ensure-dovecot (Debian's dovecot-imapd package)")
        # Short and world-traversable: the mail processes run as an unprivileged user and
        # must reach the home folder, and Dovecot's UNIX sockets live under base_dir
        # (socket paths are limited to about 100 characters).
        self.root = Path(tempfile.mkdtemp(prefix="dovecot-"))
        self.root.chmod(0o755)
        for attempt in range(3):  # the free port may be taken by someone else before Dovecot binds it
            self.port = _free_port()
            self.tls_port = _free_port() if self.tls else 0
            conf = self._write_config()
            self.process = subprocess.Popen(
                [binary, "-F", "-c", str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() ends the children too
            )
            problem = self._wait_until_ready()
            if problem is None:
                return
            self._end_process()
            if "Address already in use" not in problem or attempt == 2:
                root = self.root
                self.stop()
                raise DovecotUnavailable(f"Dovecot did not start (config and logs were in {root}):\n{problem}")

    def stop(self) -> None:
        self._end_process()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def _end_process(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()  # the master process stops its children
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def _wait_until_ready(self) -> str | None:
        """None once the server greets on its port; otherwise what went wrong."""
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.process.stdout.read().decode("utf-8", "replace") if self.process.stdout else ""
                return f"dovecot exited with status {self.process.returncode}\n{output}{self._log_tail()}"
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as probe:
                    if probe.recv(100).startswith(b"* OK"):
                        return None
            except OSError:
                pass
            time.sleep(0.05)
        return f"dovecot did not answer on {self.host}:{self.port} within {START_TIMEOUT:.0f} s\n{self._log_tail()}"

    def log(self) -> str:
        """What Dovecot has logged so far (logins, with "TLS" when the session is encrypted)."""
        assert self.root is not None
        log = self.root / "dovecot.log"
        return log.read_text(errors="replace") if log.exists() else ""

    def _log_tail(self) -> str:
        return "\n".join(self.log().splitlines()[-20:])

    def _write_config(self) -> Path:
        assert self.root is not None
        root = self.root
        for folder in ("run", "state", "home"):
            (root / folder).mkdir(exist_ok=True)
            (root / folder).chmod(0o755)  # whatever the umask: Dovecot's own users read these
        users = {self.user: self.password, **self.other_users}
        (root / "passwd").write_text("".join(f"{name}:{{PLAIN}}{password}::::::\n" for name, password in users.items()), encoding="utf-8")
        (root / "passwd").chmod(0o644)
        if os.geteuid() == 0:
            # Mail is never handled as root: the mail processes run as `nobody`, and the
            # login processes as Debian's dovenull (the package creates it).
            mail_user = pwd.getpwnam("nobody")
            privileges = ""
        else:
            # Without root Dovecot cannot switch users: everything runs as whoever we are.
            mail_user = pwd.getpwuid(os.geteuid())
            privileges = (
                f"default_login_user = {mail_user.pw_name}\n"
                f"default_internal_user = {mail_user.pw_name}\n"
                f"default_internal_group = {grp.getgrgid(mail_user.pw_gid).gr_name}\n"
                "service imap-login {\n  chroot =\n}\n"
                "service auth {\n  user = $default_internal_user\n}\n"
            )
        os.chown(root / "home", mail_user.pw_uid, mail_user.pw_gid)
        if self.tls:
            cert, key = self.tls
            tls = f"ssl = yes\nssl_cert = <{cert}\nssl_key = <{key}"
        else:
            tls = "ssl = no"
        conf = root / "dovecot.conf"
        conf.write_text(
            f"""# Written by tests/fakes/imap_server.py for one test run.
protocols = imap
listen = {self.host}
base_dir = {root}/run
state_dir = {root}/state
instance_name = mentorship-test-{self.port}
log_path = {root}/dovecot.log
{tls}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
mail_location = maildir:~/Maildir
mail_fsync = never
first_valid_uid = {min(mail_user.pw_uid, 500)}
{privileges}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={mail_user.pw_uid} gid={mail_user.pw_gid} home={root}/home/%u
}}
# Dovecot slows down logins from an address after a failed one (the auth penalty): a test
# of a wrong password would hold up every later test by seconds. Closing anvil's penalty
# socket to everyone turns the penalty off.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = {self.host}
    port = {self.port}
  }}
  inet_listener imaps {{
    address = {self.host}
    port = {self.tls_port}
  }}
}}
"""
        )
        conf.chmod(0o644)
        return conf

    # ------------------------------------------------------------------ the mailbox

    def client(self, folder: str = "INBOX") -> IMAPClient:
        """A connection logged in as the user, with `folder` selected. Close it after use."""
        client = IMAPClient(self.host, self.port, ssl=False, timeout=10)
        client.login(self.user, self.password)
        client.select_folder(folder)
        return client

    def append(self, raw: bytes, *, folder: str = "INBOX", flags: tuple[str, ...] = ()) -> int:
        """Put a message in a folder as a mail delivery would; returns its UID."""
        with self.client(folder) as client:
            answer = client.append(folder, raw, flags=flags)
        match = re.search(rb"APPENDUID \d+ (\d+)", answer)
        assert match, answer
        return int(match.group(1))

    def flags(self, folder: str = "INBOX") -> dict[int, set[str]]:
        """Each message's flags by UID (\\Recent left out: it depends on who looked first)."""
        with self.client(folder) as client:
            found: dict[Any, Any] = client.get_flags(client.search("ALL"))
        return {uid: {_text(flag) for flag in flags} - {"\\Recent"} for uid, flags in found.items()}

    def uidvalidity(self, folder: str = "INBOX") -> int:
        with self.client(folder) as client:
            return int(client.folder_status(folder, ["UIDVALIDITY"])[b"UIDVALIDITY"])

    def clear(self, folder: str = "INBOX") -> None:
        """Remove every message from the folder."""
        with self.client(folder) as client:
            uids = client.search("ALL")
            if uids:
                client.delete_messages(uids)
                client.expunge()

    def kick(self) -> None:
        """End the user's open sessions from the server side, as an idle timeout or a server
        restart would."""
        assert self.root is not None
        doveadm = shutil.which("doveadm") or shutil.which("doveadm", path="/usr/sbin:/usr/local/bin:/sbin")
        assert doveadm, "doveadm comes with Dovecot but was not found"
        subprocess.run([doveadm, "-c", str(self.root / "dovecot.conf"), "kick", self.user], check=True, capture_output=True)

    def create_folder(self, folder: str) -> None:
        with self.client() as client:
            client.create_folder(folder)

    def delete_folder(self, folder: str) -> None:
        with self.client() as client:
            client.delete_folder(folder)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
