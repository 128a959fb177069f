"""The daemon's use cases on the real store, a simulated clock and a recording transport."""

from __future__ import annotations

import os
import shutil
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import pytest

from service import bootstrap
from service.adapters.clock import SimulatedClock
from service.adapters.store import open_store
from service.domain.outbox import State
from service.domain.ports import MailError
from service.runner import run_simulated
from service.usecases import Controller, Deps
from service.usecases.booking import reconcile
from service.usecases.schedule import with_foreseen
from tests.fakes.logs import capture
from tests.fakes.mailer import RecordingMailer

ROOT = Path(__file__).parents[2]
START = datetime(2027, 2, 1, tzinfo=UTC)


@pytest.fixture
def cohort_dir(tmp_path):
    folder = tmp_path / "cohort"
    shutil.copytree(ROOT / "config", folder)
    return folder


class Daemon:
    """One daemon process: a fresh controller over the same state."""

    def __init__(self, folder: Path, state: Path, mailer: RecordingMailer, clock: SimulatedClock):
        self.watcher = bootstrap.ConfigWatcher.start(folder / "cohort.example.yaml", None, clock)
        self.store = open_store(state)
        self.log = capture()
        self.controller = Controller(Deps(store=self.store, mailer=mailer, source=self.watcher))
        self.clock = clock

    @property
    def lines(self) -> list[str]:
        return self.log.lines

    def tick(self):
        return self.controller.tick(self.clock.now())

    def run(self, until: datetime | None = None) -> None:
        run_simulated(self.controller, self.clock, until)

    def rows(self):
        return self.store.messages()

    def schedule(self):
        """The emails written, and those foreseen (written a week before they are due)."""
        return with_foreseen(self.store, self.controller.inputs.cohort)


def start(folder, tmp_path, mailer=None, clock=None) -> Daemon:
    return Daemon(folder, tmp_path / "state.sqlite", mailer or RecordingMailer(), clock or SimulatedClock(START))


def keys(messages) -> Counter:
    return Counter(m["Message-ID"] for m in messages)


def test_a_whole_program_sends_every_email_once_and_a_rerun_sends_nothing(cohort_dir, tmp_path):
    mailer = RecordingMailer()
    daemon = start(cohort_dir, tmp_path, mailer)
    daemon.run()
    rows = daemon.rows()
    assert {r.state for r in rows} == {State.SENT}
    assert len(rows) == len(mailer.sent) == 14 * 9 * 2
    assert max(keys(mailer.sent).values()) == 1
    # Another process on the same state, from the start again: nothing new happens.
    again = start(cohort_dir, tmp_path, mailer)
    again.run()
    assert len(mailer.sent) == 14 * 9 * 2
    assert again.lines == []


def test_each_email_goes_out_when_due_and_not_before(cohort_dir, tmp_path):
    mailer = RecordingMailer()
    clock = SimulatedClock(START)
    daemon = start(cohort_dir, tmp_path, mailer, clock)
    wake = daemon.tick()
    assert mailer.sent == []  # nothing is due a month before the program
    while not mailer.sent:  # a wake writes the emails of the coming week; a later one sends the first
        clock.advance_to(wake)
        wake = daemon.tick()
        assert all(r.due <= clock.now() for r in daemon.rows() if r.state is State.SENT)
        assert all(r.due > clock.now() for r in daemon.rows() if r.state is State.PLANNED)


def test_ticking_twice_at_the_same_moment_changes_nothing(cohort_dir, tmp_path):
    mailer = RecordingMailer()
    clock = SimulatedClock(datetime(2027, 3, 5, tzinfo=UTC))
    daemon = start(cohort_dir, tmp_path, mailer, clock)
    daemon.tick()
    count, rows = len(mailer.sent), sorted((r.key, r.state) for r in daemon.rows())
    daemon.tick()
    start(cohort_dir, tmp_path, mailer, clock).tick()
    assert len(mailer.sent) == count
    assert sorted((r.key, r.state) for r in daemon.rows()) == rows


