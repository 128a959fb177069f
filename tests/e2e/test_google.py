"""The daemon on Google Workspace: the real googleapiclient and google-auth over HTTP to
the loopback fake of Google, on a simulated clock."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from service import bootstrap
from service.adapters.clock import SimulatedClock
from service.adapters.google.api import ENDPOINT_VARIABLE, Backoff
from service.adapters.store import open_store
from service.domain.budget import Budget
from service.domain.calendar import event_id
from service.domain.outbox import State
from service.domain.push import notify_address
from service.domain.requests import RequestKind
from service.runner import run_simulated
from service.usecases import Controller, Deps
from service.usecases.schedule import with_foreseen
from service.web.serve import make_site, serve
from tests.e2e.test_stop import wait_for
from tests.fakes.google import FakeGoogle, Fault
from tests.fakes.logs import capture

ROOT = Path(__file__).parents[2]
START = datetime(2027, 2, 1, tzinfo=UTC)
ORGANIZER = "renata.alves@example.org"
PAIRS = 14


@pytest.fixture
def google(monkeypatch):
    with FakeGoogle() as fake:
        monkeypatch.setenv(ENDPOINT_VARIABLE, fake.url)
        yield fake


def google_cohort(*, calendar_id: str = "primary", organizer: str = ORGANIZER, rebook_deleted: bool = False) -> str:
    """The example Google cohort file, its key in key.json beside it."""
    config = (ROOT / "config" / "cohort.google.example.yaml").read_text()
    config = config.replace("calendar_id: create", f"calendar_id: {calendar_id}")
    config = config.replace(f"organizer: {ORGANIZER}", f"organizer: {organizer}")
    config = config.replace("  # credentials: secrets/mentorship-key.json", "  credentials: key.json")
    config = config.replace("read_sent_mail: false", "read_sent_mail: true")
    return config.replace("rebook_deleted: false", f"rebook_deleted: {str(rebook_deleted).lower()}")


class World:
    """The example cohort on Google, with one daemon process over one state."""

    def __init__(
        self,
        google: FakeGoogle,
        folder: Path,
        *,
        rebook_deleted: bool = False,
        calendar_id: str = "primary",
        organizer: str = ORGANIZER,
        public_url: str | None = None,
    ):
        self.google = google
        if not folder.exists():
            shutil.copytree(ROOT / "config", folder)
        google.service_account_file(folder / "key.json")
        (folder / "cohort.yaml").write_text(google_cohort(calendar_id=calendar_id, organizer=organizer, rebook_deleted=rebook_deleted))
        self.clock = SimulatedClock(START)
        self.watcher = bootstrap.ConfigWatcher.start(folder / "cohort.yaml", None, self.clock)
        calendar, free_busy, mailer = bootstrap.google_adapters(self.watcher.configuration)
        quick = Backoff(attempts=6, sleep=lambda seconds: None)  # no real waiting in tests
        calendar.backoff = free_busy.backoff = mailer.backoff = quick
        calendar.clock = self.clock.now
        self.calendar, self.mailer = calendar, mailer
        self.cohort = self.watcher.configuration.cohort
        self.store = open_store(folder / "state.sqlite")
        self.log = capture()
        self.controller = Controller(
            Deps(
                store=self.store,
                mailer=mailer,
                source=self.watcher,
                calendar=calendar,
                free_busy=free_busy,
                budget=bootstrap.send_budget(self.watcher.configuration),
                watch=calendar if public_url else None,
                notify_address=notify_address(public_url),
            )
        )

    @property
    def lines(self) -> list[str]:
        return self.log.lines

    def tick(self):
        return self.controller.tick(self.clock.now())

    def run(self, until: datetime | None = None) -> None:
        run_simulated(self.controller, self.clock, until)

    def event(self, pair_id: str, number: int) -> dict:
        return self.google.event(ORGANIZER, event_id(self.cohort.name, pair_id, number))

    def session(self, pair_id: str, number: int):
        return next(r for r in self.store.sessions() if r.session.pair_id == pair_id and r.session.number == number)

    def delivered(self) -> Counter:
        return Counter(m["Message-ID"] for m in self.google.sent_mail())

    def to_first_email(self) -> None:
        """Tick on until the first email falls due (emails are written a week before), and go there."""
        while (due := self.store.next_due()) is None:
            self.clock.advance_to(self.tick())
        self.clock.advance_to(due)

    def schedule(self) -> list:
        """The emails written, and those foreseen (written a week before they are due)."""
        return with_foreseen(self.store, self.controller.inputs.cohort)

    def later(self, **delta) -> None:
        """Let time pass and run one tick then."""
        self.clock.advance_to(self.clock.now() + timedelta(**delta))
        self.tick()

    def attention(self) -> list[str]:
        return [item["summary"] for item in self.controller.attention(self.clock.now())]

    def states(self) -> Counter:
        return Counter(r.state for r in self.store.messages())


def test_every_pair_gets_two_meet_events_and_every_email_goes_out_once(google, tmp_path):
    world = World(google, tmp_path / "cohort")
    world.tick()
    for number in (1, 2):  # Maya and Zoë answer; nobody else does
        for email in ("maya.okafor@example.org", "zoe.nunez@example.net"):
            google.respond(ORGANIZER, event_id(world.cohort.name, "maya-zoe", number), email, "accepted")
    world.run()
    events = [e for e in google.events(ORGANIZER) if e.get("status") != "cancelled"]
    assert len(events) == 2 * PAIRS
    assert all(e.get("hangoutLink", "").startswith("https://meet.google.com/") for e in events)
    # No reminders of our own (they would pop up for the organiser only); nobody adds guests;
    # on the organiser's own calendar, sessions do not make them look busy.
    assert all(e["reminders"] == {"useDefault": True} for e in events)
    assert all(e["guestsCanInviteOthers"] is False and e["transparency"] == "transparent" for e in events)
    for event in events:
        invited = {email for email, kind in google.invitations(event["id"]) if kind == "invite"}
        assert invited == {a["email"] for a in event["attendees"]}
    rows = world.store.messages()
    # A reminder is written for whoever has not answered when it comes within the horizon:
    # Maya and Zoë had answered by then, so none was written for them. Everything went out.
    assert {r.state for r in rows} == {State.SENT}
    nudges = [r for r in rows if r.stage.endswith("_nudge")]
    assert len(rows) - len(nudges) == PAIRS * 7 * 2  # no invitation emails: Google sends those
    assert len(nudges) == PAIRS * 2 * 2 - 4  # a reminder to each person who never answered
    assert not [r for r in nudges if r.pair_id == "maya-zoe"]
    assert all(r.due == world.session(r.pair_id, int(r.stage[7])).session.start - timedelta(days=2) for r in nudges)
    delivered = world.delivered()
    assert len(delivered) == len(rows) and max(delivered.values()) == 1
    welcome = next(m for m in google.sent_mail() if m["To"].addresses[0].addr_spec == "zoe.nunez@example.net")
    assert world.event("maya-zoe", 1)["hangoutLink"] in welcome.get_body(("plain",)).get_content()


def test_a_declined_session_is_rebooked_and_both_are_told(google, tmp_path):
    world = World(google, tmp_path / "cohort")
    world.tick()  # books everything a month ahead
    before = world.session("grace-mateo", 2)
    google.respond(ORGANIZER, event_id(world.cohort.name, "grace-mateo", 2), "mateo.garcia@example.co", "declined")
    world.clock.advance_to(START + timedelta(hours=1))
    world.tick()
    after = world.session("grace-mateo", 2)
    assert after.session.start != before.session.start and after.rebooks == 1 and after.in_calendar
    event = world.event("grace-mateo", 2)
    assert event["start"]["dateTime"].startswith(after.session.start.strftime("%Y-%m-%dT%H:%M"))
    assert {a["responseStatus"] for a in event["attendees"]} == {"needsAction"}
    assert ("mateo.garcia@example.co", "update") in google.invitations(event["id"])
    world.run()
    updates = [m for m in google.sent_mail() if "Mateo García declined" in " ".join(m.get_body(("plain",)).get_content().split())]
    assert {m["To"].addresses[0].addr_spec for m in updates} == {"grace.liu@example.ca", "mateo.garcia@example.co"}


def test_an_event_moved_in_the_calendar_re_times_its_emails(google, tmp_path):
    world = World(google, tmp_path / "cohort")
    world.tick()
    old = world.session("noah-chloe", 2).session
    new_start = old.start + timedelta(days=1)
    google.move(ORGANIZER, event_id(world.cohort.name, "noah-chloe", 2), new_start, new_start + timedelta(hours=1))
    world.clock.advance_to(START + timedelta(hours=1))
    world.tick()
    moved = world.session("noah-chloe", 2)
    assert moved.session.start == new_start and moved.in_calendar  # nothing written back
    prep = [r for r in world.schedule() if r.pair_id == "noah-chloe" and r.stage == "session2_prep"]
    assert prep and all(r.due == new_start - timedelta(days=3) for r in prep)


def test_an_event_deleted_by_hand_is_reported_and_not_rebooked(google, tmp_path):
    world = World(google, tmp_path / "cohort")
    world.tick()
    google.delete_by_user(ORGANIZER, event_id(world.cohort.name, "lucas-amara", 1))
    world.clock.advance_to(START + timedelta(hours=1))
    world.tick()
    assert world.session("lucas-amara", 1).cancelled
    assert any("deleted in Google Calendar" in item["summary"] for item in world.controller.attention(world.clock.now()))
    assert {r.state for r in world.schedule() if r.pair_id == "lucas-amara"} <= {State.CANCELLED}  # nothing will go


def test_with_one_call_in_five_failing_the_outcome_is_the_same(google, tmp_path):
    calm = World(google, tmp_path / "calm")
    calm.run()
    expected_sessions = sorted((r.session.pair_id, r.session.number, r.session.start) for r in calm.store.sessions())
    expected_mail = sorted(m["Message-ID"] for m in google.sent_mail())

    with FakeGoogle() as stormy:
        import os

        os.environ[ENDPOINT_VARIABLE] = stormy.url
        world = World(stormy, tmp_path / "storm")
        chaos = stormy.chaos(rate=0.2, seed=7, kinds=("429", "500", "drop_before", "drop_after"))
        world.run()
        assert len(chaos.injected) > 50  # the storm really happened
        sessions = sorted((r.session.pair_id, r.session.number, r.session.start) for r in world.store.sessions())
        assert sessions == expected_sessions
        assert all(r.in_calendar for r in world.store.sessions())
        live = [e for e in stormy.events(ORGANIZER) if e.get("status") != "cancelled"]
        assert len(live) == 2 * PAIRS and all(e.get("hangoutLink") for e in live)
        assert {r.state for r in world.store.messages()} == {State.SENT}
        delivered = world.delivered()
        assert max(delivered.values()) == 1  # nothing twice
        assert sorted(delivered) == expected_mail  # nothing lost, the same emails


GRACE = "grace.liu@example.ca"  # of grace-mateo, whose calendar the organiser can read


def _free_busy_asks(google: FakeGoogle, email: str) -> int:
    """How many answers about this calendar carried the error it was given."""
    return 10_000 - len(google.calendar.free_busy_errors.get(email, []))


def test_a_pair_whose_free_busy_google_fails_for_waits_and_is_booked_around_it_once_it_answers(google, tmp_path):
    world = World(google, tmp_path / "cohort")
    google.set_busy(GRACE, [("2027-03-01T00:00:00Z", "2027-03-15T00:00:00Z")])  # away for two weeks
    google.fail_free_busy(GRACE, "internalError", times=6)  # every try of the first tick
    next_tick = world.tick()
    assert not [r for r in world.store.sessions() if r.session.pair_id == "grace-mateo"]  # not booked on guessed hours
    assert {r.session.pair_id for r in world.store.sessions()} == {p.id for p in world.cohort.pairs} - {"grace-mateo"}
    assert next_tick is not None and next_tick <= START + timedelta(minutes=5)  # Google is asked again soon
    assert not [a for a in world.attention() if "grace" in a]  # a moment's trouble is nobody's business yet
    world.later(minutes=5)
    booked = [r.session for r in world.store.sessions() if r.session.pair_id == "grace-mateo"]
    assert len(booked) == 2, world.attention()
    assert all(s.start >= datetime(2027, 3, 15, tzinfo=UTC) for s in booked)  # around her busy time
    assert not [a for a in world.attention() if "grace" in a]


def test_a_calendar_google_keeps_failing_for_falls_back_to_declared_hours_and_the_coordinator_is_told(google, tmp_path):
    world = World(google, tmp_path / "cohort")
    google.set_busy(GRACE, [])
    google.fail_free_busy(GRACE, "backendError", times=10_000)
    world.tick()
    world.later(minutes=30)
    assert not [r for r in world.store.sessions() if r.session.pair_id == "grace-mateo"]
    asked = _free_busy_asks(google, GRACE)
    assert asked >= 2 * 6  # each tick asked again
    world.later(minutes=31)  # over an hour: declared hours stand in
    assert len([r for r in world.store.sessions() if r.session.pair_id == "grace-mateo"]) == 2
    notes = [a for a in world.attention() if a.startswith("Booked on declared hours")]
    assert len(notes) == 1 and GRACE in notes[0] and "backendError" in notes[0], world.attention()
    asked = _free_busy_asks(google, GRACE)
    world.later(hours=1)
    assert _free_busy_asks(google, GRACE) == asked  # nobody waits for her calendar any more


def _check(tmp_path, capsys) -> tuple[int, str]:
    from service.cli import main

    code = main(["auth", "check", "--config", str(tmp_path / "cohort" / "cohort.yaml")])
    return code, capsys.readouterr().out


def test_auth_check_proves_each_step_of_the_chain(google, tmp_path, capsys):
    World(google, tmp_path / "cohort")  # writes the cohort and the key
    code, out = _check(tmp_path, capsys)
    assert code == 0, out
    for line in (
        "ok    token: from key.json, acting as renata.alves@example.org",
        "ok    scope calendar.events: granted",
        "ok    scope calendar.freebusy: granted",
        "ok    scope gmail.send: granted",
        "ok    scope gmail.readonly: granted",
        "ok    calendar write: a test event written and deleted on primary",
        "ok    free/busy: renata.alves@example.org's busy time can be read",
        "ok    gmail profile: the mailbox is renata.alves@example.org",
        "ok    gmail sent as written: found by its Message-ID, from renata.alves@example.org",
    ):
        assert line in out, out
    assert "ok    gmail test email: <" in out
    assert [e for e in google.events(ORGANIZER) if e.get("status") != "cancelled"] == []  # the test event is gone
    (test_email,) = google.sent_mail()
    assert test_email["To"].addresses[0].addr_spec == ORGANIZER and "Gmail works" in test_email["Subject"]


def test_auth_check_on_a_calendar_of_its_own_makes_and_deletes_a_test_calendar(google, tmp_path, capsys):
    World(google, tmp_path / "cohort", calendar_id="create")
    code, out = _check(tmp_path, capsys)
    assert code == 0, out
    assert "ok    scope calendar.app.created: granted" in out and "ok    scope calendar.acls: granted" in out
    assert "ok    scope calendar.calendarlist.readonly: granted" in out
    assert "ok    calendar write: a test event written and deleted on a test calendar (made and deleted)" in out
    assert google.api_calls("calendar.calendars.insert") == google.api_calls("calendar.calendars.delete") == 1


def test_auth_check_fails_clearly_when_the_gmail_api_is_not_enabled(google, tmp_path, capsys):
    World(google, tmp_path / "cohort")
    google.add_fault(Fault(method="gmail.*", status=403, reason="accessNotConfigured"))
    code, out = _check(tmp_path, capsys)
    assert code == 2, out
    assert "ok    calendar write" in out
    failed = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert any(line.startswith("FAIL  gmail test email: 403 accessNotConfigured: the API is not enabled") for line in failed), out
    assert "Traceback" not in out


def test_auth_check_names_a_scope_the_delegation_lacks_and_a_token_it_cannot_get(google, tmp_path, capsys):
    World(google, tmp_path / "cohort")
    granted = [
        "https://www.googleapis.com/auth/calendar.events",
        "https://www.googleapis.com/auth/calendar.freebusy",
        "https://www.googleapis.com/auth/gmail.send",
    ]
    google.service_account_file(tmp_path / "cohort" / "key.json", delegated_scopes=granted)
    code, out = _check(tmp_path, capsys)
    assert code == 2
    # Google refuses any token that asks for a scope the delegation lacks: the first line says so.
    assert out.startswith("FAIL  token: Google refused a token"), out
    assert "ok    scope gmail.send: granted" in out and "FAIL  scope gmail.readonly: Google refused a token" in out, out
    # Granted after all: each scope is then shown granted.
    google.service_account_file(tmp_path / "cohort" / "key.json")
    code, out = _check(tmp_path, capsys)
    assert code == 0 and "ok    scope gmail.readonly: granted" in out, out
    # A key whose token server cannot be reached: the check says where it fails.
    key = tmp_path / "cohort" / "key.json"
    key.write_text(key.read_text().replace(google.url, "http://127.0.0.1:9"))
    code, out = _check(tmp_path, capsys)
    assert code == 2 and out.startswith("FAIL  token: cannot reach Google's token service"), out


def test_a_run_logs_json_events_and_never_the_private_key(google, tmp_path, capsys):
    from service.cli import main

    World(google, tmp_path / "cohort")  # writes the cohort and the key
    key = json.loads((tmp_path / "cohort" / "key.json").read_text())
    config = str(tmp_path / "cohort" / "cohort.yaml")
    code = main(["run", "--config", config, "--state", str(tmp_path / "state.sqlite"), "--simulate", "--log-format", "json"])
    assert code == 0
    out = capsys.readouterr().out
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    names = {e["event"] for e in events}
    assert {"pair_booked", "event_written", "message_sent"} <= names, names
    sent = next(e for e in events if e["event"] == "message_sent")
    assert {"at", "pair", "stage", "recipient", "state", "attempt"} <= sent.keys()
    assert sent["state"] == "sent"
    # Not the key, not a line of it, not its id.
    secret_lines = [line for line in key["private_key"].splitlines() if len(line) > 20]
    assert secret_lines
    for secret in [*secret_lines, key["private_key_id"]]:
        assert secret not in out


def test_a_key_file_that_is_not_one_is_named_not_quoted(google, tmp_path, capsys):
    from service.cli import main

    World(google, tmp_path / "cohort")
    (tmp_path / "cohort" / "key.json").write_text("not a key: CANARY-7f3a\n")
    config = str(tmp_path / "cohort" / "cohort.yaml")
    assert main(["run", "--config", config, "--state", str(tmp_path / "state.sqlite"), "--simulate"]) == 2
    err = capsys.readouterr().err
    assert "google.credentials: key.json is not a service-account key or a token file from Google" in err
    assert "CANARY" not in err and "Traceback" not in err


# --------------------------------------------------------------------------- failures of a first real run


@pytest.mark.parametrize("fault", ["refused", "unreachable"])
def test_a_token_that_cannot_be_refreshed_strands_nothing_and_the_coordinator_is_told(google, tmp_path, fault):
    world = World(google, tmp_path / "cohort")
    if fault == "refused":  # delegation not granted yet, say
        token_fault = Fault(method="oauth2.token", status=401, reason="unauthorized_client", message="Client is unauthorized")
    else:
        token_fault = Fault(method="oauth2.token", drop_before=True)
    google.add_fault(token_fault)
    world.tick()
    assert set(world.states()) == {State.PLANNED}  # nothing sending, failed or uncertain
    assert not any(r.in_calendar for r in world.store.sessions())
    alerts = world.attention()
    assert any(a.startswith("Email cannot go out") for a in alerts), alerts
    if fault == "refused":
        assert any(a.startswith("Google Calendar cannot be written") and "delegation" in a for a in alerts), alerts
    # A token that expires mid-run and cannot be renewed: the same.
    google.remove_fault(token_fault)
    world.later(minutes=10)
    assert all(r.in_calendar for r in world.store.sessions())
    google.expire_tokens()
    google.add_fault(token_fault)
    world.later(days=1)
    assert State.SENDING not in world.states() and State.UNCERTAIN not in world.states() and State.FAILED not in world.states()
    google.remove_fault(token_fault)
    world.run()
    assert not [a for a in world.attention() if "cannot" in a]
    assert set(world.states()) <= {State.SENT, State.CANCELLED}
    assert max(world.delivered().values()) == 1


def test_a_session_google_refuses_is_shown_once_and_not_retried_until_it_changes(google, tmp_path):
    world = World(google, tmp_path / "cohort")
    target = event_id(world.cohort.name, "lucas-amara", 1)
    google.add_fault(
        Fault(
            method="calendar.events.insert",
            status=400,
            reason="invalid",
            message="Invalid attendee email.",
            when=lambda c: (c.body or {}).get("id") == target,
        )
    )
    world.tick()
    world.later(hours=1)
    world.later(hours=1)
    inserts = [r for r in google.requests if r.method_id == "calendar.events.insert" and r.status == 400]
    assert len(inserts) == 1  # once, not every tick
    alerts = [a for a in world.attention() if "refused session 1" in a]
    assert len(alerts) == 1 and "Invalid attendee email" in alerts[0], world.attention()
    assert not world.session("lucas-amara", 1).in_calendar
    # What Google refused changes (here: the same request, once the daemon restarts and
    # asks anew): it is tried again, and the note goes once it is written.
    google.clear_faults()
    world.calendar._refused.clear()
    world.later(hours=1)
    assert world.session("lucas-amara", 1).in_calendar
    assert not [a for a in world.attention() if "refused" in a]


def test_calendar_usage_limits_pause_writing_and_tell_the_coordinator(google, tmp_path):
    world = World(google, tmp_path / "cohort")
    limit = google.add_fault(
        Fault(method="calendar.events.insert", status=403, reason="quotaExceeded", message="Calendar usage limits exceeded.")
    )
    world.tick()
    tried = limit.fired
    assert tried >= 1
    assert any("usage limits exceeded" in a for a in world.attention()), world.attention()
    world.later(minutes=30)
    world.later(minutes=30)
    assert limit.fired == tried  # read-only for hours: not hammered
    google.clear_faults()
    world.later(hours=2)
    assert all(r.in_calendar for r in world.store.sessions())
    assert not any("usage limits" in a for a in world.attention())


def test_a_meet_link_that_failed_is_requested_again_with_a_new_request_id(google, tmp_path):
    world = World(google, tmp_path / "cohort")
    target = event_id(world.cohort.name, "maya-zoe", 1)
    google.fail_meet(target)
    world.tick()
    google.settle_meet()
    failed = google.event(ORGANIZER, target)
    assert failed["conferenceData"]["createRequest"]["status"]["statusCode"] == "failure"
    world.later(minutes=10)  # the change feed shows the failure: asked again
    world.later(minutes=10)
    event = google.event(ORGANIZER, target)
    assert event["hangoutLink"].startswith("https://meet.google.com/")
    assert event["conferenceData"]["createRequest"]["requestId"] != target
    assert world.session("maya-zoe", 1).meet_link == event["hangoutLink"]


@pytest.mark.parametrize(
    ("status", "reason"), [(403, "accessNotConfigured"), (400, "failedPrecondition")], ids=["api-not-enabled", "no-gmail-licence"]
)
def test_gmail_not_usable_keeps_the_emails_planned_and_says_what_to_do(google, tmp_path, status, reason):
    world = World(google, tmp_path / "cohort")
    google.add_fault(Fault(method="gmail.users.messages.send", status=status, reason=reason))
    world.tick()
    world.to_first_email()
    world.tick()
    world.later(hours=1)
    assert State.FAILED not in world.states() and State.UNCERTAIN not in world.states()
    assert world.states()[State.PLANNED] > 0
    alerts = [a for a in world.attention() if a.startswith("Email cannot go out")]
    assert len(alerts) == 1 and reason in alerts[0], world.attention()
    google.clear_faults()
    world.run()
    assert set(world.states()) <= {State.SENT, State.CANCELLED}


def test_a_gateway_error_after_gmail_took_the_email_is_checked_not_resent(google, tmp_path):
    world = World(google, tmp_path / "cohort")
    google.add_fault(Fault(method="gmail.users.messages.send", status=504, reason="backendError", processed=True, times=1))
    world.run()
    assert set(world.states()) <= {State.SENT, State.CANCELLED}
    assert max(world.delivered().values()) == 1  # not twice
    assert any("confirmed" in line and "went out before" in line for line in world.lines)


def test_gmail_rate_limit_waits_until_the_time_in_the_error_body(google, tmp_path):
    world = World(google, tmp_path / "cohort")
    free_at = START + timedelta(hours=5)
    google.add_fault(
        Fault(
            method="gmail.users.messages.send",
            status=429,
            reason="rateLimitExceeded",
            message=f"User-rate limit exceeded.  Retry after {free_at:%Y-%m-%dT%H:%M:%S}.000Z",
        )
    )
    world.tick()
    world.to_first_email()
    next_tick = world.tick()
    assert next_tick is not None and next_tick >= free_at  # the daemon sleeps until Gmail takes mail again
    assert google.api_calls("gmail.users.messages.send") == 1  # one try, not one per email
    waiting = [r for r in world.store.messages() if r.last_error and "rate limited" in r.last_error]
    assert len(waiting) == 1 and waiting[0].state is State.PLANNED and waiting[0].attempts == 1
    assert world.store.next_due() >= free_at


def test_a_daily_sending_limit_is_kept_to_and_nothing_fails(google, tmp_path):
    world = World(google, tmp_path / "cohort")
    google.clock = google.gmail.clock = world.clock.now
    google.limit_sending(20)  # Gmail refuses the 21st message in 24 hours
    world.controller.deps.budget = Budget(per_day=20, recipients_per_day=30)
    world.run()
    assert set(world.states()) <= {State.SENT, State.CANCELLED}
    assert max(world.delivered().values()) == 1
    assert not [r for r in google.requests if r.method_id == "gmail.users.messages.send" and r.status != 200]  # never over
    times = sorted(t for box in google.gmail.sent_at.values() for t in box)
    assert all(len([u for u in times if t <= u < t + timedelta(hours=24)]) <= 20 for t in times)
    assert any("the day's sending allowance is used" in line for line in world.lines)


def test_an_exceeded_daily_limit_waits_for_the_reset_and_nothing_fails(google, tmp_path):
    world = World(google, tmp_path / "cohort")
    google.clock = google.gmail.clock = world.clock.now
    google.limit_sending(20)  # the coordinator's own mail used the rest: our budget does not know
    world.run()
    assert set(world.states()) <= {State.SENT, State.CANCELLED}
    assert max(world.delivered().values()) == 1
    refused = [r for r in google.requests if r.method_id == "gmail.users.messages.send" and r.status == 429]
    assert refused and len(refused) < 20  # one probe per reset, not a hammering


def test_a_send_cut_short_and_then_trashed_is_still_found(google, tmp_path):
    world = World(google, tmp_path / "cohort")
    google.add_fault(Fault(method="gmail.users.messages.send", drop_after=True, times=1))
    world.tick()
    world.to_first_email()
    world.tick()
    checking = [r for r in world.store.messages() if r.verify]
    assert len(checking) == 1
    google.trash(checking[0].message_id)  # someone tidied the Sent folder
    world.later(minutes=15)
    row = next(r for r in world.store.messages() if r.key == checking[0].key)
    assert row.state is State.SENT
    assert world.delivered()[checking[0].message_id] == 1


def test_the_cohort_gets_a_calendar_of_its_own_shared_with_the_coordinator(google, tmp_path):
    bot = "mentoring.bot@example.org"  # the service account acts as this user, not the coordinator
    google.add_calendar(bot)
    world = World(google, tmp_path / "cohort", calendar_id="create", organizer=bot)
    world.tick()
    made = world.store.calendar_id()
    assert made and made.endswith("@group.calendar.google.com")
    info = google.calendar_info(made)
    assert info["summary"] == f"Mentorship: {world.cohort.name}" and info["owner"] == bot
    assert info["acl"][ORGANIZER] == "writer"  # the coordinator sees and can fix the sessions
    live = [e for e in google.events(made) if e.get("status") != "cancelled"]
    assert len(live) == 2 * PAIRS and all(e["organizer"]["email"] == made for e in live)
    assert all("transparency" not in e for e in live)  # on a calendar of its own, sessions count as busy for the attendees
    assert google.events(bot) == [] and google.events(ORGANIZER) == []
    # The daemon starts again on the same state: the same calendar, no second one.
    world.store.close()
    again = World(google, tmp_path / "cohort", calendar_id="create", organizer=bot)
    again.later(hours=1)
    assert again.store.calendar_id() == made
    assert google.api_calls("calendar.calendars.insert") == 1
    assert [r.method_id for r in google.requests if r.method_id.startswith("calendar.events.list")]
    assert all(
        r.path.startswith(f"/calendar/v3/calendars/{made.replace('@', '%40')}")
        for r in google.requests
        if r.method_id == "calendar.events.list"
    )


def test_a_calendar_made_just_before_a_crash_is_taken_up_again_not_made_twice(google, tmp_path):
    bot = "mentoring.bot@example.org"
    google.add_calendar(bot)
    world = World(google, tmp_path / "cohort", calendar_id="create", organizer=bot)

    def crash(calendar_id: str) -> None:
        raise SystemExit("killed before the calendar's id was kept")

    world.store.set_calendar_id = crash  # type: ignore[method-assign]
    with pytest.raises(SystemExit):
        world.tick()
    assert google.api_calls("calendar.calendars.insert") == 1 and world.store.calendar_id() is None
    world.store.close()
    again = World(google, tmp_path / "cohort", calendar_id="create", organizer=bot)
    again.tick()
    made = again.store.calendar_id()
    assert made and google.api_calls("calendar.calendars.insert") == 1  # the one made before, not a second
    assert google.calendar_info(made)["acl"][ORGANIZER] == "writer"
    live = [e for e in google.events(made) if e.get("status") != "cancelled"]
    assert len(live) == 2 * PAIRS


# Push: Google posts notices of changes to the service's public HTTPS address.

PUBLIC = "https://mentors.example.org"


class PushedWorld(World):
    """The cohort with its web pages served on loopback: Google's notices for the public
    address are routed there by the fake (tests cannot serve HTTPS). The fake's calendar
    runs on the simulated clock, so that channels expire in simulated time."""

    def __init__(self, google: FakeGoogle, folder: Path):
        super().__init__(google, folder, public_url=PUBLIC)
        google.clock = google.calendar.clock = self.clock.now
        site = make_site(
            self.store,
            self.clock,
            lambda: self.controller.inputs,  # type: ignore[arg-type,return-value]  # set by the first tick
            lambda: self.watcher.given,
            poll=timedelta(minutes=5),
            public_url=PUBLIC,
        )
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.web = serve(site, f"127.0.0.1:{port}")
        self.local = f"http://127.0.0.1:{port}"
        google.route_notices(PUBLIC, self.local)

    def reads(self) -> int:
        return self.google.api_calls("calendar.events.list")

    def settle(self) -> None:
        """Tick until Google has nothing more to say: notices of the service's own writes,
        then of the Meet links it made."""
        for _ in range(5):
            self.google.deliver_notices()
            if not self.store.pending_requests():
                return
            self.later(minutes=1)
        raise AssertionError("the notices do not settle")

    def notify(self, headers: dict[str, str]) -> int:
        """A notice posted by someone other than Google's fake."""
        request = urllib.request.Request(self.local + "/calendar/notify", data=b"", headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code


@pytest.fixture
def pushed(google, tmp_path):
    world = PushedWorld(google, tmp_path / "cohort")
    yield world
    world.web.stop()


def test_with_push_a_decline_is_read_when_google_says_so_and_rebooked(google, pushed):
    world = pushed
    world.tick()  # books everything and opens the channel
    [channel] = google.channels()
    assert channel["address"] == PUBLIC + "/calendar/notify" and world.store.calendar_channel().id == channel["id"]
    world.settle()
    quiet = world.reads()
    for _ in range(12):  # an hour of ticks with nothing changing: the calendar is not read
        world.later(minutes=5)
    assert world.reads() == quiet
    before = world.session("grace-mateo", 2)
    google.respond(ORGANIZER, event_id(world.cohort.name, "grace-mateo", 2), "mateo.garcia@example.co", "declined")
    google.deliver_notices()
    assert google.notices()[-1].status == 200 and google.notices()[-1].state == "exists"
    assert [q.kind for q in world.store.pending_requests()] == [RequestKind.CALENDAR_CHANGED]
    world.later(minutes=1)
    assert world.reads() == quiet + 1
    after = world.session("grace-mateo", 2)
    assert after.session.start != before.session.start and after.rebooks == 1 and after.in_calendar
    event = world.event("grace-mateo", 2)
    assert ("mateo.garcia@example.co", "update") in google.invitations(event["id"])
    world.run()
    updates = [m for m in google.sent_mail() if "Mateo García declined" in " ".join(m.get_body(("plain",)).get_content().split())]
    assert {m["To"].addresses[0].addr_spec for m in updates} == {"grace.liu@example.ca", "mateo.garcia@example.co"}


def test_a_notice_with_a_forged_token_or_an_unknown_channel_is_refused(google, pushed):
    world = pushed
    world.tick()
    world.settle()
    channel = world.store.calendar_channel()
    assert channel is not None and not world.store.pending_requests()
    notice = {"X-Goog-Channel-ID": channel.id, "X-Goog-Resource-ID": channel.resource_id, "X-Goog-Resource-State": "exists"}
    assert world.notify({**notice, "X-Goog-Channel-Token": "guessed"}) == 403
    assert world.notify(notice) == 403  # no token at all
    assert world.notify({**notice, "X-Goog-Channel-ID": "another", "X-Goog-Channel-Token": channel.token}) == 404
    assert not world.store.pending_requests()
    assert world.notify({**notice, "X-Goog-Channel-Token": channel.token, "X-Goog-Resource-State": "sync"}) == 200
    assert not world.store.pending_requests()  # a channel opening says nothing changed
    for _ in range(3):  # one request at a time, however many notices
        assert world.notify({**notice, "X-Goog-Channel-Token": channel.token}) == 200
    assert [q.kind for q in world.store.pending_requests()] == [RequestKind.CALENDAR_CHANGED]


def test_the_channel_is_renewed_a_day_before_it_expires_and_the_old_one_stopped(google, pushed):
    world = pushed
    world.tick()
    first = world.store.calendar_channel()
    assert first is not None and first.expires == START + timedelta(days=7)
    world.later(days=5, hours=23)
    assert world.store.calendar_channel() == first and google.api_calls("calendar.events.watch") == 1
    world.later(hours=1, minutes=1)  # less than a day left
    second = world.store.calendar_channel()
    assert second is not None and second.id != first.id and second.token != first.token
    assert second.expires == world.clock.now() + timedelta(days=7)
    assert [c["id"] for c in google.channels()] == [second.id]  # the old one was stopped
    assert google.api_calls("calendar.channels.stop") == 1
    google.respond(ORGANIZER, event_id(world.cohort.name, "grace-mateo", 2), "mateo.garcia@example.co", "accepted")
    google.deliver_notices()
    assert google.notices()[-1][:2] == (second.id, "exists") and google.notices()[-1].status == 200
    stale = {"X-Goog-Channel-ID": first.id, "X-Goog-Channel-Token": first.token, "X-Goog-Resource-State": "exists"}
    assert world.notify(stale) == 404


def test_a_channel_opened_just_before_a_crash_is_stopped_not_left_posting(google, pushed, monkeypatch):
    world = pushed
    world.tick()
    first = world.store.calendar_channel()
    world.clock.advance_to(first.expires - timedelta(hours=12))  # time to renew

    def crash(channel):
        raise RuntimeError("the process died here")

    with monkeypatch.context() as patched:  # Google opens the new channel; its answer is never kept
        patched.setattr(world.store, "set_calendar_channel", crash)
        with pytest.raises(RuntimeError):
            world.tick()
    assert len(google.channels()) == 2 and len(world.store.opening_channels()) == 1
    world.tick()  # as after a restart
    kept = world.store.calendar_channel()
    assert kept.id not in {first.id, *(c.id for c in world.store.opening_channels())}
    assert [c["id"] for c in google.channels()] == [kept.id]  # the lost one and the old one stopped
    assert world.store.opening_channels() == []


def test_under_cohorts_each_cohort_is_pushed_to_its_own_address_and_a_decline_is_read_at_once(google, tmp_path):
    """`run --cohorts DIR --http` at a public HTTPS address: each cohort opens its channel
    on its pages' address under /cohorts/NAME, and a notice there makes the replica read
    the calendar and rebook (real clock, a real process)."""
    folder = tmp_path / "cohorts"
    shutil.copytree(ROOT / "config", folder)
    for example in folder.glob("*.yaml"):
        example.unlink()
    google.service_account_file(folder / "key.json")
    (folder / "spring.yaml").write_text(google_cohort() + f"\nhttp:\n  public_url: {PUBLIC}\n")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    google.route_notices(PUBLIC, f"http://127.0.0.1:{port}")
    log = tmp_path / "daemon.log"
    command = [sys.executable, "-m", "service", "run", "--cohorts", str(folder), "--state", str(tmp_path / "state")]
    command += ["--http", f"127.0.0.1:{port}", "--outbox", str(tmp_path / "out")]
    with open(log, "wb") as out:
        daemon = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, ENDPOINT_VARIABLE: google.url})
    try:
        wait_for(lambda: google.channels(), "a push channel opened", daemon, log)
        [channel] = google.channels()
        assert channel["address"] == PUBLIC + "/cohorts/spring/calendar/notify"
        the_event = event_id("Spring 2027 Engineering Mentorship", "grace-mateo", 2)
        wait_for(lambda: google.api_calls("calendar.events.insert") >= 2 * PAIRS, "every session in the calendar", daemon, log)
        before = google.event(ORGANIZER, the_event)
        google.respond(ORGANIZER, the_event, "mateo.garcia@example.co", "declined")
        google.deliver_notices()
        assert google.notices()[-1][:2] == (channel["id"], "exists") and google.notices()[-1].status == 200
        moved = lambda: google.event(ORGANIZER, the_event)["start"] != before["start"]  # noqa: E731
        wait_for(moved, "the declined session rebooked", daemon, log)
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
