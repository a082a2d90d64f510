"""How the receiver reaches its storage account: clients, credentials, and one error mapping.

Every service client (tables, blobs, queues) is built here from the one StorageConnection of the
settings, with bounded retries and timeouts; every SDK error becomes StorageUnavailable here,
through `storage_errors`, so that callers deal in one exception that says "try again later".
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient, LinearRetry
from azure.storage.queue import LinearRetry as QueueLinearRetry
from azure.storage.queue import QueueServiceClient

from sessions import deadline
from sessions.settings import Setting, SettingsError, StorageConnection

# Azurite's well-known development account (public, documented, not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
DEVELOPMENT_STORAGE = (
    f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
    f"BlobEndpoint=http://127.0.0.1:10000/{AZURITE_ACCOUNT};"
    f"QueueEndpoint=http://127.0.0.1:10001/{AZURITE_ACCOUNT};"
    f"TableEndpoint=http://127.0.0.1:10002/{AZURITE_ACCOUNT};"
)

# Each request to storage waits at most this long to connect and for each read, and never longer
# than the current deadline leaves (sessions/deadline.py): a hanging storage cannot hold an answer.
CONNECT_TIMEOUT_SECONDS = 5.0
READ_TIMEOUT_SECONDS = 30.0
# A few quick retries, short pauses: a storage that is down is answered 503 within seconds.
TABLE_CLIENT_OPTIONS: dict[str, Any] = {
    "retry_total": 3,
    "retry_connect": 3,
    "retry_read": 2,
    "retry_status": 3,
    "retry_backoff_factor": 0.4,
    "retry_backoff_max": 2,
    "connection_timeout": CONNECT_TIMEOUT_SECONDS,
    "read_timeout": READ_TIMEOUT_SECONDS,
}
# The newest Blob API version that Azurite (package.json) serves, so that what runs in Azure is
# what the tests ran; the SDK's own default is newer than any Azurite release yet.
BLOB_API_VERSION = "2026-06-06"
# The same for the Queue API: azure-storage-queue 12.18 defaults to 2026-10-06, which Azurite
# 3.37 refuses ("The API version 2026-10-06 is not supported by Azurite").
QUEUE_API_VERSION = "2026-06-06"
# Connection-string keys that name one service's endpoint explicitly.
_EXPLICIT_ENDPOINTS = ("BlobEndpoint", "QueueEndpoint", "TableEndpoint", "FileEndpoint")


# The service's error code in an OData or XML error body.
_ERROR_CODE = re.compile(r'"code"\s*:\s*"(\w+)"|<Code>(\w+)</Code>')


class StorageUnavailable(Exception):
    """Storage could not be reached or did not take every write; a retry of the push is safe."""


class StorageDeadlineExceeded(StorageUnavailable):
    """The answer's deadline passed before storage had done its part: nothing more was sent."""


def within_deadline(request: Any) -> None:
    """Before each try of each storage request (the SDKs' raw_request_hook, called after their
    retry policy): give it at most the time the deadline leaves, and none once it has passed.

    Raising here (not an AzureError) also stops the SDK's retries.
    """
    left = deadline.remaining()
    if left is None:
        return
    if left <= 0:
        raise StorageDeadlineExceeded("the answer's deadline passed before storage answered")
    options = request.context.options
    options["connection_timeout"] = min(options.get("connection_timeout") or CONNECT_TIMEOUT_SECONDS, left)
    options["read_timeout"] = min(options.get("read_timeout") or READ_TIMEOUT_SECONDS, left)


def brief_error(error: AzureError) -> str:
    """The service's error code and the first line of an SDK error: enough to act on, no dump."""
    text = str(getattr(error, "message", None) or error).strip()
    first_line = text.splitlines()[0][:300] if text else type(error).__name__
    code = getattr(error, "error_code", None)
    code = getattr(code, "value", code)  # TableErrorCode members print as their enum name
    if not code:
        # Some operations (an insert, say) leave the code in the response body only.
        found = _ERROR_CODE.search(str(error))
        code = (found.group(1) or found.group(2)) if found else None
    return f"{code}: {first_line}" if code else first_line


