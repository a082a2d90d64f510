"""Entity-group transactions, built and read here rather than by azure-data-tables.

`TableClient.submit_transaction` builds each transaction as nested `email`-package MIME messages
and parses the answer the same way: about 0.6 ms of CPU per entity, most of the receiver's CPU
and, on two cores, most of a push's time (docs/performance.md). The format itself is plain text
(the Table service's "Performing entity group transactions"): one `multipart/mixed` batch holding
one changeset, each operation an `application/http` part with a request line, a few headers and
the entity's JSON. This module writes exactly that, with the SDK's own entity serialisation
(`_add_entity_properties`) and key escaping, and sends it through the table client's own pipeline
(authentication, retries, the raw request hooks), so that a request here is the one the SDK would
send but for the boundaries, the per-part date headers the service does not read, and
`Prefer: return-no-content` on inserts, which spares the service echoing every entity back.

A successful answer is a `202` whose parts all say `2xx`: read with one regular expression. Any
other answer is handed to the SDK's own decoding (`response.parts()`, `_decode_error`), so that
every error is the exception `submit_transaction` raises for it (`TableTransactionError` with the
failing operation's code, `RequestTooLargeError`, `ResourceNotFoundError` for a missing table...),
and the callers' judgement of conflicts, refusals and transient faults is the same either way.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast
from urllib.parse import quote

from azure.core.rest import HttpRequest
from azure.data.tables import RequestTooLargeError, TableClient, TableTransactionError
from azure.data.tables import _error as _sdk_errors
from azure.data.tables._serialize import _add_entity_properties

Kind = Literal["create", "update", "upsert", "delete"]

# The SDK's own decoding of an error answer (untyped): the same exception submit_transaction raises.
_decode_error = cast(Callable[..., Exception], _sdk_errors._decode_error)
_validate_tablename_error = cast(Callable[[Exception, str], None], _sdk_errors._validate_tablename_error)

_STATUS_LINE = re.compile(rb"^HTTP/1\.1 (\d{3})", re.MULTILINE)
_ENTITY_HEADERS = "Content-Type: application/json\r\nx-ms-version: {version}\r\nDataServiceVersion: 3.0\r\n"


@dataclass(frozen=True)
class BatchOperation:
    """One operation of a transaction: an insert, a replace only if unchanged since `etag`, an
    insert-or-replace, or a delete of whatever is there."""

    kind: Kind
    entity: Mapping[str, Any]
    etag: str | None = None


def transaction_body(table: TableClient, operations: Sequence[BatchOperation], boundary: str) -> bytes:
    """The multipart body of one transaction on `table` (the changeset inside batch `boundary`)."""
    version = table.api_version
    base = f"{table.scheme}://{table._primary_hostname}/{table.table_name}"
    headers = _ENTITY_HEADERS.format(version=version)
    changeset = f"changeset_{uuid.uuid4()}"
    parts: list[bytes] = [
        f"--{boundary}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n".encode("ascii")
    ]
    for number, operation in enumerate(operations):
        entity = operation.entity
        head = (
            f"--{changeset}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
            f"Content-ID: {number}\r\n\r\n"
        )
        if operation.kind == "create":
            payload = _json(entity)
            parts.append(
                (
                    f"{head}POST {base} HTTP/1.1\r\n{headers}Content-Length: {len(payload)}\r\n"
                    "Accept: application/json;odata=minimalmetadata\r\nPrefer: return-no-content\r\n\r\n"
                ).encode()
                + payload
                + b"\r\n"
            )
            continue
        address = f"{base}(PartitionKey='{_key(entity['PartitionKey'])}',RowKey='{_key(entity['RowKey'])}')"
        if operation.kind == "delete":
            parts.append(
                (
                    f"{head}DELETE {address} HTTP/1.1\r\nx-ms-version: {version}\r\n"
                    "DataServiceVersion: 3.0\r\nAccept: application/json;odata=minimalmetadata\r\n"
                    "If-Match: *\r\n\r\n\r\n"
                ).encode()
            )
            continue
        payload = _json(entity)
        condition = ""
        if operation.kind == "update":
            if operation.etag is None:
                raise ValueError("an update needs the etag it was read with")
            condition = f"If-Match: {operation.etag}\r\n"
        parts.append(
            (
                f"{head}PUT {address} HTTP/1.1\r\n{headers}Content-Length: {len(payload)}\r\n"
                f"Accept: application/json\r\n{condition}\r\n"
            ).encode()
            + payload
            + b"\r\n"
        )
    parts.append(f"--{changeset}--\r\n\r\n--{boundary}--\r\n".encode("ascii"))
    return b"".join(parts)


def submit(table: TableClient, operations: Sequence[BatchOperation], **kwargs: Any) -> None:
    """Write the operations as one entity-group transaction (all or none), or raise what
    `TableClient.submit_transaction` raises for the same answer."""
    if not operations:
        return
    boundary = f"batch_{uuid.uuid4()}"
    request = HttpRequest(
        "POST",
        f"{table.scheme}://{table._primary_hostname}/$batch",
        headers={
            "x-ms-version": table.api_version,
            "DataServiceVersion": "3.0",
            "MaxDataServiceVersion": "3.0;NetFx",
            "Content-Type": f"multipart/mixed; boundary={boundary}",
            "Accept": "application/json",
        },
        content=transaction_body(table, operations, boundary),
    )
    response = table._client.send_request(request, stream=True, **kwargs)
    try:
        body = response.read()
        if response.status_code == 202:
            statuses = [int(status) for status in _STATUS_LINE.findall(body)]
            if len(statuses) == len(operations) and all(200 <= status < 300 for status in statuses):
                return
        _raise_as_the_sdk(table, response, len(operations))
    finally:
        response.close()


def _raise_as_the_sdk(table: TableClient, response: Any, operations: int) -> None:
    """The SDK's own reading of an answer that is not a full success (its _batch_send)."""
    # response.parts() pairs each part of the answer with a sub-request of the request, as the
    # SDK records them when it builds one: record as many, built only now that they are needed.
    placeholders = [
        HttpRequest("POST", f"{table.scheme}://{table._primary_hostname}/") for _ in range(operations)
    ]
    changeset = HttpRequest("POST", "")
    changeset.set_multipart_mixed(*placeholders, boundary=f"changeset_{uuid.uuid4()}")
    response.request.set_multipart_mixed(changeset, enforce_https=False, boundary=f"batch_{uuid.uuid4()}")
    if response.status_code == 413:
        raise _decode_error(
            response, error_message="The transaction request was too large", error_type=RequestTooLargeError
        )
    if response.status_code != 202:
        decoded = _decode_error(response)
        _validate_tablename_error(decoded, table.table_name)
        raise decoded
    error_parts = [part for part in response.parts() if not 200 <= part.status_code < 300]
    if not error_parts:
        raise TableTransactionError(message="the transaction's answer holds fewer parts than operations")
    if error_parts[0].status_code == 413:
        raise _decode_error(
            response, error_message="The transaction request was too large", error_type=RequestTooLargeError
        )
    decoded = _decode_error(response=error_parts[0], error_type=TableTransactionError)
    _validate_tablename_error(decoded, table.table_name)
    raise decoded


def _json(entity: Mapping[str, Any]) -> bytes:
    # The SDK's serialisation (types and their odata annotations), and its json.dumps defaults.
    return json.dumps(_add_entity_properties(entity)).encode("utf-8")


def _key(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("PartitionKey or RowKey must be of type string.")
    return quote(value.replace("'", "''"), safe="")
