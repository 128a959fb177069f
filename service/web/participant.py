"""Pages a participant reaches through the personal link in an email: no account, and
nothing but their own pair's session."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..domain.bookings import bookings
from ..domain.goals import MAX_CHARS, tidy
from ..domain.links import BadLink, LinkClaim, LinkProblem, LinkPurpose, verify
from ..domain.model import Pair, Person, Session
from ..domain.outbox import SessionRecord
from ..domain.planning import alternatives
from ..domain.requests import Request as Queued
from ..domain.requests import RequestKind
from ..domain.stretch import Side, stretched
from ..timefmt import span
from .pages import client, csrf_refused, form, pages_of, see_other, site_of
from .site import Site

OPTIONS = 6  # other times offered


def routes() -> list[Route]:
    return [
        Route("/session/{token}", session_page, methods=["GET"]),
        Route("/session/{token}/move", move, methods=["POST"]),
        Route("/session/{token}/withdraw", withdraw_page, methods=["GET"]),
        Route("/session/{token}/withdraw", withdraw, methods=["POST"]),
        Route("/goals/{token}", goals_page, methods=["GET"]),
        Route("/goals/{token}", save_goals, methods=["POST"]),
    ]


@dataclass(frozen=True)
class Visit:
    """A valid link, and what it is about as the store has it now."""

    token: str
    claim: LinkClaim
    pair: Pair
    reader: Person
    partner: Person
    record: SessionRecord
    pending: Queued | None  # a request about this pair not yet applied

    @property
    def base(self) -> str:
        return f"/session/{self.token}"


def whose_link(request: Request, purpose: LinkPurpose) -> tuple[LinkClaim, Pair, Person, Person] | Response:
    """Whose link this is (claim, pair, reader, partner), or the friendly page that says why
    it does nothing now."""
    site, pages = site_of(request), pages_of(request)
    if not site.participant_limit.allow(client(request)):
        return pages.notice(request, "Too many tries", "Please wait a minute, then open the link from your email again.", 429)
    try:
        claim = verify(request.path_params["token"], site.key, purpose=purpose, now=site.now())
    except BadLink as bad:
        if bad.problem is LinkProblem.EXPIRED:
            return pages.notice(request, "This link has expired", "What it was for is over.", 410)
        return pages.notice(
            request,
            "This link does not work",
            "The links in our emails are personal. Open the link exactly as it came in the email, or reply to the email.",
            403,
        )
    pair = site.pair(claim.pair_id)
    people = {p.email.casefold(): p for p in pair.people} if pair else {}
    reader = people.get(claim.person.casefold())
    if pair is None or reader is None or pair.id not in {p.id for p in site.inputs().cohort.pairs}:
        return pages.notice(request, "This pairing has ended", "It is no longer part of the program, so there is nothing to change.", 410)
    if pair.id in site.store.withdrawn():
        return pages.notice(request, "You have left the program", "No more sessions or emails will come for this pairing.", 410)
    return claim, pair, reader, pair.mentee if reader is pair.mentor else pair.mentor


def _visit(request: Request) -> Visit | Response:
    """The visit of a "Can't make it?" link, or the page that says why it does nothing now."""
    site, pages = site_of(request), pages_of(request)
    found = whose_link(request, LinkPurpose.SESSION)
    if isinstance(found, Response):
        return found
    claim, pair, reader, partner = found
    record = next((r for r in site.store.sessions([pair.id]) if r.session.number == claim.session), None)
    if record is None or record.cancelled:
        return pages.notice(request, "This session was cancelled", "There is nothing to move; a later email will say what comes next.", 410)
    pending = next((q for q in site.store.pending_requests() if q.args.get("pair") == pair.id and q.kind is not RequestKind.GOALS), None)
    visit = Visit(request.path_params["token"], claim, pair, reader, partner, record, pending)
    if pending is None and record.sequence != claim.revision:
        return pages.render(request, "changed.html", 410, visit=visit, now=site.now())
    return visit


async def session_page(request: Request) -> Response:
    visit = _visit(request)
    if isinstance(visit, Response):
        return visit
    if visit.pending is not None:
        return _pending(request, visit)
    options = _options(site_of(request), visit, site_of(request).now())
    offered = [(option, _outside_hours(visit, option)) for option in options]
    return pages_of(request).render(request, "session.html", visit=visit, options=offered)


def _outside_hours(visit: Visit, session: Session) -> str:
    """'starts 30 minutes before your working day': a time the cohort allows only by stretching someone's hours."""
    notes = []
    for share in stretched(visit.pair, session):
        whose = "your" if share.person is visit.reader else f"{share.person.name.split()[0]}'s"
        where = "before" if share.side is Side.EARLY else "after"
        notes.append(f"{share.minutes} minutes {where} {whose} working day")
    return "; ".join(notes)


