"""The Google fake (tests/fakes/google) against the real googleapiclient and google-auth:
service-account delegation, Calendar events with Meet links, incremental sync, free/busy,
batches, Gmail send and lookup, validation, auth errors and injected faults."""

from __future__ import annotations

import base64
import http.client
import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import google_auth_httplib2
import httplib2
import pytest
from google.oauth2 import credentials as user_credentials
from google.oauth2 import service_account
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from googleapiclient.http import BatchHttpRequest

from tests.fakes.google import ApiError, Discovery, FakeGoogle, Fault, Validator

ROOT = Path(__file__).resolve().parents[2]
COORDINATOR = "coordinator@example.org"
MENTOR = "maya@example.org"
MENTEE = "zoe@example.net"
CALENDAR_SCOPES = [
    "https://www.googleapis.com/auth/calendar.events",
    "https://www.googleapis.com/auth/calendar.freebusy",
]
GMAIL_SCOPES = [
    "https://www.googleapis.com/auth/gmail.send",
    "https://www.googleapis.com/auth/gmail.readonly",
]
MEET_LINK = re.compile(r"^https://meet\.google\.com/[a-z]{3}-[a-z]{4}-[a-z]{3}$")


# --------------------------------------------------------------------------- fixtures and helpers


@pytest.fixture
def google():
    with FakeGoogle() as fake:
        yield fake
        assert fake.internal_errors == []


@pytest.fixture
def key_file(google, tmp_path):
    return google.service_account_file(tmp_path / "service-account.json")


def delegated(key_file: Path, scopes: list[str], subject: str = COORDINATOR):
    return service_account.Credentials.from_service_account_file(str(key_file), scopes=scopes).with_subject(subject)


def calendar_service(google: FakeGoogle, credentials=None, http=None):
    return build(
        "calendar",
        "v3",
        credentials=credentials,
        http=http,
        static_discovery=True,
        client_options={"api_endpoint": f"{google.url}/calendar/v3/"},
    )


def gmail_service(google: FakeGoogle, credentials=None, http=None):
    return build(
        "gmail", "v1", credentials=credentials, http=http, static_discovery=True, client_options={"api_endpoint": f"{google.url}/"}
    )


@pytest.fixture
def calendar(google, key_file):
    return calendar_service(google, delegated(key_file, CALENDAR_SCOPES))


@pytest.fixture
def gmail(google, key_file):
    return gmail_service(google, delegated(key_file, GMAIL_SCOPES))


def session(
    event_id: str, start: str = "2027-03-02T10:00:00-05:00", end: str = "2027-03-02T11:00:00-05:00", meet: bool = False, **extra
) -> dict:
    body = {
        "id": event_id,
        "summary": "Mentoring session: Maya and Zoë",
        "start": {"dateTime": start},
        "end": {"dateTime": end},
        "attendees": [{"email": MENTOR}, {"email": MENTEE}],
        "extendedProperties": {"private": {"program": "spring-2027"}},
    }
    if meet:
        body["conferenceData"] = {"createRequest": {"requestId": f"req-{event_id}", "conferenceSolutionKey": {"type": "hangoutsMeet"}}}
    body.update(extra)
    return body


def error_of(error: HttpError) -> dict:
    return json.loads(error.content)["error"]


def reason_of(error: HttpError) -> str:
    return error_of(error)["errors"][0]["reason"]


def raw_message(subject: str, message_id: str, to: str = MENTEE) -> dict:
    message = EmailMessage()
    message["From"] = f"Spring Mentoring <{COORDINATOR}>"
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = message_id
    message.set_content("Hello Zoë,\n\nYour first session is on Tuesday.\n")
    return {"raw": base64.urlsafe_b64encode(message.as_bytes()).decode("ascii")}


# --------------------------------------------------------------------------- Calendar events


