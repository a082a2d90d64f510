"""A dropped connection in the middle of a write is retried: every write is an idempotent upsert."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from azure.data.tables import TableServiceClient

from devtools.azurite import Azurite
from sessions.settings import Settings
from sessions.storage import SessionStore
from sessions.storage.entities import TableWrite
from tests.helpers.proxies import DroppingProxy, store_through
from tests.helpers.tables import all_entities, tables


def test_sessions_are_written_in_transactions_of_at_most_100_per_partition_not_one_request_each(
    counted_store: tuple[SessionStore, DroppingProxy], settings: Settings
) -> None:
    store, proxy = counted_store
    proxy.requests.clear()
    january = [TableWrite({"PartitionKey": "2025-01", "RowKey": f"a{i:03d}"}, 1000) for i in range(250)]
    february = [TableWrite({"PartitionKey": "2025-02", "RowKey": f"b{i:03d}"}, 1000) for i in range(30)]
    assert store.upsert_sessions(january + february) == []
    # 100 + 100 + 50 in January, 30 in February: four requests for 280 sessions, all of them batches.
    assert len(proxy.requests) == 4
    assert all(request.startswith(b"POST /") and request.endswith(b"/$batch") for request in proxy.requests)
    assert len(all_entities(tables(settings)[0])) == 280


@pytest.fixture
def dropping_store(azurite: Azurite, settings: Settings) -> Iterator[tuple[SessionStore, DroppingProxy]]:
    proxy = DroppingProxy(azurite.ports["Table"], drops=2)
    with store_through(proxy, azurite, settings) as store:
        yield store, proxy


def test_a_transaction_whose_connection_drops_is_sent_again_and_lands(
    dropping_store: tuple[SessionStore, DroppingProxy], settings: Settings
) -> None:
    store, proxy = dropping_store
    writes = [TableWrite({"PartitionKey": "2025-01", "RowKey": f"r{i}", "N": i}, 1000) for i in range(150)]
    assert store.upsert_sessions(writes) == []
    assert proxy.dropped == 2
    stored = all_entities(tables(settings)[0])
    assert sorted(entity["N"] for entity in stored) == list(range(150))


def test_a_table_deleted_under_a_running_store_is_created_again_within_the_same_write(
    store: SessionStore, settings: Settings
) -> None:
    first = [TableWrite({"PartitionKey": "2025-01", "RowKey": f"a{i}"}, 1000) for i in range(3)]
    assert store.upsert_sessions(first) == []
    sessions_table, _ = tables(settings)
    sessions_table.delete_table()
    deadline = time.monotonic() + 30
    while any(t.name == settings.sessions_table for t in service_of(settings).list_tables()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    again = [TableWrite({"PartitionKey": "2025-02", "RowKey": f"b{i}"}, 1000) for i in range(3)]
    assert store.upsert_sessions(again) == []
    assert {entity["RowKey"] for entity in all_entities(sessions_table)} == {"b0", "b1", "b2"}


def service_of(settings: Settings) -> TableServiceClient:
    assert settings.storage is not None and settings.storage.connection_string is not None
    return TableServiceClient.from_connection_string(settings.storage.connection_string)
