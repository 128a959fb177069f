"""The pages in a real Chromium (Debian's, driven by Playwright), served by a real
`mentorship run --simulate --http` process, with links taken from the emails it wrote."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from service.adapters.clock import SimulatedClock
from service.web.serve import serve
from tests.browser.harness import INVITATIONS_OUT, PUBLIC, ROOT, START, WebDaemon, cohort_folder, session_link, text_of

CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "out" / "screenshots"
PASSWORD = "a long enough password"
WIDTHS = {"wide": 1280, "narrow": 390}
AFTER_SESSION_1 = datetime(2027, 3, 2, tzinfo=UTC)  # Zoë and Maya met on 1 March, or did they?
MET_LINK = re.compile(r"(https?://\S+/met/[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    def __init__(self, tmp: Path, until: datetime = INVITATIONS_OUT):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.folder = cohort_folder(tmp, public_url=self.base)
        self.config = self.folder / "cohort.example.yaml"
        self.state, self.outbox = tmp / "state.sqlite", tmp / "outbox"
        self.log = open(tmp / "daemon.log", "w+", encoding="utf-8")  # closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "service", "run", "--config", str(self.config), "--state", str(self.state), "--simulate",
             "--now", START.isoformat(), "--until", until.isoformat(), "--outbox", str(self.outbox),
             "--http", f"127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=tmp, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        self.wait_for("The dashboard is at")

    def wait_for(self, text: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while text not in Path(self.log.name).read_text(encoding="utf-8"):
            assert self.process.poll() is None, Path(self.log.name).read_text(encoding="utf-8")
            assert time.monotonic() < deadline, f"no {text!r} from the daemon"
            time.sleep(0.2)

    def emails(self) -> list:
        return [BytesParser(policy=policy.default).parsebytes(p.read_bytes()) for p in sorted(self.outbox.rglob("*.eml"))]

    def invitation(self, address: str, number: int):
        return next(
            m for m in self.emails() if address in str(m["To"]) and str(m["Subject"]).startswith(f"Invitation: mentorship session {number}")
        )

    def set_password(self) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "service", "set-password", "--config", str(self.config), "--state", str(self.state)],
            input=PASSWORD + "\n", capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=30)
        self.log.close()
        return code


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    running = Served(tmp_path_factory.mktemp("served"))
    running.set_password()
    yield running
    if running.process.poll() is None:
        running.stop()


@pytest.fixture(scope="module")
def served_after_session_1(tmp_path_factory):
    """Another program, run until the day after the first sessions: the follow-ups went out."""
    running = Served(tmp_path_factory.mktemp("later"), until=AFTER_SESSION_1)
    yield running
    if running.process.poll() is None:
        running.stop()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser):
    context = browser.new_context(viewport={"width": WIDTHS["wide"], "height": 900})
    yield context.new_page()
    context.close()


def shoot(page: Page, name: str) -> None:
    """The page at both widths, whole, into out/screenshots/."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for label, width in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= width, f"{name} scrolls sideways at {label} width"
    page.set_viewport_size({"width": WIDTHS["wide"], "height": 900})


def until_shown(page: Page, url: str, text: str, timeout: float = 30) -> None:
    """Reload until the daemon has applied what was asked (it looks every two seconds)."""
    deadline = time.monotonic() + timeout
    while text not in page.content():
        assert time.monotonic() < deadline, f"{text!r} never appeared"
        time.sleep(0.5)
        page.goto(url)


