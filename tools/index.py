"""Rebuilding the indexes from what is stored: for data stored before they existed, and as repair.

- The identity index: every stored session gets its index entry (the partition that holds it),
  and a moved pointer when its StartAt falls in another month. Two records of one session (kept
  before identity crossed months: a correction moved StartAt into another month) become one: the
  copy received last is kept, the other deleted. Index entries and pointers that lead nowhere go.
- The quarantine: its count, and its arrival list (newest first) from each entry's ReceivedAt.

It reads every session and every index entry once (a scan, page by page), holding one small
entry per session in memory (about 200 bytes), and writes in transactions. Safe to run again and
to stop: what it writes is what a later run would write.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sessions.storage import SessionStore
from sessions.storage.entities import (
    INDEX_PREFIX,
    MOVED_PREFIX,
    Identity,
    identity_of,
    index_entity,
    moved_pointer,
    start_month,
)


@dataclass(frozen=True)
class _Copy:
    partition: str
    row_key: str
    received_at: datetime
    push_id: str
    month: str


@dataclass
class RebuildReport:
    """What a rebuild found and did (with apply false: would do)."""

    sessions: int = 0
    doubles_removed: list[tuple[Identity, str]] = field(default_factory=list)
    index_entries: int = 0
    pointers: int = 0
    stale_entries_removed: int = 0
    quarantined: int = 0


def rebuild(
    store: SessionStore, *, apply: bool, progress: Callable[[str], None] | None = None
) -> RebuildReport:
    """Make the identity index and the quarantine's bookkeeping agree with the stored sessions."""
    report = RebuildReport()
    kept: dict[Identity, _Copy] = {}
    for page in store.all_sessions():
        for entity in page:
            report.sessions += 1
            copy = _copy_of(entity)
            identity = identity_of(entity)
            other = kept.get(identity)
            if other is None:
                kept[identity] = copy
                continue
            newer, older = (copy, other) if _version(copy) > _version(other) else (other, copy)
            kept[identity] = newer
            report.doubles_removed.append((identity, older.partition))
            if apply:
                store.delete(store.sessions_table, [(older.partition, older.row_key)])
        if progress is not None:
            progress(f"{report.sessions:,} sessions read")
    wanted: dict[tuple[str, str], dict[str, Any]] = {}
    for identity, copy in kept.items():
        entry = index_entity(identity, copy.partition)
        wanted[(entry["PartitionKey"], entry["RowKey"])] = entry
        if copy.month != copy.partition:
            pointer = moved_pointer(copy.month, copy.partition, identity)
            wanted[(pointer["PartitionKey"], pointer["RowKey"])] = pointer
            report.pointers += 1
    report.index_entries = len(kept)
    stale: list[tuple[str, str]] = []
    for page in store.all_index_entries():
        for entity in page:
            key = (str(entity["PartitionKey"]), str(entity["RowKey"]))
            # An entry for a session that is no longer stored, or a pointer no longer needed.
            if key[0].startswith((INDEX_PREFIX, MOVED_PREFIX)) and key not in wanted:
                stale.append(key)
    report.stale_entries_removed = len(stale)
    if apply:
        store.put_index_entries(list(wanted.values()))
        store.delete(store.index_table, stale)
    arrivals = [
        (received, str(entity["RowKey"]))
        for entity in store.all_quarantined()
        if isinstance(received := entity.get("ReceivedAt"), datetime)
    ]
    report.quarantined = len(arrivals)
    if apply:
        store.recount_quarantine(len(arrivals), arrivals)
    return report


def _copy_of(entity: dict[str, Any]) -> _Copy:
    received = entity.get("ReceivedAt")
    return _Copy(
        partition=str(entity["PartitionKey"]),
        row_key=str(entity["RowKey"]),
        received_at=received.astimezone(UTC)
        if isinstance(received, datetime)
        else datetime.min.replace(tzinfo=UTC),
        push_id=str(entity.get("PushId") or ""),
        month=start_month(entity),
    )


def _version(copy: _Copy) -> tuple[datetime, str]:
    return copy.received_at, copy.push_id
