"""Every email of the example program, read back as a mail program would."""

import re
import shutil
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from service import bootstrap
from service.cli import main
from service.domain.planning import plan_sessions
from service.domain.timeline import DEFAULT_TIMINGS
from service.preview import write_preview

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "config" / "cohort.example.yaml"
NOW = datetime(2027, 2, 1, tzinfo=UTC)

# What the program guide asks of each stage: words that must appear in the text and
# HTML of the roles named.
GUIDE = {
    ("welcome", "mentor"): ["résumé", "LinkedIn", "scheduling", "between sessions", "email", "chat"],
    ("welcome", "mentee"): ["brainstorm", "SMART goals", "between sessions", "email", "chat"],
    ("session1_prep", "mentor"): [
        "ground rules",
        "expectations",
        "coaching style",
        "accommodations",
        "Specific",
        "Measurable",
        "Achievable",
        "Relevant",
        "Time-bound",
        "benchmarks",
        "action plan",
        "homework",
    ],
    ("session1_prep", "mentee"): [
        "ground rules",
        "expectations",
        "coaching style",
        "accommodations",
        "Specific",
        "Measurable",
        "Achievable",
        "Relevant",
        "Time-bound",
        "benchmarks",
        "action plan",
        "homework",
    ],
    ("session1_followup", "mentee"): ["homework", "action plan"],
    ("session1_followup", "mentor"): ["session 2"],
    ("homework_checkin", "mentee"): ["homework"],
    ("homework_checkin", "mentor"): ["homework"],
    ("session2_prep", "mentor"): [
        "debrief",
        "revisit",
        "action plan",
        "after the program",
        "introductions",
        "informational interviews",
        "celebrate",
    ],
    ("session2_prep", "mentee"): [
        "debrief",
        "revisit",
        "action plan",
        "after the program",
        "introductions",
        "informational interviews",
        "celebrate",
    ],
    ("program_wrapup", "mentor"): ["Congratulations", "post-program plan"],
    ("program_wrapup", "mentee"): ["Congratulations", "post-program plan"],
    ("follow_up", "mentor"): ["check in", "longer-term goals"],
    ("follow_up", "mentee"): ["goals"],
}


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    inputs = bootstrap.load_inputs(EXAMPLE)
    plan = plan_sessions(inputs.cohort, inputs.busy, now=NOW)
    out = tmp_path_factory.mktemp("preview")
    count = write_preview(plan, inputs.templates, out)
    messages = {}
    for path in sorted((out / "messages").glob("*.eml")):
        messages[path.stem] = message_from_bytes(path.read_bytes(), policy=policy.default)
    return inputs.cohort, plan, out, count, messages


def parts(message):
    return message.get_body(("plain",)).get_content(), message.get_body(("html",)).get_content()


def words(text: str) -> str:
    return " ".join(text.split()).lower()


def test_every_stage_renders_for_both_roles_of_every_pair(program):
    cohort, plan, _, count, messages = program
    assert count == len(messages) == len(cohort.pairs) * len(DEFAULT_TIMINGS) * 2
    for pair in cohort.pairs:
        for stage in DEFAULT_TIMINGS:
            for role in ("mentor", "mentee"):
                assert any(name.endswith(f"-{pair.id}-{stage}-{role}") for name in messages), (pair.id, stage, role)


def test_structure_and_headers(program):
    cohort, _, _, _, messages = program
    people = cohort.people
    ids = set()
    for name, message in messages.items():
        assert message["From"].addresses[0].addr_spec == cohort.coordinator.email
        assert message["Reply-To"].addresses[0].addr_spec == cohort.coordinator.email
        (to,) = message["To"].addresses
        assert to.display_name == people[to.addr_spec].name  # names like "Zoë Ñúñez" and "李雷" survive
        assert message["Message-ID"] and message["Message-ID"] not in ids
        ids.add(message["Message-ID"])
        assert message["Subject"] and "\n" not in str(message["Subject"])
        invitation = "_invitation-" in name
        assert message.get_content_type() == ("multipart/mixed" if invitation else "multipart/alternative")
        text, html = parts(message)
        assert text.strip() and html.lstrip().startswith("<!DOCTYPE html>")
        assert "{{" not in text and "{%" not in html
        assert "<script" not in html.lower() and "<table" not in html.lower()
        for part in message.walk():
            if part.get_content_maintype() == "text":
                assert part.get_content_charset() == "utf-8"