def test_a_participant_moves_a_session_from_a_real_email(served, page):
    email = served.invitation("zoe.nunez@example.net", 1)
    link = session_link(email)
    assert link.startswith(served.base + "/session/")
    page.goto(link)
    expect(page.get_by_role("heading", level=1)).to_have_text("Can't make session 1?")
    options = page.locator("button.option")
    assert options.count() >= 5
    shoot(page, "reschedule")
    chosen = options.nth(1).locator("b").inner_text()
    before = len(served.emails())
    options.nth(1).click()
    # Queued; the daemon looks every two seconds and may have moved it by the time the page shows.
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile("Moving your session|This session has changed"))
    until_shown(page, link, "This session has changed")  # the link, used, now says where the session went
    assert chosen in page.content()
    deadline = time.monotonic() + 30
    while len(served.emails()) < before + 2:
        assert time.monotonic() < deadline, "the new invitations never went out"
        time.sleep(0.5)
    told = served.emails()[before:]
    assert {str(m["To"]).split("<")[-1].rstrip(">") for m in told} == {"zoe.nunez@example.net", "maya.okafor@example.org"}
    assert all("Zoë asked for another time" in text_of(m) for m in told)
    # The newest email's link works for the new time.
    page.goto(session_link(next(m for m in told if "zoe" in str(m["To"]))))
    expect(page.get_by_role("heading", level=1)).to_have_text("Can't make session 1?")
    assert chosen in page.locator(".session strong").inner_text()


def test_did_you_meet_no_and_the_session_is_booked_again(served_after_session_1, page):
    served = served_after_session_1
    followups = [m for m in served.emails() if "zoe.nunez@example.net" in str(m["To"]) and MET_LINK.search(text_of(m))]
    assert followups, "no Did you meet? link in Zoë's emails after session 1"
    link = MET_LINK.search(text_of(followups[-1])).group(1)
    page.goto(link)
    expect(page.get_by_role("heading", level=1)).to_have_text("Did you meet?")
    shoot(page, "did-you-meet")
    page.get_by_role("button", name="No, it did not happen").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile("Thank you, Zoë|Session 1 did not take place"))
    until_shown(page, link, "Choose a new time")
    page.get_by_role("link", name="Choose a new time").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Book session 1 again")
    assert page.locator("button.option").count() >= 1
    shoot(page, "book-again")
    before = {m["Message-ID"] for m in served.emails()}
    page.locator("button.option").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile("Moving your session|This session has changed"))
    deadline = time.monotonic() + 30
    while not any("has a new time" in str(m["Subject"]) for m in served.emails() if m["Message-ID"] not in before):
        assert time.monotonic() < deadline, "the new invitations never went out"
        time.sleep(0.5)


def test_withdrawing_asks_for_a_confirmation_first(served, page):
    link = session_link(served.invitation("daniel.kim@example.com", 2))
    page.goto(link)
    page.get_by_role("link", name="I need to withdraw from the program").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Withdraw from the program?")
    page.get_by_role("link", name="No, take me back").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Can't make session 2?")
    page.get_by_role("link", name="I need to withdraw from the program").click()
    page.get_by_role("button", name="Yes, withdraw me").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile("Withdrawing|You have left the program"))
    until_shown(page, link, "You have left the program")


def test_a_stale_or_altered_link_shows_a_friendly_page(served, page):
    link = session_link(served.invitation("priya.nair@example.in", 1))
    response = page.goto(link[:-3] + ("abc" if not link.endswith("abc") else "xyz"))
    assert response.status == 403
    expect(page.get_by_role("heading", level=1)).to_have_text("This link does not work")
    # Zoë's first link was used up by the move above.
    old = session_link(served.invitation("zoe.nunez@example.net", 1))
    assert page.goto(old).status == 410
    expect(page.get_by_role("heading", level=1)).to_have_text("This session has changed")


def test_a_form_whose_csrf_token_was_changed_does_nothing(served, page):
    link = session_link(served.invitation("sofia.rossi@example.it", 1))
    page.goto(link)
    page.locator("input[name=csrf]").first.evaluate("input => input.value = 'forged'")
    with page.expect_response(re.compile(r".*/move$")) as answer:
        page.locator("button.option").first.click()
    assert answer.value.status == 403
    expect(page.get_by_role("heading", level=1)).to_have_text("Please try that again")
    page.goto(link)
    expect(page.get_by_role("heading", level=1)).to_have_text("Can't make session 1?")  # nothing was asked


