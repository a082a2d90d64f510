"""The quarantine, for operators: what was rejected and why, and replaying it with today's rules.

Replay judges each quarantined session by today's rules and settings, as of when it arrived, and
stores the ones that now pass exactly as the receiver stores a push (the same identity rules:
a copy older than the stored one never overwrites it), and only then releases them from the
quarantine. A crash in between leaves a session in both places; running replay again finds it
stored already (unchanged) and releases it. Those that still fail stay, with their new reasons.

An overflow entry (the rejected sessions of a push beyond what the quarantine keeps one by one)
is replayed by re-ingesting its archived push, which is idempotent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from sessions.ingest import ingest_push, store_sessions
from sessions.model import FieldError, field_errors, validate_session
from sessions.settings import SessionLimits
from sessions.storage import RawArchive, SessionStore
from sessions.storage.entities import EntityRuleError, Identity, TableWrite, raw_json_of, session_entity

# Sessions replayed together (read, judged, stored, released): progress is told per batch.
REPLAY_BATCH = 100


@dataclass(frozen=True)
class QuarantinedSession:
    """One rejected session as the quarantine keeps it (or a push's overflow entry)."""

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
    # For an overflow entry: how many sessions it stands for, and the archived push holding them.
    overflow: int | None = None
    raw_archive: str | None = None

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
            overflow=value_of("Overflow"),
            raw_archive=value_of("RawArchive"),
        )

    @property
    def reasons(self) -> str:
        """The errors on one line, e.g. `EndAt: must not be before StartAt`."""
        return "; ".join(f"{error.field}: {error.message}" for error in self.errors)


@dataclass(frozen=True)
class Judgement:
    """What today's rules make of a quarantined session: an entity to store, or the errors."""

    write: TableWrite | None
    errors: tuple[FieldError, ...]


class AmbiguousId(LookupError):
    """An id prefix that matches more than one quarantined session."""


@dataclass
class ReplayOutcome:
    """What a replay did: stored (and released); released because a newer copy of the session was
    stored already; still rejected (kept, with today's reasons); ids not in the quarantine."""

    stored: list[QuarantinedSession] = field(default_factory=list)
    superseded: list[QuarantinedSession] = field(default_factory=list)
    still_rejected: list[tuple[QuarantinedSession, tuple[FieldError, ...]]] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)

    @property
    def replayed(self) -> int:
        return len(self.stored) + len(self.superseded) + len(self.still_rejected)


