"""Two cohorts of one state folder, each run in-process on a simulated clock until its
invitations went out, with the links their emails carry made by the fleet's pages."""

from __future__ import annotations

import shutil
from pathlib import Path

from service import bootstrap
from service.adapters.clock import SimulatedClock
from service.adapters.store import open_store
from service.domain.ports import Purpose
from service.fleet_view import FleetView, Held, Worked
from service.runner import run_simulated
from service.usecases import Deps
from service.web.cohorts import FleetSite
from tests.browser.harness import INVITATIONS_OUT, PUBLIC, ROOT, START
from tests.fakes.mailer import RecordingMailer

# Spring has the example's 14 pairs; autumn its first five.
COHORTS = {"spring": "Spring 2027 Engineering Mentorship", "autumn": "Autumn 2027 Design Mentorship"}


def cohorts_folder(tmp: Path, public_url: str = PUBLIC) -> Path:
    folder = tmp / "cohorts"
    folder.mkdir()
    shutil.copytree(ROOT / "config" / "busy", folder / "busy")
    rows = (ROOT / "config" / "pairings.example.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    (folder / "spring.csv").write_text("".join(rows), encoding="utf-8")
    (folder / "autumn.csv").write_text("".join(rows[:6]), encoding="utf-8")
    example = (ROOT / "config" / "cohort.example.yaml").read_text(encoding="utf-8")
    for name, title in COHORTS.items():
        text = example.replace("name: Spring 2027 Engineering Mentorship", f"name: {title}")
        text = text.replace("pairings: pairings.example.csv", f"pairings: {name}.csv")
        (folder / f"{name}.yaml").write_text(text + f"\nhttp:\n  public_url: {public_url}\n", encoding="utf-8")
    return folder


class Cohort:
    """One cohort's daemon, as the replica holding it would run it."""

    def __init__(self, folder: Path, state: Path, name: str, clock: SimulatedClock, site: FleetSite):
        self.name, self.clock = name, clock
        self.watcher = bootstrap.ConfigWatcher.start(folder / f"{name}.yaml", None, clock)
        self.store = open_store(state / f"{name}.sqlite")
        self.mailer = RecordingMailer()
        self.deps = Deps(store=self.store, mailer=self.mailer, source=self.watcher, links=site.links_for(name))
        self.controller = site.controller_for(name, self.deps, self.watcher.configuration.poll)  # as the fleet makes it

    def run(self, until) -> None:
        run_simulated(self.controller, self.clock, until)

    def tick(self):
        return self.controller.tick(self.clock.now())

    def emails_to(self, address: str) -> list:
        return [m for m in self.mailer.sent if address in str(m["To"])]


class TwoCohorts:
    """Spring is worked by this process (its worker's clock and view); autumn by another
    replica, read from its store and file alone."""

    def __init__(self, folder: Path, state: Path, moment=START):
        self.folder, self.state = folder, state
        self.daemons: dict[str, Cohort] = {}
        self.view = FleetView(folder, str(state), Purpose.REAL, self.held)
        self.site = FleetSite(self.view)
        for name in COHORTS:
            open_store(state / f"{name}.sqlite").close()  # the state exists before its links are made
            self.daemons[name] = Cohort(folder, state, name, SimulatedClock(moment), self.site)

    def held(self, name: str) -> Held:
        daemon = self.daemons.get(name)
        if name == "spring" and daemon is not None:
            worked = Worked(daemon.controller.inputs, daemon.controller.unplanned, daemon.watcher.problems, daemon.clock)
            return Held(here=worked, holder="this-host:1 (this replica)")
        return Held(holder="other-host:2")

    def run(self, until=INVITATIONS_OUT) -> None:
        for daemon in self.daemons.values():
            daemon.run(until)

    def close(self) -> None:
        self.view.close()
        for daemon in self.daemons.values():
            daemon.store.close()
