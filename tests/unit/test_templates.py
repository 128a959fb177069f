"""A Templates is one revision of the template files: read and compiled once, then kept."""

from __future__ import annotations

from pathlib import Path

from service.domain.model import Role
from service.mail.templates import Templates

CONTEXT = {"reader": {"first_name": "Zoë"}, "subject": ""}


def write(folder: Path, name: str, text: str) -> None:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_a_revision_keeps_the_files_it_read_and_a_new_one_reads_the_edit(tmp_path):
    write(tmp_path, "custom/both.subject", "Welcome, {{ reader.first_name }}")
    write(tmp_path, "custom/both.txt", "Hello {{ reader.first_name }}\n")
    write(tmp_path, "custom/both.html", "<p>Hello</p>\n")
    revision = Templates(override=tmp_path)
    assert revision.render("custom", Role.MENTEE, CONTEXT).text == "Hello Zoë\n"

    write(tmp_path, "custom/both.txt", "Good day {{ reader.first_name }}\n")  # edited: a new revision
    write(tmp_path, "custom/mentee.txt", "Hi {{ reader.first_name }}\n")  # and a role's own file added
    assert revision.render("custom", Role.MENTEE, CONTEXT).text == "Hello Zoë\n"  # nothing unchecked slips in
    assert Templates(override=tmp_path).render("custom", Role.MENTEE, CONTEXT).text == "Hi Zoë\n"
    assert Templates(override=tmp_path).render("custom", Role.MENTOR, CONTEXT).text == "Good day Zoë\n"
