"""The ingest use-case: one push's body in, every session stored or quarantined, a result out.

body -> items (one at a time) -> validate each -> entities -> the stored copies of the same
sessions -> decide (new, update, unchanged, older) -> write, each only if no concurrent push
changed it meanwhile -> quarantine the rejected -> PushResult. Nothing here knows HTTP.

A session is (ChargerID, TransactionID), whatever month its StartAt falls in: a push never makes a
second record of a session stored before. The latest copy the sender sent wins: a copy that
arrived earlier than the stored one (a replay of an old push) never overwrites it.

Work is bounded per push: items are read and written a chunk at a time (memory does not grow with
the number of sessions); the quarantine keeps at most QUARANTINE_PER_PUSH rejected sessions of a
push one by one, and one entry pointing to the archived body for the rest; the result lists at
most MAX_LISTED_REJECTIONS of them and MAX_LOGGED_SESSIONS updates.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Any, Protocol

from pydantic import ValidationError

from sessions import deadline
from sessions.decoding import PushBody, PushItem
from sessions.logs import MAX_LOGGED_SESSIONS
from sessions.model import FieldError, field_errors, validate_session
from sessions.results import PushResult, Rejection
from sessions.settings import SessionLimits
from sessions.storage.connection import StorageUnavailable
from sessions.storage.entities import (
    EntityRuleError,
    Identity,
    TableWrite,
    changed_fields,
    moved_pointer,
    overflow_entity,
    rejection_entity,
    session_entity,
    start_month,
)
from sessions.storage.tables import SessionsWritten, SessionWrite, StoredSession

# Items validated and written together: enough to fill transactions, little enough to hold.
CHUNK_SESSIONS = 1000
# Rejected sessions the quarantine keeps one by one per push; beyond, one entry for the rest.
QUARANTINE_PER_PUSH = 1000
# How often a write is decided again when a concurrent push changed the same session first.
_MAX_ROUNDS = 8


class SessionStorage(Protocol):
    """Where sessions and quarantined sessions go (Table Storage in production, a fake in tests)."""

    def find(self, identities: Sequence[Identity]) -> dict[Identity, StoredSession]: ...

    def write_sessions(self, writes: Sequence[SessionWrite]) -> SessionsWritten: ...

    def quarantine(self, writes: Sequence[TableWrite], received_at: datetime) -> int: ...


@dataclass(frozen=True)
class SessionUpdate:
    """A stored session that a push changed: which, and its fields' old and new values."""

    charger_id: str
    transaction_id: int
    changes: dict[str, list[Any]]


@dataclass
class IngestResult(PushResult):
    """A PushResult, and what the log tells of it besides: updates, and the quarantine overflow."""

    updates: list[SessionUpdate] | None = None
    quarantine_overflow: int = 0


@dataclass(frozen=True)
class _Candidate:
    """A valid session of the push, as the entity it would be stored as."""

    item: PushItem
    write: TableWrite

    @property
    def start_month(self) -> str:
        return str(self.write.entity["PartitionKey"])


