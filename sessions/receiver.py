"""The receiver as configured: its keys, its limits and its store, built once per process."""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

from sessions.decoding import InvalidPush
from sessions.ingest import ingest_push
from sessions.keys import KeyRing
from sessions.logs import log_event
from sessions.results import PushResult
from sessions.settings import Settings
from sessions.storage import ArchivedPush, ArchiveUnavailable, RawArchive, SessionStore, StorageUnavailable


class Receiver:
    """Checks keys, takes pushes and reports health; the HTTP layer only translates."""

    def __init__(self, settings: Settings, store: SessionStore, archive: RawArchive) -> None:
        self.settings = settings
        self.keys = KeyRing(settings.api_keys)
        self.store = store
        self.archive = archive

    @classmethod
    def from_settings(cls, settings: Settings) -> Receiver:
        return cls(settings, SessionStore.connect(settings), RawArchive.connect(settings))

    def take_push(self, body: bytes, *, content_type: str | None = None) -> PushResult:
        """Archive one push, ingest it and log its outcome; raises InvalidPush or StorageUnavailable.

        Nothing is processed unless its raw body is archived first (ArchiveUnavailable otherwise).
        """
        push_id = str(uuid.uuid4())
        received_at = datetime.now(UTC)
        started = time.perf_counter()
        outcome = "taken"
        archived: ArchivedPush | None = None
        result: PushResult | None = None
        try:
            archived = self.archive.store_body(
                body, push_id=push_id, received_at=received_at, content_type=content_type
            )
            result = ingest_push(body, self.store, push_id=push_id, received_at=received_at)
            return result
        except InvalidPush as error:
            outcome = "invalid"
            log_event("push_invalid", logging.WARNING, push_id=push_id, reason=str(error))
            raise
        except ArchiveUnavailable as error:
            outcome = "archive_unavailable"
            log_event("push_not_archived", logging.ERROR, push_id=push_id, reason=str(error))
            raise
        except StorageUnavailable as error:
            outcome = "storage_unavailable"
            log_event("push_not_stored", logging.ERROR, push_id=push_id, reason=str(error))
            raise
        finally:
            if archived is not None:
                self.archive.record_outcome(archived, outcome, result)
            self._log_push(
                push_id,
                len(body),
                outcome,
                result,
                time.perf_counter() - started,
                archived.name if archived else None,
            )

    def check_health(self) -> None:
        """Raise StorageUnavailable unless the tables (and the archive container) can be reached."""
        self.store.check_health()
        self.archive.check_health()

    @staticmethod
    def _log_push(
        push_id: str,
        body_bytes: int,
        outcome: str,
        result: PushResult | None,
        seconds: float,
        archived: str | None,
    ) -> None:
        counts = {"received": 0, "stored": 0, "rejected": 0, "duplicates": 0}
        if result is not None:
            counts = {
                "received": result.received,
                "stored": result.stored,
                "rejected": len(result.rejections),
                "duplicates": result.duplicates,
            }
            for rejection in result.rejections:
                log_event(
                    "session_rejected",
                    logging.WARNING,
                    push_id=push_id,
                    index=rejection.index,
                    ChargerID=rejection.charger_id,
                    TransactionID=rejection.transaction_id,
                    reasons=[f"{e.field}: {e.message}" for e in rejection.errors],
                    quarantine_id=rejection.quarantine_id,
                )
        log_event(
            "push",
            logging.INFO,
            push_id=push_id,
            outcome=outcome,
            body_bytes=body_bytes,
            duration_ms=round(seconds * 1000, 1),
            raw_archive=archived,
            **counts,
        )


_current: Receiver | None = None
_current_lock = threading.Lock()


def current_receiver(environ: Mapping[str, str] | None = None) -> Receiver:
    """The process's receiver, built from the environment on first use.

    Raises SettingsError (and builds nothing) while the settings are unusable.
    """
    global _current
    if _current is None:
        with _current_lock:
            if _current is None:
                _current = Receiver.from_settings(
                    Settings.from_env(os.environ if environ is None else environ)
                )
    return _current
