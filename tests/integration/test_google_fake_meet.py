"""The Meet part of the Google fake against the real googleapiclient: spaces made by
Calendar, settings, conference records in pieces, participants and their sessions,
filters, paging, expiry and errors in google.rpc.Status shape."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from google.oauth2 import service_account
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from tests.fakes.google import FakeGoogle

ORGANIZER = "coordinator@example.org"
MENTOR = "maya@example.org"
READ = "https://www.googleapis.com/auth/meetings.space.readonly"
SETTINGS = "https://www.googleapis.com/auth/meetings.space.settings"
EVENTS = "https://www.googleapis.com/auth/calendar.events"
T0 = datetime(2027, 3, 2, 15, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock():
    return Clock(T0 - timedelta(days=1))


@pytest.fixture
def google(clock):
    with FakeGoogle(clock=clock) as fake:
        yield fake
        assert fake.internal_errors == []


def credentials(google: FakeGoogle, tmp_path, scopes: list[str], subject: str = ORGANIZER):
    key = google.service_account_file(tmp_path / f"key-{len(scopes)}-{subject}.json")
    return service_account.Credentials.from_service_account_file(str(key), scopes=scopes).with_subject(subject)


@pytest.fixture
def meet(google, tmp_path):
    return build(
        "meet",
        "v2",
        credentials=credentials(google, tmp_path, [READ, SETTINGS]),
        static_discovery=True,
        client_options={"api_endpoint": google.api_endpoint("meet")},
    )


@pytest.fixture
def code(google, tmp_path) -> str:
    """The meeting code of an event's Meet link made through Calendar."""
    calendar = build(
        "calendar",
        "v3",
        credentials=credentials(google, tmp_path, [EVENTS]),
        static_discovery=True,
        client_options={"api_endpoint": google.api_endpoint("calendar")},
    )
    body = {
        "summary": "Session 1",
        "start": {"dateTime": T0.isoformat()},
        "end": {"dateTime": (T0 + timedelta(hours=1)).isoformat()},
        "conferenceData": {"createRequest": {"requestId": "r1", "conferenceSolutionKey": {"type": "hangoutsMeet"}}},
    }
    calendar.events().insert(calendarId="primary", body=body, conferenceDataVersion=1).execute()
    google.settle_meet()
    (event,) = google.events(ORGANIZER)
    return event["conferenceData"]["conferenceId"]


def status_of(error: HttpError) -> dict:
    return json.loads(error.content)["error"]


def test_a_calendar_made_space_is_found_by_its_meeting_code_and_its_settings_patched(google, meet, code):
    space = meet.spaces().get(name=f"spaces/{code}").execute()
    assert space["meetingCode"] == code and space["meetingUri"] == f"https://meet.google.com/{code}"
    assert space["name"].startswith("spaces/") and space["name"] != f"spaces/{code}"
    assert meet.spaces().get(name=space["name"]).execute()["meetingCode"] == code  # by its own id too
    body = {
        "config": {
            "accessType": "TRUSTED",
            "artifactConfig": {"recordingConfig": {"autoRecordingGeneration": "OFF"}},
        }
    }
    mask = "config.accessType,config.artifactConfig.recordingConfig.autoRecordingGeneration"
    patched = meet.spaces().patch(name=space["name"], updateMask=mask, body=body).execute()
    assert patched["config"]["accessType"] == "TRUSTED"
    assert patched["config"]["artifactConfig"]["recordingConfig"] == {"autoRecordingGeneration": "OFF"}
    # Only the masked fields change: transcription stays as the organisation set it.
    assert patched["config"]["artifactConfig"]["transcriptionConfig"] == {"autoTranscriptionGeneration": "ON"}


