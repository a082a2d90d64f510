"""What became of a push: the result the ingest use-case hands to the HTTP layer and the log."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from sessions.decoding import PushItem, odd_identifiers
from sessions.model import FieldError

# How much of a rejected session's identifiers the answer and the quarantine repeat.
_MAX_ID_TEXT = 256
# A TransactionID is repeated only when it fits the quarantine's Int64 property.
_INT64 = range(-(2**63), 2**63)
# The answer lists at most this many rejected sessions; the total and the quarantine have all.
MAX_LISTED_REJECTIONS = 100


@dataclass(frozen=True)
class Rejection:
    """One session of a push that was not taken, with everything needed to find and fix it."""

    index: int
    errors: tuple[FieldError, ...]
    # The session's JSON exactly as the sender wrote it in the push.
    raw_json: str = field(repr=False)
    charger_id: str | None
    transaction_id: int | None
    # The same bad session always gets the same id, so that a re-sent batch does not pile up.
    quarantine_id: str

    @classmethod
    def of(cls, item: PushItem, raw_json: str, errors: tuple[FieldError, ...]) -> Rejection:
        """The rejection of a push item (its value, when it has one, names the session)."""
        if item.value is None:
            charger_id, transaction_id = odd_identifiers(raw_json)
            digest_of = raw_json.strip()
        else:
            charger_id = _text_id(item.value.get("ChargerID"))
            transaction_id = _int64(item.value.get("TransactionID"))
            digest_of = canonical_json(item.value)
        return cls(
            index=item.index,
            errors=errors,
            raw_json=raw_json,
            charger_id=charger_id[:_MAX_ID_TEXT] if charger_id else charger_id,
            transaction_id=transaction_id,
            quarantine_id=hashlib.sha256(digest_of.encode("utf-8")).hexdigest(),
        )

    def to_json(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"index": self.index}
        if self.charger_id is not None:
            answer["ChargerID"] = self.charger_id
        if self.transaction_id is not None:
            answer["TransactionID"] = self.transaction_id
        answer["errors"] = [{"field": e.field, "message": e.message} for e in self.errors]
        answer["quarantine_id"] = self.quarantine_id
        return answer


@dataclass
class PushResult:
    """A push taken in full: every session in it durably stored, or durably quarantined.

    received = stored + superseded + rejected. Of the stored: `updated` changed a session an
    earlier push had stored, `unchanged` were stored already with the same values, `duplicates`
    repeated an earlier session of the same push (the later copy wins). `superseded` were not
    stored because a newer copy of the same session is (a replay of an older push, say).
    """

    push_id: str
    received: int = 0
    stored: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0
    superseded: int = 0
    rejected: int = 0
    # The first MAX_LISTED_REJECTIONS rejected sessions, in push order (the answer lists these).
    rejections: list[Rejection] = field(default_factory=list)

    def add_rejection(self, rejection: Rejection) -> None:
        self.rejected += 1
        if len(self.rejections) < MAX_LISTED_REJECTIONS:
            self.rejections.append(rejection)

    @property
    def counts(self) -> dict[str, int]:
        """The counts, by name (the answer, the log line and the push record share them)."""
        return {
            "received": self.received,
            "stored": self.stored,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "duplicates": self.duplicates,
            "superseded": self.superseded,
            "rejected": self.rejected,
        }

    def to_json(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"push_id": self.push_id, **self.counts}
        answer["rejected_sessions"] = [rejection.to_json() for rejection in sorted_by_index(self.rejections)]
        if self.rejected > len(self.rejections):
            answer["rejected_sessions_not_listed"] = self.rejected - len(self.rejections)
            answer["rejected_sessions_where"] = (
                f"every rejected session of this push is in the quarantine: "
                f"python -m sessions rejected list --push {self.push_id}"
            )
        return answer


def sorted_by_index(rejections: list[Rejection]) -> list[Rejection]:
    return sorted(rejections, key=lambda rejection: rejection.index)


def canonical_json(value: Any) -> str:
    """One spelling per JSON value (sorted keys, no spaces), for hashing and comparing."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def compact_json(value: Any) -> str:
    """JSON as the sender ordered it, without insignificant white space."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _text_id(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int64(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value in _INT64:
        return value
    return None
