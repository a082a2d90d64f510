"""The ingest use-case against a real Azurite: stored exactly once, rejected sessions kept."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from azure.data.tables import EdmType, EntityProperty

from sessions.decoding import InvalidPush
from sessions.ingest import ingest_push
from sessions.results import PushResult
from sessions.settings import Settings, StorageConnection
from sessions.storage import SessionStore, StorageUnavailable
from sessions.storage.entities import TableWrite, raw_json_of, session_row_key
from tests.helpers import PROJECT
from tests.helpers.pushes import as_body, session
from tests.helpers.stores import SpoilingStore
from tests.helpers.tables import all_entities, tables

SAMPLES = PROJECT / "samples"


def push(store: SessionStore, items: Any, push_id: str = "push-1") -> PushResult:
    return ingest_push(as_body(items), store, push_id=push_id)


def stored(settings: Settings) -> dict[str, dict[str, Any]]:
    sessions_table, _ = tables(settings)
    return {entity["RowKey"]: entity for entity in all_entities(sessions_table)}


def quarantined(settings: Settings) -> list[dict[str, Any]]:
    _, rejected_table = tables(settings)
    return all_entities(rejected_table)


def as_sent(entity: dict[str, Any]) -> dict[str, Any]:
    """A stored entity in the sender's terms, to compare with what was pushed."""

    def iso(moment: datetime) -> str:
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"

    transaction = entity["TransactionID"]
    return {
        "TransactionID": transaction.value if isinstance(transaction, EntityProperty) else transaction,
        "ChargerID": entity["ChargerID"],
        "ConnectorID": entity["ConnectorID"],
        "StartAt": iso(entity["StartAt"]),
        "EndAt": iso(entity["EndAt"]),
        "InitialSoC": entity.get("InitialSoC"),
        "Id": entity.get("Id"),
        "EndSoC": entity.get("EndSoC"),
        "EnergyDelivered": entity["EnergyDelivered"],
    }


def test_the_hourly_sample_is_stored_with_exactly_the_values_sent(
    store: SessionStore, settings: Settings
) -> None:
    sent = json.loads((SAMPLES / "hourly-push.json").read_text())
    result = push(store, sent)
    assert (result.received, result.stored, result.rejections) == (24, 24, [])
    rows = stored(settings)
    assert len(rows) == 24
    for item in sent:
        entity = rows[session_row_key(item["ChargerID"], item["TransactionID"])]
        assert as_sent(entity) == item
        assert entity["PartitionKey"] == item["StartAt"][:7]
        assert entity["EnergyKWh"] == pytest.approx(item["EnergyDelivered"] / 1000)


def test_the_single_session_sample_is_stored(store: SessionStore, settings: Settings) -> None:
    sent = json.loads((SAMPLES / "single-session.json").read_text())
    assert push(store, sent).stored == 1
    (entity,) = stored(settings).values()
    assert as_sent(entity) == sent


def test_an_empty_array_is_a_valid_push_of_nothing(store: SessionStore, settings: Settings) -> None:
    result = push(store, [])
    assert (result.received, result.stored, result.rejections) == (0, 0, [])
    assert stored(settings) == {}


def test_types_are_stored_as_edm_types(store: SessionStore, settings: Settings) -> None:
    push(store, [session(TransactionID=2**40 + 1, InitialSoC=20, EndSoC=80.5)])
    (entity,) = stored(settings).values()
    assert entity["TransactionID"] == EntityProperty(2**40 + 1, EdmType.INT64)
    assert isinstance(entity["EnergyDelivered"], float)
    assert isinstance(entity["StartAt"], datetime) and entity["StartAt"].tzinfo is not None
    assert (entity["InitialSoC"], entity["EndSoC"]) == (20.0, 80.5)


def test_small_transaction_ids_are_int64_too(store: SessionStore, settings: Settings) -> None:
    push(store, [session(TransactionID=5)])
    (entity,) = stored(settings).values()
    assert entity["TransactionID"] == EntityProperty(5, EdmType.INT64)


@pytest.mark.parametrize("charger", ["DEPOT/A#1?x", "back\\slash", "with space", "100%_sure", "Zoë's ✓"])
def test_charger_ids_with_forbidden_key_characters_are_stored_and_read_back(
    store: SessionStore, settings: Settings, charger: str
) -> None:
    push(store, [session(ChargerID=charger, TransactionID=1)])
    (entity,) = stored(settings).values()
    assert entity["ChargerID"] == charger
    assert entity["RowKey"] == session_row_key(charger, 1)


def test_card_ids_null_empty_and_numeric(store: SessionStore, settings: Settings) -> None:
    push(
        store,
        [session(TransactionID=1, Id=None), session(TransactionID=2, Id=""), session(TransactionID=3, Id=42)],
    )
    cards = {
        entity["TransactionID"].value: entity.get("Id", "absent") for entity in stored(settings).values()
    }
    assert cards == {1: "absent", 2: "", 3: "42"}


def test_unknown_extra_fields_are_kept(store: SessionStore, settings: Settings) -> None:
    push(store, [session(Tariff={"name": "depot"}, MeterStart=1200)])
    (entity,) = stored(settings).values()
    assert json.loads(entity["Extra"]) == {"Tariff": {"name": "depot"}, "MeterStart": 1200}


def test_the_same_session_twice_in_one_push_is_one_entity(store: SessionStore, settings: Settings) -> None:
    first = session(TransactionID=77, EnergyDelivered=100)
    again = dict(first, EnergyDelivered=150)
    result = push(store, [first, session(TransactionID=78), again])
    assert (result.received, result.stored, result.duplicates, result.rejections) == (3, 3, 1, [])
    rows = stored(settings)
    assert len(rows) == 2
    assert rows[session_row_key(first["ChargerID"], 77)]["EnergyDelivered"] == 150.0


