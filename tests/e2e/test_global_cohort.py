"""A cohort drawn from twelve time zones with default hours, from the files a coordinator
writes to the plan they read: everyone planned, outside hours where needed, fairly."""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from bench.cohorts import CLOCK_START, COLUMNS, WORLD_ZONES, write_cohort
from service.cli import main
from service.config import load_cohort
from service.domain.model import Stretch
from service.domain.planning import plan_sessions
from service.domain.stretch import outside_hours, stretched
from tests.planchecks import violations

ROOT = Path(__file__).parents[2]
SEED = 1  # draws people in all twelve zones


def _add_row(pairings: Path, **values: str) -> None:
    """A row at the end, under the file's own header."""
    with pairings.open(encoding="utf-8", newline="") as handle:
        header = next(csv.reader(handle))
    with pairings.open("a", encoding="utf-8", newline="") as handle:
        csv.DictWriter(handle, fieldnames=header).writerow(dict.fromkeys(header, "") | values)


@pytest.fixture
def worldwide(tmp_path):
    made = write_cohort(tmp_path, 25, SEED, name="Worldwide", near_share=0, details=False, zones=WORLD_ZONES)
    assert made.pairs == 25 and made.zones == 12
    # And one pair who wrote their own hours, which never meet: New York and Sydney.
    _add_row(
        made.pairings,
        pair_id="declared",
        mentor_name="Ana Lima",
        mentor_email="ana.lima@example.org",
        mentor_timezone="America/New_York",
        mentor_hours="09:00-17:00",
        mentee_name="Sam Lee",
        mentee_email="sam.lee@example.net",
        mentee_timezone="Australia/Sydney",
        mentee_hours="09:00-17:00",
    )
    return made


def test_every_pair_is_planned_but_the_one_whose_own_hours_never_meet(worldwide):
    cohort = load_cohort(worldwide.config)
    plan = plan_sessions(cohort, {}, now=CLOCK_START)
    left = [item for item in plan.pairs if not item.sessions]
    assert [item.pair.id for item in left] == ["declared"]
    assert "Ana Lima and Sam Lee declared their hours, which are not stretched" in left[0].problems[0]
    assert left[0].problems[0].endswith("it would be planned with working_hours.stretch_declared: true")
    assert violations(cohort, plan, now=CLOCK_START) == []  # holidays, days, 06:00-22:00, the stretch's reach
    # Without the stretch about a third of these pairs would be left out, as the issue found.
    assert plan_sessions(replace(cohort, stretch=Stretch(minutes=0)), {}, now=CLOCK_START).booked <= 17
    stretched_pairs = 0
    for item in plan.pairs:
        if not any(stretched(item.pair, s) for s in item.sessions):
            continue
        stretched_pairs += 1
        mentor = sum(sum(outside_hours(item.pair.mentor.availability, s.start, s.end)) for s in item.sessions)
        mentee = sum(sum(outside_hours(item.pair.mentee.availability, s.start, s.end)) for s in item.sessions)
        assert abs(mentor - mentee) <= 30, item.pair.id  # one step of the grid at most: nobody carries most of it
    assert stretched_pairs >= 8


def test_the_plan_json_marks_stretched_sessions(worldwide, capsys):
    assert main(["plan", "--config", str(worldwide.config), "--format", "json", "--now", CLOCK_START.isoformat()]) == 0
    document = json.loads(capsys.readouterr().out)
    sessions = [s for item in document["pairs"] for s in item["sessions"]]
    marked = [s for s in sessions if s["stretched"]]
    assert marked and len(marked) < len(sessions)
    for item in document["pairs"]:
        emails = {item["mentor"]["email"], item["mentee"]["email"]}
        for s in item["sessions"]:
            assert s["status"] == "planned"
            for share in s["stretched"]:
                assert share["email"] in emails and share["because_of"] in emails - {share["email"]}
                assert share["side"] in ("early", "late") and 0 < share["minutes"] <= 180
    assert main(["plan", "--config", str(worldwide.config), "--now", CLOCK_START.isoformat()]) == 0
    table = capsys.readouterr().out
    assert "25 of 26 pairs fully planned; " in table and " outside someone's working hours" in table
    assert " min early" in table and " min late" in table


def test_a_dst_only_pair_is_told_the_date_from_the_cohort_file(tmp_path):
    made = write_cohort(
        tmp_path, 1, SEED, name="Clock change", near_share=0, details=False, sections="working_hours:\n  stretch_minutes: 0\n"
    )
    with made.pairings.open("w", encoding="utf-8", newline="") as handle:
        handle.write(",".join(COLUMNS) + "\n")
    _add_row(
        made.pairings,
        pair_id="tokyo-berlin",
        mentor_name="Aiko Sato",
        mentor_email="aiko.sato@example.org",
        mentor_timezone="Asia/Tokyo",
        mentee_name="Jonas Weber",
        mentee_email="jonas.weber@example.net",
        mentee_timezone="Europe/Berlin",
    )
    (item,) = plan_sessions(load_cohort(made.config), {}, now=CLOCK_START).pairs
    assert item.problems[0].startswith("their working hours meet only after the clock change on 28 Mar 2027 in Berlin")
    assert "first_within_weeks: 5" in item.problems[0]


def test_plan_with_the_state_shows_what_is_booked_and_plans_the_rest(tmp_path, capsys):
    shutil.copytree(ROOT / "config", tmp_path / "config")
    config, state = str(tmp_path / "config" / "cohort.example.yaml"), str(tmp_path / "state.sqlite")
    until = ["--now", "2027-02-01T00:00:00+00:00", "--until", "2027-02-02T00:00:00+00:00"]
    assert main(["run", "--config", config, "--state", state, "--simulate", "--outbox", str(tmp_path / "out"), *until]) == 0
    capsys.readouterr()
    # A pair joins after the daemon booked everyone else.
    _add_row(
        tmp_path / "config" / "pairings.example.csv",
        pair_id="late-joiner",
        mentor_name="Ana Lima",
        mentor_email="ana.lima@example.org",
        mentor_timezone="America/New_York",
        mentee_name="Sam Lee",
        mentee_email="sam.lee@example.net",
        mentee_timezone="Australia/Sydney",
    )
    now = ["--now", "2027-02-02T00:00:00+00:00"]
    assert main(["plan", "--config", config, "--state", state, "--format", "json", *now]) == 0
    document = json.loads(capsys.readouterr().out)
    status = {item["id"]: {s["status"] for s in item["sessions"]} for item in document["pairs"]}
    assert status.pop("late-joiner") == {"planned"}
    assert len(status) == 14 and all(found == {"booked"} for found in status.values())
    # The booked times are the state's own.
    assert main(["status", "--config", config, "--state", state, "--format", "json", *now]) == 0
    stored = {item["id"]: [s["start"] for s in item["sessions"]] for item in json.loads(capsys.readouterr().out)["pairs"]}
    shown = {item["id"]: [s["start"] for s in item["sessions"]] for item in document["pairs"] if item["id"] != "late-joiner"}
    assert shown == {pair_id: starts for pair_id, starts in stored.items() if pair_id in shown}
    assert main(["plan", "--config", config, "--state", str(tmp_path / "none.sqlite"), *now]) == 2
    assert "no state at" in capsys.readouterr().err