def test_meet_link_is_created_with_conference_data_version_1(google, calendar):
    created = calendar.events().insert(calendarId="primary", body=session("sessionmeet01", meet=True), conferenceDataVersion=1).execute()
    assert created["conferenceData"]["createRequest"]["status"]["statusCode"] == "pending"
    assert "hangoutLink" not in created
    assert created["organizer"]["email"] == COORDINATOR

    fetched = calendar.events().get(calendarId="primary", eventId="sessionmeet01").execute()
    assert fetched["conferenceData"]["createRequest"]["status"]["statusCode"] == "success"
    assert MEET_LINK.match(fetched["hangoutLink"])
    video = [p for p in fetched["conferenceData"]["entryPoints"] if p["entryPointType"] == "video"]
    assert video[0]["uri"] == fetched["hangoutLink"]
    assert fetched["hangoutLink"].endswith(fetched["conferenceData"]["conferenceId"])

    # Each event gets its own link; a forced failure leaves the event without one.
    calendar.events().insert(calendarId="primary", body=session("sessionmeet02", meet=True), conferenceDataVersion=1).execute()
    google.fail_meet("sessionmeet03")
    calendar.events().insert(calendarId="primary", body=session("sessionmeet03", meet=True), conferenceDataVersion=1).execute()
    second = calendar.events().get(calendarId="primary", eventId="sessionmeet02").execute()
    failed = calendar.events().get(calendarId="primary", eventId="sessionmeet03").execute()
    assert MEET_LINK.match(second["hangoutLink"]) and second["hangoutLink"] != fetched["hangoutLink"]
    assert failed["conferenceData"]["createRequest"]["status"]["statusCode"] == "failure"
    assert "hangoutLink" not in failed


def test_conference_request_is_silently_dropped_without_conference_data_version(calendar):
    created = calendar.events().insert(calendarId="primary", body=session("sessionnomeet1", meet=True)).execute()
    assert "conferenceData" not in created
    fetched = calendar.events().get(calendarId="primary", eventId="sessionnomeet1").execute()
    assert "conferenceData" not in fetched and "hangoutLink" not in fetched
    # A later patch without conferenceDataVersion does not create one either.
    patched = (
        calendar.events()
        .patch(calendarId="primary", eventId="sessionnomeet1", body={"conferenceData": session("x", meet=True)["conferenceData"]})
        .execute()
    )
    assert "conferenceData" not in patched


def test_event_id_outside_base32hex_is_rejected(google, calendar):
    for bad in ("Session-01", "sessionw0001", "abcd"):  # uppercase and '-', 'w' is not base32hex, too short
        with pytest.raises(HttpError) as info:
            calendar.events().insert(calendarId="primary", body=session(bad)).execute()
        assert info.value.status_code == 400
        assert reason_of(info.value) == "invalid"
    assert google.events(COORDINATOR) == []


def test_duplicate_insert_is_409_and_the_event_can_be_read(google, calendar):
    calendar.events().insert(calendarId="primary", body=session("sessiondup001")).execute()
    with pytest.raises(HttpError) as info:
        calendar.events().insert(calendarId="primary", body=session("sessiondup001", summary="again")).execute()
    assert info.value.status_code == 409
    assert reason_of(info.value) == "duplicate"
    fetched = calendar.events().get(calendarId="primary", eventId="sessiondup001").execute()
    assert fetched["summary"] == "Mentoring session: Maya and Zoë"

    # A deleted event keeps its id: inserting it again is still a conflict; patching restores it.
    calendar.events().delete(calendarId="primary", eventId="sessiondup001").execute()
    with pytest.raises(HttpError) as info:
        calendar.events().insert(calendarId="primary", body=session("sessiondup001")).execute()
    assert info.value.status_code == 409
    restored = calendar.events().patch(calendarId="primary", eventId="sessiondup001", body={"status": "confirmed"}).execute()
    assert restored["status"] == "confirmed"


def test_delete_twice_is_410_and_get_shows_cancelled(calendar):
    calendar.events().insert(calendarId="primary", body=session("sessiondel001")).execute()
    assert calendar.events().delete(calendarId="primary", eventId="sessiondel001").execute() == ""
    assert calendar.events().get(calendarId="primary", eventId="sessiondel001").execute()["status"] == "cancelled"
    with pytest.raises(HttpError) as info:
        calendar.events().delete(calendarId="primary", eventId="sessiondel001").execute()
    assert info.value.status_code == 410
    assert reason_of(info.value) == "deleted"
    with pytest.raises(HttpError) as info:
        calendar.events().get(calendarId="primary", eventId="nevercreated1").execute()
    assert info.value.status_code == 404


def test_times_need_an_offset_and_a_non_empty_range(calendar):
    with pytest.raises(HttpError) as info:
        calendar.events().insert(
            calendarId="primary", body=session("sessiontime01", start="2027-03-02T10:00:00", end="2027-03-02T11:00:00")
        ).execute()
    assert info.value.status_code == 400
    assert "time zone" in error_of(info.value)["message"]

    # The same local times with a timeZone field are fine.
    zoned = session("sessiontime02") | {
        "start": {"dateTime": "2027-03-02T10:00:00", "timeZone": "America/New_York"},
        "end": {"dateTime": "2027-03-02T11:00:00", "timeZone": "America/New_York"},
    }
    ok = calendar.events().insert(calendarId="primary", body=zoned).execute()
    assert ok["start"] == {"dateTime": "2027-03-02T15:00:00Z", "timeZone": "America/New_York"}

    # isoformat() + "Z" on an aware datetime is not RFC 3339.
    with pytest.raises(HttpError) as info:
        calendar.events().insert(
            calendarId="primary", body=session("sessiontime03", start="2027-03-02T10:00:00+00:00Z", end="2027-03-02T11:00:00+00:00Z")
        ).execute()
    assert info.value.status_code == 400

    with pytest.raises(HttpError) as info:
        calendar.events().insert(
            calendarId="primary", body=session("sessiontime04", start="2027-03-02T11:00:00Z", end="2027-03-02T10:00:00Z")
        ).execute()
    assert reason_of(info.value) == "timeRangeEmpty"


