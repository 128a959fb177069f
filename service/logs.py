"""Logs as events: a name and fields, printed as readable lines or as one JSON object
per line. The time shown is the daemon's `now` (a simulated clock's, in a rehearsal)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime
from typing import Any

logger = logging.getLogger("mentorship")


def event(now: datetime, name: str, text: str, *, level: int = logging.INFO, **fields: Any) -> None:
    """Log one thing that happened: `name` says what (message_sent), `text` says it in
    words, `fields` carry pair, stage, recipient, state, attempt..."""
    logger.log(level, text, extra={"event": name, "at": now, "fields": fields})


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        at = getattr(record, "at", None) or datetime.fromtimestamp(record.created)
        line = f"{at:%Y-%m-%d %H:%M} UTC  {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        at = getattr(record, "at", None) or datetime.fromtimestamp(record.created).astimezone()
        entry: dict[str, Any] = {
            "at": at.isoformat(),
            "level": record.levelname.lower(),
            "event": getattr(record, "event", "log"),
            "message": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure(log_format: str = "text") -> None:
    """Send the service's events to standard output, readable or as JSON lines."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
