"""Sessions as Google Calendar events with Meet links; changes read back by sync token,
and notices of them pushed through a watch channel when the service has a public address."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from googleapiclient.errors import HttpError

from ...domain.calendar import TAG, CalendarError, CalendarEvent, EventRequest
from ...domain.ports import Calendar, CalendarWatch
from ...domain.push import Channel
from .api import Backoff, Failure, batch, call, classify

BATCH = 50  # calls per batch, as Google recommends
# "Calendar usage limits exceeded": Google makes the calendar read-only for hours, and
# hammering it keeps it so. Nothing is written for this long after.
USAGE_LIMIT_PAUSE = timedelta(hours=2)
CREATE = "create"  # calendar_id asking for a calendar of the cohort's own


@dataclass(frozen=True)
class NewCalendar:
    """What a calendar made for the cohort is called, and who it is shared with."""

    summary: str
    time_zone: str
    share_with: str | None  # the coordinator, when the organiser is someone else


class GoogleCalendar(Calendar, CalendarWatch):
    def __init__(
        self,
        service: Callable[[], Any],
        *,
        calendar_id: str,
        cohort_tag: str,
        backoff: Backoff | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        new: NewCalendar | None = None,
    ):
        self._service_factory = service
        self._service = None
        self._events: Any = None
        self.calendar_id = calendar_id
        self.cohort_tag = cohort_tag
        self.backoff = backoff or Backoff()
        self.clock = clock
        self.new = new
        self.shared = new is None or new.share_with is None
        self._refused: dict[str, tuple[str, CalendarError]] = {}  # event id -> (what was asked, why Google refused it)
        self._paused: tuple[datetime, CalendarError] | None = None  # usage limits: no writes before then

    @property
    def service(self):
        if self._service is None:  # built on first use, in the thread that uses it
            self._service = self._service_factory()
        return self._service

    @property
    def events(self):
        """service.events(), made once: the client builds every method anew on each call."""
        if self._events is None:
            self._events = self.service.events()
        return self._events

    def prepare(self, kept: str | None) -> str | None:
        """With calendar_id `create`: the cohort's own calendar (made on the first call,
        its id kept by the caller), shared with the coordinator. A primary or explicit
        calendar needs nothing."""
        if self.new is None:
            return None
        if self.calendar_id == CREATE:
            if kept:
                self.calendar_id = kept
            else:
                try:
                    # One made before whose id was never kept (the process died right after
                    # making it) is taken up again rather than left beside a second one.
                    found = self._made_before()
                    made = found or call(self.service.calendars().insert(body=self._new_body()), self.backoff)["id"]
                except Exception as error:
                    raise _error(error) from None
                self.calendar_id = made
                return self.calendar_id  # kept at once; it is shared on the next call
        if not self.shared and self.new.share_with:
            rule = {"role": "writer", "scope": {"type": "user", "value": self.new.share_with}}
            try:
                call(self.service.acl().insert(calendarId=self.calendar_id, body=rule, sendNotifications=True), self.backoff)
            except Exception as error:
                raise _error(error) from None
            self.shared = True
        return self.calendar_id

    def _new_body(self) -> dict[str, str]:
        assert self.new is not None
        return {"summary": self.new.summary, "timeZone": self.new.time_zone, "description": self._description()}

    def _description(self) -> str:
        return f"{TAG} {self.cohort_tag}"  # what tells the cohort's own calendar from others

    def _made_before(self) -> str | None:
        """The id of a calendar the organiser owns that was made for this cohort, if any
        (the first by id, should there be several)."""
        found: list[str] = []
        token = None
        while True:
            listing = self.service.calendarList().list(minAccessRole="owner", maxResults=250, pageToken=token)
            page = call(listing, self.backoff)
            found += [c["id"] for c in page.get("items", []) if c.get("description") == self._description() and not c.get("primary")]
            token = page.get("nextPageToken")
            if not token:
                return min(found, default=None)

    # Writing

    def put(self, requests: Sequence[EventRequest]) -> dict[str, CalendarEvent | CalendarError]:
        """Insert each new event with its stable id (one that turns out to exist, 409, is
        adopted) and patch the ones the calendar has. Batches of 50; failed parts are
        retried with backoff. A request Google refused for good is not sent again until it
        changes; after "usage limits exceeded" nothing is written for a while."""
        if self._paused is not None:
            until, error = self._paused
            if self.clock() < until:
                return {request.event_id: error for request in requests}
            self._paused = None
        done: dict[str, CalendarEvent | CalendarError] = {}
        asked = {request.event_id: _fingerprint(self._body(request, new=not request.exists)) for request in requests}
        for request in requests:
            refused = self._refused.get(request.event_id)
            if refused is not None and refused[0] == asked[request.event_id]:
                done[request.event_id] = refused[1]
        requests = [request for request in requests if request.event_id not in done]
        events = self.events

        def write(request: EventRequest):
            if request.exists:
                body = self._body(request, new=False)
                body.pop("id")
                return events.patch(
                    calendarId=self.calendar_id, eventId=request.event_id, body=body, conferenceDataVersion=1, sendUpdates="all"
                )
            return events.insert(
                calendarId=self.calendar_id, body=self._body(request, new=True), conferenceDataVersion=1, sendUpdates="all"
            )

        results = self._batched(requests, write)
        for request in requests:
            outcome = results[request.event_id]
            if isinstance(outcome, HttpError) and outcome.resp.status == 409:
                results[request.event_id] = self._adopt(request)
        for key, value in results.items():
            outcome = _outcome(value)
            if isinstance(value, HttpError) and _usage_limits(value):
                outcome = CalendarError(
                    f"Google Calendar usage limits exceeded (too many invitations or events at once): Google makes the"
                    f" calendar read-only for some hours; writing resumes after {(self.clock() + USAGE_LIMIT_PAUSE):%Y-%m-%d %H:%M} UTC",
                    transient=True,
                    whole=True,
                )
                self._paused = (self.clock() + USAGE_LIMIT_PAUSE, outcome)
            elif isinstance(outcome, CalendarError) and not outcome.transient and not outcome.whole:
                self._refused[key] = (asked[key], outcome)
            else:
                self._refused.pop(key, None)
            done[key] = outcome
        return done

    def remove(self, event_ids: Sequence[str]) -> dict[str, CalendarError | None]:
        events = self.events
        results = self._batched(
            [_Id(event_id) for event_id in event_ids],
            lambda item: events.delete(calendarId=self.calendar_id, eventId=item.event_id, sendUpdates="all"),
        )
        done: dict[str, CalendarError | None] = {}
        for event_id, value in results.items():
            gone = isinstance(value, HttpError) and value.resp.status in (404, 410)
            done[event_id] = None if gone or not isinstance(value, BaseException) else _error(value)
        return done

    def _adopt(self, request: EventRequest):
        """The event exists (an earlier attempt got through, or it was deleted and keeps
        its id): bring it to the requested state."""
        events = self.events
        try:
            current = call(events.get(calendarId=self.calendar_id, eventId=request.event_id), self.backoff)
            body = self._body(request, new="hangoutLink" not in current and "conferenceData" not in current)
            body.pop("id")
            return call(
                events.patch(calendarId=self.calendar_id, eventId=request.event_id, body=body, conferenceDataVersion=1, sendUpdates="all"),
                self.backoff,
            )
        except Exception as error:  # classified by _outcome
            return error

    def _batched(self, items: Sequence, make: Callable) -> dict[str, Any]:
        """Run one call per item in batches; retry the parts that failed transiently."""
        results: dict[str, Any] = {}
        pending = list(items)
        for attempt in range(self.backoff.attempts):
            if not pending:
                break
            retry, waits = [], []
            for start in range(0, len(pending), BATCH):
                chunk = pending[start : start + BATCH]
                answers: dict[str, Any] = {}

                def collect(request_id, response, exception, answers=answers):
                    answers[request_id] = exception if exception is not None else response

                group = batch("calendar", collect)
                for item in chunk:
                    group.add(make(item), request_id=item.event_id)
                try:
                    group.execute()
                except Exception as error:  # the whole batch request failed
                    failure = classify(error)
                    answers = {item.event_id: error for item in chunk}
                    if not failure.retry or failure.setup:
                        results.update(answers)
                        continue
                for item in chunk:
                    answer = answers.get(item.event_id)
                    answered = _failure(answer)
                    if answered is not None and answered.retry and not answered.setup and attempt < self.backoff.attempts - 1:
                        retry.append(item)
                        waits.append(answered)
                    else:
                        results[item.event_id] = answer
            pending = retry
            if pending:
                self.backoff.sleep(max(self.backoff.delay(attempt, f) for f in waits))
        return results

    def _body(self, request: EventRequest, *, new: bool) -> dict:
        body = {
            "id": request.event_id,
            "status": "confirmed",
            "summary": request.summary,
            "description": request.description,
            "start": {"dateTime": request.start.isoformat(), "timeZone": "UTC"},
            "end": {"dateTime": request.end.isoformat(), "timeZone": "UTC"},
            # Replies start afresh: after a move, an old "declined" must not stand.
            "attendees": [
                {"email": person.email, "displayName": person.name, "responseStatus": "needsAction"} for person in request.attendees
            ],
            "guestsCanModify": False,
            "guestsCanInviteOthers": False,  # the session is for the pair; Google's default lets them add anyone
            # No reminders: they would change the organiser's copy only (a popup per session
            # for the coordinator); attendees keep their own defaults.
            "extendedProperties": {"private": {TAG: self.cohort_tag, **request.tags}},
        }
        if self._own_calendar:  # a session must not make the coordinator look busy
            body["transparency"] = "transparent"
        if new:
            body["conferenceData"] = _conference(request.event_id)
        return body

    @property
    def _own_calendar(self) -> bool:
        """Whether events sit on a person's own calendar rather than a dedicated one."""
        return self.calendar_id == "primary" or not self.calendar_id.endswith("calendar.google.com")

    def _new_conference(self, item: dict) -> dict:
        """A Meet link whose creation failed is asked for again, with a new request id
        (Google ignores a repeated one). The event as it is afterwards."""
        body = {"conferenceData": _conference(f"{item['id']}-{secrets.token_hex(4)}")}
        request = self.events.patch(calendarId=self.calendar_id, eventId=item["id"], body=body, conferenceDataVersion=1, sendUpdates="all")
        try:
            return call(request, self.backoff)
        except Exception as error:
            classify(error)  # anything unexpected is raised; a failed call is tried with the next change
            return item

    # Reading

    def changes(self, token: str | None) -> tuple[list[CalendarEvent], str]:
        """Our events changed since `token`: every one of them on the first call or when
        Google asks for a full sync (410)."""
        events = self.events
        found: list[CalendarEvent] = []
        page = None
        while True:
            arguments: dict[str, Any] = {"calendarId": self.calendar_id, "showDeleted": True, "maxResults": 250}
            if token:
                arguments["syncToken"] = token
            if page:
                arguments["pageToken"] = page
            try:
                answer = call(events.list(**arguments), self.backoff)
            except HttpError as error:
                if error.resp.status == 410 and token:
                    return self.changes(None)  # the token expired: start over
                raise _error(error) from None
            except Exception as error:
                failure = classify(error)
                raise CalendarError(failure.reason, transient=True, whole=failure.blocks_all) from None
            for item in answer.get("items", []):
                tags = item.get("extendedProperties", {}).get("private", {})
                if tags.get(TAG) == self.cohort_tag or item.get("status") == "cancelled":
                    if _conference_failed(item):
                        item = self._new_conference(item)
                    found.append(_event(item))
            page = answer.get("nextPageToken")
            if not page:
                return found, answer.get("nextSyncToken", token or "")

    # Push

    def watch(self, *, channel_id: str, token: str, address: str, ttl: timedelta) -> Channel:
        """A channel on the calendar's events: Google posts to `address` (HTTPS, its
        domain verified for the project) at each change."""
        body = {"id": channel_id, "type": "web_hook", "address": address, "token": token, "params": {"ttl": str(int(ttl.total_seconds()))}}
        try:
            answer = call(self.events.watch(calendarId=self.calendar_id, body=body), self.backoff, idempotent=False)
        except Exception as error:
            raise _error(error) from None
        expires = datetime.fromtimestamp(int(answer["expiration"]) / 1000, UTC) if answer.get("expiration") else self.clock() + ttl
        return Channel(id=answer.get("id", channel_id), resource_id=answer["resourceId"], token=token, address=address, expires=expires)

    def stop(self, channel: Channel) -> None:
        try:
            call(self.service.channels().stop(body={"id": channel.id, "resourceId": channel.resource_id}), self.backoff)
        except HttpError as error:
            if error.resp.status != 404:  # expired already, or stopped before
                raise _error(error) from None
        except Exception as error:
            raise _error(error) from None


