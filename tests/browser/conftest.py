from __future__ import annotations

import shutil

import pytest
from starlette.testclient import TestClient

from service.adapters.clock import SimulatedClock
from service.logs import logger
from service.web.app import create_app
from tests.browser.harness import INVITATIONS_OUT, PUBLIC, WebDaemon, cohort_folder


@pytest.fixture(scope="session")
def prepared(tmp_path_factory):
    """The example cohort run until its welcomes and invitations went out (links in them),
    once; each test starts from a copy."""
    folder = tmp_path_factory.mktemp("prepared")
    running = WebDaemon(cohort_folder(folder), folder / "state.sqlite")
    running.run(until=INVITATIONS_OUT)
    moment, sent = running.clock.now(), list(running.mailer.sent)
    running.store.close()
    return folder, moment, sent


@pytest.fixture
def daemon(prepared, tmp_path):
    folder, moment, sent = prepared
    shutil.copytree(folder / "cohort", tmp_path / "cohort")
    shutil.copy(folder / "state.sqlite", tmp_path / "state.sqlite")
    running = WebDaemon(tmp_path / "cohort", tmp_path / "state.sqlite", SimulatedClock(moment))
    running.mailer.sent.extend(sent)
    handler = running.metrics.log_handler()
    logger.addHandler(handler)
    yield running
    logger.removeHandler(handler)
    running.store.close()


@pytest.fixture
def web(daemon):
    with TestClient(create_app(daemon.site), base_url=PUBLIC, follow_redirects=False) as client:
        yield client
