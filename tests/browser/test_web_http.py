"""The web pages over HTTP, on the real store and daemon: participant links, the sign-in,
the dashboard's actions, /healthz and /metrics."""

from __future__ import annotations

import base64
import json
import re
from datetime import timedelta

from prometheus_client.parser import text_string_to_metric_families

from service.domain.links import LinkClaim, LinkPurpose, sign
from service.domain.outbox import State
from service.domain.ports import MailError
from service.domain.requests import RequestKind
from service.domain.stages import Stage
from service.status import status_report
from service.views import EXPORT_COLUMNS, export_csv
from service.web.security import hash_password
from tests.browser.harness import PUBLIC, session_link, text_of

ZOE, MAYA = "zoe.nunez@example.net", "maya.okafor@example.org"
PASSWORD = "correct horse battery"


def invitation(daemon, address: str, number: int = 1):
    return next(m for m in daemon.emails_to(address) if str(m["Subject"]).startswith(f"Invitation: mentorship session {number}"))


def path(link: str) -> str:
    return link.removeprefix(PUBLIC)


def csrf(page) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


def options(page) -> list[str]:
    return re.findall(r'name="at" value="([^"]+)"', page.text)


def test_a_participant_moves_a_session_from_the_link_in_an_invitation(daemon, web):
    link = path(session_link(invitation(daemon, ZOE)))
    page = web.get(link)
    assert page.status_code == 200 and "Can't make session 1?" in page.text
    assert "Monday 1 March 2027" in page.text and "CST" in page.text  # in Zoë's own zone (Mexico City)
    offered = options(page)
    assert len(offered) >= 5
    moved = web.post(link + "/move", data={"csrf": csrf(page), "at": offered[2]})
    assert moved.status_code == 303 and moved.headers["location"] == link
    (request,) = daemon.store.pending_requests()
    assert request.kind is RequestKind.RESCHEDULE
    assert dict(request.args) == {"pair": "maya-zoe", "session": "1", "at": offered[2], "sequence": "0", "by": ZOE}
    assert "Moving your session" in web.get(link).text
    before = len(daemon.mailer.sent)
    daemon.tick()  # the daemon applies it
    record = next(r for r in daemon.store.sessions(["maya-zoe"]) if r.session.number == 1)
    assert record.session.start.isoformat() == offered[2] and record.sequence == 1
    told = daemon.mailer.sent[before:]
    assert sorted(str(m["To"]).split("<")[-1].rstrip(">") for m in told) == sorted([MAYA, ZOE])
    assert all("Zoë asked for another time" in text_of(m) for m in told)
    # The used link now says what happened instead of offering times.
    stale = web.get(link)
    assert stale.status_code == 410 and "This session has changed" in stale.text and options(stale) == []
    # The new invitation carries a link for the new time.
    fresh = path(session_link(told[0]))
    assert fresh != link and web.get(fresh).status_code == 200


def test_only_a_time_offered_can_be_chosen(daemon, web):
    link = path(session_link(invitation(daemon, ZOE)))
    page = web.get(link)
    taken = web.post(link + "/move", data={"csrf": csrf(page), "at": "2027-03-01T03:00:00+00:00"})  # the middle of the night
    assert taken.status_code == 409 and daemon.store.pending_requests() == []


def test_withdrawing_takes_a_confirmation(daemon, web):
    link = path(session_link(invitation(daemon, MAYA, 2)))
    page = web.get(link + "/withdraw")
    assert page.status_code == 200 and "Yes, withdraw me" in page.text
    assert daemon.store.pending_requests() == []  # looking at the page asks nothing
    web.post(link + "/withdraw", data={"csrf": csrf(page)})  # no confirmation: nothing
    assert daemon.store.pending_requests() == []
    done = web.post(link + "/withdraw", data={"csrf": csrf(page), "confirm": "yes"})
    assert done.status_code == 303
    (request,) = daemon.store.pending_requests()
    assert request.kind is RequestKind.WITHDRAW and dict(request.args) == {"pair": maya_pair(daemon, link), "by": MAYA}
    daemon.tick()
    assert "You have left the program" in web.get(link).text


