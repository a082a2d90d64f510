"""What a served receiver kept of its pushes, as the tests read it: the push records, the log
events, and a bounded wait for a push answered 202 to be finished in the background."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sessions.settings import Settings
from sessions.storage.pushes import PushRecord, PushRecords
from tests.helpers.tables import unique_table

T = TypeVar("T")
# The outcomes a background push ends in; "accepted" and "failed" are on the way.
FINAL_OUTCOMES = frozenset({"stored", "poisoned"})
_LOGGER_PREFIX = " sessions: "


def isolated(settings: Settings) -> Settings:
    """`settings` with push records, a session index and a push queue of the test's own.

    conftest's settings give each test its own sessions and quarantine tables and archive, but
    share the rest: a push record or a queue message of another test would be counted here, or
    worse, finished by this test's receiver against tables it does not have.
    """
    return replace(
        settings,
        pushes_table=unique_table("Pushes"),
        session_index_table=unique_table("Index"),
        push_queue=f"pushes-{uuid.uuid4().hex[:16]}",
    )


def eventually(probe: Callable[[], T | None], *, within: float, what: str, every: float = 0.25) -> T:
    """The first value of `probe` that is neither None nor false, tried every `every` s; an
    AssertionError naming `what` when none came within `within` s."""
    deadline = time.monotonic() + within
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within:g} s: {what}")
        time.sleep(every)


def push_records(settings: Settings, since: timedelta = timedelta(days=1)) -> list[PushRecord]:
    """Every push record of the last `since`, newest first."""
    records = PushRecords.connect(settings)
    try:
        return list(records.newest(datetime.now(UTC) - since))
    finally:
        records.close()


def record_of(settings: Settings, push_id: str) -> PushRecord | None:
    return next((record for record in push_records(settings) if record.push_id == push_id), None)


def finished_record(settings: Settings, push_id: str, *, within: float) -> PushRecord:
    """The record of a push answered 202, once the background has finished with it (stored, or
    poisoned): polled every second for at most `within` s."""

    def final() -> PushRecord | None:
        record = record_of(settings, push_id)
        return record if record is not None and record.outcome in FINAL_OUTCOMES else None

    return eventually(final, within=within, every=1.0, what=f"push {push_id} finished in the background")


def log_events(lines: Iterable[str], event: str) -> list[dict[str, Any]]:
    """The JSON log events named `event` among a served receiver's output lines, in order."""
    found = []
    for line in lines:
        _, marker, text = line.partition(_LOGGER_PREFIX)
        if marker and text.startswith("{"):
            fields = json.loads(text)
            if fields.get("event") == event:
                found.append(fields)
    return found


def log_bytes(lines: Iterable[str]) -> int:
    """The size of the log lines as written (UTF-8, one newline each)."""
    return sum(len(line.encode("utf-8")) + 1 for line in lines)
