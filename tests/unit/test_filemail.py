"""The file transport writes what an SMTP server would receive."""

from datetime import UTC, datetime
from email import message_from_string, policy

from service.adapters.filemail import FileMailer
from service.domain.model import Contact
from service.mail.mime import build_message
from service.mail.templates import Rendered


def test_an_address_outside_ascii_is_written_as_utf8_not_as_encoded_words(tmp_path):
    message = build_message(
        Rendered(subject="Willkommen", text="Hallo\n", html="<p>Hallo</p>\n"),
        sender=Contact(name="Renata Alves", email="renata@example.org"),
        reply_to=Contact(name="Renata Alves", email="renata@example.org"),
        to=Contact(name="Maya Bücher", email="maya@bücher.de"),
        message_id="<idn@example.org>",
        date=datetime(2027, 3, 1, 9, tzinfo=UTC),
    )
    mailer = FileMailer(tmp_path)
    with mailer.connect() as connection:
        connection.ready()
        connection.send(message)
    (written,) = tmp_path.glob("*.eml")
    raw = written.read_bytes()
    assert "maya@bücher.de".encode() in raw and b"=?utf-8?" not in raw.split(b"\r\n\r\n")[0].split(b"To:")[1][:80]
    parsed = message_from_string(raw.decode("utf-8"), policy=policy.default)  # RFC 6532: UTF-8 headers
    assert parsed["To"].addresses[0].addr_spec == "maya@bücher.de"
    assert mailer.was_sent("<idn@example.org>")
