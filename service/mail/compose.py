"""From a planned message to the email that goes out: render, attach, address."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from email.message import EmailMessage
from zoneinfo import ZoneInfo

from ..domain.goals import Goals
from ..domain.model import Cohort, Contact, Pair, Role, Session
from ..domain.stages import MOVED_FOLDER, STAGES, Kind, Stage
from ..domain.timeline import timings
from .context import Change, digest_context, pair_context
from .invitation import invitation
from .mime import build_message, message_id
from .templates import TemplateProblem, Templates


def sender_of(cohort: Cohort) -> Contact:
    return cohort.emails.sender if cohort.emails and cohort.emails.sender else cohort.coordinator


def compose(
    cohort: Cohort,
    pair: Pair,
    sessions: tuple[Session, ...],
    *,
    stage: Stage,
    role: Role,
    templates: Templates,
    stamp: datetime,
    revision: int = 0,
    change: Change | None = None,
    links: tuple[str | None, ...] = (),
    other_times: tuple[Session, ...] = (),
    recipient: str | None = None,
    cant_make_it: str | None = None,
    goals: Goals | None = None,
    goals_link: str | None = None,
    missed: tuple[int, ...] = (),
    rebook: str | None = None,
    said: str | None = None,
    met_link: str | None = None,
) -> EmailMessage:
    """The full message for one email of a pair; TemplateProblem if a template is broken.

    An invitation with a revision above 0 is the update of a moved session: it uses the
    session_moved wording and carries the request with that sequence number.
    """
    info = stage.info
    folder = MOVED_FOLDER if info.kind is Kind.INVITATION and revision else info.folder
    context = pair_context(cohort, pair, sessions, role, stage=stage, links=links, other_times=other_times, missed=missed)
    if change is not None:
        context["change"] = change
    if cant_make_it is not None:  # the reader's own link to move the session or withdraw
        context["cant_make_it"] = cant_make_it
    if goals is not None:  # what the pair wrote down after session 1, to quote back
        reader = pair.mentor if role is Role.MENTOR else pair.mentee
        month = f"{goals.written_at.astimezone(ZoneInfo(reader.timezone)):%B}"
        context["goals"] = {"goals": goals.goals, "homework": goals.homework, "month": month}
    if goals_link is not None:  # where both write them down
        context["goals_link"] = goals_link
    if rebook is not None:  # the reader's own link to book a missed session again
        context["rebook"] = rebook
    if said is not None:  # a missed session someone reported: "you" (the reader) or "partner"
        context["said"] = said
    if met_link is not None:  # the reader's own "Did you meet?" link
        context["met_link"] = met_link
    rendered = templates.render(folder, role, context)
    calendar = method = None
    if info.session and info.kind in (Kind.INVITATION, Kind.CANCELLATION):
        method = "CANCEL" if info.kind is Kind.CANCELLATION else "REQUEST"
        calendar = invitation(
            cohort, pair, sessions[info.session - 1], stamp=stamp, sequence=revision, description=rendered.text, method=method
        )
    reader = pair.mentor if role is Role.MENTOR else pair.mentee
    return _message(
        cohort,
        rendered,
        to=Contact(name=reader.name, email=recipient or reader.email),  # a stored email goes where it was planned to
        key=(cohort.name, pair.id, stage, reader.email, str(revision)),
        stamp=stamp,
        calendar=calendar,
        method=method,
    )


def compose_digest(cohort: Cohort, attention: list[dict[str, str]], templates: Templates, *, stamp: datetime, day: int) -> EmailMessage:
    """The coordinator's digest of what needs a human; one a day at most (`day` is its date ordinal)."""
    rendered = templates.render(Stage.COORDINATOR_DIGEST.info.folder, Role.COORDINATOR, digest_context(cohort, attention))
    return _message(
        cohort,
        rendered,
        to=cohort.coordinator,
        key=(cohort.name, "", Stage.COORDINATOR_DIGEST.value, cohort.coordinator.email, str(day)),
        stamp=stamp,
    )


