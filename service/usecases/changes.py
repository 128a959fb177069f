"""An edit as a change set: applied at once, or held for the coordinator's approval when
it would cancel too much."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime

from ..domain.changes import ChangeSet, describe, settle
from ..domain.outbox import by_pair
from ..domain.ports import HeldChange, Store
from ..logs import event
from .deps import Deps, Inputs


def coming(store: Store, now: datetime) -> set[str]:
    """Pairs with sessions still to come."""
    return {
        pair_id for pair_id, records in by_pair(store.sessions()).items() if any(not r.cancelled and r.session.start > now for r in records)
    }


def read_change(store: Store, inputs: Inputs, now: datetime) -> tuple[Inputs, ChangeSet, HeldChange | None]:
    """The configuration in force, the change the files make, and the change held for
    approval if it is: reads the store, writes nothing."""
    known = store.known_pairs()
    cohort, change, held = settle(inputs.cohort, known, coming(store, now), store.approved_change())
    waiting = None
    if held:
        names = {**known, **{p.id: p for p in cohort.pairs}}
        waiting = HeldChange(fingerprint=change.fingerprint, summary=describe(change, names), cancelled=change.cancelled)
    return replace(inputs, cohort=cohort), change, waiting


def in_force(deps: Deps, inputs: Inputs, now: datetime) -> Inputs:
    """The configuration the daemon acts on, recording an edit that waits for approval."""
    store = deps.store
    current, change, waiting = read_change(store, inputs, now)
    if waiting != store.held_change():
        store.hold_change(waiting)
        if waiting is not None:
            event(
                now,
                "change_held",
                f"an edit would cancel {len(change.cancelled)} pair(s): held until `mentorship approve`",
                level=logging.WARNING,
                pairs=len(change.cancelled),
                fingerprint=change.fingerprint,
            )
    if not change.cancelled and store.approved_change():
        store.approve_change(())  # applied: a later edit needs its own approval
    return current
