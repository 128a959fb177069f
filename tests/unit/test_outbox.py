from dataclasses import replace as _replace
from datetime import UTC, datetime, timedelta

import pytest

from service.domain.model import Role, Session
from service.domain.outbox import MessageRow, SessionRecord, State, Wanted, changes, handed_over, wanted_for_pair
from service.domain.stages import DEFAULT_TIMINGS, Kind, Stage
from service.mail.context import change_view
from tests.builders import cohort as make_cohort
from tests.builders import pair as make_pair
from tests.builders import person

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


# --------------------------------------------------------------------------- wanted messages


PAIR = make_pair(person("Maya Chen", "America/New_York"), person("Zoe Park", "Europe/Berlin"), "maya-zoe")
S1 = datetime(2027, 3, 9, 15, tzinfo=UTC)
S2 = datetime(2027, 4, 6, 14, tzinfo=UTC)


def record(number, start, *, sequence=0, cancelled=False, previous=None, changed=T0, event_sequence=-1, responses=None):
    return SessionRecord(
        session=Session(pair_id=PAIR.id, number=number, start=start, end=start + timedelta(hours=1)),
        cancelled=cancelled,
        sequence=sequence,
        changed_at=changed,
        previous_start=previous,
        event_sequence=event_sequence,
        responses=responses or {},
    )


BOOKED = (record(1, S1), record(2, S2))
EMAIL, GOOGLE = make_cohort(PAIR), _replace(make_cohort(PAIR), calendar="google")
BOTH = {PAIR.mentor.email, PAIR.mentee.email}
SENT_INVITATIONS = {(PAIR.id, Stage.SESSION1_INVITATION, email) for email in BOTH}


def stages(wanted):
    return sorted({w.stage for w in wanted})


@pytest.mark.parametrize(
    ("label", "cohort", "records", "received", "expected"),
    [
        ("booked, email invitations", EMAIL, BOOKED, set(), sorted(DEFAULT_TIMINGS)),
        ("not booked yet", EMAIL, (), set(), []),
        ("one session only", EMAIL, BOOKED[:1], set(), []),
        (
            "cancelled after session 1's invitation went out",
            EMAIL,
            (record(1, S1, sequence=1, cancelled=True), record(2, S2, sequence=1, cancelled=True)),
            SENT_INVITATIONS,
            [Stage.SESSION1_CANCELLATION],
        ),
        (
            "cancelled before any invitation",
            EMAIL,
            (record(1, S1, sequence=1, cancelled=True), record(2, S2, sequence=1, cancelled=True)),
            set(),
            [],
        ),
        (
            "cancelled on Google: Google tells the attendees",
            GOOGLE,
            (record(1, S1, sequence=1, cancelled=True), record(2, S2, sequence=1, cancelled=True)),
            SENT_INVITATIONS,
            [],
        ),
        (
            "Google, session 2 moved, nobody answered session 1",
            GOOGLE,
            (
                record(1, S1, event_sequence=0, responses={email: "needsAction" for email in BOTH}),
                record(2, S2 + timedelta(days=1), sequence=1, previous=S2, event_sequence=1),
            ),
            set(),
            sorted([*DEFAULT_TIMINGS, Stage.SESSION2_UPDATE, Stage.SESSION1_NUDGE]),
        ),
    ],
)
def test_wanted_messages(label, cohort, records, received, expected):
    wanted = wanted_for_pair(cohort, PAIR, records, received)
    assert stages(wanted) == expected, label
    for w in wanted:  # each stage goes to both people at most once
        assert sum(1 for o in wanted if o.stage == w.stage and o.recipient == w.recipient) == 1
        assert w.recipient in BOTH


def test_a_moved_session_gets_a_new_invitation_revision_due_when_it_moved():
    moved_at = datetime(2027, 3, 3, 12, tzinfo=UTC)
    records = (record(1, S1 + timedelta(days=2), sequence=2, previous=S1, changed=moved_at), record(2, S2))
    wanted = wanted_for_pair(EMAIL, PAIR, records, set())
    invitations = [w for w in wanted if w.stage.info.kind is Kind.INVITATION and w.stage.info.session == 1]
    assert {w.revision for w in invitations} == {2}
    assert all(w.due >= moved_at for w in invitations)
    assert all(w.expires == S1 + timedelta(days=2) for w in invitations)


def test_a_reason_given_as_words_to_follow_starts_its_sentence_in_an_email():
    moved = record(1, S1 + timedelta(days=1), sequence=1, previous=S1)
    moved = _replace(moved, change_reason="it falls outside Zoe Park's hours (09:00-17:00 in Berlin)")
    view = change_view(EMAIL, PAIR, moved, Role.MENTEE)
    assert view.reason == "It falls outside Zoe Park's hours (09:00-17:00 in Berlin)"
