"""Meet attendance end to end: the daemon on the Google fake (Calendar, Gmail and Meet over
HTTP, the real googleapiclient) on a simulated clock. People join and leave the sessions'
Meet rooms; the daemon reads who came, records held, partial and missed sessions, and the
emails that follow say the right thing."""

from __future__ import annotations

import csv
import io
import re
import shutil
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest

from service import bootstrap, views
from service.adapters.clock import SimulatedClock
from service.adapters.google.api import ENDPOINT_VARIABLE, Backoff
from service.adapters.store import open_store
from service.domain.attendance import Attendance
from service.domain.stages import Stage
from service.runner import run_simulated
from service.status import status_report
from service.usecases import Controller, Deps
from tests.fakes.google import FakeGoogle, Fault
from tests.fakes.logs import capture

ROOT = Path(__file__).parents[2]
START = datetime(2027, 2, 1, tzinfo=UTC)
HELD_IN_PIECES, PARTIAL, MISSED = "maya-zoe", "jonas-priya", "jonas-sofia"


@pytest.fixture
def google(monkeypatch):
    with FakeGoogle() as fake:
        monkeypatch.setenv(ENDPOINT_VARIABLE, fake.url)
        yield fake
        assert fake.internal_errors == []


class World:
    """The example Google cohort, one daemon, and the fake's clock following the daemon's."""

    def __init__(self, google: FakeGoogle, folder: Path, **meet: str):
        self.google = google
        shutil.copytree(ROOT / "config", folder)
        google.service_account_file(folder / "key.json")
        config = (folder / "cohort.google.example.yaml").read_text()
        config = config.replace("  # credentials: secrets/mentorship-key.json", "  credentials: key.json")
        for name, value in meet.items():  # the example's meet: section, changed
            config, found = re.subn(rf"^(  {name}:) \S+", rf"\1 {value}", config, count=1, flags=re.MULTILINE)
            assert found, name
        (folder / "cohort.yaml").write_text(config)
        self.clock = SimulatedClock(START)
        google.clock = self.clock.now  # Meet shows what happened up to the daemon's "now"
        self.watcher = bootstrap.ConfigWatcher.start(folder / "cohort.yaml", None, self.clock)
        calendar, free_busy, mailer = bootstrap.google_adapters(self.watcher.configuration)
        meet = bootstrap.meet_adapter(self.watcher.configuration)
        assert calendar and free_busy and mailer
        quick = Backoff(attempts=6, sleep=lambda seconds: None)
        calendar.backoff = free_busy.backoff = mailer.backoff = quick
        if meet is not None:
            meet.backoff = quick
        calendar.clock = self.clock.now
        self.cohort = self.watcher.configuration.cohort
        self.store = open_store(folder / "state.sqlite")
        self.log = capture()
        self.controller = Controller(
            Deps(store=self.store, mailer=mailer, source=self.watcher, calendar=calendar, free_busy=free_busy, meet=meet)
        )

    def tick(self):
        return self.controller.tick(self.clock.now())

    def run(self, until: datetime | None = None) -> None:
        run_simulated(self.controller, self.clock, until)

    def record(self, pair_id: str, number: int):
        return next(r for r in self.store.sessions() if (r.session.pair_id, r.session.number) == (pair_id, number))

    def booked_with_links(self) -> None:
        """Book, write the events, and read them back with their Meet links."""
        self.tick()
        self.clock.advance_to(START + timedelta(minutes=1))
        self.tick()
        assert all(r.meet_link for r in self.store.sessions())

    def mail(self, pair_id: str, stage: Stage) -> list[EmailMessage]:
        """The emails of one stage sent to a pair's people, found by their stored Message-IDs."""
        ids = {r.message_id for r in self.store.messages([pair_id]) if r.stage is stage and r.message_id and r.state.value == "sent"}
        return [m for m in self.google.sent_mail() if m["Message-ID"] in ids]


