"""Time zones as people write them: exact names in any case, spellings that name one zone
(read with a note for the warning), and spellings that could mean several (refused with
the likely names)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from service import bootstrap
from service.adapters.clock import SimulatedClock
from service.config import zones

NOTE_WINDOWS, NOTE_OLD, NOTE_CITY, NOTE_ABBREVIATION = (
    "a Windows time zone name",
    "an old name of this zone",
    "a city in this zone",
    "an abbreviation used only there",
)


@pytest.mark.parametrize(
    ("written", "zone", "note"),
    [
        ("Europe/Berlin", "Europe/Berlin", None),
        ("america/los_angeles", "America/Los_Angeles", None),  # only the case differs: no warning
        ("AMERICA/NEW_YORK", "America/New_York", None),
        ("America/Los Angeles", "America/Los_Angeles", None),
        ("Europe/Stockholm", "Europe/Stockholm", None),  # a link in tzdata's source, but the name in use
        ("UTC", "UTC", None),
        ("Etc/GMT+3", "Etc/GMT+3", None),  # written on purpose: a fixed offset
        ("US/Eastern", "America/New_York", NOTE_OLD),
        ("asia/calcutta", "Asia/Kolkata", NOTE_OLD),
        ("Eastern Standard Time", "America/New_York", NOTE_WINDOWS),
        ("W. Europe Standard Time", "Europe/Berlin", NOTE_WINDOWS),
        ("india standard time", "Asia/Kolkata", NOTE_WINDOWS),
        ("Argentina Standard Time", "America/Argentina/Buenos_Aires", NOTE_WINDOWS),  # CLDR's old name, brought up to date
        ("New York", "America/New_York", NOTE_CITY),
        ("Sydney", "Australia/Sydney", NOTE_CITY),
        ("JST", "Asia/Tokyo", NOTE_ABBREVIATION),
    ],
)
def test_spellings_that_name_one_zone(written, zone, note):
    assert zones.read(written) == zones.Zone(zone, note)


@pytest.mark.parametrize(
    ("written", "message"),
    [
        (
            "EST",
            "'EST' could mean several time zones: write the IANA name of the person's city,"
            " such as America/New_York, America/Toronto or America/Panama",
        ),
        ("Eastern Time", "such as America/New_York, America/Toronto or America/Panama"),
        ("(UTC-05:00) Eastern Time (US & Canada)", "such as America/New_York, America/Toronto or America/Panama"),
        ("CST", "such as America/Chicago, America/Mexico_City or Asia/Shanghai"),
        ("ist", "such as Asia/Kolkata, Europe/Dublin or Asia/Jerusalem"),
        ("CET", "such as Europe/Berlin, Europe/Paris or Europe/Madrid"),
        (
            "GMT-3",
            "'GMT-3' is an offset, not a time zone: it ignores daylight saving; write the IANA name of the person's city,"
            " such as America/Sao_Paulo, America/Argentina/Buenos_Aires or America/Montevideo (Etc/GMT+3 is that offset all year round)",
        ),
        ("UTC+5:30", "such as Asia/Kolkata"),
        ("Europe/Berln", "'Europe/Berln' is not a time zone: did you mean Europe/Berlin?"),
        ("Mars/Olympus", "'Mars/Olympus' is not a time zone: use an IANA name such as Europe/Berlin"),
        ("Factory", "is not a time zone"),
    ],
)
def test_spellings_that_could_mean_several_zones_are_refused_with_the_likely_ones(written, message):
    with pytest.raises(ValueError) as refused:
        zones.read(written)
    assert message in str(refused.value)


def test_the_daemon_logs_the_warnings_of_the_configuration_it_starts_with(tmp_path, caplog):
    (tmp_path / "pairings.csv").write_text(
        "Mentor Name,Mentor Email,Mentor Time Zone,Mentee Name,Mentee Email,Mentee Time Zone,Mentee goals\n"
        "Maya,maya@example.org,Eastern Standard Time,Zoe,zoe@example.net,Europe/Berlin,Backend work\n",
        encoding="utf-8",
    )
    config = tmp_path / "cohort.yaml"
    config.write_text(
        "name: Test\ncoordinator: {name: Renata Alves, email: renata@example.org}\n"
        "program: {start: 2027-03-01, end: 2027-04-30, timezone: Europe/Berlin}\npairings: pairings.csv\n",
        encoding="utf-8",
    )
    with caplog.at_level(logging.WARNING, logger="mentorship"):
        watcher = bootstrap.ConfigWatcher.start(Path(config), None, SimulatedClock(datetime(2027, 2, 1, tzinfo=UTC)))
    logged = [r.getMessage() for r in caplog.records if getattr(r, "event", None) == "config_warning"]
    assert logged == [str(w) for w in watcher.configuration.warnings]
    assert [m.split(": warning: ")[1] for m in logged] == [
        "not used by the service, kept for the templates as extra: 'Mentee goals'",
        "time zone 'Eastern Standard Time' read as America/New_York (a Windows time zone name)",
    ]
    (pair,) = watcher.configuration.cohort.pairs
    assert pair.extra == {"Mentee goals": "Backend work"}