def test_reminders_and_extended_properties_limits(calendar):
    too_many = {"useDefault": False, "overrides": [{"method": "email", "minutes": 60 * i} for i in range(6)]}
    with pytest.raises(HttpError) as info:
        calendar.events().insert(calendarId="primary", body=session("sessionrem001", reminders=too_many)).execute()
    assert info.value.status_code == 400
    too_early = {"useDefault": False, "overrides": [{"method": "email", "minutes": 40321}]}
    with pytest.raises(HttpError):
        calendar.events().insert(calendarId="primary", body=session("sessionrem002", reminders=too_early)).execute()

    properties = {"private": {"k" * 45: "dropped", "program": "spring-2027", "long": "v" * 2000}}
    created = calendar.events().insert(calendarId="primary", body=session("sessionrem003", extendedProperties=properties)).execute()
    private = created["extendedProperties"]["private"]
    assert set(private) == {"program", "long"}
    assert len(private["long"]) == 1024


def test_invitations_are_recorded_only_with_send_updates(google, calendar):
    calendar.events().insert(calendarId="primary", body=session("sessioninv001"), sendUpdates="all").execute()
    calendar.events().insert(calendarId="primary", body=session("sessioninv002")).execute()
    assert google.invitations("sessioninv001") == [(MENTOR, "invite"), (MENTEE, "invite")]
    assert google.invitations("sessioninv002") == []

    calendar.events().patch(
        calendarId="primary",
        eventId="sessioninv001",
        sendUpdates="externalOnly",
        body={"start": {"dateTime": "2027-03-03T10:00:00-05:00"}, "end": {"dateTime": "2027-03-03T11:00:00-05:00"}},
    ).execute()
    calendar.events().delete(calendarId="primary", eventId="sessioninv001", sendUpdates="all").execute()
    assert google.invitations("sessioninv001")[2:] == [(MENTEE, "update"), (MENTOR, "cancel"), (MENTEE, "cancel")]
    assert google.event(COORDINATOR, "sessioninv001")["sequence"] == 1


# --------------------------------------------------------------------------- incremental sync


def test_sync_token_sees_moves_declines_and_deletions(google, calendar):
    ids = ["sessionlist01", "sessionlist02", "sessionlist03"]
    for day, event_id in enumerate(ids, start=2):
        calendar.events().insert(
            calendarId="primary", body=session(event_id, start=f"2027-03-0{day}T10:00:00-05:00", end=f"2027-03-0{day}T11:00:00-05:00")
        ).execute()
    calendar.events().insert(
        calendarId="primary", body=session("othertag00001", extendedProperties={"private": {"program": "other"}})
    ).execute()

    first = calendar.events().list(calendarId="primary", maxResults=2, privateExtendedProperty="program=spring-2027").execute()
    assert "nextPageToken" in first and "nextSyncToken" not in first
    second = calendar.events().list(calendarId="primary", maxResults=2, pageToken=first["nextPageToken"]).execute()
    assert "nextSyncToken" in second and "nextPageToken" not in second
    assert [e["id"] for e in first["items"] + second["items"]] == ids

    google.move(COORDINATOR, "sessionlist01", "2027-03-09T10:00:00-05:00", "2027-03-09T11:00:00-05:00")
    google.respond(COORDINATOR, "sessionlist02", MENTEE, "declined")
    google.delete_by_user(COORDINATOR, "sessionlist03")

    changes = calendar.events().list(calendarId="primary", syncToken=second["nextSyncToken"]).execute()
    by_id = {e["id"]: e for e in changes["items"]}
    assert set(by_id) == set(ids)
    assert by_id["sessionlist01"]["start"]["dateTime"] == "2027-03-09T15:00:00Z"
    assert by_id["sessionlist01"]["sequence"] == 1
    answers = {a["email"]: a["responseStatus"] for a in by_id["sessionlist02"]["attendees"]}
    assert answers == {MENTOR: "needsAction", MENTEE: "declined"}
    assert by_id["sessionlist03"]["status"] == "cancelled"

    quiet = calendar.events().list(calendarId="primary", syncToken=changes["nextSyncToken"]).execute()
    assert quiet["items"] == []

    with pytest.raises(HttpError) as info:
        calendar.events().list(
            calendarId="primary", syncToken=changes["nextSyncToken"], privateExtendedProperty="program=spring-2027"
        ).execute()
    assert info.value.status_code == 400