@contextmanager
def storage_errors(what: str, unavailable: type[StorageUnavailable] = StorageUnavailable) -> Iterator[None]:
    """Turn any SDK error inside the block into `unavailable`, saying what was being done."""
    try:
        yield
    except AzureError as error:
        raise unavailable(f"{what}: {brief_error(error)}") from error


def resolve_connection_string(connection_string: str) -> str:
    """The explicit form of `UseDevelopmentStorage=true` (Azurite on its default ports)."""
    if connection_string.strip() == "UseDevelopmentStorage=true":
        return DEVELOPMENT_STORAGE
    return connection_string


def storage_credential(storage: StorageConnection) -> TokenCredential:
    """The managed identity named by clientId, else whatever DefaultAzureCredential finds."""
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    if storage.client_id:
        return ManagedIdentityCredential(client_id=storage.client_id)
    return DefaultAzureCredential()


def table_service(storage: StorageConnection) -> TableServiceClient:
    """A Table service client for the configured connection, with bounded retries and timeouts."""
    if storage.connection_string is not None:
        return TableServiceClient.from_connection_string(
            resolve_connection_string(storage.connection_string),
            raw_request_hook=within_deadline,
            **TABLE_CLIENT_OPTIONS,
        )
    assert storage.table_service_uri is not None
    return TableServiceClient(
        endpoint=storage.table_service_uri,
        credential=storage_credential(storage),
        raw_request_hook=within_deadline,
        **TABLE_CLIENT_OPTIONS,
    )


def _storage_client_options(api_version: str, retry_policy: Any) -> dict[str, Any]:
    """The options of a blob or queue client: timeouts, the deadline hook, a quick retry policy
    (the SDKs' own waits 15 s and more between tries), and the API version Azurite serves."""
    return {
        "connection_timeout": CONNECT_TIMEOUT_SECONDS,
        "read_timeout": READ_TIMEOUT_SECONDS,
        "api_version": api_version,
        "retry_policy": retry_policy,
        "raw_request_hook": within_deadline,
    }


def blob_service(storage: StorageConnection) -> BlobServiceClient:
    """A Blob service client for the configured connection (managed identity in Azure)."""
    # A few quick tries, then 503, as for the tables, well inside the sender's patience.
    options = _storage_client_options(
        BLOB_API_VERSION, LinearRetry(backoff=1, random_jitter_range=1, retry_total=2)
    )
    if storage.connection_string is not None:
        return BlobServiceClient.from_connection_string(
            resolve_connection_string(storage.connection_string), **options
        )
    if storage.blob_service_uri is None:
        raise SettingsError(f"the raw archive needs {Setting.STORAGE}__blobServiceUri")
    return BlobServiceClient(storage.blob_service_uri, credential=storage_credential(storage), **options)


def queue_service(storage: StorageConnection, setting: str = Setting.STORAGE) -> QueueServiceClient:
    """A Queue service client for the connection configured in `setting` (managed identity in Azure).

    A connection string that names other endpoints but no QueueEndpoint is refused: the SDK would
    otherwise send queue requests to the public `<account>.queue.core.windows.net`.
    """
    # As for the blobs: a few quick tries; and on the push's path (a push handed to the background).
    options = _storage_client_options(
        QUEUE_API_VERSION, QueueLinearRetry(backoff=1, random_jitter_range=1, retry_total=2)
    )
    if storage.connection_string is not None:
        connection_string = resolve_connection_string(storage.connection_string)
        if _names_endpoints_but_not_the_queues(connection_string):
            raise SettingsError(f"the storage connection string in {setting} has no QueueEndpoint")
        return QueueServiceClient.from_connection_string(connection_string, **options)
    if storage.queue_service_uri is None:
        raise SettingsError(f"a storage queue needs {setting}__queueServiceUri")
    return QueueServiceClient(storage.queue_service_uri, credential=storage_credential(storage), **options)


def _names_endpoints_but_not_the_queues(connection_string: str) -> bool:
    keys = {part.split("=", 1)[0].strip() for part in connection_string.split(";") if "=" in part}
    return "QueueEndpoint" not in keys and any(key in keys for key in _EXPLICIT_ENDPOINTS)
