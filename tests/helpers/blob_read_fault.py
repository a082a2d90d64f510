"""A blob endpoint that takes every push body and never gives one back intact.

An HTTP proxy on 127.0.0.1 in front of Azurite's blob service: it relays every request (container
creation, uploads, listings, properties) but a read of a blob's content, which it spoils in one
of two ways:

- "refused": answered `403 AuthorizationPermissionMismatch`, as Azure answers an identity that
  may write blobs but not read them (a storage error);
- "corrupted": Azurite's answer, the same length and headers, its first two bytes zeroed (the
  gzip magic), as a damaged blob would be (not a storage error: what comes back is unreadable).

For a push answered 202, either is a background run that fails every time, deterministically:
the archive was written, and can never be read back.
"""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from urllib.parse import urlsplit

from devtools.azurite import ACCOUNT, Azurite

Fault = Literal["refused", "corrupted"]
_NOT_RELAYED = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "host"})
# What this server's own send_response writes already.
_OWN_HEADERS = frozenset({"date", "server"})
_REFUSAL = (
    b'<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthorizationPermissionMismatch</Code>'
    b"<Message>This request is not authorized to perform this operation using this permission."
    b"</Message></Error>"
)


class BlobReadFault(ThreadingHTTPServer):
    """The proxy serves from its creation until `close()` (`with contextlib.closing(...)`)."""

    daemon_threads = True

    def __init__(self, azurite: Azurite, fault: Fault) -> None:
        super().__init__(("127.0.0.1", 0), _Relay)
        self.azurite = azurite
        self.fault: Fault = fault
        self.spoiled = 0  # how many blob reads it spoiled
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, name="blob-read-fault", daemon=True)
        self._thread.start()

    @property
    def connection_string(self) -> str:
        """Azurite's connection string with the blob endpoint through this proxy."""
        return self.azurite.connection_string.replace(
            f"BlobEndpoint={self.azurite.blob_endpoint};",
            f"BlobEndpoint=http://127.0.0.1:{self.server_address[1]}/{ACCOUNT};",
        )

    def count_spoiled(self) -> None:
        with self._lock:
            self.spoiled += 1

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)


class _Relay(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: BlobReadFault

    def do_GET(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        # A blob's content: GET of a blob path (containers and listings carry restype=).
        blob_read = self.command == "GET" and "restype=" not in urlsplit(self.path).query
        if blob_read and self.server.fault == "refused":
            self.server.count_spoiled()
            headers = [
                ("Content-Type", "application/xml"),
                ("x-ms-error-code", "AuthorizationPermissionMismatch"),
            ]
            self._send(403, headers, _REFUSAL)
            return
        status, headers, content = self._relayed(body)
        if blob_read and status in (200, 206) and content:
            self.server.count_spoiled()
            content = b"\0\0" + content[2:]
        self._send(status, headers, content)

    do_PUT = do_POST = do_DELETE = do_HEAD = do_GET  # noqa: N815

    def _relayed(self, body: bytes | None) -> tuple[int, list[tuple[str, str]], bytes]:
        upstream = http.client.HTTPConnection("127.0.0.1", self.server.azurite.ports["Blob"], timeout=30)
        try:
            headers = {
                name: value for name, value in self.headers.items() if name.lower() not in _NOT_RELAYED
            }
            upstream.request(self.command, self.path, body=body, headers=headers)
            answer = upstream.getresponse()
            content = answer.read()
            kept = [
                (name, value)
                for name, value in answer.getheaders()
                if name.lower() not in _NOT_RELAYED | _OWN_HEADERS
            ]
            if self.command == "HEAD":  # no body, but the size of the one a GET would have
                kept.append(("Content-Length", answer.getheader("Content-Length") or "0"))
            return answer.status, kept, content
        finally:
            upstream.close()

    def _send(self, status: int, headers: list[tuple[str, str]], content: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if self.command != "HEAD":
            self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(content)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        return None
