"""The pages of a state holding several cohorts (`run --cohorts DIR --http`): at / an
overview of every cohort and all together; under /cohorts/NAME/ each cohort's own
dashboard and participant pages, the very pages one cohort serves, given that cohort's
store. Pages only read stores and queue requests, so any replica can serve any cohort:
the replica holding it applies what they ask.

One sign-in opens them all: it takes the password every cohort keeps (`set-password
--cohorts DIR` sets it in each) and is bound to all of them.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from urllib.parse import quote

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import Receive, Scope, Send

from ..adapters.clock import SystemClock
from ..fleet_view import CohortView, FleetView, Held, together
from ..mail.links import PersonalLinks
from ..usecases import Controller, Deps
from . import dashboard, ops
from .app import create_app, dressed
from .metrics import ByCohort, MeteredController, Metrics
from .pages import pages_of
from .security import SECRET_ENV, Door, RateLimiter, signing_key
from .server import WebServer, parse_address
from .site import Site

PREFIX = "/cohorts"


class FleetSite:
    """What the overview and the sign-in are given, and each cohort's Site, made when its
    state first exists and kept."""

    in_fleet = True

    def __init__(self, view: FleetView):
        self.view = view
        self.sign_in_limit = RateLimiter(10, 300)
        self.door = Door(lambda: self.key, self._hashes, self.now)
        self._cohorts: dict[str, tuple[Site, Starlette]] = {}
        self._lock = threading.Lock()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(ByCohort(lambda: {name: site.metrics.registry for name, site in self.sites().items()}))

    # What a page host gives (see pages.Host)

    @property
    def key(self) -> bytes:
        """Signs the fleet's sign-ins and forms: the shared secret, or one made from every
        started cohort's own key (the same on every replica)."""
        given = os.environ.get(SECRET_ENV, "").strip()
        if given:
            return given.encode()
        keys = [site.key for site in self.sites().values()]
        return hashlib.sha256(b"cohorts\x1f" + b"\x1f".join(keys)).hexdigest().encode()

    @property
    def secure_cookies(self) -> bool:
        return any(site.secure_cookies for site in self.sites().values())

    def now(self) -> datetime:
        return SystemClock().now()  # sign-ins last in real time, whatever a rehearsal's clock says

    def entry(self) -> Door:
        return self.door

    def heading(self) -> str:
        return "All cohorts"

    # Each cohort

    def site(self, name: str) -> Site | None:
        """The cohort's Site; None while it has no state (or no valid file) yet."""
        found = self._cohorts.get(name)
        if found is None:
            found = self._make(name)
        return found[0] if found else None

    def app(self, name: str) -> Starlette | None:
        found = self._cohorts.get(name) or self._make(name)
        return found[1] if found else None

    def links_for(self, name: str) -> PersonalLinks | None:
        """The links the cohort's emails carry: to its pages under /cohorts/NAME."""
        site = self.site(name)
        return site.links() if site else None

    def public_url_of(self, name: str) -> str | None:
        """The public address of the cohort's pages, under /cohorts/NAME."""
        site = self.site(name)
        return site.public_url if site else None

    def controller_for(self, name: str, deps: Deps, poll: timedelta) -> Controller:
        """The daemon of a cohort this replica takes, timing its ticks for the cohort's
        figures."""
        site = self.site(name)
        return MeteredController(deps, site.metrics, poll=poll) if site else Controller(deps, poll=poll)

    def _make(self, name: str) -> tuple[Site, Starlette] | None:
        view = self.view.view(name)
        if view is None:
            return None
        store, loaded = view.store(), view.loaded()
        if store is None or loaded is None:
            return None
        configuration = loaded[0]
        clock = _CohortClock(view, lambda: self.view.held(name))
        site = Site(
            store=store,
            clock=clock,
            inputs=lambda: view.inputs(self.view.held(name), clock.now()),
            given=view.given,
            key=signing_key(store),
            poll=configuration.poll,
            metrics=Metrics(store),
            public_url=f"{configuration.public_url.rstrip('/')}{PREFIX}/{name}" if configuration.public_url else None,
            unplanned=lambda: view.unplanned(self.view.held(name), clock.now()),
            config_problems=lambda: view.problems(self.view.held(name)),
            door=self.door,
        )
        made = (site, create_app(site))
        with self._lock:
            return self._cohorts.setdefault(name, made)

    def sites(self) -> dict[str, Site]:
        """Every started cohort's site, by name."""
        return {name: site for name, (site, _) in sorted(self._started().items())}

    def _started(self) -> dict[str, tuple[Site, Starlette]]:
        for name in self.view.views():
            if name not in self._cohorts:
                self._make(name)
        return dict(self._cohorts)

    def _hashes(self) -> list[str | None]:
        return [site.store.password_hash() for site in self.sites().values()]

    async def dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        """/cohorts/NAME/...: that cohort's own pages."""
        name = scope["path_params"]["name"]
        app = self.app(name)
        if app is None:
            request = Request(scope, receive)
            page = pages_of(request).notice(
                request, "No such cohort", f"There is no cohort {name} here, or it has not started yet.", 404, back="/"
            )
            await page(scope, receive, send)
            return
        await app(scope, receive, send)


class _CohortClock:
    """The cohort's time: its worker's clock where this replica works it."""

    def __init__(self, view: CohortView, held: Callable[[], Held]):
        self.view, self.held = view, held

    def now(self) -> datetime:
        return self.view.clock(self.held()).now()


async def healthz(request: Request) -> Response:
    """For a load balancer in front of the replicas: 200 while every started cohort's daemon
    ticks (whichever replica holds it), 503 when one is stuck; each cohort's own state."""
    host: FleetSite = request.app.state.site
    each = {name: ops.health(site) for name, site in host.sites().items()}
    ok = all(state["status"] == "ok" for state in each.values())
    return JSONResponse({"status": "ok" if ok else "stuck", "cohorts": each}, status_code=200 if ok else 503)


async def metrics(request: Request) -> Response:
    """Every started cohort's figures, labelled with its name, for one Prometheus target per replica."""
    host: FleetSite = request.app.state.site
    return Response(generate_latest(host.registry), media_type=CONTENT_TYPE_LATEST)


@dashboard.coordinator
async def overview(request: Request) -> Response:
    host: FleetSite = request.app.state.site
    each = host.view.figures()
    return pages_of(request).render(request, "cohorts.html", cohorts=each, total=together(each), prefix=PREFIX, quote=quote)


def create_fleet_app(host: FleetSite) -> Starlette:
    routes = [
        Route("/signin", dashboard.sign_in_page, methods=["GET"]),
        Route("/signin", dashboard.sign_in, methods=["POST"]),
        Route("/signout", dashboard.sign_out, methods=["POST"]),
        Route("/", overview, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Mount(PREFIX + "/{name}", app=host.dispatch),
    ]
    return dressed(routes, host)


def serve_cohorts(host: FleetSite, address: str) -> WebServer:
    """Listening on `address` when it returns (ValueError for a bad address, WebError when taken)."""
    name, port = parse_address(address)
    server = WebServer(create_fleet_app(host), name, port)
    server.start()
    return server
