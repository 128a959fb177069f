"""A program that changes while it runs: edits as change sets, re-pairing, the past as
fact, and the coordinator's commands, on the real store and a simulated clock."""

from __future__ import annotations

import csv
import io
import shutil
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from service.cli import main
from service.domain.outbox import State
from service.domain.requests import RequestKind
from service.domain.stages import Kind, Stage
from tests.fakes.mailer import RecordingMailer
from tests.integration.test_daemon import start

ROOT = Path(__file__).parents[2]
INVITATIONS_OUT = datetime(2027, 2, 25, tzinfo=UTC)  # welcomes and invitations have gone out


@pytest.fixture
def cohort_dir(tmp_path):
    folder = tmp_path / "cohort"
    shutil.copytree(ROOT / "config", folder)
    return folder


def keep_rows(folder: Path, *pair_ids: str) -> None:
    """Save the pairings with only these rows, as a filtered sheet does."""
    path = folder / "pairings.example.csv"
    header, *rows = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text(header + "".join(r for r in rows if r.split(",")[0] in pair_ids), encoding="utf-8")


def all_ids(folder: Path) -> list[str]:
    return [line.split(",")[0] for line in (folder / "pairings.example.csv").read_text(encoding="utf-8").splitlines()[1:]]


def cli(folder: Path, state: Path, *args: str) -> int:
    return main([args[0], "--config", str(folder / "cohort.example.yaml"), "--state", str(state), *args[1:]])


def test_a_filtered_sheet_is_held_and_cancels_nothing_until_approved(cohort_dir, tmp_path, capsys):
    daemon = start(cohort_dir, tmp_path)
    daemon.run(until=INVITATIONS_OUT)
    original = cohort_dir / "pairings.example.csv"
    backup = original.read_text(encoding="utf-8")
    keep_rows(cohort_dir, "maya-zoe", "jonas-priya", "aiko-lilei")
    daemon.tick()
    assert not any(r.cancelled for r in daemon.store.sessions())  # nothing cancelled
    assert daemon.store.held_change() is not None
    state = tmp_path / "state.sqlite"
    assert cli(cohort_dir, state, "changes") == 0
    shown = capsys.readouterr().out
    assert "HELD" in shown and "leaves: noah-chloe" in shown
    assert cli(cohort_dir, state, "status") == 0
    assert "An edit is held because it cancels many pairs" in capsys.readouterr().out
    # The coordinator puts the rows back: nothing was lost, nothing is held.
    original.write_text(backup, encoding="utf-8")
    daemon.tick()
    assert daemon.store.held_change() is None and not any(r.cancelled for r in daemon.store.sessions())
    # Filtered again, and this time approved.
    keep_rows(cohort_dir, "maya-zoe", "jonas-priya", "aiko-lilei")
    daemon.tick()
    assert cli(cohort_dir, state, "approve") == 0
    daemon.tick()
    cancelled = {r.session.pair_id for r in daemon.store.sessions() if r.cancelled}
    everyone = {line.split(",")[0] for line in backup.splitlines()[1:]}
    assert cancelled == everyone - {"maya-zoe", "jonas-priya", "aiko-lilei"}
    assert daemon.store.held_change() is None


def test_an_emptied_sheet_ends_the_cohort_once_approved(cohort_dir, tmp_path, capsys):
    """Emptying the pairings is how a coordinator ends a running cohort: held and shown
    like any large removal, then every coming session cancelled and both people told."""
    mailer = RecordingMailer()
    daemon = start(cohort_dir, tmp_path, mailer)
    daemon.run(until=INVITATIONS_OUT)
    keep_rows(cohort_dir)
    daemon.tick()
    assert daemon.store.held_change() is not None and not any(r.cancelled for r in daemon.store.sessions())
    state = tmp_path / "state.sqlite"
    assert cli(cohort_dir, state, "approve") == 0
    capsys.readouterr()
    sent_before = len(mailer.sent)
    daemon.tick()
    assert all(r.cancelled for r in daemon.store.sessions() if r.session.start > daemon.clock.now())
    told = {parseaddr(str(m["To"]))[1] for m in mailer.sent[sent_before:] if str(m["Subject"]).startswith("Cancelled:")}
    assert told == {person.email for pair in daemon.store.known_pairs().values() for person in pair.people}


