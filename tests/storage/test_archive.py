"""The raw archive, against Azurite's blob service: every push kept before it is processed, and replayed."""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from azure.storage.blob import BlobServiceClient, ContainerClient

from devtools.azurite import Azurite
from devtools.served import ServedReceiver, receiver_environment
from sessions.ingest import ingest_push
from sessions.settings import Settings, StorageConnection
from sessions.storage import SessionStore
from sessions.storage.archive import ArchivedPush, RawArchive, archive_name, parse_archive_name
from sessions.storage.pushes import PushRecord, PushRecords
from tests.helpers.pushes import OLD_KEY, as_body, post, session
from tests.helpers.tables import all_entities, tables, unique_table
from tests.helpers.tools import Ran, run_tool_process

CLOSED_BLOB_ENDPOINT = "http://127.0.0.1:9/devstoreaccount1"


def container_of(settings: Settings) -> ContainerClient:
    assert settings.storage is not None and settings.storage.connection_string is not None
    service = BlobServiceClient.from_connection_string(
        settings.storage.connection_string, api_version="2026-06-06"
    )
    return service.get_container_client(settings.raw_archive_container)


def archived_blobs(settings: Settings) -> list[Any]:
    container = container_of(settings)
    if not container.exists():
        return []
    return list(container.list_blobs(include=["metadata"]))


def without_blob_service(azurite: Azurite) -> str:
    """A connection string whose tables are Azurite's and whose blob endpoint is a closed port."""
    return azurite.connection_string.replace(azurite.blob_endpoint, CLOSED_BLOB_ENDPOINT)


@pytest.fixture
def archive(settings: Settings) -> Iterator[RawArchive]:
    raw_archive = RawArchive.connect(settings)
    yield raw_archive
    raw_archive.close()


def test_blob_names_are_the_utc_day_time_and_push_id_and_parse_back() -> None:
    arrived = datetime(2025, 1, 9, 23, 4, 34, 120_000, tzinfo=UTC)
    name = archive_name(arrived.astimezone(), "0b7d6c1e-8f0a-4a55-9a43-4f3e2b0c9d21")
    assert name == "2025/01/09/230434.120000Z-0b7d6c1e-8f0a-4a55-9a43-4f3e2b0c9d21.json.gz"
    assert parse_archive_name(name) == (arrived, "0b7d6c1e-8f0a-4a55-9a43-4f3e2b0c9d21")
    assert parse_archive_name("2025/01/09/notes.txt") is None


def push_record(settings: Settings, push_id: str) -> PushRecord:
    records = PushRecords.connect(settings)
    try:
        (record,) = [found for found in records.of_day(datetime.now(UTC).date()) if found.push_id == push_id]
    finally:
        records.close()
    return record


def test_a_push_is_archived_compressed_with_its_content_type_and_size_and_its_record_names_the_blob(
    receiver: ServedReceiver, settings: Settings
) -> None:
    body = as_body([session(), session(InitialSoC=250)])
    answer = post(receiver.sessions_url, body, key=OLD_KEY).json()
    (blob,) = archived_blobs(settings)
    arrived, push_id = parse_archive_name(blob.name) or (None, None)
    assert push_id == answer["push_id"]
    assert arrived is not None and abs(datetime.now(UTC) - arrived) < timedelta(minutes=5)
    assert blob.content_settings.content_type == "application/gzip"
    assert gzip.decompress(container_of(settings).download_blob(blob.name).readall()) == body
    # Written once, never changed (the archive can be immutable): the outcome is in the push record.
    assert blob.metadata == {
        "push_id": answer["push_id"],
        "received_at": arrived.isoformat(),
        "content_type": "application/json",
        "size": str(len(body)),
    }
    record = push_record(settings, answer["push_id"])
    assert (record.status, record.outcome, record.raw_archive) == (200, "stored", blob.name)
    assert (record.counts["received"], record.counts["stored"], record.counts["rejected"]) == (2, 1, 1)


