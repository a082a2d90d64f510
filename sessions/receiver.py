"""The receiver as configured: one push from its arrival to its record; health; the background.

A push whose key is accepted is archived first (nothing is processed, or acknowledged, that is
not durably archived), then read and counted. A push of at most SYNC_MAX_SESSIONS is stored at
once and answered with the per-session outcome; a larger one, or one that storage cannot finish
within the deadline, is handed to the background function through the push queue and answered
"accepted". Every push that passed the key check gets a push record; every request one log line.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from sessions import deadline
from sessions.decoding import InvalidPush, PushBody
from sessions.ingest import IngestResult, ingest_push
from sessions.keys import KeyRing, KeyVerdict
from sessions.logs import MAX_LOGGED_SESSIONS, log_event
from sessions.settings import Settings, SettingsError
from sessions.storage import RawArchive, SessionStore, StorageUnavailable
from sessions.storage.connection import StorageDeadlineExceeded
from sessions.storage.pushes import PushRecord, PushRecords
from sessions.storage.queues import MessageQueue

# A push of more sessions is answered 202 at once and stored in the background.
SYNC_MAX_SESSIONS = 2000
# Of the deadline, what is kept back to hand a push to the background and answer.
_HANDOFF_RESERVE = 0.25
_HANDOFF_RESERVE_MAX_SECONDS = 2.5
# Of the deadline, what is kept back for the record and the answer.
_ANSWER_RESERVE = 1.5
# Writing a push's record takes at most this, and at least the least of it after the deadline.
_RECORD_SECONDS = 2.0
_RECORD_SECONDS_LEAST = 0.5
# Health answers within this, whatever storage does.
HEALTH_DEADLINE_SECONDS = 5.0
# What health found is kept this long per instance: an anonymous caller cannot drive storage traffic.
HEALTH_CACHE_SECONDS = 30.0
# A push that has waited this long on the queue, not taken, means the background function is not
# running (it takes a message within seconds; the largest push is stored within minutes).
BACKGROUND_STALL_SECONDS = 30 * 60
# Tries of the background function before the Functions host gives a push to the poison queue
# (host.json extensions.queues.maxDequeueCount; a test keeps the two equal).
BACKGROUND_ATTEMPTS = 5


class Outcome(StrEnum):
    """What became of a request to push: the log line's and the push record's `outcome`."""

    STORED = "stored"  # taken in full: stored or quarantined (200)
    ACCEPTED = "accepted"  # archived, to be stored in the background (202)
    UNAUTHORIZED = "unauthorized"  # no valid key (401)
    REFUSED = "refused"  # nothing taken: not JSON, too large, wrong type or encoding (4xx)
    UNAVAILABLE = "unavailable"  # storage did not take it: send it again (503)
    NOT_CONFIGURED = "not_configured"  # the receiver refuses every push (503)
    # Background only:
    FAILED = "failed"  # this try failed; the queue tries again
    POISONED = "poisoned"  # the last try failed: in the poison queue, an operator must act


@dataclass
class IncomingPush:
    """One request to push, as it goes: what is known of it so far."""

    push_id: str
    received_at: datetime
    started: float
    key: KeyVerdict | None = None
    body_bytes: int = 0
    raw_archive: str | None = None
    sessions: int | None = None
    result: IngestResult | None = None
    outcome: Outcome | None = None
    reason: str | None = None
    # Why a push was refused, for the answer: invalid_body, too_many_sessions, payload_too_large...
    refusal: str | None = None
    mode: str = "sync"
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started


@dataclass(frozen=True)
class Unhealthy:
    """Why health answers 503: a reason for anyone (no data), and the detail for the log."""

    reason: str
    detail: str


class Receiver:
    """Checks keys, takes pushes, finishes large ones in the background, reports health."""

    def __init__(
        self,
        settings: Settings,
        store: SessionStore,
        archive: RawArchive,
        records: PushRecords,
        queue: MessageQueue | None,
        *,
        background_problem: str | None = None,
    ) -> None:
        self.settings = settings
        self.keys = KeyRing(settings.api_keys)
        # Billing systems' keys (GET /api/sessions): never one that also pushes.
        self.read_keys = KeyRing(settings.usable_read_keys)
        self.store = store
        self.archive = archive
        self.records = records
        self.queue = queue
        # Why the background function cannot run (then no push is handed to it), or None.
        self.background_problem = background_problem or settings.background_problem()
        if queue is None and self.background_problem is None:
            self.background_problem = "no push queue"
        self._queue_ready = False
        self._health: tuple[float, Unhealthy | None] | None = None
        self._health_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> Receiver:
        storage = settings.require_storage()
        queue, problem = None, settings.background_problem()
        if settings.push_queue is not None:
            try:
                queue = MessageQueue.connect(storage, settings.push_queue)
            except SettingsError as error:
                problem = problem or str(error)
        if problem is not None:
            log_event("background_unavailable", logging.ERROR, reason=problem)
        return cls(
            settings,
            SessionStore.connect(settings),
            RawArchive.connect(settings),
            PushRecords.connect(settings),
            queue,
            background_problem=problem,
        )

    def close(self) -> None:
        for client in (self.store, self.archive, self.records, self.queue):
            if client is not None:
                client.close()

    # --- a push, from arrival to its record ---------------------------------------------------

    def arrival(self) -> IncomingPush:
        """A push that just arrived: its id and arrival time."""
        return IncomingPush(str(uuid.uuid4()), datetime.now(UTC), time.perf_counter())

    def take(self, push: IncomingPush, body: bytes, *, content_type: str | None) -> Outcome:
        """Archive, read and store (or hand over) a push whose key and size were accepted.

        Sets the push's outcome, result and reason, and returns the outcome. Never raises for
        what a push or the storage does.
        """
        push.body_bytes = len(body)
        # The whole answer is due within the deadline: what is kept back pays for the record
        # and the answer, and for a storage client's last pause before it gives up.
        budget = self.settings.push_deadline_seconds - min(
            _ANSWER_RESERVE, self.settings.push_deadline_seconds / 4
        )
        with deadline.within(budget - push.seconds):
            try:
                archived = self.archive.store_body(
                    body, push_id=push.push_id, received_at=push.received_at, content_type=content_type
                )
                push.raw_archive = archived.name
                reading = PushBody(body)
                push.sessions = reading.count(stop_after=self.settings.max_push_sessions)
                if push.sessions > self.settings.max_push_sessions:
                    push.refusal = "too_many_sessions"
                    return self._settle(push, Outcome.REFUSED, _too_many(self.settings.max_push_sessions))
                if push.sessions > SYNC_MAX_SESSIONS:
                    return self._hand_over(push, f"{push.sessions} sessions: stored in the background")
                return self._store_now(push, reading)
            except InvalidPush as error:
                push.refusal = "invalid_body"
                return self._settle(push, Outcome.REFUSED, str(error))
            except StorageUnavailable as error:
                return self._settle(push, Outcome.UNAVAILABLE, str(error))

    def _store_now(self, push: IncomingPush, reading: PushBody) -> Outcome:
        left = deadline.remaining() or self.settings.push_deadline_seconds
        reserve = min(left * _HANDOFF_RESERVE, _HANDOFF_RESERVE_MAX_SECONDS)
        try:
            with deadline.within(left - reserve):
                push.result = self._ingest(push, reading)
        except (deadline.DeadlineExceeded, StorageDeadlineExceeded):
            # Storage is slow, not failing: the archived push is finished in the background.
            return self._hand_over(push, "not stored within the deadline: stored in the background")
        return self._settle(push, Outcome.STORED)

    def _hand_over(self, push: IncomingPush, reason: str) -> Outcome:
        """Put the archived push on the queue for the background function (raises if storage
        cannot); refuse it (503) when the background function cannot run: never a 202 for a push
        that nothing would store."""
        if self.background_problem is not None or self.queue is None:
            problem = self.background_problem or "no push queue"
            log_event("background_unavailable", logging.ERROR, push_id=push.push_id, reason=problem)
            push.refusal = "background_unavailable"
            return self._settle(push, Outcome.UNAVAILABLE, f"{reason}, but {problem}")
        message = {
            "push_id": push.push_id,
            "received_at": push.received_at.isoformat(),
            "raw_archive": push.raw_archive,
            "body_bytes": push.body_bytes,
            "key_slot": push.key.slot if push.key else None,
            "key_fingerprint": push.key.fingerprint if push.key else None,
        }
        if not self._queue_ready and not self.settings.require_storage().uses_identity:
            self.queue.ensure()
            self._queue_ready = True
        self.queue.send(json.dumps(message))
        push.mode = "background"
        return self._settle(push, Outcome.ACCEPTED, reason)

    def _ingest(self, push: IncomingPush, reading: PushBody) -> IngestResult:
        return ingest_push(
            reading,
            self.store,
            push_id=push.push_id,
            received_at=push.received_at,
            limits=self.settings.limits,
            raw_archive=push.raw_archive,
        )

    @staticmethod
    def _settle(push: IncomingPush, outcome: Outcome, reason: str | None = None) -> Outcome:
        push.outcome, push.reason = outcome, reason
        return outcome

    def conclude(self, push: IncomingPush, status: int) -> None:
        """Log the request's line (and its sessions' lines), and keep the push's record if its key
        was accepted. A record that cannot be written is logged, never fatal to the answer."""
        result = push.result
        counts = result.counts if result is not None else push.counts
        if result is not None:
            _log_sessions(push.push_id, result)
        accepted = push.key is not None and push.key.slot is not None
        log_event(
            "push",
            logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR,
            status=status,
            outcome=str(push.outcome) if push.outcome else None,
            reason=push.reason,
            push_id=push.push_id if accepted else None,
            body_bytes=push.body_bytes if accepted else None,
            duration_ms=round(push.seconds * 1000, 1),
            key_slot=push.key.slot if push.key else None,
            key_fingerprint=push.key.fingerprint if push.key else None,
            raw_archive=push.raw_archive,
            **counts,
        )
        if accepted:
            self._record(push, status, counts)

    def _record(self, push: IncomingPush, status: int, counts: Mapping[str, int]) -> None:
        assert push.key is not None
        record = PushRecord(
            push_id=push.push_id,
            received_at=push.received_at,
            status=status,
            outcome=str(push.outcome or ""),
            body_bytes=push.body_bytes,
            duration_ms=round(push.seconds * 1000, 1),
            # A push handed to the background has been counted whole; one refused as too large has not.
            counts=dict(counts)
            or ({"received": push.sessions or 0} if push.outcome is Outcome.ACCEPTED else {}),
            raw_archive=push.raw_archive,
            key_slot=push.key.slot,
            key_fingerprint=push.key.fingerprint,
            mode=push.mode,
            reason=push.reason,
            finished_at=datetime.now(UTC) if push.mode == "sync" else None,
        )
        # Within what is left of the push's deadline (half a second at least): the record never
        # holds the answer back much, not even when storage hangs.
        left = self.settings.push_deadline_seconds - push.seconds
        try:
            with deadline.within(min(_RECORD_SECONDS, max(left, _RECORD_SECONDS_LEAST))):
                self.records.save(record)
        except StorageUnavailable as error:
            log_event("push_record_not_written", logging.WARNING, push_id=push.push_id, reason=str(error))

    # --- the background function --------------------------------------------------------------

    def finish(self, message_text: str, *, attempt: int) -> IngestResult:
        """Store a push that was answered 202 (its queue message), as a live push would be.

        Raises what made this try fail: the queue tries again, and after the last try the
        Functions host moves the message to the poison queue (each try logged and recorded).
        """
        started = time.perf_counter()
        message = json.loads(message_text)
        push_id, archive_name = str(message["push_id"]), str(message["raw_archive"])
        received_at = datetime.fromisoformat(str(message["received_at"]))
        record = self.records.find(push_id, received_at) or PushRecord(
            push_id, received_at, 202, str(Outcome.ACCEPTED), int(message.get("body_bytes") or 0), 0.0
        )
        record.mode, record.attempts = "background", attempt
        try:
            result = ingest_push(
                self.archive.body_at(archive_name),
                self.store,
                push_id=push_id,
                received_at=received_at,
                limits=self.settings.limits,
                raw_archive=archive_name,
            )
        except Exception as error:
            # Whatever failed (storage, a body that is no push, a bug, memory), the try is over:
            # told in the log and the record, and raised so that the queue tries again, or, after
            # the last try, the Functions host moves the message to the poison queue.
            outcome = Outcome.POISONED if attempt >= BACKGROUND_ATTEMPTS else Outcome.FAILED
            log_event(
                "push_finished",
                logging.ERROR,
                push_id=push_id,
                outcome=str(outcome),
                reason=str(error),
                attempt=attempt,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
            )
            record.outcome, record.reason = str(outcome), f"{type(error).__name__}: {error}"
            self._save_quietly(record)
            raise
        _log_sessions(push_id, result)
        log_event(
            "push_finished",
            logging.INFO,
            push_id=push_id,
            outcome=str(Outcome.STORED),
            attempt=attempt,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
            **result.counts,
        )
        record.outcome, record.reason, record.counts = str(Outcome.STORED), None, result.counts
        record.finished_at = datetime.now(UTC)
        self._save_quietly(record)
        return result

    def _save_quietly(self, record: PushRecord) -> None:
        try:
            self.records.save(record)
        except StorageUnavailable as error:
            log_event("push_record_not_written", logging.WARNING, push_id=record.push_id, reason=str(error))

    # --- health -------------------------------------------------------------------------------

    def health(self) -> Unhealthy | None:
        """Why the receiver cannot take every push now, or None: no key, a background function that
        cannot run, storage out of reach (within HEALTH_DEADLINE_SECONDS whatever storage does), or
        a push waiting on the queue untaken.

        What storage answered is kept for HEALTH_CACHE_SECONDS: at most one probe per instance in
        that time, however many callers ask.
        """
        if not self.keys.configured:
            return Unhealthy("no API key configured", "no API key configured")
        if self.background_problem is not None:
            return Unhealthy("background function cannot run", self.background_problem)
        with self._health_lock:
            now = time.monotonic()
            if self._health is None or now - self._health[0] >= HEALTH_CACHE_SECONDS:
                self._health = (now, self._probe())
            return self._health[1]

    def _probe(self) -> Unhealthy | None:
        with deadline.within(HEALTH_DEADLINE_SECONDS):
            try:
                self.store.check_health()
                self.records.check_health()
                self.archive.check_health()
                if self.queue is None:
                    return None
                self.queue.check_health()
                oldest = self.queue.oldest_waiting()
            except deadline.DeadlineExceeded as error:
                return Unhealthy("storage unreachable", str(StorageDeadlineExceeded(str(error))))
            except StorageUnavailable as error:
                return Unhealthy("storage unreachable", str(error))
        waited = 0.0 if oldest is None else (datetime.now(UTC) - oldest).total_seconds()
        if waited > BACKGROUND_STALL_SECONDS:
            return Unhealthy(
                "background stalled",
                f"a push has waited {waited / 60:.0f} minutes on queue {self.queue.name}, not taken: "
                "the background function does not run",
            )
        return None


def _too_many(limit: int) -> str:
    return f"the push holds more than {limit:,} sessions (MAX_PUSH_SESSIONS): split it"


def _log_sessions(push_id: str, result: IngestResult) -> None:
    """At most MAX_LOGGED_SESSIONS lines each of rejected and of updated sessions."""
    for rejection in result.rejections[:MAX_LOGGED_SESSIONS]:
        log_event(
            "session_rejected",
            logging.WARNING,
            push_id=push_id,
            index=rejection.index,
            ChargerID=rejection.charger_id,
            TransactionID=rejection.transaction_id,
            reasons=[f"{error.field}: {error.message}" for error in rejection.errors],
            quarantine_id=rejection.quarantine_id,
        )
    for update in (result.updates or [])[:MAX_LOGGED_SESSIONS]:
        who = {"ChargerID": update.charger_id, "TransactionID": update.transaction_id}
        log_event("session_updated", logging.WARNING, push_id=push_id, changes=update.changes, **who)


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
