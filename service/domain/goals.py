"""What a pair wrote down after their first session: the goals and the homework they
agreed, quoted back to both in later emails."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime

MAX_CHARS = 2000  # each of goals and homework: a few paragraphs, not a document


@dataclass(frozen=True, kw_only=True)
class Goals:
    pair_id: str
    goals: str
    homework: str
    written_by: str  # the email of whoever saved them last
    written_at: datetime


def tidy(text: str) -> str:
    """What a person typed, kept as they wrote it but for control characters (line breaks
    stay), surrounding blank space and anything past MAX_CHARS."""
    kept = "".join(c for c in text.replace("\r\n", "\n") if c in "\n\t" or unicodedata.category(c)[0] != "C")
    return kept.strip()[:MAX_CHARS]