def _pending(request: Request, visit: Visit) -> Response:
    return pages_of(request).render(request, "pending.html", visit=visit, asked=visit.pending)


def _options(site: Site, visit: Visit, now: datetime) -> list[Session]:
    """Other times when both are free, inside the cohort's rules, around every session that stands."""
    inputs = site.inputs()
    session = visit.record.session
    current = bookings(inputs.cohort, site.store.sessions(), withdrawn=site.store.withdrawn(), now=now)
    busy = dict(inputs.busy)
    for person in visit.pair.people:  # not the time being moved away from
        busy[person.email] = [*busy.get(person.email, ()), (session.start, session.end)]
    return alternatives(
        inputs.cohort, busy, pair_id=visit.pair.id, number=session.number, booked=current.standing(but=session), now=now, count=OPTIONS
    )


async def move(request: Request) -> Response:
    visit = _visit(request)
    if isinstance(visit, Response):
        return visit
    fields = await form(request)
    if fields is None:
        return csrf_refused(request, visit.base)
    if visit.pending is not None:
        return see_other(visit.base)
    site = site_of(request)
    chosen = next((s for s in _options(site, visit, site.now()) if s.start.isoformat() == fields.get("at")), None)
    if chosen is None:
        return pages_of(request).notice(
            request, "That time has just gone", "Someone else took it a moment ago. Please choose another.", 409, back=visit.base
        )
    site.store.add_request(
        RequestKind.RESCHEDULE,
        {
            "pair": visit.pair.id,
            "session": str(visit.claim.session),
            "at": chosen.start.isoformat(),
            "sequence": str(visit.record.sequence),
            "by": visit.reader.email,
        },
        site.now(),
    )
    return see_other(visit.base)


async def withdraw_page(request: Request) -> Response:
    visit = _visit(request)
    if isinstance(visit, Response):
        return visit
    if visit.pending is not None:
        return _pending(request, visit)
    return pages_of(request).render(request, "withdraw.html", visit=visit)


async def withdraw(request: Request) -> Response:
    visit = _visit(request)
    if isinstance(visit, Response):
        return visit
    fields = await form(request)
    if fields is None:
        return csrf_refused(request, visit.base)
    if visit.pending is None and fields.get("confirm") == "yes":
        site = site_of(request)
        site.store.add_request(RequestKind.WITHDRAW, {"pair": visit.pair.id, "by": visit.reader.email}, site.now())
    return see_other(visit.base if fields.get("confirm") == "yes" else visit.base + "/withdraw")


def when(session: Session, person: Person) -> str:
    return span(session.start, session.end, person.timezone)


async def goals_page(request: Request) -> Response:
    found = whose_link(request, LinkPurpose.GOALS)
    if isinstance(found, Response):
        return found
    _, pair, reader, partner = found
    site = site_of(request)
    waiting = [q for q in site.store.pending_requests() if q.kind is RequestKind.GOALS and q.args.get("pair") == pair.id]
    kept = site.store.goals([pair.id]).get(pair.id)
    shown = dict(waiting[-1].args) if waiting else {"goals": kept.goals, "homework": kept.homework} if kept else {}
    return pages_of(request).render(
        request,
        "goals.html",
        reader=reader,
        partner=partner,
        goals=shown.get("goals", ""),
        homework=shown.get("homework", ""),
        saved=bool(waiting or kept),
        limit=MAX_CHARS,
    )


async def save_goals(request: Request) -> Response:
    found = whose_link(request, LinkPurpose.GOALS)
    if isinstance(found, Response):
        return found
    _, pair, reader, _ = found
    fields = await form(request)
    here = request.url.path
    if fields is None:
        return csrf_refused(request, here)
    text = {name: tidy(fields.get(name, "")) for name in ("goals", "homework")}
    if any(text.values()):
        site = site_of(request)
        site.store.add_request(RequestKind.GOALS, {"pair": pair.id, **text, "by": reader.email}, site.now())
    return see_other(here)
