"""The coordinator's pages, behind a sign-in: the cohort at a glance, each pair, and the
same actions as the commands (queued as requests for the daemon)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..domain.outbox import RESENDABLE, State
from ..domain.requests import RequestKind
from ..mail.templates import TemplateProblem
from ..status import status_report
from ..usecases.requests import approval
from ..usecases.schedule import with_foreseen
from ..usecases.sending import written_now
from ..views import export_csv
from .chart import timeline_svg
from .history import history
from .pages import client, csrf_refused, form, host_of, pages_of, see_other, site_of
from .summary import PairStatus, Snapshot, overview, snapshot, timeline

SESSION_COOKIE = "signin"
PAGE_ROWS = 200  # pairs shown at once in the table


def routes() -> list[Route]:
    return [
        Route("/signin", sign_in_page, methods=["GET"]),
        Route("/signin", sign_in, methods=["POST"]),
        Route("/signout", sign_out, methods=["POST"]),
        Route("/", home, methods=["GET"]),
        Route("/pairs", pairs_table, methods=["GET"]),
        Route("/pairs/{pair_id}", pair_page, methods=["GET"]),
        Route("/pairs/{pair_id}/act", act, methods=["POST"]),
        Route("/pairs/{pair_id}/emails/{ref}", email_page, methods=["GET"]),
        Route("/approve", approve, methods=["POST"]),
        Route("/export.csv", export, methods=["GET"]),
    ]


Handler = Callable[[Request], Awaitable[Response]]


def coordinator(handler: Handler) -> Handler:
    """Only for a signed-in coordinator; anyone else is sent to the sign-in page."""

    @functools.wraps(handler)
    async def guarded(request: Request) -> Response:
        host = host_of(request)
        if not host.entry().lets_in(request.cookies.get(SESSION_COOKIE)):
            return see_other("/signin?next=" + quote(request.url.path + (f"?{request.url.query}" if request.url.query else "")))
        return await handler(request)

    return guarded


async def sign_in_page(request: Request) -> Response:
    ready = host_of(request).entry().ready()
    return pages_of(request).render(request, "signin.html", ready=ready, failed=False, next=_next(request.query_params.get("next")))


async def sign_in(request: Request) -> Response:
    host, pages = host_of(request), pages_of(request)
    if not host.sign_in_limit.allow(client(request)):
        return pages.notice(request, "Too many tries", "Please wait a few minutes before signing in again.", 429, back="/signin")
    fields = await form(request)
    if fields is None:
        return csrf_refused(request, "/signin")
    door = host.entry()
    if not door.opens(fields.get("password", "")):
        return pages.render(request, "signin.html", 401, ready=door.ready(), failed=True, next=_next(fields.get("next")))
    response = see_other(_next(fields.get("next")))
    # One sign-in for the whole site: beside other cohorts, it opens each of them and the overview.
    response.set_cookie(SESSION_COOKIE, door.cookie(), httponly=True, samesite="lax", secure=host.secure_cookies, path="/")
    return response


async def sign_out(request: Request) -> Response:
    if await form(request) is None:
        return csrf_refused(request, "/")
    response = see_other("/signin")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _next(target: str | None) -> str:
    """Only a path on this site: never off to another one after signing in."""
    if not target or not target.startswith("/") or target.startswith("//") or urlsplit(target).netloc:
        return "/"
    return target


def _snapshot(request: Request) -> Snapshot:
    site = site_of(request)
    return snapshot(site.store, site.inputs().cohort, site.now(), site.unplanned(), site.config_problems())


@coordinator
async def home(request: Request) -> Response:
    shot = _snapshot(request)
    figures = overview(shot)
    return pages_of(request).render(
        request, "overview.html", shot=shot, figures=figures, chart=timeline_svg(timeline(shot)), queued=request.query_params.get("queued")
    )


@coordinator
async def pairs_table(request: Request) -> Response:
    shot = _snapshot(request)
    query = request.query_params.get("q", "").strip()
    status = request.query_params.get("status", "")
    rows = [r for r in shot.rows if r.matches(query) and (not status or r.status == status)]
    return pages_of(request).render(
        request, "pairs.html", shot=shot, rows=rows[:PAGE_ROWS], found=len(rows), query=query, chosen=status, statuses=PairStatus.ALL
    )


@coordinator
async def pair_page(request: Request) -> Response:
    site = site_of(request)
    pair_id = request.path_params["pair_id"]
    shot = _snapshot(request)
    row = next((r for r in shot.rows if r.id == pair_id), None)
    if row is None:
        return pages_of(request).notice(request, "No such pair", f"There is no pair {pair_id} in this program.", 404, back="/pairs")
    records = shot.current.records.get(pair_id, [])
    messages = sorted(with_foreseen(site.store, shot.cohort, [pair_id]), key=lambda m: (m.sent_at or m.due, m.stage.value))
    asked = [q for q in site.store.requests() if q.args.get("pair") == pair_id]
    return pages_of(request).render(
        request,
        "pair.html",
        row=row,
        records=records,
        messages=messages,
        requests=asked,
        attention=[item["summary"] for item in shot.attention if item["pair_id"] == pair_id],
        problem=site.unplanned().get(pair_id),
        goals=site.store.goals([pair_id]).get(pair_id),
        history=history(site.store.history(pair_id)),
        resendable=[state.value for state in RESENDABLE],
        queued=request.query_params.get("queued"),
        error=request.query_params.get("error"),
        now=shot.now,
    )


@coordinator
async def email_page(request: Request) -> Response:
    """One email of a pair, written as it would be now: the copy that went out is in the
    outbox or the organiser's Sent folder."""
    site = site_of(request)
    pair_id, ref = request.path_params["pair_id"], request.path_params["ref"]
    row = next((m for m in with_foreseen(site.store, site.inputs().cohort, [pair_id]) if m.ref == ref), None)
    if row is None:
        return pages_of(request).notice(request, "No such email", f"{pair_id} has no email {ref}.", 404, back=f"/pairs/{quote(pair_id)}")
    try:
        message = written_now(site.store, site.links(), site.inputs(), row, site.now())
    except (TemplateProblem, KeyError) as problem:
        return pages_of(request).notice(
            request, "This email cannot be shown", f"It cannot be written now ({problem}).", 200, back=f"/pairs/{quote(pair_id)}"
        )
    text = message.get_body(("plain",))
    return pages_of(request).render(
        request,
        "email.html",
        row=row,
        message=message,
        text=text.get_content() if text is not None else "",
        invitation=any(part.get_content_type() == "text/calendar" for part in message.walk()),
    )


