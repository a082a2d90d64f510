"""Sessions and pushes as ChargePilot sends them, and sending them over HTTP."""

from __future__ import annotations

import itertools
import json
from typing import Any

import requests

from sessions.keys import KEY_HEADER

# The two keys of a rotation in progress: the test receivers accept both.
OLD_KEY = "test-key-old-5b1f0c"
NEW_KEY = "test-key-new-9d2e7a"
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
    headers: dict[str, str] | None = None,
) -> requests.Response:
    """POST a push as ChargePilot does; `body` may be bytes or a JSON-able value."""
    sent = dict(headers or {})
    if key is not None:
        sent[KEY_HEADER] = key
    if content_type is not None:
        sent["Content-Type"] = content_type
    data = body if isinstance(body, bytes) else as_body(body)
    return requests.post(url, data=data, headers=sent, timeout=timeout)
