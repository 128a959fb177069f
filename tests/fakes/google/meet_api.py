"""Google Meet REST API v2 semantics: meeting spaces made by Calendar, their settings, and
conference records built from people joining and leaving.

What a test scripts is who was in a meeting when (`attend`); what the API shows is
derived from that on every read, as of the fake's clock: a conference runs from the
first join until everyone has left, and someone joining after that starts another
conference record. Joins after "now" are not visible yet; a session still running has
no end time; records disappear 30 days after their conference ended.

Errors follow google.rpc.Status ({"error": {code, message, status}}), without the
`errors[].reason` list of the older Calendar and Gmail front ends.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from .discovery import parse_rfc3339
from .errors import ApiError

if TYPE_CHECKING:
    from .calendar_api import CalendarBackend, Ctx

RECORD_LIFETIME = timedelta(days=30)  # "deleted 30 days after the conference ends"
PAGE_SIZES = {  # (default, largest) per list method, as the discovery document says
    "meet.conferenceRecords.list": (25, 100),
    "meet.conferenceRecords.participants.list": (100, 250),
    "meet.conferenceRecords.participants.participantSessions.list": (100, 250),
}
ACCESS_TYPES = ("OPEN", "TRUSTED", "RESTRICTED")
# What a Calendar-made space looks like before anyone changes it: an organisation whose
# default lets only invitees in and records every meeting (so a test can see a change).
DEFAULT_CONFIG: dict[str, Any] = {
    "accessType": "RESTRICTED",
    "entryPointAccess": "ALL",
    "moderation": "OFF",
    "attendanceReportGenerationType": "DO_NOT_GENERATE",
    "artifactConfig": {
        "recordingConfig": {"autoRecordingGeneration": "ON"},
        "transcriptionConfig": {"autoTranscriptionGeneration": "ON"},
        "smartNotesConfig": {"autoSmartNotesGeneration": "OFF"},
    },
}
STATUS = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND"}


class MeetError(ApiError):
    """A Meet error: google.rpc.Status, no `errors` list."""

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "status": STATUS.get(self.code, "UNKNOWN")}}


def _invalid(message: str) -> MeetError:
    return MeetError(400, "badRequest", message)


def _not_found(what: str) -> MeetError:
    return MeetError(404, "notFound", f"Requested entity was not found. ({what})")


def _stamp(moment: datetime) -> str:
    """Google's own shape: UTC, 'Z', fractions only when there are some."""
    text = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    micro = moment.microsecond
    return text + (f".{micro:06d}".rstrip("0") if micro else "") + "Z"


