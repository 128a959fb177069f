"""The coordinator's requests, applied by the daemon in the order they came."""

from __future__ import annotations

from datetime import datetime

from ..domain import attendance
from ..domain.attendance import Attendance
from ..domain.bookings import bookings
from ..domain.goals import Goals, tidy
from ..domain.model import Session
from ..domain.outbox import RESENDABLE, State
from ..domain.planning import replan_session
from ..domain.ports import HeldChange
from ..domain.requests import Request, RequestKind
from ..logs import event
from .booking import busy_now
from .deps import Deps, Inputs


def approval(held: HeldChange) -> dict[str, str]:
    """The request approving a held edit as it is shown: its cancellations, or fewer."""
    return {"fingerprint": held.fingerprint, "pairs": "\n".join(held.cancelled)}


def apply_requests(deps: Deps, inputs: Inputs, now: datetime) -> list[Request]:
    """Apply every pending request; returns those applied."""
    pending = deps.store.pending_requests()
    for request in pending:
        outcome = _apply(deps, inputs, request, now)
        deps.store.finish_request(request.id, outcome, now)
        event(now, "request_applied", f"request {request.id} ({request.kind}): {outcome}", request=request.id, kind=request.kind.value)
    return pending


def _apply(deps: Deps, inputs: Inputs, request: Request, now: datetime) -> str:
    store, args = deps.store, request.args
    if request.kind is RequestKind.CALENDAR_CHANGED:
        return "Google said the calendar changed: it is read now"
    if request.kind is RequestKind.APPROVE:
        held = store.held_change()
        if held is None:
            return "nothing was waiting for approval"
        if args.get("pairs"):  # what was shown is approved: the edit may cancel fewer by now
            shown = set(args["pairs"].split("\n"))
            if not set(held.cancelled) <= shown:
                return "the edit now cancels pairs that were not shown; look at `mentorship changes` again"
        elif args.get("fingerprint") in (None, "", held.fingerprint):  # a request naming no pairs: the edit as it is
            shown = set(held.cancelled)
        else:
            return "the edit changed since it was shown; look at `mentorship changes` again"
        store.approve_change(shown)
        return "approved: " + "; ".join(held.summary)
    pair_id = args.get("pair", "")
    if request.kind is RequestKind.WITHDRAW:
        store.withdraw(pair_id, now)
        return f"{pair_id} withdrawn: coming sessions cancelled, no more emails"
    if request.kind is RequestKind.RELEASE:
        store.release(pair_id, now)
        for number in (0, 1, 2):
            store.set_alert(pair_id, number, None)
        return f"{pair_id} released: it is planned again"
    if request.kind is RequestKind.GOALS:
        text = {name: tidy(args.get(name, "")) for name in ("goals", "homework")}
        store.set_goals(Goals(pair_id=pair_id, **text, written_by=args.get("by", ""), written_at=request.created_at))
        return f"the goals of {pair_id} kept"
    if request.kind is RequestKind.MET:
        return _met(deps, pair_id, int(args.get("session", "1")), args.get("sequence"), args.get("met") == "yes", args.get("by", ""), now)
    if request.kind is RequestKind.RESCHEDULE:
        return _reschedule(
            deps, inputs, pair_id, int(args.get("session", "1")), args.get("at", "auto"), args.get("sequence"), now, by=args.get("by")
        )
    if request.kind is RequestKind.RESOLVE:
        rows = [r for r in store.messages_needing_a_human() if r.state is State.UNCERTAIN and r.ref == args.get("message")]
        if not rows:
            return f"no uncertain email {args.get('message')}"
        if args.get("outcome") == "resend":
            store.mark_resend(rows[0], now)
            return f"{args.get('message')} goes out again"
        store.mark_sent(rows[0], now, was=State.UNCERTAIN)
        return f"{args.get('message')} settled as sent"
    if request.kind is RequestKind.RESEND:
        rows = [r for r in store.messages() if r.ref == args.get("message")]
        if not rows or rows[0].state not in RESENDABLE:
            return f"{args.get('message')} cannot be sent again: {rows[0].state.value if rows else 'no such email'}"
        store.mark_resend(rows[0], now)
        return f"{args.get('message')} goes out again"
    return f"unknown request {request.kind}"