def test_the_same_push_twice_stores_each_session_once(store: SessionStore, settings: Settings) -> None:
    sent = [session(ChargerID=f"C{i % 7}", TransactionID=i) for i in range(250)]
    push(store, sent, push_id="first")
    before = stored(settings)
    again = push(store, sent, push_id="second")
    after = stored(settings)
    assert set(after) == set(before) and len(after) == 250
    # Nothing changed: nothing is written again, and each session still names the push that stored it.
    assert (again.stored, again.unchanged, again.updated) == (250, 250, 0)
    assert {entity["PushId"] for entity in after.values()} == {"first"}


def test_the_same_push_sent_concurrently_stores_each_session_once(
    store: SessionStore, settings: Settings
) -> None:
    sent = [session(ChargerID=f"C{i % 5}", TransactionID=i) for i in range(300)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda n: push(store, sent, push_id=f"p{n}"), range(6)))
    assert all(result.stored == 300 for result in results)
    assert len(stored(settings)) == 300


def test_a_large_push_over_two_months_and_many_stations_is_stored_in_full(
    store: SessionStore, settings: Settings
) -> None:
    sent = [
        session(
            ChargerID=f"STATION-{i % 13}",
            TransactionID=i,
            StartAt=f"2025-0{1 + i % 2}-1{i % 10}T08:00:00Z",
            EndAt=f"2025-0{1 + i % 2}-1{i % 10}T09:00:00Z",
        )
        for i in range(1234)
    ]
    result = push(store, sent)
    assert result.stored == 1234
    rows = stored(settings)
    assert len(rows) == 1234
    assert {entity["PartitionKey"] for entity in rows.values()} == {"2025-01", "2025-02"}


def test_a_mixed_push_stores_the_valid_and_quarantines_the_invalid(
    store: SessionStore, settings: Settings
) -> None:
    good = [session(TransactionID=1), session(TransactionID=3)]
    bad = session(TransactionID=2, EndAt="2025-01-01T00:00:00Z")
    result = push(store, [good[0], bad, good[1]])
    assert (result.received, result.stored) == (3, 2)
    (rejection,) = result.rejections
    assert rejection.index == 1
    assert rejection.transaction_id == 2 and rejection.charger_id == bad["ChargerID"]
    assert [(e.field, e.message) for e in rejection.errors] == [("EndAt", "must not be before StartAt")]
    assert len(stored(settings)) == 2
    (entry,) = quarantined(settings)
    assert json.loads(raw_json_of(entry)) == bad
    assert entry["RowKey"] == rejection.quarantine_id
    assert json.loads(entry["Errors"]) == [{"field": "EndAt", "message": "must not be before StartAt"}]
    assert entry["PushId"] == "push-1"


def test_a_re_sent_bad_batch_does_not_pile_up_in_quarantine(store: SessionStore, settings: Settings) -> None:
    bad = [session(TransactionID=n, InitialSoC=150) for n in range(5)]
    push(store, [*bad, bad[0]], push_id="first")
    push(store, bad, push_id="again")
    entries = quarantined(settings)
    assert len(entries) == 5
    # Kept as it first arrived.
    assert {entry["PushId"] for entry in entries} == {"first"}


def test_a_body_that_is_not_a_push_stores_nothing(store: SessionStore, settings: Settings) -> None:
    with pytest.raises(InvalidPush):
        ingest_push(b'[{"TransactionID": 1}, 7]', store, push_id="p")
    assert stored(settings) == {} and quarantined(settings) == []


def test_unreachable_storage_raises_storage_unavailable_quickly(settings: Settings) -> None:
    closed = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;TableEndpoint=http://127.0.0.1:9/devstoreaccount1;"
    unreachable = SessionStore.connect(replace(settings, storage=StorageConnection(connection_string=closed)))
    started = time.monotonic()
    with pytest.raises(StorageUnavailable):
        push(unreachable, [session()])
    assert time.monotonic() - started < 20
    unreachable.close()


def test_a_session_the_service_refuses_is_quarantined_and_the_rest_are_stored(
    store: SessionStore, settings: Settings
) -> None:
    sent = [session(TransactionID=n) for n in range(10)]
    result = ingest_push(as_body(sent), SpoilingStore(store, sessions=frozenset({4})), push_id="p")
    assert result.stored == 9
    (rejection,) = result.rejections
    assert rejection.index == 4
    assert rejection.errors[0].field == "(storage)"
    assert "PropertyValueTooLarge" in rejection.errors[0].message
    assert len(stored(settings)) == 9
    (entry,) = quarantined(settings)
    assert json.loads(raw_json_of(entry)) == sent[4]


def test_storage_refusing_one_entity_of_a_transaction_keeps_the_others(
    store: SessionStore, settings: Settings
) -> None:
    def write(row: str, **extra: Any) -> TableWrite:
        return TableWrite({"PartitionKey": "2025-01", "RowKey": row, **extra}, 1000)

    failures = store.upsert_sessions([write("a"), write("b", Text="x" * 40_000), write("c")])
    assert [(f.partition_key, f.row_key) for f in failures] == [("2025-01", "b")]
    assert set(stored(settings)) == {"a", "c"}


def test_health_check_passes_against_reachable_storage_and_creates_the_tables(
    store: SessionStore, settings: Settings
) -> None:
    store.check_health()
    sessions_table, rejected_table = tables(settings)
    assert all_entities(sessions_table) == [] and all_entities(rejected_table) == []