def maya_pair(daemon, link: str) -> str:
    payload = link.rsplit("/", 1)[1].split(".")[0]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))[2]


def test_a_form_without_its_csrf_token_does_nothing(daemon, web):
    link = path(session_link(invitation(daemon, ZOE)))
    page = web.get(link)
    at = options(page)[0]
    for data in ({"at": at}, {"at": at, "csrf": "forged"}, {"at": at, "csrf": csrf(page) + "x"}):
        refused = web.post(link + "/move", data=data)
        assert refused.status_code == 403 and "Please try that again" in refused.text
    web.cookies.clear()  # a token from the page, but not the cookie that goes with it (another site's form)
    assert web.post(link + "/move", data={"at": at, "csrf": csrf(page)}).status_code == 403
    assert daemon.store.pending_requests() == []


def test_a_link_for_one_pair_cannot_act_on_another(daemon, web):
    mine = path(session_link(invitation(daemon, ZOE)))
    page = web.get(mine)
    # Fields naming another pair are not read: the link says which pair.
    web.post(mine + "/move", data={"csrf": csrf(page), "at": options(page)[0], "pair": "jonas-priya", "session": "2"})
    assert [dict(r.args)["pair"] for r in daemon.store.pending_requests()] == ["maya-zoe"]
    assert "Priya" not in page.text and "Jonas" not in page.text  # no other pair's people on the page
    # Another pair's claim with this link's signature is refused.
    theirs = LinkClaim(
        purpose=LinkPurpose.SESSION,
        person="priya.nair@example.in",
        pair_id="jonas-priya",
        session=1,
        revision=0,
        expires=daemon.clock.now() + timedelta(days=9),
    )
    payload = sign(theirs, b"a guess at the key").split(".")[0]
    forged = "/session/" + payload + "." + mine.rsplit(".", 1)[1]
    refused = web.get(forged)
    assert refused.status_code == 403 and "This link does not work" in refused.text
    assert web.post(forged + "/withdraw", data={"csrf": csrf(page), "confirm": "yes"}).status_code == 403
    # A link for one person does not work for someone outside the pair.
    outsider = sign(
        LinkClaim(
            purpose=LinkPurpose.SESSION,
            person="priya.nair@example.in",
            pair_id="maya-zoe",
            session=1,
            revision=0,
            expires=daemon.clock.now() + timedelta(days=9),
        ),
        daemon.site.key,
    )
    assert web.get("/session/" + outsider).status_code == 410
    assert len(daemon.store.pending_requests()) == 1


def test_a_tampered_or_expired_link_gets_a_friendly_page(daemon, web):
    link = path(session_link(invitation(daemon, ZOE)))
    payload, signature = link.rsplit("/", 1)[1].split(".")
    for token in (payload + "." + signature[::-1], payload[:-2] + "." + signature, payload, "nonsense", payload + "." + signature + "%25"):
        page = web.get("/session/" + token)
        assert page.status_code == 403 and "This link does not work" in page.text and "Traceback" not in page.text
    session = next(r.session for r in daemon.store.sessions(["maya-zoe"]) if r.session.number == 1)
    daemon.clock.advance_to(session.start)
    expired = web.get(link)
    assert expired.status_code == 410 and "This link has expired" in expired.text


def test_participant_pages_are_rate_limited(daemon, web):
    link = path(session_link(invitation(daemon, ZOE)))
    codes = [web.get(link).status_code for _ in range(31)]
    assert codes[:30] == [200] * 30 and codes[30] == 429


def sign_in(daemon, web):
    daemon.store.set_password_hash(hash_password(PASSWORD))
    page = web.get("/signin")
    return web.post("/signin", data={"csrf": csrf(page), "password": PASSWORD, "next": "/pairs?q=maya"})