def _reschedule(
    deps: Deps, inputs: Inputs, pair_id: str, number: int, at: str, sequence: str | None, now: datetime, *, by: str | None = None
) -> str:
    """Move a session; once only, as the coordinator saw it (`sequence`): a request
    applied again after a crash finds the session moved already and leaves it. `by`: the
    participant who asked (on the web page), whom both emails name."""
    store, cohort = deps.store, inputs.cohort
    record = next((r for r in store.sessions([pair_id]) if r.session.number == number), None)
    if record is not None and sequence is not None and str(record.sequence) != sequence:
        return f"session {number} of {pair_id} changed since the request was made; it was left as it is"
    current = bookings(cohort, store.sessions(), withdrawn=store.withdrawn(), now=now)
    sessions = current.booked.get(pair_id)
    if not sessions:
        return f"{pair_id} has no booked sessions to move"
    session = sessions[number - 1]
    # The past is fact: a session that started stays, unless Meet showed nobody came to it.
    if session.start <= now and not (record is not None and record.attended is Attendance.MISSED):
        return f"session {number} of {pair_id} has already started"
    standing = current.standing(but=session)
    if at == "auto":
        pair = next(p for p in cohort.pairs if p.id == pair_id)
        busy = dict(busy_now(deps, inputs, now, {person.email for person in pair.people}))
        for person in pair.people:  # not the time being moved away from
            busy[person.email] = [*busy.get(person.email, ()), (session.start, session.end)]
        new = replan_session(cohort, busy, pair_id=pair_id, number=number, booked=standing, now=now)
        if new is None:
            return f"no other time fits both for session {number} of {pair_id}"
    else:
        start = datetime.fromisoformat(at)
        new = Session(pair_id=pair_id, number=number, start=start, end=start + (session.end - session.start))
        clash = _clash(cohort, pair_id, new, standing)
        if clash:
            return clash
    asker = next((p for p in next(p for p in cohort.pairs if p.id == pair_id).people if by and p.email.casefold() == by.casefold()), None)
    reason = f"{asker.name.split()[0]} asked for another time" if asker else "the coordinator moved it"
    store.move(new, now, reason, agreed=at != "auto")
    return f"session {number} of {pair_id} moved to {new.start:%Y-%m-%d %H:%M} UTC"


def _met(deps: Deps, pair_id: str, number: int, sequence: str | None, met: bool, by: str, now: datetime) -> str:
    """A participant's answer to "Did you meet?", for the session as they saw it. The first
    answer stands: a second (the partner's, or a second click) is noted, not applied."""
    record = next((r for r in deps.store.sessions([pair_id]) if r.session.number == number), None)
    if record is None or record.cancelled or str(record.sequence) != sequence:
        return f"session {number} of {pair_id} changed since; the answer was left aside"
    if record.attended is not None:
        return f"session {number} of {pair_id} is already known as {record.attended.value}"
    reading = attendance.reported(met, record.sequence, by=by, now=now)
    deps.store.record_attendance(pair_id, number, record.sequence, reading, now)
    return f"session {number} of {pair_id} {reading.attendance.value}, as {by} said"


def _clash(cohort, pair_id: str, new: Session, standing) -> str | None:
    pair = next(p for p in cohort.pairs if p.id == pair_id)
    people, room = {person.email for person in pair.people}, cohort.link_for(pair)
    for other in cohort.pairs:
        if not people & {person.email for person in other.people} and not (room and cohort.link_for(other) == room):
            continue
        for session in standing.get(other.id, ()):
            if session.start < new.end and new.start < session.end:
                return f"not moved: it would overlap session {session.number} of {other.id}"
    return None