def test_a_small_edit_is_applied_at_once(cohort_dir, tmp_path):
    daemon = start(cohort_dir, tmp_path)
    daemon.run(until=INVITATIONS_OUT)
    keep_rows(cohort_dir, *[i for i in all_ids(cohort_dir) if i != "noah-chloe"])
    daemon.tick()
    assert daemon.store.held_change() is None
    assert {r.session.pair_id for r in daemon.store.sessions() if r.cancelled} == {"noah-chloe"}


def test_a_pair_back_after_its_first_session_resumes_without_moving_the_past(cohort_dir, tmp_path):
    daemon = start(cohort_dir, tmp_path)
    daemon.tick()
    first = {r.session.pair_id: r.session for r in daemon.store.sessions() if r.session.number == 1}
    after_first = first["noah-chloe"].end + timedelta(hours=3)
    daemon.run(until=after_first)
    everyone = all_ids(cohort_dir)
    keep_rows(cohort_dir, *[i for i in everyone if i != "noah-chloe"])
    daemon.clock.advance_to(after_first + timedelta(hours=1))
    daemon.tick()
    noah = {r.session.number: r for r in daemon.store.sessions() if r.session.pair_id == "noah-chloe"}
    assert not noah[1].cancelled and noah[1].session == first["noah-chloe"]  # it happened
    assert noah[2].cancelled
    shutil.copy(ROOT / "config" / "pairings.example.csv", cohort_dir / "pairings.example.csv")  # the row is back
    daemon.clock.advance_to(after_first + timedelta(days=1))
    daemon.tick()
    noah = {r.session.number: r for r in daemon.store.sessions() if r.session.pair_id == "noah-chloe"}
    assert noah[1].session == first["noah-chloe"] and (noah[1].sequence, noah[1].cancelled) == (0, False)
    assert not noah[2].cancelled and noah[2].session.start > daemon.clock.now()
    daemon.run()
    moved = [r for r in daemon.rows() if r.pair_id == "noah-chloe" and r.stage is Stage.SESSION1_INVITATION and r.revision]
    assert moved == []  # nobody was told session 1 has a new time


def test_re_pairing_under_the_same_id_ends_the_old_pair_and_starts_a_new_one(cohort_dir, tmp_path):
    daemon = start(cohort_dir, tmp_path)
    mailer = daemon.controller.deps.mailer
    daemon.run(until=INVITATIONS_OUT)
    path = cohort_dir / "pairings.example.csv"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("Noah Williams,noah.williams@example.com", "Ines Costa,ines.costa@example.pt"), encoding="utf-8")
    daemon.run()
    old = [r for r in daemon.store.sessions() if r.session.pair_id == "noah-chloe"]
    new = [r for r in daemon.store.sessions() if r.session.pair_id == "noah-chloe.2"]
    assert len(old) == 2 and all(r.cancelled for r in old)
    assert len(new) == 2 and not any(r.cancelled for r in new)
    noah = mailer.to("noah.williams@example.com")
    assert any("Cancelled" in str(m["Subject"]) for m in noah)  # told the pair ended
    ines = [r for r in daemon.rows() if r.recipient == "ines.costa@example.pt"]
    assert {r.pair_id for r in ines} == {"noah-chloe.2"}
    sent_to_ines = {r.stage for r in ines if r.state is State.SENT}
    assert {Stage.WELCOME, Stage.SESSION1_INVITATION, Stage.SESSION2_INVITATION} <= sent_to_ines
    chloe = [r for r in daemon.rows() if r.recipient == "chloe.martin@example.fr" and r.state is State.SENT]
    assert {r.pair_id for r in chloe if r.stage is Stage.WELCOME} == {"noah-chloe", "noah-chloe.2"}  # a welcome to the new pair
    assert not [r for r in daemon.rows() if r.recipient == "noah.williams@example.com" and r.pair_id == "noah-chloe.2"]
    # Noah never hears about sessions he will not have.
    after = [r for r in daemon.rows() if r.recipient == "noah.williams@example.com" and r.state is State.SENT]
    assert not [r for r in after if r.stage.info.kind is Kind.PROGRAM and r.stage is not Stage.WELCOME]