def attend_everything(world: World) -> None:
    """Every pair meets, signed in, for its whole session; but for three pairs' first session:
    Maya and Zoë (not signed in) meet in two pieces with the room empty in between,
    only Jonas comes to his first session with Priya, and nobody to his with Sofia."""
    pairs = {pair.id: pair for pair in world.cohort.pairs}
    meet = world.google.meet
    for record in world.store.sessions():
        session, link = record.session, record.meet_link
        assert link
        pair = pairs[session.pair_id]
        if (session.pair_id, session.number) == (HELD_IN_PIECES, 1):
            for offset in (0, 30):
                start = session.start + timedelta(minutes=offset)
                meet.attend(link, start, start + timedelta(minutes=15), email=pair.mentor.email, name=pair.mentor.name)
                meet.attend(link, start + timedelta(minutes=1), start + timedelta(minutes=14), name=pair.mentee.name)
        elif (session.pair_id, session.number) == (PARTIAL, 1):
            meet.attend(link, session.start, session.start + timedelta(minutes=25), email=pair.mentor.email)
        elif (session.pair_id, session.number) == (MISSED, 1):
            continue
        else:
            for person in pair.people:
                meet.attend(link, session.start, session.end, email=person.email, name=person.name)


def text_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return body.get_content()


def test_held_partial_and_missed_sessions_are_read_from_meet_and_the_right_emails_follow(google, tmp_path):
    world = World(google, tmp_path / "cohort")
    world.booked_with_links()
    # Every room was looked up and made to let invited guests in without knocking, with
    # neither recording nor transcripts.
    for record in world.store.sessions():
        assert record.meet_space and record.meet_space.startswith("spaces/")
        config = google.meet.space(record.meet_link)["config"]
        assert config["accessType"] == "TRUSTED"
        assert config["artifactConfig"]["recordingConfig"] == {"autoRecordingGeneration": "OFF"}
        assert config["artifactConfig"]["transcriptionConfig"] == {"autoTranscriptionGeneration": "OFF"}
    attend_everything(world)
    world.run()

    found = {(r.session.pair_id, r.session.number): r for r in world.store.sessions()}
    assert found[(HELD_IN_PIECES, 1)].attended is Attendance.HELD
    assert (found[(HELD_IN_PIECES, 1)].attendance.people, found[(HELD_IN_PIECES, 1)].attendance.together_minutes) == (2, 26)
    assert found[(PARTIAL, 1)].attended is Attendance.PARTIAL
    assert found[(MISSED, 1)].attended is Attendance.MISSED
    others = {key: r.attended for key, r in found.items() if key not in {(HELD_IN_PIECES, 1), (PARTIAL, 1), (MISSED, 1)}}
    assert set(others.values()) == {Attendance.HELD}
    # Read an hour after each session's end, before the follow-up two hours after it.
    missed = found[(MISSED, 1)]
    assert missed.attendance.at == missed.session.end + timedelta(hours=1)

    # Both of the pair who missed their session hear so, once, with how to book it again.
    notes = world.mail(MISSED, Stage.SESSION1_MISSED)
    assert sorted(m["To"].addresses[0].addr_spec for m in notes) == ["jonas.weber@example.de", "sofia.rossi@example.it"]
    assert all("nobody joined the video call" in text_of(m) and "Reply to this email" in text_of(m) for m in notes)
    assert not world.mail(HELD_IN_PIECES, Stage.SESSION1_MISSED) and not world.mail(PARTIAL, Stage.SESSION1_MISSED)
    # The follow-up of a session that did not happen waits for it to be booked again; the
    # halfway check-in does not ask about homework that was never set.
    assert world.mail(MISSED, Stage.SESSION1_FOLLOWUP) == []
    assert len(world.mail(HELD_IN_PIECES, Stage.SESSION1_FOLLOWUP)) == 2 and len(world.mail(PARTIAL, Stage.SESSION1_FOLLOWUP)) == 2
    checkins = world.mail(MISSED, Stage.HOMEWORK_CHECKIN)
    assert len(checkins) == 2 and all("did not take place" in text_of(m) for m in checkins)
    assert all("did not take place" not in text_of(m) for m in world.mail(HELD_IN_PIECES, Stage.HOMEWORK_CHECKIN))
    # The coordinator is told, in status and the digest.
    items = [item["summary"] for item in world.controller.attention(world.clock.now())]
    assert any("Google Meet of session 1: nobody joined" in s and f"reschedule {MISSED}" in s for s in items)
    assert any("Google Meet of session 1: only one of them joined" in s for s in items)
    digests = [m for m in google.sent_mail() if m["To"].addresses[0].addr_spec == "renata.alves@example.org"]
    assert any("Google Meet of session 1: nobody joined" in text_of(m) for m in digests)
    # Status, its JSON and the export show each session's attendance.
    report = status_report(world.watcher.current()[0], world.store, now=world.clock.now())
    assert report["attendance"] == {"held": len(found) - 2, "missed": 1, "partial": 1}
    table = views.status_table(report)
    assert "attendance: missed" in table and "1 missed" in table
    rows = {row["pair"]: row for row in csv.DictReader(io.StringIO(views.export_csv(report)))}
    assert (rows[MISSED]["session1_attendance"], rows[PARTIAL]["session1_attendance"]) == ("missed", "partial")
    assert rows[HELD_IN_PIECES]["session1_attendance"] == rows[HELD_IN_PIECES]["session2_attendance"] == "held"
    # Nothing was read twice: one conference list per session, all settled.
    assert google.api_calls("meet.conferenceRecords.list") == len(found)
    assert google.api_calls("meet.spaces.patch") == len(found)