def test_the_dashboard_needs_a_sign_in(daemon, web):
    assert web.get("/").headers["location"] == "/signin?next=/"
    assert web.get("/export.csv").status_code == 303
    assert "No password is set yet" in web.get("/signin").text
    daemon.store.set_password_hash(hash_password(PASSWORD))
    page = web.get("/signin")
    wrong = web.post("/signin", data={"csrf": csrf(page), "password": "not it"})
    assert wrong.status_code == 401 and "signin" not in web.cookies
    signed = web.post("/signin", data={"csrf": csrf(page), "password": PASSWORD, "next": "//evil.example/"})
    assert signed.status_code == 303 and signed.headers["location"] == "/"  # never off to another site
    cookie = signed.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" in cookie
    assert web.get("/").status_code == 200
    # A new password ends the sessions made with the old one.
    daemon.store.set_password_hash(hash_password("another long password"))
    assert web.get("/").status_code == 303


def test_the_overview_pairs_and_a_pair_page(daemon, web):
    assert sign_in(daemon, web).headers["location"] == "/pairs?q=maya"
    overview = web.get("/")
    assert overview.status_code == 200 and "<svg" in overview.text and "pairs booked" in overview.text
    booked = re.search(r'<div class="n">(\d+)</div><div class="l">pairs booked', overview.text).group(1)
    assert int(booked) == 14
    found = web.get("/pairs", params={"q": "maya"})
    assert found.text.count('href="/pairs/maya-') == 2 and "jonas-priya" not in found.text
    assert "14 pairs" in web.get("/pairs", params={"status": "booked"}).text
    assert "0 pairs" in web.get("/pairs", params={"status": "withdrawn"}).text
    pair = web.get("/pairs/maya-zoe")
    assert pair.status_code == 200 and "Zoë Ñúñez" in pair.text and "EST" in pair.text and "CST" in pair.text
    assert "session1 invitation" in pair.text and "sent" in pair.text
    assert web.get("/pairs/no-such-pair").status_code == 404


def test_a_pair_page_shows_its_history_and_each_email_as_written(daemon, web):
    sign_in(daemon, web)
    pair = web.get("/pairs/maya-zoe").text
    assert "Session 1 booked for" in pair and "Sent: session1 invitation to zoe.nunez@example.net" in pair
    ref = re.search(r'href="/pairs/maya-zoe/emails/(m-[0-9a-f]{8})">session1 invitation', pair).group(1)
    shown = web.get(f"/pairs/maya-zoe/emails/{ref}")
    assert shown.status_code == 200 and "Subject</b> Invitation: mentorship session 1" in shown.text
    assert "carries a calendar invitation" in shown.text and "Hi " in shown.text
    assert web.get("/pairs/maya-zoe/emails/m-00000000").status_code == 404
    assert web.get("/pairs/jonas-priya/emails/" + ref).status_code == 404  # not this pair's email
    later = re.search(r'href="/pairs/maya-zoe/emails/(m-[0-9a-f]{8})">follow up', pair).group(1)  # months off: foreseen
    assert later not in {m.ref for m in daemon.store.messages()}
    shown = web.get(f"/pairs/maya-zoe/emails/{later}")
    assert shown.status_code == 200 and "Hi " in shown.text


def test_the_dashboards_actions_queue_requests_for_the_daemon(daemon, web):
    sign_in(daemon, web)
    token = csrf(web.get("/pairs/jonas-priya"))
    moved = web.post("/pairs/jonas-priya/act", data={"csrf": token, "action": "reschedule", "session": "2", "at": ""})
    assert moved.status_code == 303 and "queued=" in moved.headers["location"]
    unsure = web.post("/pairs/jonas-priya/act", data={"csrf": token, "action": "withdraw"})
    assert "error=" in unsure.headers["location"]
    web.post("/pairs/jonas-priya/act", data={"csrf": token, "action": "withdraw", "confirm": "yes"})
    assert web.post("/pairs/jonas-priya/act", data={"action": "release"}).status_code == 403  # no CSRF token
    queued = [(r.kind, dict(r.args)) for r in daemon.store.pending_requests()]
    assert queued == [
        (RequestKind.RESCHEDULE, {"pair": "jonas-priya", "session": "2", "at": "auto", "sequence": "0"}),
        (RequestKind.WITHDRAW, {"pair": "jonas-priya"}),
    ]
    daemon.tick()
    assert daemon.store.withdrawn() == {"jonas-priya"}
    page = web.get("/pairs/jonas-priya")
    assert "withdrawn" in page.text and "Release: plan again" in page.text and "jonas-priya withdrawn" in page.text