def test_a_body_that_is_not_a_push_is_archived_too_and_recorded_as_refused(
    receiver: ServedReceiver, settings: Settings
) -> None:
    assert post(receiver.sessions_url, b'{"truncated": ', key=OLD_KEY).status_code == 400
    (blob,) = archived_blobs(settings)
    push_id = parse_archive_name(blob.name)[1]  # type: ignore[index]
    record = push_record(settings, push_id)
    assert (record.status, record.outcome, record.raw_archive) == (400, "refused", blob.name)
    assert gzip.decompress(container_of(settings).download_blob(blob.name).readall()) == b'{"truncated": '


def test_an_upload_retried_after_its_answer_was_lost_counts_as_archived(
    archive: RawArchive, settings: Settings
) -> None:
    arrived = datetime(2025, 1, 9, 7, 0, tzinfo=UTC)
    first = archive.store_body(b"[]", push_id="push-retried", received_at=arrived, content_type=None)
    # The SDK sends the same upload again when the first answer is lost; the blob is then there.
    again = archive.store_body(b"[]", push_id="push-retried", received_at=arrived, content_type=None)
    assert again.name == first.name
    assert [blob.name for blob in archived_blobs(settings)] == [first.name]


def test_refused_requests_are_not_archived(receiver: ServedReceiver, settings: Settings) -> None:
    assert post(receiver.sessions_url, [session()], key="wrong").status_code == 401
    assert post(receiver.sessions_url, [session()], key=OLD_KEY, content_type="text/csv").status_code == 415
    assert archived_blobs(settings) == []


def test_an_unwritable_archive_is_503_and_nothing_is_processed(
    serve: Callable[..., ServedReceiver], settings: Settings, azurite: Azurite
) -> None:
    receiver = serve(SESSIONS_STORAGE=without_blob_service(azurite))
    response = post(receiver.sessions_url, [session(), session(EndSoC=300)], key=OLD_KEY)
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "storage_unavailable"
    assert int(response.headers["Retry-After"]) > 0
    sessions_table, rejected_table = tables(settings)
    assert all_entities(sessions_table) == [] and all_entities(rejected_table) == []
    (line,) = [line for line in receiver.lines if '"event": "push"' in line]
    assert '"status": 503' in line and '"outcome": "unavailable"' in line and "archive" in line
    assert requests.get(receiver.health_url, timeout=30).json() == {
        "status": "unhealthy",
        "reason": "storage unreachable",
    }


def test_the_container_is_created_again_after_it_was_deleted(archive: RawArchive, settings: Settings) -> None:
    now = datetime.now(UTC)
    archive.store_body(b"[]", push_id="first", received_at=now, content_type=None)
    container_of(settings).delete_container()
    archive.store_body(b"[1]", push_id="second", received_at=now, content_type=None)
    assert [blob.name for blob in archived_blobs(settings)] == [archive_name(now, "second")]


def test_pushes_between_lists_the_period_oldest_first_across_days(archive: RawArchive) -> None:
    start = datetime(2025, 1, 9, 22, 0, tzinfo=UTC)
    for hours, push_id in [(3, "c"), (0, "a"), (1, "b"), (-1, "before"), (26, "after")]:
        archive.store_body(
            b"[]", push_id=push_id, received_at=start + timedelta(hours=hours), content_type=None
        )
    found = list(archive.pushes_between(start, start + timedelta(hours=26)))
    assert [push.push_id for push in found] == ["a", "b", "c"]
    assert all(isinstance(push, ArchivedPush) and push.size == 2 for push in found)


def archive_command(settings: Settings, *arguments: str) -> Ran:
    """`python -m sessions archive ARGUMENTS` as an operator runs it, on the test's storage."""
    return run_tool_process(receiver_environment(settings), "archive", *arguments)


Contents = dict[tuple[str, str], dict[str, Any]]


def table_contents(settings: Settings) -> tuple[Contents, Contents]:
    sessions_table, rejected_table = tables(settings)

    def by_key(entities: list[dict[str, Any]]) -> Contents:
        return {
            (entity["PartitionKey"], entity["RowKey"]): {
                name: value for name, value in entity.items() if name != "Timestamp"
            }
            for entity in entities
        }

    return by_key(all_entities(sessions_table)), by_key(all_entities(rejected_table))


