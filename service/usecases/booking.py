"""Booking: sessions for pairs that have none, cancellations for pairs that left, another
time for a declined session, and every pair's planned messages in line with its sessions."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import replace
from datetime import date, datetime, time, timedelta

from .. import collector
from ..domain.availability import local_moment
from ..domain.bookings import Bookings, bookings, plan_around, unplanned
from ..domain.forked import in_workers
from ..domain.model import Cohort, Pair, Session
from ..domain.outbox import WRITE_STEP, Foreseen, SessionRecord, State, by_pair, foresee
from ..domain.planning import PARALLEL_PAIRS, Busy, linked, misfit, replan_session
from ..domain.ports import Store
from ..domain.stretch import stretched
from ..logs import event
from ..mail import wording
from .deps import Deps, Inputs

CHUNK = 500  # pairs reconciled per transaction: bounded memory for large cohorts
MAX_REBOOKS = 2  # after this many declines of one session, a human decides
# A calendar Google fails to answer for (internalError, backendError) is usually back within
# minutes: its pairs wait and are asked about again each tick rather than booked on guessed
# hours; after this long their declared hours stand in, and the coordinator is told.
FREE_BUSY_PATIENCE = timedelta(hours=1)
FREE_BUSY_RETRY = timedelta(minutes=5)  # how soon a tick asks Google again while pairs wait


@collector.paused()
def reconcile(deps: Deps, inputs: Inputs, now: datetime, failing: dict[str, datetime] | None = None) -> dict[str, str]:
    """Book sessions for pairs that have none, cancel those of removed pairs, and bring
    every pair's planned messages in line with its sessions. Returns the pairs that
    could not be planned, with the reason.

    `failing`: the calendars Google failed to answer for, and since when, kept by the
    caller from one tick to the next (updated here). A pair with one waits, unbooked,
    until Google answers or FREE_BUSY_PATIENCE has passed."""
    store, cohort = deps.store, inputs.cohort
    store.remember_pairs(cohort.pairs, now)
    current = bookings(cohort, store.sessions(), withdrawn=store.withdrawn(), now=now)
    for pair_id in current.to_cancel:
        store.cancel_pair(pair_id, now, "the pair left the program")
        event(now, "pair_cancelled", f"cancelled the coming sessions of {pair_id}: it left the program", pair=pair_id)
    waiting = set(current.waiting(cohort)) | set(current.partial)
    # Only people who still need a time are asked about: nobody else's busy time matters.
    emails = {person.email for p in cohort.pairs if p.id in waiting for person in p.people}
    busy, failed = _read_busy(deps, inputs, now, emails) if waiting else (inputs.busy, {})
    failing = {} if failing is None else failing
    guessed = _still_failing(failing, failed, now)
    deferred = {p.id for p in cohort.pairs if p.id in waiting and any(person.email in failing for person in p.people)}
    if deferred:
        event(
            now,
            "free_busy_failed",
            f"free/busy: Google failed to answer for {len(failing)} calendar(s) ({', '.join(sorted(set(failed.values())))});"
            f" {len(deferred)} pair(s) wait for it",
            level=logging.WARNING,
            calendars=len(failing),
            pairs=len(deferred),
        )
    plan = plan_around(cohort, busy, replace(current, held=current.held | deferred), now=now)
    new = [item for item in plan.pairs if item.sessions and item.pair.id not in current.booked]
    written = store.book([s for item in new for s in item.sessions], now) if new else []
    for item in new:
        first, second = item.sessions
        event(
            now,
            "pair_booked",
            f"booked {item.pair.id}: session 1 {first.start:%Y-%m-%d %H:%M} UTC; session 2 {second.start:%Y-%m-%d %H:%M} UTC",
            pair=item.pair.id,
            session1=first.start,
            session2=second.start,
        )
    problems = unplanned(plan)
    resumed = _resume(deps, inputs, current, {item.pair.id: item.sessions for item in new}, busy, now, skip=deferred)
    problems.update(resumed)
    if guessed:
        people = {p.id: p.people for p in cohort.pairs}
        for pair_id in [item.pair.id for item in new] + [
            pair_id for pair_id in current.partial if pair_id not in resumed.keys() | deferred
        ]:
            unknown = sorted(person.email for person in people[pair_id] if person.email in guessed)
            if unknown:
                store.set_alert(pair_id, 0, wording.booked_on_declared_hours(unknown, {guessed[e] for e in unknown}, FREE_BUSY_PATIENCE))
    booked_now = {item.pair.id for item in new}  # the planner just placed them, on what is known now
    if current.to_cancel or current.partial:  # sessions were written: read them again
        current = bookings(cohort, store.sessions(), withdrawn=store.withdrawn(), now=now)
    elif new:  # only booked: as stored before, and as booking says it stored them
        stored = [r for pair_records in current.records.values() for r in pair_records]
        records = {(r.session.pair_id, r.session.number): r for r in [*stored, *written]}
        current = bookings(cohort, list(records.values()), withdrawn=store.withdrawn(), now=now)
    moved = _recheck(deps, inputs, current, now, skip=booked_now)
    sync_messages(deps, inputs, now, None if moved else current.records)
    return problems


def _resume(
    deps: Deps,
    inputs: Inputs,
    current: Bookings,
    new: dict[str, tuple[Session, ...]],
    busy: Busy,
    now: datetime,
    *,
    skip: Collection[str] = (),
) -> dict[str, str]:
    """Pairs back in the program after a session happened: only what is still ahead is
    booked again (but for those in `skip`, which wait). Returns those that found no time."""
    cohort, problems = inputs.cohort, {}
    standing = {**current.standing(), **new}
    for pair_id, live in current.partial.items():
        if pair_id in skip:
            continue
        for number in sorted({1, 2} - {s.number for s in live}):
            session = replan_session(cohort, busy, pair_id=pair_id, number=number, booked=standing, now=now)
            if session is None:
                problems[pair_id] = f"no time left for session {number} before the program ends"
                continue
            deps.store.book([session], now)
            standing[pair_id] = (*standing[pair_id], session)
            event(
                now,
                "session_booked",
                f"booked session {number} of {pair_id} again at {session.start:%Y-%m-%d %H:%M} UTC",
                pair=pair_id,
                session=number,
            )
    return problems


def busy_now(deps: Deps, inputs: Inputs, now: datetime, emails: set[str]) -> Busy:
    """Declared busy time (.ics files), plus Google free/busy of `emails` where it can be
    read, from the program's start (or now) to its end. For one session asked for now
    (another time after a decline, say), declared hours stand in where Google fails."""
    busy, failed = _read_busy(deps, inputs, now, emails)
    if failed:
        event(now, "free_busy_failed", f"free/busy: Google failed to answer for {len(failed)} people; their declared hours are used")
    return busy


def _read_busy(deps: Deps, inputs: Inputs, now: datetime, emails: set[str]) -> tuple[Busy, dict[str, str]]:
    """busy_now, and the people whose calendars Google failed to answer for (declared
    hours only in what is returned), with the reason."""
    if deps.free_busy is None or not emails:
        return inputs.busy, {}
    cohort = inputs.cohort
    start = max(now, local_moment(cohort.start, time(0), cohort.timezone))
    end = local_moment(cohort.end + timedelta(days=1), time(0), cohort.timezone)
    if start >= end:
        return inputs.busy, {}
    try:
        seen, unreadable, failed = deps.free_busy.busy(sorted(emails), start, end)
    except Exception as error:  # the plan can still be made from declared hours
        event(now, "free_busy_unavailable", f"free/busy unavailable ({error}); planning with declared hours")
        return inputs.busy, {}
    busy = dict(inputs.busy)
    for email, intervals in seen.items():
        busy[email] = list(busy.get(email, ())) + intervals
    if unreadable:
        event(
            now,
            "free_busy_unreadable",
            f"free/busy unreadable for {len(unreadable)} people: their declared hours are used",
            count=len(unreadable),
        )
    return busy, failed


def _still_failing(failing: dict[str, datetime], failed: Mapping[str, str], now: datetime) -> dict[str, str]:
    """Bring `failing` (calendar -> when Google first failed for it) in line with what
    failed now. Returns those failing for FREE_BUSY_PATIENCE already, with the reason:
    they are dropped from `failing`, and declared hours stand in for them."""
    for email in set(failing) - failed.keys():
        del failing[email]  # Google answered
    for email in failed:
        failing.setdefault(email, now)
    late = {email: failed[email] for email, since in failing.items() if now - since >= FREE_BUSY_PATIENCE}
    for email in late:
        del failing[email]
    return late


def rebook(deps: Deps, inputs: Inputs, record: SessionRecord, now: datetime, *, reason: str, refused_by: str | None = None) -> bool:
    """Another time for a session, around everything else booked; a human is asked
    when there is none or the session keeps being declined. Returns whether it moved."""
    store, cohort = deps.store, inputs.cohort
    session = record.session
    if record.rebooks >= MAX_REBOOKS:
        store.set_alert(session.pair_id, session.number, wording.declined_too_often(session.number, record.rebooks + 1))
        return False
    booked = bookings(cohort, store.sessions(), withdrawn=store.withdrawn(), now=now).standing(but=session)
    pair = next(p for p in cohort.pairs if p.id == session.pair_id)
    busy = dict(busy_now(deps, inputs, now, {person.email for person in pair.people}))
    if refused_by:
        busy[refused_by] = list(busy.get(refused_by, ())) + [(session.start, session.end)]
    new = replan_session(cohort, busy, pair_id=session.pair_id, number=session.number, booked=booked, now=now)
    if new is None:
        store.set_alert(session.pair_id, session.number, wording.no_other_time(session.number, reason))
        return False
    store.move(new, now, reason, rebook=True)
    store.set_alert(session.pair_id, session.number, None)
    event(
        now,
        "session_rebooked",
        f"rebooked session {session.number} of {session.pair_id} at {new.start:%Y-%m-%d %H:%M} UTC: {reason}",
        pair=session.pair_id,
        session=session.number,
        start=new.start,
        reason=reason,
    )
    return True


def _recheck(deps: Deps, inputs: Inputs, current: Bookings, now: datetime, *, skip: Collection[str] = ()) -> bool:
    """Booked sessions still to come, checked against what is known now (blackouts,
    hours, days, time zones, busy calendars): one that no longer fits moves to the best
    time both are free, both told why; with none, the coordinator is asked. Returns
    whether any moved."""
    store, cohort, no_time_inside = deps.store, inputs.cohort, deps.no_time_inside
    no_time_inside.settle(cohort)
    moved = False
    pairs = {p.id: p for p in cohort.pairs}
    groups, standing = None, current.standing()
    records = [record for pair_id in current.booked if pair_id not in skip for record in current.records[pair_id]]
    fitting: dict[tuple[str, int], tuple[object, ...]] = {}
    for record in records:
        session, pair_id = record.session, record.session.pair_id
        # A time a person chose (moved by hand, proposed, set by the coordinator) stays theirs.
        if record.agreed or session.start <= now:
            continue
        key = (pair_id, session.number)
        fitted = (session, pairs[pair_id], *(inputs.busy.get(p.email) for p in pairs[pair_id].people))
        reason = None if _same(deps.fitting.get(key), fitted) else misfit(pairs[pair_id], session, inputs.busy)
        if reason is None:
            fitting[key] = fitted
            continue
        # Planned within the pair's group only: the rest of the cohort cannot be in its way.
        groups = groups or linked(cohort)
        group = groups[pair_id]
        around = {p.id: standing[p.id] for p in group if p.id in standing}
        around[pair_id] = tuple(s for s in around.get(pair_id, ()) if s != session)
        within_stretch = misfit(pairs[pair_id], session, inputs.busy, stretch=cohort.stretch) is None
        # Time only narrows the choice: while nothing it was found from changes, there is still none.
        basis = (tuple(group), session, sorted(around.items()), [tuple(inputs.busy.get(p.email, ())) for p in pairs[pair_id].people])
        if within_stretch and no_time_inside.same(key, basis):
            continue
        new = replan_session(replace(cohort, pairs=group), inputs.busy, pair_id=pair_id, number=session.number, booked=around, now=now)
        if within_stretch and (new is None or stretched(pairs[pair_id], new)):
            no_time_inside.keep(key, basis)
            continue  # outside someone's hours as far as they may stretch, and no time inside both people's hours is free
        if new is None:
            store.set_alert(pair_id, session.number, wording.no_other_time(session.number, reason))
            continue
        store.move(new, now, reason)
        moved = True
        store.set_alert(pair_id, session.number, None)
        standing = bookings(cohort, store.sessions(), withdrawn=store.withdrawn(), now=now).standing()  # a move is rare: read again
        event(
            now,
            "session_moved",
            f"moved session {session.number} of {pair_id} to {new.start:%Y-%m-%d %H:%M} UTC: {reason}",
            pair=pair_id,
            session=session.number,
            start=new.start,
            reason=reason,
        )
    deps.fitting = fitting
    return moved


def _same(kept: tuple[object, ...] | None, fitted: tuple[object, ...]) -> bool:
    """The same session, checked against the very same pair and busy times."""
    return kept is not None and kept[0] == fitted[0] and all(a is b for a, b in zip(kept[1:], fitted[1:], strict=True))


def sync_messages(
    deps: Deps,
    inputs: Inputs,
    now: datetime,
    records: Mapping[str, list[SessionRecord]] | None = None,
    *,
    only: Collection[str] | None = None,
) -> None:
    """Every pair's stored messages brought in line with its stored sessions (`records`,
    when the caller has just read them), a new one written once it comes within the
    horizon (by a day from now: see WRITE_STEP) and the others noted as foreseen. Pairs
    unchanged since this process last did it, with nothing coming within the horizon,
    are left alone, unread; `only`: just these pairs are looked at."""
    store, cohort, planned, horizon = deps.store, inputs.cohort, deps.planned_from, deps.horizon
    records = by_pair(store.sessions(only)) if records is None else records
    pairs = pairs_by_id(store, cohort, set(records))
    planned.settle(cohort)
    if only is None:
        planned.keep_only(records.keys())  # a pair with no sessions has nothing to write when the horizon comes
    basis = {pair_id: (pairs[pair_id], tuple(pair_records)) for pair_id, pair_records in records.items()}
    batch = now + WRITE_STEP
    edge = batch + horizon if horizon is not None else None
    pair_ids = sorted(pair_id for pair_id in records if not planned.same(pair_id, basis[pair_id], batch))
    chunks = [pair_ids[start : start + CHUNK] for start in range(0, len(pair_ids), CHUNK)]
    # The daily write of what comes within the horizon (`only`) stays in turn: its answers
    # are the messages themselves, which would come back from workers all at once.
    ahead = _foreseen_in_workers(store, cohort, pairs, records, chunks, edge) if only is None else {}
    noted: dict[str, Counter[date]] = {}
    for index, chunk in enumerate(chunks):
        stored = [] if index in ahead else store.messages(chunk)
        seen = ahead.get(index) or foresee(cohort, {pair_id: pairs[pair_id] for pair_id in chunk}, records, stored, edge)
        store.apply(seen.change, now)
        noted.update(seen.days)
        # A message being sent, or waiting to be verified, could not be changed: its pair is
        # planned again next time (kept on no basis), and still woken for its next email.
        unsettled = {row.pair_id for row in stored if row.state is State.SENDING or row.verify}
        for pair_id in chunk:
            until = seen.first_later[pair_id] - horizon if horizon is not None and pair_id in seen.first_later else None
            planned.keep(pair_id, None if pair_id in unsettled else basis[pair_id], until=until)
    if noted:  # in one go: figures only, worked out again by a process that starts
        store.note_foreseen(noted)


def _foreseen_in_workers(
    store: Store,
    cohort: Cohort,
    pairs: Mapping[str, Pair],
    records: Mapping[str, list[SessionRecord]],
    chunks: list[list[str]],
    edge: datetime | None,
) -> dict[int, Foreseen]:
    """The chunks of pairs with no message stored yet (a large cohort's first plan), by
    index, worked out in forked workers; none where that is not worth it or cannot be
    done. Only with an edge: what comes back is what is written now (little, at a first
    plan weeks ahead) and a few figures for the rest."""
    if edge is None or sum(map(len, chunks)) < PARALLEL_PAIRS:
        return {}
    messaged = store.messaged([pair_id for chunk in chunks for pair_id in chunk])
    fresh = [index for index, chunk in enumerate(chunks) if messaged.isdisjoint(chunk)]
    if not fresh:
        return {}

    def work(first: int, last: int) -> dict[int, Foreseen]:
        return {
            index: foresee(cohort, {pair_id: pairs[pair_id] for pair_id in chunks[index]}, records, [], edge) for index in fresh[first:last]
        }

    return in_workers(work, [len(chunks[index]) for index in fresh]) or {}


def writing_due(deps: Deps) -> datetime | None:
    """When a foreseen message comes within the horizon, to be written (None: none waits)."""
    return deps.planned_from.earliest()


@collector.paused()
def write_coming(deps: Deps, inputs: Inputs, now: datetime) -> None:
    """Write the messages of the pairs whose next ones come within the horizon (a day's
    batch), reading only those pairs."""
    sync_messages(deps, inputs, now, only=[str(key) for key in deps.planned_from.ending_by(now + WRITE_STEP)])


def pairs_by_id(store: Store, cohort: Cohort, pair_ids: set[str]) -> dict[str, Pair]:
    """These pairs as the pairings give them, or as remembered for pairs since removed."""
    current = {p.id: p for p in cohort.pairs}
    return {**store.known_pairs(pair_ids - current.keys()), **current}
