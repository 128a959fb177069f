from __future__ import annotations

import logging

import pytest

from service.logs import logger
from tests.fakes.logs import LogLines


@pytest.fixture(autouse=True)
def _forget_log_catchers():
    """Each test catches only its own log events."""
    yield
    for handler in [h for h in logger.handlers if isinstance(h, LogLines)]:
        logger.removeHandler(handler)
    logger.setLevel(logging.NOTSET)
