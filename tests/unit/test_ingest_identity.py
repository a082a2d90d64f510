"""One billable record per (ChargerID, TransactionID): the ingest's decisions, over an in-memory
store with the service's semantics (tests/helpers/memory.py). The storage tier repeats the
important ones against Azurite."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sessions.ingest import CHUNK_SESSIONS, QUARANTINE_PER_PUSH, IngestResult, ingest_push
from sessions.results import MAX_LISTED_REJECTIONS
from sessions.storage.entities import index_entity, moved_pointer, session_row_key
from tests.helpers.memory import MemoryStore
from tests.helpers.pushes import as_body, session

MAY_END = {"StartAt": "2025-05-31T23:30:00Z", "EndAt": "2025-06-01T01:00:00Z"}
JUNE_START = {"StartAt": "2025-06-01T00:10:00Z", "EndAt": "2025-06-01T01:00:00Z"}
ARRIVAL = datetime(2025, 6, 2, 8, 0, tzinfo=UTC)


def push(store: MemoryStore, items: Any, push_id: str, *, at: datetime = ARRIVAL) -> IngestResult:
    result = ingest_push(as_body(items), store, push_id=push_id, received_at=at)
    assert result.received == result.stored + result.superseded + result.rejected
    return result


def records(store: MemoryStore) -> dict[tuple[str, str], Any]:
    return dict(store.sessions)


def test_a_new_session_is_stored_in_the_month_of_its_start_and_named_in_the_index() -> None:
    store = MemoryStore()
    first = session(TransactionID=1, **MAY_END)
    assert push(store, [first], "p1").stored == 1
    assert set(records(store)) == {("2025-05", session_row_key(first["ChargerID"], 1))}
    entry = index_entity((first["ChargerID"], 1), "")
    assert store.index[(entry["PartitionKey"], entry["RowKey"])]["Home"] == "2025-05"


def test_the_same_push_again_is_unchanged_and_writes_nothing() -> None:
    store = MemoryStore()
    sent = [session(TransactionID=n) for n in range(10)]
    push(store, sent, "p1")
    writes = store.writes
    again = push(store, sent, "p2", at=ARRIVAL + timedelta(hours=1))
    assert (again.stored, again.unchanged, again.updated) == (10, 10, 0)
    assert store.writes == writes


def test_a_correction_across_a_month_updates_the_one_record_and_leaves_a_pointer_under_the_new_month() -> (
    None
):
    store = MemoryStore()
    first = session(TransactionID=7, EnergyDelivered=1000, **MAY_END)
    push(store, [first], "p1")
    corrected = dict(first, EnergyDelivered=1200, **JUNE_START)
    result = push(store, [corrected], "p2", at=ARRIVAL + timedelta(hours=1))
    assert (result.stored, result.updated) == (1, 1)
    ((home, _), entity) = next(iter(records(store).items()))
    assert len(store.sessions) == 1 and home == "2025-05"
    assert entity["EnergyDelivered"] == 1200 and entity["StartAt"] == datetime(2025, 6, 1, 0, 10, tzinfo=UTC)
    pointer = moved_pointer("2025-06", "2025-05", (first["ChargerID"], 7))
    assert (pointer["PartitionKey"], pointer["RowKey"]) in store.index
    (update,) = result.updates or []
    assert set(update.changes) == {"StartAt", "EnergyDelivered"}
    assert update.changes["EnergyDelivered"] == [1000.0, 1200.0]


def test_a_correction_back_into_the_home_month_removes_the_pointer() -> None:
    store = MemoryStore()
    first = session(TransactionID=7, **MAY_END)
    push(store, [first], "p1")
    push(store, [dict(first, **JUNE_START)], "p2", at=ARRIVAL + timedelta(hours=1))
    push(store, [first], "p3", at=ARRIVAL + timedelta(hours=2))
    assert not any(key[0].startswith("moved-") for key in store.index)
    assert len(store.sessions) == 1


def test_both_copies_in_one_push_make_one_record_with_the_later_values() -> None:
    store = MemoryStore()
    first = session(TransactionID=9, EnergyDelivered=1000, **MAY_END)
    later = dict(first, EnergyDelivered=1500, **JUNE_START)
    result = push(store, [first, later], "p1")
    assert (result.received, result.stored, result.duplicates) == (2, 2, 1)
    ((home, _), entity) = next(iter(records(store).items()))
    assert len(store.sessions) == 1 and home == "2025-06" and entity["EnergyDelivered"] == 1500


def test_a_copy_older_than_the_stored_one_is_superseded_never_written() -> None:
    store = MemoryStore()
    sent = session(TransactionID=3, EnergyDelivered=500)
    push(store, [dict(sent, EnergyDelivered=900)], "newer", at=ARRIVAL)
    replayed = push(store, [sent], "older", at=ARRIVAL - timedelta(days=1))
    assert (replayed.stored, replayed.superseded) == (0, 1)
    (entity,) = store.sessions.values()
    assert entity["EnergyDelivered"] == 900 and entity["PushId"] == "newer"


def test_an_older_copy_with_the_same_values_is_unchanged_not_superseded() -> None:
    store = MemoryStore()
    sent = session(TransactionID=3)
    push(store, [sent], "newer", at=ARRIVAL)
    assert push(store, [sent], "older", at=ARRIVAL - timedelta(days=1)).unchanged == 1


def test_a_concurrent_push_of_the_same_session_in_another_month_converges_to_one_record() -> None:
    store = MemoryStore()
    ours = session(TransactionID=11, EnergyDelivered=100, **JUNE_START)
    theirs = dict(ours, EnergyDelivered=50, **MAY_END)

    def their_push() -> None:  # lands between our read and our write
        push(store, [theirs], "theirs", at=ARRIVAL - timedelta(seconds=1))

    store.before_write = their_push
    result = push(store, [ours], "ours", at=ARRIVAL)
    assert result.stored == 1 and len(store.sessions) == 1
    ((home, _), entity) = next(iter(records(store).items()))
    # Theirs claimed the identity first (May); ours, which arrived later, holds the values.
    assert home == "2025-05" and entity["EnergyDelivered"] == 100 and entity["PushId"] == "ours"


def test_an_index_entry_without_its_record_is_completed_by_the_next_copy() -> None:
    store = MemoryStore()
    sent = session(TransactionID=5, **MAY_END)
    entry = index_entity((sent["ChargerID"], 5), "2025-05")
    store.index[(entry["PartitionKey"], entry["RowKey"])] = entry  # a crash after the claim
    assert push(store, [dict(sent, **JUNE_START)], "retry").stored == 1
    assert [key[0] for key in store.sessions] == ["2025-05"]


def test_repeats_across_chunks_of_a_large_push_count_as_duplicates_once() -> None:
    store = MemoryStore()
    sent = [session(ChargerID="C", TransactionID=n) for n in range(CHUNK_SESSIONS + 10)]
    again = [dict(sent[n], EnergyDelivered=99) for n in range(5)]
    result = push(store, sent + again, "p1")
    assert (result.received, result.stored, result.duplicates, result.updated) == (
        CHUNK_SESSIONS + 15,
    ) * 2 + (
        5,
        0,
    )
    assert len(store.sessions) == CHUNK_SESSIONS + 10
    assert all(
        store.sessions[("2025-01", session_row_key("C", n))]["EnergyDelivered"] == 99 for n in range(5)
    )


def test_rejections_are_bounded_in_the_answer_and_in_the_quarantine_and_none_is_lost() -> None:
    store = MemoryStore()
    bad = [session(TransactionID=n, EndSoC=101 + n % 50, Note=n) for n in range(QUARANTINE_PER_PUSH + 500)]
    result = ingest_push(
        as_body(bad), store, push_id="flood", received_at=ARRIVAL, raw_archive="2025/06/02/x.json.gz"
    )
    assert result.rejected == len(bad) and len(result.rejections) == MAX_LISTED_REJECTIONS
    assert result.quarantine_overflow == 500
    answer = result.to_json()
    assert len(answer["rejected_sessions"]) == MAX_LISTED_REJECTIONS
    assert answer["rejected_sessions_not_listed"] == len(bad) - MAX_LISTED_REJECTIONS
    assert "rejected list --push flood" in answer["rejected_sessions_where"]
    entries = store.quarantined
    assert len(entries) == QUARANTINE_PER_PUSH + 1
    overflow = entries["push-flood"]
    assert overflow["Overflow"].value == 500 and overflow["RawArchive"] == "2025/06/02/x.json.gz"


def test_an_odd_session_is_quarantined_with_its_text_and_the_others_stored() -> None:
    store = MemoryStore()
    body = as_body([session(TransactionID=1)])[:-1] + b', {"ChargerID": "X", "Id": "\\ud83d"}]'
    result = ingest_push(body, store, push_id="p", received_at=ARRIVAL)
    assert (result.stored, result.rejected) == (1, 1)
    (rejection,) = result.rejections
    assert rejection.charger_id == "X" and "surrogate" in rejection.errors[0].message
    (entry,) = store.quarantined.values()
    assert entry["Raw"] == '{"ChargerID": "X", "Id": "\\ud83d"}'
