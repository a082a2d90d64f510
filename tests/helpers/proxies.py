"""A TCP proxy in front of Azurite's Table service, to count what is sent or drop connections."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace

from devtools.azurite import Azurite
from sessions.settings import Settings, StorageConnection
from sessions.storage import SessionStore


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
