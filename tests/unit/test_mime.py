"""Headers cannot be injected through any participant value."""

from datetime import UTC, datetime
from email import message_from_bytes, message_from_string, policy

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


TEXTS = [
    "Hello\n",
    "Zoë and 李雷,\n\nA line with = signs, =?utf-8?q?x?= and trailing spaces   \n.\n..two dots\nFrom here on\n" + "long " * 60 + "\n",
    "tabs\tinside\t\nwindows\r\nline ends\rand old Mac ones\n\n\n",
]
PEOPLE = [
    Contact(name="Zoë Ñúñez", email="zoe@example.net"),
    Contact(name='Renata "RJ" Alves, Coordinator', email="renata@example.org"),
    Contact(name="Maya Bücher", email="maya@bücher.de"),  # an address outside ASCII: UTF-8 headers
    Contact(name="李雷", email="li.lei@example.cn"),
]
SUBJECTS = ["Welcome", "Your first session with Zoë Ñúñez – and a subject long enough to be folded over two lines", "x" * 200]


@pytest.mark.parametrize("to", PEOPLE, ids=lambda c: c.email)
@pytest.mark.parametrize("subject", SUBJECTS, ids=range(len(SUBJECTS)))
@pytest.mark.parametrize("calendar", [None, b"BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\n" + b"X" * 300 + b"\r\nEND:VCALENDAR\r\n"])
def test_the_bytes_sent_are_what_the_email_package_writes_for_the_message(to, subject, calendar):
    """The bytes worked out when the message is built are the email package's own
    output for the same message, with UTF-8 headers exactly when an address needs them."""
    message = build_message(
        Rendered(subject=subject, text=TEXTS[1], html="<p>Zoë</p>\n"),
        sender=PEOPLE[1],
        reply_to=PEOPLE[1],
        to=to,
        message_id="<abc@example.org>",
        date=datetime(2027, 3, 1, 9, tzinfo=UTC),
        calendar=calendar,
    )
    international = not to.email.isascii()
    assert message.wire == message.as_bytes(policy=policy.SMTPUTF8 if international else policy.SMTP)
    assert message.envelope == ("renata@example.org", to.email)
    parsed = message_from_string(message.wire.decode("utf-8"), policy=policy.default)  # RFC 6532: UTF-8 headers
    assert parsed["To"].addresses[0].display_name == to.name
    assert parsed["Reply-To"].addresses[0].display_name == PEOPLE[1].name
    assert str(parsed["Subject"]) == subject
    assert parsed["MIME-Version"] == "1.0"
    assert all(len(line) <= 78 for line in message.wire.decode("utf-8").split("\r\n")), "no line longer than RFC 5322 recommends"
    if calendar:
        assert [p.get_content() for p in parsed.walk() if p.get_content_type() in ("text/calendar", "application/ics")] == [
            calendar.decode(),
            calendar,
        ]


@pytest.mark.parametrize("text", TEXTS, ids=range(len(TEXTS)))
def test_text_and_html_read_back_as_written(text):
    message = build_message(
        Rendered(subject="Welcome", text=text, html=f"<p>{text}</p>"),
        sender=PEOPLE[0],
        reply_to=PEOPLE[0],
        to=PEOPLE[0],
        message_id="<abc@example.org>",
        date=datetime(2027, 3, 1, 9, tzinfo=UTC),
    )
    parsed = message_from_bytes(message.wire, policy=policy.default)

    def read(kind: str) -> str:  # the wire's CRLFs turned back into newlines
        return parsed.get_body((kind,)).get_content().replace("\r\n", "\n")

    assert read("plain") == "\n".join(text.splitlines()) + "\n"
    assert read("html") == "\n".join(f"<p>{text}</p>".splitlines()) + "\n"
