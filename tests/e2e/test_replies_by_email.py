"""Answers to invitations sent by email, read from a real IMAP server (Dovecot) by the
daemon as `mentorship run` assembles it."""

from __future__ import annotations

import shutil
from email import policy
from email.parser import BytesParser
from pathlib import Path

from service.adapters.store import open_store
from service.cli import main
from service.domain.stages import Stage
from tests.fakes.imap_server import DovecotServer

ROOT = Path(__file__).parents[2]
REPLIES = ROOT / "tests" / "data" / "replies"


def test_a_decline_from_apple_mail_rebooks_the_session_and_both_are_told(tmp_path, monkeypatch, capsys):
    with DovecotServer() as mailbox:
        shutil.copytree(ROOT / "config", tmp_path / "config")
        config = tmp_path / "config" / "cohort.example.yaml"
        config.write_text(
            config.read_text(encoding="utf-8")
            + f"\nimap:\n  host: {mailbox.host}\n  port: {mailbox.port}\n  security: none\n"
            + "  username_env: TEST_IMAP_USER\n  password_env: TEST_IMAP_PASSWORD\n",
            encoding="utf-8",
        )
        monkeypatch.setenv("TEST_IMAP_USER", mailbox.user)
        monkeypatch.setenv("TEST_IMAP_PASSWORD", mailbox.password)
        state, outbox = tmp_path / "state.sqlite", tmp_path / "outbox"
        run = ["run", "--config", str(config), "--state", str(state), "--outbox", str(outbox), "--simulate"]
        assert main([*run, "--now", "2027-02-01T00:00:00+00:00", "--until", "2027-02-23T00:00:00+00:00"]) == 0
        store = open_store(state)
        before = next(r for r in store.sessions(["maya-zoe"]) if r.session.number == 2)
        store.close()
        # Zoë declines session 2 from Apple Mail, and an unrelated email arrives too.
        uid = mailbox.append((REPLIES / "apple_declined.eml").read_bytes())
        other = mailbox.append((REPLIES / "plain_note.eml").read_bytes())
        assert main([*run, "--until", "2027-02-24T00:00:00+00:00"]) == 0
        out = capsys.readouterr().out
        assert "Zoë Ñúñez declined session 2 of maya-zoe" in out
        store = open_store(state)
        try:
            after = next(r for r in store.sessions(["maya-zoe"]) if r.session.number == 2)
            updates = [r for r in store.messages(["maya-zoe"]) if r.stage is Stage.SESSION2_INVITATION and r.revision == 1]
        finally:
            store.close()
        assert after.session.start != before.session.start and after.sequence == before.sequence + 1
        assert after.change_reason == "Zoë Ñúñez cannot make that time"
        assert after.responses["zoe.nunez@example.net"] == "declined"
        assert {r.recipient for r in updates} == {"maya.okafor@example.org", "zoe.nunez@example.net"}
        flags = mailbox.flags()
        assert "$MentorshipDone" in flags[uid] and "$MentorshipDone" in flags[other]  # read once, never again
        assert "\\Seen" not in flags[uid]  # the coordinator still sees it as new
        # The update carries a new request at the new time, with the next SEQUENCE.
        requests = []
        for path in outbox.glob("*.eml"):
            message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
            for part in message.walk():
                if part.get_content_type() == "text/calendar" and b"SEQUENCE:1" in part.get_content().encode():
                    requests.append(message["To"].addresses[0].addr_spec)
        assert sorted(requests) == ["maya.okafor@example.org", "zoe.nunez@example.net"]
