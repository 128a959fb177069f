"""The pages of a state holding several cohorts, over HTTP and in Chromium: the overview of
every cohort and all together behind one sign-in, each cohort's own pages under
/cohorts/NAME, and the links in each cohort's emails leading to its own pages."""

from __future__ import annotations

import io
import re
import shutil
from datetime import timedelta

import pytest
from playwright.sync_api import expect, sync_playwright
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from service.cli import main
from service.domain.outbox import State
from service.domain.requests import RequestKind
from service.fleet_view import together
from service.web.cohorts import create_fleet_app, serve_cohorts
from service.web.security import hash_password
from tests.browser.cohorts_harness import TwoCohorts, cohorts_folder
from tests.browser.harness import INVITATIONS_OUT, PUBLIC, session_link
from tests.browser.test_pages_in_chromium import CHROMIUM, WIDTHS, free_port, shoot

PASSWORD = "one password for every cohort"
ZOE = "zoe.nunez@example.net"


def csrf(page) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


@pytest.fixture(scope="session")
def prepared_cohorts(tmp_path_factory):
    base = tmp_path_factory.mktemp("cohorts")
    folder, state = cohorts_folder(base), base / "state"
    state.mkdir()
    running = TwoCohorts(folder, state)
    running.run()
    sent = {name: list(daemon.mailer.sent) for name, daemon in running.daemons.items()}
    running.close()
    return base, sent


@pytest.fixture
def cohorts(prepared_cohorts, tmp_path):
    base, sent = prepared_cohorts
    shutil.copytree(base / "cohorts", tmp_path / "cohorts")
    shutil.copytree(base / "state", tmp_path / "state")
    running = TwoCohorts(tmp_path / "cohorts", tmp_path / "state", INVITATIONS_OUT)
    for name, daemon in running.daemons.items():
        daemon.mailer.sent.extend(sent[name])
    yield running
    running.close()


@pytest.fixture
def web(cohorts):
    with TestClient(create_fleet_app(cohorts.site), base_url=PUBLIC, follow_redirects=False) as client:
        yield client


def set_password(cohorts, monkeypatch, password: str = PASSWORD) -> None:
    """As the coordinator does it: `mentorship set-password --cohorts DIR`."""
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    assert main(["set-password", "--cohorts", str(cohorts.folder), "--state", str(cohorts.state)]) == 0


def sign_in(web, next_page: str = "/"):
    page = web.get("/signin")
    return web.post("/signin", data={"csrf": csrf(page), "password": PASSWORD, "next": next_page})


def invitation(daemon, address: str):
    return next(m for m in daemon.emails_to(address) if str(m["Subject"]).startswith("Invitation: mentorship session 1"))


def test_the_overview_needs_the_password_every_cohort_has(cohorts, web, monkeypatch):
    assert web.get("/").headers["location"] == "/signin?next=/"
    assert "set-password --cohorts DIR" in web.get("/signin").text  # no password yet
    set_password(cohorts, monkeypatch)
    assert all(cohorts.view.view(name).store().password_hash() for name in ("spring", "autumn"))
    # A cohort whose password was changed alone: the fleet's sign-in no longer opens.
    cohorts.view.view("autumn").store().set_password_hash(hash_password("autumn's own password"))
    refused = sign_in(web)
    assert refused.status_code == 401 and "signin" not in web.cookies
    set_password(cohorts, monkeypatch)
    signed = sign_in(web, "/cohorts/autumn/pairs")
    assert signed.status_code == 303 and signed.headers["location"] == "/cohorts/autumn/pairs"
    assert web.get("/").status_code == 200
    # One sign-in opens every cohort's dashboard.
    assert web.get("/cohorts/spring/").status_code == 200 and web.get("/cohorts/autumn/pairs").status_code == 200
    # A new password in any cohort ends it.
    set_password(cohorts, monkeypatch)
    assert web.get("/cohorts/spring/").headers["location"] == "/cohorts/spring/signin?next=/cohorts/spring/"


def test_the_overview_lists_each_cohort_and_all_together(cohorts, web, monkeypatch):
    set_password(cohorts, monkeypatch)
    sign_in(web)
    each = {f.cohort: f for f in cohorts.view.figures()}
    assert each["spring"].pairs == 14 and each["autumn"].pairs == 5
    assert each["spring"].booked == 14 and each["autumn"].booked == 5
    assert each["spring"].sent == sum(1 for m in cohorts.daemons["spring"].mailer.sent)
    assert each["autumn"].sent == len(cohorts.daemons["autumn"].mailer.sent)
    assert each["spring"].planned > 0 and not each["spring"].finished
    assert each["spring"].holder == "this-host:1 (this replica)" and each["autumn"].holder == "other-host:2"
    total = together(list(each.values()))
    page = web.get("/").text
    assert "Spring 2027 Engineering Mentorship" in page and "Autumn 2027 Design Mentorship" in page
    assert 'href="/cohorts/spring/"' in page and 'href="/cohorts/autumn/"' in page
    assert f"<td>{each['autumn'].sent} / {each['autumn'].planned}</td>" in page
    assert f"<th>All together</th><th>{total.booked} / {total.pairs}</th><th>{total.sent} / {total.planned}</th>" in page
    assert total.pairs == 19 and total.sent == each["spring"].sent + each["autumn"].sent
    assert "other-host:2" in page and "this replica" in page