def _token(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Who:
    """One person as Meet knows them: signed in (user id), anonymous or by phone."""

    kind: str  # "signedinUser" | "anonymousUser" | "phoneUser"
    display_name: str
    user: str | None = None  # users/{id} for signed-in users

    @property
    def key(self) -> str:
        return self.user or f"{self.kind}:{self.display_name}"

    def render(self) -> dict[str, Any]:
        value = {"displayName": self.display_name}
        if self.user:
            value["user"] = self.user
        return {self.kind: value}


@dataclass
class Visit:
    who: Who
    start: datetime
    end: datetime | None  # None: still there (as scripted)


@dataclass
class Space:
    id: str
    code: str
    owner: str  # who created the event that made it
    config: dict[str, Any] = field(default_factory=lambda: _copy(DEFAULT_CONFIG))
    visits: list[Visit] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"spaces/{self.id}"


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


@dataclass(frozen=True)
class Record:
    """A conference as visible now: consecutive visits with no empty moment between."""

    id: str
    space: Space
    start: datetime
    end: datetime | None
    visits: tuple[Visit, ...]

    @property
    def name(self) -> str:
        return f"conferenceRecords/{self.id}"

    def render(self) -> dict[str, Any]:
        value = {"name": self.name, "startTime": _stamp(self.start), "space": self.space.name}
        if self.end is not None:
            value["endTime"] = _stamp(self.end)
            value["expireTime"] = _stamp(self.end + RECORD_LIFETIME)
        return value

    def participants(self) -> list[tuple[str, Who, list[Visit]]]:
        """(participant id, who, their visits), in order of first join."""
        found: dict[str, tuple[Who, list[Visit]]] = {}
        for visit in self.visits:
            found.setdefault(visit.who.key, (visit.who, []))[1].append(visit)
        return [(_token(self.id, key), who, visits) for key, (who, visits) in found.items()]


class MeetBackend:
    """The Meet API's handlers, and the controls tests use to make people join and leave.

    `lock` is the server's: controls take it, handlers run under it already.
    """

    def __init__(self, clock: Callable[[], datetime], calendar: CalendarBackend, lock: threading.RLock) -> None:
        self.clock = clock
        self.calendar = calendar
        self.lock = lock
        self.spaces: dict[str, Space] = {}  # by meeting code
        self.users: dict[str, str] = {}  # email -> users/{id}
        self.patches: list[tuple[str, str, dict[str, Any]]] = []  # (space name, update mask, body) as received
        self.handlers: dict[str, Callable[[Ctx], tuple[int, Any]]] = {
            "meet.spaces.get": self.space_get,
            "meet.spaces.patch": self.space_patch,
            "meet.conferenceRecords.list": self.records_list,
            "meet.conferenceRecords.get": self.record_get,
            "meet.conferenceRecords.participants.list": self.participants_list,
            "meet.conferenceRecords.participants.get": self.participant_get,
            "meet.conferenceRecords.participants.participantSessions.list": self.sessions_list,
            "people.people.get": self.person_get,
        }

    # ------------------------------------------------------------------ controls for tests

    def user_id(self, email: str) -> str:
        """The stable `users/{id}` Meet shows for a signed-in person."""
        with self.lock:
            key = email.lower()
            if key not in self.users:
                self.users[key] = "users/" + str(100_000_000_000_000_000_000 + int(_token("user", key), 16) % 10**20)
            return self.users[key]

    def attend(
        self,
        meeting: str,
        start: datetime,
        end: datetime | None,
        *,
        email: str | None = None,
        name: str | None = None,
        phone: bool = False,
    ) -> None:
        """Someone is in the meeting (a meeting code or a Meet link) from `start` to `end`
        (None: still there). Signed in with `email`; otherwise anonymous (or dialled in,
        `phone`) under the display name `name`."""
        if email:
            who = Who("signedinUser", name or email.split("@")[0].replace(".", " ").title(), self.user_id(email))
        elif name:
            who = Who("phoneUser" if phone else "anonymousUser", name)
        else:
            raise ValueError("attend needs an email (signed in) or a display name")
        if end is not None and end <= start:
            raise ValueError("a visit ends after it starts")
        with self.lock:
            self._space_for(meeting.rsplit("/", 1)[-1]).visits.append(Visit(who, start, end))

    def space(self, meeting: str) -> dict[str, Any]:
        """The space as spaces.get shows it (for assertions)."""
        with self.lock:
            return self._render_space(self._space_for(meeting.rsplit("/", 1)[-1]))

    # ------------------------------------------------------------------ spaces

    def _space_for(self, code: str) -> Space:
        """The space behind a meeting code Calendar gave out (made on first sight)."""
        code = code.lower()
        space = self.spaces.get(code)
        if space is not None:
            return space
        owner = self._creator(code)
        if owner is None:
            raise _not_found(f"no meeting space has the code {code}")
        alphabet = string.ascii_letters + string.digits
        space = Space(id="".join(secrets.choice(alphabet) for _ in range(12)), code=code, owner=owner)
        self.spaces[code] = space
        return space

    def _creator(self, code: str) -> str | None:
        for calendar in self.calendar.calendars.values():
            for stored in calendar.events.values():
                if stored.data.get("conferenceData", {}).get("conferenceId") == code:
                    return str(stored.data.get("creator", {}).get("email") or calendar.id).lower()
        return None

    def _by_name(self, name: str) -> Space:
        """spaces/{id}, or spaces/{meetingCode} (an alias, not case sensitive)."""
        tail = name.removeprefix("spaces/")
        for space in self.spaces.values():
            if space.id == tail:
                return space
        if re.fullmatch(r"[A-Za-z]+-[A-Za-z]+-[A-Za-z]+", tail):
            return self._space_for(tail)
        raise _not_found(name)

    def _render_space(self, space: Space) -> dict[str, Any]:
        value: dict[str, Any] = {
            "name": space.name,
            "meetingUri": f"https://meet.google.com/{space.code}",
            "meetingCode": space.code,
            "config": _copy(space.config),
        }
        active = [record for record in self._records(space) if record.end is None]
        if active:
            value["activeConference"] = {"conferenceRecord": active[0].name}
        return value

    def space_get(self, ctx: Ctx) -> tuple[int, Any]:
        return 200, self._render_space(self._by_name(ctx.params["name"]))

    def space_patch(self, ctx: Ctx) -> tuple[int, Any]:
        space = self._by_name(ctx.params["name"])
        if space.owner != ctx.user:
            raise MeetError(403, "forbidden", "The caller does not have permission")
        body = ctx.body or {}
        mask = ctx.params.get("updateMask", "")
        self.patches.append((space.name, mask, _copy(body)))
        if body.get("name") not in (None, space.name, f"spaces/{space.code}"):
            raise _invalid("The space name cannot be changed.")
        config = body.get("config") or {}
        if config.get("accessType") == "ACCESS_TYPE_UNSPECIFIED" or config.get("moderation") == "MODERATION_UNSPECIFIED":
            raise _invalid("An unspecified value cannot be set.")
        paths = [_camel(path.strip()) for path in mask.split(",") if path.strip()]
        if not paths or paths == ["*"]:  # all given fields (or, with *, everything)
            if paths == ["*"]:
                space.config = {}
            _merge(space.config, config)
            return 200, self._render_space(space)
        for path in paths:
            if not path.startswith("config.") or not _known(path.removeprefix("config.")):
                raise _invalid(f"Invalid update mask path: {path}")
            keys = path.removeprefix("config.").split(".")
            value: Any = config
            for key in keys:
                value = value.get(key) if isinstance(value, dict) else None
            target = space.config
            for key in keys[:-1]:
                target = target.setdefault(key, {})
            if value is None:
                target.pop(keys[-1], None)
            else:
                target[keys[-1]] = _copy(value)
        return 200, self._render_space(space)

    # ------------------------------------------------------------------ conference records

    def _records(self, space: Space) -> list[Record]:
        """The conferences held in a space as visible now, oldest first."""
        now = self.clock()
        visible = sorted(
            (Visit(v.who, v.start, v.end if v.end is not None and v.end <= now else None) for v in space.visits if v.start <= now),
            key=lambda v: v.start,
        )
        records: list[Record] = []
        group: list[Visit] = []
        until: datetime | None = None  # when the current group empties; None: someone is still there

        def close() -> None:
            if group:
                start = group[0].start
                ends = [v.end for v in group]
                end = None if any(e is None for e in ends) else max(e for e in ends if e is not None)
                if end is None or now < end + RECORD_LIFETIME:
                    records.append(Record(_token(space.id, start.isoformat()), space, start, end, tuple(group)))

        for visit in visible:
            if group and until is not None and visit.start > until:
                close()
                group = []
            if not group:
                until = visit.end
            elif until is not None:
                until = None if visit.end is None else max(until, visit.end)
            group.append(visit)
        close()
        return records

    def _all_records(self, ctx: Ctx) -> list[Record]:
        """Records of the spaces the caller created or was in, signed in."""
        mine = self.users.get(ctx.user)
        return [
            record
            for space in self.spaces.values()
            for record in self._records(space)
            if space.owner == ctx.user or any(v.who.user == mine for v in record.visits)
        ]

    def _record(self, ctx: Ctx, name: str) -> Record:
        for record in self._all_records(ctx):
            if record.name == name:
                return record
        raise _not_found(name)

    def records_list(self, ctx: Ctx) -> tuple[int, Any]:
        test = _parse_filter(ctx.params.get("filter", ""))
        wanted = [r for r in self._all_records(ctx) if test(r)]
        wanted.sort(key=lambda r: r.start, reverse=True)  # newest first, as Google lists them
        return _page(ctx, "conferenceRecords", [r.render() for r in wanted])

    def record_get(self, ctx: Ctx) -> tuple[int, Any]:
        return 200, self._record(ctx, ctx.params["name"]).render()

    def _participant(self, ctx: Ctx, name: str) -> tuple[Record, str, Who, list[Visit]]:
        record_name, _, participant = name.partition("/participants/")
        record = self._record(ctx, record_name)
        for pid, who, visits in record.participants():
            if pid == participant:
                return record, pid, who, visits
        raise _not_found(name)

    @staticmethod
    def _render_participant(record: Record, pid: str, who: Who, visits: list[Visit]) -> dict[str, Any]:
        value = {"name": f"{record.name}/participants/{pid}", **who.render(), "earliestStartTime": _stamp(visits[0].start)}
        ends = [v.end for v in visits]
        if all(e is not None for e in ends):
            value["latestEndTime"] = _stamp(max(e for e in ends if e is not None))
        return value

    def participants_list(self, ctx: Ctx) -> tuple[int, Any]:
        record = self._record(ctx, ctx.params["parent"])
        if ctx.params.get("filter"):
            raise _invalid("This fake serves participants.list without a filter.")
        items = [self._render_participant(record, pid, who, visits) for pid, who, visits in record.participants()]
        status, answer = _page(ctx, "participants", items)
        answer["totalSize"] = len(items)
        return status, answer

    def participant_get(self, ctx: Ctx) -> tuple[int, Any]:
        record, pid, who, visits = self._participant(ctx, ctx.params["name"])
        return 200, self._render_participant(record, pid, who, visits)

    def sessions_list(self, ctx: Ctx) -> tuple[int, Any]:
        parent = ctx.params["parent"]
        _, _, _, visits = self._participant(ctx, parent)
        if ctx.params.get("filter"):
            raise _invalid("This fake serves participantSessions.list without a filter.")
        items = []
        for visit in visits:
            item = {"name": f"{parent}/participantSessions/{_token(parent, visit.start.isoformat())}", "startTime": _stamp(visit.start)}
            if visit.end is not None:
                item["endTime"] = _stamp(visit.end)
            items.append(item)
        return _page(ctx, "participantSessions", items)

    # ------------------------------------------------------------------ People API (the directory)

    def person_get(self, ctx: Ctx) -> tuple[int, Any]:
        """people/{id} of a Meet user id: their email, for callers in the same organisation
        (the directory); anyone else is not found, as an outside account is."""
        wanted = ctx.params["resourceName"].removeprefix("people/")
        fields = {f.strip() for f in ctx.params.get("personFields", "").split(",") if f.strip()}
        if not fields:
            raise MeetError(400, "badRequest", "personFields mask is required. Please specify one or more valid paths.")
        for email, user in self.users.items():
            if user == f"users/{wanted}" and email.rsplit("@", 1)[-1] == ctx.user.rsplit("@", 1)[-1]:
                person: dict[str, Any] = {"resourceName": f"people/{wanted}", "etag": "%" + _token("person", email)[:12]}
                if "emailAddresses" in fields:
                    source = {"type": "DOMAIN_PROFILE", "id": wanted}
                    person["emailAddresses"] = [{"metadata": {"primary": True, "source": source}, "value": email}]
                return 200, person
        raise _not_found(f"people/{wanted}")


def _camel(path: str) -> str:
    """update_mask paths may be snake_case: config.access_type == config.accessType."""
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), path)