def test_commands_work_while_the_daemon_runs(cohort_dir, tmp_path, capsys):
    daemon = start(cohort_dir, tmp_path)
    daemon.run(until=INVITATIONS_OUT)
    state = tmp_path / "state.sqlite"
    assert cli(cohort_dir, state, "withdraw", "nobody@example.org") == 2  # unknown: nothing queued
    assert cli(cohort_dir, state, "reschedule", "no-such-pair") == 2
    assert daemon.store.pending_requests() == []
    capsys.readouterr()
    # A person leaves: every pair of theirs ends.
    assert cli(cohort_dir, state, "withdraw", "maya.okafor@example.org") == 0
    # Session 1 of a pair moves to the best other time.
    before = {r.session.number: r.session for r in daemon.store.sessions() if r.session.pair_id == "jonas-priya"}
    assert cli(cohort_dir, state, "reschedule", "jonas-priya", "--session", "1", "--auto") == 0
    # A move onto another of Aiko's sessions is refused.
    aiko = next(r.session for r in daemon.store.sessions() if r.session.pair_id == "aiko-arjun" and r.session.number == 1)
    assert cli(cohort_dir, state, "reschedule", "aiko-lilei", "--session", "1", "--at", aiko.start.isoformat()) == 0
    assert len(daemon.store.pending_requests()) == 4
    daemon.tick()
    assert daemon.store.pending_requests() == []
    sessions = daemon.store.sessions()
    assert {r.session.pair_id for r in sessions if r.cancelled} == {"maya-zoe", "maya-daniel"}
    assert daemon.store.withdrawn() == {"maya-zoe", "maya-daniel"}
    after = {r.session.number: r for r in sessions if r.session.pair_id == "jonas-priya"}
    assert after[1].session != before[1] and after[1].sequence == 1 and after[2].session == before[2]
    lilei = next(r for r in sessions if r.session.pair_id == "aiko-lilei" and r.session.number == 1)
    assert lilei.sequence == 0  # not moved onto Aiko's other session
    daemon.run()
    maya = [r for r in daemon.rows() if r.recipient == "maya.okafor@example.org" and r.state is State.SENT and r.due > INVITATIONS_OUT]
    assert all(r.stage.info.kind is Kind.CANCELLATION for r in maya)  # nothing more but the cancellations
    moved = [r for r in daemon.rows() if r.pair_id == "jonas-priya" and r.stage is Stage.SESSION1_INVITATION and r.revision == 1]
    assert len(moved) == 2 and all(r.state is State.SENT for r in moved)  # both told
    # Released, the pairs are planned again.
    assert cli(cohort_dir, state, "release", "maya-zoe") == 0
    assert daemon.store.pending_requests()[0].kind is RequestKind.RELEASE


def edit_row(folder: Path, pair_id: str, column: str, value: str) -> None:
    path = folder / "pairings.example.csv"
    header, *rows = path.read_text(encoding="utf-8").splitlines(keepends=True)
    names = header.rstrip("\n").split(",")
    out = [header]
    for row in rows:
        cells = next(csv.reader([row]))
        if cells[0] == pair_id:
            cells[names.index(column)] = value
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="\n").writerow(cells)
            row = buffer.getvalue()
        out.append(row)
    path.write_text("".join(out), encoding="utf-8")


