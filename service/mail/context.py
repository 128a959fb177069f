"""What a template sees: plain values already formatted for the reader."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from ..domain.model import SESSIONS_PER_PAIR, Cohort, Pair, Person, Role, Session
from ..domain.outbox import SessionRecord
from ..domain.stages import Stage
from ..domain.stretch import Side, stretched
from ..domain.timeline import due_time, timings
from ..timefmt import clock, duration, how_many, local, long_date, period, short_date, span, zone_label
from .wording import cohort_line


@dataclass(frozen=True)
class PersonView:
    name: str
    first_name: str
    email: str
    role: str
    place: str
    timezone: str
    linkedin: str | None


@dataclass(frozen=True)
class SessionView:
    number: int
    when: str  # 'Tuesday 2 March 2027, 10:00–11:00 EST'
    partner_when: str  # '09:00 CST for Zoë in Mexico City'
    date: str  # 'Tuesday 2 March'
    link: str | None
    # When the time lies outside the reader's working hours: a sentence that says so and why.
    stretch: str | None = None


@dataclass(frozen=True)
class Change:
    """A session that moved: for the session_moved email."""

    session: SessionView
    old_when: str | None
    reason: str


def person_view(person: Person, role: Role) -> PersonView:
    return PersonView(
        name=person.name,
        first_name=person.name.split()[0],
        email=person.email,
        role=role.value,
        place=person.place,
        timezone=person.timezone,
        linkedin=person.linkedin,
    )


def session_view(session: Session, reader: Person, partner: Person, link: str | None) -> SessionView:
    mine, theirs = local(session.start, reader.timezone), local(session.start, partner.timezone)
    on_day = f" on {short_date(theirs.date())}" if theirs.date() != mine.date() else ""
    return SessionView(
        number=session.number,
        when=span(session.start, session.end, reader.timezone),
        partner_when=f"{clock(theirs)} {zone_label(theirs)}{on_day} for {partner.name.split()[0]} in {partner.place}",
        date=short_date(mine.date()),
        link=link,
    )


def pair_context(
    cohort: Cohort,
    pair: Pair,
    sessions: tuple[Session, ...],
    role: Role,
    *,
    stage: Stage,
    links: tuple[str | None, ...] = (),
    other_times: tuple[Session, ...] = (),
    missed: tuple[int, ...] = (),
) -> dict[str, Any]:
    """Everything a pair's email template may use, for the person in `role`. `links` are
    the sessions' own meeting links (Meet) where known; else the cohort's or mentor's.
    `other_times`: times a session could move to, for the reader to choose from.
    `missed`: the sessions Meet showed nobody came to (unknown counts as not missed)."""
    reader, partner = (pair.mentor, pair.mentee) if role is Role.MENTOR else (pair.mentee, pair.mentor)
    partner_role = Role.MENTEE if role is Role.MENTOR else Role.MENTOR
    fallback = cohort.link_for(pair)
    links = tuple(links) + (None,) * (len(sessions) - len(links))
    first, second = (
        replace(session_view(s, reader, partner, link or fallback), stretch=_stretch_sentence(pair, sessions, s, reader))
        for s, link in zip(sessions, links, strict=False)
    )
    views = {role: person_view(reader, role), partner_role: person_view(partner, partner_role)}
    context = _common(cohort, stage, reader, sessions)
    context.update(
        reader=views[role],
        partner=views[partner_role],
        mentor=views[Role.MENTOR],
        mentee=views[Role.MENTEE],
        pair={"id": pair.id, "notes": pair.notes, "mentee_resume": pair.mentee_resume},
        session1=first,
        session2=second,
        extra=dict(pair.extra),  # the pairings' other columns by header: extra.get("Mentee goals", "")
        session=second if stage.info.session == 2 else first,  # for per-session stages
        other_times=[session_view(s, reader, partner, fallback) for s in other_times],
        session1_missed=1 in missed,
        session2_missed=2 in missed,
    )
    return context


def digest_context(cohort: Cohort, attention: list[dict[str, str]]) -> dict[str, Any]:
    """For the coordinator's digest: `attention` items have pair_id and summary."""
    context = _common(cohort, Stage.COORDINATOR_DIGEST, None, None)
    context["attention"] = [item for item in attention if "cohort" not in item]
    # Where the state holds several cohorts: each one's figures, all together last.
    context["cohorts"] = [{**item, "said": cohort_line(item)} for item in attention if "cohort" in item]
    return context


def _common(cohort: Cohort, stage: Stage, reader: Person | None, sessions: tuple[Session, ...] | None) -> dict[str, Any]:
    follow_up = since_end = None
    if reader and sessions and Stage.FOLLOW_UP in timings(cohort):
        due = local(due_time(cohort, Stage.FOLLOW_UP, sessions, reader.availability), reader.timezone).date()
        follow_up, since_end = long_date(due), period(cohort.end, due)
    return {
        "stage": stage.value,
        "cohort": {"name": cohort.name},
        "coordinator": {"name": cohort.coordinator.name, "email": cohort.coordinator.email},
        "program": {
            "start": long_date(cohort.start),
            "end": long_date(cohort.end),
            "span": period(cohort.start, cohort.end),  # 'two months'
            "sessions": how_many(SESSIONS_PER_PAIR, "session"),  # 'two sessions'
            "length": duration(cohort.rules.length),  # 'one hour', '45 minutes'
            "follow_up": follow_up,
            "since_end": since_end,  # how long after the program the follow-up comes: 'three months'
        },
    }


def _outside(pair: Pair, session: Session, person: Person) -> int:
    return sum(share.minutes for share in stretched(pair, session) if share.person == person)


def _stretch_sentence(pair: Pair, sessions: tuple[Session, ...], session: Session, reader: Person) -> str | None:
    """'This is early for you ... because Sam is in Sydney; ...' when the session lies
    outside the reader's hours; None when it does not."""
    mine = [share for share in stretched(pair, session) if share.person == reader]
    if not mine:
        return None
    share = max(mine, key=lambda s: s.minutes)
    edge = "before your working day starts" if share.side is Side.EARLY else "after your working day ends"
    partner = share.partner
    text = (
        f"This is {share.side.value} for you, {duration(timedelta(minutes=share.minutes))} {edge},"
        f" because {partner.name.split()[0]} is in {partner.place}"
    )
    other = next((s for s in sessions if s.number != session.number), None)
    if other is not None and session.number == 1 and _outside(pair, other, reader) < _outside(pair, session, reader):
        text += "; the next session is at a better time for you"
    elif other is not None and session.number == 2 and _outside(pair, other, partner) > _outside(pair, other, reader):
        text += f"; the first session was the less convenient one for {partner.name.split()[0]}"
    return text + "."


def change_view(cohort: Cohort, pair: Pair, record: SessionRecord, role: Role) -> Change:
    """A moved session as the person in `role` reads it: the new time, the old, why."""
    reader, partner = (pair.mentor, pair.mentee) if role is Role.MENTOR else (pair.mentee, pair.mentor)
    session = record.session
    old_when = None
    if record.previous_start:
        old_when = span(record.previous_start, record.previous_start + (session.end - session.start), reader.timezone)
    return Change(
        session=session_view(session, reader, partner, cohort.link_for(pair)),
        old_when=old_when,
        reason=_sentence(record.change_reason or "the session was changed"),
    )


def _sentence(text: str) -> str:
    """Reasons are written to follow other words ("it falls outside ..."): in an email they
    start a sentence."""
    return text[:1].upper() + text[1:]