def test_replay_rebuilds_the_tables_from_the_archive_and_is_idempotent(
    receiver: ServedReceiver, settings: Settings
) -> None:
    pushes = [
        [session(ChargerID="R1", TransactionID=n) for n in range(30)],
        [session(ChargerID="R1", TransactionID=n) for n in range(20, 40)] + [session(EndSoC=101)],
        [session(ChargerID="R2", TransactionID=1, EnergyDelivered=-1)],
    ]
    for push in pushes:
        assert post(receiver.sessions_url, push, key=OLD_KEY).status_code == 200
    assert post(receiver.sessions_url, b"[{]", key=OLD_KEY).status_code == 400
    original = table_contents(settings)
    assert (len(original[0]), len(original[1])) == (40, 2)

    # The same archive, replayed into empty tables, gives the same tables, entity for entity.
    rebuilt = replace(settings, sessions_table=unique_table("Replayed"), rejected_table=unique_table("Rq"))
    now = datetime.now(UTC)
    period = [
        "--from",
        (now - timedelta(hours=1)).isoformat(),
        "--to",
        (now + timedelta(hours=1)).isoformat(),
    ]
    for _ in range(2):
        done = archive_command(rebuilt, "replay", *period)
        assert done.status == 0, done.err
        assert "replayed 4 archived pushes" in done.out
        assert (
            "52 sessions received, 50 stored (0 updated), 0 skipped as older than the copy stored, "
            in done.out
        )
        assert "2 rejected; 1 pushes were not a push" in done.out
        assert table_contents(rebuilt) == original


def test_replay_takes_only_the_period_asked_for(archive: RawArchive, settings: Settings) -> None:
    inside = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    archive.store_body(
        as_body([session(TransactionID=1)]), push_id="in", received_at=inside, content_type=None
    )
    archive.store_body(
        as_body([session(TransactionID=2)]),
        push_id="out",
        received_at=inside + timedelta(days=1),
        content_type=None,
    )
    listed = archive_command(settings, "list", "--from", "2025-03-01", "--to", "2025-03-01")
    assert listed.status == 0, listed.err
    assert "1 archived pushes from" in listed.out
    assert all_entities(tables(settings)[0]) == []
    done = archive_command(settings, "replay", "--from", "2025-03-01", "--to", "2025-03-01")
    assert done.status == 0, done.err
    (entity,) = all_entities(tables(settings)[0])
    assert entity["TransactionID"].value == 1 and entity["PushId"] == "in"


def test_replay_with_storage_down_says_so_and_fails(settings: Settings, azurite: Azurite) -> None:
    down = replace(settings, storage=StorageConnection(connection_string=without_blob_service(azurite)))
    done = archive_command(down, "replay", "--from", "2025-03-01", "--to", "2025-03-02")
    assert done.status == 1
    assert "storage unavailable" in done.err


def test_replay_refuses_a_period_that_ends_before_it_starts(settings: Settings) -> None:
    done = archive_command(settings, "replay", "--from", "2025-03-02", "--to", "2025-03-01")
    assert done.status == 2 and "--to must be after --from" in done.err


def test_replaying_an_archived_push_never_restores_values_a_newer_push_changed(
    archive: RawArchive, store: SessionStore, settings: Settings
) -> None:
    first = session(
        TransactionID=5, EnergyDelivered=1000, StartAt="2025-05-31T23:30:00Z", EndAt="2025-06-01T01:00:00Z"
    )
    corrected = dict(first, EnergyDelivered=1200, StartAt="2025-06-01T00:10:00Z")
    monday = datetime(2025, 6, 2, 8, 0, tzinfo=UTC)
    for body, push_id, at in (
        (as_body([first]), "monday", monday),
        (as_body([corrected]), "tuesday", monday + timedelta(days=1)),
    ):
        archive.store_body(body, push_id=push_id, received_at=at, content_type=None)
        ingest_push(body, store, push_id=push_id, received_at=at)
    # A window that stops before the newest push: its session is older than the one stored.
    done = archive_command(settings, "replay", "--from", "2025-06-02", "--to", "2025-06-02")
    assert done.status == 0, done.err
    assert "skipped as older 1" in done.out and "1 skipped as older than the copy stored" in done.out
    (record,) = all_entities(tables(settings)[0])
    assert (record["EnergyDelivered"], record["PushId"]) == (1200, "tuesday")