def test_expired_sync_token_is_410_full_sync_required(google, calendar):
    calendar.events().insert(calendarId="primary", body=session("sessionold001")).execute()
    token = calendar.events().list(calendarId="primary").execute()["nextSyncToken"]
    google.expire_sync_tokens()
    with pytest.raises(HttpError) as info:
        calendar.events().list(calendarId="primary", syncToken=token).execute()
    assert info.value.status_code == 410
    assert reason_of(info.value) == "fullSyncRequired"
    fresh = calendar.events().list(calendarId="primary").execute()
    assert [e["id"] for e in fresh["items"]] == ["sessionold001"]


# --------------------------------------------------------------------------- free/busy


def test_freebusy_reports_known_calendars_and_not_found_for_others(google, calendar):
    google.set_busy(MENTOR, [("2027-03-01T14:00:00Z", "2027-03-01T15:00:00Z")])
    calendar.events().insert(calendarId="primary", body=session("sessionfb0001")).execute()
    calendar.events().insert(
        calendarId="primary", body=session("sessionfb0002", start="2027-03-03T10:00:00-05:00", end="2027-03-03T11:00:00-05:00")
    ).execute()
    google.respond(COORDINATOR, "sessionfb0002", MENTOR, "declined")

    answer = (
        calendar.freebusy()
        .query(
            body={
                "timeMin": "2027-03-01T00:00:00Z",
                "timeMax": "2027-03-08T00:00:00Z",
                "timeZone": "UTC",
                "items": [{"id": MENTOR}, {"id": "stranger@elsewhere.net"}],
            }
        )
        .execute()
    )
    assert answer["calendars"][MENTOR]["busy"] == [
        {"start": "2027-03-01T14:00:00Z", "end": "2027-03-01T15:00:00Z"},
        {"start": "2027-03-02T15:00:00Z", "end": "2027-03-02T16:00:00Z"},  # invited, not declined
    ]
    assert answer["calendars"]["stranger@elsewhere.net"]["errors"] == [{"domain": "global", "reason": "notFound"}]

    with pytest.raises(HttpError) as info:
        calendar.freebusy().query(
            body={"timeMin": "2027-03-01T00:00:00Z", "timeMax": "2027-07-01T00:00:00Z", "items": [{"id": MENTOR}]}
        ).execute()
    assert info.value.status_code == 400
    assert error_of(info.value)["message"] == "The requested time range is too long."

    with pytest.raises(HttpError) as info:
        calendar.freebusy().query(
            body={
                "timeMin": "2027-03-01T00:00:00Z",
                "timeMax": "2027-03-02T00:00:00Z",
                "items": [{"id": f"p{i}@example.org"} for i in range(51)],
            }
        ).execute()
    assert info.value.status_code == 400


# --------------------------------------------------------------------------- batches


def test_batch_of_three_inserts_with_one_failing_part(google, calendar):
    calendar.events().insert(calendarId="primary", body=session("sessiontaken1")).execute()
    results: dict[str, tuple] = {}
    batch = BatchHttpRequest(
        callback=lambda rid, response, error: results.__setitem__(rid, (response, error)), batch_uri=f"{google.url}/batch/calendar/v3"
    )
    batch.add(calendar.events().insert(calendarId="primary", body=session("sessionbatch1")), request_id="a")
    batch.add(calendar.events().insert(calendarId="primary", body=session("sessiontaken1")), request_id="b")
    batch.add(calendar.events().insert(calendarId="primary", body=session("sessionbatch2")), request_id="c")
    round_trips, calls = google.round_trips(), google.api_calls()
    batch.execute()

    assert results["a"][1] is None and results["a"][0]["id"] == "sessionbatch1"
    assert results["c"][1] is None and results["c"][0]["id"] == "sessionbatch2"
    assert isinstance(results["b"][1], HttpError)
    assert results["b"][1].status_code == 409 and reason_of(results["b"][1]) == "duplicate"
    assert google.round_trips() - round_trips == 1
    assert google.api_calls() - calls == 3
    assert [r.in_batch for r in google.requests[-4:]] == [True, True, True, False]


