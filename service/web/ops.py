"""For operators: is the daemon ticking, and the figures Prometheus scrapes."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .site import Site

STUCK_AFTER_POLLS = 3  # a tick is late after one poll interval; stuck after this many


async def healthz(request: Request) -> Response:
    """200 while the daemon ticks; 503 when its last tick is older than a few poll intervals."""
    body = health(request.app.state.site)
    return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)


def health(site: Site) -> dict:
    """Whether one cohort's daemon ticks: its last tick, and how long ago."""
    last, now = site.store.last_tick(), site.now()
    lag = None if last is None else max(0.0, (now - last).total_seconds())
    stuck = lag is None or lag > (site.poll * STUCK_AFTER_POLLS).total_seconds()
    return {"status": "stuck" if stuck else "ok", "last_tick": last.isoformat() if last else None, "lag_seconds": lag}


async def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.site.metrics.registry), media_type=CONTENT_TYPE_LATEST)