def test_meet_unreachable_waits_and_nothing_is_taken_as_missed(google, tmp_path):
    world = World(google, tmp_path / "cohort")
    world.booked_with_links()
    attend_everything(world)
    down = google.add_fault(Fault(method="meet.conferenceRecords.list", status=403, reason="accessNotConfigured", times=None))
    first = min(r.session.end for r in world.store.sessions())
    world.clock.advance_to(first + timedelta(hours=1))
    world.tick()
    assert all(r.attended is None for r in world.store.sessions())  # unknown, not missed
    assert any("Google Meet cannot be read" in s["summary"] for s in world.controller.attention(world.clock.now()))
    google.remove_fault(down)
    world.clock.advance_to(first + timedelta(days=1, hours=1))  # the next daily reading
    world.tick()
    settled = [r for r in world.store.sessions() if r.attended is not None]
    assert settled and all(r.attended is not Attendance.MISSED or r.session.pair_id == MISSED for r in settled)
    assert not any("Google Meet cannot be read" in s["summary"] for s in world.controller.attention(world.clock.now()))


def test_without_trusted_access_rooms_keep_their_settings_and_attendance_can_be_off(google, tmp_path):
    world = World(google, tmp_path / "cohort", trusted_access="false", attendance="false")
    assert world.controller.deps.meet is None
    world.booked_with_links()
    assert google.api_calls("meet.spaces.patch") == 0 and google.api_calls("meet.conferenceRecords.list") == 0


def test_with_the_directory_signed_in_people_are_known_and_only_the_pair_counts(google, tmp_path):
    world = World(google, tmp_path / "cohort", directory="true")
    world.booked_with_links()
    pairs = {pair.id: pair for pair in world.cohort.pairs}
    coordinator = world.cohort.coordinator
    watched, met = world.record(HELD_IN_PIECES, 1), world.record(PARTIAL, 1)
    # Maya sits with the coordinator, who looked in: without the directory that is two
    # people in the room; with it, the coordinator is known and does not count.
    google.meet.attend(watched.meet_link, watched.session.start, watched.session.end, email=pairs[HELD_IN_PIECES].mentor.email)
    google.meet.attend(watched.meet_link, watched.session.start, watched.session.end, email=coordinator.email)
    # Jonas (an account outside the organisation: not in its directory) meets Priya, a guest.
    google.meet.attend(met.meet_link, met.session.start, met.session.end, email=pairs[PARTIAL].mentor.email)
    google.meet.attend(met.meet_link, met.session.start, met.session.end, name=pairs[PARTIAL].mentee.name)
    world.clock.advance_to(max(watched.session.end, met.session.end) + timedelta(hours=1))
    world.tick()
    assert world.record(HELD_IN_PIECES, 1).attended is Attendance.PARTIAL
    assert world.record(PARTIAL, 1).attended is Attendance.HELD
    assert google.api_calls("people.people.get") >= 2


def test_rooms_meet_does_not_know_are_asked_about_once_and_their_attendance_is_unknown(google, tmp_path):
    world = World(google, tmp_path / "cohort")
    google.add_fault(Fault(method="meet.spaces.get", status=404, reason="notFound", message="Requested entity was not found."))
    world.booked_with_links()
    sessions = len(world.store.sessions())
    for _ in range(3):
        world.clock.advance_to(world.clock.now() + timedelta(minutes=5))
        world.tick()
    assert google.api_calls("meet.spaces.get") == sessions  # once per room, not once per tick
    world.run()
    assert google.api_calls("meet.spaces.get") == sessions
    assert google.api_calls("meet.conferenceRecords.list") == 0  # nothing to read there
    assert {r.attended for r in world.store.sessions()} == {Attendance.UNKNOWN}  # not taken as missed
    assert not [m for pair in world.cohort.pairs for m in world.mail(pair.id, Stage.SESSION1_MISSED)]
    assert not any("Google Meet cannot be read" in s["summary"] for s in world.controller.attention(world.clock.now()))
