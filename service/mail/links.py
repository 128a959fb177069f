"""The personal links an email carries to the web pages (when `http.public_url` is set)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from ..domain.links import LinkClaim, LinkPurpose, sign
from ..domain.model import Cohort
from ..domain.outbox import SessionRecord

GOALS_FOR = timedelta(days=120)  # after the program ends: past the follow-up email
REBOOK_FOR = timedelta(days=14)  # a link to book a missed session again, from when it is made
MET_FOR = timedelta(days=21)  # after a session: long enough to answer late, short of a stale answer
# The path of each purpose's page under the public address.
PATHS = {LinkPurpose.SESSION: "session", LinkPurpose.GOALS: "goals", LinkPurpose.MET: "met"}


@dataclass(frozen=True)
class PersonalLinks:
    base_url: str  # http.public_url
    key: bytes

    def make(self, purpose: LinkPurpose, email: str, pair_id: str, session: int, revision: int, expires: datetime) -> str:
        claim = LinkClaim(purpose=purpose, person=email, pair_id=pair_id, session=session, revision=revision, expires=expires)
        return f"{self.base_url.rstrip('/')}/{PATHS[purpose]}/{sign(claim, self.key)}"

    def session(self, record: SessionRecord, email: str) -> str:
        """ "Can't make it?": good until the session starts, and only for the session as it is now."""
        session = record.session
        return self.make(LinkPurpose.SESSION, email, session.pair_id, session.number, record.sequence, session.start)

    def rebook(self, record: SessionRecord, email: str, now: datetime) -> str:
        """Book a session that did not take place again: the same page as "Can't make it?"."""
        session = record.session
        return self.make(LinkPurpose.SESSION, email, session.pair_id, session.number, record.sequence, now + REBOOK_FOR)

    def met(self, record: SessionRecord, email: str) -> str:
        """ "Did you meet?": for the session as it is now, until three weeks after it."""
        session = record.session
        return self.make(LinkPurpose.MET, email, session.pair_id, session.number, record.sequence, session.end + MET_FOR)

    def goals(self, cohort: Cohort, pair_id: str, email: str) -> str:
        """Where the pair writes down its goals and homework: good until after the follow-up."""
        until = datetime.combine(cohort.end, time(0), tzinfo=UTC) + GOALS_FOR
        return self.make(LinkPurpose.GOALS, email, pair_id, 0, 0, until)
