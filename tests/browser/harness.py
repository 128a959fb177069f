"""An in-process daemon with its web pages: the real controller, store, templates and app,
a simulated clock and a recording mail transport."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

from service import bootstrap
from service.adapters.clock import SimulatedClock
from service.adapters.store import open_store
from service.runner import run_simulated
from service.usecases import Deps
from service.web.metrics import MeteredController, Metrics
from service.web.serve import make_site
from tests.fakes.mailer import RecordingMailer

ROOT = Path(__file__).parents[2]
START = datetime(2027, 2, 1, tzinfo=UTC)
INVITATIONS_OUT = datetime(2027, 2, 25, tzinfo=UTC)  # welcomes and invitations have gone out
PUBLIC = "https://mentoring.example.org"
LINK = re.compile(r"(https?://\S+/session/[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+)")


def cohort_folder(tmp_path: Path, public_url: str = PUBLIC) -> Path:
    folder = tmp_path / "cohort"
    shutil.copytree(ROOT / "config", folder)
    config = folder / "cohort.example.yaml"
    config.write_text(config.read_text(encoding="utf-8") + f"\nhttp:\n  public_url: {public_url}\n", encoding="utf-8")
    return folder


class WebDaemon:
    def __init__(self, folder: Path, state: Path, clock: SimulatedClock | None = None):
        self.clock = clock or SimulatedClock(START)
        self.watcher = bootstrap.ConfigWatcher.start(folder / "cohort.example.yaml", None, self.clock)
        self.store = open_store(state)
        self.mailer = RecordingMailer()
        self.deps = Deps(store=self.store, mailer=self.mailer, source=self.watcher)
        self.metrics = Metrics(self.store)
        self.controller = MeteredController(self.deps, self.metrics)
        given = self.watcher.current()[0]
        self.site = make_site(
            self.store,
            self.clock,
            lambda: self.controller.inputs or given,
            lambda: self.watcher.given,
            poll=self.watcher.configuration.poll,
            public_url=self.watcher.configuration.public_url,
            metrics=self.metrics,
            unplanned=lambda: self.controller.unplanned,
            config_problems=lambda: self.watcher.problems,
        )
        self.deps.links = self.site.links()

    def run(self, until: datetime | None = None) -> None:
        run_simulated(self.controller, self.clock, until)

    def tick(self):
        return self.controller.tick(self.clock.now())

    def emails_to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.mailer.sent if address in str(m["To"])]


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return part.get_content()


def session_link(message: EmailMessage) -> str:
    found = LINK.search(text_of(message))
    assert found, "no Can't make it? link in the email"
    return found.group(1)