def test_faults_apply_to_batch_parts_and_gmail_batches_are_limited(google, calendar, gmail):
    google.add_fault(Fault(method="calendar.events.insert", status=503, every=2))
    results: dict[str, tuple] = {}
    batch = BatchHttpRequest(
        callback=lambda rid, response, error: results.__setitem__(rid, (response, error)), batch_uri=f"{google.url}/batch/calendar/v3"
    )
    for n in range(4):
        batch.add(calendar.events().insert(calendarId="primary", body=session(f"sessionfault{n}")), request_id=str(n))
    batch.execute()
    statuses = {rid: (error.status_code if error else 200) for rid, (_, error) in results.items()}
    assert statuses == {"0": 200, "1": 503, "2": 200, "3": 503}
    assert {e["id"] for e in google.events(COORDINATOR)} == {"sessionfault0", "sessionfault2"}

    too_big = BatchHttpRequest(batch_uri=f"{google.url}/batch/gmail/v1")
    for n in range(101):
        too_big.add(gmail.users().messages().send(userId="me", body=raw_message(f"n{n}", make_msgid())))
    with pytest.raises(HttpError) as info:
        too_big.execute()
    assert info.value.status_code == 400
    assert google.sent_mail() == []


# --------------------------------------------------------------------------- Gmail


def test_gmail_send_raw_then_find_it_by_message_id(google, gmail):
    message_id = make_msgid(domain="example.org")
    sent = gmail.users().messages().send(userId="me", body=raw_message("Your first session", message_id)).execute()
    assert sent["labelIds"] == ["SENT"] and sent["id"] and sent["threadId"]

    found = gmail.users().messages().list(userId="me", q=f"rfc822msgid:{message_id}").execute()
    assert found["resultSizeEstimate"] == 1
    assert found["messages"] == [{"id": sent["id"], "threadId": sent["threadId"]}]
    nothing = gmail.users().messages().list(userId="me", q="rfc822msgid:<nobody@example.org>").execute()
    assert nothing == {"resultSizeEstimate": 0}

    metadata = gmail.users().messages().get(userId="me", id=sent["id"], format="metadata", metadataHeaders=["Message-ID"]).execute()
    assert metadata["payload"]["headers"] == [{"name": "Message-ID", "value": message_id}]

    [delivered] = google.sent_mail()
    assert delivered["Message-ID"] == message_id
    assert delivered["Subject"] == "Your first session"
    assert delivered.get_content().startswith("Hello Zoë")


def test_media_upload_endpoint_is_refused(google, key_file):
    credentials = delegated(key_file, GMAIL_SCOPES)
    http = google_auth_httplib2.AuthorizedHttp(credentials, http=httplib2.Http())
    response, content = http.request(
        f"{google.url}/upload/gmail/v1/users/me/messages/send?uploadType=media",
        method="POST",
        body=b"Subject: x\r\n\r\nbody",
        headers={"content-type": "message/rfc822"},
    )
    assert response.status == 400
    assert google.sent_mail() == []


def test_dropped_send_after_acceptance_is_stored_and_resent_by_httplib2(google, gmail):
    message_id = make_msgid(domain="example.org")
    fault = google.add_fault(Fault(method="gmail.users.messages.send", drop_after=True))
    with pytest.raises(http.client.RemoteDisconnected):
        gmail.users().messages().send(userId="me", body=raw_message("Reminder", message_id)).execute(num_retries=0)

    # What was observed: httplib2 re-sent the POST once on its own (stale-connection retry), so
    # Google "accepted" the message twice although the caller only saw an error.
    sends = [r for r in google.requests if r.method_id == "gmail.users.messages.send"]
    assert [(r.status, r.dropped) for r in sends] == [(200, "after"), (200, "after")]
    assert fault.fired == 2
    assert [m["Message-ID"] for m in google.sent_mail()] == [message_id, message_id]

    google.remove_fault(fault)
    found = gmail.users().messages().list(userId="me", q=f"rfc822msgid:{message_id}").execute()
    assert found["resultSizeEstimate"] == 2


def test_a_single_dropped_send_looks_successful_but_is_delivered_twice(google, gmail):
    google.add_fault(Fault(method="gmail.users.messages.send", drop_after=True, times=1))
    sent = gmail.users().messages().send(userId="me", body=raw_message("Once?", make_msgid())).execute()
    assert sent["labelIds"] == ["SENT"]
    assert len(google.sent_mail()) == 2


# --------------------------------------------------------------------------- validation, auth, faults


