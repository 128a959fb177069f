"""The web pages served beside the daemon: uvicorn on a thread of its own."""

from __future__ import annotations

import threading
import time

import uvicorn
from starlette.applications import Starlette


class WebError(Exception):
    pass


def parse_address(text: str) -> tuple[str, int]:
    """'127.0.0.1:8080' or '[::1]:8080' -> (host, port); ValueError otherwise."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not an address like 127.0.0.1:8080")
    return host, int(port)


class WebServer:
    """Serves `app` until stopped; started and stopped from the daemon's thread."""

    def __init__(self, app: Starlette, host: str, port: int):
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off", server_header=False)
        self.server = uvicorn.Server(config)
        self.address = f"{host}:{port}"
        self._thread = threading.Thread(target=self.server.run, name="web", daemon=True)

    def start(self, timeout: float = 10.0) -> None:
        """Listening when this returns; WebError if the address cannot be had."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise WebError(f"cannot serve the web pages on {self.address} (in use, or not an address of this machine)")
            time.sleep(0.02)

    def stop(self) -> None:
        """Finish the requests under way and close the port."""
        self.server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
