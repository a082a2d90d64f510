"""Reading back what the receiver stored, the way each test needs it."""

from __future__ import annotations

import uuid
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient

from sessions.settings import Settings
from sessions.storage.connection import table_service


def unique_table(prefix: str) -> str:
    """A table name no other test uses."""
    return f"{prefix}{uuid.uuid4().hex[:16]}"


def tables(settings: Settings) -> tuple[TableClient, TableClient]:
    """Clients for the sessions and quarantine tables, to look at what was stored."""
    service = table_service(settings.require_storage())
    return service.get_table_client(settings.sessions_table), service.get_table_client(
        settings.rejected_table
    )


def all_entities(table: TableClient) -> list[dict[str, Any]]:
    """Every entity of a table (an empty list when the table does not exist yet), but for the
    quarantine's own bookkeeping (its count and arrival list, RowKeys starting with "~")."""
    try:
        return [dict(entity) for entity in table.list_entities() if not str(entity["RowKey"]).startswith("~")]
    except ResourceNotFoundError:
        return []


def stored(settings: Settings) -> list[dict[str, Any]]:
    """Every entity of the sessions table."""
    return all_entities(tables(settings)[0])


def quarantined(settings: Settings) -> list[dict[str, Any]]:
    """Every entity of the quarantine table."""
    return all_entities(tables(settings)[1])
