"""The ASGI application: routes, and the rules every page follows (security headers)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..logs import logger
from . import dashboard, met, notify, ops, participant
from .pages import Host, Pages
from .site import Site

# No script runs on these pages; links carry personal tokens, so no Referer leaves them.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self';"
    " frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def create_app(site: Site) -> Starlette:
    routes = [
        Route("/healthz", ops.healthz),
        Route("/metrics", ops.metrics),
        *participant.routes(),
        *met.routes(),
        *dashboard.routes(),
        *notify.routes(),
    ]
    return dressed(routes, site)


def dressed(routes: Sequence[BaseRoute], site: Host) -> Starlette:
    """An application of these routes that follows the rules of every page."""
    pages = Pages(site)
    app = Starlette(routes=list(routes), middleware=[Middleware(BaseHTTPMiddleware, dispatch=_headers)])
    app.state.site = site
    app.state.pages = pages
    app.add_exception_handler(404, pages.not_found)
    app.add_exception_handler(405, pages.not_found)
    app.add_exception_handler(Exception, _failed)
    return app


async def _failed(request: Request, exc: Exception) -> Response:
    """A bug or an outage behind a page: logged, and a plain page for the reader."""
    site: Host = request.app.state.site
    logger.error(
        f"web page {request.url.path.split('/')[1] or 'overview'} failed ({type(exc).__name__})",
        exc_info=exc,
        extra={"event": "web_failed", "at": site.now(), "fields": {}},
    )
    page = request.app.state.pages.notice(
        request, "Something went wrong", "Nothing was changed. Please try again in a few minutes, or reply to the email.", 500
    )
    page.headers.update(SECURITY_HEADERS)
    return page


async def _headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    response = await call_next(request)
    prefix = request.scope.get("root_path", "")
    location = response.headers.get("location", "")
    if prefix and location.startswith("/") and not location.startswith(("//", prefix + "/")):
        response.headers["location"] = prefix + location  # a redirect within a cohort served under its prefix
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response