def test_each_guide_item_appears_in_its_stage(program):
    _, _, _, _, messages = program
    for (stage, role), expected in GUIDE.items():
        found = [m for name, m in messages.items() if f"-{stage}-{role}" in name]
        assert found, (stage, role)
        for message in found:
            text, html = parts(message)
            for word in expected:
                assert word.lower() in words(text), (stage, role, word, "text")
                assert word.lower() in words(html), (stage, role, word, "html")


def test_times_are_in_the_readers_zone_with_the_zone_named(program):
    _, plan, _, _, messages = program
    item = next(p for p in plan.pairs if p.pair.id == "sarah-tom")
    text, _ = parts(next(m for n, m in messages.items() if n.endswith("sarah-tom-session2_prep-mentee")))
    # Tom is on Lord Howe (UTC+10:30 after 4 April); Sarah in Sydney (AEST).
    assert "UTC+10:30" in text and "AEST" in text
    assert item.sessions[1].start.astimezone().year == 2027


def test_invitations_carry_a_calendar_request(program):
    cohort, plan, _, _, messages = program
    import icalendar

    message = next(m for n, m in messages.items() if n.endswith("-maya-zoe-session2_invitation-mentee"))
    calendar_part = next(p for p in message.walk() if p.get_content_type() == "text/calendar")
    assert calendar_part.get_param("method") == "REQUEST"
    calendar = icalendar.Calendar.from_ical(calendar_part.get_content())
    (event,) = calendar.walk("VEVENT")
    session = next(p for p in plan.pairs if p.pair.id == "maya-zoe").sessions[1]
    assert event.decoded("DTSTART") == session.start
    assert {str(a).removeprefix("mailto:") for a in event.get("ATTENDEE")} == {"maya.okafor@example.org", "zoe.nunez@example.net"}
    assert str(event.get("ORGANIZER")) == f"mailto:{cohort.coordinator.email}"


def test_the_index_lists_every_email_by_date(program):
    _, _, out, count, _ = program
    index = (out / "index.html").read_text()
    links = re.findall(r'href="(messages/[^"]+\.html)"', index)
    assert len(links) == count
    assert all((out / link).is_file() for link in links)


def test_participant_text_cannot_inject_markup(tmp_path):
    folder = tmp_path / "cohort"
    shutil.copytree(ROOT / "config", folder)
    pairings = folder / "pairings.example.csv"
    text = pairings.read_text(encoding="utf-8")
    text = text.replace("Moving from QA into backend engineering.", '"<script>alert(1)</script><img src=x onerror=alert(2)> & more"')
    pairings.write_text(text, encoding="utf-8")
    inputs = bootstrap.load_inputs(folder / "cohort.example.yaml")
    out = tmp_path / "out"
    write_preview(plan_sessions(inputs.cohort, inputs.busy, now=NOW), inputs.templates, out, pair_id="maya-zoe")
    (welcome,) = (out / "messages").glob("*maya-zoe-welcome-mentor.eml")
    text, html = parts(message_from_bytes(welcome.read_bytes(), policy=policy.default))
    assert "<script>" in text  # plain text shows it as typed
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_a_coordinator_can_override_one_template(tmp_path):
    folder = tmp_path / "cohort"
    shutil.copytree(ROOT / "config", folder)
    (folder / "my-templates" / "welcome").mkdir(parents=True)
    (folder / "my-templates" / "welcome" / "mentee.subject").write_text("Hello {{ reader.first_name }}, from {{ cohort.name }}\n")
    config = folder / "cohort.example.yaml"
    config.write_text(config.read_text() + "\nemails:\n  templates: my-templates\n")
    inputs = bootstrap.load_inputs(config)
    out = tmp_path / "out"
    write_preview(plan_sessions(inputs.cohort, inputs.busy, now=NOW), inputs.templates, out, pair_id="maya-zoe")
    subjects = {
        p.stem.split("maya-zoe-")[1]: message_from_bytes(p.read_bytes(), policy=policy.default)["Subject"]
        for p in (out / "messages").glob("*.eml")
    }
    assert subjects["welcome-mentee"] == "Hello Zoë, from Spring 2027 Engineering Mentorship"
    assert subjects["welcome-mentor"] != subjects["welcome-mentee"]  # the others keep the defaults