def test_the_coordinator_signs_in_filters_and_opens_a_pair(served, page):
    page.goto(served.base + "/pairs")
    expect(page.get_by_role("heading", level=1)).to_have_text("Coordinator sign-in")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("That password is not right.")).to_be_visible()
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(served.base + "/pairs")  # back where the coordinator was going
    page.get_by_role("searchbox", name="Search").fill("maya")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(2)
    page.get_by_role("link", name="maya-zoe").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("maya-zoe")
    assert "Zoë Ñúñez" in page.content() and "EST" in page.content() and "CST" in page.content()
    shoot(page, "pair")
    page.goto(served.base + "/")
    expect(page.get_by_text("pairs booked")).to_be_visible()
    assert page.locator("svg.chart rect").count() > 0
    shoot(page, "overview")
    page.goto(served.base + "/pairs")
    shoot(page, "pairs")


def test_sigterm_stops_the_daemon_and_its_pages(served):
    assert served.stop() == 0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", served.port), timeout=2).close()


def test_goals_written_after_session_1_are_quoted_in_later_emails(prepared, tmp_path, page):
    """In-process daemon on a simulated clock, its pages on a real port, a real browser."""
    folder, moment, sent = prepared
    shutil.copytree(folder / "cohort", tmp_path / "cohort")
    shutil.copy(folder / "state.sqlite", tmp_path / "state.sqlite")
    port = free_port()
    config = tmp_path / "cohort" / "cohort.example.yaml"
    config.write_text(config.read_text(encoding="utf-8").replace(PUBLIC, f"http://127.0.0.1:{port}"), encoding="utf-8")
    daemon = WebDaemon(tmp_path / "cohort", tmp_path / "state.sqlite", SimulatedClock(moment))
    server = serve(daemon.site, f"127.0.0.1:{port}")
    try:
        daemon.run(until=datetime(2027, 3, 2, tzinfo=UTC))  # Maya and Zoë's first session, and its follow-up
        followup = next(m for m in daemon.emails_to("zoe.nunez@example.net") if "goals" in text_of(m) and "/goals/" in text_of(m))
        link = re.search(r"(http://\S+/goals/\S+)", text_of(followup)).group(1)
        page.goto(link)
        expect(page.get_by_role("heading", level=1)).to_have_text("Your goals and homework")
        page.get_by_label("Goals").fill("Give a ten-minute talk to my team by the end of April.\nLead one code review a week.")
        page.get_by_label("Homework before session 2").fill("Draft the talk's outline.")
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_text("Saved.")).to_be_visible()
        daemon.tick()  # the daemon keeps them
        page.goto(link)
        expect(page.get_by_label("Goals")).to_have_value(
            "Give a ten-minute talk to my team by the end of April.\nLead one code review a week."
        )
        daemon.run(until=datetime(2027, 4, 30, tzinfo=UTC))  # on to the second session's prep email
        prep = next(m for m in daemon.emails_to("maya.okafor@example.org") if str(m["Subject"]) == "Session 2 with Zoë: finishing well")
        quoted = text_of(prep)
        assert "In March, you and Zoë wrote down these goals:" in quoted
        assert "Give a ten-minute talk to my team by the end of April." in quoted and "Draft the talk's outline." in quoted
        html = prep.get_body(("html",)).get_content()
        assert "Lead one code review a week." in html
        checkin = [m for m in daemon.emails_to("zoe.nunez@example.net") if "homework" in str(m["Subject"]).lower()]
        assert checkin and "Draft the talk's outline." in text_of(checkin[-1])  # the check-in quotes it too
        # Another pair's emails say nothing of them.
        others = [m for m in daemon.mailer.sent if "priya" in str(m["To"])]
        assert others and not any("code review a week" in text_of(m) for m in others)
    finally:
        server.stop()
        daemon.store.close()
