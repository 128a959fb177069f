""" "Did you meet?" where no Meet room tells (the example cohort books by email invitation):
the link in the first email after a session, one click, the daemon records it, and a
"no" offers the times to book the session again; over HTTP on the real store and daemon."""

from __future__ import annotations

import re
from datetime import timedelta

from service.domain.attendance import Attendance
from service.domain.requests import RequestKind
from tests.browser.harness import PUBLIC, text_of

ZOE, MAYA = "zoe.nunez@example.net", "maya.okafor@example.org"
MET_LINK = re.compile(r"(https://\S+/met/[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+)")


def _after_session_1(daemon, pair_id: str):
    """Run until the follow-up after session 1 went out; the session's record."""
    record = next(r for r in daemon.store.sessions([pair_id]) if r.session.number == 1)
    daemon.run(until=record.session.end + timedelta(hours=3))
    return record


def _met_link(daemon, address: str) -> str:
    followups = [m for m in daemon.emails_to(address) if "first session" in str(m["Subject"]).lower() or MET_LINK.search(text_of(m))]
    links = [found.group(1) for m in followups if (found := MET_LINK.search(text_of(m)))]
    assert links, "no Did you meet? link in the emails after session 1"
    return links[-1].removeprefix(PUBLIC)


def _csrf(page) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


def test_we_did_not_meet_offers_new_times_and_tells_both(daemon, web):
    record = _after_session_1(daemon, "maya-zoe")
    link = _met_link(daemon, ZOE)
    page = web.get(link)
    assert page.status_code == 200 and "Did you meet?" in page.text and "Yes, we met" in page.text

    answered = web.post(link, data={"csrf": _csrf(page), "met": "no"})
    assert answered.status_code == 303
    (request,) = daemon.store.pending_requests()
    assert request.kind is RequestKind.MET and request.args["by"] == ZOE and request.args["met"] == "no"
    assert "did not take place" in web.get(link).text  # noted, before the daemon applies it

    sent_before = len(daemon.mailer.sent)
    daemon.tick()  # applies the answer, plans and sends the word to both
    now = next(r for r in daemon.store.sessions(["maya-zoe"]) if r.session.number == 1)
    assert now.attended is Attendance.MISSED and now.attendance.reported_by == ZOE and now.sequence == record.sequence
    words = {str(m["To"]): text_of(m) for m in daemon.mailer.sent[sent_before:]}
    (to_zoe,) = [text for to, text in words.items() if ZOE in to]
    (to_maya,) = [text for to, text in words.items() if MAYA in to]
    assert "Thank you for letting us know" in to_zoe and "video call" not in to_zoe
    assert "Zoë let us know" in to_maya or "Zoe let us know" in to_maya

    page = web.get(link)
    rebook = re.search(r'href="(/session/[^"]+)"', page.text).group(1)
    offered = web.get(rebook)
    assert offered.status_code == 200 and "Book session 1 again" in offered.text and "video call" not in offered.text
    times = re.findall(r'name="at" value="([^"]+)"', offered.text)
    assert times, "no other time offered"
    assert web.post(rebook + "/move", data={"csrf": _csrf(offered), "at": times[0]}).status_code == 303
    daemon.tick()
    again = next(r for r in daemon.store.sessions(["maya-zoe"]) if r.session.number == 1)
    assert again.session.start.isoformat() == times[0] and again.attended is None
    assert web.get(link).status_code == 410  # the old question is about a time that no longer stands


def test_we_met_is_recorded_once(daemon, web):
    _after_session_1(daemon, "maya-zoe")
    link = _met_link(daemon, ZOE)
    csrf = _csrf(web.get(link))
    web.post(link, data={"csrf": csrf, "met": "yes"})
    daemon.tick()
    record = next(r for r in daemon.store.sessions(["maya-zoe"]) if r.session.number == 1)
    assert record.attended is Attendance.HELD
    assert "took place" in web.get(link).text

    partner = _met_link(daemon, MAYA)
    page = web.get(partner)
    assert "took place" in page.text and "Yes, we met" not in page.text  # nothing left to answer
    web.post(partner, data={"csrf": csrf, "met": "no"})
    assert not daemon.store.pending_requests()  # the first answer stands


def test_a_met_link_works_for_its_purpose_only(daemon, web):
    _after_session_1(daemon, "maya-zoe")
    token = _met_link(daemon, ZOE).removeprefix("/met/")
    assert web.get(f"/session/{token}").status_code == 403
    assert web.get(f"/goals/{token}").status_code == 403
