"""One billable record per (ChargerID, TransactionID) across months, against a real Azurite: a
correction, concurrent pushes, what a push costs in requests, half-written pushes, and the rebuild
of the identity index for data stored before it existed."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sessions.ingest import IngestResult, ingest_push
from sessions.settings import Settings
from sessions.storage import SessionStore
from sessions.storage.entities import TableWrite, check_entity, index_entity, session_row_key
from sessions.storage.tables import SessionWrite
from tests.helpers.proxies import DroppingProxy
from tests.helpers.pushes import as_body, session
from tests.helpers.tables import all_entities, tables
from tools.index import rebuild

MAY_END = {"StartAt": "2025-05-31T23:30:00Z", "EndAt": "2025-06-01T01:00:00Z"}
JUNE_START = {"StartAt": "2025-06-01T00:10:00Z", "EndAt": "2025-06-01T01:00:00Z"}
JUNE = (datetime(2025, 6, 1, tzinfo=UTC), datetime(2025, 7, 1, tzinfo=UTC))
MAY = (datetime(2025, 5, 1, tzinfo=UTC), datetime(2025, 6, 1, tzinfo=UTC))


def push(store: SessionStore, items: Any, push_id: str, at: datetime | None = None) -> IngestResult:
    return ingest_push(as_body(items), store, push_id=push_id, received_at=at or datetime.now(UTC))


def in_period(store: SessionStore, period: tuple[datetime, datetime]) -> list[dict[str, Any]]:
    return [entity for page in store.session_pages(*period) for entity in page]


def test_a_correction_that_moves_the_start_into_the_next_month_leaves_one_record_with_the_later_values(
    store: SessionStore, settings: Settings
) -> None:
    first = session(TransactionID=7030761, EnergyDelivered=17233, **MAY_END)
    push(store, [first], "first")
    result = push(store, [dict(first, EnergyDelivered=17500, **JUNE_START)], "second")
    assert (result.stored, result.updated) == (1, 1)
    (record,) = all_entities(tables(settings)[0])
    assert record["EnergyDelivered"] == 17500 and record["PushId"] == "second"
    # Billing reads months: June's read finds it (by its pointer), May's no longer does.
    assert [entity["EnergyDelivered"] for entity in in_period(store, JUNE)] == [17500]
    assert in_period(store, MAY) == []


def test_concurrent_pushes_of_one_session_in_two_months_converge_to_one_record(
    store: SessionStore, settings: Settings
) -> None:
    base = session(ChargerID="RACE", TransactionID=9_000_001)
    variants = [dict(base, EnergyDelivered=1000 + n, **(MAY_END if n % 2 else JUNE_START)) for n in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda n: push(store, [variants[n]], f"p{n}"), range(8)))
    assert all(result.stored + result.superseded == 1 for result in results)
    (record,) = all_entities(tables(settings)[0])
    assert record["TransactionID"].value == base["TransactionID"]
    assert len(in_period(store, JUNE)) + len(in_period(store, MAY)) == 1


def test_an_hourly_push_costs_three_requests_and_the_same_push_again_costs_reads_only(
    counted_store: tuple[SessionStore, DroppingProxy],
) -> None:
    store, proxy = counted_store
    hourly = [
        session(
            ChargerID=f"TACW{n % 20}",
            TransactionID=7_000_000 + n,
            StartAt="2025-03-04T10:00:00Z",
            EndAt="2025-03-04T11:00:00Z",
        )
        for n in range(100)
    ]
    proxy.requests.clear()
    push(store, hourly, "first")
    # One read of the index (one range of TransactionIDs), one transaction claiming the 100
    # identities, one transaction creating the 100 records.
    assert len(proxy.requests) == 3, proxy.requests
    proxy.requests.clear()
    assert push(store, hourly, "again").unchanged == 100
    # The index range, and the records by one key range per station (20): nothing written.
    assert len(proxy.requests) == 1 + 20
    assert not any(b"$batch" in request for request in proxy.requests)


class ClaimsOnly:
    """The real store, whose process dies after claiming identities, before writing any record."""

    def __init__(self, store: SessionStore) -> None:
        self.store = store

    def find(self, identities: Any) -> Any:
        return self.store.find(identities)

    def write_sessions(self, writes: Sequence[SessionWrite]) -> Any:
        claims = [
            index_entity(write.identity, write.write.partition_key) for write in writes if write.claim_home
        ]
        self.store.put_index_entries(claims)
        raise ConnectionError("the process died here")

    def quarantine(self, writes: Any, received_at: datetime) -> int:
        return self.store.quarantine(writes, received_at)


def test_a_push_that_died_half_way_is_completed_by_its_retry_and_nothing_is_left_double(
    store: SessionStore, settings: Settings
) -> None:
    sent = [session(TransactionID=n, **(JUNE_START if n % 2 else MAY_END)) for n in range(10)]
    with pytest.raises(ConnectionError):
        ingest_push(as_body(sent), ClaimsOnly(store), push_id="died")
    assert all_entities(tables(settings)[0]) == []
    retry = push(store, sent, "retry")
    assert retry.stored == 10
    rows = all_entities(tables(settings)[0])
    assert len(rows) == 10 and {row["PushId"] for row in rows} == {"retry"}


def test_the_index_rebuild_makes_one_record_of_the_two_kept_before_identity_crossed_months(
    store: SessionStore, settings: Settings
) -> None:
    # What a version before the index stored for a correction that crossed a month: two records.
    old = session(TransactionID=42, EnergyDelivered=100, **MAY_END)
    push(store, [old], "old-may", at=datetime.now(UTC) - timedelta(days=2))
    may_record = next(iter(all_entities(tables(settings)[0])))
    june_record = {
        **may_record,
        "PartitionKey": "2025-06",
        "StartAt": datetime(2025, 6, 1, 0, 10, tzinfo=UTC),
        "EnergyDelivered": 120.0,
        "ReceivedAt": datetime.now(UTC) - timedelta(days=1),
        "PushId": "old-june",
    }
    store.upsert_sessions([TableWrite(june_record, check_entity(june_record))])
    store.delete(
        store.index_table,
        [(entity["PartitionKey"], entity["RowKey"]) for page in store.all_index_entries() for entity in page],
    )
    assert len(all_entities(tables(settings)[0])) == 2

    dry = rebuild(store, apply=False)
    assert [partition for _, partition in dry.doubles_removed] == ["2025-05"]
    assert len(all_entities(tables(settings)[0])) == 2
    report = rebuild(store, apply=True)
    assert (report.sessions, report.index_entries, len(report.doubles_removed)) == (2, 1, 1)
    (kept,) = all_entities(tables(settings)[0])
    assert kept["PushId"] == "old-june" and kept["EnergyDelivered"] == 120.0
    # The index is whole again: a later copy updates that record, wherever its StartAt falls.
    assert push(store, [dict(old, EnergyDelivered=130, **MAY_END)], "new").updated == 1
    (record,) = all_entities(tables(settings)[0])
    assert record["PartitionKey"] == "2025-06" and record["RowKey"] == session_row_key(old["ChargerID"], 42)
    assert [entity["EnergyDelivered"] for entity in in_period(store, MAY)] == [130]
    assert rebuild(store, apply=True).doubles_removed == []
