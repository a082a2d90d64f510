"""The ingest use-case: one push's body in, every session stored or quarantined, a result out.

body -> decode (InvalidPush) -> validate each session -> map to entities -> merge repeats ->
write sessions -> quarantine the rejected -> PushResult. Nothing here knows HTTP.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

from pydantic import ValidationError

from sessions.decoding import decode_push
from sessions.model import FieldError, Session, field_errors
from sessions.results import PushResult, Rejection
from sessions.storage import WriteFailure
from sessions.storage.entities import EntityRuleError, TableWrite, rejection_entity, session_entity


class SessionWriter(Protocol):
    """Where sessions and quarantined sessions go (the Table Storage store, in production)."""

    def save_sessions(self, writes: Sequence[TableWrite]) -> list[WriteFailure]: ...

    def save_rejections(self, writes: Sequence[TableWrite]) -> None: ...


def ingest_push(
    body: bytes,
    store: SessionWriter,
    *,
    push_id: str,
    received_at: datetime | None = None,
) -> PushResult:
    """Take one push in full, or raise: InvalidPush (nothing taken) or StorageUnavailable.

    Valid sessions are stored even when others in the same push are rejected; every rejected
    session is quarantined with its raw JSON and reasons, once, however often it is re-sent.
    """
    items = decode_push(body)
    received = len(items)
    received_at = received_at or datetime.now(UTC)

    writes: dict[tuple[str, str], TableWrite] = {}
    indices: dict[tuple[str, str], list[int]] = {}
    rejections: list[Rejection] = []
    for index, item in enumerate(items):
        try:
            write = session_entity(Session.model_validate(item), received_at=received_at, push_id=push_id)
        except ValidationError as error:
            rejections.append(Rejection(index, tuple(field_errors(error)), item))
            continue
        except EntityRuleError as error:
            rejections.append(Rejection(index, (FieldError(error.field, error.message),), item))
            continue
        key = (write.partition_key, write.row_key)
        # The same session twice in one push is one entity; the later copy wins, as an upsert would.
        writes[key] = write
        indices.setdefault(key, []).append(index)
    # Only the entities are needed from here on: a large push should not be held twice.
    del items

    refused = store.save_sessions(list(writes.values()))
    if refused:
        items = decode_push(body)
        for failure in refused:
            key = (failure.partition_key, failure.row_key)
            reason = FieldError("(storage)", f"Table Storage refused this session: {failure.message}")
            rejections.extend(Rejection(index, (reason,), items[index]) for index in indices.pop(key))
        rejections.sort(key=lambda rejection: rejection.index)

    store.save_rejections(_quarantine_writes(rejections, received_at=received_at, push_id=push_id))
    stored = sum(len(copies) for copies in indices.values())
    return PushResult(
        push_id=push_id,
        received=received,
        stored=stored,
        duplicates=stored - len(indices),
        rejections=tuple(rejections),
    )


def _quarantine_writes(
    rejections: Sequence[Rejection], *, received_at: datetime, push_id: str
) -> list[TableWrite]:
    unique: dict[str, TableWrite] = {}
    for rejection in rejections:
        write = rejection_entity(rejection, received_at=received_at, push_id=push_id)
        unique.setdefault(write.row_key, write)
    return list(unique.values())
