"""The coordinator's digest: something new, at most once a day."""

from __future__ import annotations

from datetime import timedelta

from service.domain.stages import Stage
from service.usecases.digest import attention, plan_digest

from .conftest import NOW
from .test_sending import booked


def digests(deps):
    return [r for r in deps.store.messages() if r.stage is Stage.COORDINATOR_DIGEST]


def test_news_makes_one_digest_a_day_and_the_same_news_none(deps):
    inputs, _ = deps.source.current()
    assert not plan_digest(deps, inputs, attention(deps, {}, [], NOW), NOW)  # nothing to say
    items = attention(deps, {"maya-zoe": "no time fits both"}, [], NOW)
    assert items == [{"pair_id": "maya-zoe", "summary": "Not scheduled: no time fits both."}]
    assert plan_digest(deps, inputs, items, NOW)
    assert not plan_digest(deps, inputs, items, NOW + timedelta(hours=1))  # the same news
    more = attention(deps, {"maya-zoe": "no time fits both", "maya-noah": "no time either"}, [], NOW)
    assert not plan_digest(deps, inputs, more, NOW + timedelta(hours=2))  # today's is planned
    assert plan_digest(deps, inputs, more, NOW + timedelta(days=1))
    assert len(digests(deps)) == 2
    assert deps.store.digest_content(digests(deps)[-1].revision) == more


def test_alerts_and_configuration_problems_are_in_the_digest(deps):
    deps.store.set_alert("jonas-priya", 1, "Session 1 was deleted in Google Calendar; it was not booked again.")
    items = attention(deps, {}, ["pairings.csv:3: bad email"], NOW)
    assert [i["summary"] for i in items] == [
        "The last edit of the configuration was not applied: pairings.csv:3: bad email",
        "Session 1 was deleted in Google Calendar; it was not booked again.",
    ]


def test_an_email_left_sending_for_long_needs_a_human(deps):
    booked(deps)
    row = deps.store.due(NOW + timedelta(days=30), 1)[0]
    deps.store.mark_sending(row, "<stuck@example.org>", NOW)
    assert attention(deps, {}, [], NOW + timedelta(minutes=1)) == []  # a send under way
    (item,) = attention(deps, {}, [], NOW + timedelta(minutes=10))
    assert "has been sending since" in item["summary"] and row.ref in item["summary"]
