"""The service's log events, caught as the daemon would print them."""

from __future__ import annotations

import logging

from service.logs import logger


class LogLines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def lines(self) -> list[str]:
        return [record.getMessage() for record in self.records]


def capture() -> LogLines:
    """Catch every event logged from now on (until the test ends: see conftest.py)."""
    handler = LogLines()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return handler
