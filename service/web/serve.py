"""The web pages beside the daemon: from its pieces to a listening server."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import timedelta

from ..domain.ports import Clock, Store
from ..logs import logger
from ..usecases import Inputs
from .app import create_app
from .metrics import Metrics
from .security import signing_key
from .server import WebServer, parse_address
from .site import Site


def make_site(
    store: Store,
    clock: Clock,
    inputs: Callable[[], Inputs],
    given: Callable[[], Inputs],
    *,
    poll: timedelta,
    public_url: str | None,
    metrics: Metrics | None = None,
    unplanned: Callable[[], Mapping[str, str]] = dict,
    config_problems: Callable[[], list[str]] = list,
) -> Site:
    return Site(
        store=store,
        clock=clock,
        inputs=inputs,
        given=given,
        key=signing_key(store),
        poll=poll,
        metrics=metrics or Metrics(store),
        public_url=public_url,
        unplanned=unplanned,
        config_problems=config_problems,
    )


def serve(site: Site, address: str) -> WebServer:
    """Listening on `address` when it returns (ValueError for a bad address, WebError when taken)."""
    host, port = parse_address(address)
    server = WebServer(create_app(site), host, port)
    server.start()
    logger.addHandler(site.metrics.log_handler())
    logger.log(logging.INFO, f"web pages on http://{address}/", extra={"event": "web_started", "at": site.now(), "fields": {}})
    return server
