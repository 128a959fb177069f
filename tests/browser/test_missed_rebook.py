"""A session Meet showed nobody came to is booked again in one step, from the personal link
of the "we missed you" email, over HTTP on the real store and daemon."""

from __future__ import annotations

import re
from datetime import timedelta

from service.domain.attendance import Attendance, Reading
from service.domain.links import LinkPurpose
from service.domain.model import Role
from service.domain.requests import RequestKind
from service.domain.stages import Stage
from service.mail.compose import compose
from service.mail.links import REBOOK_FOR
from tests.browser.harness import LINK, PUBLIC, text_of

ZOE = "zoe.nunez@example.net"


def test_a_missed_session_is_booked_again_from_the_link_in_the_email(daemon, web):
    record = next(r for r in daemon.store.sessions(["maya-zoe"]) if r.session.number == 1)
    after = record.session.end + timedelta(hours=1)
    daemon.clock.advance_to(after)
    daemon.tick()
    # What the daemon records when Meet shows an empty room an hour after the end.
    missed = Reading(attendance=Attendance.MISSED, sequence=record.sequence, at=after)
    daemon.store.record_attendance("maya-zoe", 1, record.sequence, missed, after)
    # The email's link, as sending makes it for this stage (checked by reading it back).
    link = daemon.deps.links.make(LinkPurpose.SESSION, ZOE, "maya-zoe", 1, record.sequence, after + REBOOK_FOR)
    pair = next(p for p in daemon.watcher.current()[0].cohort.pairs if p.id == "maya-zoe")
    sessions = tuple(r.session for r in sorted(daemon.store.sessions(["maya-zoe"]), key=lambda r: r.session.number))
    email = compose(
        daemon.watcher.current()[0].cohort,
        pair,
        sessions,
        stage=Stage.SESSION1_MISSED,
        role=Role.MENTEE,
        templates=daemon.watcher.current()[0].templates,
        stamp=after,
        missed=(1,),
        rebook=link,
    )
    assert LINK.search(text_of(email)).group(1) == link and "nobody joined the video call" in text_of(email)
    page = web.get(link.removeprefix(PUBLIC))
    assert page.status_code == 200 and "Book session 1 again" in page.text and "did not take place" in page.text
    offered = re.findall(r'name="at" value="([^"]+)"', page.text)
    assert offered, "no other time offered"
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    moved = web.post(link.removeprefix(PUBLIC) + "/move", data={"csrf": csrf, "at": offered[0]})
    assert moved.status_code == 303
    (request,) = daemon.store.pending_requests()
    assert request.kind is RequestKind.RESCHEDULE
    daemon.tick()  # the daemon applies it, although the session's old time has passed
    again = next(r for r in daemon.store.sessions(["maya-zoe"]) if r.session.number == 1)
    assert again.session.start.isoformat() == offered[0] and again.session.start > after
    assert again.sequence == record.sequence + 1 and again.attended is None  # not happened yet: read again later