def test_unknown_spaces_bad_values_and_masks_are_refused_in_rpc_status_shape(google, meet, code):
    with pytest.raises(HttpError) as missing:
        meet.spaces().get(name="spaces/abc-defg-hij").execute()
    assert missing.value.resp.status == 404
    assert status_of(missing.value)["status"] == "NOT_FOUND" and "errors" not in status_of(missing.value)
    name = meet.spaces().get(name=f"spaces/{code}").execute()["name"]
    with pytest.raises(HttpError) as wrong:  # checked against the discovery document's enum
        meet.spaces().patch(name=name, body={"config": {"accessType": "EVERYONE"}}).execute()
    assert wrong.value.resp.status == 400
    with pytest.raises(HttpError) as mask:
        meet.spaces().patch(name=name, updateMask="config.colour", body={"config": {}}).execute()
    assert mask.value.resp.status == 400 and status_of(mask.value)["status"] == "INVALID_ARGUMENT"


def test_patching_needs_the_settings_scope_and_the_space_owner(google, tmp_path, code):
    reader = build(
        "meet",
        "v2",
        credentials=credentials(google, tmp_path, [READ]),
        static_discovery=True,
        client_options={"api_endpoint": google.api_endpoint("meet")},
    )
    name = reader.spaces().get(name=f"spaces/{code}").execute()["name"]
    with pytest.raises(HttpError) as scope:
        reader.spaces().patch(name=name, updateMask="config.accessType", body={"config": {"accessType": "TRUSTED"}}).execute()
    assert scope.value.resp.status == 403
    stranger = build(
        "meet",
        "v2",
        credentials=credentials(google, tmp_path, [SETTINGS], subject="someone@example.org"),
        static_discovery=True,
        client_options={"api_endpoint": google.api_endpoint("meet")},
    )
    with pytest.raises(HttpError) as owner:
        stranger.spaces().patch(name=name, updateMask="config.accessType", body={"config": {"accessType": "OPEN"}}).execute()
    assert owner.value.resp.status == 403


def test_a_meeting_in_pieces_gives_several_records_with_participants_and_their_sessions(google, meet, code, clock):
    at = lambda minutes: T0 + timedelta(minutes=minutes)  # noqa: E731
    # Maya joins, drops and comes back while Zoë (not signed in) is there; then both
    # leave, and Maya alone opens the room again later: a second conference.
    google.meet.attend(code, at(2), at(10), email=MENTOR, name="Maya Okafor")
    google.meet.attend(code, at(5), at(40), name="Zoë Núñez")
    google.meet.attend(code, at(12), at(45), email=MENTOR, name="Maya Okafor")
    google.meet.attend(code, at(70), at(75), email=MENTOR, name="Maya Okafor")
    google.meet.attend(code, at(72), None, name="+1 ***-***-0123", phone=True)
    clock.now = at(30)  # the first conference is running; nothing later is visible yet
    (running,) = meet.conferenceRecords().list().execute()["conferenceRecords"]
    assert "endTime" not in running
    assert meet.spaces().get(name=f"spaces/{code}").execute()["activeConference"] == {"conferenceRecord": running["name"]}
    clock.now = at(90)
    space = meet.spaces().get(name=f"spaces/{code}").execute()["name"]
    records = meet.conferenceRecords().list(filter=f'space.name = "{space}"').execute()["conferenceRecords"]
    assert [(r["startTime"], r.get("endTime")) for r in records] == [
        ("2027-03-02T16:10:00Z", None),  # newest first; the caller by phone is still there
        ("2027-03-02T15:02:00Z", "2027-03-02T15:45:00Z"),
    ]
    first = records[1]
    assert first["expireTime"] == "2027-04-01T15:45:00Z"
    people = meet.conferenceRecords().participants().list(parent=first["name"]).execute()
    assert people["totalSize"] == 2
    maya, zoe = people["participants"]
    assert maya["signedinUser"] == {"user": google.meet.user_id(MENTOR), "displayName": "Maya Okafor"}
    assert (maya["earliestStartTime"], maya["latestEndTime"]) == ("2027-03-02T15:02:00Z", "2027-03-02T15:45:00Z")
    assert zoe["anonymousUser"] == {"displayName": "Zoë Núñez"}
    visits = meet.conferenceRecords().participants().participantSessions().list(parent=maya["name"]).execute()
    assert [(s["startTime"], s["endTime"]) for s in visits["participantSessions"]] == [
        ("2027-03-02T15:02:00Z", "2027-03-02T15:10:00Z"),
        ("2027-03-02T15:12:00Z", "2027-03-02T15:45:00Z"),
    ]
    second = meet.conferenceRecords().participants().list(parent=records[0]["name"]).execute()["participants"]
    assert [p.get("phoneUser", {}).get("displayName") for p in second] == [None, "+1 ***-***-0123"]


