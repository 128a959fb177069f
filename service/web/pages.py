"""Rendering pages, and what every form handler shares (CSRF, redirects, the caller)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ..mail.templates import DEFAULT_DIR
from ..timefmt import clock, local, long_date, span, zone_label
from .security import Door, RateLimiter, csrf_ok, csrf_token, new_csrf_cookie
from .site import Site

TEMPLATE_DIR = DEFAULT_DIR.parent / "web"
CSRF_COOKIE = "csrf"
MAX_FORM_BYTES = 16_384


class Host(Protocol):
    """What rendering and signing in need of a site: one cohort's, or the fleet's overview."""

    @property
    def key(self) -> bytes: ...
    @property
    def sign_in_limit(self) -> RateLimiter: ...
    @property
    def in_fleet(self) -> bool: ...
    @property
    def secure_cookies(self) -> bool: ...
    def now(self) -> datetime: ...
    def entry(self) -> Door: ...
    def heading(self) -> str: ...


class Pages:
    """Renders the templates, with the CSRF token of the browser at hand."""

    def __init__(self, site: Host, folder: Path = TEMPLATE_DIR):
        self.site = site
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(folder),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(
            span=lambda s, zone: span(s.start, s.end, zone),
            local_time=lambda moment, zone: f"{clock(local(moment, zone))} {zone_label(local(moment, zone))}",
            local_day=lambda moment, zone: long_date(local(moment, zone).date()),
            utc=lambda moment: f"{moment.astimezone(UTC):%Y-%m-%d %H:%M}",
            moment=datetime.fromisoformat,
        )

    def render(self, request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        cookie = request.cookies.get(CSRF_COOKIE)
        fresh = cookie is None
        cookie = cookie or new_csrf_cookie()
        context.setdefault("cohort_name", self.site.heading())
        context.setdefault("base", within(request, ""))  # links stay under a cohort's prefix
        context.setdefault("in_fleet", self.site.in_fleet)
        html = self.env.get_template(name).render(csrf=csrf_token(self.site.key, cookie), **context)
        response = HTMLResponse(html, status_code=status)
        if fresh:
            response.set_cookie(CSRF_COOKIE, cookie, httponly=True, samesite="lax", secure=self.site.secure_cookies, path="/")
        return response

    def notice(self, request: Request, title: str, text: str, status: int = 200, *, back: str | None = None) -> HTMLResponse:
        """A friendly page instead of an error."""
        return self.render(request, "notice.html", status, title=title, text=text, back=back)

    async def not_found(self, request: Request, exc: Exception) -> Response:
        return self.notice(request, "Nothing here", "There is no page at this address.", 404)


def pages_of(request: Request) -> Pages:
    return request.app.state.pages


def site_of(request: Request) -> Site:
    return request.app.state.site


def host_of(request: Request) -> Host:
    return request.app.state.site


def within(request: Request, path: str) -> str:
    """A path of this site under the prefix it is served at (/cohorts/<name> beside other cohorts)."""
    return request.scope.get("root_path", "") + path


async def form(request: Request) -> dict[str, str] | None:
    """The posted form's fields (the first value of each), or None when it is not one or
    its CSRF token does not match the browser's cookie."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return None
    fields = {key: values[0] for key, values in parse_qs(body.decode("utf-8", "replace")).items()}
    if not csrf_ok(host_of(request).key, request.cookies.get(CSRF_COOKIE), fields.get("csrf")):
        return None
    return fields


def csrf_refused(request: Request, back: str) -> Response:
    return pages_of(request).notice(
        request,
        "Please try that again",
        "This form had expired or did not come from this site, so nothing was done. Reload the page and try again.",
        403,
        back=back,
    )


def see_other(url: str) -> Response:
    return RedirectResponse(url, status_code=303)


def client(request: Request) -> str:
    return request.client.host if request.client else "unknown"
