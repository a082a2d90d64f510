"""sessions/storage/batch.py builds the transaction the SDK would: compared part by part with what
TableClient.submit_transaction sends for the same operations (captured by a transport that sends
nothing). Only the boundaries and the per-part date headers may differ."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from azure.core import MatchConditions
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.pipeline.transport import HttpTransport
from azure.data.tables import EdmType, EntityProperty, TableClient, UpdateMode

from sessions.storage.batch import BatchOperation, transaction_body

ACCOUNT = "devstoreaccount1"
# Azurite's published development key: not a secret.
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
ODD_KEYS = ["plain", "a'b", "it''s", "sl/ash", "sp ace", "h#sh?q%", "ümlaut-€", "x" * 300]


class _Sent(Exception):
    pass


class _Capture(HttpTransport[Any, Any]):
    """A transport that records the request and sends nothing."""

    def __init__(self) -> None:
        self.body = b""

    def __enter__(self) -> _Capture:
        return self

    def __exit__(self, *args: object) -> None:
        pass

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def send(self, request: Any, **kwargs: Any) -> Any:
        self.body = request.body if hasattr(request, "body") else request.content
        raise _Sent


def _table(transport: HttpTransport[Any, Any]) -> TableClient:
    return TableClient(
        endpoint=f"http://127.0.0.1:10002/{ACCOUNT}",
        table_name="ChargingSessions",
        credential=AzureNamedKeyCredential(ACCOUNT, DEV_KEY),
        transport=transport,
    )


def _parts(body: bytes) -> list[tuple[str, dict[str, str], bytes]]:
    """Each sub-request: request line, headers (dates left out), body."""
    text = body.replace(b"\r\n", b"\n")
    changeset = re.search(rb"boundary=(changeset_[\w-]+)", text)
    assert changeset is not None
    found = []
    for chunk in text.split(b"--" + changeset.group(1))[1:-1]:
        _, request = chunk.split(b"\n\n", 1)  # the part's own MIME headers, then the HTTP request
        head, _, payload = request.partition(b"\n\n")
        line, *header_lines = head.decode().split("\n")
        headers = dict(header.split(": ", 1) for header in header_lines)
        for dropped in ("x-ms-date", "Date"):
            headers.pop(dropped, None)
        found.append((line, headers, payload.strip()))
    return found


def _sdk_body(operations: list[tuple[Any, ...]]) -> bytes:
    capture = _Capture()
    with pytest.raises(_Sent):
        _table(capture).submit_transaction(operations)
    return capture.body


def _entity(row_key: str) -> dict[str, Any]:
    return {
        "PartitionKey": "2025-01",
        "RowKey": row_key,
        "ChargerID": row_key,
        "TransactionID": EntityProperty(2**40 + 7, EdmType.INT64),
        "StartAt": datetime(2025, 1, 9, 13, 4, 34, 120000, tzinfo=UTC),
        "Energy": 7.125,
        "Seconds": 3600,
        "Paid": True,
        "Note": 'quote " backslash \\ newline \n tab \t',
    }


@pytest.mark.parametrize("row_key", ODD_KEYS)
def test_each_kind_of_operation_is_the_request_the_sdk_builds(row_key: str) -> None:
    entity = _entity(row_key)
    etag = "W/\"datetime'2025-01-09T13%3A04%3A34.1234567Z'\""
    sdk = _sdk_body(
        [
            ("create", entity, {"response_preference": "return-no-content"}),
            (
                "update",
                {**entity, "RowKey": row_key + "~2"},
                {
                    "mode": UpdateMode.REPLACE,
                    "etag": etag,
                    "match_condition": MatchConditions.IfNotModified,
                },
            ),
            ("upsert", {**entity, "RowKey": row_key + "~3"}, {"mode": UpdateMode.REPLACE}),
            ("delete", {**entity, "RowKey": row_key + "~4"}),
        ]
    )
    ours = transaction_body(
        _table(_Capture()),
        [
            BatchOperation("create", entity),
            BatchOperation("update", {**entity, "RowKey": row_key + "~2"}, etag),
            BatchOperation("upsert", {**entity, "RowKey": row_key + "~3"}),
            BatchOperation("delete", {**entity, "RowKey": row_key + "~4"}),
        ],
        "batch_test",
    )
    assert _parts(ours) == _parts(sdk)
    assert ours.startswith(b"--batch_test\r\nContent-Type: multipart/mixed; boundary=changeset_")
    assert ours.endswith(b"--\r\n\r\n--batch_test--\r\n")


def test_a_hundred_operations_are_a_hundred_parts_numbered_from_zero() -> None:
    operations = [BatchOperation("upsert", _entity(f"row-{number:03d}")) for number in range(100)]
    body = transaction_body(_table(_Capture()), operations, "batch_test")
    assert re.findall(rb"Content-ID: (\d+)", body) == [str(number).encode() for number in range(100)]
    assert len(_parts(body)) == 100


def test_an_update_without_its_etag_is_refused_before_anything_is_sent() -> None:
    with pytest.raises(ValueError, match="etag"):
        transaction_body(_table(_Capture()), [BatchOperation("update", _entity("r"))], "batch_test")


def test_a_key_that_is_not_a_string_is_refused_as_the_sdk_refuses_it() -> None:
    with pytest.raises(TypeError, match="must be of type string"):
        transaction_body(
            _table(_Capture()), [BatchOperation("upsert", {"PartitionKey": "p", "RowKey": 7})], "batch_test"
        )
