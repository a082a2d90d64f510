"""Reading the tables back, for the operator tools: the sessions of a period, and the quarantine.

Sessions are read page by page (at most 1,000 entities each, the service's own maximum), from
only the partitions (UTC months) that can hold the period, so that memory stays flat and a
month's export never scans the whole table.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.data.tables import TableClient

from sessions.entities import QUARANTINE_PARTITION, month_partition
from sessions.store import StorageUnavailable, brief_error

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


def partition_range(start: datetime, end: datetime) -> tuple[str, str]:
    """The PartitionKeys (UTC months) that can hold a session with start <= StartAt < end: from
    the first, inclusive, to the one after the last, exclusive."""
    if end <= start:
        raise ValueError("the period must end after it starts")
    first = month_partition(start)
    last = (end - timedelta(microseconds=1)).astimezone(UTC)
    year, month = (last.year + 1, 1) if last.month == 12 else (last.year, last.month + 1)
    return first, f"{year:04d}-{month:02d}"


def session_pages(
    table: TableClient, start: datetime, end: datetime, *, page_size: int = PAGE_SIZE
) -> Iterator[list[dict[str, Any]]]:
    """The stored sessions with start <= StartAt < end, one page of entities at a time.

    Read lazily: a page is requested only when the previous one has been consumed. A table
    that does not exist yet holds no session. Raises StorageUnavailable if storage fails.
    """
    first, after_last = partition_range(start, end)
    pages = table.query_entities(
        "PartitionKey ge @first and PartitionKey lt @after_last and StartAt ge @start and StartAt lt @end",
        parameters={"first": first, "after_last": after_last, "start": start, "end": end},
        results_per_page=page_size,
    )
    try:
        for page in pages.by_page():
            entities: list[dict[str, Any]] = list(page)
            if entities:
                yield entities
            # Let go of this page before the next one is fetched: one page in memory, not two.
            del entities, page
    except ResourceNotFoundError:
        return
    except AzureError as error:
        raise StorageUnavailable(f"reading {table.table_name}: {brief_error(error)}") from error


def received_at_of(table: TableClient, partition_key: str, row_key: str) -> datetime | None:
    """When the stored session with these keys was last stored, or None if there is none."""
    try:
        entity = table.get_entity(partition_key, row_key, select=["ReceivedAt"])
    except ResourceNotFoundError:
        return None
    except AzureError as error:
        raise StorageUnavailable(f"reading {table.table_name}: {brief_error(error)}") from error
    received = entity.get("ReceivedAt")
    return received.astimezone(UTC) if isinstance(received, datetime) else None


def quarantined(table: TableClient) -> Iterator[dict[str, Any]]:
    """Every quarantined session, without its raw JSON (in id order, which is no order of time)."""
    entities = table.query_entities(
        "PartitionKey eq @partition",
        parameters={"partition": QUARANTINE_PARTITION},
        select=_QUARANTINE_SUMMARY,
        results_per_page=PAGE_SIZE,
    )
    try:
        for entity in entities:
            yield dict(entity)
    except ResourceNotFoundError:
        return
    except AzureError as error:
        raise StorageUnavailable(f"reading {table.table_name}: {brief_error(error)}") from error


def quarantined_ids(table: TableClient) -> Iterator[str]:
    """The id of every quarantined session."""
    for entity in quarantined(table):
        yield str(entity["RowKey"])


def find_quarantined(table: TableClient, id_or_prefix: str) -> list[dict[str, Any]]:
    """The quarantined session(s), raw JSON included, whose id is or starts with `id_or_prefix`.

    A full id finds at most one; a prefix finds every match, so that an ambiguous one shows.
    """
    prefix = id_or_prefix.strip().lower()
    if not prefix:
        return []
    try:
        if len(prefix) >= QUARANTINE_ID_LENGTH:
            return [dict(table.get_entity(QUARANTINE_PARTITION, prefix))]
        # Every id starting with the prefix sorts between it and the prefix with its last
        # character raised by one.
        after = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        entities = table.query_entities(
            "PartitionKey eq @partition and RowKey ge @prefix and RowKey lt @after",
            parameters={"partition": QUARANTINE_PARTITION, "prefix": prefix, "after": after},
            results_per_page=10,
        )
        return [dict(entity) for entity in entities]
    except ResourceNotFoundError:
        return []
    except AzureError as error:
        raise StorageUnavailable(f"reading {table.table_name}: {brief_error(error)}") from error


def release_quarantined(table: TableClient, quarantine_id: str) -> None:
    """Remove a session from the quarantine (nothing happens if it is no longer there)."""
    try:
        table.delete_entity(QUARANTINE_PARTITION, quarantine_id)
    except ResourceNotFoundError:
        return
    except AzureError as error:
        raise StorageUnavailable(f"deleting from {table.table_name}: {brief_error(error)}") from error
