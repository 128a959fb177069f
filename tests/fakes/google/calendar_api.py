"""Google Calendar v3 semantics: events with client ids, Meet creation, invitations,
incremental sync, push channels (events.watch, channels.stop), and free/busy. State is kept per calendar id (an email address)."""

from __future__ import annotations

import copy
import re
import secrets
import string
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .discovery import parse_rfc3339
from .errors import ApiError, invalid, not_found, required

EVENT_ID = re.compile(r"^[a-v0-9]{5,1024}$")
BASE32HEX = "0123456789abcdefghijklmnopqrstuv"
MAX_PAGE = 2500
MAX_FREEBUSY_ITEMS = 50
MAX_FREEBUSY_RANGE = timedelta(days=90)
MAX_REMINDERS = 5
WATCH_TTL_DEFAULT = 604800  # seconds a channel lives unless params.ttl says otherwise
MAX_REMINDER_MINUTES = 40320
MAX_PROPERTY_KEY = 44
MAX_PROPERTY_VALUE = 1024
SEND_UPDATES = ("all", "externalOnly", "none")
READ_ONLY = (
    "kind",
    "etag",
    "created",
    "updated",
    "creator",
    "htmlLink",
    "iCalUID",
    "hangoutLink",
    "organizer",
    "recurringEventId",
    "privateCopy",
    "locked",
    "attendeesOmitted",
)
FIELD_ORDER = {
    name: rank
    for rank, name in enumerate(
        (
            "kind",
            "etag",
            "id",
            "status",
            "htmlLink",
            "created",
            "updated",
            "summary",
            "description",
            "location",
            "colorId",
            "creator",
            "organizer",
            "start",
            "end",
            "endTimeUnspecified",
            "recurrence",
            "recurringEventId",
            "originalStartTime",
            "transparency",
            "visibility",
            "iCalUID",
            "sequence",
            "attendees",
            "attendeesOmitted",
            "extendedProperties",
            "hangoutLink",
            "conferenceData",
            "anyoneCanAddSelf",
            "guestsCanInviteOthers",
            "guestsCanModify",
            "guestsCanSeeOtherGuests",
            "privateCopy",
            "locked",
            "reminders",
            "source",
            "attachments",
            "eventType",
        )
    )
}
MEET_ICON = "https://fonts.gstatic.com/s/i/productlogos/meet_2020q4/v6/web-512dp/logo_meet_2020q4_color_2x_web_512dp.png"


class Invitation(NamedTuple):
    """An email Google would have sent about an event."""

    email: str
    kind: str  # "invite" | "update" | "cancel"
    calendar_id: str
    event_id: str
    sequence: int


@dataclass
class Conference:
    request_id: str
    solution: str
    status: str  # pending | success | failure
    requested_at: float  # time.monotonic()


@dataclass
class StoredEvent:
    calendar_id: str
    data: dict[str, Any]
    start: datetime
    end: datetime
    changed: int
    updated: datetime
    conference: Conference | None = None

    @property
    def id(self) -> str:
        return self.data["id"]

    @property
    def cancelled(self) -> bool:
        return self.data.get("status") == "cancelled"


@dataclass
class CalendarState:
    id: str
    time_zone: str = "UTC"
    events: dict[str, StoredEvent] = field(default_factory=dict)
    busy: list[tuple[datetime, datetime]] = field(default_factory=list)
    summary: str = ""
    description: str = ""
    owner: str | None = None  # a secondary calendar: who made it (None: a user's own calendar)
    acl: dict[str, str] = field(default_factory=dict)  # email -> reader | writer | owner

    @property
    def tz(self) -> tzinfo:
        return UTC if self.time_zone == "UTC" else ZoneInfo(self.time_zone)


@dataclass
class WatchChannel:
    """A push channel (events.watch): notices of changes to one calendar's events."""

    id: str
    resource_id: str
    calendar_id: str
    address: str
    token: str | None
    expiration: datetime
    messages: int = 0  # notices sent so far (the sync notice is number 1)


@dataclass
class SyncPoint:
    calendar_id: str
    counter: int
    generation: int


@dataclass
class PageState:
    calendar_id: str
    ids: list[str]
    sync_point: int
    sync: bool
    show_deleted: bool


@dataclass
class Ctx:
    """One call as a backend sees it."""

    method_id: str
    user: str
    service_account_self: bool
    params: dict[str, Any]
    body: Any


# ---------------------------------------------------------------------------- time helpers


def zone(name: str) -> tzinfo:
    if name == "UTC":
        return UTC
    return ZoneInfo(name)


def format_instant(moment: datetime, tz: tzinfo) -> str:
    local = moment.astimezone(tz)
    if tz is UTC:
        return local.strftime("%Y-%m-%dT%H:%M:%SZ")
    return local.isoformat(timespec="seconds")


