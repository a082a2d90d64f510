"""A dropped connection in the middle of a write is retried: every write is an idempotent upsert."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace

import pytest
from azure.data.tables import TableServiceClient

from devtools.azurite import Azurite
from sessions.settings import Settings, StorageConnection
from sessions.storage import SessionStore
from sessions.storage.entities import TableWrite
from tests.helpers.tables import all_entities, tables


class DroppingProxy:
    """Forwards to Azurite's Table service, but drops the connection of the first N transactions."""

    def __init__(self, upstream_port: int, drops: int) -> None:
        self.upstream_port = upstream_port
        self.drops_left = drops
        self.dropped = 0
        self.requests: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with suppress(OSError):
            while True:
                client, _ = self.listener.accept()
                threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))

        def back() -> None:
            with suppress(OSError):
                while chunk := upstream.recv(65536):
                    client.sendall(chunk)
            client.close()

        threading.Thread(target=back, daemon=True).start()
        with suppress(OSError):
            while chunk := client.recv(65536):
                self.requests.extend(re.findall(rb"(?:POST|PUT|MERGE|PATCH|DELETE|GET) /\S+", chunk))
                if self.drops_left > 0 and b"$batch" in chunk:
                    self.drops_left -= 1
                    self.dropped += 1
                    break  # the request was sent; no answer will ever come
                upstream.sendall(chunk)
        client.close()
        upstream.close()

    def close(self) -> None:
        self.listener.close()


@contextmanager
def store_through(proxy: DroppingProxy, azurite: Azurite, settings: Settings) -> Iterator[SessionStore]:
    """A store whose Table endpoint is the proxy in front of Azurite."""
    table_port = f":{azurite.ports['Table']}/"
    through_proxy = azurite.connection_string.replace(table_port, f":{proxy.port}/")
    store = SessionStore.connect(
        replace(settings, storage=StorageConnection(connection_string=through_proxy))
    )
    try:
        yield store
    finally:
        store.close()
        proxy.close()


@pytest.fixture
def counted_store(azurite: Azurite, settings: Settings) -> Iterator[tuple[SessionStore, DroppingProxy]]:
    proxy = DroppingProxy(azurite.ports["Table"], drops=0)
    with store_through(proxy, azurite, settings) as store:
        store.ensure_tables()
        yield store, proxy


def test_sessions_are_written_in_transactions_of_at_most_100_per_partition_not_one_request_each(
    counted_store: tuple[SessionStore, DroppingProxy], settings: Settings
) -> None:
    store, proxy = counted_store
    proxy.requests.clear()
    january = [TableWrite({"PartitionKey": "2025-01", "RowKey": f"a{i:03d}"}, 1000) for i in range(250)]
    february = [TableWrite({"PartitionKey": "2025-02", "RowKey": f"b{i:03d}"}, 1000) for i in range(30)]
    assert store.save_sessions(january + february) == []
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
    assert store.save_sessions(writes) == []
    assert proxy.dropped == 2
    stored = all_entities(tables(settings)[0])
    assert sorted(entity["N"] for entity in stored) == list(range(150))


def test_a_table_deleted_under_a_running_store_is_created_again_within_the_same_write(
    store: SessionStore, settings: Settings
) -> None:
    first = [TableWrite({"PartitionKey": "2025-01", "RowKey": f"a{i}"}, 1000) for i in range(3)]
    assert store.save_sessions(first) == []
    sessions_table, _ = tables(settings)
    sessions_table.delete_table()
    deadline = time.monotonic() + 30
    while any(t.name == settings.sessions_table for t in service_of(settings).list_tables()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    again = [TableWrite({"PartitionKey": "2025-02", "RowKey": f"b{i}"}, 1000) for i in range(3)]
    assert store.save_sessions(again) == []
    assert {entity["RowKey"] for entity in all_entities(sessions_table)} == {"b0", "b1", "b2"}


def service_of(settings: Settings) -> TableServiceClient:
    assert settings.storage is not None and settings.storage.connection_string is not None
    return TableServiceClient.from_connection_string(settings.storage.connection_string)
