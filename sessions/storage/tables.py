"""Table Storage: the sessions, their identity index, and the quarantine; written and read.

Writes are grouped into entity-group transactions of one partition each (at most 100 operations
and 4 MiB), with a bounded number in flight so that our own work overlaps the storage's. A
transaction the service refuses for good is written again one operation at a time, so that one
refused entity never takes the others down with it; each operation then gets a verdict (written,
a conflict with a concurrent writer, or refused with the service's reason). Any failure that a
retry could mend becomes StorageUnavailable, after every transaction already started has
finished: nothing is claimed stored that is not.

Reads (for the ingest and the operator tools) go by partition and key ranges, never a scan,
page by page (at most 1,000 entities each, the service's maximum).
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from functools import partial
from typing import Any, cast

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, TableEntity, TableServiceClient, TableTransactionError, UpdateMode

from sessions import deadline
from sessions.settings import Settings
from sessions.storage.batch import BatchOperation, Kind, submit
from sessions.storage.connection import StorageUnavailable, brief_error, storage_errors, table_service
from sessions.storage.entities import (
    MAX_TRANSACTION_BYTES,
    MAX_TRANSACTION_OPERATIONS,
    MOVED_PREFIX,
    QUARANTINE_COUNT_KEY,
    QUARANTINE_PARTITION,
    Identity,
    TableWrite,
    arrival_entity,
    arrival_range,
    identity_of,
    index_entity,
    index_partition,
    index_range,
    index_row_key,
    month_partition,
    quarantine_count,
    session_row_key,
)

log = logging.getLogger(__name__)

# Every write here may be sent twice without harm (an upsert, a create or update whose conflict
# is expected and judged, a delete of what may be gone): let the SDK retry POST and MERGE too
# after a dropped connection, which it otherwise does only for the methods HTTP calls idempotent.
_RETRY_WRITES: dict[str, Any] = {
    "retry_on_methods": frozenset(
        {"HEAD", "GET", "PUT", "DELETE", "OPTIONS", "TRACE", "POST", "PATCH", "MERGE"}
    )
}
# Requests in flight at once (transactions, and the reads of the identity index and of stored
# sessions). A transaction costs the client about 0.1 ms of CPU per entity to build and read
# (sessions/storage/batch.py), far less than a round trip to the service takes: eight overlap the
# round trips, across partitions and tables, so that a push's time is the storage's, not the
# client's or the network's (docs/performance.md has the figures at 0 and 20 ms round trips).
DEFAULT_CONCURRENCY = 8
# Leave room under the service's 4 MiB for the estimate's error.
_TRANSACTION_BUDGET = MAX_TRANSACTION_BYTES - 256 * 1024
# Status codes a retry may mend: the service is busy, timing out, or briefly unavailable.
_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
PAGE_SIZE = 1000  # the most the Table service returns per request
# One page of GET /api/sessions starts no query after this many service requests (the last query
# of moved pointers may add a point read for each of its at most _KEYS_PER_QUERY pointers): a filter
# that matches little (changed_since over a large table) is cut short, and the next page goes on
# where this one stopped.
_READ_REQUESTS_PER_PAGE = 12
# A filter may hold at most 15 comparisons: the PartitionKey and 14 RowKeys.
_KEYS_PER_QUERY = 14
# An index read takes a range of TransactionIDs when it is this dense at least (else key by key).
_RANGE_SLACK = 2000
QUARANTINE_ID_LENGTH = 64  # a SHA-256 in hex
# How often a quarantine write is tried again when a concurrent push changed the count first.
_COUNT_RETRIES = 20
# What `rejected list` shows: everything but the raw JSON, which can be close to 1 MiB.
QUARANTINE_SUMMARY = [
    "RowKey",
    "ReceivedAt",
    "PushId",
    "Index",
    "ChargerID",
    "TransactionID",
    "Errors",
    "RawLength",
    "RawTruncated",
    "Overflow",
    "RawArchive",
]


class Verdict(Enum):
    """What became of one operation that its transaction could not carry."""

    CONFLICT = "conflict"  # a concurrent writer got there first (exists / changed since read)
    REFUSED = "refused"  # the service refuses this entity for good (its reason is kept)


@dataclass(frozen=True)
class Operation:
    """One write of a transaction: create (must not exist), update (if unchanged since read,
    by its etag), upsert, or delete."""

    kind: str
    entity: dict[str, Any]
    payload_bytes: int = 2048
    etag: str | None = None

    partition_key = property(TableWrite.partition_key.fget)  # type: ignore[attr-defined]
    row_key = property(TableWrite.row_key.fget)  # type: ignore[attr-defined]

    def as_batch(self) -> BatchOperation:
        # An insert asks for no entity echoed back (batch.py): less for the service to send.
        return BatchOperation(cast(Kind, self.kind), self.entity, self.etag)


@dataclass(frozen=True)
class Outcome:
    """An operation that was not written, and why."""

    operation: Operation
    verdict: Verdict
    message: str = ""


@dataclass(frozen=True)
class WriteFailure:
    """An entity that the service itself refused (not a passing fault): it will never be taken."""

    partition_key: str
    row_key: str
    message: str


@dataclass(frozen=True)
class StoredSession:
    """Where an identity's record lives, and the record as stored (None if not written yet)."""

    home: str
    entity: TableEntity | None

    @property
    def etag(self) -> str | None:
        return None if self.entity is None else str(self.entity.metadata["etag"])


