"""What the commands print: text for people, JSON for programs."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Collection, Mapping
from datetime import datetime
from zoneinfo import ZoneInfo

from .domain.changes import ChangeSet, describe
from .domain.model import Cohort, Pair, Person, Session
from .domain.outbox import State
from .domain.planning import Plan
from .domain.ports import HeldChange
from .domain.stretch import Stretched, stretched
from .domain.timeline import email_timeline
from .timefmt import zone_label
from .usecases import Inputs


def cohort_summary(cohort: Cohort, busy_files: int) -> str:
    people = cohort.people
    zones = Counter(p.timezone for p in people.values())
    mentors = Counter(pair.mentor.email for pair in cohort.pairs)
    several = [f"{people[e].name} ({n})" for e, n in mentors.most_common() if n > 1]
    rules = cohort.rules
    lines = [
        f"{cohort.name}: configuration is valid.",
        f"  coordinator     {cohort.coordinator.name} <{cohort.coordinator.email}>",
        f"  program         {cohort.start} to {cohort.end} ({cohort.timezone})",
        (
            f"  sessions        {_minutes(rules.length)} min; session 1 in the first"
            f" {rules.first_within.days // 7} weeks, session 2 at least {rules.min_gap.days // 7} weeks later"
        ),
        f"  pairs           {len(cohort.pairs)}",
        f"  people          {len(people)} in {len(zones)} time zones ({', '.join(sorted(zones))})",
        f"  busy calendars  {busy_files} .ics file(s)",
    ]
    if several:
        lines.append(f"  several mentees {', '.join(several)}")
    return "\n".join(lines)


def plan_table(plan: Plan, booked: Collection[Session] = ()) -> str:
    """The plan for people; sessions in `booked` stand already (from the state)."""
    outside = sum(1 for item in plan.pairs if any(stretched(item.pair, s) for s in item.sessions))
    also = f"; {outside} outside someone's working hours" if outside else ""
    lines = [f"{plan.cohort.name}: {plan.booked} of {len(plan.pairs)} pairs fully planned{also}", ""]
    for item in plan.pairs:
        pair = item.pair
        lines.append(f"{pair.id}  {pair.mentor.name} ({pair.mentor.place}) and {pair.mentee.name} ({pair.mentee.place})")
        for session in item.sessions:
            shares = stretched(pair, session)
            lines.append(
                f"  session {session.number}  {session.start:%a %d %b %Y %H:%M} UTC"
                f" | mentor {_local(session.start, pair.mentor)}"
                f" | mentee {_local(session.start, pair.mentee)}"
                + (" | booked" if session in booked else "")
                + (" | outside hours: " + ", ".join(_share(s) for s in shares) if shares else "")
            )
        for problem in item.problems:
            lines.append(f"  NOT PLANNED: {problem}")
        lines.append("")
    return "\n".join(lines).rstrip()


def _share(share: Stretched) -> str:
    return f"{share.person.name} {share.minutes} min {share.side.value}"


def plan_json(plan: Plan, booked: Collection[Session] = ()) -> str:
    return json.dumps(
        {
            "cohort": plan.cohort.name,
            "pairs": [
                {
                    "id": item.pair.id,
                    "mentor": _person(item.pair.mentor),
                    "mentee": _person(item.pair.mentee),
                    "sessions": [
                        {
                            "number": s.number,
                            "start": s.start.isoformat(),
                            "end": s.end.isoformat(),
                            "mentor_local": s.start.astimezone(ZoneInfo(item.pair.mentor.timezone)).isoformat(),
                            "mentee_local": s.start.astimezone(ZoneInfo(item.pair.mentee.timezone)).isoformat(),
                            "status": "booked" if s in booked else "planned",
                            # Who meets outside their working hours, which end and by how much.
                            "stretched": [
                                {"email": x.person.email, "side": x.side.value, "minutes": x.minutes, "because_of": x.partner.email}
                                for x in stretched(item.pair, s)
                            ],
                        }
                        for s in item.sessions
                    ],
                    "problems": list(item.problems),
                }
                for item in plan.pairs
            ],
            "emails": [
                {"pair": m.pair_id, "stage": m.stage, "to": [m.recipient], "due": m.due.isoformat()}
                for item in plan.pairs
                for m in email_timeline(plan.cohort, item.pair, item.sessions)
            ],
        },
        ensure_ascii=False,
        indent=2,
    )


def _person(person: Person) -> dict[str, str]:
    return {"name": person.name, "email": person.email, "timezone": person.timezone}


def _local(moment: datetime, person: Person) -> str:
    local = moment.astimezone(ZoneInfo(person.timezone))
    return f"{local:%a %d %b %H:%M} {zone_label(local)}"


def _minutes(delta) -> int:
    return int(delta.total_seconds() // 60)


def totals_line(counts: Mapping[str, Mapping[State, int]]) -> str:
    """Every message by state, from Store.message_counts (by pair, then state)."""
    total: Counter[str] = Counter()
    for by_state in counts.values():
        total.update({state.value: n for state, n in by_state.items()})
    return "messages: " + (", ".join(f"{n} {state}" for state, n in sorted(total.items())) or "none")


def status_table(report: dict) -> str:
    lines = [f"{report['cohort']}", ""]
    for pair in report["pairs"]:
        who = f"{pair['mentor']} and {pair['mentee']}" if pair["in_pairings"] else "(removed from the pairings)"
        lines.append(f"{pair['id']}  {who}")
        for s in pair["sessions"]:
            met = f"  attendance: {s['attendance']}" if s.get("attendance") else ""
            lines.append(f"  session {s['number']}  {s['start'][:16].replace('T', ' ')} UTC  {s['status']}{met}")
        for problem in pair["problems"]:
            lines.append(f"  NOT SCHEDULED: {problem}")
        for m in pair["messages"]:
            extra = f"  ({m['error']})" if m["error"] and m["state"] in ("failed", "uncertain", "planned") else ""
            lines.append(f"    {m['ref']}  {m['due'][:16].replace('T', ' ')}  {m['state']:<9}  {m['stage']} -> {m['to']}{extra}")
        lines.append("")
    totals = ", ".join(f"{n} {state}" for state, n in report["totals"].items()) or "no messages yet"
    lines.append(f"totals: {totals}")
    if report.get("attendance"):
        lines.append("attendance: " + ", ".join(f"{n} {what}" for what, n in report["attendance"].items()))
    if report["attention"]:
        lines.append("")
        lines.append("needs attention:")
        lines += [f"  - {item['pair_id'] + ': ' if item['pair_id'] else ''}{item['summary']}" for item in report["attention"]]
    else:
        lines.append("nothing needs attention")
    return "\n".join(lines)


def status_json(report: dict) -> str:
    return json.dumps(report, ensure_ascii=False, indent=2)


def change_report(inputs: Inputs, change: ChangeSet, held: HeldChange | None, known: Mapping[str, Pair]) -> dict:
    """What the files change against the state: for `changes`."""
    names = {**known, **{p.id: p for p in inputs.cohort.pairs}}
    return {
        "cohort": inputs.cohort.name,
        "held": held is not None,
        "joined": list(change.joined),
        "left": list(change.left),
        "repaired": [{"ends": old, "starts": new} for old, new in change.repaired],
        "cancels_pairs": len(change.cancelled),
        "summary": list(describe(change, names)),
    }


def change_table(report: dict) -> str:
    if not report["summary"]:
        return f"{report['cohort']}: the files match the running program; nothing to change."
    lines = [f"{report['cohort']}: the files change the running program:"]
    lines += [f"  - {line}" for line in report["summary"]]
    if report["held"]:
        lines.append(f"HELD: this cancels {report['cancels_pairs']} pair(s); nothing is cancelled until `mentorship approve`.")
    else:
        lines.append("The daemon applies this on its next tick.")
    return "\n".join(lines)


EXPORT_COLUMNS = [
    "pair", "mentor", "mentor_email", "mentee", "mentee_email",
    "session1_utc", "session1_mentor_local", "session1_mentee_local", "session1_status", "session1_answers", "session1_attendance",
    "session2_utc", "session2_mentor_local", "session2_mentee_local", "session2_status", "session2_answers", "session2_attendance",
    "emails_sent", "emails_total", "attention",
]  # fmt: skip


def export_csv(report: dict) -> str:
    """One row per pair: people, sessions (UTC and local), answers, emails, attention."""
    out = io.StringIO()
    writer = csv.DictWriter(out, EXPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for pair in report["pairs"]:
        people = pair["people"] or [{"name": "", "email": "", "timezone": "UTC"}] * 2
        row = {"pair": pair["id"], "mentor": people[0]["name"], "mentor_email": people[0]["email"]}
        row |= {"mentee": people[1]["name"], "mentee_email": people[1]["email"]}
        for s in pair["sessions"]:
            start = datetime.fromisoformat(s["start"])
            prefix = f"session{s['number']}_"
            row[prefix + "utc"] = f"{start:%Y-%m-%d %H:%M}"
            for role, person in zip(("mentor", "mentee"), people, strict=True):
                local = start.astimezone(ZoneInfo(person["timezone"]))
                row[prefix + f"{role}_local"] = f"{local:%Y-%m-%d %H:%M} {zone_label(local)}"
            row[prefix + "status"] = s["status"]
            row[prefix + "answers"] = "; ".join(f"{who}: {what}" for who, what in sorted(s["answers"].items()))
            row[prefix + "attendance"] = s.get("attendance") or ""
        row["emails_sent"] = sum(1 for m in pair["messages"] if m["state"] == "sent")
        row["emails_total"] = sum(1 for m in pair["messages"] if m["state"] != "cancelled")
        row["attention"] = " | ".join(pair["attention"] + pair["problems"])
        writer.writerow(row)
    return out.getvalue()


def history_lines(report: dict, *, person: str | None = None, pair_id: str | None = None) -> list[str]:
    """Every email and session change, oldest first, in UTC and in the reader's own zone."""
    entries: list[tuple[str, str]] = []
    for pair in report["pairs"]:
        if pair_id and pair["id"] != pair_id:
            continue
        emails = {p["email"] for p in pair["people"]}
        if person and person.lower() not in {e.lower() for e in emails}:
            continue
        zones = {p["email"]: p["timezone"] for p in pair["people"]}
        for s in pair["sessions"]:
            start = _utc_and_local(s["start"], zones.get(person or "", "UTC"))
            if s["previous_start"]:
                what = f"session {s['number']} moved to {start} ({s['reason'] or 'changed'})"
            else:
                what = f"session {s['number']} {s['status']} for {start}"
            entries.append((s["changed_at"], f"{pair['id']}: {what}"))
        for m in pair["messages"]:
            if person and m["to"].lower() != person.lower():
                continue
            at = m["sent_at"] or m["due"]
            entries.append((at, f"{pair['id']}: {m['ref']} {m['stage'].replace('_', ' ')} to {m['to']}: {m['state']}"))
    lines = []
    for at, text in sorted(entries):
        lines.append(f"{_utc_and_local(at, _zone_of(report, person))}  {text}")
    return lines


def _zone_of(report: dict, person: str | None) -> str:
    for pair in report["pairs"]:
        for p in pair["people"]:
            if person and p["email"].lower() == person.lower():
                return p["timezone"]
    return "UTC"


def _utc_and_local(iso: str, zone: str) -> str:
    moment = datetime.fromisoformat(iso)
    local = moment.astimezone(ZoneInfo(zone))
    text = f"{moment:%Y-%m-%d %H:%M} UTC"
    return text if zone == "UTC" else f"{text} ({local:%H:%M} {zone_label(local)})"
