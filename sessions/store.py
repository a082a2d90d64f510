"""Table Storage: the one place that talks to azure-data-tables.

Writes are upserts (the same session twice is one entity), grouped into entity-group
transactions of one partition each, with a bounded number in flight so that our own work
overlaps the storage's. Any failure that a retry could mend becomes StorageUnavailable, after
every transaction already started has finished: nothing is claimed stored that is not.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import partial
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, TableServiceClient, TableTransactionError, UpdateMode

from sessions.entities import (
    MAX_TRANSACTION_BYTES,
    MAX_TRANSACTION_OPERATIONS,
    TableWrite,
)
from sessions.settings import Settings, StorageConnection

log = logging.getLogger(__name__)

# Azurite's well-known development account (public, documented, not a secret).
_AZURITE_ACCOUNT = "devstoreaccount1"
_AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
DEVELOPMENT_STORAGE = (
    f"DefaultEndpointsProtocol=http;AccountName={_AZURITE_ACCOUNT};AccountKey={_AZURITE_KEY};"
    f"BlobEndpoint=http://127.0.0.1:10000/{_AZURITE_ACCOUNT};"
    f"QueueEndpoint=http://127.0.0.1:10001/{_AZURITE_ACCOUNT};"
    f"TableEndpoint=http://127.0.0.1:10002/{_AZURITE_ACCOUNT};"
)

# Fail well inside the sender's patience (and the 230 s of the Azure front end) when storage
# is down: a few quick retries, short connect timeout, bounded read timeout.
CLIENT_OPTIONS: dict[str, Any] = {
    "retry_total": 3,
    "retry_connect": 3,
    "retry_read": 2,
    "retry_status": 3,
    "retry_backoff_factor": 0.4,
    "retry_backoff_max": 4,
    "connection_timeout": 5,
    "read_timeout": 30,
}
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
# building a transaction does (README, Performance).
DEFAULT_CONCURRENCY = 2
# Leave room under the service's 4 MiB for the estimate's error.
_TRANSACTION_BUDGET = MAX_TRANSACTION_BYTES - 256 * 1024
# Status codes a retry may mend: the service is busy, timing out, or briefly unavailable.
_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}


class StorageUnavailable(Exception):
    """Storage could not be reached or did not take every write; a retry of the push is safe."""


@dataclass(frozen=True)
class WriteFailure:
    """An entity that the service itself refused (not a passing fault): it will never be taken."""

    partition_key: str
    row_key: str
    message: str


def resolve_connection_string(connection_string: str) -> str:
    """The explicit form of `UseDevelopmentStorage=true` (Azurite on its default ports)."""
    if connection_string.strip() == "UseDevelopmentStorage=true":
        return DEVELOPMENT_STORAGE
    return connection_string


def storage_credential(storage: StorageConnection) -> TokenCredential:
    """The managed identity named by clientId, else whatever DefaultAzureCredential finds."""
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    if storage.client_id:
        return ManagedIdentityCredential(client_id=storage.client_id)
    return DefaultAzureCredential()


def table_service(storage: StorageConnection) -> TableServiceClient:
    """A Table service client for the configured connection, with bounded retries and timeouts."""
    if storage.connection_string is not None:
        return TableServiceClient.from_connection_string(
            resolve_connection_string(storage.connection_string), **CLIENT_OPTIONS
        )
    assert storage.table_service_uri is not None
    return TableServiceClient(
        endpoint=storage.table_service_uri,
        credential=storage_credential(storage),
        **CLIENT_OPTIONS,
    )


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
        self.sessions = service.get_table_client(sessions_table)
        self.rejected = service.get_table_client(rejected_table)
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
            for table in (self.sessions, self.rejected):
                try:
                    table.create_table()
                except ResourceExistsError:
                    pass
                except AzureError as error:
                    raise StorageUnavailable(
                        f"cannot create table {table.table_name}: {brief_error(error)}"
                    ) from error
            self._tables_ready = True

    def check_health(self) -> None:
        """Raise StorageUnavailable unless both tables can be reached (reads no session data)."""
        self.ensure_tables()
        for table in (self.sessions, self.rejected):
            try:
                probe = table.query_entities(
                    "PartitionKey eq @key",
                    parameters={"key": "health-probe"},
                    select=["PartitionKey"],
                    results_per_page=1,
                )
                next(iter(probe.by_page()), None)
            except AzureError as error:
                self._forget_tables_if_missing(error)
                raise StorageUnavailable(f"table {table.table_name}: {brief_error(error)}") from error

    def save_sessions(self, writes: Sequence[TableWrite]) -> list[WriteFailure]:
        """Upsert sessions; return the ones the service refused outright (never silently)."""
        return self._write(self.sessions, writes)

    def save_rejections(self, writes: Sequence[TableWrite]) -> None:
        """Upsert quarantine entries. They must all be kept: any refusal is StorageUnavailable."""
        failures = self._write(self.rejected, writes)
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
        try:
            table.submit_transaction(operations, **_RETRY_WRITES)
            return []
        except TableTransactionError as error:
            self._forget_tables_if_missing(error)
            if _is_transient(error):
                raise StorageUnavailable(f"{table.table_name}: {brief_error(error)}") from error
            # The service refused something in this transaction for good: find out which,
            # one entity at a time, so that the rest are not dropped with it.
            log.warning(
                "table %s refused a transaction of %d (%s); writing its entities one by one",
                table.table_name,
                len(batch),
                getattr(error, "error_code", None),
            )
            return list(self._submit_one_by_one(table, batch))
        except ResourceNotFoundError as error:
            self._forget_tables_if_missing(error)
            raise StorageUnavailable(f"table {table.table_name} is missing: {brief_error(error)}") from error
        except AzureError as error:
            raise StorageUnavailable(f"{table.table_name}: {brief_error(error)}") from error

    def _submit_one_by_one(self, table: TableClient, batch: list[TableWrite]) -> Iterator[WriteFailure]:
        for write in batch:
            try:
                table.upsert_entity(write.entity, mode=UpdateMode.REPLACE, **_RETRY_WRITES)
            except HttpResponseError as error:
                if _is_transient(error) or isinstance(error, ResourceNotFoundError):
                    raise StorageUnavailable(f"{table.table_name}: {brief_error(error)}") from error
                yield WriteFailure(write.partition_key, write.row_key, brief_error(error))
            except AzureError as error:
                raise StorageUnavailable(f"{table.table_name}: {brief_error(error)}") from error

    def _forget_tables_if_missing(self, error: AzureError) -> None:
        # The next write creates them again (someone deleted a table under a running app).
        if _table_missing(error):
            self._tables_ready = False


def _table_missing(error: BaseException | None) -> bool:
    return isinstance(error, ResourceNotFoundError) or getattr(error, "status_code", None) == 404


def _is_transient(error: HttpResponseError) -> bool:
    status = error.status_code
    # Authorisation and missing tables are not the sender's fault: answer 503, not a rejection.
    return status is None or status in _TRANSIENT_STATUS or status in (401, 403, 404)


def brief_error(error: AzureError) -> str:
    """The first line of an SDK error: enough to act on, no request dump."""
    text = str(getattr(error, "message", None) or error).strip()
    first_line = text.splitlines()[0][:300] if text else type(error).__name__
    code = getattr(error, "error_code", None)
    code = getattr(code, "value", code)  # TableErrorCode members print as their enum name
    return f"{code}: {first_line}" if code else first_line
