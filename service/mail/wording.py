"""Sentences for the coordinator: what needs a human, in plain words."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from ..domain.outbox import MessageRow, State
from ..domain.ports import Alert, HeldChange


def declined_too_often(number: int, times: int) -> str:
    return f"Session {number} was declined {times} times; please agree a time with them."


def no_other_time(number: int, reason: str) -> str:
    return f"Session {number}: {reason}, and no other time fits both; please agree a time with them."


def booked_on_declared_hours(emails: list[str], reasons: set[str], waited: timedelta) -> str:
    """A pair booked without its free/busy, which Google kept failing to give."""
    return (
        f"Booked on declared hours for {', '.join(emails)}: Google Calendar failed to say when they are busy"
        f" ({', '.join(sorted(reasons))}) for {waited.total_seconds() / 60:.0f} minutes."
        " If a time clashes with their calendar, they can decline it and another time is found."
    )


def deleted_by_hand(number: int) -> str:
    return f"Session {number} was deleted in Google Calendar; it was not booked again."


ATTENDANCE_NEWS = "Google Meet of"  # how every note about a session's attendance starts


def session_missed(number: int, pair_id: str, *, rebook_link: bool) -> str:
    """Nobody came to a session's Meet."""
    how = (
        "each got a link to choose a new time"
        if rebook_link
        else f"to book it again: `mentorship reschedule {pair_id} --session {number} --auto` (or --at TIME)"
    )
    return f"{ATTENDANCE_NEWS} session {number}: nobody joined; both were sent a short note, and {how}."


def session_partial(number: int) -> str:
    return f"{ATTENDANCE_NEWS} session {number}: only one of them joined, or they were not there together long; you may want to ask."


def meet_down(reason: str) -> str:
    return f"Google Meet cannot be read: {reason}. Attendance waits, and is read once this is fixed."


def mail_down(reason: str) -> str:
    return f"Email cannot go out: {reason}. Emails wait, and go out once this is fixed."


CALENDAR_REFUSED = "Google Calendar refused session"


def calendar_refused(number: int, reason: str) -> str:
    return f"{CALENDAR_REFUSED} {number} ({reason}). Correct the pairing or the setting it names; it is tried again when it changes."


def calendar_down(reason: str) -> str:
    return f"Google Calendar cannot be written: {reason}. Sessions wait, and reach the calendar once this is fixed."


def attention_items(
    unplanned: Mapping[str, str],
    rows: Iterable[MessageRow],
    config_problems: Iterable[str],
    alerts: Iterable[Alert],
    held: HeldChange | None = None,
    stuck: Iterable[MessageRow] = (),
) -> list[dict[str, str]]:
    """What needs a human, as sentences by pair: for `status` and the coordinator's digest."""
    items = [{"pair_id": "", "summary": f"The last edit of the configuration was not applied: {p}"} for p in config_problems]
    if held is not None:
        what = "; ".join(held.summary)
        summary = f"An edit is held because it cancels many pairs ({what}). Run `mentorship approve` to apply it, or undo the edit."
        items.append({"pair_id": "", "summary": summary})
    items += [{"pair_id": alert.pair_id, "summary": alert.text} for alert in sorted(alerts)]
    items += [{"pair_id": pair_id, "summary": f"Not scheduled: {reason}."} for pair_id, reason in sorted(unplanned.items())]
    for row in rows:
        what = f"The {row.stage.words} email {row.ref} to {row.recipient}"
        if row.state is State.UNCERTAIN:
            summary = f"{what} may or may not have gone out ({row.last_error}). Ask them, then resolve it."
        else:
            summary = f"{what} could not be sent: {row.last_error}."
        items.append({"pair_id": row.pair_id, "summary": summary})
    for row in stuck:
        when = f"{row.updated_at:%Y-%m-%d %H:%M} UTC" if row.updated_at else "a while"
        summary = f"The {row.stage.words} email {row.ref} to {row.recipient} has been sending since {when}: is the daemon stuck?"
        items.append({"pair_id": row.pair_id, "summary": summary})
    return items


STUCK_AFTER = timedelta(minutes=5)  # a send takes seconds: a row `sending` longer than this is stuck


def stuck(rows: Iterable[MessageRow], now: datetime) -> list[MessageRow]:
    """Rows left `sending` longer than any send takes."""
    return [r for r in rows if r.updated_at is not None and now - r.updated_at > STUCK_AFTER]


def cohort_line(line: Mapping[str, str]) -> str:
    """One cohort's figures in the digest of a state holding several (FleetView.lines)."""
    if line["started"] == "no":
        return f"{line['title']}: not started yet"
    attention = line["attention"]
    heed = "nothing needs attention" if attention == "0" else f"{attention} {'needs' if attention == '1' else 'need'} attention"
    done = ", finished" if line["finished"] == "yes" else ""
    figures = f"{line['pairs']} pairs, {line['booked']} booked, {line['sent']} emails sent, {line['planned']} to go"
    return f"{line['title']}: {figures}, {heed}{done}"
