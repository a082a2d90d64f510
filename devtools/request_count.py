"""Counting the requests the Tables SDK sends to storage, by table and kind, for the benchmark.

A `raw_request_hook` on the Table service client sees every request the SDK sends, each try of it
(azure-core calls it after the retry policy, just before the transport), in every thread that
uses the client or the table clients made from it. The hook counts it, then does what the
product's own hook does (sessions.storage.connection.within_deadline), so that the client under
test behaves as the receiver's does. An entity-group transaction is one request (POST $batch);
its table and number of operations are read from its parts (the SDK's) or from the request lines
in its body (the receiver's, sessions/storage/batch.py).

Kinds: `read` (a query or a point read), `transaction` (an entity-group transaction),
`write` (one entity inserted, updated, upserted or deleted), `table` (a table created or deleted).
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from azure.data.tables import TableServiceClient

from sessions.storage.connection import TABLE_CLIENT_OPTIONS, within_deadline

KINDS = ("read", "transaction", "write", "table")


@dataclass(frozen=True)
class Requests:
    """Requests counted in a span of time: by (table role, kind), and the operations that the
    transactions among them carried."""

    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    operations: int = 0

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def of_kind(self, kind: str) -> int:
        return sum(count for (_, counted), count in self.counts.items() if counted == kind)

    def as_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            **{kind: self.of_kind(kind) for kind in KINDS},
            "transaction_operations": self.operations,
            "by_table": {f"{role} {kind}": count for (role, kind), count in sorted(self.counts.items())},
        }

    def brief(self) -> str:
        """`7 = index 3 read + 2 txn, sessions 2 txn`: the total, then by table."""
        by_role: dict[str, list[str]] = {}
        short = {"read": "read", "transaction": "txn", "write": "write", "table": "table"}
        for (role, kind), count in sorted(self.counts.items()):
            by_role.setdefault(role, []).append(f"{count} {short[kind]}")
        parts = ", ".join(f"{role} {' + '.join(kinds)}" for role, kinds in by_role.items())
        return f"{self.total}" + (f" = {parts}" if parts else "")


class RequestCounter:
    """The hook and its counts. `roles` names tables by their part (sessions, index, quarantine);
    a table without a role is counted under its own name."""

    def __init__(self, roles: Mapping[str, str] | None = None) -> None:
        self.roles = dict(roles or {})
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()
        self._operations = 0

    def hook(self, request: Any) -> None:
        within_deadline(request)  # first: a request it stops is never sent, so not counted
        kind, table, operations = describe(request.http_request)
        with self._lock:
            self._counts[(self.roles.get(table, table), kind)] += 1
            self._operations += operations

    def take(self) -> Requests:
        """The requests counted since the last take (and start counting afresh)."""
        with self._lock:
            taken = Requests(dict(self._counts), self._operations)
            self._counts.clear()
            self._operations = 0
        return taken


def counting_table_service(connection_string: str, counter: RequestCounter) -> TableServiceClient:
    """A Table service client configured as the receiver's (sessions.storage.connection), counted."""
    return TableServiceClient.from_connection_string(
        connection_string, raw_request_hook=counter.hook, **TABLE_CLIENT_OPTIONS
    )


def describe(http_request: Any) -> tuple[str, str, int]:
    """(kind, table, operations in a transaction) of one request of the Tables SDK."""
    method = str(http_request.method).upper()
    last = unquote(urlsplit(str(http_request.url)).path.rsplit("/", 1)[-1])
    if last == "$batch":
        urls = [str(part.url) for part in _transaction_parts(http_request)] or _body_urls(http_request)
        table = _table_of(urls[0]) if urls else "?"
        return "transaction", table, len(urls)
    name, _, keys = last.partition("(")
    if name == "Tables":
        # Create (POST /Tables) or delete (DELETE /Tables('name')): the table is in the body or key.
        return "table", keys.rstrip(")").strip("'") or "(tables)", 0
    if method == "GET":
        return "read", name, 0
    return "write", name, 0


def _transaction_parts(http_request: Any) -> list[Any]:
    """The operations of a $batch request: its changeset's own requests (azure-core keeps them in
    `multipart_mixed_info` until the transport writes the body)."""
    info = getattr(http_request, "multipart_mixed_info", None)
    if not info or not info[0]:
        return []
    changeset = info[0][0]
    inner = getattr(changeset, "multipart_mixed_info", None)
    return list(inner[0]) if inner and inner[0] else []


def _body_urls(http_request: Any) -> list[str]:
    """The operations of a $batch request built as bytes (sessions/storage/batch.py): the URL of
    each sub-request's request line."""
    body = getattr(http_request, "content", None)
    if not isinstance(body, bytes | bytearray):
        return []
    return [url.decode() for url in _SUB_REQUEST.findall(bytes(body))]


_SUB_REQUEST = re.compile(rb"^(?:POST|PUT|MERGE|PATCH|DELETE) (\S+) HTTP/1\.1\r?$", re.MULTILINE)


def _table_of(url: str) -> str:
    return unquote(urlsplit(url).path.rsplit("/", 1)[-1]).partition("(")[0]