@dataclass(frozen=True)
class SessionWrite:
    """One session to write at its home: created (etag None) or updated if unchanged since read."""

    identity: Identity
    write: TableWrite
    etag: str | None
    # A new identity: its index entry is created first, naming the home (one writer wins).
    claim_home: bool = False
    # A pointer to put under the month StartAt falls in, and a stale one to remove.
    pointer: dict[str, Any] | None = None
    stale_pointer: tuple[str, str] | None = None


@dataclass(frozen=True)
class SessionsWritten:
    """What a write of sessions did not do: identities a concurrent push changed first (read them
    again and decide again), and those the service refused for good (with its reason)."""

    conflicts: frozenset[Identity]
    refused: dict[Identity, str]


class SessionStore:
    """The sessions table, its identity index and the quarantine table."""

    def __init__(
        self,
        service: TableServiceClient,
        *,
        sessions_table: str,
        rejected_table: str,
        index_table: str,
        create_tables: bool = True,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        self._service = service
        self.sessions_table = service.get_table_client(sessions_table)
        self.rejected_table = service.get_table_client(rejected_table)
        self.index_table = service.get_table_client(index_table)
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="table-write")
        # In Azure, Bicep creates the tables (the app's identity may not); locally the app does.
        self._create_tables = create_tables
        self._tables_ready = False
        self._tables_lock = threading.Lock()

    @classmethod
    def connect(cls, settings: Settings, *, concurrency: int = DEFAULT_CONCURRENCY) -> SessionStore:
        """A store for the configured account and tables (no request is made yet)."""
        storage = settings.require_storage()
        return cls(
            table_service(storage),
            sessions_table=settings.sessions_table,
            rejected_table=settings.rejected_table,
            index_table=settings.session_index_table,
            create_tables=not storage.uses_identity,
            concurrency=concurrency,
        )

    @property
    def tables(self) -> tuple[TableClient, ...]:
        return (self.sessions_table, self.rejected_table, self.index_table)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._service.close()

    def ensure_tables(self) -> None:
        """Create the tables when missing (once per process; again after one disappears)."""
        if self._tables_ready or not self._create_tables:
            return
        with self._tables_lock:
            for table in self.tables:
                with storage_errors(f"cannot create table {table.table_name}"), suppress(ResourceExistsError):
                    table.create_table()
            self._tables_ready = True

    def check_health(self) -> None:
        """Raise StorageUnavailable unless every table can be reached (reads no session data)."""
        self.ensure_tables()
        for table in self.tables:
            with storage_errors(f"table {table.table_name}"), self._noting_missing_tables():
                probe = table.query_entities(
                    "PartitionKey eq @key",
                    parameters={"key": "health-probe"},
                    select=["PartitionKey"],
                    results_per_page=1,
                )
                next(iter(probe.by_page()), None)

    # --- identity: reading what is stored ----------------------------------------------------

    def find(self, identities: Collection[Identity]) -> dict[Identity, StoredSession]:
        """The stored record (and its home) of each identity that has one; absent ones left out.

        The records are read by one key range per station and home month: a station's records
        sort together, by TransactionID, so the range holds the push's sessions and at most that
        station's others in between (a range read, not a filter of keys, which the service scans).
        """
        homes = self._homes(identities)
        by_station: dict[tuple[str, str], list[int]] = defaultdict(list)
        for (charger_id, transaction_id), home in homes.items():
            by_station[(home, charger_id)].append(transaction_id)
        jobs = [
            partial(
                self._row_range,
                self.sessions_table,
                home,
                session_row_key(charger_id, min(transactions)),
                session_row_key(charger_id, max(transactions)),
            )
            for (home, charger_id), transactions in by_station.items()
        ]
        found: dict[str, TableEntity] = {}
        for entities in self._map(lambda job: job(), jobs):
            found.update((f"{entity['PartitionKey']}|{entity['RowKey']}", entity) for entity in entities)
        return {
            identity: StoredSession(home, found.get(f"{home}|{session_row_key(*identity)}"))
            for identity, home in homes.items()
        }

    def _row_range(self, table: TableClient, partition: str, first: str, last: str) -> list[TableEntity]:
        """The entities of one partition with first <= RowKey <= last."""
        with storage_errors(f"reading {table.table_name}"), self._noting_missing_tables():
            try:
                return list(
                    table.query_entities(
                        "PartitionKey eq @partition and RowKey ge @first and RowKey le @last",
                        parameters={"partition": partition, "first": first, "last": last},
                        results_per_page=PAGE_SIZE,
                    )
                )
            except ResourceNotFoundError:
                return []

    def _homes(self, identities: Collection[Identity]) -> dict[Identity, str]:
        """The home partition of each identity the index knows."""
        wanted = {index_row_key(identity): identity for identity in identities}
        by_partition: dict[str, list[Identity]] = defaultdict(list)
        for identity in identities:
            by_partition[index_partition(identity[1])].append(identity)
        jobs = [
            (partition, window)
            for partition, members in by_partition.items()
            for window in _windows(sorted({transaction for _, transaction in members}))
        ]
        homes: dict[Identity, str] = {}
        for entities in self._map(lambda job: self._index_window(*job), jobs):
            for entity in entities:
                found = wanted.get(str(entity["RowKey"]))
                if found is not None:
                    homes[found] = str(entity["Home"])
        return homes

    def _index_window(self, partition: str, window: tuple[int, int]) -> list[TableEntity]:
        low, high = index_range(*window)
        with storage_errors(f"reading {self.index_table.table_name}"), self._noting_missing_tables():
            try:
                return list(
                    self.index_table.query_entities(
                        "PartitionKey eq @partition and RowKey ge @low and RowKey lt @high",
                        parameters={"partition": partition, "low": low, "high": high},
                        select=["RowKey", "Home"],
                        results_per_page=PAGE_SIZE,
                    )
                )
            except ResourceNotFoundError:
                return []

    def _rows(self, table: TableClient, partition: str, row_keys: Sequence[str]) -> list[TableEntity]:
        """The entities of one partition with these RowKeys (at most _KEYS_PER_QUERY of them)."""
        names = [f"r{number}" for number in range(len(row_keys))]
        condition = " or ".join(f"RowKey eq @{name}" for name in names)
        with storage_errors(f"reading {table.table_name}"), self._noting_missing_tables():
            try:
                return list(
                    table.query_entities(
                        f"PartitionKey eq @partition and ( {condition} )",
                        parameters={"partition": partition, **dict(zip(names, row_keys, strict=True))},
                        results_per_page=PAGE_SIZE,
                    )
                )
            except ResourceNotFoundError:
                return []

    # --- identity: writing -------------------------------------------------------------------

    def write_sessions(self, writes: Sequence[SessionWrite]) -> SessionsWritten:
        """Write sessions at their homes, each only if no concurrent push changed it since it was read.

        In this order, so that a crash at any point leaves what a retry completes and never a
        second record: index entries of new identities, pointers to records kept in another
        month, the records, then pointers no longer needed.
        """
        if not writes:
            return SessionsWritten(frozenset(), {})
        self.ensure_tables()
        conflicts: set[Identity] = set()
        refused: dict[Identity, str] = {}
        claims = [
            Operation("create", index_entity(write.identity, write.write.partition_key))
            for write in writes
            if write.claim_home
        ]
        for outcome in self._transact(self.index_table, claims):
            identity = (
                outcome.operation.entity["ChargerID"],
                outcome.operation.entity["TransactionID"].value,
            )
            if outcome.verdict is Verdict.CONFLICT:
                conflicts.add(identity)
            else:
                refused[identity] = outcome.message
        remaining = [
            write for write in writes if write.identity not in conflicts and write.identity not in refused
        ]
        pointers = [Operation("upsert", write.pointer) for write in remaining if write.pointer is not None]
        for outcome in self._transact(self.index_table, pointers):
            raise StorageUnavailable(f"a moved pointer was not written: {outcome.message}")
        records = [
            Operation(
                "create" if write.etag is None else "update",
                write.write.entity,
                write.write.payload_bytes,
                write.etag,
            )
            for write in remaining
        ]
        for outcome in self._transact(self.sessions_table, records):
            if outcome.verdict is Verdict.CONFLICT:
                conflicts.add(identity_of(outcome.operation.entity))
            else:
                refused[identity_of(outcome.operation.entity)] = outcome.message
        stale = [write.stale_pointer for write in remaining if write.stale_pointer is not None]
        self._delete_quietly(self.index_table, stale)
        return SessionsWritten(frozenset(conflicts), refused)

    def upsert_sessions(self, writes: Sequence[TableWrite]) -> list[WriteFailure]:
        """Write session entities as they are, whatever is stored (the index rebuild's repair)."""
        self.ensure_tables()
        outcomes = self._transact(
            self.sessions_table, [Operation("upsert", write.entity, write.payload_bytes) for write in writes]
        )
        return [
            WriteFailure(outcome.operation.partition_key, outcome.operation.row_key, outcome.message)
            for outcome in outcomes
        ]

    def put_index_entries(self, entities: Sequence[dict[str, Any]]) -> None:
        """Upsert index entries and pointers as given (the index rebuild)."""
        self.ensure_tables()
        for outcome in self._transact(self.index_table, [Operation("upsert", entity) for entity in entities]):
            raise StorageUnavailable(f"an index entry was not written: {outcome.message}")

    def delete(self, table: TableClient, keys: Iterable[tuple[str, str]]) -> None:
        """Delete entities by (PartitionKey, RowKey); one already gone is no error."""
        self._delete_quietly(table, list(keys))

    def _delete_quietly(self, table: TableClient, keys: Sequence[tuple[str, str]]) -> None:
        for partition_key, row_key in keys:
            with storage_errors(f"deleting from {table.table_name}"), suppress(ResourceNotFoundError):
                table.delete_entity(partition_key, row_key, **_RETRY_WRITES)

    # --- the quarantine ----------------------------------------------------------------------

    def quarantine(self, writes: Sequence[TableWrite], received_at: datetime) -> int:
        """Keep rejected sessions (keyed by content: one already kept stays as it was); return how
        many were new. They must all be kept: any refusal is StorageUnavailable.

        Each new entry goes with its arrival entry and the count, in one transaction: the three
        never disagree, whatever fails when.
        """
        if not writes:
            return 0
        self.ensure_tables()
        unique = {write.row_key: write for write in writes}
        kept = {
            str(entity["RowKey"])
            for batch in _batches(sorted(unique), _KEYS_PER_QUERY)
            for entity in self._rows(self.rejected_table, QUARANTINE_PARTITION, batch)
        }
        new = [write for key, write in unique.items() if key not in kept]
        # Pairs of (entry, arrival) and the count: 49 pairs fill a transaction of 99.
        for batch in _batches(new, (MAX_TRANSACTION_OPERATIONS - 1) // 2):
            self._quarantine_batch(batch, received_at)
        return len(new)

    def _quarantine_batch(self, batch: Sequence[TableWrite], received_at: datetime) -> None:
        table = self.rejected_table
        operations: list[tuple[Any, ...]] = []
        for write in batch:
            operations.append(("upsert", write.entity, {"mode": UpdateMode.REPLACE}))
            operations.append(
                ("upsert", arrival_entity(received_at, write.row_key), {"mode": UpdateMode.REPLACE})
            )
        for _ in range(_COUNT_RETRIES):
            count, etag = self._quarantine_count()
            operations_with_count = [*operations, _count_operation(count + len(batch), etag)]
            with storage_errors(f"quarantine {table.table_name}"), self._noting_missing_tables():
                try:
                    table.submit_transaction(operations_with_count, **_RETRY_WRITES)
                    return
                except TableTransactionError as error:
                    if _is_transient(error):
                        raise
                    if not _is_conflict(error):
                        raise StorageUnavailable(
                            f"the quarantine refused an entry: {brief_error(error)}"
                        ) from error
            # A concurrent push changed the count (or an entry came in meanwhile): read again.
            kept = {
                str(entity["RowKey"])
                for entity in self._rows(
                    self.rejected_table, QUARANTINE_PARTITION, [w.row_key for w in batch]
                )
            }
            batch = [write for write in batch if write.row_key not in kept]
            if not batch:
                return
            operations = [op for op in operations if op[1]["RowKey"] not in kept]
        raise StorageUnavailable("the quarantine's count kept changing under concurrent pushes")

    def _quarantine_count(self) -> tuple[int, str | None]:
        with storage_errors(f"reading {self.rejected_table.table_name}"), self._noting_missing_tables():
            try:
                entity = self.rejected_table.get_entity(QUARANTINE_PARTITION, QUARANTINE_COUNT_KEY)
            except ResourceNotFoundError:
                return 0, None
        count = entity.get("Count")
        return int(getattr(count, "value", count) or 0), str(entity.metadata["etag"])

    def quarantined_count(self) -> int | None:
        """How many sessions the quarantine holds (None if it has never counted: run the rebuild)."""
        count, etag = self._quarantine_count()
        return None if etag is None and self._any_quarantined() else count

    def _any_quarantined(self) -> bool:
        return next(iter(self.all_quarantined()), None) is not None

    def newest_quarantined(self, limit: int | None = None) -> Iterator[dict[str, Any]]:
        """Quarantined sessions, newest arrival first, without their raw JSON, read page by page
        and only as far as the caller takes them."""
        low, high = arrival_range()
        arrivals = self.rejected_table.query_entities(
            "PartitionKey eq @partition and RowKey ge @low and RowKey lt @high",
            parameters={"partition": QUARANTINE_PARTITION, "low": low, "high": high},
            select=["RowKey", "QuarantineId"],
            results_per_page=min(limit or PAGE_SIZE, PAGE_SIZE),
        )
        given = 0
        with storage_errors(f"reading {self.rejected_table.table_name}"):
            try:
                for page in arrivals.by_page():
                    ids = [str(arrival["QuarantineId"]) for arrival in page]
                    entries: dict[str, dict[str, Any]] = {}
                    for batch in _batches(ids, _KEYS_PER_QUERY):
                        for entity in self._rows(self.rejected_table, QUARANTINE_PARTITION, batch):
                            entries[str(entity["RowKey"])] = _summary(entity)
                    for quarantine_id in ids:
                        if quarantine_id in entries:
                            yield entries[quarantine_id]
                            given += 1
                            if limit is not None and given >= limit:
                                return
            except ResourceNotFoundError:
                return

    def quarantined_of_push(self, push_id: str) -> Iterator[dict[str, Any]]:
        """The quarantined sessions a push delivered (the service filters its partition)."""
        entities = self.rejected_table.query_entities(
            "PartitionKey eq @partition and PushId eq @push",
            parameters={"partition": QUARANTINE_PARTITION, "push": push_id},
            select=QUARANTINE_SUMMARY,
            results_per_page=PAGE_SIZE,
        )
        with storage_errors(f"reading {self.rejected_table.table_name}"):
            try:
                for entity in entities:
                    if not str(entity["RowKey"]).startswith("~"):
                        yield dict(entity)
            except ResourceNotFoundError:
                return

    def all_quarantined(self, *, with_raw: bool = False) -> Iterator[dict[str, Any]]:
        """Every quarantined session (without its raw JSON unless asked), in id order, read page by
        page as the caller goes (for `rejected replay --all` and the rebuild)."""
        entities = self.rejected_table.query_entities(
            "PartitionKey eq @partition and RowKey lt '~'",
            parameters={"partition": QUARANTINE_PARTITION},
            select=None if with_raw else QUARANTINE_SUMMARY,
            results_per_page=100 if with_raw else PAGE_SIZE,
        )
        with storage_errors(f"reading {self.rejected_table.table_name}"):
            try:
                for entity in entities:
                    yield dict(entity)
            except ResourceNotFoundError:
                return

    def find_quarantined(self, id_or_prefix: str) -> list[dict[str, Any]]:
        """The quarantined session(s), raw JSON included, whose id is or starts with `id_or_prefix`.

        A full id finds at most one; a prefix finds every match, so that an ambiguous one shows.
        """
        prefix = id_or_prefix.strip().lower()
        if not prefix or prefix.startswith("~"):
            return []
        with storage_errors(f"reading {self.rejected_table.table_name}"):
            try:
                if len(prefix) >= QUARANTINE_ID_LENGTH:
                    return [dict(self.rejected_table.get_entity(QUARANTINE_PARTITION, prefix))]
                # Every id starting with the prefix sorts between it and the prefix with its last
                # character raised by one.
                after = prefix[:-1] + chr(ord(prefix[-1]) + 1)
                entities = self.rejected_table.query_entities(
                    "PartitionKey eq @partition and RowKey ge @prefix and RowKey lt @after",
                    parameters={"partition": QUARANTINE_PARTITION, "prefix": prefix, "after": after},
                    results_per_page=10,
                )
                return [dict(entity) for entity in entities]
            except ResourceNotFoundError:
                return []

    def release_quarantined(self, quarantine_id: str, received_at: datetime | None) -> None:
        """Remove a session from the quarantine with its arrival entry, counting it out (nothing
        happens if it is no longer there)."""
        table = self.rejected_table
        for _ in range(_COUNT_RETRIES):
            with storage_errors(f"reading {table.table_name}"):
                try:
                    entry = table.get_entity(QUARANTINE_PARTITION, quarantine_id, select=["RowKey"])
                except ResourceNotFoundError:
                    return
            count, etag = self._quarantine_count()
            unchanged = {"etag": entry.metadata["etag"], "match_condition": MatchConditions.IfNotModified}
            operations: list[tuple[Any, ...]] = [("delete", _key(quarantine_id), unchanged)]
            if received_at is not None:
                arrival = str(arrival_entity(received_at, quarantine_id)["RowKey"])
                with suppress(ResourceNotFoundError), storage_errors(f"reading {table.table_name}"):
                    table.get_entity(QUARANTINE_PARTITION, arrival, select=["RowKey"])
                    operations.append(("delete", _key(arrival)))
            if etag is not None:
                operations.append(_count_operation(max(count - 1, 0), etag))
            with storage_errors(f"releasing from {table.table_name}"):
                try:
                    table.submit_transaction(operations, **_RETRY_WRITES)
                    return
                except TableTransactionError as error:
                    if _is_transient(error) or not _is_conflict(error):
                        raise
        raise StorageUnavailable("the quarantine's count kept changing under concurrent pushes")

    def recount_quarantine(self, count: int, arrivals: Iterable[tuple[datetime, str]]) -> None:
        """Set the count and write the arrival entries (the rebuild, for a quarantine kept before
        they existed)."""
        self.ensure_tables()
        operations = [
            Operation("upsert", arrival_entity(at, quarantine_id)) for at, quarantine_id in arrivals
        ]
        operations.append(Operation("upsert", quarantine_count(count)))
        for outcome in self._transact(self.rejected_table, operations):
            raise StorageUnavailable(f"the quarantine's bookkeeping was not written: {outcome.message}")

    # --- reads for the operator tools ---------------------------------------------------------

    def session_pages(
        self, start: datetime, end: datetime, *, page_size: int = PAGE_SIZE
    ) -> Iterator[list[dict[str, Any]]]:
        """The stored sessions with start <= StartAt < end, one page of entities at a time.

        First the partitions (months) that can hold the period, read as one range with a filter
        on StartAt; then the sessions kept in another month whose StartAt a correction moved
        into the period (found by their pointers). Read lazily: a page is requested only when
        the previous one has been consumed. Raises StorageUnavailable if storage fails.
        """
        first, after_last = partition_range(start, end)
        pages = self.sessions_table.query_entities(
            "PartitionKey ge @first and PartitionKey lt @after_last"
            " and StartAt ge @start and StartAt lt @end",
            parameters={"first": first, "after_last": after_last, "start": start, "end": end},
            results_per_page=page_size,
        )
        with storage_errors(f"reading {self.sessions_table.table_name}"):
            try:
                for page in pages.by_page():
                    entities: list[dict[str, Any]] = list(page)
                    if entities:
                        yield entities
                    # Let go of this page before the next one is fetched: one page in memory, not two.
                    del entities, page
            except ResourceNotFoundError:
                return
        yield from self._moved_into(start, end, first, after_last, page_size)

    def _moved_into(
        self, start: datetime, end: datetime, first: str, after_last: str, page_size: int
    ) -> Iterator[list[dict[str, Any]]]:
        with storage_errors(f"reading {self.index_table.table_name}"):
            try:
                for page in self._pointers(first, after_last, page_size).by_page():
                    found, _ = self._moved_records(page, start, end, first, after_last)
                    if found:
                        yield found
            except ResourceNotFoundError:
                return

    def _pointers(self, first: str, after_last: str, page_size: int) -> Any:
        """The moved pointers of the months first <= month < after_last, as a pager."""
        return self.index_table.query_entities(
            "PartitionKey ge @low and PartitionKey lt @high",
            parameters={"low": f"{MOVED_PREFIX}{first}", "high": f"{MOVED_PREFIX}{after_last}"},
            select=["RowKey", "Home"],
            results_per_page=page_size,
        )

    def _moved_records(
        self,
        pointers: Iterable[TableEntity],
        start: datetime,
        end: datetime,
        first: str,
        after_last: str,
        changed_after: datetime | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        """The records these pointers name that are kept in a month outside first..after_last (a
        record kept inside was read with those months) and whose StartAt is in the period now,
        and how many requests reading them took."""
        by_home: dict[str, list[str]] = defaultdict(list)
        for pointer in pointers:
            if not first <= str(pointer["Home"]) < after_last:
                by_home[str(pointer["Home"])].append(str(pointer["RowKey"]).split("_", 1)[1])
        jobs = [(home, batch) for home, keys in by_home.items() for batch in _batches(keys, _KEYS_PER_QUERY)]
        found: list[dict[str, Any]] = []
        for entities in self._map(lambda job: self._rows(self.sessions_table, job[0], job[1]), jobs):
            for entity in entities:
                moment = entity.get("StartAt")
                if not isinstance(moment, datetime) or not start <= moment < end:
                    continue
                if changed_after is not None and not _changed_after(entity, changed_after):
                    continue
                found.append(dict(entity))
        return found, len(jobs)

    def read_page(self, query: SessionQuery, cursor: ReadCursor | None, limit: int) -> ReadPage:
        """One page of the sessions a billing system reads (GET /api/sessions), and where the
        next page starts. At most `limit` sessions and about _READ_REQUESTS_PER_PAGE service
        requests a page, so that a page takes bounded time and memory whatever the table holds; a page
        may hold fewer than `limit` (even none) and still have a next one.

        Phase "home": the months that can hold the period (or the whole table, with no period),
        filtered by StartAt and by the time the record last changed, in the service's order
        (PartitionKey, RowKey). Phase "moved" (a period only): records kept in a month outside
        the period whose StartAt a correction moved into it, found by their pointers.
        """
        self.ensure_tables()
        cursor = cursor or ReadCursor("home", None)
        months = None if query.start is None or query.end is None else partition_range(query.start, query.end)
        rows: list[dict[str, Any]] = []
        requests = 0
        while len(rows) < limit and requests < _READ_REQUESTS_PER_PAGE:
            want = min(limit - len(rows), PAGE_SIZE)
            if cursor.phase == "home":
                pager, table = self._home_query(query, want), self.sessions_table
            else:
                # Few pointers at a time: each may cost a point read of its record's month.
                assert months is not None
                pager, table = self._pointers(*months, min(want, _KEYS_PER_QUERY)), self.index_table
            with storage_errors(f"reading {table.table_name}"), self._noting_missing_tables():
                try:
                    pages = pager.by_page(continuation_token=cursor.token)
                    page = list(next(pages, []))
                    token = pages.continuation_token
                except ResourceNotFoundError:
                    page, token = [], None
            requests += 1
            if cursor.phase == "home":
                rows.extend(dict(entity) for entity in page)
            else:
                assert query.start is not None and query.end is not None and months is not None
                moved, reads = self._moved_records(page, query.start, query.end, *months, query.changed_after)
                rows.extend(moved)
                requests += reads
            if token is not None:
                cursor = ReadCursor(cursor.phase, token)
            elif cursor.phase == "home" and months is not None:
                cursor = ReadCursor("moved", None)
            else:
                return ReadPage(rows, None)
        return ReadPage(rows, cursor)

    def _home_query(self, query: SessionQuery, page_size: int) -> Any:
        conditions: list[str] = []
        parameters: dict[str, Any] = {}
        if query.start is not None and query.end is not None:
            first, after_last = partition_range(query.start, query.end)
            conditions.append(
                "PartitionKey ge @first and PartitionKey lt @after_last"
                " and StartAt ge @start and StartAt lt @end"
            )
            parameters.update(first=first, after_last=after_last, start=query.start, end=query.end)
        if query.changed_after is not None:
            conditions.append("Timestamp gt @changed")
            parameters["changed"] = query.changed_after
        if not conditions:
            return self.sessions_table.list_entities(results_per_page=page_size)
        return self.sessions_table.query_entities(
            " and ".join(conditions), parameters=parameters, results_per_page=page_size
        )

    def all_sessions(self) -> Iterator[list[TableEntity]]:
        """Every stored session, page by page (a scan: for the index rebuild only)."""
        return self._scan(self.sessions_table)

    def all_index_entries(self) -> Iterator[list[TableEntity]]:
        """Every index entry and pointer, page by page (for the index rebuild)."""
        return self._scan(self.index_table)

    def _scan(self, table: TableClient) -> Iterator[list[TableEntity]]:
        with storage_errors(f"reading {table.table_name}"):
            try:
                yield from (list(page) for page in table.list_entities(results_per_page=PAGE_SIZE).by_page())
            except ResourceNotFoundError:
                return

    # --- transactions ------------------------------------------------------------------------

    def _transact(self, table: TableClient, operations: Sequence[Operation]) -> list[Outcome]:
        """Write the operations in transactions; return those not written, with their verdicts."""
        if not operations:
            return []
        transactions = plan_transactions(operations)
        jobs = [partial(self._submit, table, batch) for batch in transactions]
        outcomes: list[Outcome] = []
        for found in self._run(jobs):
            outcomes.extend(found)
        return outcomes

    def _submit(self, table: TableClient, batch: list[Operation]) -> list[Outcome]:
        try:
            return self._submit_once(table, batch)
        except StorageUnavailable as unavailable:
            if not self._create_tables or not _table_missing(unavailable.__cause__):
                raise
        # The table disappeared under a running app (deleted, or an emulator restarted empty):
        # create it again and send this transaction once more, rather than fail the push.
        log.warning("table %s is missing; creating it again", table.table_name)
        self._tables_ready = False
        self.ensure_tables()
        return self._submit_once(table, batch)

    def _submit_once(self, table: TableClient, batch: list[Operation]) -> list[Outcome]:
        with storage_errors(table.table_name), self._noting_missing_tables():
            try:
                submit(table, [operation.as_batch() for operation in batch], **_RETRY_WRITES)
                return []
            except TableTransactionError as error:
                if _is_transient(error):
                    raise
                if _is_conflict(error):
                    # A concurrent writer got to one of them first: the caller reads them all
                    # again and decides again, which costs one read, not one write each.
                    return [Outcome(operation, Verdict.CONFLICT, brief_error(error)) for operation in batch]
                # Something in this transaction was refused for good: judge each operation on
                # its own, so that the rest are not dropped with it.
                log.info(
                    "table %s did not take a transaction of %d (%s); writing its operations one by one",
                    table.table_name,
                    len(batch),
                    getattr(error, "error_code", None),
                )
                return [
                    outcome for operation in batch if (outcome := self._one(table, operation)) is not None
                ]

    def _one(self, table: TableClient, operation: Operation) -> Outcome | None:
        entity = operation.entity
        try:
            if operation.kind == "create":
                table.create_entity(entity, **_RETRY_WRITES)
            elif operation.kind == "update":
                table.update_entity(
                    entity,
                    mode=UpdateMode.REPLACE,
                    etag=operation.etag,
                    match_condition=MatchConditions.IfNotModified,
                    **_RETRY_WRITES,
                )
            elif operation.kind == "upsert":
                table.upsert_entity(entity, mode=UpdateMode.REPLACE, **_RETRY_WRITES)
            else:
                with suppress(ResourceNotFoundError):
                    table.delete_entity(entity["PartitionKey"], entity["RowKey"], **_RETRY_WRITES)
        except (ResourceExistsError, ResourceModifiedError) as error:
            return Outcome(operation, Verdict.CONFLICT, brief_error(error))
        except ResourceNotFoundError as error:
            if operation.kind == "update":  # deleted since it was read: decide again
                return Outcome(operation, Verdict.CONFLICT, brief_error(error))
            raise
        except HttpResponseError as error:
            if _is_transient(error):
                raise
            return Outcome(operation, Verdict.REFUSED, brief_error(error))
        return None

    def _run(self, jobs: Sequence[Callable[[], list[Outcome]]]) -> list[list[Outcome]]:
        """Run jobs DEFAULT_CONCURRENCY at a time (the deadline travels along); if one fails, start
        no more, let those under way finish, then raise its error."""
        if len(jobs) == 1:
            return [jobs[0]()]
        futures: list[Future[list[Outcome]]] = [self._pool.submit(deadline.carry(job)) for job in jobs]
        _, pending = wait(futures, return_when=FIRST_EXCEPTION)
        if pending:
            for future in pending:
                future.cancel()
            wait(pending)
        results: list[list[Outcome]] = []
        first_error: BaseException | None = None
        for future in futures:
            if future.cancelled():
                continue
            error = future.exception()
            if error is not None:
                first_error = first_error or error
            else:
                results.append(future.result())
        if first_error is not None:
            raise first_error
        return results

    def _map(
        self, read: Callable[[Any], list[TableEntity]], jobs: Sequence[Any]
    ) -> Iterator[list[TableEntity]]:
        """Reads run DEFAULT_CONCURRENCY at a time, each with the caller's deadline."""
        if len(jobs) <= 1:
            yield from (read(job) for job in jobs)
            return
        yield from self._pool.map(deadline.carry(read), jobs)

    @contextmanager
    def _noting_missing_tables(self) -> Iterator[None]:
        # The next write creates them again (someone deleted a table under a running app).
        try:
            yield
        except AzureError as error:
            if _table_missing(error):
                self._tables_ready = False
            raise


@dataclass(frozen=True)
class SessionQuery:
    """What a billing system reads: the sessions with start <= StartAt < end (both or neither),
    and, when changed_after is set, only those whose record changed after it."""

    start: datetime | None = None
    end: datetime | None = None
    changed_after: datetime | None = None


@dataclass(frozen=True)
class ReadCursor:
    """Where a read goes on: the phase ("home" or "moved") and the service's continuation token."""

    phase: str
    token: dict[str, str | None] | None


@dataclass(frozen=True)
class ReadPage:
    entities: list[dict[str, Any]]
    next: ReadCursor | None


def _changed_after(entity: TableEntity | dict[str, Any], moment: datetime) -> bool:
    changed = getattr(entity, "metadata", {}).get("timestamp")
    return not isinstance(changed, datetime) or changed > moment


def plan_transactions(operations: Sequence[Any]) -> list[list[Any]]:
    """Group writes (anything with partition_key, row_key and payload_bytes) into entity-group
    transactions as the service requires them: one partition per transaction, at most 100
    operations and 4 MiB each, and an entity at most once per transaction (the caller has
    already merged repeats of the same session)."""
    by_partition: dict[str, list[Any]] = defaultdict(list)
    for operation in operations:
        by_partition[operation.partition_key].append(operation)
    transactions: list[list[Any]] = []
    for partition_operations in by_partition.values():
        current: list[Any] = []
        current_bytes = 0
        seen: set[str] = set()
        for operation in partition_operations:
            full = len(current) >= MAX_TRANSACTION_OPERATIONS
            if current and (full or current_bytes + operation.payload_bytes > _TRANSACTION_BUDGET):
                transactions.append(current)
                current, current_bytes, seen = [], 0, set()
            if operation.row_key in seen:
                raise ValueError(f"entity {operation.row_key!r} appears twice in one transaction")
            seen.add(operation.row_key)
            current.append(operation)
            current_bytes += operation.payload_bytes
        if current:
            transactions.append(current)
    return transactions


def partition_range(start: datetime, end: datetime) -> tuple[str, str]:
    """The PartitionKeys (UTC months) that can hold a session with start <= StartAt < end: from
    the first, inclusive, to the one after the last, exclusive."""
    if end <= start:
        raise ValueError("the period must end after it starts")
    first = month_partition(start)
    last = month_partition((end - timedelta(microseconds=1)).astimezone(UTC))
    # The bound after the last month: "YYYY-13" sorts after "YYYY-12" and before any later year,
    # even after 9999-12 (where "10000-01" would sort before it).
    return first, f"{last[:5]}{int(last[5:]) + 1:02d}"


def _windows(transactions: Sequence[int]) -> Iterator[tuple[int, int]]:
    """Sorted TransactionIDs as ranges worth one query each: near ids together, far ones apart."""
    if not transactions:
        return
    first = last = transactions[0]
    members = 1
    for transaction in transactions[1:]:
        if transaction - first <= 4 * (members + 1) + _RANGE_SLACK:
            last, members = transaction, members + 1
        else:
            yield first, last
            first = last = transaction
            members = 1
    yield first, last


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _count_operation(count: int, etag: str | None) -> tuple[Any, ...]:
    entity = quarantine_count(count)
    if etag is None:
        return ("create", entity)
    return (
        "update",
        entity,
        {"mode": UpdateMode.REPLACE, "etag": etag, "match_condition": MatchConditions.IfNotModified},
    )


def _key(row_key: str) -> dict[str, str]:
    """The keys of a quarantine partition's entity, as a transaction's delete wants them."""
    return {"PartitionKey": QUARANTINE_PARTITION, "RowKey": row_key}


def _summary(entity: TableEntity) -> dict[str, Any]:
    return {name: entity[name] for name in QUARANTINE_SUMMARY if name in entity}


def _table_missing(error: BaseException | None) -> bool:
    """Whether the service said the table itself is missing (not one entity of it)."""
    if not isinstance(error, HttpResponseError) or error.status_code != 404:
        return False
    return "TableNotFound" in brief_error(error) or "ResourceNotFound" not in brief_error(error)


def _is_conflict(error: HttpResponseError) -> bool:
    """A concurrent writer got there first: exists already, changed since read, or deleted since."""
    return error.status_code in (409, 412) or (error.status_code == 404 and not _table_missing(error))


def _is_transient(error: HttpResponseError) -> bool:
    status = error.status_code
    # Authorisation and missing tables are not the sender's fault: answer 503, not a rejection.
    return status is None or status in _TRANSIENT_STATUS or status in (401, 403) or _table_missing(error)