def test_a_cohort_dashboard_keeps_its_links_under_its_prefix(cohorts, web, monkeypatch):
    set_password(cohorts, monkeypatch)
    sign_in(web)
    page = web.get("/cohorts/autumn/pairs")
    assert "Autumn 2027 Design Mentorship" in page.text
    hrefs = set(re.findall(r'href="([^"]+)"', page.text))
    assert "/cohorts/autumn/pairs/maya-zoe" in hrefs and "/" in hrefs  # its pairs, and all cohorts
    assert not {h for h in hrefs if h.startswith("/pairs")}
    assert "jonas-sofia" in page.text and "noah" not in page.text.lower()  # only its own five pairs
    pair = web.get("/cohorts/autumn/pairs/maya-zoe")
    done = web.post("/cohorts/autumn/pairs/maya-zoe/act", data={"csrf": csrf(pair), "action": "release"})
    assert done.status_code == 303 and done.headers["location"].startswith("/cohorts/autumn/pairs/maya-zoe?queued=")
    (request,) = cohorts.view.view("autumn").store().pending_requests()
    assert request.kind is RequestKind.RELEASE
    assert cohorts.view.view("spring").store().pending_requests() == []  # the other cohort asked nothing
    assert web.get("/cohorts/nowhere/").status_code == 404


def test_a_participant_link_opens_its_own_cohort_and_its_holder_applies_the_move(cohorts, web):
    spring = cohorts.daemons["spring"]
    link = session_link(invitation(spring, ZOE))
    assert link.startswith(PUBLIC + "/cohorts/spring/session/")
    path = link.removeprefix(PUBLIC)
    page = web.get(path)
    assert page.status_code == 200 and "Can't make session 1?" in page.text
    assert f'action="{path}/move"' in page.text
    at = re.findall(r'name="at" value="([^"]+)"', page.text)[0]
    moved = web.post(path + "/move", data={"csrf": csrf(page), "at": at})
    assert moved.status_code == 303 and moved.headers["location"] == path
    assert [q.kind for q in spring.store.pending_requests()] == [RequestKind.RESCHEDULE]
    assert cohorts.view.view("autumn").store().pending_requests() == []
    spring.tick()  # the replica holding spring applies it
    assert "This session has changed" in web.get(path).text
    # The same signed link does not open in the other cohort (another key, other pairs).
    assert web.get(path.replace("/cohorts/spring/", "/cohorts/autumn/")).status_code == 403


def test_run_cohorts_keeps_refusing_pairings(tmp_path, capsys):
    folder = cohorts_folder(tmp_path)
    assert main(["run", "--cohorts", str(folder), "--pairings", str(folder / "spring.csv")]) == 2
    assert "--pairings works with one cohort" in capsys.readouterr().err


def test_a_cohorts_digest_carries_every_cohort_as_its_store_has_it(cohorts):
    from service.usecases.digest import plan_digest

    spring = cohorts.daemons["spring"]
    spring.deps.cohorts = cohorts.view.lines  # as the fleet gives it
    inputs, _ = spring.watcher.current()
    now = spring.clock.now()
    assert plan_digest(spring.deps, inputs, [{"pair_id": "maya-zoe", "summary": "Session 1 was declined twice."}], now)
    row = next(r for r in spring.store.messages() if r.stage.value == "coordinator_digest")
    kept = spring.store.digest_content(row.revision)
    assert [item.get("cohort") for item in kept] == [None, "autumn", "spring", ""]
    autumn = next(item for item in kept if item.get("cohort") == "autumn")
    assert autumn["title"] == "Autumn 2027 Design Mentorship" and autumn["pairs"] == "5" and autumn["booked"] == "5"
    assert autumn["sent"] == str(len(cohorts.daemons["autumn"].mailer.sent))
    assert kept[-1]["pairs"] == "19" and kept[-1]["title"] == "All 2 cohorts" and "at" in kept[-1]


