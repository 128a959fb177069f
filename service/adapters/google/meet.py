"""Google Meet REST API v2: the room behind a session's Meet link, its settings, and who
was in it. Meet's JSON stays here; the use cases see rooms as names and conferences as
domain values."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from googleapiclient.errors import HttpError

from ...domain.attendance import Conference, Presence
from ...domain.ports import Meet, MeetError
from .api import Backoff, call, classify

CODE = re.compile(r"^https://meet\.google\.com/([a-z]+-[a-z]+-[a-z]+)(?:[/?#].*)?$", re.IGNORECASE)
SETTINGS_MASK = ",".join(
    (
        "config.accessType",
        "config.artifactConfig.recordingConfig.autoRecordingGeneration",
        "config.artifactConfig.transcriptionConfig.autoTranscriptionGeneration",
    )
)
PAGE = 100  # conference records per page (Meet's largest)
PEOPLE_PAGE = 250  # participants and participant sessions per page (Meet's largest)


def meeting_code(link: str) -> str | None:
    """abc-mnop-xyz from https://meet.google.com/abc-mnop-xyz; None for another tool's link."""
    found = CODE.match(link.strip())
    return found.group(1).lower() if found else None


class GoogleMeet(Meet):
    def __init__(
        self,
        service: Callable[[], Any],
        *,
        trusted_access: bool = True,
        recording: bool = False,
        transcription: bool = False,
        people: Callable[[], Any] | None = None,
        backoff: Backoff | None = None,
    ):
        """`people`: the People API, where the directory may be read: signed-in
        participants are then known by their email instead of their Meet user id."""
        self._service_factory = service
        self._service = None
        self._people_factory = people
        self._people = None
        self._emails: dict[str, str | None] = {}  # Meet user id -> email, as the directory said
        self.trusted_access = trusted_access
        self.recording = recording
        self.transcription = transcription
        self.backoff = backoff or Backoff()

    @property
    def service(self):
        if self._service is None:  # built on first use, in the thread that uses it
            self._service = self._service_factory()
        return self._service

    def space(self, link: str) -> str:
        """spaces.get by the link's meeting code (an alias Meet accepts for the name); with
        trusted access, spaces.patch so invited guests from outside the organisation join
        without knocking, and recording and transcription are what the cohort asks."""
        code = meeting_code(link)
        if code is None:
            raise MeetError("the session's link is not a Google Meet link", gone=True)
        spaces = self.service.spaces()
        found = self._call(spaces.get(name=f"spaces/{code}"), room=True)
        name = str(found["name"])
        if self.trusted_access:
            self._call(spaces.patch(name=name, updateMask=SETTINGS_MASK, body=self._settings()))
        return name

    def _settings(self) -> dict[str, Any]:
        return {
            "config": {
                "accessType": "TRUSTED",
                "artifactConfig": {
                    "recordingConfig": {"autoRecordingGeneration": _switch(self.recording)},
                    "transcriptionConfig": {"autoTranscriptionGeneration": _switch(self.transcription)},
                },
            }
        }

    def conferences(self, space: str, start: datetime, end: datetime) -> list[Conference]:
        """conferenceRecords.list filtered by room and start time, then each record's
        participants and their sessions. `space` is a room's name or, when it was never
        looked up, its Meet link."""
        if space.startswith("spaces/"):
            where = f'space.name = "{space}"'
        else:
            code = meeting_code(space)
            if code is None:
                raise MeetError("the session's link is not a Google Meet link", gone=True)
            where = f'space.meeting_code = "{code}"'
        query = f'{where} AND start_time >= "{_stamp(start)}" AND start_time <= "{_stamp(end)}"'
        records = self.service.conferenceRecords()
        participants = records.participants()
        visits = participants.participantSessions()
        found = []
        for record in self._pages(records.list, "conferenceRecords", filter=query, pageSize=PAGE):
            presences = []
            for participant in self._pages(participants.list, "participants", parent=record["name"], pageSize=PEOPLE_PAGE):
                who = self._who(participant)
                for visit in self._pages(visits.list, "participantSessions", parent=participant["name"], pageSize=PEOPLE_PAGE):
                    if "startTime" in visit:
                        presences.append(Presence(who=who, start=_moment(visit["startTime"]), end=_maybe(visit.get("endTime"))))
            found.append(Conference(start=_moment(record["startTime"]), end=_maybe(record.get("endTime")), presences=tuple(presences)))
        return found

    def _pages(self, method: Callable[..., Any], key: str, **arguments: Any) -> Iterator[dict[str, Any]]:
        """Every item of a list method, page after page."""
        token = None
        while True:
            answer = self._call(method(pageToken=token, **arguments) if token else method(**arguments))
            yield from answer.get(key, [])
            token = answer.get("nextPageToken")
            if not token:
                return

    def _call(self, request, *, room: bool = False) -> dict[str, Any]:
        """`room`: the request names a room, so a 404 means that room is not there."""
        try:
            return call(request, self.backoff) or {}
        except Exception as error:  # classified: anything unexpected is raised as it is
            failure = classify(error)
            gone = room and isinstance(error, HttpError) and error.resp.status == 404
            raise MeetError(f"Google Meet: {failure.reason}", setup=failure.setup, gone=gone) from None

    def _who(self, participant: dict[str, Any]) -> str:
        """A participant's key: the email of someone signed in where the directory says it,
        else their Meet user id (an id, not an email); the display name of a guest or a
        caller by phone."""
        if "signedinUser" in participant:
            user = participant["signedinUser"].get("user")
            if not user:
                return "signed-in:" + participant["signedinUser"].get("displayName", "")
            return self._email(str(user)) or str(user)
        return _guest(participant)

    def _email(self, user: str) -> str | None:
        """users/{id} -> the primary email the directory holds (None: not found there, an
        account outside the organisation, or no directory to ask)."""
        if self._people_factory is None:
            return None
        if user not in self._emails:
            if self._people is None:
                self._people = self._people_factory()
            person = self._person(user)
            addresses = (person or {}).get("emailAddresses", [])
            primary = [a for a in addresses if a.get("metadata", {}).get("primary")] or addresses
            self._emails[user] = str(primary[0]["value"]).lower() if primary and primary[0].get("value") else None
        return self._emails[user]

    def _person(self, user: str) -> dict[str, Any] | None:
        assert self._people is not None
        request = self._people.people().get(resourceName="people/" + user.removeprefix("users/"), personFields="emailAddresses")
        try:
            return call(request, self.backoff)
        except HttpError as error:
            if error.resp.status == 404:  # not in the directory: an account outside the organisation
                return None
            raise MeetError(f"Google People: {classify(error).reason}", setup=classify(error).setup) from None
        except Exception as error:
            failure = classify(error)
            raise MeetError(f"Google People: {failure.reason}", setup=failure.setup) from None


def _guest(participant: dict[str, Any]) -> str:
    if "anonymousUser" in participant:
        return "anonymous:" + participant["anonymousUser"].get("displayName", "")
    if "phoneUser" in participant:
        return "phone:" + participant["phoneUser"].get("displayName", "")
    return "participant:" + participant.get("name", "")


def _switch(on: bool) -> str:
    return "ON" if on else "OFF"


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _maybe(text: str | None) -> datetime | None:
    return _moment(text) if text else None