class _Ingest:
    """The state of one push going through the ingest."""

    def __init__(
        self,
        push: PushBody,
        store: SessionStorage,
        *,
        push_id: str,
        received_at: datetime,
        limits: SessionLimits,
        raw_archive: str | None,
    ) -> None:
        self.push, self.store = push, store
        self.push_id, self.received_at, self.limits = push_id, received_at, limits
        self.raw_archive = raw_archive
        self.result = IngestResult(push_id, updates=[])
        self.seen: set[Identity] = set()
        self.quarantined = 0

    def run(self) -> IngestResult:
        for chunk in _chunks(iter(self.push), CHUNK_SESSIONS):
            # Between chunks, the deadline is checked: a push not done in time is finished later.
            deadline.check()
            self._take(chunk)
        overflow = self.result.quarantine_overflow
        if overflow:
            entry = overflow_entity(
                push_id=self.push_id,
                received_at=self.received_at,
                count=overflow,
                kept=QUARANTINE_PER_PUSH,
                raw_archive=self.raw_archive,
            )
            self.store.quarantine([entry], self.received_at)
        return self.result

    def _take(self, chunk: Sequence[PushItem]) -> None:
        candidates: dict[Identity, _Candidate] = {}
        rejections: list[Rejection] = []
        for item in chunk:
            self.result.received += 1
            judged = self._judge(item)
            if isinstance(judged, Rejection):
                rejections.append(judged)
                continue
            identity = (
                str(judged.write.entity["ChargerID"]),
                int(judged.write.entity["TransactionID"].value),
            )
            if identity in candidates or identity in self.seen:
                # The same session again in the same push: one record, the later copy wins.
                self.result.duplicates += 1
                self.result.stored += 1
            candidates[identity] = judged
        refused = self._store(candidates)
        for identity, message in refused.items():
            candidate = candidates[identity]
            reason = FieldError("(storage)", f"Table Storage refused this session: {message}")
            rejections.append(Rejection.of(candidate.item, self.push.raw(candidate.item), (reason,)))
        self.seen.update(candidates)
        self._quarantine(sorted(rejections, key=lambda rejection: rejection.index))

    def _judge(self, item: PushItem) -> _Candidate | Rejection:
        if item.value is None:
            return Rejection.of(
                item, self.push.raw(item), (FieldError("(session)", item.odd or "unreadable"),)
            )
        try:
            session = validate_session(item.value, limits=self.limits, received_at=self.received_at)
            write = session_entity(session, received_at=self.received_at, push_id=self.push_id)
        except ValidationError as error:
            return Rejection.of(item, self.push.raw(item), tuple(field_errors(error)))
        except EntityRuleError as error:
            return Rejection.of(item, self.push.raw(item), (FieldError(error.field, error.message),))
        return _Candidate(item, write)

    def _store(self, candidates: Mapping[Identity, _Candidate]) -> dict[Identity, str]:
        """Write the chunk's sessions; return the ones the service refused, with its reasons."""
        stored = store_sessions(self.store, {identity: c.write for identity, c in candidates.items()})
        for identity, verdict in stored.verdicts.items():
            self._count(identity, verdict, candidates[identity])
        return stored.refused

    def _count(self, identity: Identity, verdict: Verdict, candidate: _Candidate) -> None:
        result = self.result
        if identity in self.seen:
            return  # a repeat of a session an earlier chunk of this push wrote: counted as a duplicate
        if verdict.kind == "superseded":
            result.superseded += 1
            return
        result.stored += 1
        if verdict.kind == "unchanged":
            result.unchanged += 1
        elif verdict.kind == "updated" and verdict.previous is not None:
            result.updated += 1
            if result.updates is not None and len(result.updates) < MAX_LOGGED_SESSIONS:
                changes = changed_fields(verdict.previous, candidate.write.entity)
                result.updates.append(SessionUpdate(identity[0], identity[1], changes))

    def _quarantine(self, rejections: Sequence[Rejection]) -> None:
        room = max(QUARANTINE_PER_PUSH - self.quarantined, 0)
        kept = rejections[:room]
        self.result.quarantine_overflow += len(rejections) - len(kept)
        for rejection in rejections:
            self.result.add_rejection(rejection)
        self.store.quarantine(
            [
                rejection_entity(rejection, received_at=self.received_at, push_id=self.push_id)
                for rejection in kept
            ],
            self.received_at,
        )
        self.quarantined += len(kept)


def ingest_push(
    push: PushBody | bytes,
    store: SessionStorage,
    *,
    push_id: str,
    received_at: datetime | None = None,
    limits: SessionLimits | None = None,
    raw_archive: str | None = None,
) -> IngestResult:
    """Take one push in full, or raise: InvalidPush (nothing taken), StorageUnavailable (some of it
    may be written: a retry is safe), or DeadlineExceeded (between chunks; the same).

    Valid sessions are stored even when others in the same push are rejected; every rejected
    session is quarantined (one by one up to QUARANTINE_PER_PUSH), once, however often it is re-sent.
    """
    body = push if isinstance(push, PushBody) else PushBody(push)
    return _Ingest(
        body,
        store,
        push_id=push_id,
        received_at=received_at or datetime.now(UTC),
        limits=limits or SessionLimits(),
        raw_archive=raw_archive,
    ).run()