def test_the_overview_in_chromium_at_desktop_and_phone_widths(cohorts, monkeypatch):
    set_password(cohorts, monkeypatch)
    autumn = cohorts.view.view("autumn").store()
    autumn.set_alert("jonas-priya", 1, "Session 1 was deleted in Google Calendar; it was not booked again.")
    port = free_port()
    server = serve_cohorts(cohorts.site, f"127.0.0.1:{port}")
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_context(viewport={"width": WIDTHS["wide"], "height": 900}).new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            expect(page.get_by_role("heading", level=1)).to_have_text("Coordinator sign-in")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_role("heading", level=1)).to_have_text("All cohorts")
            rows = page.locator("table.cohorts tbody tr")
            expect(rows).to_have_count(2)
            expect(page.locator("table.cohorts tfoot")).to_contain_text("All together")
            expect(page.get_by_text("Session 1 was deleted in Google Calendar")).to_be_visible()
            shoot(page, "cohorts-overview")
            page.set_viewport_size({"width": WIDTHS["narrow"], "height": 900})
            expect(page.locator("table.cohorts td").first).to_be_visible()
            page.set_viewport_size({"width": WIDTHS["wide"], "height": 900})
            page.get_by_role("link", name="Spring 2027 Engineering Mentorship").first.click()
            expect(page).to_have_url(f"http://127.0.0.1:{port}/cohorts/spring/")  # signed in already
            expect(page.get_by_role("heading", level=1)).to_have_text("Spring 2027 Engineering Mentorship")
            page.get_by_role("link", name="Pairs", exact=True).click()
            expect(page).to_have_url(f"http://127.0.0.1:{port}/cohorts/spring/pairs")
            page.get_by_role("link", name="All cohorts").click()
            expect(page.get_by_role("heading", level=1)).to_have_text("All cohorts")
            browser.close()
    finally:
        server.stop()


def test_run_cohorts_with_http_serves_every_cohort_and_links_to_each(tmp_path):
    """The real command: a rehearsal of both cohorts with the pages, which stay up after it."""
    import os
    import signal
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.request
    from pathlib import Path

    port = free_port()
    folder = cohorts_folder(tmp_path, public_url=f"http://127.0.0.1:{port}")
    log = tmp_path / "run.log"
    with open(log, "w", encoding="utf-8") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "service", "run", "--cohorts", str(folder), "--simulate", "--now", "2027-02-01T00:00+00:00",
             "--outbox", str(tmp_path / "outbox"), "--http", f"127.0.0.1:{port}"],
            stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while "The overview is at" not in log.read_text(encoding="utf-8"):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text(encoding="utf-8")
            time.sleep(0.3)
        assert "2 cohorts finished" in log.read_text(encoding="utf-8")
        for name in ("spring", "autumn"):
            texts = [p.read_text(encoding="utf-8", errors="replace") for p in (tmp_path / "outbox" / name).rglob("*.eml")]
            assert any(f"http://127.0.0.1:{port}/cohorts/{name}/session/" in t for t in texts)
            assert not any(f"127.0.0.1:{port}/session/" in t for t in texts)
        opener = urllib.request.build_opener(
            type("NoRedirect", (urllib.request.HTTPRedirectHandler,), {"redirect_request": lambda *a: None})
        )
        for path, status in (("/", 303), ("/cohorts/spring/healthz", 200), ("/cohorts/nowhere/", 404)):
            try:
                code = opener.open(f"http://127.0.0.1:{port}{path}", timeout=10).status
            except urllib.error.HTTPError as answer:
                code = answer.code
            assert code == status, path
        scrape = opener.open(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        ticks = {
            s.labels["cohort"]: s.value
            for family in text_string_to_metric_families(scrape)
            for s in family.samples
            if s.name == "mentorship_ticks_total" and s.labels["outcome"] == "ok"
        }
        assert ticks.keys() == {"spring", "autumn"} and min(ticks.values()) > 0  # the replica timed the ticks it ran
        assert Path(tmp_path / "state" / "cohorts" / "spring.rehearsal.sqlite").exists()
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def test_one_health_check_for_the_replica_says_whether_every_cohort_ticks(cohorts, web):
    for site in cohorts.site.sites().values():
        site.store.record_tick(site.now())  # each daemon has just ticked, on its cohort's clock
    healthy = web.get("/healthz")  # no sign-in: for a load balancer
    assert healthy.status_code == 200 and healthy.json()["status"] == "ok"
    assert {name: state["status"] for name, state in healthy.json()["cohorts"].items()} == {"autumn": "ok", "spring": "ok"}
    autumn = cohorts.site.sites()["autumn"]
    autumn.store.record_tick(autumn.now() - timedelta(hours=2))  # its daemon stopped ticking two hours ago
    stuck = web.get("/healthz")
    assert stuck.status_code == 503 and stuck.json()["status"] == "stuck"
    assert stuck.json()["cohorts"]["autumn"]["status"] == "stuck" and stuck.json()["cohorts"]["spring"]["status"] == "ok"


def test_one_metrics_scrape_for_the_replica_labels_each_cohorts_figures(cohorts, web):
    for daemon in cohorts.daemons.values():
        daemon.tick()
    scrape = web.get("/metrics")  # no sign-in: for Prometheus
    assert scrape.status_code == 200
    families = {family.name: family for family in text_string_to_metric_families(scrape.text)}
    for name, daemon in cohorts.daemons.items():
        sent = sum(n for counts in daemon.store.message_counts().values() for state, n in counts.items() if state is State.SENT)
        assert sent > 0
        assert (name, "sent", sent) in {
            (s.labels["cohort"], s.labels.get("state"), s.value) for s in families["mentorship_messages"].samples
        }
        ticks = {
            s.labels["outcome"]: s.value
            for s in families["mentorship_ticks"].samples
            if s.labels["cohort"] == name and s.name.endswith("_total")
        }
        assert ticks == {"ok": 1, "failed": 0}  # this replica's tick of the cohort, timed
