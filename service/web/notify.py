"""Google's notices that the cohort's calendar changed (push). Google calls this, not a
browser: no CSRF token, but the channel's secret token, compared in constant time. A
notice only queues a request (one at a time) that makes the daemon read the calendar."""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..domain.push import NOTIFY_PATH
from ..domain.requests import RequestKind
from .site import Site

BUSY_RETRY_SECONDS = 30


def routes() -> list[Route]:
    return [Route(NOTIFY_PATH, notify, methods=["POST"])]


async def notify(request: Request) -> Response:
    site: Site = request.app.state.site
    # One limit for all callers (Google posts from many addresses). Over it, 503: Google
    # retries those later, so a real notice is delayed by a flood, not lost.
    if not site.notify_limit.allow("google"):
        return Response(status_code=503, headers={"Retry-After": str(BUSY_RETRY_SECONDS)})
    channel = site.store.calendar_channel()
    headers = request.headers
    if channel is None or headers.get("x-goog-channel-id") != channel.id:
        return Response(status_code=404)  # no such channel (one stopped, or never ours)
    if not hmac.compare_digest(headers.get("x-goog-channel-token", "").encode(), channel.token.encode()):
        return Response(status_code=403)
    if headers.get("x-goog-resource-state") == "sync":  # the channel has just opened: nothing changed
        return Response(status_code=200)
    if not any(q.kind is RequestKind.CALENDAR_CHANGED for q in site.store.pending_requests()):
        site.store.add_request(RequestKind.CALENDAR_CHANGED, {"message": headers.get("x-goog-message-number", "")}, site.now())
    return Response(status_code=200)
