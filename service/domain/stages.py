"""The one table of email stages: every email the service can send, and what it is.

Timeline, outbox, templates, the digest and the template context all read this table,
so a new stage is one entry here plus its templates.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from .model import Anchor, Timing


class Stage(StrEnum):
    """An email's stage; its value is the name stored, configured and shown."""

    WELCOME = "welcome"
    SESSION1_INVITATION = "session1_invitation"
    SESSION2_INVITATION = "session2_invitation"
    SESSION1_PREP = "session1_prep"
    SESSION1_FOLLOWUP = "session1_followup"
    HOMEWORK_CHECKIN = "homework_checkin"
    SESSION2_PREP = "session2_prep"
    PROGRAM_WRAPUP = "program_wrapup"
    FOLLOW_UP = "follow_up"
    SESSION1_UPDATE = "session1_update"
    SESSION2_UPDATE = "session2_update"
    SESSION1_NUDGE = "session1_nudge"
    SESSION2_NUDGE = "session2_nudge"
    SESSION1_OTHER_TIMES = "session1_other_times"
    SESSION2_OTHER_TIMES = "session2_other_times"
    SESSION1_CANCELLATION = "session1_cancellation"
    SESSION2_CANCELLATION = "session2_cancellation"
    SESSION1_MISSED = "session1_missed"
    SESSION2_MISSED = "session2_missed"
    COORDINATOR_DIGEST = "coordinator_digest"

    @property
    def info(self) -> StageInfo:
        return STAGES[self]

    @property
    def words(self) -> str:
        """'homework checkin': for sentences a coordinator reads."""
        return self.value.replace("_", " ")


class Kind(StrEnum):
    PROGRAM = "program"  # on every pair's timeline, sent at its configured time
    INVITATION = "invitation"  # on the timeline, and carries its session's calendar request
    UPDATE = "update"  # a session moved (Google Calendar): why, to both people
    NUDGE = "nudge"  # to whoever has not answered a session's invitation
    OTHER_TIMES = "other_times"  # the time someone proposed does not suit both: times that do
    CANCELLATION = "cancellation"  # a booked session will not happen (email invitations)
    MISSED = "missed"  # nobody came to a session's Meet: we missed you, and how to rebook
    DIGEST = "digest"  # what needs a human, to the coordinator


@dataclass(frozen=True, kw_only=True)
class StageInfo:
    kind: Kind
    folder: str  # the template folder under templates/emails/
    session: int | None = None  # the session it is about, if one
    expires_at: int | None = None  # pointless once this session has started
    timing: Timing | None = None  # program stages: the default send time
    after: int | None = None  # it says this session took place: it waits while Meet shows it missed


def _program(
    folder: str, timing: Timing, *, session: int | None = None, expires_at: int | None = None, after: int | None = None
) -> StageInfo:
    return StageInfo(kind=Kind.PROGRAM, folder=folder, session=session, expires_at=expires_at, timing=timing, after=after)


def _about(kind: Kind, folder: str, session: int) -> StageInfo:
    return StageInfo(kind=kind, folder=folder, session=session, expires_at=session)


_WEEK_BEFORE = Timing(anchor=Anchor.PROGRAM_START, offset=timedelta(days=-7))

# In the order a pair lives them.
STAGES: Mapping[Stage, StageInfo] = {
    Stage.WELCOME: _program("welcome", _WEEK_BEFORE, expires_at=1),
    Stage.SESSION1_INVITATION: StageInfo(kind=Kind.INVITATION, folder="invitation", session=1, expires_at=1, timing=_WEEK_BEFORE),
    Stage.SESSION2_INVITATION: StageInfo(kind=Kind.INVITATION, folder="invitation", session=2, expires_at=2, timing=_WEEK_BEFORE),
    Stage.SESSION1_PREP: _program(
        "session1_prep", Timing(anchor=Anchor.SESSION1_START, offset=timedelta(days=-3)), session=1, expires_at=1
    ),
    Stage.SESSION1_FOLLOWUP: _program(
        "session1_followup", Timing(anchor=Anchor.SESSION1_END, offset=timedelta(hours=2)), session=1, expires_at=2, after=1
    ),
    Stage.HOMEWORK_CHECKIN: _program("homework_checkin", Timing(anchor=Anchor.BETWEEN_SESSIONS), expires_at=2),
    Stage.SESSION2_PREP: _program(
        "session2_prep", Timing(anchor=Anchor.SESSION2_START, offset=timedelta(days=-3)), session=2, expires_at=2
    ),
    Stage.PROGRAM_WRAPUP: _program("program_wrapup", Timing(anchor=Anchor.SESSION2_END, offset=timedelta(days=1)), session=2),
    Stage.FOLLOW_UP: _program("follow_up", Timing(anchor=Anchor.PROGRAM_END, offset=timedelta(days=90))),
    Stage.SESSION1_UPDATE: _about(Kind.UPDATE, "session_moved", 1),
    Stage.SESSION2_UPDATE: _about(Kind.UPDATE, "session_moved", 2),
    Stage.SESSION1_NUDGE: _about(Kind.NUDGE, "nudge", 1),
    Stage.SESSION2_NUDGE: _about(Kind.NUDGE, "nudge", 2),
    Stage.SESSION1_OTHER_TIMES: _about(Kind.OTHER_TIMES, "other_times", 1),
    Stage.SESSION2_OTHER_TIMES: _about(Kind.OTHER_TIMES, "other_times", 2),
    Stage.SESSION1_CANCELLATION: _about(Kind.CANCELLATION, "cancellation", 1),
    Stage.SESSION2_CANCELLATION: _about(Kind.CANCELLATION, "cancellation", 2),
    Stage.SESSION1_MISSED: StageInfo(kind=Kind.MISSED, folder="missed_session", session=1),
    Stage.SESSION2_MISSED: StageInfo(kind=Kind.MISSED, folder="missed_session", session=2),
    Stage.COORDINATOR_DIGEST: StageInfo(kind=Kind.DIGEST, folder="coordinator_digest"),
}

# The wording of an invitation whose session moved (email invitations).
MOVED_FOLDER = "session_moved"


@functools.cache
def of_kind(kind: Kind) -> tuple[Stage, ...]:
    return tuple(stage for stage, info in STAGES.items() if info.kind is kind)


def about_session(kind: Kind, number: int) -> Stage:
    """The stage of this kind for session `number` (its invitation, update, ...)."""
    return next(stage for stage in of_kind(kind) if STAGES[stage].session == number)


# Stages on every pair's timeline, with their default send times.
DEFAULT_TIMINGS: Mapping[Stage, Timing] = {
    stage: info.timing for stage, info in STAGES.items() if info.timing is not None and info.kind in (Kind.PROGRAM, Kind.INVITATION)
}
NUDGE_BEFORE = timedelta(days=2)  # a reminder to answer an invitation, this long before the session