def test_the_export_is_the_same_as_the_commands(daemon, web):
    sign_in(daemon, web)
    exported = web.get("/export.csv")
    assert exported.headers["content-type"].startswith("text/csv")
    expected = export_csv(status_report(daemon.watcher.current()[0], daemon.store, now=daemon.clock.now()))
    assert exported.text == expected
    assert exported.text.splitlines()[0] == ",".join(EXPORT_COLUMNS) and len(exported.text.splitlines()) == 15


def test_no_secret_in_any_page(daemon, web):
    sign_in(daemon, web)
    stored_hash = daemon.store.password_hash()
    link = path(session_link(invitation(daemon, ZOE)))
    pages = [
        web.get(p) for p in ("/", "/pairs", "/pairs/maya-zoe", "/export.csv", "/metrics", "/healthz", "/signin", link, link + "/withdraw")
    ]
    for page in pages:
        for secret in (daemon.site.key.decode(), PASSWORD, stored_hash, stored_hash.split("$")[-1]):
            assert secret not in page.text
        assert page.headers["referrer-policy"] == "no-referrer" and "frame-ancestors 'none'" in page.headers["content-security-policy"]


def test_healthz_reports_the_last_tick_and_fails_when_it_is_stuck(daemon, web):
    healthy = web.get("/healthz")
    assert healthy.status_code == 200 and healthy.json()["status"] == "ok" and healthy.json()["lag_seconds"] == 0
    daemon.clock.advance_to(daemon.clock.now() + timedelta(minutes=16))  # three polls of 5 minutes, and more
    stuck = web.get("/healthz")
    assert stuck.status_code == 503 and stuck.json()["status"] == "stuck" and stuck.json()["lag_seconds"] == 960


def test_metrics_scrape_cleanly(daemon, web):
    daemon.mailer.down = MailError(MailError.TRANSIENT, "connection refused", transport=True)
    daemon.clock.advance_to(daemon.clock.now() + timedelta(days=5))  # the prep emails fall due, the server is down
    daemon.tick()
    daemon.store.add_request(RequestKind.RELEASE, {"pair": "maya-zoe"}, daemon.clock.now())
    scraped = web.get("/metrics")
    assert scraped.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(scraped.text)}
    value = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    sent = sum(1 for r in daemon.store.messages() if r.state is State.SENT)
    assert value[("mentorship_messages", (("state", "sent"),))] == sent > 0
    assert value[("mentorship_messages", (("state", "planned"),))] > 0
    assert value[("mentorship_pending_requests", ())] == 1
    assert value[("mentorship_ticks_total", (("outcome", "ok"),))] == 1
    assert value[("mentorship_tick_duration_seconds_count", ())] == value[("mentorship_ticks_total", (("outcome", "ok"),))]
    assert value[("mentorship_errors_total", (("kind", "mail_down"),))] == 1
    assert value[("mentorship_last_tick_timestamp_seconds", ())] == daemon.store.last_tick().timestamp()


def test_a_link_for_the_first_session_does_not_move_the_second(daemon, web):
    link = path(session_link(invitation(daemon, ZOE, 1)))
    page = web.get(link)
    web.post(link + "/move", data={"csrf": csrf(page), "at": options(page)[0]})
    assert dict(daemon.store.pending_requests()[0].args)["session"] == "1"
    assert Stage.SESSION2_INVITATION  # the second invitation's link is a link of its own
    assert path(session_link(invitation(daemon, ZOE, 2))) != link


