"""Use cases over the in-memory store, a recording mailer and a fixed configuration."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from service.domain.model import Cohort
from service.mail.templates import Templates
from service.usecases import Deps, Inputs
from tests.builders import cohort, pair, person
from tests.fakes.mailer import RecordingMailer
from tests.fakes.memory_store import MemoryStore

NOW = datetime(2027, 2, 1, tzinfo=UTC)
TEMPLATES = Templates()  # the shipped templates, read once


@dataclass
class FixedSource:
    """The configuration in force; `edit` replaces it as a file edit would."""

    inputs: Inputs
    problems: list[str] = field(default_factory=list)
    changed: bool = False

    def current(self) -> tuple[Inputs, bool]:
        changed, self.changed = self.changed, False
        return self.inputs, changed

    def edit(self, new: Cohort) -> None:
        self.inputs = Inputs(cohort=new, busy=self.inputs.busy, templates=self.inputs.templates)
        self.changed = True


def three_pairs() -> Cohort:
    maya = person("Maya Chen", "America/New_York")
    return cohort(
        pair(maya, person("Zoe Park", "America/Chicago"), "maya-zoe"),
        pair(maya, person("Noah Levi", "America/New_York"), "maya-noah"),
        pair(person("Jonas Berg", "Europe/Berlin"), person("Priya Rao", "Europe/London"), "jonas-priya"),
    )


@pytest.fixture
def deps() -> Deps:
    source = FixedSource(Inputs(cohort=three_pairs(), busy={}, templates=TEMPLATES))
    return Deps(store=MemoryStore(), mailer=RecordingMailer(), source=source)
