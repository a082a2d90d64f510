"""The raw archive: every push body, gzip-compressed, in a blob container, before it is processed.

So that every push can be audited and replayed (`python -m sessions archive replay`): a push whose body
cannot be archived is not processed at all (ArchiveUnavailable, answered 503 like any storage
fault). Blobs are named `YYYY/MM/DD/HHMMSS.ffffffZ-<push id>.json.gz` by the UTC time of arrival.
"""

from __future__ import annotations

import contextlib
import gzip
import re
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContainerClient, ContentSettings

from sessions.settings import Settings
from sessions.storage.connection import StorageUnavailable, blob_service, storage_errors

_NAME = re.compile(
    r"^(?P<day>\d{4}/\d{2}/\d{2})/(?P<time>\d{6}\.\d{6})Z-(?P<push_id>[0-9A-Za-z-]{1,64})\.json\.gz$"
)
# Blob metadata values are ASCII header values; a content type is short.
_MAX_METADATA_VALUE = 256


class ArchiveUnavailable(StorageUnavailable):
    """The raw archive could not be written: the push is not processed, and a retry is safe."""


@dataclass(frozen=True)
class ArchivedPush:
    """One archived push: where it is, which push it was, when it arrived (its outcome is in its
    push record: blobs are written once, never changed)."""

    name: str
    push_id: str
    received_at: datetime
    metadata: dict[str, str]

    @property
    def size(self) -> int | None:
        """The body's size in bytes, as archived."""
        size = self.metadata.get("size", "")
        return int(size) if size.isascii() and size.isdigit() else None


def archive_name(received_at: datetime, push_id: str) -> str:
    """`YYYY/MM/DD/HHMMSS.ffffffZ-<push id>.json.gz`, by the UTC time of arrival (sorts by time)."""
    utc = received_at.astimezone(UTC)
    return f"{utc:%Y/%m/%d}/{utc:%H%M%S.%f}Z-{push_id}.json.gz"


def parse_archive_name(name: str) -> tuple[datetime, str] | None:
    """The arrival time and push id of an archive blob name, or None for any other name."""
    found = _NAME.match(name)
    if found is None:
        return None
    moment = datetime.strptime(f"{found['day']} {found['time']}", "%Y/%m/%d %H%M%S.%f")
    return moment.replace(tzinfo=UTC), found["push_id"]


class RawArchive:
    """The archive container: push bodies in, archived pushes out (for audit and replay)."""

    def __init__(self, service: BlobServiceClient, container: str, *, create_container: bool = True) -> None:
        self._service = service
        self.container: ContainerClient = service.get_container_client(container)
        # In Azure, Bicep creates the container (with its immutability policy); locally the app does.
        self._create_container = create_container
        self._container_ready = False
        self._container_lock = threading.Lock()

    @classmethod
    def connect(cls, settings: Settings) -> RawArchive:
        """An archive for the configured account and container (no request is made yet)."""
        storage = settings.require_storage()
        return cls(
            blob_service(storage), settings.raw_archive_container, create_container=not storage.uses_identity
        )

    def close(self) -> None:
        self._service.close()

    def ensure_container(self) -> None:
        """Create the container when missing (once per process; again after it disappears)."""
        if self._container_ready or not self._create_container:
            return
        with self._container_lock:
            where = f"raw archive: cannot create container {self.container.container_name}"
            with storage_errors(where, ArchiveUnavailable), contextlib.suppress(ResourceExistsError):
                self.container.create_container()
            self._container_ready = True

    def check_health(self) -> None:
        """Raise ArchiveUnavailable unless the container can be reached (reads no push)."""
        self.ensure_container()
        with storage_errors(f"raw archive: container {self.container.container_name}", ArchiveUnavailable):
            try:
                self.container.get_container_properties()
            except ResourceNotFoundError:
                self._container_ready = False
                raise

    def store_body(
        self, body: bytes, *, push_id: str, received_at: datetime, content_type: str | None
    ) -> ArchivedPush:
        """Write the body, compressed, before it is processed; return where it is.

        Raises ArchiveUnavailable when it cannot be written: then the push must not be processed.
        """
        name = archive_name(received_at, push_id)
        metadata = {
            "push_id": push_id,
            "received_at": received_at.astimezone(UTC).isoformat(),
            "content_type": _metadata_value(content_type or ""),
            "size": str(len(body)),
        }
        # The fastest level: a push is answered within its deadline, and JSON still shrinks fivefold.
        compressed = gzip.compress(body, compresslevel=1, mtime=0)
        self.ensure_container()
        with storage_errors(f"raw archive: {name}", ArchiveUnavailable):
            try:
                self._upload(name, compressed, metadata)
            except ResourceNotFoundError:
                # The container was deleted under a running app: create it again, once.
                self._container_ready = False
                self.ensure_container()
                self._upload(name, compressed, metadata)
        return ArchivedPush(name, push_id, received_at, metadata)

    def _upload(self, name: str, compressed: bytes, metadata: dict[str, str]) -> None:
        # Only this push writes this name (its id is a fresh UUID): a retry of an upload whose
        # first answer was lost finds its own blob there, and the push is archived.
        with contextlib.suppress(ResourceExistsError):
            self.container.upload_blob(
                name,
                compressed,
                overwrite=False,
                metadata=metadata,
                content_settings=ContentSettings(content_type="application/gzip"),
            )

    def pushes_between(self, start: datetime, end: datetime) -> Iterator[ArchivedPush]:
        """Archived pushes that arrived in [start, end), oldest first."""
        if end <= start:
            return
        day: date = start.astimezone(UTC).date()
        last: date = end.astimezone(UTC).date()
        while day <= last:
            yield from self._pushes_of_day(day, start, end)
            day += timedelta(days=1)

    def _pushes_of_day(self, day: date, start: datetime, end: datetime) -> list[ArchivedPush]:
        found = []
        with storage_errors(f"raw archive: cannot list {day}", ArchiveUnavailable):
            try:
                for blob in self.container.list_blobs(
                    name_starts_with=f"{day:%Y/%m/%d}/", include=["metadata"]
                ):
                    parsed = parse_archive_name(blob.name)
                    if parsed is not None and start <= parsed[0] < end:
                        found.append(ArchivedPush(blob.name, parsed[1], parsed[0], dict(blob.metadata or {})))
            except ResourceNotFoundError:
                return []  # no container: nothing was ever archived
        return sorted(found, key=lambda push: push.name)

    def body_at(self, name: str) -> bytes:
        """The push body archived under `name`, exactly as it arrived."""
        with storage_errors(f"raw archive: cannot read {name}", ArchiveUnavailable):
            compressed = self.container.download_blob(name).readall()
        try:
            return gzip.decompress(compressed)
        except (OSError, EOFError, zlib.error) as error:  # gzip.BadGzipFile is an OSError
            raise ArchiveUnavailable(
                f"raw archive: {name} is not the gzip it was written as: {error}"
            ) from error


def _metadata_value(text: str) -> str:
    printable = "".join(c for c in text if " " <= c <= "~")
    return printable[:_MAX_METADATA_VALUE]
