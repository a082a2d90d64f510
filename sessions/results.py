"""What became of a push: the result the ingest use-case hands to the HTTP layer."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from sessions.model import FieldError

# How much of a rejected session's identifiers the answer and the quarantine repeat.
_MAX_ID_TEXT = 256
# A TransactionID is repeated only when it fits the quarantine's Int64 property.
_INT64 = range(-(2**63), 2**63)


@dataclass(frozen=True)
class Rejection:
    """One session of a push that failed validation, with everything needed to find and fix it."""

    index: int
    errors: tuple[FieldError, ...]
    raw: dict[str, Any] = field(repr=False)

    @property
    def charger_id(self) -> str | None:
        value = self.raw.get("ChargerID")
        return value[:_MAX_ID_TEXT] if isinstance(value, str) else None

    @property
    def transaction_id(self) -> int | None:
        value = self.raw.get("TransactionID")
        if isinstance(value, int) and not isinstance(value, bool) and value in _INT64:
            return value
        return None

    @cached_property
    def quarantine_id(self) -> str:
        """The same bad session always gets the same id, so a re-sent batch does not pile up."""
        return hashlib.sha256(canonical_json(self.raw).encode("utf-8")).hexdigest()

    def to_json(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"index": self.index}
        if self.charger_id is not None:
            answer["ChargerID"] = self.charger_id
        if self.transaction_id is not None:
            answer["TransactionID"] = self.transaction_id
        answer["errors"] = [{"field": e.field, "message": e.message} for e in self.errors]
        answer["quarantine_id"] = self.quarantine_id
        return answer


@dataclass(frozen=True)
class PushResult:
    """A push taken in full: every session in it durably stored or durably quarantined."""

    push_id: str
    received: int
    stored: int
    duplicates: int
    rejections: tuple[Rejection, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "push_id": self.push_id,
            "received": self.received,
            "stored": self.stored,
            "rejected": len(self.rejections),
            "duplicates": self.duplicates,
            "rejected_sessions": [rejection.to_json() for rejection in self.rejections],
        }


def canonical_json(value: Any) -> str:
    """One spelling per JSON value (sorted keys, no spaces), for hashing and comparing."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def compact_json(value: Any) -> str:
    """JSON as the sender ordered it, without insignificant white space."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
