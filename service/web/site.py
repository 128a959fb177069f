"""What the pages are given: the store, the clock, the configuration in force, keys."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ..domain.model import Pair
from ..domain.ports import Clock, Store
from ..mail.links import PersonalLinks
from ..usecases import Inputs
from .metrics import Metrics
from .security import Door, RateLimiter


@dataclass
class Site:
    store: Store
    clock: Clock
    inputs: Callable[[], Inputs]  # the configuration in force, pairs under their stored keys
    given: Callable[[], Inputs]  # the configuration as the files say it (what `mentorship export` reads)
    key: bytes  # signs links, sign-ins and CSRF tokens
    poll: timedelta  # the daemon's poll interval: a tick older than a few of these is stuck
    metrics: Metrics
    public_url: str | None = None
    unplanned: Callable[[], Mapping[str, str]] = dict  # pairs the daemon could not schedule, and why
    config_problems: Callable[[], list[str]] = list  # why the last configuration edit was not applied
    # Participant pages: a person clicks a few times; a script guessing tokens does not get far.
    participant_limit: RateLimiter = field(default_factory=lambda: RateLimiter(30, 60))
    sign_in_limit: RateLimiter = field(default_factory=lambda: RateLimiter(10, 300))
    # Google's notices: a burst follows each batch of writes; a flood of forged ones is cut short.
    notify_limit: RateLimiter = field(default_factory=lambda: RateLimiter(300, 60))
    door: Door | None = None  # where the state holds several cohorts: one sign-in for them all

    def entry(self) -> Door:
        """The sign-in that opens the coordinator's pages: the fleet's, else this cohort's password."""
        return self.door or Door(lambda: self.key, lambda: [self.store.password_hash()], self.now)

    @property
    def in_fleet(self) -> bool:
        """Served beside other cohorts, under /cohorts/<name> (they share the sign-in)."""
        return self.door is not None

    def heading(self) -> str:
        return self.inputs().cohort.name

    def now(self) -> datetime:
        return self.clock.now()

    def pair(self, pair_id: str) -> Pair | None:
        """A pair of the program, or one that left it but is still remembered."""
        found = next((p for p in self.inputs().cohort.pairs if p.id == pair_id), None)
        return found or self.store.known_pairs([pair_id]).get(pair_id)

    def links(self) -> PersonalLinks | None:
        """The links emails carry, when people can reach the pages."""
        return PersonalLinks(self.public_url, self.key) if self.public_url else None

    @property
    def secure_cookies(self) -> bool:
        return bool(self.public_url and self.public_url.startswith("https://"))
