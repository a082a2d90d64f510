"""GET /api/sessions over real HTTP, against a served receiver and Azurite: read keys apart from
push keys, periods and corrections across months, changed_since, cursor pages, CSV, bad
parameters (docs/billing-systems.md)."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from devtools.served import ServedReceiver
from sessions.export import CSV_COLUMNS
from sessions.keys import KEY_HEADER
from sessions.reading import CHANGED_SINCE_OVERLAP
from sessions.settings import Setting, Settings
from tests.helpers.pushes import NEW_KEY, OLD_KEY, post, session

READ_KEY = "test-read-key-3c9a41"
SECOND_READ_KEY = "test-read-key-second-77d0"


@pytest.fixture
def reader(serve: Callable[..., ServedReceiver]) -> ServedReceiver:
    return serve(**{Setting.READ_KEYS: f"{READ_KEY},{SECOND_READ_KEY}"})


def get(receiver: ServedReceiver, key: str | None = READ_KEY, **params: Any) -> requests.Response:
    headers = {} if key is None else {KEY_HEADER: key}
    accept = params.pop("accept", None)
    if accept:
        headers["Accept"] = accept
    return requests.get(receiver.sessions_url, params=params, headers=headers, timeout=60)


def pages(receiver: ServedReceiver, **params: Any) -> Iterator[dict[str, Any]]:
    """Every page of a read, following the Link headers (and checking the body's `next` agrees)."""
    response = get(receiver, **params)
    for _ in range(1000):
        assert response.status_code == 200, response.text
        body = response.json()
        yield body
        link = response.headers.get("Link")
        assert (link is None) == (body["next"] is None)
        if link is None:
            return
        assert link == f'<{body["next"]}>; rel="next"'
        response = requests.get(body["next"], headers={KEY_HEADER: READ_KEY}, timeout=60)
    raise AssertionError("more than 1000 pages")


def all_rows(receiver: ServedReceiver, **params: Any) -> list[dict[str, Any]]:
    return [row for page in pages(receiver, **params) for row in page["sessions"]]


def push(receiver: ServedReceiver, sessions: list[dict[str, Any]]) -> None:
    response = post(receiver.sessions_url, sessions, key=OLD_KEY)
    assert response.status_code == 200, response.text


def month_of_sessions(month: str, count: int) -> list[dict[str, Any]]:
    """`count` sessions of three stations, one a day from the 10th of `month`."""
    return [
        session(
            ChargerID=f"CP-{n % 3}",
            StartAt=f"{month}-{10 + n}T08:00:00Z",
            EndAt=f"{month}-{10 + n}T09:00:00Z",
        )
        for n in range(count)
    ]


def identity(row: dict[str, Any]) -> tuple[str, int]:
    return row["ChargerID"], row["TransactionID"]


# --- keys ---------------------------------------------------------------------------------------


def test_without_a_read_key_configured_nothing_is_read(receiver: ServedReceiver) -> None:
    push(receiver, [session()])
    for key in (None, OLD_KEY, "anything"):
        response = get(receiver, key=key, month="2025-01")
        assert response.status_code == 503, key
        assert response.json()["error"] == "reading_not_configured"
        assert "sessions" not in response.json()


def test_a_push_key_does_not_read_and_a_read_key_does_not_push(
    reader: ServedReceiver, settings: Settings
) -> None:
    push(reader, [session()])
    for key in (OLD_KEY, NEW_KEY, None, "", READ_KEY + "x"):
        response = get(reader, key=key, month="2025-01")
        assert response.status_code == 401, key
        assert "sessions" not in response.json()
    for key in (READ_KEY, SECOND_READ_KEY):
        assert post(reader.sessions_url, [session()], key=key).status_code == 401
        assert len(all_rows(reader, month="2025-01")) == 1  # nothing pushed with it
    assert get(reader, key=SECOND_READ_KEY, month="2025-01").status_code == 200


def test_a_read_key_that_is_also_a_push_key_reads_nothing(serve: Callable[..., ServedReceiver]) -> None:
    shared = serve(**{Setting.READ_KEYS: OLD_KEY})
    response = get(shared, key=OLD_KEY, month="2025-01")
    assert response.status_code == 503
    assert "also a push key" in response.json()["message"]
    mixed = serve(**{Setting.READ_KEYS: f"{OLD_KEY},{READ_KEY}"})
    assert get(mixed, key=OLD_KEY, month="2025-01").status_code == 401
    assert get(mixed, key=READ_KEY, month="2025-01").status_code == 200


def test_an_unresolved_key_vault_reference_reads_nothing(serve: Callable[..., ServedReceiver]) -> None:
    reference = "@Microsoft.KeyVault(VaultName=kv;SecretName=chargepilot-read-keys)"
    unresolved = serve(**{Setting.READ_KEYS: reference})
    for key in (reference, READ_KEY):
        response = get(unresolved, key=key, month="2025-01")
        assert response.status_code == 503
        assert "unresolved Key Vault reference" in response.json()["message"]


# --- periods, corrections, pages -----------------------------------------------------------------


def test_a_month_pages_every_session_once_with_the_newest_values_after_corrections_across_months(
    reader: ServedReceiver,
) -> None:
    january, february = month_of_sessions("2025-01", 12), month_of_sessions("2025-02", 9)
    push(reader, january + february)
    # Corrections: four January sessions move into February (a clock put right), three February
    # sessions get other energy, and one February session moves back into January.
    moved = [
        {**item, "StartAt": "2025-02-01T00:10:00Z", "EndAt": "2025-02-01T01:10:00Z"} for item in january[:4]
    ]
    corrected = [{**item, "EnergyDelivered": 99_000 + n} for n, item in enumerate(february[:3])]
    back = [{**february[8], "StartAt": "2025-01-31T22:00:00Z", "EndAt": "2025-01-31T23:00:00Z"}]
    push(reader, moved + corrected + back)
    push(reader, moved)  # sent again: changes nothing

    rows = all_rows(reader, month="2025-02", tz="UTC", limit=4)
    expected = {identity(item) for item in moved + february[:8]}
    assert sorted(identity(row) for row in rows) == sorted(expected)  # each once
    energy = {identity(row): row["EnergyDelivered"] for row in rows}
    for n, item in enumerate(corrected):
        assert energy[identity(item)] == 99_000 + n
    starts = {identity(row): row["StartAt"] for row in rows}
    assert all(starts[identity(item)] == "2025-02-01T00:10:00Z" for item in moved)

    january_rows = all_rows(reader, month="2025-01", tz="UTC", limit=5)
    assert sorted(identity(row) for row in january_rows) == sorted(
        identity(item) for item in january[4:] + back
    )
    assert len(all_rows(reader, month="2025-03", tz="UTC")) == 0


def test_dates_are_local_midnight_in_the_zone_and_date_to_is_exclusive(reader: ServedReceiver) -> None:
    # 2025-02-28T23:30Z is 1 March 00:30 in Berlin.
    late = session(StartAt="2025-02-28T23:30:00Z", EndAt="2025-03-01T00:30:00Z")
    early = session(StartAt="2025-03-31T21:59:00Z", EndAt="2025-03-31T23:00:00Z")  # 23:59 in Berlin
    after = session(StartAt="2025-03-31T22:00:00Z", EndAt="2025-03-31T23:00:00Z")  # 1 April in Berlin
    push(reader, [late, early, after])
    berlin = {identity(row) for row in all_rows(reader, date_from="2025-03-01", date_to="2025-04-01")}
    assert berlin == {identity(late), identity(early)}
    assert {identity(row) for row in all_rows(reader, month="2025-03")} == berlin
    utc = {identity(row) for row in all_rows(reader, month="2025-03", tz="UTC")}
    assert utc == {identity(early), identity(after)}
    exact = all_rows(reader, date_from="2025-03-31T21:59:00Z", date_to="2025-03-31T22:00:00Z")
    assert [identity(row) for row in exact] == [identity(early)]
    (row,) = all_rows(reader, date_from="2025-02-28T23:30:00+00:00", date_to="2025-03-01", tz="UTC")
    assert row["StartLocal"] == "2025-02-28T23:30:00+00:00"


def test_changed_since_returns_exactly_the_sessions_changed_after_it(reader: ServedReceiver) -> None:
    first = [session(ChargerID=f"CP-{n}") for n in range(6)]
    push(reader, first)
    time.sleep(0.05)
    since = datetime.now(UTC)
    time.sleep(0.05)
    corrected = [{**item, "EnergyDelivered": 1234} for item in first[:2]]
    new = [session(ChargerID="CP-new")]
    push(reader, corrected + first[2:4] + new)  # first[2:4] sent again unchanged
    body = next(pages(reader, changed_since=since.isoformat()))
    answered = get(reader, changed_since=since.isoformat())
    assert answered.headers["X-Next-Changed-Since"].endswith("Z")
    assert answered.headers["Cache-Control"] == "no-store"  # billing data is not for shared caches
    assert sorted(identity(row) for row in body["sessions"]) == sorted(
        identity(item) for item in corrected + new
    )
    assert all(row["EnergyDelivered"] == 1234 for row in body["sessions"] if row["ChargerID"] != "CP-new")
    assert len(all_rows(reader, changed_since=datetime.now(UTC).isoformat())) == 0
    assert len(all_rows(reader, changed_since="2000-01-01T00:00:00Z")) == 7
    # With a month too: only what changed in it.
    assert len(all_rows(reader, changed_since=since.isoformat(), month="2025-01")) == 3
    # The next changed_since is a little before this read began (CHANGED_SINCE_OVERLAP): stored
    # and used next time, it loses nothing, at the price of the last minute's changes twice.
    next_since = datetime.fromisoformat(body["next_changed_since"].replace("Z", "+00:00"))
    assert since - CHANGED_SINCE_OVERLAP - timedelta(seconds=5) < next_since < since
    again = {identity(row) for row in all_rows(reader, changed_since=body["next_changed_since"])}
    assert again >= {identity(item) for item in corrected + new}


def test_no_filter_reads_every_session_in_pages(reader: ServedReceiver) -> None:
    sent = [session(ChargerID=f"CP-{n % 4}") for n in range(25)]
    push(reader, sent)
    got = list(pages(reader, limit=10))
    assert [page["count"] for page in got][:2] == [10, 10]
    assert sorted(identity(row) for page in got for row in page["sessions"]) == sorted(map(identity, sent))


def test_csv_has_the_export_columns_and_a_bom_for_excel(reader: ServedReceiver) -> None:
    push(reader, [session(ChargerID="=HYPERLINK(1)"), session()])
    for params in ({"accept": "text/csv"}, {"format": "csv"}):
        response = get(reader, month="2025-01", **params)
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/csv")
        assert response.content.startswith("\ufeff".encode())
        rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
        assert tuple(rows[0]) == CSV_COLUMNS
        assert len(rows) == 3
        assert "'=HYPERLINK(1)" in {row[1] for row in rows[1:]}
    paged = get(reader, month="2025-01", format="csv", limit=1)
    assert 'rel="next"' in paged.headers["Link"]
    rest = requests.get(paged.headers["Link"][1:].split(">")[0], headers={KEY_HEADER: READ_KEY}, timeout=60)
    assert rest.headers["Content-Type"].startswith("text/csv")


@pytest.mark.parametrize(
    ("params", "found"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "10001"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"month": "2025-13"}, "month"),
        ({"month": "2025-03", "date_from": "2025-03-01"}, "either month"),
        ({"date_from": "2025-03-10", "date_to": "2025-03-01"}, "not after"),
        ({"date_from": "03/01/2025"}, "date_from"),
        ({"tz": "Mars/Olympus"}, "time zone"),
        ({"changed_since": "2025-03-01T00:00:00"}, "no time zone"),
        ({"changed_since": "yesterday"}, "changed_since"),
        ({"since": "2025-01-01"}, "unknown parameter"),
        ({"format": "xml"}, "format"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "eyJ2IjoxfQ"}, "cursor"),
    ],
)
def test_a_bad_parameter_is_400_with_a_clear_message(
    reader: ServedReceiver, params: dict[str, str], found: str
) -> None:
    response = get(reader, **params)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "invalid_parameter" and found in body["message"]


def test_a_cursor_takes_no_other_filter(reader: ServedReceiver) -> None:
    push(reader, [session(), session()])
    first = get(reader, month="2025-01", limit=1).json()
    cursor = first["next"].split("cursor=")[1].split("&")[0]
    assert get(reader, cursor=cursor, month="2025-02").status_code == 400
    assert get(reader, cursor=cursor, limit=5).status_code == 200
