"""Helpers shared by the tests: sessions as ChargePilot sends them, and reading them back."""

from __future__ import annotations

import itertools
import json
from typing import Any

import requests
from azure.data.tables import TableClient, TableServiceClient

from sessions.settings import Settings
from sessions.store import resolve_connection_string

KEY_HEADER = "Ocp-Apim-Subscription-Key"
_transactions = itertools.count(7_100_000)


def session(**fields: Any) -> dict[str, Any]:
    """A valid session (the Push-API article's example), with a fresh TransactionID by default."""
    body: dict[str, Any] = {
        "TransactionID": next(_transactions),
        "ChargerID": "TACW2242521T0570",
        "ConnectorID": 1,
        "StartAt": "2025-01-09T13:04:34.000Z",
        "EndAt": "2025-01-10T06:02:38.000Z",
        "InitialSoC": None,
        "Id": "56395736",
        "EndSoC": None,
        "EnergyDelivered": 17233,
    }
    body.update(fields)
    return body


def as_body(value: Any) -> bytes:
    return json.dumps(value).encode("utf-8")


def post(
    url: str,
    body: bytes | Any,
    *,
    key: str | None,
    content_type: str | None = "application/json",
    timeout: float = 60,
) -> requests.Response:
    """POST a push as ChargePilot does; `body` may be bytes or a JSON-able value."""
    headers = {}
    if key is not None:
        headers[KEY_HEADER] = key
    if content_type is not None:
        headers["Content-Type"] = content_type
    data = body if isinstance(body, bytes) else as_body(body)
    return requests.post(url, data=data, headers=headers, timeout=timeout)


def tables(settings: Settings) -> tuple[TableClient, TableClient]:
    """Clients for the sessions and quarantine tables, to look at what was stored."""
    assert settings.storage is not None and settings.storage.connection_string is not None
    service = TableServiceClient.from_connection_string(
        resolve_connection_string(settings.storage.connection_string)
    )
    return service.get_table_client(settings.sessions_table), service.get_table_client(
        settings.rejected_table
    )


def all_entities(table: TableClient) -> list[dict[str, Any]]:
    """Every entity of a table (an empty list when the table does not exist yet)."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return [dict(entity) for entity in table.list_entities()]
    except ResourceNotFoundError:
        return []
