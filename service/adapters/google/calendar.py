"""Sessions as Google Calendar events with Meet links; changes read back by sync token."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from googleapiclient.errors import HttpError

from ...domain.calendar import TAG, CalendarError, CalendarEvent, EventRequest
from ...domain.ports import Calendar
from .api import Backoff, Failure, batch, call, classify

BATCH = 50  # calls per batch, as Google recommends


class GoogleCalendar(Calendar):
    def __init__(self, service: Callable[[], Any], *, calendar_id: str, cohort_tag: str, backoff: Backoff | None = None):
        self._service_factory = service
        self._service = None
        self.calendar_id = calendar_id
        self.cohort_tag = cohort_tag
        self.backoff = backoff or Backoff()

    @property
    def service(self):
        if self._service is None:  # built on first use, in the thread that uses it
            self._service = self._service_factory()
        return self._service

    # Writing

    def put(self, requests: Sequence[EventRequest]) -> dict[str, CalendarEvent | CalendarError]:
        """Insert each new event with its stable id (one that turns out to exist, 409, is
        adopted) and patch the ones the calendar has. Batches of 50; failed parts are
        retried with backoff."""
        events = self.service.events()

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
        return {key: _outcome(value) for key, value in results.items()}

    def remove(self, event_ids: Sequence[str]) -> dict[str, CalendarError | None]:
        events = self.service.events()
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
        events = self.service.events()
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
                    if not failure.retry:
                        results.update(answers)
                        continue
                for item in chunk:
                    answer = answers.get(item.event_id)
                    answered = _failure(answer)
                    if answered is not None and answered.retry and attempt < self.backoff.attempts - 1:
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
            "reminders": {"useDefault": False, "overrides": [{"method": "email", "minutes": 1440}, {"method": "popup", "minutes": 10}]},
            "extendedProperties": {"private": {TAG: self.cohort_tag, **request.tags}},
        }
        if new:
            body["conferenceData"] = {"createRequest": {"requestId": request.event_id, "conferenceSolutionKey": {"type": "hangoutsMeet"}}}
        return body

    # Reading

    def changes(self, token: str | None) -> tuple[list[CalendarEvent], str]:
        """Our events changed since `token`: every one of them on the first call or when
        Google asks for a full sync (410)."""
        events = self.service.events()
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
                raise CalendarError(classify(error).reason, transient=classify(error).retry) from None
            except Exception as error:
                raise CalendarError(classify(error).reason, transient=True) from None
            for item in answer.get("items", []):
                tags = item.get("extendedProperties", {}).get("private", {})
                if tags.get(TAG) == self.cohort_tag or item.get("status") == "cancelled":
                    found.append(_event(item))
            page = answer.get("nextPageToken")
            if not page:
                return found, answer.get("nextSyncToken", token or "")


class _Id:
    def __init__(self, event_id: str):
        self.event_id = event_id


def _failure(answer: Any) -> Failure | None:
    return classify(answer) if isinstance(answer, BaseException) else None


def _outcome(value: Any) -> CalendarEvent | CalendarError:
    return _error(value) if isinstance(value, BaseException) else _event(value)


def _error(value: BaseException) -> CalendarError:
    failure = classify(value)
    return CalendarError(failure.reason, transient=failure.retry)


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
