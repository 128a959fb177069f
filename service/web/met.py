""" "Did you meet?": one click after a session where no Meet room tells whether it took
place; a "no" offers the times to book it again."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..domain.attendance import Attendance
from ..domain.links import LinkPurpose
from ..domain.requests import RequestKind
from ..mail.links import PersonalLinks
from .pages import csrf_refused, form, pages_of, see_other, site_of
from .participant import whose_link


def routes() -> list[Route]:
    return [
        Route("/met/{token}", met_page, methods=["GET"]),
        Route("/met/{token}", answer, methods=["POST"]),
    ]


async def met_page(request: Request) -> Response:
    found = whose_link(request, LinkPurpose.MET)
    if isinstance(found, Response):
        return found
    claim, pair, reader, partner = found
    site, pages = site_of(request), pages_of(request)
    record = next((r for r in site.store.sessions([pair.id]) if r.session.number == claim.session), None)
    if record is None or record.cancelled:
        return pages.notice(
            request, "This session was cancelled", "There is nothing to answer; a later email will say what comes next.", 410
        )
    if record.sequence != claim.revision:
        return pages.notice(
            request, "This session has moved", "It was booked for another time since this email was sent, so it has not happened yet.", 410
        )
    asked = next((q for q in _answers(site.store.pending_requests(), pair.id, claim.session)), None)
    rebook = None
    if record.attended is Attendance.MISSED:  # a path on this site, for the reader, to book it again
        rebook = PersonalLinks("", site.key).rebook(record, reader.email, site.now())
    return pages.render(
        request,
        "met.html",
        reader=reader,
        partner=partner,
        session=record.session,
        reading=record.attendance if record.attended is not None else None,
        asked=asked,
        ended=record.session.end <= site.now(),
        rebook=rebook,
    )


async def answer(request: Request) -> Response:
    found = whose_link(request, LinkPurpose.MET)
    if isinstance(found, Response):
        return found
    claim, pair, reader, _ = found
    here = request.url.path
    fields = await form(request)
    if fields is None:
        return csrf_refused(request, here)
    site = site_of(request)
    record = next((r for r in site.store.sessions([pair.id]) if r.session.number == claim.session), None)
    waiting = any(_answers(site.store.pending_requests(), pair.id, claim.session))
    if (
        record is not None
        and record.sequence == claim.revision
        and record.session.start <= site.now()  # a question about the past only
        and record.attended is None
        and not waiting
        and fields.get("met") in ("yes", "no")
    ):
        args = {"pair": pair.id, "session": str(claim.session), "sequence": str(claim.revision), "met": fields["met"], "by": reader.email}
        site.store.add_request(RequestKind.MET, args, site.now())
    return see_other(here)


def _answers(requests, pair_id: str, number: int):
    return (q for q in requests if q.kind is RequestKind.MET and q.args.get("pair") == pair_id and q.args.get("session") == str(number))
