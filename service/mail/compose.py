"""From a planned message to the email that goes out: render, attach, address."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from email.message import EmailMessage

from ..domain.model import Cohort, Contact, Pair, Role, Session
from ..domain.timeline import INVITATIONS, PlannedMessage, timings
from .context import Change, digest_context, pair_context
from .invitation import invitation
from .mime import build_message, message_id
from .templates import Templates, TemplateProblem


def sender_of(cohort: Cohort) -> Contact:
    return cohort.emails.sender if cohort.emails and cohort.emails.sender else cohort.coordinator


def compose(
    cohort: Cohort,
    pair: Pair,
    sessions: tuple[Session, ...],
    planned: PlannedMessage,
    templates: Templates,
    *,
    stamp: datetime,
) -> EmailMessage:
    """The full message for one planned email; TemplateProblem if a template is broken."""
    context = pair_context(cohort, pair, sessions, planned.role, stage=planned.stage)
    rendered = templates.render(planned.stage, planned.role.value, context)
    calendar = None
    if planned.stage in INVITATIONS:
        session = sessions[INVITATIONS[planned.stage] - 1]
        calendar = invitation(cohort, pair, session, stamp=stamp, description=rendered.text)
    reader = pair.mentor if planned.role is Role.MENTOR else pair.mentee
    sender = sender_of(cohort)
    return build_message(
        rendered,
        sender=sender,
        reply_to=cohort.coordinator,
        to=Contact(name=reader.name, email=reader.email),
        message_id=message_id((cohort.name, *planned.key), sender.email.rpartition("@")[2]),
        date=stamp,
        calendar=calendar,
    )


def check_templates(cohort: Cohort, templates: Templates) -> list[TemplateProblem]:
    """Render every template against a pair with every detail filled in and one with
    none, so a broken template is found by `validate`, not at send time."""
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

    def attempt(render) -> None:
        try:
            render()
        except TemplateProblem as problem:
            found.setdefault((problem.file, problem.line, problem.message), problem)

    for sample_cohort, pair in ((cohort, full), (replace(cohort, video_link=None), bare)):
        for stage in timings(cohort):
            for role in Role:
                context = pair_context(sample_cohort, pair, sessions, role, stage=stage)
                attempt(lambda: templates.render(stage, role.value, context))
        for role in Role:
            base = pair_context(sample_cohort, pair, sessions, role, stage="session_moved")
            for old in ("Monday 1 March 2027, 10:00–11:00 EST", None):
                change = Change(session=base["session2"], old_when=old, reason="the mentee declined the first time")
                attempt(lambda: templates.render("session_moved", role.value, {**base, "change": change}))
    for attention in ([], [{"pair_id": full.id, "summary": "The mentee declined session 1 twice."}]):
        attempt(lambda: templates.render("coordinator_digest", "coordinator", digest_context(cohort, attention)))
    return list(found.values())