@coordinator
async def act(request: Request) -> Response:
    site = site_of(request)
    pair_id = request.path_params["pair_id"]
    back = f"/pairs/{quote(pair_id)}"
    fields = await form(request)
    if fields is None:
        return csrf_refused(request, back)
    if site.pair(pair_id) is None:
        return pages_of(request).notice(request, "No such pair", f"There is no pair {pair_id} in this program.", 404, back="/pairs")
    action, args = fields.get("action", ""), {"pair": pair_id}
    if action == "reschedule":
        number = fields.get("session", "")
        record = next((r for r in site.store.sessions([pair_id]) if str(r.session.number) == number and not r.cancelled), None)
        if record is None:
            return see_other(f"{back}?error=" + quote(f"{pair_id} has no booked session {number} to move"))
        try:
            at = datetime.fromisoformat(fields["at"]).replace(tzinfo=UTC).isoformat() if fields.get("at") else "auto"
        except ValueError:
            return see_other(f"{back}?error=" + quote("the new time is not a date and time like 2027-03-09T15:00"))
        args |= {"session": number, "at": at, "sequence": str(record.sequence)}
        kind = RequestKind.RESCHEDULE
    elif action == "withdraw":
        if fields.get("confirm") != "yes":
            return see_other(f"{back}?error=" + quote("tick the box to confirm the withdrawal"))
        kind = RequestKind.WITHDRAW
    elif action == "release":
        kind = RequestKind.RELEASE
    elif action == "resolve":
        ref = fields.get("message", "")
        if ref not in {m.ref for m in site.store.messages_needing_a_human() if m.state is State.UNCERTAIN and m.pair_id == pair_id}:
            return see_other(f"{back}?error=" + quote(f"no email {ref} of this pair is waiting to be settled"))
        args = {"message": ref, "pair": pair_id}
        kind = RequestKind.RESOLVE
    elif action == "resend":
        ref = fields.get("message", "")
        if ref not in {m.ref for m in site.store.messages([pair_id]) if m.state in RESENDABLE}:
            return see_other(f"{back}?error=" + quote(f"no email {ref} of this pair can be sent again"))
        args = {"message": ref, "pair": pair_id}
        kind = RequestKind.RESEND
    else:
        return see_other(f"{back}?error=" + quote("unknown action"))
    queued = site.store.add_request(kind, args, site.now())
    return see_other(f"{back}?queued={queued}")


@coordinator
async def approve(request: Request) -> Response:
    site = site_of(request)
    if await form(request) is None:
        return csrf_refused(request, "/")
    held = site.store.held_change()
    if held is None:
        return see_other("/")
    number = site.store.add_request(RequestKind.APPROVE, approval(held), site.now())
    return see_other(f"/?queued={number}")


@coordinator
async def export(request: Request) -> Response:
    """The same CSV as `mentorship export`, from the same report."""
    site = site_of(request)
    report = status_report(site.given(), site.store, now=site.now())
    return Response(
        export_csv(report), media_type="text/csv; charset=utf-8", headers={"Content-Disposition": 'attachment; filename="pairs.csv"'}
    )
