"""A blob endpoint that takes every push body and never gives one back.

An HTTP proxy on 127.0.0.1 in front of Azurite's blob service: it relays every request (container
creation, uploads, listings, properties) but a read of a blob's content, which it answers
`403 AuthorizationPermissionMismatch`, as Azure does when an identity may write but not read.
For a push answered 202, that is a background run that fails every time, deterministically:
the archive was written, and can never be read back.
"""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from devtools.azurite import Azurite

_NOT_RELAYED = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "host"})
# What this server's own send_response writes already.
_OWN_HEADERS = frozenset({"date", "server"})
_REFUSAL = (
    b'<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthorizationPermissionMismatch</Code>'
    b"<Message>This request is not authorized to perform this operation using this permission."
    b"</Message></Error>"
)


class BlobReadRefusal:
    """The proxy runs from its creation until `close()` (`with contextlib.closing(...)`)."""

    def __init__(self, azurite: Azurite) -> None:
        self.azurite = azurite
        self.refused = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Relay)
        self._server.daemon_threads = True
        self._server.refusal = self  # type: ignore[attr-defined]
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="blob-read-refusal", daemon=True
        )
        self._thread.start()

    @property
    def connection_string(self) -> str:
        """Azurite's connection string with the blob endpoint through this proxy."""
        return self.azurite.connection_string.replace(
            f"BlobEndpoint={self.azurite.blob_endpoint};",
            f"BlobEndpoint=http://127.0.0.1:{self.port}/{self.azurite.blob_endpoint.rsplit('/', 1)[1]};",
        )

    def count_refusal(self) -> None:
        with self._lock:
            self.refused += 1

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class _Relay(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        refusal: BlobReadRefusal = self.server.refusal  # type: ignore[attr-defined]
        # A blob's content: GET (or HEAD) of a blob path; containers and listings carry restype=.
        if self.command in ("GET", "HEAD") and "restype=" not in urlsplit(self.path).query:
            refusal.count_refusal()
            self._send(
                403,
                [("Content-Type", "application/xml"), ("x-ms-error-code", "AuthorizationPermissionMismatch")],
                _REFUSAL,
            )
            return
        upstream = http.client.HTTPConnection("127.0.0.1", refusal.azurite.ports["Blob"], timeout=30)
        try:
            headers = {
                name: value for name, value in self.headers.items() if name.lower() not in _NOT_RELAYED
            }
            upstream.request(self.command, self.path, body=body, headers=headers)
            answer = upstream.getresponse()
            content = answer.read()
            relayed = [
                (name, value)
                for name, value in answer.getheaders()
                if name.lower() not in _NOT_RELAYED | _OWN_HEADERS
            ]
        finally:
            upstream.close()
        self._send(answer.status, relayed, content)

    do_PUT = do_POST = do_DELETE = do_HEAD = do_GET  # noqa: N815

    def _send(self, status: int, headers: list[tuple[str, str]], content: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(content)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        return None
