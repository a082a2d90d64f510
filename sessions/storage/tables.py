"""Table Storage: the sessions table and the quarantine table, written and read.

Writes are upserts (the same session twice is one entity), grouped into entity-group
transactions of one partition each, with a bounded number in flight so that our own work
overlaps the storage's. Any failure that a retry could mend becomes StorageUnavailable, after
every transaction already started has finished: nothing is claimed stored that is not.

Reads (for the operator tools) go page by page, at most 1,000 entities each (the service's own
maximum), and only from the partitions that can hold what is asked for.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, TableServiceClient, TableTransactionError, UpdateMode

from sessions.settings import Settings
from sessions.storage.connection import StorageUnavailable, brief_error, storage_errors, table_service
from sessions.storage.entities import (
    MAX_TRANSACTION_BYTES,
    MAX_TRANSACTION_OPERATIONS,
    QUARANTINE_PARTITION,
    TableWrite,
    month_partition,
)

log = logging.getLogger(__name__)

# Every write here is an upsert (or a create whose "already exists" is expected), so repeating
# one is harmless: let the SDK retry POST and MERGE too after a dropped connection, which it
# otherwise does only for the methods HTTP calls idempotent.
_RETRY_WRITES: dict[str, Any] = {
    "retry_on_methods": frozenset(
        {"HEAD", "GET", "PUT", "DELETE", "OPTIONS", "TRACE", "POST", "PATCH", "MERGE"}
    )
}
# Transactions in flight at once. Two overlap the client's CPU work (building and parsing the
# multipart batch, about 0.6 ms an entity) with the storage's round trip; more threads only fight
# over the GIL (measured: more CPU per session, no faster) unless a round trip takes longer than
# building a transaction does (docs/performance.md).
DEFAULT_CONCURRENCY = 2
# Leave room under the service's 4 MiB for the estimate's error.
_TRANSACTION_BUDGET = MAX_TRANSACTION_BYTES - 256 * 1024
# Status codes a retry may mend: the service is busy, timing out, or briefly unavailable.
_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
PAGE_SIZE = 1000  # the most the Table service returns per request
QUARANTINE_ID_LENGTH = 64  # a SHA-256 in hex
# What `rejected list` shows: everything but the raw JSON, which can be close to 1 MiB.
_QUARANTINE_SUMMARY = [
    "RowKey",
    "ReceivedAt",
    "PushId",
    "Index",
    "ChargerID",
    "TransactionID",
    "Errors",
    "RawLength",
    "RawTruncated",
]


@dataclass(frozen=True)
class WriteFailure:
    """An entity that the service itself refused (not a passing fault): it will never be taken."""

    partition_key: str
    row_key: str
    message: str


def plan_transactions(writes: Sequence[TableWrite]) -> list[list[TableWrite]]:
    """Group writes into entity-group transactions as the service requires them.

    One partition per transaction, at most 100 operations and 4 MiB each, and an entity at
    most once per transaction (the caller has already merged repeats of the same session).
    """
    by_partition: dict[str, list[TableWrite]] = defaultdict(list)
    for write in writes:
        by_partition[write.partition_key].append(write)
    transactions: list[list[TableWrite]] = []
    for partition_writes in by_partition.values():
        current: list[TableWrite] = []
        current_bytes = 0
        seen: set[str] = set()
        for write in partition_writes:
            full = len(current) >= MAX_TRANSACTION_OPERATIONS
            if current and (full or current_bytes + write.payload_bytes > _TRANSACTION_BUDGET):
                transactions.append(current)
                current, current_bytes, seen = [], 0, set()
            if write.row_key in seen:
                raise ValueError(f"entity {write.row_key!r} appears twice in one transaction")
            seen.add(write.row_key)
            current.append(write)
            current_bytes += write.payload_bytes
        if current:
            transactions.append(current)
    return transactions


class SessionStore:
    """The sessions table and the quarantine table, written in idempotent transactions."""

    def __init__(
        self,
        service: TableServiceClient,
        *,
        sessions_table: str,
        rejected_table: str,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        self._service = service
        self.sessions_table = service.get_table_client(sessions_table)
        self.rejected_table = service.get_table_client(rejected_table)
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="table-write")
        self._tables_ready = False
        self._tables_lock = threading.Lock()

    @classmethod
    def connect(cls, settings: Settings, *, concurrency: int = DEFAULT_CONCURRENCY) -> SessionStore:
        """A store for the configured account and tables (no request is made yet)."""
        return cls(
            table_service(settings.require_storage()),
            sessions_table=settings.sessions_table,
            rejected_table=settings.rejected_table,
            concurrency=concurrency,
        )

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._service.close()

    def ensure_tables(self) -> None:
        """Create both tables when missing (once per process; again after one disappears)."""
        if self._tables_ready:
            return
        with self._tables_lock:
            for table in (self.sessions_table, self.rejected_table):
                with storage_errors(f"cannot create table {table.table_name}"), suppress(ResourceExistsError):
                    table.create_table()
            self._tables_ready = True

    def check_health(self) -> None:
        """Raise StorageUnavailable unless both tables can be reached (reads no session data)."""
        self.ensure_tables()
        for table in (self.sessions_table, self.rejected_table):
            with storage_errors(f"table {table.table_name}"), self._noting_missing_tables():
                probe = table.query_entities(
                    "PartitionKey eq @key",
                    parameters={"key": "health-probe"},
                    select=["PartitionKey"],
                    results_per_page=1,
                )
                next(iter(probe.by_page()), None)

    # --- writes --------------------------------------------------------------------------

    def save_sessions(self, writes: Sequence[TableWrite]) -> list[WriteFailure]:
        """Upsert sessions; return the ones the service refused outright (never silently)."""
        return self._write(self.sessions_table, writes)

    def save_rejections(self, writes: Sequence[TableWrite]) -> None:
        """Upsert quarantine entries. They must all be kept: any refusal is StorageUnavailable."""
        failures = self._write(self.rejected_table, writes)
        if failures:
            first = failures[0]
            raise StorageUnavailable(
                f"quarantine refused {len(failures)} entries, e.g. {first.row_key}: {first.message}"
            )

    def _write(self, table: TableClient, writes: Sequence[TableWrite]) -> list[WriteFailure]:
        if not writes:
            return []
        self.ensure_tables()
        transactions = plan_transactions(writes)
        if len(transactions) == 1:
            return self._submit(table, transactions[0])
        return self._run_concurrently([partial(self._submit, table, batch) for batch in transactions])

    def _run_concurrently(self, jobs: list[Callable[[], list[WriteFailure]]]) -> list[WriteFailure]:
        futures: list[Future[list[WriteFailure]]] = [self._pool.submit(job) for job in jobs]
        _, pending = wait(futures, return_when=FIRST_EXCEPTION)
        if pending:
            # One failed: start nothing new, but let the ones under way finish before answering.
            for future in pending:
                future.cancel()
            wait(pending)
        failures: list[WriteFailure] = []
        first_error: BaseException | None = None
        for future in futures:
            if future.cancelled():
                continue
            error = future.exception()
            if error is not None:
                first_error = first_error or error
            else:
                failures.extend(future.result())
        if first_error is not None:
            raise first_error
        return failures

    def _submit(self, table: TableClient, batch: list[TableWrite]) -> list[WriteFailure]:
        try:
            return self._submit_once(table, batch)
        except StorageUnavailable as unavailable:
            if not _table_missing(unavailable.__cause__):
                raise
        # The table disappeared under a running app (deleted, or an emulator restarted empty):
        # create it again and send this transaction once more, rather than fail the push.
        log.warning("table %s is missing; creating it again", table.table_name)
        self._tables_ready = False
        self.ensure_tables()
        return self._submit_once(table, batch)

    def _submit_once(self, table: TableClient, batch: list[TableWrite]) -> list[WriteFailure]:
        operations = [("upsert", write.entity, {"mode": UpdateMode.REPLACE}) for write in batch]
        with storage_errors(table.table_name), self._noting_missing_tables():
            try:
                table.submit_transaction(operations, **_RETRY_WRITES)
                return []
            except TableTransactionError as error:
                if _is_transient(error):
                    raise
                # The service refused something in this transaction for good: find out which,
                # one entity at a time, so that the rest are not dropped with it.
                log.warning(
                    "table %s refused a transaction of %d (%s); writing its entities one by one",
                    table.table_name,
                    len(batch),
                    getattr(error, "error_code", None),
                )
                return list(self._submit_one_by_one(table, batch))

    def _submit_one_by_one(self, table: TableClient, batch: list[TableWrite]) -> Iterator[WriteFailure]:
        for write in batch:
            try:
                table.upsert_entity(write.entity, mode=UpdateMode.REPLACE, **_RETRY_WRITES)
            except HttpResponseError as error:
                if _is_transient(error):
                    raise
                yield WriteFailure(write.partition_key, write.row_key, brief_error(error))

    @contextmanager
    def _noting_missing_tables(self) -> Iterator[None]:
        # The next write creates them again (someone deleted a table under a running app).
        try:
            yield
        except AzureError as error:
            if _table_missing(error):
                self._tables_ready = False
            raise

    # --- reads, for the operator tools ---------------------------------------------------

    def session_pages(
        self, start: datetime, end: datetime, *, page_size: int = PAGE_SIZE
    ) -> Iterator[list[dict[str, Any]]]:
        """The stored sessions with start <= StartAt < end, one page of entities at a time.

        Read lazily: a page is requested only when the previous one has been consumed. A table
        that does not exist yet holds no session. Raises StorageUnavailable if storage fails.
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

    def received_at_of(self, partition_key: str, row_key: str) -> datetime | None:
        """When the stored session with these keys was last stored, or None if there is none."""
        with storage_errors(f"reading {self.sessions_table.table_name}"):
            try:
                entity = self.sessions_table.get_entity(partition_key, row_key, select=["ReceivedAt"])
            except ResourceNotFoundError:
                return None
        received = entity.get("ReceivedAt")
        return received.astimezone(UTC) if isinstance(received, datetime) else None

    def quarantined(self) -> Iterator[dict[str, Any]]:
        """Every quarantined session, without its raw JSON (in id order, which is no order of time)."""
        entities = self.rejected_table.query_entities(
            "PartitionKey eq @partition",
            parameters={"partition": QUARANTINE_PARTITION},
            select=_QUARANTINE_SUMMARY,
            results_per_page=PAGE_SIZE,
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
        if not prefix:
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

    def release_quarantined(self, quarantine_id: str) -> None:
        """Remove a session from the quarantine (nothing happens if it is no longer there)."""
        with storage_errors(f"deleting from {self.rejected_table.table_name}"):
            try:
                self.rejected_table.delete_entity(QUARANTINE_PARTITION, quarantine_id)
            except ResourceNotFoundError:
                return


def partition_range(start: datetime, end: datetime) -> tuple[str, str]:
    """The PartitionKeys (UTC months) that can hold a session with start <= StartAt < end: from
    the first, inclusive, to the one after the last, exclusive."""
    if end <= start:
        raise ValueError("the period must end after it starts")
    first = month_partition(start)
    last = (end - timedelta(microseconds=1)).astimezone(UTC)
    year, month = (last.year + 1, 1) if last.month == 12 else (last.year, last.month + 1)
    return first, f"{year:04d}-{month:02d}"


def _table_missing(error: BaseException | None) -> bool:
    return isinstance(error, ResourceNotFoundError) or getattr(error, "status_code", None) == 404


def _is_transient(error: HttpResponseError) -> bool:
    status = error.status_code
    # Authorisation and missing tables are not the sender's fault: answer 503, not a rejection.
    return status is None or status in _TRANSIENT_STATUS or status in (401, 403, 404)
