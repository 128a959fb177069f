"""What a result was last worked out from, so that the work is skipped while that stays
the same. Kept in memory only: a process works everything out once when it starts."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field, replace

from .model import Cohort


@dataclass
class WorkedFrom:
    """By key, the basis a result was last worked out from, under one cohort's settings
    (the cohort without its pairs): new settings forget every basis."""

    settings: Cohort | None = None
    bases: dict[Hashable, object] = field(default_factory=dict)

    def settle(self, cohort: Cohort) -> None:
        settings = replace(cohort, pairs=())
        if settings != self.settings:
            self.settings = settings
            self.bases.clear()

    def same(self, key: Hashable, basis: object) -> bool:
        return key in self.bases and self.bases[key] == basis

    def keep(self, key: Hashable, basis: object) -> None:
        self.bases[key] = basis

    def forget(self, key: Hashable) -> None:
        self.bases.pop(key, None)
