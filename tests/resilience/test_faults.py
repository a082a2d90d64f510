"""Faults: storage gone before a push, storage killed in the middle of one, entities the service refuses.

Whatever happens, the answer is 200 only for a push taken in full; otherwise 503 with Retry-After,
and the sender's retry (after storage is back) leaves exactly the sessions sent, each once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests

from devtools.azurite import Azurite
from devtools.served import ServedReceiver, receiver_environment, start_receiver
from sessions.ingest import ingest_push
from sessions.receiver import SYNC_MAX_SESSIONS
from sessions.settings import Settings, StorageConnection
from sessions.storage import SessionStore, StorageUnavailable
from tests.helpers.fuzzing import GeneratedSession
from tests.helpers.pushes import OLD_KEY, as_body, post, session
from tests.helpers.stores import SpoilingStore
from tests.helpers.tables import all_entities, tables


@pytest.fixture
def own_azurite(tmp_path: Path) -> Iterator[Azurite]:
    """An Azurite of this test's own, on disk, so that killing it harms no other test."""
    with Azurite(location=tmp_path) as emulator:
        yield emulator


@pytest.fixture
def own_settings(settings: Settings, own_azurite: Azurite) -> Settings:
    return replace(settings, storage=StorageConnection(connection_string=own_azurite.connection_string))


@pytest.fixture
def own_receiver(own_settings: Settings) -> Iterator[ServedReceiver]:
    served = start_receiver(receiver_environment(own_settings))
    yield served
    served.stop()


def sessions_and_quarantine(settings: Settings) -> tuple[set[tuple[str, int]], set[str]]:
    sessions_table, rejected_table = tables(settings)
    stored = [(entity["ChargerID"], entity["TransactionID"].value) for entity in all_entities(sessions_table)]
    assert len(stored) == len(set(stored))
    return set(stored), {entity["RowKey"] for entity in all_entities(rejected_table)}


def quarantine_id(item: dict[str, Any]) -> str:
    return GeneratedSession(list(item.items()), valid=False).quarantine_id()


def retry_until_taken(url: str, body: bytes, attempts: int = 8) -> requests.Response:
    """Send again as ChargePilot would after a 503 (sooner than Retry-After: this is a test)."""
    for _ in range(attempts):
        response = post(url, body, key=OLD_KEY)
        if response.status_code != 503:
            return response
        assert int(response.headers["Retry-After"]) > 0
        time.sleep(0.5)
    return response


def large_push(count: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    valid = [
        session(
            ChargerID=f"DEPOT-{n % 7}",
            TransactionID=n,
            StartAt=f"2025-0{1 + n % 2}-0{1 + n % 9}T08:00:00Z",
            EndAt=f"2025-0{1 + n % 2}-0{1 + n % 9}T09:30:00Z",
        )
        for n in range(count)
    ]
    invalid = [session(ChargerID="DEPOT-X", TransactionID=n, EnergyDelivered=-n - 1) for n in range(10)]
    return valid, invalid


def test_storage_down_before_a_push_is_503_claiming_nothing_and_the_retry_stores_it_once(
    own_azurite: Azurite, own_receiver: ServedReceiver, own_settings: Settings
) -> None:
    valid, invalid = large_push(300)
    body = as_body(valid + invalid)
    own_azurite.kill()
    started = time.monotonic()
    response = post(own_receiver.sessions_url, body, key=OLD_KEY)
    assert response.status_code == 503 and int(response.headers["Retry-After"]) > 0
    assert set(response.json()) == {"error", "message"}  # no count, no push id: nothing claimed
    assert time.monotonic() - started < 20
    own_azurite.start()
    assert retry_until_taken(own_receiver.sessions_url, body).json()["stored"] == 300
    assert sessions_and_quarantine(own_settings) == (
        {(item["ChargerID"], item["TransactionID"]) for item in valid},
        {quarantine_id(item) for item in invalid},
    )


def test_storage_killed_in_the_middle_of_a_large_push_is_503_and_the_retry_leaves_the_set_sent_once(
    own_azurite: Azurite, own_receiver: ServedReceiver, own_settings: Settings
) -> None:
    # The largest push still stored while the sender waits (a larger one is answered 202 at once).
    valid, invalid = large_push(SYNC_MAX_SESSIONS - 10)
    body = as_body(valid + invalid)
    answers: list[requests.Response] = []
    sending = threading.Thread(
        target=lambda: answers.append(post(own_receiver.sessions_url, body, key=OLD_KEY))
    )
    sending.start()
    # Kill Azurite as soon as the first transaction of the push is visible in the table.
    sessions_table, _ = tables(own_settings)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all_entities_page(sessions_table):
        time.sleep(0.02)
    own_azurite.kill()
    sending.join(timeout=120)
    (first,) = answers
    assert first.status_code == 503, first.text
    assert int(first.headers["Retry-After"]) > 0

    own_azurite.start()  # the same ports and folder: whatever it had saved is still there
    # The first retry is taken, even if the emulator came back without the tables.
    retried = post(own_receiver.sessions_url, body, key=OLD_KEY)
    assert retried.status_code == 200, retried.text
    assert (retried.json()["stored"], retried.json()["rejected"]) == (SYNC_MAX_SESSIONS - 10, 10)
    assert sessions_and_quarantine(own_settings) == (
        {(item["ChargerID"], item["TransactionID"]) for item in valid},
        {quarantine_id(item) for item in invalid},
    )


def all_entities_page(table: Any) -> list[Any]:
    """The first few entities of a table, or none (also when it does not exist yet)."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return list(next(iter(table.list_entities(results_per_page=5).by_page()), []))
    except ResourceNotFoundError:
        return []


def test_entities_refused_in_several_concurrent_transactions_are_quarantined_and_the_rest_stored(
    store: SessionStore, settings: Settings
) -> None:
    valid, _ = large_push(900)  # 10 transactions over two months, written four at a time
    refused = frozenset({5, 450, 899})
    result = ingest_push(as_body(valid), SpoilingStore(store, sessions=refused), push_id="p")
    assert result.stored == 897
    assert sorted(rejection.index for rejection in result.rejections) == sorted(refused)
    assert all("PropertyValueTooLarge" in r.errors[0].message for r in result.rejections)
    stored, quarantined = sessions_and_quarantine(settings)
    assert stored == {
        (item["ChargerID"], item["TransactionID"]) for item in valid if item["TransactionID"] not in refused
    }
    assert quarantined == {quarantine_id(valid[n]) for n in refused}


def test_a_quarantine_entry_the_service_refuses_makes_the_push_unavailable_not_silently_lost(
    store: SessionStore, settings: Settings
) -> None:
    pushed = [session(), session(EndSoC=120)]
    with pytest.raises(StorageUnavailable, match="the quarantine refused"):
        ingest_push(as_body(pushed), SpoilingStore(store, quarantine=True), push_id="p")
    # The valid session is stored (a retry rewrites it), but the push is not claimed taken.
    assert sessions_and_quarantine(settings)[1] == set()
