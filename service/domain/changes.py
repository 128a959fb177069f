"""An edit of the configuration, seen as a whole before any of it is applied: which pairs
join, which leave, which are re-paired, and whether it cancels too much to apply unasked.

A pair is its two people. The pairings name a pair by id, but when the people under an id
change, the old pair leaves and a new one starts, under the id with a generation suffix
("maya-zoe.2"), so its sessions, emails and calendar events are its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace

from .model import ChangeLimits, Cohort, Pair

GENERATION = "."  # never part of a pair id as the pairings give it


def base_id(key: str) -> str:
    """The id in the pairings of a pair's stored key."""
    return key.split(GENERATION, 1)[0]


def _people(pair: Pair) -> tuple[str, str]:
    return (pair.mentor.email, pair.mentee.email)


def identify(pairs: Sequence[Pair], known: Mapping[str, Pair]) -> tuple[Pair, ...]:
    """The pairings' pairs under their stored keys: the same id with the same two people
    keeps its key; the same id with someone else is a new generation."""
    latest: dict[str, tuple[int, Pair]] = {}
    for key, pair in known.items():
        generation = int(key.split(GENERATION, 1)[1]) if GENERATION in key else 1
        if generation >= latest.get(base_id(key), (0, pair))[0]:
            latest[base_id(key)] = (generation, pair)
    identified = []
    for pair in pairs:
        generation, before = latest.get(pair.id, (0, pair))
        if generation == 0 or _people(before) == _people(pair):
            identified.append(pair if generation <= 1 else replace(pair, id=f"{pair.id}{GENERATION}{generation}"))
        else:
            identified.append(replace(pair, id=f"{pair.id}{GENERATION}{generation + 1}"))
    return tuple(identified)


@dataclass(frozen=True, kw_only=True)
class ChangeSet:
    joined: tuple[str, ...]  # new pairs
    left: tuple[str, ...]  # pairs gone from the pairings whose coming sessions would be cancelled
    repaired: tuple[tuple[str, str], ...]  # (leaving key, new key): same id, other people
    before: int  # pairs in the program before the edit

    @property
    def cancelled(self) -> tuple[str, ...]:
        """Every pair whose coming sessions the edit cancels."""
        return self.left + tuple(old for old, _ in self.repaired)

    def needs_approval(self, limits: ChangeLimits) -> bool:
        count = len(self.cancelled)
        return count > limits.pairs or count > limits.share * max(self.before, 1)

    @property
    def fingerprint(self) -> str:
        """Which cancellations this is, in short."""
        return hashlib.sha256("\n".join(sorted(self.cancelled)).encode()).hexdigest()[:16]

    def __bool__(self) -> bool:
        return bool(self.joined or self.left or self.repaired)


def change_set(identified: Sequence[Pair], known: Mapping[str, Pair], live: set[str]) -> ChangeSet:
    """What the pairings (under their stored keys) change, given the pairs remembered and
    those with coming sessions (`live`)."""
    keys = {pair.id for pair in identified}
    new = [pair.id for pair in identified if pair.id not in known]
    replaced = {base_id(key): key for key in live if key not in keys and base_id(key) in {base_id(k) for k in new}}
    repaired = tuple((replaced[base_id(key)], key) for key in new if base_id(key) in replaced)
    return ChangeSet(
        joined=tuple(key for key in new if base_id(key) not in replaced),
        left=tuple(sorted(key for key in live if key not in keys and key not in replaced.values())),
        repaired=repaired,
        before=len(live),
    )


def while_held(identified: Sequence[Pair], known: Mapping[str, Pair], change: ChangeSet, cohort: Cohort) -> Cohort:
    """The cohort while an edit waits for approval: every pair it would cancel stays as it
    was remembered, and the pairs that would replace them wait too."""
    waiting = {new for _, new in change.repaired}
    kept = tuple(known[key] for key in change.cancelled if key in known)
    return replace(cohort, pairs=tuple(p for p in identified if p.id not in waiting) + kept)


def describe(change: ChangeSet, names: Mapping[str, Pair]) -> tuple[str, ...]:
    """The change set in sentences, for `changes`, `status` and the digest."""

    def who(key: str) -> str:
        pair = names.get(key)
        return f"{key} ({pair.mentor.name} and {pair.mentee.name})" if pair else key

    lines = [f"joins: {who(key)}" for key in change.joined]
    lines += [f"leaves: {who(key)}; its coming sessions are cancelled" for key in change.left]
    for old, new in change.repaired:
        lines.append(f"re-paired: {who(old)} ends; {who(new)} starts with its own welcome and sessions")
    return tuple(lines)


def settle(cohort: Cohort, known: Mapping[str, Pair], live: set[str], approved: Collection[str]) -> tuple[Cohort, ChangeSet, bool]:
    """The cohort in force after an edit: the pairings under their stored keys, or, while
    an edit that cancels too much waits for approval, with those pairs kept as they were.
    An approval holds for the cancellations approved or fewer. Returns the cohort with the
    change set and whether the change is held."""
    identified = identify(cohort.pairs, known)
    change = change_set(identified, known, live)
    if change.needs_approval(cohort.hold_above) and not set(change.cancelled) <= set(approved):
        return while_held(identified, known, change, cohort), change, True
    return replace(cohort, pairs=identified), change, False