class _Id:
    def __init__(self, event_id: str):
        self.event_id = event_id


def _failure(answer: Any) -> Failure | None:
    return classify(answer) if isinstance(answer, BaseException) else None


def _outcome(value: Any) -> CalendarEvent | CalendarError:
    return _error(value) if isinstance(value, BaseException) else _event(value)


def _error(value: BaseException) -> CalendarError:
    failure = classify(value)
    return CalendarError(failure.reason, transient=failure.retry, whole=failure.blocks_all)


def _usage_limits(error: HttpError) -> bool:
    return error.resp.status == 403 and classify(error).code == "quotaExceeded"


def _conference(request_id: str) -> dict:
    return {"createRequest": {"requestId": request_id, "conferenceSolutionKey": {"type": "hangoutsMeet"}}}


def _conference_failed(item: dict) -> bool:
    status = item.get("conferenceData", {}).get("createRequest", {}).get("status", {}).get("statusCode")
    return status == "failure" and item.get("status") != "cancelled"


def _fingerprint(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def _event(item: dict) -> CalendarEvent:
    conference = item.get("conferenceData", {})
    status = conference.get("createRequest", {}).get("status", {}).get("statusCode")
    link = item.get("hangoutLink")
    if link is None:
        video = [e for e in conference.get("entryPoints", []) if e.get("entryPointType") == "video"]
        link = video[0].get("uri") if video else None
    return CalendarEvent(
        event_id=item["id"],
        start=_moment(item.get("start")),
        end=_moment(item.get("end")),
        cancelled=item.get("status") == "cancelled",
        responses={a["email"].lower(): a.get("responseStatus", "needsAction") for a in item.get("attendees", []) if "email" in a},
        meet_link=link,
        conference=status or ("success" if link else None),
        tags=item.get("extendedProperties", {}).get("private", {}),
    )


def _moment(value: dict | None) -> datetime | None:
    if not value or "dateTime" not in value:
        return None
    return datetime.fromisoformat(value["dateTime"].replace("Z", "+00:00"))
