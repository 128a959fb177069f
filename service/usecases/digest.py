"""The coordinator's digest: at most one a day, and only when there is something new."""

from __future__ import annotations

import json
import logging
from datetime import datetime

from ..domain.availability import local_moment
from ..domain.model import Role
from ..domain.outbox import Wanted
from ..domain.stages import Stage
from ..domain.timeline import MORNING
from ..logs import event
from ..mail import wording
from ..timefmt import clock, local, long_date, zone_label
from .deps import Deps, Inputs


def attention(deps: Deps, unplanned: dict[str, str], config_problems: list[str], now: datetime) -> list[dict[str, str]]:
    """Everything that needs a human now, as sentences."""
    store = deps.store
    stuck = wording.stuck(store.in_flight(), now)
    return wording.attention_items(unplanned, store.messages_needing_a_human(), config_problems, store.alerts(), store.held_change(), stuck)


def plan_digest(deps: Deps, inputs: Inputs, items: list[dict[str, str]], now: datetime) -> bool:
    """Plan today's digest if `items` say something new. Returns whether one was planned."""
    if not items:
        return False
    store, cohort = deps.store, inputs.cohort
    fingerprint = json.dumps(sorted(item["summary"] for item in items))
    today = local(now, cohort.timezone).date()
    day = today.toordinal()
    last, planned_today = store.digest_state(day)
    if last == fingerprint or planned_today:
        return False  # nothing new, or today's digest exists and tomorrow's will carry the news
    wanted = Wanted(
        due=max(now, local_moment(today, MORNING, cohort.timezone)),
        pair_id="",
        stage=Stage.COORDINATOR_DIGEST,
        recipient=cohort.coordinator.email,
        revision=day,
        role=Role.COORDINATOR,
    )
    # Only what needs a human makes a digest new (the fingerprint); the other cohorts'
    # figures ride along, as they stand when the digest is planned.
    store.add_digest(wanted, [*items, *all_cohorts(deps, cohort.timezone, now)], fingerprint, now)
    event(now, "digest_planned", f"digest for {cohort.coordinator.email}: {len(items)} item(s) need attention", items=len(items))
    return True


def all_cohorts(deps: Deps, timezone: str, now: datetime) -> list[dict[str, str]]:
    """Where the state holds several cohorts: each one's figures in a line, all together
    last (with when they were read). Read only: each cohort's holder sends its own digest.
    A cohort that cannot be read leaves the part out rather than hold this digest back."""
    if deps.cohorts is None:
        return []
    try:
        lines = deps.cohorts(now)
    except Exception as error:  # another cohort's store or file: this cohort's digest still goes
        why = f"the digest goes without the other cohorts' figures ({type(error).__name__})"
        event(now, "digest_cohorts_unread", why, level=logging.WARNING)
        return []
    if lines:
        there = local(now, timezone)
        lines[-1] = {**lines[-1], "at": f"{long_date(there.date())}, {clock(there)} {zone_label(there)}"}
    return lines
