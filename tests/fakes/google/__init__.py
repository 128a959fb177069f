"""A fake of Google Calendar v3, Gmail v1 and Google's OAuth token endpoint, served over
loopback HTTP so that the real googleapiclient and google-auth talk to it as to Google.

    from tests.fakes.google import FakeGoogle, Fault

Run it by hand with `python -m tests.fakes.google --port 8765 --key-file fake-key.json`.
"""

from .calendar_api import Invitation
from .discovery import Discovery, MethodSpec, Validator
from .errors import ApiError
from .faults import ApiCall, Chaos, Fault
from .server import FakeGoogle, RequestRecord

__all__ = [
    "ApiCall",
    "ApiError",
    "Chaos",
    "Discovery",
    "FakeGoogle",
    "Fault",
    "Invitation",
    "MethodSpec",
    "RequestRecord",
    "Validator",
]
