"""Headers cannot be injected through any participant value."""

from datetime import UTC, datetime
from email import message_from_bytes, policy

import pytest

from service.domain.model import Contact
from service.mail.mime import build_message, header_text, message_id
from service.mail.templates import Rendered

HOSTILE = [
    "Eve\r\nBcc: victim@example.com",
    "Eve\nBcc: victim@example.com",
    "Eve\rBcc: victim@example.com",
    "=?utf-8?q?=0A?=",
    "Eve =?utf-8?q?X=0D=0ABcc=3A_victim=40example.com?= Smith",
    "=?utf-8?b?RXZlDQpCY2M6IHZpY3RpbUBleGFtcGxlLmNvbQ==?=",
    "Eve\u2028Bcc: victim@example.com",
    "Eve\u2029Bcc: victim@example.com",
    "Eve\x85Bcc: victim@example.com",
    "Eve\x0bBcc\x0c: victim@example.com",
    "Eve\x00Smith",
    'Eve "Smith" <evil@example.com>, other@example.com',
]
HEADERS = {"From", "To", "Reply-To", "Subject", "Date", "Message-ID", "Auto-Submitted", "MIME-Version", "Content-Type"}
RENDERED = Rendered(subject="Welcome", text="Hello\n", html="<p>Hello</p>\n")


def build(name: str, subject: str = "Welcome", calendar: bytes | None = None):
    message = build_message(
        Rendered(subject=subject, text=RENDERED.text, html=RENDERED.html),
        sender=Contact(name=name, email="coordinator@example.org"),
        reply_to=Contact(name=name, email="coordinator@example.org"),
        to=Contact(name=name, email="zoe@example.net"),
        message_id="<abc@example.org>",
        date=datetime(2027, 3, 1, 9, tzinfo=UTC),
        calendar=calendar,
    )
    return message_from_bytes(message.as_bytes(policy=policy.SMTP), policy=policy.default)


@pytest.mark.parametrize("name", HOSTILE)
def test_no_header_can_be_injected_through_a_name_or_subject(name):
    parsed = build(name, subject=f"Session with {name}")
    assert set(parsed.keys()) == HEADERS
    for header in ("From", "To", "Reply-To", "Subject"):
        value = str(parsed[header])
        assert "\n" not in value and "\r" not in value
    assert [a.addr_spec for a in parsed["To"].addresses] == ["zoe@example.net"]
    assert [a.addr_spec for a in parsed["From"].addresses] == ["coordinator@example.org"]


def test_header_text_breaks_encoded_words_and_line_separators():
    assert header_text("a\u2028b\r\nc") == "a b c"
    assert "=?" not in header_text("=?utf-8?q?=0A?=")


@pytest.mark.parametrize("name", ["Zoë Ñúñez", "李雷", "Chloé O'Neil-Martin"])
def test_unicode_names_survive_the_round_trip(name):
    parsed = build(name, subject=f"Session with {name}")
    assert parsed["To"].addresses[0].display_name == name
    assert str(parsed["Subject"]) == f"Session with {name}"


def test_structure_with_and_without_a_calendar_request():
    plain = build("Zoë")
    assert plain.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in plain.iter_parts()] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in plain.iter_parts())

    invite = build("Zoë", calendar=b"BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n")
    assert invite.get_content_type() == "multipart/mixed"
    alternative, attachment = invite.iter_parts()
    kinds = [p.get_content_type() for p in alternative.iter_parts()]
    assert kinds == ["text/plain", "text/html", "text/calendar"]
    assert list(alternative.iter_parts())[2].get_param("method") == "REQUEST"
    assert attachment.get_filename() == "invite.ics"


def test_message_ids_are_fixed_by_the_message_identity():
    key = ("Spring 2027", "maya-zoe", "welcome", "zoe@example.net")
    assert message_id(key, "example.org") == message_id(key, "example.org")
    assert message_id(key, "example.org") != message_id(key[:3] + ("maya@example.org",), "example.org")
    assert message_id(key, "example.org").endswith("@example.org>")