def _message(cohort, rendered, *, to: Contact, key: tuple[str, ...], stamp: datetime, calendar=None, method=None) -> EmailMessage:
    sender = sender_of(cohort)
    return build_message(
        rendered,
        sender=sender,
        reply_to=cohort.coordinator,
        to=to,
        message_id=message_id(key, sender.email.rpartition("@")[2]),
        date=stamp,
        calendar=calendar,
        calendar_method=method or "REQUEST",
    )


def _extras(said: str) -> dict:
    """Every optional value a pair's email may be given, filled in."""
    link = "https://example.org/x/token"
    goals = {"goals": "Lead the spring project", "homework": "Draft the plan", "month": "March"}
    return {"rebook": link, "cant_make_it": link, "goals_link": link, "met_link": link, "goals": goals, "said": said}


def check_templates(cohort: Cohort, templates: Templates) -> list[TemplateProblem]:
    """Render every template against a pair with every detail filled in, one with none,
    and a cohort of another session length and span, so a broken template is found by
    `validate`, not at send time."""
    if not cohort.pairs:
        return []
    full = cohort.pairs[0]
    bare = replace(
        full,
        notes="",
        mentee_resume=None,
        mentor=replace(full.mentor, linkedin=None, video_link=None),
        mentee=replace(full.mentee, linkedin=None),
    )
    day = datetime.combine(cohort.start, time(15), tzinfo=UTC)
    sessions = (
        Session(pair_id=full.id, number=1, start=day + timedelta(days=2), end=day + timedelta(days=2, hours=1)),
        Session(pair_id=full.id, number=2, start=day + timedelta(days=30), end=day + timedelta(days=30, hours=1)),
    )
    found: dict[tuple[str, int, str], TemplateProblem] = {}

    def attempt(render, *args) -> None:
        try:
            render(*args)
        except TemplateProblem as problem:
            found.setdefault((problem.file, problem.line, problem.message), problem)

    # Every stage a pair can be sent; updates (and moved invitations) below, with a change.
    notices = [stage for stage, info in STAGES.items() if info.kind in (Kind.NUDGE, Kind.CANCELLATION, Kind.OTHER_TIMES, Kind.MISSED)]
    # Templates must read lengths and spans from the settings: one sample has others than the cohort's.
    other_shape = replace(cohort, rules=replace(cohort.rules, length=timedelta(minutes=45)), end=cohort.start + timedelta(days=121))
    for sample_cohort, pair in ((cohort, full), (replace(cohort, video_link=None), bare), (other_shape, full)):
        for role in (Role.MENTOR, Role.MENTEE):
            for stage in (*timings(cohort), *notices):
                for options in ((), sessions):  # other times to offer: none, or some
                    context = pair_context(sample_cohort, pair, sessions, role, stage=stage, other_times=options)
                    attempt(templates.render, stage.info.folder, role, context)
                if sample_cohort is cohort and pair is full:  # as when Meet showed sessions missed
                    missed = pair_context(cohort, pair, sessions, role, stage=stage, missed=(1, 2))
                    for said in ("you", "partner"):  # and every personal extra an email can carry
                        attempt(templates.render, stage.info.folder, role, {**missed, **_extras(said)})
            base = pair_context(sample_cohort, pair, sessions, role, stage=Stage.SESSION2_UPDATE)
            for old in ("Monday 1 March 2027, 10:00–11:00 EST", None):
                change = Change(session=base["session2"], old_when=old, reason="the mentee declined the first time")
                attempt(templates.render, MOVED_FOLDER, role, {**base, "change": change})
        context = pair_context(sample_cohort, pair, sessions, Role.MENTOR, stage=Stage.SESSION1_INVITATION)
        attempt(templates.render_one, "event/description.txt", {**context, "session": context["session1"]})
    digest = Stage.COORDINATOR_DIGEST.info.folder
    for attention in ([], [{"pair_id": full.id, "summary": "The mentee declined session 1 twice."}]):
        attempt(templates.render, digest, Role.COORDINATOR, digest_context(cohort, attention))
    return list(found.values())
