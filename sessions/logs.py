"""Structured log lines: one JSON object per event, so that an operator can query and alert.

The events and their fields are declared here, once: the alert rules in infra/ are built on these
names, and tests hold both the code and the alert queries to this list. Never log a key or a
whole body: the callers pass counts, ids and reasons only.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

log = logging.getLogger("sessions")

_COUNTS = frozenset({"received", "stored", "updated", "unchanged", "duplicates", "superseded", "rejected"})

# Every event the receiver logs, with every field it may carry.
EVENT_FIELDS: dict[str, frozenset[str]] = {
    # One line per request to POST /api/sessions, whatever its answer. `status` is the HTTP status;
    # `outcome` says what became of the push: stored (200), accepted (202, finished in the
    # background), unauthorized (401), refused (400, 413, 415), unavailable or not_configured (503).
    # Before the key is accepted there is no push_id, and nothing of the request is stored.
    "push": frozenset(
        {
            "status",
            "outcome",
            "reason",
            "push_id",
            "body_bytes",
            "duration_ms",
            "key_slot",
            "key_fingerprint",
            "raw_archive",
            *_COUNTS,
        }
    ),
    # A push answered 202, finished by the background function: outcome stored, or failed (it will
    # be tried again), or poisoned (tried too often: in the poison queue, an operator must act).
    "push_finished": frozenset({"push_id", "outcome", "reason", "attempt", "duration_ms", *_COUNTS}),
    # One line per rejected session, at most MAX_LOGGED_SESSIONS per push (the push line has the total).
    "session_rejected": frozenset(
        {"push_id", "index", "ChargerID", "TransactionID", "reasons", "quarantine_id"}
    ),
    # A stored session sent again with other values: what changed, old and new, in one line.
    "session_updated": frozenset({"push_id", "ChargerID", "TransactionID", "changes"}),
    "health_failed": frozenset({"reason"}),
    # The background function cannot run (a setting it needs is missing): logged when the receiver
    # starts, and again for each push refused for it (503), which would have needed it.
    "background_unavailable": frozenset({"push_id", "reason"}),
    # The push record could not be written (the push itself was answered as its line says).
    "push_record_not_written": frozenset({"push_id", "reason"}),
    "receiver_not_configured": frozenset({"reason"}),
    # One line per request to GET /api/sessions (a billing system reading): status 200 with the
    # number of sessions in the page and whether another follows, 400 (a bad parameter), 401,
    # 503 (reading not configured, or storage unavailable), with the reason.
    "read": frozenset(
        {"status", "reason", "sessions", "more", "format", "duration_ms", "key_slot", "key_fingerprint"}
    ),
}
# Per push, at most this many session_rejected and session_updated lines each.
MAX_LOGGED_SESSIONS = 100


def log_event(event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log `{"event": event, ...fields}` as one line of JSON (fields that are None left out)."""
    if log.isEnabledFor(level):
        present = {name: value for name, value in fields.items() if value is not None}
        log.log(level, json.dumps({"event": event, **present}, default=_plain, ensure_ascii=False))


def _plain(value: Any) -> str:
    """What JSON cannot hold, as text: instants in ISO 8601 (UTC with Z), the rest as str()."""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return str(value)
