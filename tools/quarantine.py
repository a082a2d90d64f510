"""The quarantine, for operators: what was rejected and why, and replaying it with today's rules.

Replay re-validates each quarantined session with today's Session model, stores the ones that
now pass exactly as the receiver stores them (same entity, same upsert), and only then removes
them from the quarantine. A crash in between leaves a session in both places; running replay
again stores it again (the same entity) and removes it. Those that still fail stay, unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from sessions.model import FieldError, Session, field_errors
from sessions.storage import SessionStore
from sessions.storage.entities import EntityRuleError, TableWrite, raw_json_of, session_entity


@dataclass(frozen=True)
class QuarantinedSession:
    """One rejected session as the quarantine keeps it."""

    id: str
    received_at: datetime | None
    push_id: str | None
    index: int | None
    charger_id: str | None
    transaction_id: int | None
    errors: tuple[FieldError, ...]
    raw_json: str | None  # None when listed without it
    raw_length: int | None
    raw_truncated: bool

    @classmethod
    def from_entity(cls, entity: dict[str, Any]) -> QuarantinedSession:
        def value_of(name: str) -> Any:
            value = entity.get(name)
            return getattr(value, "value", value)  # Int64 comes back as an EntityProperty

        received = value_of("ReceivedAt")
        return cls(
            id=str(entity["RowKey"]),
            received_at=received.astimezone(UTC) if isinstance(received, datetime) else None,
            push_id=value_of("PushId"),
            index=value_of("Index"),
            charger_id=value_of("ChargerID"),
            transaction_id=value_of("TransactionID"),
            errors=_errors(value_of("Errors")),
            raw_json=raw_json_of(entity) if "Raw" in entity else None,
            raw_length=value_of("RawLength"),
            raw_truncated=bool(value_of("RawTruncated")),
        )

    @property
    def reasons(self) -> str:
        """The errors on one line, e.g. `EndAt: must not be before StartAt`."""
        return "; ".join(f"{error.field}: {error.message}" for error in self.errors)


@dataclass(frozen=True)
class Verdict:
    """What today's rules make of a quarantined session: an entity to store, or the errors."""

    write: TableWrite | None
    errors: tuple[FieldError, ...]


class AmbiguousId(LookupError):
    """An id prefix that matches more than one quarantined session."""


@dataclass(frozen=True)
class ReplayOutcome:
    """What a replay did: stored (and released); released because a later push had already
    stored the session; still rejected (kept); ids not in the quarantine."""

    stored: tuple[QuarantinedSession, ...]
    superseded: tuple[QuarantinedSession, ...]
    still_rejected: tuple[tuple[QuarantinedSession, tuple[FieldError, ...]], ...]
    not_found: tuple[str, ...]


class Quarantine:
    """The quarantine table of a store: list, show and replay."""

    def __init__(self, store: SessionStore) -> None:
        self.store = store

    def sessions(self) -> list[QuarantinedSession]:
        """Every quarantined session (without its raw JSON), newest first."""
        listed = [QuarantinedSession.from_entity(entity) for entity in self.store.quarantined()]
        oldest = datetime.min.replace(tzinfo=UTC)
        return sorted(listed, key=lambda item: (item.received_at or oldest, item.id), reverse=True)

    def find(self, id_or_prefix: str) -> QuarantinedSession | None:
        """The session with this id or unique id prefix, raw JSON included; AmbiguousId if several."""
        found = self.store.find_quarantined(id_or_prefix)
        if len(found) > 1:
            ids = ", ".join(str(entity["RowKey"])[:16] for entity in found[:5])
            raise AmbiguousId(f"{id_or_prefix!r} matches {len(found)} quarantined sessions ({ids}...)")
        return QuarantinedSession.from_entity(found[0]) if found else None

    def replay(self, ids: Sequence[str] | None = None, *, now: datetime | None = None) -> ReplayOutcome:
        """Re-validate the named sessions (all when `ids` is None), store those that pass and
        release them from the quarantine. Raises StorageUnavailable if storage fails."""
        now = now or datetime.now(UTC)
        chosen: dict[str, QuarantinedSession] = {}
        not_found: list[str] = []
        everything = (str(entity["RowKey"]) for entity in self.store.quarantined())
        for quarantine_id in everything if ids is None else ids:
            item = self.find(quarantine_id)
            if item is None:
                not_found.append(quarantine_id)
            else:
                chosen.setdefault(item.id, item)
        stored: list[QuarantinedSession] = []
        superseded: list[QuarantinedSession] = []
        still: list[tuple[QuarantinedSession, tuple[FieldError, ...]]] = []
        for batch in _batches(list(chosen.values()), 100):
            passing: dict[tuple[str, str], list[tuple[QuarantinedSession, TableWrite]]] = {}
            for item in batch:
                verdict = judge(item, now=now)
                if verdict.write is None:
                    still.append((item, verdict.errors))
                else:
                    key = (verdict.write.partition_key, verdict.write.row_key)
                    passing.setdefault(key, []).append((item, verdict.write))
            writes: dict[tuple[str, str], TableWrite] = {}
            for key, versions in passing.items():
                # A later push already stored this session (corrected at the source, say):
                # the quarantined copy is older and must not overwrite it.
                arrived = max(item.received_at or now for item, _ in versions)
                stored_at = self.store.received_at_of(*key)
                if stored_at is not None and stored_at > arrived:
                    superseded.extend(item for item, _ in versions)
                else:
                    # Several quarantined versions of one session: the latest wins, as a re-push would.
                    writes[key] = max(versions, key=lambda version: version[0].received_at or now)[1]
            failures = self.store.save_sessions(list(writes.values()))
            refused = {(failure.partition_key, failure.row_key): failure.message for failure in failures}
            for key, versions in passing.items():
                if key in refused:
                    reason = FieldError("(storage)", f"Table Storage refused this session: {refused[key]}")
                    still.extend((item, (reason,)) for item, _ in versions)
                    continue
                for item, _ in versions:
                    self.store.release_quarantined(item.id)
                    if key in writes:
                        stored.append(item)
        return ReplayOutcome(tuple(stored), tuple(superseded), tuple(still), tuple(not_found))


def judge(item: QuarantinedSession, *, now: datetime) -> Verdict:
    """The quarantined session under today's rules: the entity the receiver would store, or why not."""
    if item.raw_truncated:
        reason = "the quarantine kept only part of this session's JSON: replay it from the raw archive"
        return Verdict(None, (FieldError("(session)", reason),))
    try:
        raw = json.loads(item.raw_json or "")
    except ValueError:
        return Verdict(None, (FieldError("(session)", "the quarantined JSON cannot be read"),))
    try:
        # The push that delivered it: PushId says which push a stored session came from.
        write = session_entity(Session.model_validate(raw), received_at=now, push_id=item.push_id or "replay")
    except ValidationError as error:
        return Verdict(None, tuple(field_errors(error)))
    except EntityRuleError as error:
        return Verdict(None, (FieldError(error.field, error.message),))
    return Verdict(write, ())


def _errors(text: Any) -> tuple[FieldError, ...]:
    if not isinstance(text, str) or not text:
        return ()
    try:
        items = json.loads(text)
    except ValueError:
        return (FieldError("(errors)", text),)
    return tuple(
        FieldError(str(item.get("field", "")), str(item.get("message", "")))
        for item in items
        if isinstance(item, dict)
    )


def _batches(items: Sequence[QuarantinedSession], size: int) -> Iterable[Sequence[QuarantinedSession]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
