"""In-memory stand-ins for the storage, with the semantics the receiver relies on: an index entry
or a record created only if absent, updated only if unchanged since read (by etag), a quarantine
that keeps the first copy. Every entity is serialised by the Tables SDK's own serialiser, so that
what it would refuse (an Int64 overflow, say) fails here too.

For the unit tier (the ingest's logic, fast and without Azurite) and the in-process fuzzing.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from azure.data.tables import TableEntity
from azure.data.tables._serialize import _add_entity_properties

from sessions.receiver import Receiver
from sessions.settings import Settings
from sessions.storage import ArchivedPush, MessageQueue, RawArchive, SessionStore
from sessions.storage.entities import Identity, TableWrite, identity_of, index_entity
from sessions.storage.pushes import PushRecord, PushRecords
from sessions.storage.tables import SessionsWritten, SessionWrite, StoredSession

_etags = itertools.count(1)
Key = tuple[str, str]


class MemoryStore:
    """The sessions, their index and the quarantine, in dictionaries."""

    def __init__(self) -> None:
        self.sessions: dict[Key, TableEntity] = {}
        self.index: dict[Key, dict[str, Any]] = {}
        self.quarantined: dict[str, dict[str, Any]] = {}
        # Called between a push's read and its write: a test's chance to act as a concurrent push.
        self.before_write: Callable[[], None] | None = None
        self.writes = 0

    # --- what the ingest uses ------------------------------------------------------------------

    def find(self, identities: Sequence[Identity]) -> dict[Identity, StoredSession]:
        found: dict[Identity, StoredSession] = {}
        for identity in identities:
            entry = index_entity(identity, "")
            known = self.index.get((entry["PartitionKey"], entry["RowKey"]))
            if known is None:
                continue
            home = str(known["Home"])
            record = self.sessions.get((home, _row_key(identity)))
            found[identity] = StoredSession(home, record)
        return found

    def write_sessions(self, writes: Sequence[SessionWrite]) -> SessionsWritten:
        if self.before_write is not None:
            hook, self.before_write = self.before_write, None
            hook()
        conflicts: set[Identity] = set()
        for write in writes:
            if write.claim_home:
                entry = index_entity(write.identity, write.write.partition_key)
                key = (entry["PartitionKey"], entry["RowKey"])
                if key in self.index:
                    conflicts.add(write.identity)
                    continue
                self.index[key] = entry
            if write.pointer is not None:
                self.index[(write.pointer["PartitionKey"], write.pointer["RowKey"])] = write.pointer
            key = (write.write.partition_key, write.write.row_key)
            current = self.sessions.get(key)
            if (write.etag is None) != (current is None) or (
                current is not None and current.metadata["etag"] != write.etag
            ):
                conflicts.add(write.identity)
                continue
            self.sessions[key] = _stored(write.write.entity)
            self.writes += 1
            if write.stale_pointer is not None:
                self.index.pop(write.stale_pointer, None)
        return SessionsWritten(frozenset(conflicts), {})

    def quarantine(self, writes: Sequence[TableWrite], received_at: datetime) -> int:
        new = 0
        for write in writes:
            _add_entity_properties(dict(write.entity))
            if write.row_key not in self.quarantined:
                self.quarantined[write.row_key] = dict(write.entity)
                new += 1
        return new

    # --- what the receiver uses besides ----------------------------------------------------------

    def check_health(self) -> None:
        return None

    def close(self) -> None:
        return None

    # --- for the tests -------------------------------------------------------------------------

    def put(self, entity: dict[str, Any]) -> None:
        """Store an entity as a push of another process would have (record and index entry)."""
        self.sessions[(str(entity["PartitionKey"]), str(entity["RowKey"]))] = _stored(entity)
        entry = index_entity(identity_of(entity), str(entity["PartitionKey"]))
        self.index[(entry["PartitionKey"], entry["RowKey"])] = entry

    def records(self) -> list[TableEntity]:
        return list(self.sessions.values())


class MemoryArchive:
    """Push bodies by name."""

    def __init__(self) -> None:
        self.bodies: dict[str, bytes] = {}

    def store_body(
        self, body: bytes, *, push_id: str, received_at: datetime, content_type: str | None
    ) -> ArchivedPush:
        name = f"{received_at:%Y/%m/%d/%H%M%S.%f}Z-{push_id}.json.gz"
        self.bodies[name] = body
        return ArchivedPush(name, push_id, received_at, {"size": str(len(body))})

    def body_at(self, name: str) -> bytes:
        return self.bodies[name]

    def check_health(self) -> None:
        return None

    def close(self) -> None:
        return None


class MemoryRecords:
    """Push records by push id."""

    def __init__(self) -> None:
        self.records: dict[str, PushRecord] = {}

    def save(self, record: PushRecord) -> None:
        self.records[record.push_id] = record

    def find(self, push_id: str, received_at: datetime) -> PushRecord | None:
        return self.records.get(push_id)

    def check_health(self) -> None:
        return None

    def close(self) -> None:
        return None


class MemoryQueue:
    """Messages sent, in order."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def ensure(self) -> None:
        return None

    def send(self, text: str) -> str:
        self.sent.append(text)
        return str(len(self.sent))

    def check_health(self) -> None:
        return None

    def close(self) -> None:
        return None


@dataclass(frozen=True)
class MemoryReceiver:
    """A receiver whose storage is all in memory, and that storage, to look at."""

    receiver: Receiver
    store: MemoryStore
    archive: MemoryArchive
    records: MemoryRecords
    queue: MemoryQueue


def memory_receiver(settings: Settings) -> MemoryReceiver:
    store, archive, records, queue = MemoryStore(), MemoryArchive(), MemoryRecords(), MemoryQueue()
    receiver = Receiver(
        settings,
        cast(SessionStore, store),
        cast(RawArchive, archive),
        cast(PushRecords, records),
        cast(MessageQueue, queue),
    )
    return MemoryReceiver(receiver, store, archive, records, queue)


def _row_key(identity: Identity) -> str:
    from sessions.storage.entities import session_row_key

    return session_row_key(*identity)


def _stored(entity: dict[str, Any]) -> TableEntity:
    """The entity as the service would give it back: serialisable, with a fresh etag."""
    _add_entity_properties(dict(entity))
    stored = TableEntity(entity)
    stored._metadata = {"etag": f'W/"{next(_etags)}"', "timestamp": None}
    return stored
