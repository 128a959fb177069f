"""The coordinator's digest: at most one a day, and only when there is something new."""

from __future__ import annotations

import json
from datetime import datetime

from ..domain.availability import local_moment
from ..domain.model import Role
from ..domain.outbox import Wanted
from ..domain.stages import Stage
from ..domain.timeline import MORNING
from ..logs import event
from ..mail import wording
from ..timefmt import local
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
    store.add_digest(wanted, items, fingerprint, now)
    event(now, "digest_planned", f"digest for {cohort.coordinator.email}: {len(items)} item(s) need attention", items=len(items))
    return True