def test_a_vacation_over_a_booked_session_moves_it_and_both_are_told_why(cohort_dir, tmp_path):
    daemon = start(cohort_dir, tmp_path)
    daemon.run(until=INVITATIONS_OUT)
    first = next(r.session for r in daemon.store.sessions() if r.session.pair_id == "jonas-priya" and r.session.number == 1)
    day = first.start.astimezone(ZoneInfo("Europe/Berlin")).date()
    edit_row(cohort_dir, "jonas-priya", "mentor_blackout", f"{day}..{day + timedelta(days=2)}")
    daemon.tick()
    moved = next(r for r in daemon.store.sessions() if r.session.pair_id == "jonas-priya" and r.session.number == 1)
    assert moved.sequence == 1 and moved.previous_start == first.start
    assert not day <= moved.session.start.astimezone(ZoneInfo("Europe/Berlin")).date() <= day + timedelta(days=2)
    assert moved.change_reason.startswith("Jonas Weber is away on")
    daemon.run(until=moved.changed_at + timedelta(hours=1))
    mailer = daemon.controller.deps.mailer
    for email in ("jonas.weber@example.de", "priya.nair@example.in"):
        (notice,) = [
            m
            for m in mailer.to(email)
            if "session 1" in str(m["Subject"]).lower() and m["Date"] and "new time" in str(m["Subject"]).lower()
        ]
        assert "Jonas Weber is away on" in notice.get_body(preferencelist=("plain",)).get_content()
    # Nothing else of Jonas's moved.
    assert all(r.sequence == 0 for r in daemon.store.sessions() if r.session.pair_id == "jonas-sofia")


def test_a_new_time_zone_replans_rather_than_re_renders(cohort_dir, tmp_path):
    daemon = start(cohort_dir, tmp_path)
    daemon.run(until=INVITATIONS_OUT)
    before = {r.session.number: r.session for r in daemon.store.sessions() if r.session.pair_id == "lucas-amara"}
    edit_row(cohort_dir, "lucas-amara", "mentee_timezone", "Asia/Dubai")  # Amara moved from Lagos to Dubai
    daemon.tick()
    after = {r.session.number: r for r in daemon.store.sessions() if r.session.pair_id == "lucas-amara"}
    for number in (1, 2):
        assert after[number].session != before[number]
        assert after[number].change_reason.startswith("it falls outside Amara Diallo's hours")
        dubai = after[number].session.start.astimezone(ZoneInfo("Asia/Dubai"))
        sao_paulo = after[number].session.start.astimezone(ZoneInfo("America/Sao_Paulo"))
        assert 9 <= dubai.hour and (dubai + timedelta(hours=1)).hour <= 17 and 9 <= sao_paulo.hour < 17


def test_when_no_time_fits_any_more_the_coordinator_is_asked(cohort_dir, tmp_path):
    daemon = start(cohort_dir, tmp_path)
    daemon.run(until=INVITATIONS_OUT)
    config = cohort_dir / "cohort.example.yaml"  # hours are not stretched: Tokyo and Sao Paulo never meet inside them
    config.write_text(
        config.read_text(encoding="utf-8").replace("days: Mon-Fri\n", "days: Mon-Fri\n  stretch_minutes: 0\n"), encoding="utf-8"
    )
    edit_row(cohort_dir, "lucas-amara", "mentee_timezone", "Asia/Tokyo")  # no working hour in common with Sao Paulo
    daemon.tick()
    alerts = [a for a in daemon.store.alerts() if a.pair_id == "lucas-amara"]
    assert [a.session for a in alerts] == [1, 2]
    assert all("no other time fits both" in a.text and "Amara Diallo" in a.text for a in alerts)


def test_an_email_a_person_never_got_is_sent_again_on_request(cohort_dir, tmp_path, capsys):
    mailer = RecordingMailer()
    daemon = start(cohort_dir, tmp_path, mailer)
    daemon.run(until=INVITATIONS_OUT)
    state = tmp_path / "state.sqlite"
    welcome = next(r for r in daemon.rows() if r.stage is Stage.WELCOME and r.state is State.SENT)
    coming = next(r for r in daemon.rows() if r.state is State.PLANNED)
    capsys.readouterr()
    assert cli(cohort_dir, state, "resend", coming.ref) == 2  # not gone yet: nothing to send again
    assert f"{coming.ref} cannot be sent again: it is planned" in capsys.readouterr().err
    assert cli(cohort_dir, state, "resend", welcome.ref) == 0
    before = len(mailer.sent)
    daemon.tick()
    again = mailer.sent[before:]
    assert [m["To"].addresses[0].addr_spec for m in again] == [welcome.recipient]
    assert again[0]["Message-ID"] == welcome.message_id  # the same email: a mail program that has it shows it once
