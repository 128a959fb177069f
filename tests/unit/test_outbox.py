from datetime import UTC, datetime, timedelta

from service.domain.model import Role
from service.domain.outbox import MessageRow, State, Wanted, changes, handed_over
from service.domain.stages import Stage

T0 = datetime(2027, 3, 1, 9, tzinfo=UTC)


def row(stage="welcome", state=State.PLANNED, due=T0, verify=False):
    return MessageRow(
        pair_id="p",
        stage=Stage(stage),
        recipient="a@example.org",
        revision=0,
        role=Role.MENTOR,
        due=due,
        expires=None,
        state=state,
        verify=verify,
    )


def want(stage="welcome", due=T0):
    return Wanted(due=due, pair_id="p", stage=Stage(stage), recipient="a@example.org", revision=0, role=Role.MENTOR)


def test_new_moved_and_unwanted_planned_rows():
    stored = [row("welcome"), row("session1_prep"), row("homework_checkin", State.CANCELLED)]
    result = changes([want("welcome", T0 + timedelta(days=1)), want("homework_checkin"), want("follow_up")], stored)
    assert [w.stage for w in result.insert] == ["follow_up"]
    assert [w.stage for w in result.retime] == ["welcome"]
    assert [w.stage for w in result.revive] == ["homework_checkin"]
    assert [key[1] for key in result.cancel] == ["session1_prep"]


def test_history_is_never_changed():
    stored = [row("welcome", State.SENT), row("session1_prep", State.UNCERTAIN), row("follow_up", State.SENDING)]
    assert len(changes([want("welcome", T0 + timedelta(days=2))], stored)) == 0


def test_a_row_waiting_to_be_verified_is_neither_moved_nor_cancelled_and_counts_as_received():
    waiting = row("session1_invitation", verify=True)
    assert len(changes([], [waiting])) == 0
    assert len(changes([want("session1_invitation", T0 + timedelta(days=1))], [waiting])) == 0
    assert handed_over([waiting]) == {("p", "session1_invitation", "a@example.org")}