def test_the_coordinator_sends_an_email_again_from_the_pair_page(daemon, web):
    sign_in(daemon, web)
    page = web.get("/pairs/maya-zoe")
    ref = re.search(r'value="resend"><input type="hidden" name="message" value="(m-[0-9a-f]+)"', page.text).group(1)
    answer = web.post("/pairs/maya-zoe/act", data={"csrf": csrf(page), "action": "resend", "message": ref})
    assert "queued=" in answer.headers["location"]
    assert [(r.kind, dict(r.args)) for r in daemon.store.pending_requests()] == [(RequestKind.RESEND, {"message": ref, "pair": "maya-zoe"})]
    other = next(r.ref for r in daemon.store.messages(["jonas-priya"]) if r.state is State.SENT)  # not this pair's
    refused = web.post("/pairs/maya-zoe/act", data={"csrf": csrf(page), "action": "resend", "message": other})
    assert "error=" in refused.headers["location"] and len(daemon.store.pending_requests()) == 1


def test_a_goals_link_opens_only_the_goals_page(daemon, web):
    links = daemon.deps.links
    goals = links.goals(daemon.watcher.configuration.cohort, "maya-zoe", ZOE)
    token = goals.rsplit("/", 1)[1]
    assert web.get("/session/" + token).status_code == 403  # a link works for its own purpose only
    page = web.get(path(goals))
    assert page.status_code == 200 and "Your goals and homework" in page.text
    web.post(path(goals), data={"csrf": csrf(page), "goals": "Ship it\x00\x07", "homework": "  "})
    (request,) = daemon.store.pending_requests()
    assert dict(request.args) == {"pair": "maya-zoe", "goals": "Ship it", "homework": "", "by": ZOE}
    daemon.tick()
    assert daemon.store.goals(["maya-zoe"])["maya-zoe"].goals == "Ship it"
    sign_in(daemon, web)
    assert "Ship it" in web.get("/pairs/maya-zoe").text


def test_a_page_whose_state_cannot_be_read_says_so_plainly(daemon, tmp_path):
    from starlette.testclient import TestClient

    from service.web.app import create_app

    link = path(session_link(invitation(daemon, ZOE)))
    daemon.store.engine.dispose()
    (tmp_path / "state.sqlite").write_bytes(b"this is not a database" * 100)  # the disk went bad under the daemon
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"state.sqlite{suffix}").unlink(missing_ok=True)
    with TestClient(create_app(daemon.site), base_url=PUBLIC, raise_server_exceptions=False) as client:
        page = client.get(link)
    assert page.status_code == 500 and "Something went wrong" in page.text and "Nothing was changed" in page.text
    assert "Traceback" not in page.text and "sqlite" not in page.text.lower() and page.headers["referrer-policy"] == "no-referrer"


def test_times_outside_someones_hours_are_marked(tmp_path):
    """Los Angeles and Berlin working days never meet: every time offered stretches someone's day."""
    from starlette.testclient import TestClient

    from service.web.app import create_app
    from tests.browser.harness import INVITATIONS_OUT, WebDaemon, cohort_folder

    folder = cohort_folder(tmp_path)
    (folder / "pairings.example.csv").write_text(
        "pair_id,mentor_name,mentor_email,mentor_timezone,mentee_name,mentee_email,mentee_timezone\n"
        "ana-jan,Ana Ruiz,ana@example.org,America/Los_Angeles,Jan Vogel,jan@example.de,Europe/Berlin\n",
        encoding="utf-8",
    )
    daemon = WebDaemon(folder, tmp_path / "state.sqlite")
    daemon.run(until=INVITATIONS_OUT)
    link = path(session_link(invitation(daemon, "jan@example.de")))
    with TestClient(create_app(daemon.site), base_url=PUBLIC) as client:
        page = client.get(link)
    marks = re.findall(r'class="small stretch">Outside usual hours: ([^<]+)<', page.text)
    assert len(options(page)) >= 5 and len(marks) == len(options(page))
    assert all(re.fullmatch(r"\d+ minutes (before|after) (your|Ana&#39;s) working day(; .*)?", mark) for mark in marks), marks
    daemon.store.close()
