"""A storage account that never answers: a TCP server on 127.0.0.1 that accepts every connection
and never sends a byte, named as the blob, queue and table endpoints of a connection string.

What a storage endpoint does when it hangs (an overloaded front end, a firewall that drops the
answers): the connection is made, the request is sent, and nothing comes back. Bounded: it holds
at most `max_connections` at a time (later ones are closed at once, which the SDKs retry), and
closes them all when it stops.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from devtools.azurite import ACCOUNT, ACCOUNT_KEY


class SilentStorage:
    """The server runs from its creation until `close()`."""

    def __init__(self, max_connections: int = 64) -> None:
        self.max_connections = max_connections
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=max_connections)
        self.port = int(self._listener.getsockname()[1])
        self._held: list[socket.socket] = []
        self._closed = False
        self._lock = threading.Lock()
        self._accepting = threading.Thread(target=self._accept, name="silent-storage", daemon=True)
        self._accepting.start()

    @property
    def connections(self) -> int:
        """How many connections were made to it and are held open, unanswered."""
        with self._lock:
            return len(self._held)

    @property
    def connection_string(self) -> str:
        """Azurite's account, every endpoint at this server (none left for the SDKs to guess)."""
        endpoint = f"http://127.0.0.1:{self.port}/{ACCOUNT}"
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={endpoint};QueueEndpoint={endpoint};TableEndpoint={endpoint};"
        )

    def close(self) -> None:
        """Stop (again is harmless): refuse new connections, and close the held ones, so that
        whoever still waits on one sees its end at once."""
        with self._lock:
            self._closed = True
            held, self._held = self._held, []
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() under way (Linux)
        self._listener.close()
        for connection in held:
            with contextlib.suppress(OSError):
                connection.close()
        if self._accepting.is_alive():
            self._accepting.join(timeout=5)

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return  # closed: the test is over
            with self._lock:
                if not self._closed and len(self._held) < self.max_connections:
                    self._held.append(connection)  # read nothing, answer nothing
                    continue
            connection.close()
