"""The push records: one entity per push that passed the key check, so that an operator can ask
when the last push arrived, how big it was, what became of it and which configured key it used.

PartitionKey is the UTC day of arrival (`YYYY-MM-DD`), RowKey the time of arrival and the push id
(`HHMMSS.ffffffZ-<push id>`, as the raw archive names it), so a day reads as one partition in order
of arrival and the newest pushes are found without a scan. The key itself is never recorded: only
its position in CHARGEPILOT_API_KEYS and a short fingerprint that cannot be turned back into it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import EdmType, EntityProperty, TableServiceClient, UpdateMode

from sessions.settings import Settings
from sessions.storage.connection import storage_errors, table_service

PAGE_SIZE = 1000
# A count's property name in the record, by the name the answer and the log give it.
_COUNT_PROPERTIES = {
    "received": "Received",
    "stored": "Stored",
    "updated": "Updated",
    "unchanged": "Unchanged",
    "duplicates": "Duplicates",
    "superseded": "Superseded",
    "rejected": "Rejected",
}


@dataclass
class PushRecord:
    """What is known of one push: when it came, how it was answered, what became of it."""

    push_id: str
    received_at: datetime
    status: int
    outcome: str
    body_bytes: int
    duration_ms: float
    counts: dict[str, int] = field(default_factory=dict)
    raw_archive: str | None = None
    key_slot: int | None = None
    key_fingerprint: str | None = None
    # "sync" (answered with the outcome), or "background" (answered 202, finished later).
    mode: str = "sync"
    reason: str | None = None
    finished_at: datetime | None = None
    attempts: int | None = None

    @property
    def partition_key(self) -> str:
        return f"{self.received_at.astimezone(UTC):%Y-%m-%d}"

    @property
    def row_key(self) -> str:
        return f"{self.received_at.astimezone(UTC):%H%M%S.%f}Z-{self.push_id}"

    def entity(self) -> dict[str, Any]:
        entity: dict[str, Any] = {
            "PartitionKey": self.partition_key,
            "RowKey": self.row_key,
            "PushId": self.push_id,
            "ReceivedAt": self.received_at,
            "Status": self.status,
            "Outcome": self.outcome,
            "BodyBytes": EntityProperty(self.body_bytes, EdmType.INT64),
            "DurationMs": float(self.duration_ms),
            "Mode": self.mode,
        }
        for name, count in self.counts.items():
            entity[_COUNT_PROPERTIES[name]] = EntityProperty(count, EdmType.INT64)
        optional = {
            "RawArchive": self.raw_archive,
            "KeySlot": self.key_slot,
            "KeyFingerprint": self.key_fingerprint,
            "Reason": (self.reason or "")[:1000] or None,
            "FinishedAt": self.finished_at,
            "Attempts": self.attempts,
        }
        entity.update({name: value for name, value in optional.items() if value is not None})
        return entity

    @classmethod
    def from_entity(cls, entity: dict[str, Any]) -> PushRecord:
        def value(name: str) -> Any:
            found = entity.get(name)
            return getattr(found, "value", found)

        def moment(name: str) -> datetime | None:
            found = value(name)
            return found.astimezone(UTC) if isinstance(found, datetime) else None

        return cls(
            push_id=str(value("PushId")),
            received_at=moment("ReceivedAt") or datetime.min.replace(tzinfo=UTC),
            status=int(value("Status") or 0),
            outcome=str(value("Outcome") or ""),
            body_bytes=int(value("BodyBytes") or 0),
            duration_ms=float(value("DurationMs") or 0.0),
            counts={
                name: int(value(stored) or 0)
                for name, stored in _COUNT_PROPERTIES.items()
                if value(stored) is not None
            },
            raw_archive=value("RawArchive"),
            key_slot=value("KeySlot"),
            key_fingerprint=value("KeyFingerprint"),
            mode=str(value("Mode") or "sync"),
            reason=value("Reason"),
            finished_at=moment("FinishedAt"),
            attempts=value("Attempts"),
        )


class PushRecords:
    """The push record table."""

    def __init__(self, service: TableServiceClient, table: str, *, create_table: bool = True) -> None:
        self._service = service
        self.table = service.get_table_client(table)
        self._create_table = create_table
        self._ready = False

    @classmethod
    def connect(cls, settings: Settings) -> PushRecords:
        storage = settings.require_storage()
        return cls(table_service(storage), settings.pushes_table, create_table=not storage.uses_identity)

    def close(self) -> None:
        self._service.close()

    def ensure_table(self) -> None:
        """Create the table when missing (locally; in Azure, Bicep creates it)."""
        if self._ready or not self._create_table:
            return
        with storage_errors(f"cannot create table {self.table.table_name}"), suppress(ResourceExistsError):
            self.table.create_table()
        self._ready = True

    def save(self, record: PushRecord) -> None:
        """Write the record, replacing what an earlier stage of the same push wrote."""
        self.ensure_table()
        with storage_errors(f"push record {record.push_id}"):
            try:
                self.table.upsert_entity(record.entity(), mode=UpdateMode.REPLACE)
            except ResourceNotFoundError:
                self._ready = False  # the table was deleted under a running app: once more
                self.ensure_table()
                self.table.upsert_entity(record.entity(), mode=UpdateMode.REPLACE)

    def find(self, push_id: str, received_at: datetime) -> PushRecord | None:
        """The record of a push whose arrival is known (the background function's case)."""
        probe = PushRecord(push_id, received_at, 0, "", 0, 0.0)
        with storage_errors(f"reading {self.table.table_name}"):
            try:
                return PushRecord.from_entity(self.table.get_entity(probe.partition_key, probe.row_key))
            except ResourceNotFoundError:
                return None

    def of_day(self, day: date) -> list[PushRecord]:
        """The pushes that arrived on a UTC day, oldest first."""
        with storage_errors(f"reading {self.table.table_name}"):
            try:
                entities = list(
                    self.table.query_entities(
                        "PartitionKey eq @day",
                        parameters={"day": f"{day:%Y-%m-%d}"},
                        results_per_page=PAGE_SIZE,
                    )
                )
            except ResourceNotFoundError:
                return []
        return [PushRecord.from_entity(entity) for entity in sorted(entities, key=lambda e: str(e["RowKey"]))]

    def newest(self, since: datetime, until: datetime | None = None) -> Iterator[PushRecord]:
        """The pushes that arrived since `since` (and before `until`), newest first, a day at a time."""
        until = until or datetime.now(UTC)
        day = until.astimezone(UTC).date()
        while day >= since.astimezone(UTC).date():
            for record in reversed(self.of_day(day)):
                if since <= record.received_at < until:
                    yield record
            day -= timedelta(days=1)

    def check_health(self) -> None:
        """Raise StorageUnavailable unless the table can be reached (reads no record)."""
        self.ensure_table()
        with storage_errors(f"table {self.table.table_name}"):
            probe = self.table.query_entities(
                "PartitionKey eq @key",
                parameters={"key": "health-probe"},
                select=["PartitionKey"],
                results_per_page=1,
            )
            next(iter(probe.by_page()), None)