def test_a_pair_removed_mid_program_is_cancelled_and_told(cohort_dir, tmp_path):
    mailer = RecordingMailer()
    clock = SimulatedClock(START)
    daemon = start(cohort_dir, tmp_path, mailer, clock)
    daemon.run(until=datetime(2027, 2, 25, tzinfo=UTC))  # invitations and welcomes are out
    pairings = cohort_dir / "pairings.example.csv"
    lines = pairings.read_text(encoding="utf-8").splitlines(keepends=True)
    pairings.write_text("".join(l for l in lines if not l.startswith("noah-chloe,")), encoding="utf-8")
    daemon.run()
    noah = [r for r in daemon.rows() if r.pair_id == "noah-chloe"]
    cancellations = [r for r in noah if r.stage.endswith("_cancellation")]
    assert len(cancellations) == 4 and all(r.state is State.SENT for r in cancellations)
    assert {r.state for r in noah if r.stage == "session1_prep"} <= {State.CANCELLED}  # never sent (perhaps never written)
    (notice,) = [m for m in mailer.to("noah.williams@example.com") if "Cancelled" in str(m["Subject"]) and "session 1" in str(m["Subject"])]
    calendar = next(p for p in notice.walk() if p.get_content_type() == "text/calendar")
    assert calendar.get_param("method") == "CANCEL"
    (event,) = icalendar.Calendar.from_ical(calendar.get_content()).walk("VEVENT")
    assert event["SEQUENCE"] == 1 and event["STATUS"] == "CANCELLED"
    assert {s.cancelled for s in daemon.store.sessions() if s.session.pair_id == "noah-chloe"} == {True}


def test_a_pair_added_later_is_booked_around_existing_sessions(cohort_dir, tmp_path):
    mailer = RecordingMailer()
    clock = SimulatedClock(START)
    daemon = start(cohort_dir, tmp_path, mailer, clock)
    daemon.run(until=datetime(2027, 2, 25, tzinfo=UTC))
    pairings = cohort_dir / "pairings.example.csv"
    with pairings.open("a", encoding="utf-8") as handle:
        handle.write("maya-ola,Maya Okafor,maya.okafor@example.org,,,,,,,Ola Nordmann,ola@example.no,Europe/Oslo,,,,,,,,\n")
    daemon.run()
    ola = [r for r in daemon.rows() if r.pair_id == "maya-ola"]
    assert ola and {r.state for r in ola} == {State.SENT}
    maya = sorted((s.session.start, s.session.end) for s in daemon.store.sessions() if s.session.pair_id.startswith("maya-"))
    assert len(maya) == 6
    assert all(a_end + timedelta(minutes=15) <= b_start for (_, a_end), (b_start, _) in zip(maya, maya[1:]))


def test_an_invalid_edit_is_reported_and_the_last_good_configuration_stays(cohort_dir, tmp_path):
    mailer = RecordingMailer()
    clock = SimulatedClock(START)
    daemon = start(cohort_dir, tmp_path, mailer, clock)
    daemon.tick()
    planned = len(daemon.rows())
    pairings = cohort_dir / "pairings.example.csv"
    pairings.write_text(pairings.read_text(encoding="utf-8").replace("zoe.nunez@example.net", "zoe.nunez@"), encoding="utf-8")
    clock.advance_to(datetime(2027, 2, 22, 20, tzinfo=UTC))
    daemon.tick()
    assert len(daemon.rows()) >= planned  # nothing cancelled by the broken edit
    assert mailer.to("zoe.nunez@example.net")  # Zoë still gets her emails
    attention = daemon.controller.attention(daemon.clock.now())
    assert any("not applied" in item["summary"] and "zoe.nunez@" in item["summary"] for item in attention)
    digest = [m for m in mailer.to("renata.alves@example.org")]
    assert len(digest) == 1 and "not applied" in digest[0].get_body(("plain",)).get_content()


