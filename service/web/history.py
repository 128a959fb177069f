"""A pair's history in words, from the events the store keeps."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from ..domain.stages import Stage

# Steps of sending that say nothing the email's final state does not.
QUIET = frozenset({"message_sending", "message_verify", "message_postponed"})

# Each event as the coordinator reads it; the fields are the event's details.
WORDS = {
    "message_sent": "Sent: {email}",
    "message_failed": "Not sent: {email} ({last_error})",
    "goals_written": "Goals and homework written down by {by}",
    "session_booked": "Session {number} booked for {start}",
    "session_moved": "Session {number} moved to {start}: {reason}",
    "event_written": "Calendar updated for session {number} (version {sequence})",
    "sessions_cancelled": "Sessions still to come cancelled: {reason}",
    "answer": "Session {number}: {email} {answer}",
    "attendance": "Session {number}: {attendance}",
    "counter_declined": "Session {number}: {by} proposed a time that does not suit both",
    "pair_withdrawn": "Withdrawn from the program",
    "pair_released": "Released: planned again",
}
UNSAID = "no reason given"


def history(entries: list[dict]) -> list[tuple[datetime, str]]:
    """A pair's history, oldest first, in words."""
    return [(entry["at"], said(entry)) for entry in entries if entry["event"] not in QUIET]


def said(entry: dict) -> str:
    """One event of a pair's history, as the coordinator reads it."""
    what = entry["event"]
    fields: dict[str, object] = defaultdict(lambda: UNSAID, {k: v for k, v in entry.items() if v not in (None, "")})
    if "start" in entry:
        fields["start"] = f"{datetime.fromisoformat(entry['start']):%Y-%m-%d %H:%M} UTC"
    if what.startswith("message_") and "stage" in entry:
        fields["email"] = f"{Stage(entry['stage']).words} to {entry.get('recipient')}"
        if what not in WORDS:  # skipped, retried, uncertain...
            return f"{fields['email']}: {what.removeprefix('message_').replace('_', ' ')}"
    if what in WORDS:
        return WORDS[what].format_map(fields)
    return what.replace("_", " ").capitalize()