@dataclass(frozen=True)
class Verdict:
    """What storing did with a valid session: new, updated, unchanged or superseded (by a newer
    stored copy), and the copy that was stored before (for an update's old values)."""

    kind: str
    previous: dict[str, Any] | None = None


@dataclass(frozen=True)
class Stored:
    """The verdict of each session written, and those the service refused (with its reason)."""

    verdicts: dict[Identity, Verdict]
    refused: dict[Identity, str]


def store_sessions(store: SessionStorage, writes: Mapping[Identity, TableWrite]) -> Stored:
    """Store valid sessions by identity, as the receiver does for every push and the tools for
    every replay: read what is stored, decide, write each only if no concurrent push changed it
    since; a conflict is read and decided again (a few times, then StorageUnavailable)."""
    pending = dict(writes)
    verdicts: dict[Identity, Verdict] = {}
    refused: dict[Identity, str] = {}
    for _ in range(_MAX_ROUNDS):
        found = store.find(list(pending))
        planned: dict[Identity, Verdict] = {}
        session_writes: list[SessionWrite] = []
        for identity, write in pending.items():
            stored = found.get(identity)
            kind, session_write = decide(identity, write, stored)
            planned[identity] = Verdict(kind, stored.entity if stored is not None else None)
            if session_write is not None:
                session_writes.append(session_write)
        written = store.write_sessions(session_writes)
        refused.update(written.refused)
        for identity, verdict in planned.items():
            if identity not in written.conflicts and identity not in written.refused:
                verdicts[identity] = verdict
        pending = {identity: pending[identity] for identity in written.conflicts}
        if not pending:
            return Stored(verdicts, refused)
    raise StorageUnavailable("sessions kept changing under concurrent pushes of the same sessions")


def decide(
    identity: Identity, write: TableWrite, stored: StoredSession | None
) -> tuple[str, SessionWrite | None]:
    """What to do with a valid session given what is stored of it: a verdict (new, updated,
    unchanged, superseded) and the write it needs (None when nothing is written).

    The session is written at its home partition, the month of StartAt when it was first stored.
    A copy with the same values as the stored one writes nothing; a copy that arrived before the
    stored one (ReceivedAt, then push id, decide) is superseded and writes nothing.
    """
    if stored is None:
        return "new", _at_home(identity, write, start_month(write.entity), etag=None, claim=True)
    if stored.entity is None:  # its index entry was written, its record not (yet)
        return "new", _at_home(identity, write, stored.home, etag=None)
    if not changed_fields(stored.entity, write.entity):
        return "unchanged", None
    if _version(stored.entity) > _version(write.entity):
        return "superseded", None
    old_month = start_month(stored.entity)
    stale = None
    if old_month not in (stored.home, start_month(write.entity)):
        old_pointer = moved_pointer(old_month, stored.home, identity)
        stale = (str(old_pointer["PartitionKey"]), str(old_pointer["RowKey"]))
    return "updated", _at_home(identity, write, stored.home, etag=stored.etag, stale_pointer=stale)


def _at_home(
    identity: Identity,
    write: TableWrite,
    home: str,
    *,
    etag: str | None,
    claim: bool = False,
    stale_pointer: tuple[str, str] | None = None,
) -> SessionWrite:
    """The write of a session at its home, with a pointer under its StartAt month if that differs."""
    month = start_month(write.entity)
    entity = write.entity if month == home else {**write.entity, "PartitionKey": home}
    return SessionWrite(
        identity,
        TableWrite(entity, write.payload_bytes),
        etag,
        claim_home=claim,
        pointer=moved_pointer(month, home, identity) if month != home else None,
        stale_pointer=stale_pointer,
    )


def _version(entity: Mapping[str, Any]) -> tuple[datetime, str]:
    """When a stored copy arrived, then which push brought it (the tie-break)."""
    return entity["ReceivedAt"], str(entity.get("PushId") or "")


def _chunks(items: Iterator[PushItem], size: int) -> Iterable[list[PushItem]]:
    while chunk := list(islice(items, size)):
        yield chunk