def test_unknown_body_field_and_wrong_types_are_rejected(google, calendar):
    body = session("sessionval001")
    body["startTime"] = "2027-03-02T10:00:00Z"
    with pytest.raises(HttpError) as info:
        calendar.events().insert(calendarId="primary", body=body).execute()
    assert info.value.status_code == 400
    assert error_of(info.value)["message"].startswith('Invalid JSON payload received. Unknown name "startTime"')

    nested = session("sessionval002") | {"start": {"datetime": "2027-03-02T10:00:00Z"}}
    with pytest.raises(HttpError) as info:
        calendar.events().insert(calendarId="primary", body=nested).execute()
    assert "at 'resource.start'" in error_of(info.value)["message"]

    wrong_type = session("sessionval003", attendees={"email": MENTEE})
    with pytest.raises(HttpError) as info:
        calendar.events().insert(calendarId="primary", body=wrong_type).execute()
    assert info.value.status_code == 400
    assert google.events(COORDINATOR) == []


def test_unknown_query_parameter_and_bad_enum_are_rejected(google):
    token = google.issue_token(COORDINATOR, CALENDAR_SCOPES)
    http = httplib2.Http()
    headers = {"authorization": f"Bearer {token}"}
    base = f"{google.url}/calendar/v3/calendars/primary/events"
    response, content = http.request(f"{base}?maxResult=5", headers=headers)
    assert response.status == 400
    assert 'Unknown name "maxResult"' in json.loads(content)["error"]["message"]
    response, content = http.request(f"{base}?orderBy=start", headers=headers)
    assert response.status == 400 and json.loads(content)["error"]["errors"][0]["reason"] == "invalid"
    response, content = http.request(f"{base}?maxResults=0", headers=headers)
    assert response.status == 400
    response, content = http.request(f"{base}?maxResults=5&singleEvents=true&orderBy=startTime", headers=headers)
    assert response.status == 200


def test_validator_is_driven_by_the_discovery_document():
    discovery = Discovery.load("gmail", "v1")
    validator = Validator(discovery)
    spec, path = discovery.match("POST", "gmail/v1/users/me/messages/send")
    assert spec.id == "gmail.users.messages.send" and path == {"userId": "me"}
    validator.body(spec, {"raw": "SGVsbG8", "threadId": "abc"})
    with pytest.raises(ApiError) as info:
        validator.body(spec, {})
    assert info.value.reason == "required"
    with pytest.raises(ApiError) as info:
        validator.body(spec, {"raw": 5})
    assert "TYPE_BYTES" in info.value.message


def test_request_without_token_is_401(google):
    calendar = calendar_service(google, http=httplib2.Http())
    with pytest.raises(HttpError) as info:
        calendar.events().list(calendarId="primary").execute()
    assert info.value.status_code == 401
    error = error_of(info.value)
    assert error["status"] == "UNAUTHENTICATED"
    assert error["errors"][0] == {
        "domain": "global",
        "reason": "authError",
        "message": error["message"],
        "locationType": "header",
        "location": "Authorization",
    }


def test_credentials_without_the_scope_get_403(google, key_file):
    send_only = delegated(key_file, ["https://www.googleapis.com/auth/gmail.send"])
    calendar = calendar_service(google, send_only)
    with pytest.raises(HttpError) as info:
        calendar.events().list(calendarId="primary").execute()
    assert info.value.status_code == 403
    assert reason_of(info.value) == "insufficientPermissions"
    gmail = gmail_service(google, send_only)
    with pytest.raises(HttpError) as info:  # reading Sent mail needs gmail.readonly
        gmail.users().messages().list(userId="me", q="rfc822msgid:<x@example.org>").execute()
    assert info.value.status_code == 403


def test_token_endpoint_records_the_delegated_subject_and_refresh_tokens(google, key_file):
    as_mentor = calendar_service(google, delegated(key_file, CALENDAR_SCOPES, subject=MENTOR))
    created = as_mentor.events().insert(calendarId="primary", body=session("sessionmentor")).execute()
    assert created["organizer"]["email"] == MENTOR
    assert [e["id"] for e in google.events(MENTOR)] == ["sessionmentor"]

    info = google.authorized_user_info(CALENDAR_SCOPES, email=COORDINATOR)
    user = user_credentials.Credentials.from_authorized_user_info(info).with_token_uri(f"{google.url}/token")
    listed = calendar_service(google, user).events().list(calendarId="primary").execute()
    assert listed["summary"] == COORDINATOR

    # A service account acting as itself cannot invite attendees.
    itself = service_account.Credentials.from_service_account_file(str(key_file), scopes=CALENDAR_SCOPES)
    with pytest.raises(HttpError) as error:
        calendar_service(google, itself).events().insert(calendarId="primary", body=session("sessionsaself")).execute()
    assert error.value.status_code == 403 and reason_of(error.value) == "forbiddenForServiceAccounts"


