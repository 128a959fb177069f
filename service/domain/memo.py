"""What a result was last worked out from, so that the work is skipped while that stays
the same. Kept in memory only: a process works everything out once when it starts."""

from __future__ import annotations

from collections.abc import Collection, Hashable
from dataclasses import dataclass, field, replace
from datetime import datetime

from .model import Cohort


@dataclass
class WorkedFrom:
    """By key, the basis a result was last worked out from, under one cohort's settings
    (the cohort without its pairs): new settings forget every basis. A result may hold
    only until a moment (`until`): from then on it is worked out again."""

    settings: Cohort | None = None
    bases: dict[Hashable, tuple[object, datetime | None]] = field(default_factory=dict)

    def settle(self, cohort: Cohort) -> None:
        settings = replace(cohort, pairs=())
        if settings != self.settings:
            self.settings = settings
            self.bases.clear()

    def same(self, key: Hashable, basis: object, at: datetime | None = None) -> bool:
        """Whether the result of `key` was worked out from `basis` and still holds `at`."""
        kept = self.bases.get(key)
        if kept is None or kept[0] != basis:
            return False
        until = kept[1]
        return until is None or at is None or at < until

    def keep(self, key: Hashable, basis: object, until: datetime | None = None) -> None:
        self.bases[key] = (basis, until)

    def keep_only(self, keys: Collection[Hashable]) -> None:
        """Forget the results of every other key (gone: never worked out again)."""
        for key in self.bases.keys() - keys:
            del self.bases[key]

    def ending_by(self, moment: datetime) -> list[Hashable]:
        """The keys whose result stops holding by `moment`."""
        return [key for key, (_, until) in self.bases.items() if until is not None and until <= moment]

    def earliest(self) -> datetime | None:
        """The first moment a result stops holding (None: all hold for good)."""
        return min((until for _, until in self.bases.values() if until is not None), default=None)
