"""Gmail's daily limits as a budget: what may be sent now, and when the rest may."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from service.domain.budget import MAX_DELAY, WINDOW, Budget, Sent, decide
from service.domain.model import Role
from service.domain.outbox import MessageRow, State
from service.domain.stages import Stage

NOW = datetime(2027, 3, 1, 9, tzinfo=UTC)


def row(stage: Stage, n: int, *, due: datetime = NOW, expires: datetime | None = None) -> MessageRow:
    return MessageRow(
        pair_id=f"p{n}",
        stage=stage,
        recipient=f"person{n}@example.org",
        revision=0,
        role=Role.MENTEE,
        due=due,
        expires=expires,
        state=State.PLANNED,
    )


def sends(count: int, *, start: datetime, every: timedelta = timedelta(minutes=1)) -> list[Sent]:
    return [Sent(start + every * i, f"earlier{i}@example.org") for i in range(count)]


def test_within_the_allowance_everything_goes_urgent_first():
    due = [row(Stage.FOLLOW_UP, 1, due=NOW - timedelta(hours=2)), row(Stage.SESSION1_PREP, 2)]
    decision = decide(Budget(per_day=10), due, [], NOW)
    assert [r.stage for r in decision.now] == [Stage.SESSION1_PREP, Stage.FOLLOW_UP] and decision.later == []


def test_movable_emails_leave_the_reserve_to_urgent_ones():
    earlier = sends(8, start=NOW - timedelta(hours=10))  # 8 of 10 used; the reserve is 2
    due = [row(Stage.FOLLOW_UP, 1), row(Stage.SESSION2_NUDGE, 2), row(Stage.SESSION1_PREP, 3)]
    decision = decide(Budget(per_day=10), due, earlier, NOW)
    assert [r.stage for r in decision.now] == [Stage.SESSION2_NUDGE, Stage.SESSION1_PREP]
    ((held, at),) = decision.later
    assert held.stage is Stage.FOLLOW_UP
    # Room for a movable one comes when the earliest send of the last day ages out and
    # the count falls below the movable share again (8 + 2 sent now, minus 3).
    assert at == earlier[2].at + WINDOW


def test_an_exhausted_day_waits_for_room_instead_of_failing():
    earlier = sends(10, start=NOW - timedelta(hours=23))
    due = [row(Stage.SESSION1_PREP, n) for n in range(3)]
    decision = decide(Budget(per_day=10), due, earlier, NOW)
    assert decision.now == []
    assert [at for _, at in decision.later] == [earlier[0].at + WINDOW, earlier[1].at + WINDOW, earlier[2].at + WINDOW]
    assert all(at > NOW for _, at in decision.later)


def test_a_movable_email_waits_three_days_at_most_and_never_past_its_use():
    earlier = sends(10, start=NOW - timedelta(hours=1))
    late = row(Stage.FOLLOW_UP, 1, due=NOW - MAX_DELAY)  # waited its three days: it counts as urgent
    soon = row(Stage.WELCOME, 2, expires=NOW + timedelta(hours=20))
    decision = decide(Budget(per_day=10), [late, soon], earlier, NOW)
    held = dict((r.stage, at) for r, at in decision.later)
    assert held[Stage.FOLLOW_UP] == earlier[0].at + WINDOW
    assert held[Stage.WELCOME] == NOW + timedelta(hours=8)  # its expiry less the margin, before the room comes


def test_distinct_recipients_are_limited_too_but_repeat_recipients_are_not():
    earlier = [Sent(NOW - timedelta(hours=1), "a@example.org"), Sent(NOW - timedelta(hours=1), "b@example.org")]
    again = MessageRow(
        pair_id="p",
        stage=Stage.SESSION1_PREP,
        recipient="A@example.org",
        revision=0,
        role=Role.MENTOR,
        due=NOW,
        expires=None,
        state=State.PLANNED,
    )
    decision = decide(Budget(per_day=100, recipients_per_day=2), [row(Stage.SESSION1_PREP, 1), again], earlier, NOW)
    assert decision.now == [again] and [r.recipient for r, _ in decision.later] == ["person1@example.org"]