def test_429_with_retry_after_reaches_the_caller(google, calendar):
    google.add_fault(Fault.of_kind("429", method="calendar.events.insert", times=1, retry_after=7))
    with pytest.raises(HttpError) as info:
        calendar.events().insert(calendarId="primary", body=session("sessionrate01")).execute(num_retries=0)
    assert info.value.status_code == 429
    assert info.value.resp["retry-after"] == "7"
    assert reason_of(info.value) == "rateLimitExceeded"
    assert google.events(COORDINATOR) == []
    assert calendar.events().insert(calendarId="primary", body=session("sessionrate01")).execute()["id"]


def test_delay_fault_times_the_client_out_but_the_write_happens(google, key_file):
    credentials = delegated(key_file, CALENDAR_SCOPES)
    slow_client = calendar_service(google, http=google_auth_httplib2.AuthorizedHttp(credentials, http=httplib2.Http(timeout=0.2)))
    google.add_fault(Fault(method="calendar.events.insert", delay=0.5, times=1))
    with pytest.raises((TimeoutError, socket.timeout)):
        slow_client.events().insert(calendarId="primary", body=session("sessionlate01")).execute()
    deadline = time.monotonic() + 3
    while not google.events(COORDINATOR) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [e["id"] for e in google.events(COORDINATOR)] == ["sessionlate01"]


def test_chaos_is_reproducible_and_spares_the_token_endpoint(google, calendar):
    chaos = google.chaos(rate=0.5, seed=7, kinds=("500",))
    outcomes = []
    for n in range(12):
        try:
            calendar.events().insert(calendarId="primary", body=session(f"sessionchaos{n:x}")).execute()
            outcomes.append(200)
        except HttpError as error:
            outcomes.append(error.status_code)
    assert 500 in outcomes and 200 in outcomes
    assert len(chaos.injected) == outcomes.count(500)
    assert all(r.status == 200 for r in google.requests if r.method_id == "oauth2.token")
    assert len(google.events(COORDINATOR)) == outcomes.count(200)


# --------------------------------------------------------------------------- command line


def test_command_line_serves_and_writes_the_key_file(tmp_path):
    key = tmp_path / "fake-key.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.google", "--port", "0", "--key-file", str(key)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        match = re.match(r"MENTORSHIP_GOOGLE_ENDPOINT=(http://127\.0\.0\.1:\d+)$", line.strip())
        assert match, line
        info = json.loads(key.read_text())
        assert info["token_uri"] == f"{match.group(1)}/token"
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(f"{match.group(1)}/calendar/v3/calendars/primary/events", timeout=5)
        assert error.value.code == 401
    finally:
        process.terminate()
        process.wait(timeout=10)


# --------------------------------------------------------------------------- the service's adapters against the fake


def test_login_asks_for_consent_so_a_second_login_still_gets_a_refresh_token(google, tmp_path, monkeypatch):
    import threading
    import webbrowser

    from service import googleauth
    from service.config import load_configuration

    class Browser:  # the person who clicks "Allow": follows the consent page back to the loopback server
        def open(self, url, new=0, autoraise=True):
            threading.Thread(target=lambda: urllib.request.urlopen(url, timeout=10).read(), daemon=True).start()
            return True

    monkeypatch.setattr(webbrowser, "get", lambda using=None: Browser())
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the fake's token endpoint is plain http
    configuration = load_configuration(ROOT / "config" / "cohort.google.example.yaml", None)
    secrets_file = google.client_secrets_file(tmp_path / "client.json", user="renata.alves@example.org")
    for attempt in (1, 2):  # the second login is the one that used to come back without a refresh token
        token = tmp_path / f"token{attempt}.json"
        googleauth.login(secrets_file, token, configuration)
        saved = json.loads(token.read_text())
        assert saved["refresh_token"], attempt
        assert token.stat().st_mode & 0o777 == 0o600
    assert [a.get("prompt") for a in google.authorizations] == ["consent", "consent"]
    assert {a.get("access_type") for a in google.authorizations} == {"offline"}