def format_updated(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def to_instant(value: datetime | str) -> datetime:
    if isinstance(value, str):
        parsed = parse_rfc3339(value, offset_required=True)
        if parsed is None:
            raise ValueError(f"not an RFC 3339 time with offset: {value!r}")
        return parsed
    if value.tzinfo is None:
        raise ValueError("naive datetime: give a time zone")
    return value


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Google's patch: given fields replace, objects merge, arrays are replaced, null clears."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge_patch(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
    return target


def domain_of(email: str) -> str:
    return email.rsplit("@", 1)[-1].lower()


class CalendarBackend:
    def __init__(
        self,
        clock: Callable[[], datetime],
        *,
        meet_delay: float | None = None,
        cancelled_detail: str = "minimal",
    ) -> None:
        self.clock = clock
        self.meet_delay = meet_delay
        self.cancelled_detail = cancelled_detail
        self.calendars: dict[str, CalendarState] = {}
        self.counter = 0
        self.generation = 0
        self.sync_tokens: dict[str, SyncPoint] = {}
        self.page_tokens: dict[str, PageState] = {}
        self.invitations: list[Invitation] = []
        self.meet_failures: set[str] = set()
        self.free_busy_errors: dict[str, list[str]] = {}  # calendar -> reasons for its next free/busy answers
        self.meet_codes: set[str] = set()
        self.channels: dict[str, WatchChannel] = {}  # by channel id
        # What is watched, by calendar: Google names it alike for every channel on one calendar.
        self.resource_ids: dict[str, str] = {}
        self.on_change: Callable[[str], None] = lambda calendar_id: None  # an event of this calendar changed
        self.on_watch: Callable[[WatchChannel], None] = lambda channel: None  # a channel opened (its sync notice)
        self.handlers: dict[str, Callable[[Ctx], tuple[int, Any]]] = {
            "calendar.events.insert": self.insert,
            "calendar.events.get": self.get,
            "calendar.events.list": self.list,
            "calendar.events.patch": self.patch,
            "calendar.events.update": self.update,
            "calendar.events.delete": self.delete,
            "calendar.events.watch": self.watch,
            "calendar.channels.stop": self.stop_channel,
            "calendar.freebusy.query": self.freebusy,
            "calendar.calendars.get": self.calendar_get,
            "calendar.calendars.insert": self.calendar_insert,
            "calendar.acl.insert": self.acl_insert,
            "calendar.calendars.delete": self.calendar_delete,
            "calendar.calendarList.list": self.calendar_list,
        }

    # ------------------------------------------------------------------ calendars

    def add_calendar(self, calendar_id: str, time_zone: str = "UTC") -> CalendarState:
        zone(time_zone)  # fail early on a bad name
        key = calendar_id.lower()
        calendar = self.calendars.get(key)
        if calendar is None:
            calendar = self.calendars[key] = CalendarState(key, time_zone)
        else:
            calendar.time_zone = time_zone
        return calendar

    def _calendar(self, ctx: Ctx, calendar_id: str) -> CalendarState:
        key = ctx.user if calendar_id == "primary" else calendar_id.lower()
        calendar = self.calendars.get(key)
        if calendar is None:
            if key != ctx.user:
                raise not_found()
            calendar = self.add_calendar(key)
        if calendar.owner is not None and ctx.user != calendar.owner and calendar.acl.get(ctx.user) not in ("writer", "owner"):
            raise not_found()  # a secondary calendar not shared with this user
        return calendar

    def _tick(self) -> int:
        self.counter += 1
        return self.counter

    def _touch(self, stored: StoredEvent) -> None:
        stored.changed = self._tick()
        stored.updated = self.clock()
        stored.data["updated"] = format_updated(stored.updated)
        stored.data["etag"] = f'"{3_000_000_000_000_000 + stored.changed}"'
        self.on_change(stored.calendar_id)

    def _new_id(self, calendar: CalendarState) -> str:
        while True:
            candidate = "".join(secrets.choice(BASE32HEX) for _ in range(26))
            if candidate not in calendar.events:
                return candidate

    def _meet_code(self) -> str:
        letters = string.ascii_lowercase
        while True:
            code = "-".join("".join(secrets.choice(letters) for _ in range(n)) for n in (3, 4, 3))
            if code not in self.meet_codes:
                self.meet_codes.add(code)
                return code

    # ------------------------------------------------------------------ validation of an event

    def _edge(self, value: Any, which: str, calendar: CalendarState) -> tuple[datetime, bool]:
        if not isinstance(value, dict) or not (value.get("dateTime") or value.get("date")):
            raise required(f"Missing {which} time.", location=which)
        zone_name = value.get("timeZone")
        event_zone: tzinfo | None = None
        if zone_name:
            try:
                event_zone = zone(zone_name)
            except (ZoneInfoNotFoundError, ValueError):
                raise invalid(f"Invalid time zone definition for {which} time.", location=which) from None
        if value.get("dateTime") and value.get("date"):
            raise invalid(f"Invalid {which} time: give either date or dateTime.", location=which)
        if value.get("dateTime"):
            moment = parse_rfc3339(value["dateTime"], offset_required=False)
            if moment is None:
                raise invalid(f"Invalid {which} time.", location=which)
            if moment.tzinfo is None:
                if event_zone is None:
                    raise required(f"Missing time zone definition for {which} time.", location=which)
                moment = moment.replace(tzinfo=event_zone)
            return moment, False
        try:
            day = date.fromisoformat(value["date"])
        except ValueError:
            raise invalid(f"Invalid {which} time.", location=which) from None
        return datetime(day.year, day.month, day.day, tzinfo=event_zone or calendar.tz), True

    def _normalize(self, calendar: CalendarState, data: dict[str, Any]) -> tuple[datetime, datetime]:
        """Check an event about to be stored; fix up what Google fixes up; return its instants."""
        start, start_all_day = self._edge(data.get("start"), "start", calendar)
        end, end_all_day = self._edge(data.get("end"), "end", calendar)
        if start_all_day != end_all_day:
            raise invalid("Start and end times must either both be date or both be dateTime.")
        if end < start:
            raise ApiError(400, "timeRangeEmpty", "The specified time range is empty.", location="end", location_type="parameter")
        for which, moment, all_day in (("start", start, start_all_day), ("end", end, end_all_day)):
            edge = {k: v for k, v in data[which].items() if k == "timeZone"}
            if all_day:
                edge["date"] = data[which]["date"]
            else:
                edge["dateTime"] = format_instant(moment, calendar.tz)
            data[which] = edge

        status = data.get("status", "confirmed")
        if status not in ("confirmed", "tentative", "cancelled"):
            raise invalid("Invalid status value.", location="status")
        data["status"] = status
        for name, allowed in (
            ("transparency", ("opaque", "transparent")),
            ("visibility", ("default", "public", "private", "confidential")),
        ):
            if name in data and data[name] not in allowed:
                raise invalid(f"Invalid {name} value.", location=name)

        reminders = data.get("reminders")
        if reminders is not None:
            overrides = reminders.get("overrides") or []
            if reminders.get("useDefault") and overrides:
                raise ApiError(
                    400,
                    "cannotUseDefaultRemindersAndSpecifyOverride",
                    "Cannot specify both default reminders and overrides at the same time.",
                )
            if len(overrides) > MAX_REMINDERS:
                raise ApiError(
                    400,
                    "invalid",
                    f"Too many reminders: at most {MAX_REMINDERS} overrides are allowed.",
                    location="reminders.overrides",
                    location_type="body",
                )
            for reminder in overrides:
                if reminder.get("method") not in ("email", "popup"):
                    raise invalid("Invalid reminder method value.", location="reminders.overrides.method")
                minutes = reminder.get("minutes")
                if minutes is None or not 0 <= int(minutes) <= MAX_REMINDER_MINUTES:
                    raise invalid("Invalid reminder minutes value.", location="reminders.overrides.minutes")
        else:
            data["reminders"] = {"useDefault": True}

        properties = data.get("extendedProperties")
        if isinstance(properties, dict):
            for scope in ("private", "shared"):
                values = properties.get(scope)
                if isinstance(values, dict):
                    properties[scope] = {
                        key: value[:MAX_PROPERTY_VALUE]
                        for key, value in values.items()
                        if len(key) <= MAX_PROPERTY_KEY and value is not None
                    }

        attendees = data.get("attendees")
        if attendees is not None:
            seen: dict[str, dict[str, Any]] = {}
            organizer = data["organizer"]["email"]
            for attendee in attendees:
                email = (attendee.get("email") or "").strip()
                if not email:
                    raise required("Missing attendee email.", location="attendees.email")
                if "@" not in email:
                    raise invalid(f"Invalid attendee email: {email}", location="attendees.email")
                if attendee.get("responseStatus", "needsAction") not in ("needsAction", "declined", "tentative", "accepted"):
                    raise invalid("Invalid attendee response status.", location="attendees.responseStatus")
                entry = dict(attendee)
                entry["email"] = email
                entry.setdefault("responseStatus", "needsAction")
                if email.lower() == organizer.lower():
                    entry["organizer"] = True
                seen.setdefault(email.lower(), entry)
            data["attendees"] = list(seen.values())
        return start, end

    # ------------------------------------------------------------------ conference data

    def _conference(
        self, stored: StoredEvent | None, data: dict[str, Any], body: dict[str, Any], version: int, replace: bool
    ) -> Conference | None:
        """Apply the conference part of a write; `data` is the event being built (changed in place)."""
        existing = stored.conference if stored else None
        old_data = stored.data.get("conferenceData") if stored else None
        old_link = stored.data.get("hangoutLink") if stored else None

        def keep() -> Conference | None:
            data.pop("conferenceData", None)
            data.pop("hangoutLink", None)
            if old_data is not None:
                data["conferenceData"] = copy.deepcopy(old_data)
            if old_link:
                data["hangoutLink"] = old_link
            return existing

        if version == 0 or ("conferenceData" not in body and not replace):
            return keep()
        given = body.get("conferenceData")
        data.pop("hangoutLink", None)
        if given is None:
            data.pop("conferenceData", None)
            return None
        create = given.get("createRequest")
        if create:
            if existing is not None and create.get("requestId") == existing.request_id:
                return keep()
            key = (create.get("conferenceSolutionKey") or {}).get("type")
            if key not in ("hangoutsMeet", "eventHangout", "eventNamedHangout", "addOn"):
                raise invalid("Invalid conference type value.", location="conferenceData.createRequest")
            if key != "hangoutsMeet":
                raise invalid(
                    "Invalid conference type value: this calendar supports hangoutsMeet only.", location="conferenceData.createRequest"
                )
            if not create.get("requestId"):
                raise required("Missing conference request id.", location="conferenceData.createRequest.requestId")
            data["conferenceData"] = {
                "createRequest": {
                    "requestId": create["requestId"],
                    "conferenceSolutionKey": {"type": key},
                    "status": {"statusCode": "pending"},
                }
            }
            return Conference(create["requestId"], key, "pending", time.monotonic())
        # A copy of existing conference data (or a third-party one): kept as given.
        data["conferenceData"] = copy.deepcopy(given)
        if old_link and given.get("conferenceId") == (old_data or {}).get("conferenceId"):
            data["hangoutLink"] = old_link
            return existing
        return None

    def settle_conferences(self, calendar: CalendarState) -> None:
        now = time.monotonic()
        for stored in calendar.events.values():
            conference = stored.conference
            if conference is None or conference.status != "pending":
                continue
            if self.meet_delay is not None and now - conference.requested_at < self.meet_delay:
                continue
            failed = stored.id in self.meet_failures
            self.meet_failures.discard(stored.id)  # the next request (a new requestId) succeeds
            self._finish_conference(stored, "failure" if failed else "success")

    def _finish_conference(self, stored: StoredEvent, outcome: str) -> None:
        conference = stored.conference
        assert conference is not None
        conference.status = outcome
        data = stored.data.setdefault("conferenceData", {})
        data.setdefault("createRequest", {"requestId": conference.request_id, "conferenceSolutionKey": {"type": conference.solution}})
        data["createRequest"]["status"] = {"statusCode": outcome}
        if outcome == "success":
            code = self._meet_code()
            uri = f"https://meet.google.com/{code}"
            data["entryPoints"] = [{"entryPointType": "video", "uri": uri, "label": f"meet.google.com/{code}"}]
            data["conferenceSolution"] = {"key": {"type": "hangoutsMeet"}, "name": "Google Meet", "iconUri": MEET_ICON}
            data["conferenceId"] = code
            stored.data["hangoutLink"] = uri
        self._touch(stored)

    # ------------------------------------------------------------------ invitations

    def _send(
        self, calendar: CalendarState, stored: StoredEvent, mode: str | None, before: list[dict[str, Any]] | None, kind_for_kept: str
    ) -> None:
        if mode not in ("all", "externalOnly"):
            return
        organizer = stored.data["organizer"]["email"].lower()
        after = [] if stored.cancelled else (stored.data.get("attendees") or [])
        old = {a["email"].lower() for a in (before or [])}
        new = {a["email"].lower() for a in after}

        def eligible(email: str) -> bool:
            if email == organizer:
                return False
            return mode == "all" or domain_of(email) != domain_of(organizer)

        sequence = stored.data.get("sequence", 0)
        for attendee in after:
            email = attendee["email"].lower()
            if eligible(email) and not attendee.get("resource"):
                kind = kind_for_kept if email in old else "invite"
                self.invitations.append(Invitation(attendee["email"], kind, calendar.id, stored.id, sequence))
        for attendee in before or []:
            email = attendee["email"].lower()
            if email not in new and eligible(email):
                self.invitations.append(Invitation(attendee["email"], "cancel", calendar.id, stored.id, sequence))

    @staticmethod
    def _mode(params: dict[str, Any]) -> str | None:
        mode = params.get("sendUpdates")
        if mode is None and params.get("sendNotifications"):
            mode = "all"
        return mode

    # ------------------------------------------------------------------ rendering

    def render(
        self,
        stored: StoredEvent,
        calendar: CalendarState,
        user: str | None,
        tz_name: str | None = None,
        max_attendees: int | None = None,
        in_list: bool = False,
    ) -> dict[str, Any]:
        if in_list and stored.cancelled and self.cancelled_detail == "minimal":
            return {"kind": "calendar#event", "etag": stored.data["etag"], "id": stored.id, "status": "cancelled"}
        data = copy.deepcopy(stored.data)
        if tz_name:
            tz = zone(tz_name)
            for which, moment in (("start", stored.start), ("end", stored.end)):
                if "dateTime" in data[which]:
                    data[which]["dateTime"] = format_instant(moment, tz)
        me = (user or "").lower()
        for person in ("creator", "organizer"):
            if person in data:
                if data[person].get("email", "").lower() == me:
                    data[person]["self"] = True
                else:
                    data[person].pop("self", None)
        for attendee in data.get("attendees", []):
            if attendee["email"].lower() == me:
                attendee["self"] = True
        if max_attendees is not None and len(data.get("attendees", [])) > max_attendees:
            data["attendees"] = [a for a in data["attendees"] if a.get("self")]
            data["attendeesOmitted"] = True
        return {key: data[key] for key in sorted(data, key=lambda k: FIELD_ORDER.get(k, len(FIELD_ORDER)))}

    # ------------------------------------------------------------------ events.insert

    def insert(self, ctx: Ctx) -> tuple[int, Any]:
        calendar = self._calendar(ctx, ctx.params["calendarId"])
        body = copy.deepcopy(ctx.body or {})
        version = ctx.params.get("conferenceDataVersion", 0)
        event_id = body.get("id")
        if event_id is not None:
            if not EVENT_ID.match(event_id):
                raise invalid("Invalid resource id value.", location="id")
            if event_id in calendar.events:
                raise ApiError(409, "duplicate", "The requested identifier already exists.")
        else:
            event_id = self._new_id(calendar)
        if ctx.service_account_self and body.get("attendees"):
            raise ApiError(
                403, "forbiddenForServiceAccounts", "Service accounts cannot invite attendees without Domain-Wide Delegation of Authority."
            )
        now = self.clock()
        data = {key: value for key, value in body.items() if key not in READ_ONLY and key != "conferenceData"}
        data.update(
            kind="calendar#event",
            id=event_id,
            htmlLink=f"https://www.google.com/calendar/event?eid={event_id}",
            created=format_updated(now),
            creator={"email": ctx.user},
            organizer={"email": calendar.id},
            iCalUID=body.get("iCalUID") or f"{event_id}@google.com",
            sequence=int(body.get("sequence") or 0),
            eventType=body.get("eventType", "default"),
        )
        start, end = self._normalize(calendar, data)
        stored = StoredEvent(calendar.id, data, start, end, 0, now)
        stored.conference = self._conference(None, data, body, version, replace=True)
        self._touch(stored)
        calendar.events[event_id] = stored
        self._send(calendar, stored, self._mode(ctx.params), None, "update")
        return 200, self.render(stored, calendar, ctx.user, max_attendees=ctx.params.get("maxAttendees"))

    # ------------------------------------------------------------------ events.get

    def _event(self, ctx: Ctx) -> tuple[CalendarState, StoredEvent]:
        calendar = self._calendar(ctx, ctx.params["calendarId"])
        stored = calendar.events.get(ctx.params["eventId"])
        if stored is None:
            raise not_found()
        return calendar, stored

    def get(self, ctx: Ctx) -> tuple[int, Any]:
        calendar, stored = self._event(ctx)
        self.settle_conferences(calendar)
        return 200, self.render(stored, calendar, ctx.user, ctx.params.get("timeZone"), ctx.params.get("maxAttendees"))

    # ------------------------------------------------------------------ events.patch / update

    def _write(self, ctx: Ctx, replace: bool) -> tuple[int, Any]:
        calendar, stored = self._event(ctx)
        body = copy.deepcopy(ctx.body or {})
        version = ctx.params.get("conferenceDataVersion", 0)
        if ctx.service_account_self and body.get("attendees"):
            raise ApiError(
                403, "forbiddenForServiceAccounts", "Service accounts cannot invite attendees without Domain-Wide Delegation of Authority."
            )
        changes = {key: value for key, value in body.items() if key not in READ_ONLY and key not in ("id", "conferenceData", "sequence")}
        if replace:
            data = {key: copy.deepcopy(stored.data[key]) for key in READ_ONLY + ("id", "sequence", "eventType") if key in stored.data}
            data.update(copy.deepcopy(changes))
        else:
            data = merge_patch(copy.deepcopy(stored.data), changes)
        if isinstance(body.get("sequence"), int) and body["sequence"] > data.get("sequence", 0):
            data["sequence"] = body["sequence"]
        start, end = self._normalize(calendar, data)
        conference = self._conference(stored, data, body, version, replace)
        before = copy.deepcopy(stored.data.get("attendees") or []) if not stored.cancelled else []
        was_cancelled = stored.cancelled
        moved = (start, end) != (stored.start, stored.end) or (("date" in data["start"]) != ("date" in stored.data["start"]))
        if moved:
            data["sequence"] = max(data.get("sequence", 0), stored.data.get("sequence", 0)) + 1
        stored.data, stored.start, stored.end, stored.conference = data, start, end, conference
        self._touch(stored)
        mode = self._mode(ctx.params)
        if stored.cancelled and not was_cancelled:
            self._send(calendar, stored, mode, before, "cancel")
        else:
            self._send(calendar, stored, mode, before, "update")
        return 200, self.render(stored, calendar, ctx.user, max_attendees=ctx.params.get("maxAttendees"))

    def patch(self, ctx: Ctx) -> tuple[int, Any]:
        return self._write(ctx, replace=False)

    def update(self, ctx: Ctx) -> tuple[int, Any]:
        return self._write(ctx, replace=True)

    # ------------------------------------------------------------------ events.delete

    def delete(self, ctx: Ctx) -> tuple[int, Any]:
        calendar, stored = self._event(ctx)
        if stored.cancelled:
            raise ApiError(410, "deleted", "Resource has been deleted")
        self.cancel(calendar, stored, self._mode(ctx.params))
        return 204, None

    def cancel(self, calendar: CalendarState, stored: StoredEvent, mode: str | None) -> None:
        before = copy.deepcopy(stored.data.get("attendees") or [])
        stored.data["status"] = "cancelled"
        self._touch(stored)
        self._send(calendar, stored, mode, before, "cancel")

    # ------------------------------------------------------------------ events.watch, channels.stop

    def watch(self, ctx: Ctx) -> tuple[int, Any]:
        calendar = self._calendar(ctx, ctx.params["calendarId"])
        body = ctx.body or {}
        for name in ("id", "type", "address"):
            if not body.get(name):
                raise required(f"Required {name}", location=name, location_type="body")
        if body["type"] not in ("web_hook", "webhook"):
            raise invalid(f"Unknown channel type {body['type']!r}.", location="type", location_type="body")
        if not body["address"].startswith("https://"):
            raise ApiError(400, "push.webhookUrlNotHttps", f"WebHook callback must be HTTPS: {body['address']}")
        if body["id"] in self.channels:
            raise ApiError(400, "channelIdNotUnique", f"Channel id {body['id']} not unique")
        ttl = body.get("params", {}).get("ttl", str(WATCH_TTL_DEFAULT))
        if not str(ttl).isdigit():
            raise invalid("Invalid ttl value.", location="params.ttl", location_type="body")
        expiration = self.clock() + timedelta(seconds=int(ttl))
        resource_id = self.resource_ids.setdefault(calendar.id, secrets.token_urlsafe(20))
        channel = WatchChannel(body["id"], resource_id, calendar.id, body["address"], body.get("token"), expiration)
        self.channels[channel.id] = channel
        self.on_watch(channel)
        answer = {
            "kind": "api#channel",
            "id": channel.id,
            "resourceId": channel.resource_id,
            "resourceUri": self.resource_uri(channel),
            "expiration": str(int(expiration.timestamp() * 1000)),
        }
        if channel.token is not None:
            answer["token"] = channel.token
        return 200, answer

    @staticmethod
    def resource_uri(channel: WatchChannel) -> str:
        return f"https://www.googleapis.com/calendar/v3/calendars/{channel.calendar_id}/events?alt=json"

    def stop_channel(self, ctx: Ctx) -> tuple[int, Any]:
        body = ctx.body or {}
        channel = self.channels.get(body.get("id", ""))
        if channel is None or channel.resource_id != body.get("resourceId"):
            raise not_found(f"Channel '{body.get('id')}' not found for project")
        del self.channels[channel.id]
        return 204, None

    def watching(self, calendar_id: str) -> list[WatchChannel]:
        """The open channels on a calendar (expired ones are dropped)."""
        now = self.clock()
        for channel in [c for c in self.channels.values() if c.expiration <= now]:
            del self.channels[channel.id]
        return [c for c in self.channels.values() if c.calendar_id == calendar_id]

    # ------------------------------------------------------------------ events.list

    def list(self, ctx: Ctx) -> tuple[int, Any]:
        params = ctx.params
        calendar = self._calendar(ctx, params["calendarId"])
        self.settle_conferences(calendar)
        page_size = min(params.get("maxResults", 250), MAX_PAGE)
        tz_name = params.get("timeZone")
        if tz_name:
            try:
                zone(tz_name)
            except (ZoneInfoNotFoundError, ValueError):
                raise invalid("Invalid time zone value.", location="timeZone") from None

        if "pageToken" in params:
            state = self.page_tokens.get(params["pageToken"])
            if state is None or state.calendar_id != calendar.id:
                raise invalid("Invalid page token value.", location="pageToken")
        elif "syncToken" in params:
            for name in (
                "timeMin",
                "timeMax",
                "q",
                "privateExtendedProperty",
                "sharedExtendedProperty",
                "orderBy",
                "updatedMin",
                "iCalUID",
            ):
                if name in params:
                    raise invalid(f"The parameter {name} cannot be used together with syncToken.", location=name)
            point = self.sync_tokens.get(params["syncToken"])
            if point is None or point.generation != self.generation or point.calendar_id != calendar.id:
                raise ApiError(410, "fullSyncRequired", "Sync token is no longer valid, a full sync is required.")
            changed = sorted((e for e in calendar.events.values() if e.changed > point.counter), key=lambda e: e.changed)
            state = PageState(calendar.id, [e.id for e in changed], self.counter, True, True)
        else:
            state = PageState(
                calendar.id, self._query(calendar, params), self.counter, False, bool(params.get("showDeleted")) or "updatedMin" in params
            )

        chosen = state.ids[:page_size]
        rest = state.ids[page_size:]
        items = []
        for event_id in chosen:
            stored = calendar.events.get(event_id)
            if stored is None or (stored.cancelled and not state.show_deleted):
                continue
            items.append(self.render(stored, calendar, ctx.user, tz_name, params.get("maxAttendees"), in_list=True))
        updated = max((e.updated for e in calendar.events.values()), default=self.clock())
        result: dict[str, Any] = {
            "kind": "calendar#events",
            "etag": f'"p{self.counter}"',
            "summary": calendar.id,
            "description": "",
            "updated": format_updated(updated),
            "timeZone": calendar.time_zone,
            "accessRole": "owner",
            "defaultReminders": [{"method": "popup", "minutes": 10}],
            "items": items,
        }
        if rest:
            token = secrets.token_urlsafe(24)
            self.page_tokens[token] = PageState(calendar.id, rest, state.sync_point, state.sync, state.show_deleted)
            result["nextPageToken"] = token
        else:
            token = "C" + secrets.token_urlsafe(18)
            self.sync_tokens[token] = SyncPoint(calendar.id, state.sync_point, self.generation)
            result["nextSyncToken"] = token
        return 200, result

    def _query(self, calendar: CalendarState, params: dict[str, Any]) -> list[str]:
        time_min = parse_rfc3339(params["timeMin"], offset_required=True) if "timeMin" in params else None
        time_max = parse_rfc3339(params["timeMax"], offset_required=True) if "timeMax" in params else None
        if time_min and time_max and time_min >= time_max:
            raise ApiError(400, "timeRangeEmpty", "The specified time range is empty.", location="timeMax", location_type="parameter")
        updated_min = parse_rfc3339(params["updatedMin"], offset_required=True) if "updatedMin" in params else None
        show_deleted = bool(params.get("showDeleted")) or updated_min is not None
        order = params.get("orderBy")
        if order == "startTime" and not params.get("singleEvents"):
            raise ApiError(
                400,
                "badRequest",
                "The requested ordering is not available for the particular query.",
                location="orderBy",
                location_type="parameter",
            )
        constraints = []
        for scope, name in (("private", "privateExtendedProperty"), ("shared", "sharedExtendedProperty")):
            for constraint in params.get(name, []):
                if "=" not in constraint:
                    raise invalid(f"Invalid {name} value: expected propertyName=value.", location=name)
                key, value = constraint.split("=", 1)
                constraints.append((scope, key, value))
        words = (params.get("q") or "").lower().split()
        event_types = params.get("eventTypes")

        chosen = []
        for stored in calendar.events.values():
            data = stored.data
            if stored.cancelled and not show_deleted:
                continue
            if time_min and stored.end <= time_min:
                continue
            if time_max and stored.start >= time_max:
                continue
            if updated_min and stored.updated < updated_min:
                continue
            if "iCalUID" in params and data.get("iCalUID") != params["iCalUID"]:
                continue
            if event_types and data.get("eventType", "default") not in event_types:
                continue
            properties = data.get("extendedProperties") or {}
            if any((properties.get(scope) or {}).get(key) != value for scope, key, value in constraints):
                continue
            if words:
                haystack = " ".join(
                    [
                        data.get("summary", ""),
                        data.get("description", ""),
                        data.get("location", ""),
                        data.get("organizer", {}).get("email", ""),
                    ]
                    + [f"{a.get('email', '')} {a.get('displayName', '')}" for a in data.get("attendees", [])]
                ).lower()
                if not all(word in haystack for word in words):
                    continue
            chosen.append(stored)
        if order == "startTime":
            chosen.sort(key=lambda e: e.start)
        elif order == "updated":
            chosen.sort(key=lambda e: e.updated)
        return [e.id for e in chosen]

    # ------------------------------------------------------------------ calendars.get

    def calendar_get(self, ctx: Ctx) -> tuple[int, Any]:
        calendar = self._calendar(ctx, ctx.params["calendarId"])
        return 200, {
            "kind": "calendar#calendar",
            "etag": f'"c{self.counter}"',
            "id": calendar.id,
            "summary": calendar.id,
            "timeZone": calendar.time_zone,
            "conferenceProperties": {"allowedConferenceSolutionTypes": ["hangoutsMeet"]},
        }

    def calendar_insert(self, ctx: Ctx) -> tuple[int, Any]:
        body = ctx.body or {}
        if not body.get("summary"):
            raise required("Missing title.", location="summary")
        time_zone = body.get("timeZone") or "UTC"
        try:
            zone(time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise invalid("Invalid time zone value.", location="timeZone") from None
        key = f"c_{secrets.token_hex(26)}@group.calendar.google.com"
        calendar = self.calendars[key] = CalendarState(key, time_zone, summary=body["summary"], owner=ctx.user)
        calendar.description = body.get("description", "")
        calendar.acl[ctx.user] = "owner"
        return 200, {
            "kind": "calendar#calendar",
            "etag": f'"c{self._tick()}"',
            "id": key,
            "summary": calendar.summary,
            "description": calendar.description,
            "timeZone": time_zone,
            "conferenceProperties": {"allowedConferenceSolutionTypes": ["hangoutsMeet"]},
        }

    def calendar_list(self, ctx: Ctx) -> tuple[int, Any]:
        """The user's calendar list: their own calendar and those shared with them (the
        ones they made included), filtered by minAccessRole, paged by maxResults."""
        roles = ["freeBusyReader", "reader", "writer", "owner"]
        least = ctx.params.get("minAccessRole")
        if least is not None and least not in roles:
            raise invalid("Invalid minAccessRole value.", location="minAccessRole")
        entries = []
        for calendar in sorted(self.calendars.values(), key=lambda c: c.id):
            role = "owner" if calendar.id == ctx.user else calendar.acl.get(ctx.user)
            if role not in roles or (least is not None and roles.index(role) < roles.index(least)):
                continue
            entry = {
                "kind": "calendar#calendarListEntry",
                "id": calendar.id,
                "summary": calendar.summary or calendar.id,
                "timeZone": calendar.time_zone,
                "accessRole": role,
            }
            if calendar.description:
                entry["description"] = calendar.description
            if calendar.id == ctx.user:
                entry["primary"] = True
            entries.append(entry)
        size = int(ctx.params.get("maxResults") or 100)
        first = int(ctx.params.get("pageToken") or 0)
        page: dict[str, Any] = {"kind": "calendar#calendarList", "etag": f'"l{self.counter}"', "items": entries[first : first + size]}
        if first + size < len(entries):
            page["nextPageToken"] = str(first + size)
        return 200, page

    def calendar_delete(self, ctx: Ctx) -> tuple[int, Any]:
        calendar = self._calendar(ctx, ctx.params["calendarId"])
        if calendar.owner is None:
            raise ApiError(400, "cannotDeletePrimaryCalendar", "Cannot delete primary calendar.")
        if calendar.acl.get(ctx.user) != "owner":
            raise ApiError(403, "forbidden", "You need to have owner access to this calendar.")
        del self.calendars[calendar.id]
        return 204, None

    def acl_insert(self, ctx: Ctx) -> tuple[int, Any]:
        calendar = self._calendar(ctx, ctx.params["calendarId"])
        if calendar.owner is not None and calendar.acl.get(ctx.user) != "owner":
            raise ApiError(403, "forbidden", "You need to have owner access to this calendar.")
        body = ctx.body or {}
        role, scope = body.get("role"), body.get("scope") or {}
        if role not in ("none", "freeBusyReader", "reader", "writer", "owner"):
            raise invalid("Invalid role value.", location="role")
        if scope.get("type") != "user" or "@" not in (scope.get("value") or ""):
            raise invalid("Invalid scope value.", location="scope")
        email = scope["value"].lower()
        calendar.acl[email] = role  # inserting a rule for someone who has one replaces it, as Google does
        return 200, {"kind": "calendar#aclRule", "id": f"user:{email}", "role": role, "scope": {"type": "user", "value": email}}

    # ------------------------------------------------------------------ freeBusy

    def busy_intervals(self, email: str, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        email = email.lower()
        intervals: list[tuple[datetime, datetime]] = []
        calendar = self.calendars.get(email)
        if calendar is not None:
            intervals.extend(calendar.busy)
        for owner in self.calendars.values():
            for stored in owner.events.values():
                data = stored.data
                if stored.cancelled or data.get("transparency") == "transparent":
                    continue
                mine = next((a for a in data.get("attendees", []) if a["email"].lower() == email), None)
                if owner.id == email:
                    if mine is not None and mine.get("responseStatus") == "declined":
                        continue
                elif mine is None or mine.get("responseStatus") == "declined":
                    continue
                intervals.append((stored.start, stored.end))
        clipped = sorted((max(s, start), min(e, end)) for s, e in intervals if s < end and e > start)
        merged: list[tuple[datetime, datetime]] = []
        for s, e in clipped:
            if merged and s <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], e))
            else:
                merged.append((s, e))
        return merged

    def freebusy(self, ctx: Ctx) -> tuple[int, Any]:
        body = ctx.body or {}
        if not body.get("timeMin"):
            raise required("Missing timeMin parameter.", location="timeMin")
        if not body.get("timeMax"):
            raise required("Missing timeMax parameter.", location="timeMax")
        time_min = parse_rfc3339(body["timeMin"], offset_required=True)
        time_max = parse_rfc3339(body["timeMax"], offset_required=True)
        if time_min is None:
            raise invalid("Invalid timeMin value: an RFC 3339 time with an offset is needed.", location="timeMin")
        if time_max is None:
            raise invalid("Invalid timeMax value: an RFC 3339 time with an offset is needed.", location="timeMax")
        if time_min >= time_max:
            raise ApiError(400, "timeRangeEmpty", "The specified time range is empty.", location="timeMax", location_type="parameter")
        if time_max - time_min > MAX_FREEBUSY_RANGE:
            raise ApiError(400, "timeRangeTooLong", "The requested time range is too long.", location="timeMax", location_type="parameter")
        items = body.get("items") or []
        if len(items) > MAX_FREEBUSY_ITEMS:
            raise ApiError(400, "tooManyCalendarsRequested", "Too many calendars requested.", location="items", location_type="parameter")
        expansion = body.get("calendarExpansionMax")
        if expansion is not None and not 1 <= int(expansion) <= MAX_FREEBUSY_ITEMS:
            raise invalid("Invalid calendarExpansionMax value: it must be within 1..50.", location="calendarExpansionMax")
        try:
            tz = zone(body.get("timeZone") or "UTC")
        except (ZoneInfoNotFoundError, ValueError):
            raise invalid("Invalid time zone value.", location="timeZone") from None
        calendars: dict[str, Any] = {}
        for item in items:
            requested = (item or {}).get("id")
            if not requested:
                raise required("Missing calendar id.", location="items.id")
            email = ctx.user if requested == "primary" else requested.lower()
            if email not in self.calendars and email != ctx.user:
                calendars[requested] = {"errors": [{"domain": "global", "reason": "notFound"}], "busy": []}
                continue
            if self.free_busy_errors.get(email):
                calendars[requested] = {"errors": [{"domain": "global", "reason": self.free_busy_errors[email].pop(0)}], "busy": []}
                continue
            if email in self.calendars:
                self.settle_conferences(self.calendars[email])
            calendars[requested] = {
                "busy": [
                    {"start": format_instant(s, tz), "end": format_instant(e, tz)}
                    for s, e in self.busy_intervals(email, time_min, time_max)
                ]
            }
        return 200, {
            "kind": "calendar#freeBusy",
            "timeMin": format_instant(time_min, tz),
            "timeMax": format_instant(time_max, tz),
            "calendars": calendars,
        }

    # ------------------------------------------------------------------ people acting on their calendars

    def stored(self, calendar_id: str, event_id: str) -> tuple[CalendarState, StoredEvent]:
        calendar = self.calendars.get(calendar_id.lower())
        if calendar is None or event_id not in calendar.events:
            raise KeyError(f"no event {event_id!r} on calendar {calendar_id!r}")
        return calendar, calendar.events[event_id]

    def respond(self, calendar_id: str, event_id: str, email: str, response: str) -> None:
        if response not in ("declined", "accepted", "tentative", "needsAction"):
            raise ValueError(f"unknown response {response!r}")
        calendar, stored = self.stored(calendar_id, event_id)
        for attendee in stored.data.get("attendees", []):
            if attendee["email"].lower() == email.lower():
                attendee["responseStatus"] = response
                break
        else:
            raise KeyError(f"{email} is not an attendee of {event_id}")
        self._touch(stored)

    def move(self, calendar_id: str, event_id: str, new_start: datetime | str, new_end: datetime | str, notify: bool = False) -> None:
        calendar, stored = self.stored(calendar_id, event_id)
        start, end = to_instant(new_start), to_instant(new_end)
        if end < start:
            raise ValueError("end before start")
        for which, moment in (("start", start), ("end", end)):
            edge = {k: v for k, v in stored.data[which].items() if k == "timeZone"}
            edge["dateTime"] = format_instant(moment, calendar.tz)
            stored.data[which] = edge
        stored.start, stored.end = start, end
        stored.data["sequence"] = stored.data.get("sequence", 0) + 1
        self._touch(stored)
        if notify:
            attendees = copy.deepcopy(stored.data.get("attendees") or [])
            self._send(calendar, stored, "all", attendees, "update")

    def edit(self, calendar_id: str, event_id: str, changes: dict[str, Any], notify: bool = False) -> None:
        calendar, stored = self.stored(calendar_id, event_id)
        before = copy.deepcopy(stored.data.get("attendees") or [])
        data = merge_patch(copy.deepcopy(stored.data), changes)
        start, end = self._normalize(calendar, data)
        if (start, end) != (stored.start, stored.end):
            data["sequence"] = data.get("sequence", 0) + 1
        stored.data, stored.start, stored.end = data, start, end
        self._touch(stored)
        if notify:
            self._send(calendar, stored, "all", before, "update")

    def delete_by_user(self, calendar_id: str, event_id: str, notify: bool = False) -> None:
        calendar, stored = self.stored(calendar_id, event_id)
        if stored.cancelled:
            raise ValueError(f"{event_id} is already deleted")
        self.cancel(calendar, stored, "all" if notify else None)