CONFIG_FIELDS = (
    "accessType",
    "entryPointAccess",
    "moderation",
    "attendanceReportGenerationType",
    "artifactConfig",
    "moderationRestrictions",
)


def _known(path: str) -> bool:
    return path.split(".")[0] in CONFIG_FIELDS


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = _copy(value)


def _page(ctx: Ctx, key: str, items: list[dict[str, Any]]) -> tuple[int, Any]:
    default, largest = PAGE_SIZES[ctx.method_id]
    size = ctx.params.get("pageSize") or default
    if size < 0:
        raise _invalid("page_size must not be negative")
    size = min(size, largest)
    start = 0
    token = ctx.params.get("pageToken")
    if token:
        match = re.fullmatch(r"p(\d+)-([0-9a-f]{8})", token)
        if match is None or match.group(2) != _token(ctx.method_id, key, match.group(1))[:8]:
            raise _invalid("Invalid page token.")
        start = int(match.group(1))
    answer: dict[str, Any] = {key: items[start : start + size]} if items[start : start + size] else {}
    if start + size < len(items):
        after = str(start + size)
        answer["nextPageToken"] = f"p{after}-{_token(ctx.method_id, key, after)[:8]}"
    return 200, answer


# ---------------------------------------------------------------------------- filters

FILTER_TERM = re.compile(
    r"""\s*(?P<field>[a-z_.]+)\s*
        (?:(?P<null>IS\s+NULL)|(?P<op>>=|<=|!=|=|>|<)\s*"(?P<value>[^"]*)")\s*""",
    re.VERBOSE,
)
FILTER_FIELDS = ("space.name", "space.meeting_code", "start_time", "end_time")


