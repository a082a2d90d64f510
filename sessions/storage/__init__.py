"""Storage: the only code that imports the Azure storage SDKs.

`connection` builds the clients and maps every SDK error to StorageUnavailable; `entities` turns
sessions into Table entities within the service's limits; `tables` writes and reads the tables;
`archive` keeps every push body in blob storage; `queues` holds the pushes finished in the
background, and their poison queue.
"""

from sessions.storage.archive import ArchivedPush, ArchiveUnavailable, RawArchive
from sessions.storage.connection import StorageUnavailable
from sessions.storage.queues import MessageQueue, QueuedMessage, QueueUnavailable
from sessions.storage.tables import ReadCursor, SessionQuery, SessionStore, WriteFailure

__all__ = [
    "ArchiveUnavailable",
    "ArchivedPush",
    "MessageQueue",
    "QueueUnavailable",
    "QueuedMessage",
    "RawArchive",
    "ReadCursor",
    "SessionQuery",
    "SessionStore",
    "StorageUnavailable",
    "WriteFailure",
]