def test_a_moved_session_re_times_its_emails_and_sends_an_update(cohort_dir, tmp_path):
    mailer = RecordingMailer()
    clock = SimulatedClock(START)
    daemon = start(cohort_dir, tmp_path, mailer, clock)
    daemon.run(until=datetime(2027, 2, 25, tzinfo=UTC))
    (record,) = [s for s in daemon.store.sessions() if s.session.pair_id == "grace-mateo" and s.session.number == 2]
    old_prep = next(r for r in daemon.schedule() if r.pair_id == "grace-mateo" and r.stage == "session2_prep")
    moved = type(record.session)(
        pair_id="grace-mateo", number=2, start=record.session.start + timedelta(days=2), end=record.session.end + timedelta(days=2)
    )
    daemon.store.move(moved, clock.now(), "Mateo declined the first time")
    daemon.controller.reconciled = False  # as after any observation from the calendar
    daemon.run()
    rows = [r for r in daemon.rows() if r.pair_id == "grace-mateo"]
    prep = [r for r in rows if r.stage == "session2_prep"]
    assert len(prep) == 2 and {r.state for r in prep} == {State.SENT}  # one per person, at the new time
    assert all(r.due == old_prep.due + timedelta(days=2) for r in prep)
    updates = [r for r in rows if r.stage == "session2_invitation" and r.revision == 1]
    assert len(updates) == 2 and {r.state for r in updates} == {State.SENT}
    (update,) = [m for m in mailer.to("mateo.garcia@example.co") if m["Message-ID"] in {u.message_id for u in updates}]
    text = update.get_body(("plain",)).get_content()
    assert "Mateo declined the first time" in text
    calendar = next(p for p in update.walk() if p.get_content_type() == "text/calendar")
    (event,) = icalendar.Calendar.from_ical(calendar.get_content()).walk("VEVENT")
    assert event["SEQUENCE"] == 1 and event.decoded("DTSTART") == moved.start


def test_transient_failures_are_retried_with_backoff_then_sent(cohort_dir, tmp_path):
    mailer = RecordingMailer()
    failures = Counter()

    def flaky(message):
        key = message["Message-ID"]
        if failures[key] < 2:
            failures[key] += 1
            return MailError(MailError.TRANSIENT, "421 try again later")
        return None

    mailer.fault = flaky
    daemon = start(cohort_dir, tmp_path, mailer)
    daemon.run()
    rows = daemon.rows()
    assert {r.state for r in rows} == {State.SENT}
    assert {r.attempts for r in rows} == {3}
    assert max(keys(mailer.sent).values()) == 1
    assert any("will retry" in line for line in daemon.lines)


def test_permanent_and_unknown_failures_are_held_for_the_coordinator(cohort_dir, tmp_path):
    mailer = RecordingMailer()

    def refuse(message):
        to = message["To"].addresses[0].addr_spec
        if to == "kai.nakamura@example.com":
            return MailError(MailError.PERMANENT, "550 no such user")
        if to == "li.lei@example.cn" and "Welcome" in str(message["Subject"]):
            return MailError(MailError.UNKNOWN, "connection lost during data")
        return None

    mailer.fault = refuse
    daemon = start(cohort_dir, tmp_path, mailer)
    daemon.run()
    rows = daemon.rows()
    failed = [r for r in rows if r.state is State.FAILED]
    uncertain = [r for r in rows if r.state is State.UNCERTAIN]
    assert failed and {r.recipient for r in failed} == {"kai.nakamura@example.com"}
    assert all(r.attempts == 1 for r in failed)  # a permanent refusal is not retried
    assert [(r.recipient, r.stage) for r in uncertain] == [("li.lei@example.cn", "welcome")]
    assert len(mailer.to("li.lei@example.cn", "Welcome")) == 1  # never resent blindly
    digests = mailer.to("renata.alves@example.org")
    new_york = ZoneInfo("America/New_York")  # the program's days
    days = [m["Date"].datetime.astimezone(new_york).date() for m in digests]
    failure_days = {r.due.astimezone(new_york).date() for r in failed + uncertain}
    assert digests and len(set(days)) == len(days) <= len(failure_days) + 1  # one a day at most
    bodies = [m.get_body(("plain",)).get_content() for m in digests]
    assert len(set(bodies)) == len(bodies)  # each says something new
    assert "li.lei@example.cn" in bodies[0] and "kai.nakamura@example.com" in bodies[-1]


@pytest.mark.parametrize(("verdict", "expected"), [(True, State.SENT), (False, State.SENT), (None, State.UNCERTAIN)])
def test_a_message_left_sending_by_a_crash_is_checked_not_resent_blindly(cohort_dir, tmp_path, verdict, expected):
    clock = SimulatedClock(datetime(2027, 2, 22, 20, tzinfo=UTC))
    mailer = RecordingMailer()
    first = start(cohort_dir, tmp_path, mailer, clock)
    inputs, _ = first.watcher.current()
    reconcile(first.controller.deps, inputs, clock.now())
    row = first.store.due(clock.now(), 1)[0]
    first.store.mark_sending(row, "<crashed@example.org>", clock.now())  # then the process died

    mailer.knows = lambda message_id: verdict
    mailer.verify_after = None if verdict is None else timedelta(0)
    second = start(cohort_dir, tmp_path, mailer, clock)
    second.tick()
    (after,) = [r for r in second.rows() if r.key == row.key]
    assert after.state is expected
    delivered = [m for m in mailer.sent if m["Message-ID"] == after.message_id]
    assert len(delivered) == (1 if verdict is False else 0)  # resent only when surely never sent


