"""Where the state holds several cohorts, each cohort's digest carries every cohort's figures
in a line and all together; only news of its own cohort makes a digest."""

from __future__ import annotations

from datetime import timedelta

from service.mail.compose import compose_digest
from service.usecases.digest import attention, plan_digest
from tests.usecases.test_digest import digests

from .conftest import NOW, TEMPLATES


def lines(now):
    return [
        {"cohort": "spring", "title": "Spring", "started": "yes", "pairs": "14", "booked": "12", "sent": "40", "planned": "80"}
        | {"attention": "1", "finished": "no"},
        {"cohort": "autumn", "title": "Autumn", "started": "no", "pairs": "0", "booked": "0", "sent": "0", "planned": "0"}
        | {"attention": "0", "finished": "no"},
        {"cohort": "", "title": "All 2 cohorts", "started": "yes", "pairs": "14", "booked": "12", "sent": "40", "planned": "80"}
        | {"attention": "1", "finished": "no"},
    ]


def written(deps, inputs):
    row = digests(deps)[-1]
    message = compose_digest(inputs.cohort, deps.store.digest_content(row.revision), TEMPLATES, stamp=NOW, day=row.revision)
    return message.get_body(("plain",)).get_content(), message.get_body(("html",)).get_content()


def test_the_digest_carries_every_cohort_in_a_line_and_all_together(deps):
    deps.cohorts = lines
    inputs, _ = deps.source.current()
    items = attention(deps, {"maya-zoe": "no time fits both"}, [], NOW)
    assert plan_digest(deps, inputs, items, NOW)
    text, html = written(deps, inputs)
    assert "\n- Autumn: not started yet\n" in text  # a line each
    text = " ".join(text.split())  # as read, lines wrapped at 60 characters
    assert "1 item needs a person to look at it." in text  # the cohort's own news, counted without the lines
    assert "All cohorts, as they stood on Sunday 31 January 2027, 19:00 EST:" in text
    assert "- Spring: 14 pairs, 12 booked, 40 emails sent, 80 to go, 1 needs attention -" in text
    assert "- All 2 cohorts: 14 pairs, 12 booked, 40 emails sent, 80 to go, 1 needs attention" in text
    assert "<strong>All cohorts</strong>" in html and "<strong>All 2 cohorts: 14 pairs" in html
    # Other cohorts' figures changing is no news: no second digest for them.
    assert not plan_digest(deps, inputs, items, NOW + timedelta(days=1))


def test_one_cohort_alone_has_no_such_part(deps):
    inputs, _ = deps.source.current()
    plan_digest(deps, inputs, attention(deps, {"maya-zoe": "no time fits both"}, [], NOW), NOW)
    text, html = written(deps, inputs)
    assert "All cohorts" not in text and "All cohorts" not in html


def test_a_cohort_that_cannot_be_read_leaves_the_part_out_but_not_the_digest(deps):
    def unreadable(now):
        raise OSError("the other cohort's state is away")

    deps.cohorts = unreadable
    inputs, _ = deps.source.current()
    assert plan_digest(deps, inputs, attention(deps, {"maya-zoe": "no time fits both"}, [], NOW), NOW)
    text, _ = written(deps, inputs)
    assert "Not scheduled: no time fits both." in text and "All cohorts" not in text
