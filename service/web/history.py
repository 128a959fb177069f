"""A pair's history in words, from the events the store keeps."""

from __future__ import annotations

from datetime import datetime

from ..domain.stages import Stage

# Steps of sending that say nothing the email's final state does not.
QUIET = frozenset({"message_sending", "message_verify", "message_postponed"})


def history(entries: list[dict]) -> list[tuple[datetime, str]]:
    """A pair's history, oldest first, in words."""
    return [(entry["at"], said(entry)) for entry in entries if entry["event"] not in QUIET]


def said(entry: dict) -> str:
    """One event of a pair's history, as the coordinator reads it."""
    number = entry.get("number")
    what = entry["event"]
    if what.startswith("message_") and "stage" in entry:
        email = f"{Stage(entry['stage']).words} to {entry.get('recipient')}"
        if what == "message_sent":
            return f"Sent: {email}"
        if what == "message_failed":
            return f"Not sent: {email} ({entry.get('last_error') or 'no reason given'})"
        return f"{email}: {what.removeprefix('message_').replace('_', ' ')}"
    if what == "goals_written":
        return f"Goals and homework written down by {entry.get('by')}"
    if what == "session_booked":
        return f"Session {number} booked for {_utc(entry['start'])}"
    if what == "session_moved":
        return f"Session {number} moved to {_utc(entry['start'])}: {entry.get('reason') or 'no reason given'}"
    if what == "event_written":
        return f"Calendar updated for session {number} (version {entry.get('sequence')})"
    if what == "sessions_cancelled":
        return f"Sessions still to come cancelled: {entry.get('reason') or 'no reason given'}"
    if what == "answer":
        return f"Session {number}: {entry.get('email')} {entry.get('answer')}"
    if what == "attendance":
        return f"Session {number}: {entry.get('attendance')}"
    if what == "counter_declined":
        return f"Session {number}: {entry.get('by')} proposed a time that does not suit both"
    if what == "pair_withdrawn":
        return "Withdrawn from the program"
    if what == "pair_released":
        return "Released: planned again"
    return what.replace("_", " ").capitalize()


def _utc(moment: str) -> str:
    return f"{datetime.fromisoformat(moment):%Y-%m-%d %H:%M} UTC"