def test_filters_on_meeting_code_and_start_time_paging_and_expiry(google, meet, code, clock):
    for day in range(3):
        start = T0 + timedelta(days=day)
        google.meet.attend(code, start, start + timedelta(minutes=30), email=MENTOR)
    clock.now = T0 + timedelta(days=5)
    lister = meet.conferenceRecords()
    by_code = lister.list(filter=f'space.meeting_code = "{code.upper()}"').execute()["conferenceRecords"]
    assert len(by_code) == 3
    window = f'space.meeting_code = "{code}" AND start_time >= "2027-03-03T00:00:00Z" AND start_time < "2027-03-04T00:00:00+00:00"'
    (one,) = lister.list(filter=window).execute()["conferenceRecords"]
    assert one["startTime"] == "2027-03-03T15:00:00Z"
    assert lister.list(filter="end_time IS NULL").execute() == {}
    page = lister.list(pageSize=2).execute()
    rest = lister.list(pageSize=2, pageToken=page["nextPageToken"]).execute()
    assert len(page["conferenceRecords"]) == 2 and len(rest["conferenceRecords"]) == 1 and "nextPageToken" not in rest
    for bad in ('space.colour = "red"', 'start_time >= "yesterday"', 'space.name = "a" OR space.name = "b"'):
        with pytest.raises(HttpError) as refused:
            lister.list(filter=bad).execute()
        assert refused.value.resp.status == 400
    clock.now = T0 + timedelta(days=30, minutes=31)  # the first conference ended 30 days ago
    assert len(lister.list().execute()["conferenceRecords"]) == 2
    with pytest.raises(HttpError) as gone:
        lister.get(name=by_code[-1]["name"]).execute()
    assert gone.value.resp.status == 404


def test_records_are_shown_to_the_organiser_and_not_to_strangers(google, tmp_path, code, clock):
    google.meet.attend(code, T0, T0 + timedelta(minutes=30), email=MENTOR)
    clock.now = T0 + timedelta(hours=1)
    stranger = build(
        "meet",
        "v2",
        credentials=credentials(google, tmp_path, [READ], subject="someone@example.org"),
        static_discovery=True,
        client_options={"api_endpoint": google.api_endpoint("meet")},
    )
    assert stranger.conferenceRecords().list().execute() == {}


def test_the_directory_gives_the_email_of_a_meet_user_in_the_organisation_only(google, tmp_path):
    people = build(
        "people",
        "v1",
        credentials=credentials(google, tmp_path, ["https://www.googleapis.com/auth/directory.readonly"]),
        static_discovery=True,
        client_options={"api_endpoint": google.api_endpoint("people")},
    )
    colleague = google.meet.user_id("maya@example.org").removeprefix("users/")
    found = people.people().get(resourceName=f"people/{colleague}", personFields="emailAddresses").execute()
    assert [a["value"] for a in found["emailAddresses"]] == ["maya@example.org"]
    outsider = google.meet.user_id("zoe@example.net").removeprefix("users/")
    with pytest.raises(HttpError) as missing:
        people.people().get(resourceName=f"people/{outsider}", personFields="emailAddresses").execute()
    assert missing.value.resp.status == 404
    with pytest.raises(HttpError) as no_fields:
        people.people().get(resourceName=f"people/{colleague}").execute()
    assert no_fields.value.resp.status == 400