def test_emails_whose_moment_has_passed_are_skipped(cohort_dir, tmp_path):
    # The daemon first runs on 10 March: maya-zoe's session 1 (1 March) is over.
    mailer = RecordingMailer()
    clock = SimulatedClock(START)
    daemon = start(cohort_dir, tmp_path, mailer, clock)
    daemon.tick()  # books and plans while the program is ahead
    clock.advance_to(datetime(2027, 3, 10, tzinfo=UTC))
    daemon.tick()
    maya_zoe = {(r.stage, r.recipient): r.state for r in daemon.rows() if r.pair_id == "maya-zoe"}
    assert maya_zoe[("session1_prep", "zoe.nunez@example.net")] is State.SKIPPED
    assert maya_zoe[("session1_followup", "zoe.nunez@example.net")] is State.SENT  # still useful


def test_a_second_daemon_on_the_same_state_refuses_to_start(tmp_path):
    state = tmp_path / "state.sqlite"
    held = bootstrap.lock_state(state)
    try:
        with pytest.raises(bootstrap.AlreadyRunning, match="already running"):
            bootstrap.lock_state(state)
    finally:
        os.close(held)
    os.close(bootstrap.lock_state(state))  # free again once the first one stops


def test_a_send_cut_short_is_settled_before_its_moment_passes(cohort_dir, tmp_path):
    # Cut off while sending the welcome; back only after session 1 began: it went out.
    clock = SimulatedClock(datetime(2027, 2, 22, 20, tzinfo=UTC))
    mailer = RecordingMailer(verify_after=timedelta(0))
    first = start(cohort_dir, tmp_path, mailer, clock)
    inputs, _ = first.watcher.current()
    reconcile(first.controller.deps, inputs, clock.now())
    row = next(r for r in first.store.due(clock.now(), 500) if r.stage == "welcome" and r.pair_id == "maya-zoe")
    first.store.mark_sending(row, "<cut@example.org>", clock.now())
    mailer.knows = lambda message_id: message_id == "<cut@example.org>"
    clock.advance_to(datetime(2027, 3, 2, tzinfo=UTC))
    second = start(cohort_dir, tmp_path, mailer, clock)
    second.tick()
    (after,) = [r for r in second.rows() if r.key == row.key]
    assert after.state is State.SENT  # not "skipped": it did go out


def test_a_message_waiting_to_be_verified_counts_as_received_when_its_pair_goes(cohort_dir, tmp_path):
    clock = SimulatedClock(datetime(2027, 2, 22, 20, tzinfo=UTC))
    mailer = RecordingMailer(verify_after=timedelta(hours=1))
    daemon = start(cohort_dir, tmp_path, mailer, clock)
    daemon.tick()  # invitations and welcomes for the Americas go out
    with daemon.store.engine.begin() as connection:  # as a kill right after the send leaves it
        connection.exec_driver_sql(
            "UPDATE messages SET state='sending', message_id='<cut@example.org>' WHERE pair_id='noah-chloe' "
            "AND stage='session1_invitation' AND recipient='chloe.martin@example.fr'"
        )
    pairings = cohort_dir / "pairings.example.csv"
    lines = pairings.read_text(encoding="utf-8").splitlines(keepends=True)
    pairings.write_text("".join(l for l in lines if not l.startswith("noah-chloe,")), encoding="utf-8")
    mailer.knows = lambda message_id: True
    restarted = start(cohort_dir, tmp_path, mailer, clock)
    restarted.run()
    rows = {(r.stage, r.recipient): r.state for r in restarted.rows() if r.pair_id == "noah-chloe"}
    assert rows[("session1_invitation", "chloe.martin@example.fr")] is State.SENT
    assert rows[("session1_cancellation", "chloe.martin@example.fr")] is State.SENT