def test_validate_names_the_broken_template_file_and_line(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "cohort"
    shutil.copytree(ROOT / "config", folder)
    (folder / "my-templates" / "session1_prep").mkdir(parents=True)
    (folder / "my-templates" / "session1_prep" / "mentor.txt").write_text("Hi {{ reader.first_name }},\n\nSee you {{ session1.whenn }}.\n")
    (folder / "my-templates" / "session2_prep").mkdir(parents=True)
    (folder / "my-templates" / "session2_prep" / "mentee.html").write_text("<p>\n{% if reader.name %}\n</p>\n")
    config = folder / "cohort.example.yaml"
    config.write_text(config.read_text() + "\nemails:\n  templates: my-templates\n")
    monkeypatch.chdir(folder)
    assert main(["validate", "--config", "cohort.example.yaml"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "2 problems in the configuration; nothing was booked or sent:"
    assert err[1:] == [
        "my-templates/session1_prep/mentor.txt:3: template error: 'whenn' is not available to this"
        " template (misspelt, or not one of its variables)",
        "my-templates/session2_prep/mentee.html:3: template error: Unexpected end of template."
        " Jinja was looking for the following tags: 'elif' or 'else' or 'endif'."
        " The innermost block that needs to be closed is 'if'.",
    ]


def test_preview_command_writes_the_folder(tmp_path, capsys):
    assert (
        main(["preview", "--config", str(EXAMPLE), "--out", str(tmp_path), "--pair", "hannah-kai", "--now", "2027-02-01T00:00+00:00"]) == 0
    )
    assert "18 emails written" in capsys.readouterr().out
    assert len(list((tmp_path / "messages").glob("*.eml"))) == 18


def test_wording_follows_the_session_length_and_program_span(tmp_path):
    folder = tmp_path / "cohort"
    shutil.copytree(ROOT / "config", folder)
    config = folder / "cohort.example.yaml"
    text = (
        config.read_text(encoding="utf-8").replace("length_minutes: 60", "length_minutes: 45").replace("end: 2027-04-30", "end: 2027-06-30")
    )
    config.write_text(text, encoding="utf-8")
    inputs = bootstrap.load_inputs(config)
    out = tmp_path / "out"
    write_preview(plan_sessions(inputs.cohort, inputs.busy, now=NOW), inputs.templates, out, pair_id="maya-zoe")
    bodies = {
        p.stem.split("maya-zoe-")[1]: words(" ".join(parts(message_from_bytes(p.read_bytes(), policy=policy.default))))
        for p in (out / "messages").glob("*.eml")
    }
    for role in ("mentor", "mentee"):
        assert "over four months you and" in bodies[f"welcome-{role}"]
        assert "two sessions by video, 45 minutes each" in bodies[f"welcome-{role}"]
        assert "ended three months ago" in bodies[f"follow_up-{role}"]
    assert not [name for name, body in bodies.items() if "one hour" in body or "two months" in body]


def test_validate_renders_templates_with_another_session_length(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "cohort"
    shutil.copytree(ROOT / "config", folder)
    (folder / "my-templates" / "welcome").mkdir(parents=True)
    broken_for_others = "Hi,\n{% if program.length != 'one hour' %}{{ reader.nickname }}{% endif %}\n"
    (folder / "my-templates" / "welcome" / "mentor.txt").write_text(broken_for_others)
    config = folder / "cohort.example.yaml"
    config.write_text(config.read_text() + "\nemails:\n  templates: my-templates\n")
    monkeypatch.chdir(folder)
    assert main(["validate", "--config", "cohort.example.yaml"]) == 2
    assert "my-templates/welcome/mentor.txt:2: template error: 'nickname'" in capsys.readouterr().err
