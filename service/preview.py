"""Every email of the program written to a folder, with a page to read them in a browser."""

from __future__ import annotations

from email import policy
from importlib.resources import files
from itertools import groupby
from pathlib import Path

import jinja2

from .domain.model import Role
from .domain.planning import Plan
from .domain.timeline import email_timeline
from .mail.compose import compose
from .mail.templates import Templates
from .timefmt import local, long_date, zone_label

# The package service._templates is the repository's templates/ folder (see pyproject.toml). setuptools
# installs package data as plain files (unpacked from a wheel, or read in place by an editable install),
# so files() is a real directory here, which is what jinja2's FileSystemLoader needs.
INDEX_DIR = Path(str(files("service._templates") / "preview")).resolve()


def write_preview(plan: Plan, templates: Templates, out: Path, *, pair_id: str | None = None) -> int:
    """Write <out>/index.html and, per email, an .eml file and its HTML body. Returns
    how many emails were written. Each email is dated when it is due."""
    cohort = plan.cohort
    messages_dir = out / "messages"
    messages_dir.mkdir(parents=True, exist_ok=True)
    entries, pairs = [], set()
    for item in plan.pairs:
        if pair_id and item.pair.id != pair_id:
            continue
        if item.sessions:
            pairs.add(item.pair.id)
        for planned in email_timeline(cohort, item.pair, item.sessions):
            message = compose(
                cohort, item.pair, item.sessions, stage=planned.stage, role=planned.role, templates=templates, stamp=planned.due
            )
            name = f"{planned.due:%Y%m%dT%H%M}-{planned.pair_id}-{planned.stage}-{planned.role.value}"
            (messages_dir / f"{name}.eml").write_bytes(message.as_bytes(policy=policy.SMTP))
            body = message.get_body(preferencelist=("html",))
            assert body is not None, "every email is built with an HTML part"
            html = body.get_content()
            (messages_dir / f"{name}.html").write_text(html, encoding="utf-8")
            when = local(planned.due, cohort.timezone)
            reader = item.pair.mentor if planned.role is Role.MENTOR else item.pair.mentee
            entries.append(
                {
                    "day": long_date(when.date()),
                    "date": when.date().isoformat(),
                    "due": planned.due,
                    "time": f"{when:%H:%M} {zone_label(when)}",
                    "stage": planned.stage,
                    "stage_words": planned.stage.words,
                    "role": planned.role.value,
                    "person": reader.email,
                    "name": reader.name,
                    "to": str(message["To"]),
                    "subject": str(message["Subject"]),
                    "eml": f"messages/{name}.eml",
                    "html": f"messages/{name}.html",
                }
            )
    entries.sort(key=lambda e: (e["due"], e["html"]))
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(INDEX_DIR), autoescape=True, trim_blocks=True, lstrip_blocks=True)
    days = [(day, list(items)) for day, items in groupby(entries, key=lambda e: e["day"])]
    page = env.get_template("index.html").render(
        cohort=cohort.name,
        timezone=cohort.timezone,
        count=len(entries),
        pairs=len(pairs),
        days=days,
        first=entries[0]["html"] if entries else "about:blank",
        # What the filters offer: each person, stage and day that has an email.
        people=sorted({(str(e["name"]), str(e["person"])) for e in entries}, key=lambda p: p[0].casefold()),
        stages=sorted({(str(e["stage"]), str(e["stage_words"])) for e in entries}, key=lambda s: s[1]),
        dates=[(items[0]["date"], day) for day, items in days],
    )
    (out / "index.html").write_text(page, encoding="utf-8")
    return len(entries)
