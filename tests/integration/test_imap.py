"""The IMAP replies adapter against a real Dovecot on the loopback interface: answers as
Outlook, Apple Calendar, Gmail and Thunderbird send them, messages that carry none, marking
done across restarts, and every way the mailbox can fail to be read."""

from __future__ import annotations

import re
import socket
import ssl
import time
import traceback
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest

from service.adapters.imap import DONE_KEYWORD, ImapReplies, ImapSettings
from service.domain.ports import RepliesError
from service.domain.replies import Answer
from tests.fakes.imap_server import DovecotServer, DovecotUnavailable
from tests.fakes.logs import capture

DATA = Path(__file__).parent.parent / "data" / "replies"
USER_ENV, PASSWORD_ENV = "TEST_IMAP_USER", "TEST_IMAP_PASSWORD"
COORDINATOR = "renata.alves@example.org"
INTERNATIONAL_USER, INTERNATIONAL_PASSWORD = "zoe.nunez@example.net", "Grüße-aus-Köln"  # IMAP LOGIN cannot carry this password


def fixture(name: str) -> bytes:
    return (DATA / f"{name}.eml").read_bytes()


# --------------------------------------------------------------------------- server


@pytest.fixture(scope="module")
def dovecot(certificate):
    """One Dovecot for the module (stopping one takes about a second): plain IMAP and
    STARTTLS on `port`, implicit TLS on `tls_port`."""
    server = DovecotServer(user=COORDINATOR, other_users={INTERNATIONAL_USER: INTERNATIONAL_PASSWORD}, tls=certificate)
    try:
        server.start()
    except DovecotUnavailable as exc:
        pytest.fail(f"The IMAP tests need Dovecot and it cannot run here: {exc}", pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def server(dovecot, monkeypatch):
    """The shared server with an empty INBOX, and the login in the environment."""
    dovecot.clear()
    monkeypatch.setenv(USER_ENV, dovecot.user)
    monkeypatch.setenv(PASSWORD_ENV, dovecot.password)
    return dovecot


@pytest.fixture
def open_replies(server):
    """Make ImapReplies for the test server (closed when the test ends)."""
    made: list[ImapReplies] = []

    def make(ssl_context: ssl.SSLContext | None = None, **overrides) -> ImapReplies:
        options = dict(host=server.host, port=server.port, security="none", username_env=USER_ENV, password_env=PASSWORD_ENV, timeout=5.0)
        replies = ImapReplies(ImapSettings(**(options | overrides)), ssl_context)
        made.append(replies)
        return replies

    yield make
    for replies in made:
        replies.close()


def done_flagged(server: DovecotServer, folder: str = "INBOX") -> set[int]:
    return {uid for uid, flags in server.flags(folder).items() if DONE_KEYWORD in flags}


# --------------------------------------------------------------------------- each client's answer

BERLIN_1700_CEST = datetime(2027, 4, 13, 15, 0, tzinfo=UTC)

EXPECTED = {
    "outlook_accepted": dict(
        event_uid="0850d36f33-jonas-priya-session1@example.org",
        attendee="jonas.weber@example.de",  # MAILTO: and the capitals gone
        sender="jonas.weber@example.de",
        answer=Answer.ACCEPTED,
        sequence=0,
        proposed=None,
        comment="",
    ),
    "apple_declined": dict(
        event_uid="0850d36f33-maya-zoe-session2@example.org",
        attendee="zoe.nunez@example.net",
        sender="zoe.nunez@example.net",
        answer=Answer.DECLINED,
        sequence=1,
        proposed=None,
        comment="",
    ),
    "gmail_tentative": dict(
        event_uid="0850d36f33-maya-daniel-session1@example.org",
        attendee="daniel.kim@example.com",
        sender="daniel.kim@example.com",
        answer=Answer.TENTATIVE,
        sequence=2,
        proposed=None,
    ),
    "thunderbird_counter": dict(
        event_uid="0850d36f33-jonas-priya-session2@example.org",
        # Both people are listed; Priya has accepted the old time, Jonas (who sent it) proposes.
        attendee="jonas.weber@example.de",
        sender="jonas.weber@example.de",
        answer=Answer.COUNTER,
        sequence=1,
        # 17:00-18:00 Europe/Berlin on 13 April is summer time, UTC+2.
        proposed=(BERLIN_1700_CEST, BERLIN_1700_CEST.replace(hour=16)),
        comment="Monday the 12th is a public holiday here and I will be away, could we move to Tuesday evening instead?\nViele Grüße, Jonas",
    ),
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_clients_answer_is_read(server, open_replies, name):
    uid = server.append(fixture(name))

    [reply] = open_replies().unread()  # Gmail and Thunderbird carry the calendar twice: one answer

    assert reply.message == f"{server.uidvalidity()}:{uid}"
    for field, value in EXPECTED[name].items():
        assert getattr(reply, field) == value, field
    assert reply.proposed is None or all(t.tzinfo is UTC for t in reply.proposed)


def test_a_long_comment_is_cut(server, open_replies):
    server.append(fixture("gmail_tentative"))

    [reply] = open_replies().unread()

    assert len(reply.comment) == 500
    assert reply.comment.startswith("I can probably make it, but our team planning meeting")


def test_answers_come_oldest_first_and_stay_until_done(server, open_replies):
    names = ["thunderbird_counter", "plain_note", "outlook_accepted", "broken_ics", "apple_declined", "gmail_tentative"]
    uids = {name: server.append(fixture(name)) for name in names}

    replies = open_replies().unread()

    assert [r.event_uid for r in replies] == [
        EXPECTED[name]["event_uid"] for name in ["thunderbird_counter", "outlook_accepted", "apple_declined", "gmail_tentative"]
    ]
    assert [int(r.message.split(":")[1]) for r in replies] == sorted(int(r.message.split(":")[1]) for r in replies)
    # Only the messages without an answer are marked done so far.
    assert done_flagged(server) == {uids["plain_note"], uids["broken_ics"]}


# --------------------------------------------------------------------------- messages without an answer


def test_a_message_without_an_answer_is_marked_done_at_once_and_quietly(server, open_replies):
    plain = server.append(fixture("plain_note"))
    broken = server.append(fixture("broken_ics"))
    logs = capture()

    assert open_replies().unread() == []

    assert done_flagged(server) == {plain, broken}
    # The broken calendar is reported by its handle only, never by what the message says.
    validity = server.uidvalidity()
    assert any(f"{validity}:{broken}" in line and "cannot be read" in line for line in logs.lines)
    text = "\n".join(logs.lines + [repr(record.__dict__) for record in logs.records])
    for quoted in ("Daniel", "daniel.kim", "Priya", "priya.nair", "Accepted", "shared folder", "0850d36f33"):
        assert quoted not in text


def test_only_messages_that_may_hold_a_calendar_are_downloaded(server, open_replies):
    """A mailbox read for the first time may hold years of ordinary mail: their structure
    is enough to leave them be, so only the calendar messages' bodies are fetched."""
    ordinary = [server.append(fixture("plain_note")) for _ in range(5)]
    server.append(fixture("outlook_accepted"))
    logged_before = len(server.log())
    replies = open_replies()

    assert len(replies.unread()) == 1
    replies.close()

    # Dovecot's summary of our session, written when it logged out. Its log process writes
    # each process's lines a moment later, so sessions are told apart by their ids and
    # waited for. The test's own helper sessions never fetch a body.
    deadline = time.monotonic() + 5
    while True:
        log = server.log()
        sessions = re.findall(r"Login: user=.*session=<([^>]+)>", log[logged_before:])
        ended = [line for line in log.splitlines() if "Logged out" in line and any(f"<{s}>" in line for s in sessions)]
        fetched = [int(n) for line in ended for n in re.findall(r"body_count=(\d+)", line)]
        if any(fetched) or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert sum(fetched) == 1, log[logged_before:]
    assert done_flagged(server) == set(ordinary)


def itip(method: str, event: list[str], *, sender: str = "mentee@example.net") -> bytes:
    """A minimal iMIP message: one text/calendar part holding one VEVENT."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Test//Handmade//EN", f"METHOD:{method}", "BEGIN:VEVENT"]
    lines += ["UID:0850d36f33-maya-zoe-session1@example.org", "DTSTAMP:20270301T100000Z", *event, "END:VEVENT", "END:VCALENDAR", ""]
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, COORDINATOR, f"{method.title()}: Mentorship session 1"
    message.set_content("\r\n".join(lines), subtype="calendar", params={"method": method})
    return bytes(message)


def test_several_attendees_in_one_reply_each_answer(server, open_replies):
    server.append(
        itip(
            "REPLY",
            [
                "ATTENDEE;PARTSTAT=ACCEPTED:mailto:maya.okafor@example.org",
                "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:zoe.nunez@example.net",
                "ATTENDEE;PARTSTAT=DECLINED:mailto:Guest@Example.COM",
                "ATTENDEE:mailto:nobody@example.com",  # no PARTSTAT: it has not answered
            ],
        )
    )

    replies = open_replies().unread()

    assert [(r.attendee, r.answer, r.sequence) for r in replies] == [
        ("maya.okafor@example.org", Answer.ACCEPTED, 0),
        ("guest@example.com", Answer.DECLINED, 0),
    ]


def test_a_counter_in_floating_time_is_taken_as_utc(server, open_replies):
    server.append(
        itip(
            "COUNTER",
            [
                "ATTENDEE;PARTSTAT=TENTATIVE:mailto:zoe.nunez@example.net",
                "DTSTART:20270310T163000",
                "DURATION:PT45M",
                "SEQUENCE:3",
                "COMMENT:Wednesday suits me better.",
            ],
            sender="Zoe <zoe.nunez@example.net>",
        )
    )

    [reply] = open_replies().unread()

    assert reply.answer == Answer.COUNTER
    assert reply.proposed == (datetime(2027, 3, 10, 16, 30, tzinfo=UTC), datetime(2027, 3, 10, 17, 15, tzinfo=UTC))
    assert (reply.sequence, reply.comment) == (3, "Wednesday suits me better.")


@pytest.mark.parametrize(
    "method, event",
    [
        ("COUNTER", ["ATTENDEE:mailto:zoe.nunez@example.net", "DTSTART;TZID=Nowhere/Atlantis:20270310T160000", "DTEND:20270310T170000Z"]),
        ("COUNTER", ["ATTENDEE:mailto:zoe.nunez@example.net", "DTSTART;VALUE=DATE:20270310"]),
        ("REQUEST", ["ATTENDEE;PARTSTAT=ACCEPTED:mailto:zoe.nunez@example.net"]),  # an invitation, not an answer
        ("REPLY", ["ATTENDEE;PARTSTAT=DELEGATED:mailto:zoe.nunez@example.net"]),
        ("REPLY", ["ATTENDEE;PARTSTAT=ACCEPTED:mailto:zoe.nunez@example.net", "SEQUENCE:one"]),
    ],
    ids=["unknown-tzid", "date-only", "request", "delegated", "bad-sequence"],
)
def test_calendars_that_say_nothing_usable_are_marked_done(server, open_replies, method, event):
    uid = server.append(itip(method, event))

    assert open_replies().unread() == []
    assert done_flagged(server) == {uid}


def test_an_answer_forwarded_inside_another_message_is_not_taken(server, open_replies):
    forward = EmailMessage()
    forward["From"], forward["To"], forward["Subject"] = "assistant@example.org", COORDINATOR, "Fwd: Accepted"
    forward.set_content("See below.")
    forward.add_attachment(fixture("outlook_accepted"), maintype="message", subtype="rfc822")
    uid = server.append(bytes(forward))

    assert open_replies().unread() == []
    assert done_flagged(server) == {uid}


# --------------------------------------------------------------------------- done, restarts, \Seen


def test_done_answers_are_not_read_again_even_after_a_restart(server, open_replies):
    for name in EXPECTED:
        server.append(fixture(name))
    first = open_replies()
    replies = first.unread()
    assert len(replies) == 4

    first.done([r.message for r in replies])

    assert first.unread() == []
    first.close()
    assert open_replies().unread() == []  # a new process: the mark lives on the server
    later = server.append(fixture("outlook_accepted"))
    [again] = open_replies().unread()
    assert again.message.endswith(f":{later}")


def test_only_the_messages_named_are_marked_done(server, open_replies):
    uids = [server.append(fixture(name)) for name in EXPECTED]
    replies = open_replies()
    first, *rest = replies.unread()

    replies.done([first.message])
    replies.done([])

    assert done_flagged(server) == {uids[0]}
    assert [r.message for r in replies.unread()] == [r.message for r in rest]


def test_reading_leaves_messages_unread_for_people(server, open_replies):
    already_read = server.append(fixture("apple_declined"), flags=("\\Seen",))
    unread = server.append(fixture("outlook_accepted"))
    server.append(fixture("plain_note"))

    replies = open_replies()
    found = replies.unread()
    replies.done([r.message for r in found])

    assert len(found) == 2  # a reply someone opened first is still an answer
    flags = server.flags()
    assert "\\Seen" not in flags[unread] and all("\\Seen" not in f for uid, f in flags.items() if uid != already_read)
    assert "\\Seen" in flags[already_read]


def test_handles_from_before_the_folder_was_rebuilt_mark_nothing(server, open_replies):
    server.create_folder("Replies")
    try:
        server.append(fixture("outlook_accepted"), folder="Replies")
        replies = open_replies(folder="Replies")
        [old] = replies.unread()
        server.delete_folder("Replies")
        server.create_folder("Replies")
        new_uid = server.append(fixture("outlook_accepted"), folder="Replies")

        replies.done([old.message])  # the same UID now names another message

        assert done_flagged(server, "Replies") == set()
        [new] = replies.unread()
        assert new.message != old.message and new.message.endswith(f":{new_uid}")
    finally:
        server.delete_folder("Replies")


def test_a_connection_the_server_ended_is_opened_again(server, open_replies):
    replies = open_replies()
    assert replies.unread() == []
    server.kick()  # as an idle timeout would
    server.append(fixture("apple_declined"))

    [reply] = replies.unread()

    assert reply.answer == Answer.DECLINED


# --------------------------------------------------------------------------- failures


def test_a_wrong_password_is_refused_without_showing_it(server, open_replies, monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, "Wrong-Password-7731")

    with pytest.raises(RepliesError) as refused:
        open_replies().unread()

    assert "refused the login" in str(refused.value)
    shown = "".join(traceback.format_exception(refused.value))  # what a log with the traceback would hold
    assert "Wrong-Password-7731" not in shown and server.password not in shown


def test_a_password_beyond_ascii_goes_through_sasl_plain(server, open_replies, monkeypatch):
    monkeypatch.setenv(USER_ENV, INTERNATIONAL_USER)
    monkeypatch.setenv(PASSWORD_ENV, INTERNATIONAL_PASSWORD)

    assert open_replies().unread() == []  # logged in, to a mailbox of its own

    assert f"Login: user=<{INTERNATIONAL_USER}>, method=PLAIN" in server.log()


def test_a_missing_variable_is_named(server, open_replies, monkeypatch):
    monkeypatch.delenv(PASSWORD_ENV)

    with pytest.raises(RepliesError, match=PASSWORD_ENV):
        open_replies().unread()


def test_the_secrets_are_read_only_when_connecting(server, monkeypatch):
    monkeypatch.delenv(USER_ENV)
    monkeypatch.delenv(PASSWORD_ENV)
    replies = ImapReplies(ImapSettings(server.host, server.port, "none", username_env=USER_ENV, password_env=PASSWORD_ENV))
    replies.done([])  # nothing to do: no connection either
    monkeypatch.setenv(USER_ENV, server.user)
    monkeypatch.setenv(PASSWORD_ENV, server.password)
    try:
        assert replies.unread() == []
    finally:
        replies.close()


def test_an_unreachable_server_is_a_replies_error(open_replies):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(RepliesError, match="cannot reach"):
        open_replies(port=port).unread()


def test_a_server_that_never_answers_times_out(open_replies):
    with socket.socket() as silent:  # accepts connections (the kernel does) but never greets
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        with pytest.raises(RepliesError, match="timed out"):
            open_replies(port=silent.getsockname()[1], timeout=0.5).unread()


def test_a_folder_that_does_not_exist_is_a_replies_error(open_replies):
    with pytest.raises(RepliesError, match="IMAP"):
        open_replies(folder="No such folder").unread()


@pytest.mark.parametrize("security", ["ssl", "starttls"])
def test_the_mailbox_is_read_over_tls(server, open_replies, certificate, security):
    trusting = ssl.create_default_context(cafile=str(certificate[0]))  # this certificate and no other
    port = server.tls_port if security == "ssl" else server.port
    server.append(fixture("apple_declined"))

    [reply] = open_replies(port=port, security=security, ssl_context=trusting).unread()

    assert reply.answer == Answer.DECLINED
    assert "TLS" in [line for line in server.log().splitlines() if "Login: user=" in line][-1]


@pytest.mark.parametrize("security", ["ssl", "starttls"])
def test_an_untrusted_certificate_is_refused_before_logging_in(server, open_replies, security):
    port = server.tls_port if security == "ssl" else server.port

    with pytest.raises(RepliesError, match="(?i)certificate") as refused:
        open_replies(port=port, security=security).unread()  # the system's trust store

    assert server.password not in str(refused.value)


def test_settings_refuse_an_unknown_security():
    with pytest.raises(ValueError, match="security"):
        ImapSettings("imap.example.org", security="tls", username_env=USER_ENV, password_env=PASSWORD_ENV)
