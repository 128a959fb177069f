"""The limits on configuration input, for inputs a case folder in tests/data/bad cannot
hold: huge or special files, secrets in the environment, timing. Each builds its input
in tmp_path."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from service.cli import main
from service.config import ConfigError, busyfiles, fields, files, load_configuration
from service.config.limits import (
    MAX_CELL_CHARS,
    MAX_COHORT_BYTES,
    MAX_COLUMNS,
    MAX_ICS_BYTES,
    MAX_PAIRINGS_BYTES,
    MAX_PROBLEMS_PER_FILE,
    MAX_ROWS,
    MAX_YAML_NODES,
    MAX_YAML_PAIRINGS_BYTES,
    QUOTE_CHARS,
    WINDOW_MARGIN_DAYS,
)
from service.config.problems import quote
from tests.builders import person

ROOT = Path(__file__).parents[2]
CANARY = "canary7f3e9b2dsecret"  # letters and digits only, so no spelling of it can hide it
ENVIRON = "/proc/self/environ"
COHORT = """\
name: Test Cohort
coordinator:
  name: Renata Alves
  email: renata@example.org
program:
  start: 2027-03-01
  end: 2027-04-30
  timezone: Europe/Berlin
pairings: {pairings}
"""
HEAD = "mentor_name,mentor_email,mentee_name,mentee_email"
ROW = "Maya Okafor,maya@example.org,Zoe Nunez,zoe@example.net"
ICS = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Test//EN\r\n{body}END:VCALENDAR\r\n"
EVENT = "BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20270101T000000Z\r\nDTSTART:{start}\r\nDTEND:{end}\r\n{extra}END:VEVENT\r\n"


def cohort(folder: Path, pairings: str = "pairings.csv", extra: str = "") -> Path:
    config = folder / "cohort.yaml"
    config.write_text(COHORT.format(pairings=pairings) + extra, encoding="utf-8")
    return config


def problems_of(config: Path, pairings: Path | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_configuration(config, pairings)
    return [str(p) for p in caught.value.problems]


def validate(folder: Path, *args: str) -> tuple[int, str]:
    """The real command in a process of its own, with a secret in its environment."""
    env = dict(os.environ, SMTP_PASSWORD=CANARY, PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, "-m", "service", "validate", *args], cwd=folder, env=env, capture_output=True, text=True, timeout=60
    )
    return result.returncode, result.stdout + result.stderr


def shows_canary(output: str) -> bool:
    squeezed = "".join(c for c in output.lower() if c.isalnum())
    return CANARY in squeezed


# -- the quoting helper


def test_quote_cuts_long_values_and_escapes_control_characters():
    assert quote("Maya\r\nBcc: x@example.com") == r"'Maya\r\nBcc: x@example.com'"
    long = quote("x" * 100)
    assert long == "'" + "x" * QUOTE_CHARS + "…'"
    assert quote("a\x00b\u2028c", bare=True) == r"a\x00b\u2028c"
    assert quote("Zoë Ñúñez") == "'Zoë Ñúñez'"  # printable text is shown as it is


def test_quote_never_writes_out_a_huge_value():
    assert len(quote(list(range(1_000_000)))) <= QUOTE_CHARS + 1
    assert len(quote(10**4000)) <= QUOTE_CHARS + 1
    assert quote(15.5) == "15.5" and quote(True) == "True"


# -- secrets must not leak through messages


@pytest.fixture
def secrets(tmp_path):
    """A cohort folder with files that hold the canary: one like /etc/shadow, one like an
    environment, and links to them and to /proc/self/environ."""
    folder = tmp_path / "cohort"
    folder.mkdir()
    (folder / "shadow").write_text(f"root:$6${CANARY}:19000:0:99999:7:::\n{CANARY},{CANARY}\n")
    (folder / "env.ics").write_text(f"SMTP_PASSWORD={CANARY}\nBEGIN:VCALENDAR\n{CANARY}:{CANARY}\n")
    (folder / "environ.ics").symlink_to(ENVIRON)
    (folder / "environ.csv").symlink_to(ENVIRON)
    (folder / "environ.yaml").symlink_to(ENVIRON)
    (folder / "shadow.ics").symlink_to(folder / "shadow")
    return folder


def write_pairings(folder: Path, *calendars: str) -> None:
    rows = [f"{HEAD},mentor_busy_ics,mentee_busy_ics"]
    for n in range(0, len(calendars), 2):
        rows.append(f"M{n},m{n}@example.org,E{n},e{n}@example.net,{calendars[n]},{calendars[n + 1]}")
    (folder / "pairings.csv").write_text("\n".join(rows) + "\n")


@pytest.mark.parametrize(
    "how",
    [
        "cohort file is a secret",
        "cohort file is the environment",
        "cohort file links to the environment",
        "pairings file is a secret",
        "pairings file is the environment",
        "--pairings is a secret",
        "--pairings is the environment",
        "busy calendars and credentials are secrets",
    ],
)
def test_no_path_field_can_make_a_secret_appear_in_the_output(secrets, how):
    folder, args = secrets, ["--config", "cohort.yaml"]
    if how == "cohort file is a secret":
        args = ["--config", "shadow"]
    elif how == "cohort file is the environment":
        args = ["--config", ENVIRON]
    elif how == "cohort file links to the environment":
        args = ["--config", "environ.yaml"]
    elif how == "pairings file is a secret":
        cohort(folder, pairings="shadow")
    elif how == "pairings file is the environment":
        cohort(folder, pairings=ENVIRON)
    elif how.startswith("--pairings"):
        cohort(folder, pairings="unused.csv")
        args += ["--pairings", "shadow" if "secret" in how else ENVIRON]
    else:
        cohort(folder, extra=f"google:\n  credentials: {ENVIRON}\nemails:\n  templates: shadow\n")
        write_pairings(folder, ENVIRON, "shadow", "env.ics", "environ.ics", "shadow.ics", "environ.csv")
    status, output = validate(folder, *args)
    assert status == 2, output
    assert "Traceback" not in output
    assert not shows_canary(output), output


def test_the_secret_files_would_show_the_canary_if_they_were_quoted(secrets):
    # The check above is only worth something if the canary is there to be found.
    assert shows_canary((secrets / "shadow").read_text())
    assert shows_canary((secrets / "env.ics").read_text())
    cohort(secrets, pairings="unused.csv")
    status, output = validate(secrets, "--config", "cohort.yaml", "--pairings", "shadow")
    assert "not a pairings header" in output


# -- files that are not regular files


@pytest.fixture
def opened(monkeypatch):
    """Every path os.open is asked for, while the test runs."""
    seen: list[str] = []
    real_open = os.open

    def spy(path, flags, *args, **kwargs):
        seen.append(os.fsdecode(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    return seen


def test_a_named_pipe_is_refused_without_being_opened(tmp_path, opened, monkeypatch, capsys):
    os.mkfifo(tmp_path / "pipe")
    cohort(tmp_path, extra="google:\n  credentials: pipe\n")
    (tmp_path / "pairings.csv").write_text(f"{HEAD},mentor_busy_ics\n{ROW},pipe\n")
    found = problems_of(tmp_path / "cohort.yaml")
    assert found == [
        f"{tmp_path / 'cohort.yaml'}:11: google.credentials 'pipe' is not a regular file (a named pipe)",
        f"{tmp_path / 'pairings.csv'}:2: mentor_busy_ics 'pipe' is not a regular file (a named pipe)",
    ]
    assert problems_of(tmp_path / "cohort.yaml", tmp_path / "pipe") == [
        f"{tmp_path / 'cohort.yaml'}:11: google.credentials 'pipe' is not a regular file (a named pipe)",
        f"{tmp_path / 'pipe'}: is not a regular file (a named pipe)",
    ]
    cohort(tmp_path, pairings="pipe")
    assert problems_of(tmp_path / "cohort.yaml") == [
        f"{tmp_path / 'cohort.yaml'}:9: pairings file 'pipe' is not a regular file (a named pipe)"
    ]
    assert problems_of(tmp_path / "pipe") == [f"{tmp_path / 'pipe'}: is not a regular file (a named pipe)"]
    assert not [path for path in opened if path.endswith("pipe")]


def test_the_real_command_refuses_a_named_pipe_given_with_pairings(tmp_path):
    os.mkfifo(tmp_path / "pipe.csv")
    cohort(tmp_path)
    status, output = validate(tmp_path, "--config", "cohort.yaml", "--pairings", "pipe.csv")  # would block if opened
    assert (status, output.splitlines()[1:]) == (2, ["pipe.csv: is not a regular file (a named pipe)"])


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/null", "/sys/kernel", "/proc/self/status", "/proc/self/environ"])
def test_system_files_are_refused_wherever_a_path_is_read(tmp_path, path):
    cohort(tmp_path)
    (tmp_path / "pairings.csv").write_text(f"{HEAD},mentor_busy_ics\n{ROW},{path}\n")
    under = "/" + path.split("/")[1]
    reason = f"is not a regular file (it is under {under}, which holds system data)"
    assert problems_of(tmp_path / "cohort.yaml") == [f"{tmp_path / 'pairings.csv'}:2: mentor_busy_ics '{path}' {reason}"]
    assert problems_of(tmp_path / "cohort.yaml", Path(path)) == [f"{path}: {reason}"]
    assert problems_of(Path(path)) == [f"{path}: {reason}"]


def test_a_folder_is_not_a_file(tmp_path):
    (tmp_path / "calendars").mkdir()
    cohort(tmp_path)
    (tmp_path / "pairings.csv").write_text(f"{HEAD},mentor_busy_ics\n{ROW},calendars\n")
    assert problems_of(tmp_path / "cohort.yaml") == [
        f"{tmp_path / 'pairings.csv'}:2: mentor_busy_ics 'calendars' is not a regular file (a folder)"
    ]


# -- sizes, checked before reading


@pytest.mark.parametrize(
    ("name", "limit"),
    [
        ("cohort.yaml", MAX_COHORT_BYTES),
        ("pairings.csv", MAX_PAIRINGS_BYTES),
        ("pairings.yaml", MAX_YAML_PAIRINGS_BYTES),
        ("busy.ics", MAX_ICS_BYTES),
    ],
)
def test_files_over_their_size_limit_are_refused_without_being_read(tmp_path, opened, name, limit):
    cohort(tmp_path, pairings="pairings.yaml" if name == "pairings.yaml" else "pairings.csv")
    (tmp_path / "pairings.csv").write_text(f"{HEAD},mentor_busy_ics\n{ROW},busy.ics\n")
    (tmp_path / "busy.ics").write_text(ICS.format(body=""))
    big = tmp_path / name
    with big.open("ab") as file:
        file.truncate(limit + 1)  # sparse: no disk used
    found = problems_of(tmp_path / "cohort.yaml")
    shown = f"{limit // 1_000_000} MB"
    if name == "busy.ics":
        assert found == [f"{tmp_path / 'pairings.csv'}:2: mentor_busy_ics 'busy.ics' is {limit + 1:,} bytes; at most {shown} is allowed"]
    elif name.startswith("pairings"):
        assert found == [f"{tmp_path / 'cohort.yaml'}:9: pairings file '{name}' is {limit + 1:,} bytes; at most {shown} is allowed"]
    else:
        assert found == [f"{big}: is {limit + 1:,} bytes; at most {shown} is allowed"]
    assert str(big) not in opened


def test_a_file_that_grows_after_the_check_is_still_read_only_up_to_the_limit(tmp_path, monkeypatch):
    path = tmp_path / "growing.csv"
    path.write_bytes(b"x" * 100)
    real_check = files.check
    monkeypatch.setattr(files, "check", lambda p, limit: real_check(p, 10**9))  # as if it were small when checked
    with pytest.raises(files.Unusable, match="is larger than the 50 bytes allowed"):
        files.read_bytes(path, 50)


# -- the pairings file's shape


def test_more_rows_than_allowed_are_refused(tmp_path):
    cohort(tmp_path)
    rows = "".join(f"M{n},m{n}@example.org,E{n},e{n}@example.net\n" for n in range(MAX_ROWS + 1))
    (tmp_path / "pairings.csv").write_text(f"{HEAD}\n{rows}")
    assert problems_of(tmp_path / "cohort.yaml") == [
        f"{tmp_path / 'pairings.csv'}:{MAX_ROWS + 2}: more than {MAX_ROWS:,} rows; at most {MAX_ROWS:,} pairs are allowed"
    ]


def test_more_yaml_pairs_than_allowed_are_refused(tmp_path):
    cohort(tmp_path, pairings="pairings.yaml")
    (tmp_path / "pairings.yaml").write_text("- x\n" * (MAX_ROWS + 1))
    assert problems_of(tmp_path / "cohort.yaml") == [
        f"{tmp_path / 'pairings.yaml'}:{MAX_ROWS + 1}: more than {MAX_ROWS:,} pairs; at most {MAX_ROWS:,} are allowed"
    ]


def test_yaml_parsing_stops_after_so_many_values(tmp_path):
    # Tiny values are the costliest per byte: 3 MB of them took half a minute to parse.
    cohort(tmp_path, pairings="pairings.yaml")
    (tmp_path / "pairings.yaml").write_text("- [x, x, x, x, x, x, x, x, x]\n" * (MAX_YAML_PAIRINGS_BYTES // 31))
    found = problems_of(tmp_path / "cohort.yaml")
    line = (MAX_YAML_NODES - 1) // 10 + 1  # the root list, then ten values a line: one too many on this line
    assert found == [f"{tmp_path / 'pairings.yaml'}:{line}: the file holds more than {MAX_YAML_NODES:,} values (lists and groups included)"]


def test_a_header_of_200000_columns_is_refused_at_once(tmp_path):
    cohort(tmp_path)
    (tmp_path / "pairings.csv").write_text(",".join(f"c{n}" for n in range(200_000)) + "\n" + ROW + "\n")
    found = problems_of(tmp_path / "cohort.yaml")
    assert found == [f"{tmp_path / 'pairings.csv'}:1: the header has 200,000 columns; at most {MAX_COLUMNS} are allowed"]


def test_a_long_header_cell_is_cut_in_the_message(tmp_path):
    cohort(tmp_path)
    (tmp_path / "pairings.csv").write_text(f"{HEAD},{'y' * 5000}\n{ROW},1\n")
    warnings = load_configuration(tmp_path / "cohort.yaml").warnings  # a column the service does not use is kept
    (note,) = [w for w in warnings if "extra" in w.message]
    assert str(note).endswith(f"not used by the service, kept for the templates as extra: '{'y' * QUOTE_CHARS}…'")
    assert len(str(note)) < 600


def test_a_value_at_the_cell_limit_is_accepted(tmp_path):
    cohort(tmp_path)
    (tmp_path / "pairings.csv").write_text(f"{HEAD},notes\n{ROW},{'x' * MAX_CELL_CHARS}\n")
    (pair,) = load_configuration(tmp_path / "cohort.yaml").cohort.pairs
    assert len(pair.notes) == MAX_CELL_CHARS


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("pairings.csv", HEAD + "\n" + "x\n" * 100_000),  # a row of one value, over and over
        ("pairings.yaml", "- mentor_name: Maya\n  favourite_colour: teal\n" * 1_000),  # an unknown key in every pair
        ("cohort.yaml", None),  # the same setting over and over
    ],
)
def test_a_file_stops_being_read_after_so_many_problems(tmp_path, name, content):
    config = cohort(tmp_path, pairings=name if name.startswith("pairings") else "pairings.csv")
    if content is None:
        config.write_text(config.read_text() + "name: again\n" * 20_000)
    else:
        (tmp_path / name).write_text(content)
    found = problems_of(config)
    assert len(found) == MAX_PROBLEMS_PER_FILE + 1
    assert found[0] == f"{tmp_path / name}: more than {MAX_PROBLEMS_PER_FILE} problems: stopped reading here; fix these first"


# -- dates


def test_blackout_ranges_are_clipped_to_the_program_and_its_margin(tmp_path):
    cohort(tmp_path)
    (tmp_path / "pairings.csv").write_text(f"{HEAD},mentor_blackout,mentee_blackout\n{ROW},0001-01-01..9999-12-31,2026-01-01;2027-03-10\n")
    (pair,) = load_configuration(tmp_path / "cohort.yaml").cohort.pairs
    margin = timedelta(days=WINDOW_MARGIN_DAYS)
    first, last = date(2027, 3, 1) - margin, date(2027, 4, 30) + margin
    blackout = pair.mentor.availability.blackout_dates
    assert (min(blackout), max(blackout), len(blackout)) == (first, last, (last - first).days + 1)
    assert pair.mentee.availability.blackout_dates == {date(2027, 3, 10)}  # 2026-01-01 lies far outside


def test_many_overlapping_ranges_cost_no_more_than_one():
    found = fields.dates(";".join(["2000-01-01..2100-12-31"] * 90))
    assert len(found) == (date(2100, 12, 31) - date(2000, 1, 1)).days + 1


def test_without_a_program_blackout_dates_are_only_checked():
    assert fields.dates("0001-01-01..9999-12-31", None) == frozenset()
    with pytest.raises(ValueError, match="ends before it starts"):
        fields.dates("2027-03-10..2027-03-01", None)


# -- busy calendars


def calendar_file(folder: Path, body: str, name: str = "busy.ics") -> Path:
    path = folder / name
    path.write_text(ICS.format(body=body))
    return path


def test_a_rule_that_never_matches_is_stopped_by_the_time_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(busyfiles, "MAX_ICS_SECONDS", 0.5)
    never = "RRULE:FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30\r\n"  # 30 February: the expander looks until year 9999
    body = "".join(EVENT.format(uid=n, start="20270101T090000Z", end="20270101T100000Z", extra=never) for n in range(20))
    calendar_file(tmp_path, body)
    cohort(tmp_path)
    (tmp_path / "pairings.csv").write_text(f"{HEAD},mentor_busy_ics\n{ROW},busy.ics\n")
    found = problems_of(tmp_path / "cohort.yaml")
    assert found == [
        f"{tmp_path / 'pairings.csv'}:2: mentor_busy_ics 'busy.ics' takes more than 0.5 seconds of processing to read:"
        " a repeat rule matches rarely or never (check its repeat rules)"
    ]


def test_the_time_limit_leaves_other_timers_and_threads_alone(tmp_path):
    path = calendar_file(tmp_path, EVENT.format(uid="a", start="20270302T090000Z", end="20270302T100000Z", extra="RRULE:FREQ=WEEKLY\r\n"))
    results: list[object] = []
    thread = threading.Thread(target=lambda: results.append(busyfiles.read(path, date(2027, 3, 1), date(2027, 3, 31))))
    thread.start()
    thread.join(30)
    (flat,) = results
    assert len(flat.walk("VEVENT")) == 5


def test_a_raw_calendar_is_judged_before_it_is_expanded():
    raw = busyfiles.icalendar.Calendar.from_ical(
        ICS.format(body=EVENT.format(uid="s", start="20270301T090000Z", end="20270301T090001Z", extra="RRULE:FREQ=SECONDLY\r\n"))
    )
    with pytest.raises(ValueError, match="repeats too often"):
        busyfiles.busy_intervals(raw, person("P", "Europe/Berlin"), datetime(2027, 2, 27, tzinfo=UTC), datetime(2027, 5, 2, tzinfo=UTC))


def test_reading_a_calendar_once_gives_the_same_busy_time_as_expanding_it_each_time(tmp_path):
    from tests.unit.test_icsfile import CALENDAR, WINDOW

    extra = (
        "BEGIN:VEVENT\r\nUID:all-day-hours@test\r\nDTSTAMP:20270101T000000Z\r\nDTSTART;VALUE=DATE:20270412\r\nDURATION:PT5H\r\nEND:VEVENT\r\n"
        "BEGIN:VEVENT\r\nUID:across-dst@test\r\nDTSTAMP:20270101T000000Z\r\nDTSTART;TZID=Europe/Berlin:20270327T230000\r\n"
        "DURATION:PT5H\r\nRRULE:FREQ=DAILY;COUNT=3\r\nEND:VEVENT\r\nEND:VCALENDAR"
    )
    path = tmp_path / "busy.ics"
    path.write_text(CALENDAR.replace("END:VCALENDAR", extra))
    for zone in ("Europe/Berlin", "Asia/Tokyo", "America/Los_Angeles"):
        someone = person("P", zone)
        each_time = busyfiles.busy_intervals(busyfiles.parse(path), someone, *WINDOW)
        once = busyfiles.busy_intervals(busyfiles.read(path, date(2027, 2, 20), date(2027, 5, 9)), someone, *WINDOW)
        assert once == each_time and len(once) == 11


def test_a_long_standing_weekly_event_is_fine(tmp_path):
    # Real exports repeat from years back: a weekly meeting since 2001 is about 1,400 steps.
    body = EVENT.format(uid="weekly", start="20010105T090000Z", end="20010105T100000Z", extra="RRULE:FREQ=WEEKLY;BYDAY=MO,WE,FR\r\n")
    body += EVENT.format(uid="birthday", start="19500314", end="19500315", extra="RRULE:FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=14\r\n")
    calendar_file(
        tmp_path, body.replace("DTSTART:19500314", "DTSTART;VALUE=DATE:19500314").replace("DTEND:19500315", "DTEND;VALUE=DATE:19500315")
    )
    cohort(tmp_path)
    (tmp_path / "pairings.csv").write_text(f"{HEAD},mentor_busy_ics\n{ROW},busy.ics\n")
    configuration = load_configuration(tmp_path / "cohort.yaml")
    (calendar,) = configuration.busy_calendars.values()
    first, last = date(2027, 3, 1) - timedelta(days=WINDOW_MARGIN_DAYS), date(2027, 4, 30) + timedelta(days=WINDOW_MARGIN_DAYS)
    weekly = sum(1 for n in range((last - first).days + 1) if (first + timedelta(days=n)).weekday() in (0, 2, 4))
    assert len(calendar.walk("VEVENT")) == weekly + 1  # and the birthday


def test_the_cli_reports_a_problem_not_a_traceback_for_each_probe(tmp_path, capsys, monkeypatch):
    # The e2e corpus checks exact messages; this checks that the in-process command copes
    # with what only a test can build: a huge header and a deep YAML nesting.
    cohort(tmp_path, extra="sessions: " + "[" * 5000 + "]" * 5000 + "\n")
    (tmp_path / "pairings.csv").write_text(",".join("x" * 10 for _ in range(50_000)) + "\n")
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "--config", "cohort.yaml"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[1:] == ["cohort.yaml:10: values are nested more than 20 levels deep"]