class Quarantine:
    """The quarantine table of a store: list, show and replay."""

    def __init__(self, store: SessionStore, archive: RawArchive, limits: SessionLimits) -> None:
        self.store, self.archive, self.limits = store, archive, limits

    def total(self) -> int | None:
        """How many sessions the quarantine holds (None when it has not counted them yet)."""
        return self.store.quarantined_count()

    def newest(self, limit: int | None = None) -> Iterator[QuarantinedSession]:
        """Quarantined sessions without their raw JSON, newest first; only as many are read as taken."""
        return (QuarantinedSession.from_entity(entity) for entity in self.store.newest_quarantined(limit))

    def of_push(self, push_id: str) -> list[QuarantinedSession]:
        """The quarantined sessions of one push, in their order in the push."""
        found = [QuarantinedSession.from_entity(entity) for entity in self.store.quarantined_of_push(push_id)]
        return sorted(found, key=lambda item: (item.index is None, item.index or 0))

    def find(self, id_or_prefix: str) -> QuarantinedSession | None:
        """The session with this id or unique id prefix, raw JSON included; AmbiguousId if several."""
        found = self.store.find_quarantined(id_or_prefix)
        if len(found) > 1:
            ids = ", ".join(str(entity["RowKey"])[:16] for entity in found[:5])
            raise AmbiguousId(f"{id_or_prefix!r} matches {len(found)} quarantined sessions ({ids}...)")
        return QuarantinedSession.from_entity(found[0]) if found else None

    def replay(
        self,
        ids: Sequence[str] | None = None,
        *,
        on_batch: Callable[[ReplayOutcome], None] | None = None,
    ) -> ReplayOutcome:
        """Judge the named sessions (all when `ids` is None) by today's rules, store those that
        pass, release them; `on_batch` hears the running outcome after each batch. Raises
        StorageUnavailable if storage fails (what is done stays done: run it again)."""
        outcome = ReplayOutcome()
        for batch in _batches(self._chosen(ids, outcome), REPLAY_BATCH):
            sessions = [item for item in batch if item.overflow is None]
            self._replay_sessions(sessions, outcome)
            for item in batch:
                if item.overflow is not None:
                    self._replay_overflow(item, outcome)
            if on_batch is not None:
                on_batch(outcome)
        return outcome

    def _chosen(self, ids: Sequence[str] | None, outcome: ReplayOutcome) -> Iterator[QuarantinedSession]:
        if ids is None:
            # Read page by page as it goes: never the whole quarantine in memory.
            yield from (
                QuarantinedSession.from_entity(entity) for entity in self.store.all_quarantined(with_raw=True)
            )
            return
        seen: set[str] = set()
        for quarantine_id in ids:
            item = self.find(quarantine_id)
            if item is None:
                outcome.not_found.append(quarantine_id)
            elif item.id not in seen:
                seen.add(item.id)
                yield item

    def _replay_sessions(self, items: Sequence[QuarantinedSession], outcome: ReplayOutcome) -> None:
        passing: dict[Identity, list[tuple[QuarantinedSession, TableWrite]]] = {}
        for item in items:
            judged = judge(item, self.limits)
            if judged.write is None:
                outcome.still_rejected.append((item, judged.errors))
                continue
            identity = (
                str(judged.write.entity["ChargerID"]),
                int(judged.write.entity["TransactionID"].value),
            )
            passing.setdefault(identity, []).append((item, judged.write))
        # Several quarantined copies of one session: the latest arrival is the one to store.
        latest = {identity: max(copies, key=_arrival)[1] for identity, copies in passing.items()}
        stored = store_sessions(self.store, latest)
        for identity, copies in passing.items():
            if identity in stored.refused:
                reason = FieldError(
                    "(storage)", f"Table Storage refused this session: {stored.refused[identity]}"
                )
                outcome.still_rejected.extend((item, (reason,)) for item, _ in copies)
                continue
            superseded = stored.verdicts[identity].kind == "superseded"
            for item, write in copies:
                self.store.release_quarantined(item.id, item.received_at)
                newer_exists = superseded or write is not latest[identity]
                (outcome.superseded if newer_exists else outcome.stored).append(item)

    def _replay_overflow(self, item: QuarantinedSession, outcome: ReplayOutcome) -> None:
        """Re-ingest the archived push an overflow entry stands for (idempotent)."""
        if not item.raw_archive or item.push_id is None or item.received_at is None:
            reason = FieldError("(push)", "this overflow entry names no archived push to replay")
            outcome.still_rejected.append((item, (reason,)))
            return
        result = ingest_push(
            self.archive.body_at(item.raw_archive),
            self.store,
            push_id=item.push_id,
            received_at=item.received_at,
            limits=self.limits,
            raw_archive=item.raw_archive,
        )
        if result.quarantine_overflow:
            reason = FieldError(
                "(push)", f"{result.quarantine_overflow} sessions of the push are still rejected"
            )
            outcome.still_rejected.append((item, (reason,)))
            return
        self.store.release_quarantined(item.id, item.received_at)
        outcome.stored.append(item)


def judge(item: QuarantinedSession, limits: SessionLimits) -> Judgement:
    """The quarantined session under today's rules, as of when it arrived: the entity the receiver
    would store, or why not."""
    if item.overflow is not None:
        return Judgement(None, item.errors)
    if item.raw_truncated:
        reason = "the quarantine kept only part of this session's JSON: replay it from the raw archive"
        return Judgement(None, (FieldError("(session)", reason),))
    try:
        raw = json.loads(item.raw_json or "")
    except (ValueError, RecursionError):
        return Judgement(None, (FieldError("(session)", "the quarantined JSON cannot be read"),))
    if not isinstance(raw, dict):
        return Judgement(None, (FieldError("(session)", "the quarantined JSON is not a session object"),))
    received_at = item.received_at or datetime.now(UTC)
    try:
        session = validate_session(raw, limits=limits, received_at=received_at)
        # Stored as of its arrival, by the push that delivered it: a newer copy is never overwritten.
        write = session_entity(session, received_at=received_at, push_id=item.push_id or "replay")
    except ValidationError as error:
        return Judgement(None, tuple(field_errors(error)))
    except EntityRuleError as error:
        return Judgement(None, (FieldError(error.field, error.message),))
    return Judgement(write, ())


def _arrival(copy: tuple[QuarantinedSession, TableWrite]) -> datetime:
    return copy[0].received_at or datetime.min.replace(tzinfo=UTC)


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


def _batches(items: Iterable[QuarantinedSession], size: int) -> Iterator[list[QuarantinedSession]]:
    batch: list[QuarantinedSession] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
