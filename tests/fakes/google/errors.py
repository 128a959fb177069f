"""Google's JSON error shape, as the API front ends return it."""

from __future__ import annotations

import json
from typing import Any

# The canonical status that Google's front end puts next to the HTTP code.
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    412: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
}

REASON_DOMAINS = {
    "rateLimitExceeded": "usageLimits",
    "userRateLimitExceeded": "usageLimits",
    "quotaExceeded": "usageLimits",
    "dailyLimitExceeded": "usageLimits",
    "timeRangeEmpty": "calendar",
    "forbiddenForServiceAccounts": "calendar",
    "requiredAccessLevel": "calendar",
    "accessNotConfigured": "usageLimits",
}

DEFAULT_REASONS = {
    400: "badRequest",
    401: "authError",
    403: "forbidden",
    404: "notFound",
    409: "conflict",
    410: "deleted",
    412: "conditionNotMet",
    429: "rateLimitExceeded",
    500: "backendError",
    501: "notImplemented",
    503: "backendError",
}

DEFAULT_MESSAGES = {
    "badRequest": "Bad Request",
    "authError": "Invalid Credentials",
    "forbidden": "Forbidden",
    "notFound": "Not Found",
    "conflict": "Conflict",
    "duplicate": "The requested identifier already exists.",
    "deleted": "Resource has been deleted",
    "fullSyncRequired": "Sync token is no longer valid, a full sync is required.",
    "conditionNotMet": "Precondition Failed",
    "rateLimitExceeded": "Rate Limit Exceeded",
    "userRateLimitExceeded": "User Rate Limit Exceeded",
    "quotaExceeded": "Calendar usage limits exceeded.",
    "backendError": "Backend Error",
    "notImplemented": "Not Implemented",
    "insufficientPermissions": "Request had insufficient authentication scopes.",
    "timeRangeEmpty": "The specified time range is empty.",
    "accessNotConfigured": "The API has not been used in project 123456789012 before or it is disabled."
    " Enable it by visiting the Google Cloud console, then retry.",
    "failedPrecondition": "Precondition check failed.",
}


class ApiError(Exception):
    """An error response. Raised anywhere below the HTTP layer; rendered by it."""

    def __init__(
        self,
        code: int,
        reason: str | None = None,
        message: str | None = None,
        *,
        domain: str | None = None,
        location: str | None = None,
        location_type: str | None = None,
        headers: dict[str, str] | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        self.code = code
        self.reason = reason or DEFAULT_REASONS.get(code, "unknown")
        self.message = message or DEFAULT_MESSAGES.get(self.reason) or f"Error {code}"
        self.domain = domain or REASON_DOMAINS.get(self.reason, "global")
        self.location = location
        self.location_type = location_type
        self.headers = dict(headers or {})
        self.extra_errors = errors
        super().__init__(f"{code} {self.reason}: {self.message}")

    def item(self) -> dict[str, Any]:
        item: dict[str, Any] = {"domain": self.domain, "reason": self.reason, "message": self.message}
        if self.location_type:
            item["locationType"] = self.location_type
        if self.location:
            item["location"] = self.location
        return item

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "errors": self.extra_errors or [self.item()],
        }
        status = STATUS_NAMES.get(self.code)
        if status:
            error["status"] = status
        return {"error": error}

    def json_bytes(self) -> bytes:
        return json.dumps(self.body(), indent=2).encode()


def invalid(message: str, *, location: str | None = None, location_type: str = "parameter") -> ApiError:
    return ApiError(400, "invalid", message, location=location, location_type=location_type if location else None)


def required(message: str, *, location: str | None = None, location_type: str = "parameter") -> ApiError:
    return ApiError(400, "required", message, location=location, location_type=location_type if location else None)


def not_found(message: str = "Not Found") -> ApiError:
    return ApiError(404, "notFound", message)
