"""sessions/reading.py: the read parameters, the cursor, and what a bad one is told."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from sessions.reading import CHANGED_SINCE_OVERLAP, DEFAULT_LIMIT, ReadError, encode_cursor, parse_request
from sessions.storage import ReadCursor

NOW = datetime(2025, 4, 2, 12, 0, tzinfo=UTC)


def test_a_berlin_month_is_its_local_midnights_in_utc() -> None:
    request = parse_request({"month": "2025-03"}, None, now=NOW)
    assert request.query.start == datetime(2025, 2, 28, 23, 0, tzinfo=UTC)
    assert request.query.end == datetime(2025, 3, 31, 22, 0, tzinfo=UTC)
    assert (request.limit, request.csv, request.cursor) == (DEFAULT_LIMIT, False, None)
    assert request.next_changed_since == NOW - CHANGED_SINCE_OVERLAP


def test_dates_and_date_times_and_open_ends() -> None:
    request = parse_request({"date_from": "2025-03-01T00:00:00+02:00", "tz": "UTC"}, None, now=NOW)
    assert request.query.start == datetime(2025, 2, 28, 22, 0, tzinfo=UTC)
    assert request.query.end == datetime.max.replace(tzinfo=UTC)
    assert parse_request({}, None, now=NOW).query.start is None


@pytest.mark.parametrize(
    ("accept", "wanted"),
    [(None, False), ("text/csv", True), ("text/csv, application/json", False), ("*/*", False)],
)
def test_csv_is_asked_for_by_accept(accept: str | None, wanted: bool) -> None:
    assert parse_request({}, accept, now=NOW).csv is wanted


@pytest.mark.parametrize(
    "token",
    [None, {"PartitionKey": "2025-03", "RowKey": "CP-1_0000000042"}, {"PartitionKey": "x", "RowKey": None}],
)
def test_a_cursor_carries_the_filters_and_the_position(token: dict[str, str | None] | None) -> None:
    first = parse_request(
        {"month": "2025-03", "changed_since": "2025-03-05T10:00:00Z", "tz": "UTC"}, None, now=NOW
    )
    cursor = encode_cursor(first, ReadCursor("moved", token))
    again = parse_request({"cursor": cursor, "limit": "10", "format": "csv"}, None, now=datetime.now(UTC))
    assert again.query == first.query
    assert again.zone == first.zone and again.next_changed_since == first.next_changed_since
    assert again.cursor == ReadCursor("moved", token)
    assert (again.limit, again.csv) == (10, True)


# A cursor's state as encode_cursor writes it, for a read with no filter.
VALID_STATE: dict[str, object] = {
    "v": 1,
    "start": None,
    "end": None,
    "changed": None,
    "tz": "UTC",
    "next_changed": "2025-01-01T00:00:00+00:00",
    "phase": "home",
    "token": None,
}


@pytest.mark.parametrize(
    "state",
    [
        {"v": 2},
        {**VALID_STATE, "next_changed": None},
        {**VALID_STATE, "phase": "moved"},  # moved pointers belong to a period
        {**VALID_STATE, "tz": "Nowhere/At"},
        {**VALID_STATE, "token": [1]},
        {**VALID_STATE, "start": "2025-01-01T00:00:00+00:00"},  # a start without an end
    ],
)
def test_a_cursor_this_receiver_did_not_give_is_refused(state: dict[str, object]) -> None:
    with pytest.raises(ReadError, match="cursor"):
        parse_request({"cursor": _cursor(state)}, None, now=NOW)


def test_the_valid_state_is_a_cursor() -> None:
    assert parse_request({"cursor": _cursor(VALID_STATE)}, None, now=NOW).cursor == ReadCursor("home", None)


def _cursor(state: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state).encode()).decode().rstrip("=")