def test_a_login_that_brings_no_refresh_token_saves_nothing(google, tmp_path, monkeypatch):
    import threading
    import webbrowser

    from service import googleauth
    from service.config import load_configuration

    class Browser:
        def open(self, url, new=0, autoraise=True):
            # An app that asked for online access only: Google then never sends a refresh token.
            url = url.replace("access_type=offline", "access_type=online")
            threading.Thread(target=lambda: urllib.request.urlopen(url, timeout=10).read(), daemon=True).start()
            return True

    monkeypatch.setattr(webbrowser, "get", lambda using=None: Browser())
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    configuration = load_configuration(ROOT / "config" / "cohort.google.example.yaml", None)
    secrets_file = google.client_secrets_file(tmp_path / "client.json", user="renata.alves@example.org")
    with pytest.raises(googleauth.LoginFailed, match="no refresh token"):
        googleauth.login(secrets_file, tmp_path / "token.json", configuration)
    assert not (tmp_path / "token.json").exists()


def _mailer(google, key_file, monkeypatch, **kwargs):
    from service.adapters.google import api
    from service.adapters.google.gmail import GmailMailer

    monkeypatch.setenv(api.ENDPOINT_VARIABLE, google.url)
    credentials = delegated(key_file, GMAIL_SCOPES)
    return GmailMailer(lambda: api.build("gmail", "v1", credentials), credentials=credentials, **kwargs)


def _email(sender: str, message_id: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = MENTEE
    message["Subject"] = "Your first session"
    message["Message-ID"] = message_id
    message.set_content("Hello Zoë\n")
    return message


def test_a_from_gmail_would_rewrite_is_refused_before_anything_is_sent(google, key_file, monkeypatch):
    from service.domain.ports import MailError

    sender = "mentoring@example.org"
    mailer = _mailer(google, key_file, monkeypatch, can_read_sent=True, sender=sender)
    with mailer.connect() as connection:
        with pytest.raises(MailError) as refused:
            connection.ready()
    assert refused.value.transport and "send-as" in refused.value.reason
    assert google.sent_mail() == []
    google.add_send_as(COORDINATOR, sender)  # the coordinator verifies the alias in Gmail
    with mailer.connect() as connection:
        connection.ready()
        connection.send(_email(sender, "<first@example.org>"))
    assert google.sent_mail()[0]["From"].addresses[0].addr_spec == sender


@pytest.mark.parametrize("kept", [True, False])
def test_not_found_in_sent_means_never_sent_only_if_gmail_keeps_our_message_ids(key_file, monkeypatch, kept):
    with FakeGoogle(keep_message_id=kept) as google:
        mailer = _mailer(google, key_file_for(google, key_file), monkeypatch, can_read_sent=True, sender=COORDINATOR)
        with mailer.connect() as connection:
            connection.ready()
            connection.send(_email(COORDINATOR, "<sent.1@example.org>"))
        assert mailer.was_sent("<sent.1@example.org>") is (True if kept else None)
        assert mailer.was_sent("<never.sent@example.org>") is (False if kept else None)
        # After a restart nothing is known yet: the newest message in Sent tells.
        fresh = _mailer(google, key_file_for(google, key_file), monkeypatch, can_read_sent=True, sender=COORDINATOR)
        assert fresh.was_sent("<never.sent@example.org>") is (False if kept else None)


def key_file_for(google: FakeGoogle, key_file: Path) -> Path:
    return google.service_account_file(key_file.parent / f"key-{google.port}.json")


def test_a_free_busy_error_of_googles_own_is_asked_again_not_taken_for_unreadable(google, key_file, monkeypatch):
    from datetime import UTC, datetime

    from service.adapters.google import api
    from service.adapters.google.freebusy import GoogleFreeBusy

    monkeypatch.setenv(api.ENDPOINT_VARIABLE, google.url)
    credentials = delegated(key_file, CALENDAR_SCOPES)
    free_busy = GoogleFreeBusy(lambda: api.build("calendar", "v3", credentials), api.Backoff(attempts=3, sleep=lambda s: None))
    google.set_busy(MENTOR, [("2027-03-02T15:00:00Z", "2027-03-02T16:00:00Z")])
    start, end = datetime(2027, 3, 1, tzinfo=UTC), datetime(2027, 3, 8, tzinfo=UTC)
    google.fail_free_busy(MENTOR, "internalError", times=1)
    busy, unreadable, failed = free_busy.busy([MENTOR, MENTEE], start, end)
    assert unreadable == {MENTEE} and not failed  # outside the organisation: declared hours stand in
    assert busy[MENTOR] == [(datetime(2027, 3, 2, 15, tzinfo=UTC), datetime(2027, 3, 2, 16, tzinfo=UTC))]
    google.fail_free_busy(MENTOR, "backendError", times=5)
    busy, unreadable, failed = free_busy.busy([MENTOR, MENTEE], start, end)
    assert failed == {MENTOR: "backendError"} and unreadable == {MENTEE}  # for the caller to ask again later
    assert MENTOR not in busy