def _parse_filter(text: str) -> Callable[[Record], bool]:
    """conferenceRecords.list's filter: terms joined by AND, each `field op "value"` or
    `end_time IS NULL`, on space.name, space.meeting_code, start_time and end_time."""
    if not text.strip():
        return lambda record: True
    tests: list[Callable[[Record], bool]] = []
    for part in _split_and(text):
        match = FILTER_TERM.fullmatch(part)
        if match is None:
            raise _invalid(f"Invalid filter: {text}")
        name = match.group("field")
        if name not in FILTER_FIELDS:
            raise _invalid(f"Invalid filter field: {name}")
        if match.group("null"):
            if name != "end_time":
                raise _invalid(f"Invalid filter: {name} IS NULL")
            tests.append(lambda record: record.end is None)
            continue
        op, value = match.group("op"), match.group("value")
        if name.startswith("space."):
            if op not in ("=", "!="):
                raise _invalid(f"Invalid filter operator for {name}: {op}")
            if name == "space.name":
                getter: Callable[[Record], Any] = lambda record: record.space.name  # noqa: E731
            else:
                getter = lambda record: record.space.code  # noqa: E731
                value = value.lower()
            tests.append(_compare(getter, op, value))
        else:
            moment = parse_rfc3339(value, offset_required=True)
            if moment is None:
                raise _invalid(f"Invalid timestamp in filter: {value}")
            getter = (lambda record: record.start) if name == "start_time" else (lambda record: record.end)
            tests.append(_compare(getter, op, moment))
    return lambda record: all(test(record) for test in tests)


def _split_and(text: str) -> Iterator[str]:
    """Terms between ANDs outside quotes; OR and parentheses are refused."""
    parts, current, quoted = [], "", False
    tokens = re.split(r'(")', text)
    for token in tokens:
        if token == '"':
            quoted = not quoted
            current += token
        elif quoted:
            current += token
        else:
            if re.search(r"\bOR\b|[()]", token):
                raise _invalid(f"This fake serves filters joined by AND only: {text}")
            pieces = re.split(r"\bAND\b", token)
            current += pieces[0]
            for piece in pieces[1:]:
                parts.append(current)
                current = piece
    parts.append(current)
    return iter(parts)


def _compare(getter: Callable[[Record], Any], op: str, value: Any) -> Callable[[Record], bool]:
    def test(record: Record) -> bool:
        seen = getter(record)
        if seen is None:  # a conference still running has no end time to compare
            return False
        return {
            "=": seen == value,
            "!=": seen != value,
            ">": seen > value,
            ">=": seen >= value,
            "<": seen < value,
            "<=": seen <= value,
        }[op]

    return test
