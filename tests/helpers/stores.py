"""Stores for the tests that need storage to misbehave in a chosen way, around the real one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from sessions.storage import SessionStore
from sessions.storage.entities import Identity, TableWrite
from sessions.storage.tables import SessionsWritten, SessionWrite, StoredSession


class SpoilingStore:
    """The real store, with chosen sessions (by TransactionID), or every quarantine entry, made
    too large for the service on their way out.

    Azurite refuses them as Azure would (PropertyValueTooLarge), as for any rule the service
    enforces that our own checks might one day miss.
    """

    def __init__(
        self, store: SessionStore, *, sessions: frozenset[int] = frozenset(), quarantine: bool = False
    ) -> None:
        self.store = store
        self.spoiled_sessions = sessions
        self.spoil_quarantine = quarantine

    @staticmethod
    def spoiled(write: TableWrite) -> TableWrite:
        return TableWrite({**write.entity, "Spoiler": "x" * 40_000}, write.payload_bytes)

    def find(self, identities: Sequence[Identity]) -> dict[Identity, StoredSession]:
        return self.store.find(identities)

    def write_sessions(self, writes: Sequence[SessionWrite]) -> SessionsWritten:
        return self.store.write_sessions(
            [
                replace(write, write=self.spoiled(write.write))
                if write.identity[1] in self.spoiled_sessions
                else write
                for write in writes
            ]
        )

    def quarantine(self, writes: Sequence[TableWrite], received_at: datetime) -> int:
        chosen = [self.spoiled(write) for write in writes] if self.spoil_quarantine else list(writes)
        return self.store.quarantine(chosen, received_at)
