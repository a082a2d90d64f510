"""The receiver's settings: one object, built once from the environment.

Every app setting the code reads is named here and nowhere else. Infra (`infra/`) and
`local.settings.sample.json` mirror this list, and a test keeps the three in step.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

# App settings read by the receiver and the tools (besides the storage connection below).
API_KEYS = "CHARGEPILOT_API_KEYS"
SESSIONS_TABLE = "SESSIONS_TABLE"
REJECTED_TABLE = "REJECTED_TABLE"
MAX_BODY_BYTES = "MAX_BODY_BYTES"
RAW_ARCHIVE_ENABLED = "RAW_ARCHIVE_ENABLED"
RAW_ARCHIVE_CONTAINER = "RAW_ARCHIVE_CONTAINER"

APP_SETTINGS: tuple[str, ...] = (
    API_KEYS,
    SESSIONS_TABLE,
    REJECTED_TABLE,
    MAX_BODY_BYTES,
    RAW_ARCHIVE_ENABLED,
    RAW_ARCHIVE_CONTAINER,
)

# The storage connection, in the Azure Functions convention: either a connection string in
# SESSIONS_STORAGE itself (locally, Azurite), or identity-based settings under the same prefix
# (in Azure, with a managed identity: no account key anywhere).
STORAGE_CONNECTION = "SESSIONS_STORAGE"
STORAGE_IDENTITY_SUFFIXES: tuple[str, ...] = (
    "tableServiceUri",
    "blobServiceUri",
    "credential",
    "clientId",
)

DEFAULT_SESSIONS_TABLE = "ChargingSessions"
DEFAULT_REJECTED_TABLE = "RejectedSessions"
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
DEFAULT_RAW_ARCHIVE_CONTAINER = "raw-pushes"

# Azure's rules for table and container names.
_TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}$")
_CONTAINER_NAME = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$")
_KEY_VAULT_REFERENCE = "@Microsoft.KeyVault("
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class SettingsError(ValueError):
    """A setting is present but unusable; the message names the setting, never its value."""


@dataclass(frozen=True)
class StorageConnection:
    """Where the tables (and the raw archive) live, and how to authenticate."""

    connection_string: str | None = field(default=None, repr=False)
    table_service_uri: str | None = None
    blob_service_uri: str | None = None
    client_id: str | None = None

    @property
    def uses_identity(self) -> bool:
        return self.connection_string is None

    def describe(self) -> str:
        """A description safe to log: endpoints only, never the account key."""
        if self.connection_string is not None:
            return f"connection string in {STORAGE_CONNECTION}"
        who = f"managed identity {self.client_id}" if self.client_id else "DefaultAzureCredential"
        return f"{self.table_service_uri} with {who}"


@dataclass(frozen=True)
class Settings:
    """Everything the receiver and its tools are configured with."""

    api_keys: tuple[str, ...] = field(default=(), repr=False)
    # CHARGEPILOT_API_KEYS still holds "@Microsoft.KeyVault(...)": App Service could not resolve
    # the reference (secret missing, identity without access). Then no key is valid.
    api_keys_unresolved: bool = False
    storage: StorageConnection | None = None
    sessions_table: str = DEFAULT_SESSIONS_TABLE
    rejected_table: str = DEFAULT_REJECTED_TABLE
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    raw_archive_enabled: bool = True
    raw_archive_container: str = DEFAULT_RAW_ARCHIVE_CONTAINER

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Read every setting from `env` (normally `os.environ`); raise SettingsError if unusable.

        Missing API keys are not an error here: the receiver then refuses every push (503).
        Neither is an unresolved Key Vault reference, which must never itself become a key.
        """
        sessions_table = _table_name(env, SESSIONS_TABLE, DEFAULT_SESSIONS_TABLE)
        rejected_table = _table_name(env, REJECTED_TABLE, DEFAULT_REJECTED_TABLE)
        if sessions_table.lower() == rejected_table.lower():
            raise SettingsError(f"{SESSIONS_TABLE} and {REJECTED_TABLE} must name different tables")
        raw_keys = env.get(API_KEYS, "")
        unresolved = raw_keys.strip().startswith(_KEY_VAULT_REFERENCE)
        return cls(
            api_keys=() if unresolved else parse_api_keys(raw_keys),
            api_keys_unresolved=unresolved,
            storage=_storage_connection(env),
            sessions_table=sessions_table,
            rejected_table=rejected_table,
            max_body_bytes=_positive_int(env, MAX_BODY_BYTES, DEFAULT_MAX_BODY_BYTES),
            raw_archive_enabled=_flag(env, RAW_ARCHIVE_ENABLED, default=True),
            raw_archive_container=_container_name(env, RAW_ARCHIVE_CONTAINER, DEFAULT_RAW_ARCHIVE_CONTAINER),
        )

    def require_storage(self) -> StorageConnection:
        """The storage connection, or SettingsError saying which settings to set."""
        if self.storage is None:
            raise SettingsError(
                f"no storage configured: set {STORAGE_CONNECTION} to a connection string, or "
                f"{STORAGE_CONNECTION}__tableServiceUri (and __blobServiceUri) for a managed identity"
            )
        return self.storage


def parse_api_keys(raw: str) -> tuple[str, ...]:
    """Comma-separated keys, so that an old and a new key both work during a rotation."""
    return tuple(dict.fromkeys(key.strip() for key in raw.split(",") if key.strip()))


def with_local_settings(env: Mapping[str, str], path: Path) -> dict[str, str]:
    """`env` completed by the `Values` of a local.settings.json, as `func start` does.

    The environment wins over the file. A missing file changes nothing.
    """
    merged = dict(env)
    if not path.is_file():
        return merged
    try:
        values = json.loads(path.read_text(encoding="utf-8")).get("Values", {})
    except (OSError, ValueError, AttributeError) as error:
        raise SettingsError(f"{path} is not a readable local.settings.json: {error}") from error
    if not isinstance(values, dict):
        raise SettingsError(f"{path}: 'Values' must be an object of strings")
    for name, value in values.items():
        if name not in merged and value is not None:
            merged[name] = str(value)
    return merged


def _storage_connection(env: Mapping[str, str]) -> StorageConnection | None:
    connection_string = env.get(STORAGE_CONNECTION, "").strip()
    if connection_string:
        if connection_string == "UseDevelopmentStorage=true":
            return StorageConnection(connection_string=connection_string)
        if "=" not in connection_string:
            raise SettingsError(f"{STORAGE_CONNECTION} is not a storage connection string")
        return StorageConnection(connection_string=connection_string)
    identity = {
        suffix: env.get(f"{STORAGE_CONNECTION}__{suffix}", "").strip() for suffix in STORAGE_IDENTITY_SUFFIXES
    }
    table_uri = identity["tableServiceUri"]
    if not table_uri:
        return None
    for suffix in ("tableServiceUri", "blobServiceUri"):
        uri = identity[suffix]
        if uri and not uri.startswith("https://"):
            raise SettingsError(f"{STORAGE_CONNECTION}__{suffix} must be an https:// endpoint")
    credential = identity["credential"]
    if credential and credential != "managedidentity":
        raise SettingsError(f"{STORAGE_CONNECTION}__credential must be 'managedidentity' when it is set")
    return StorageConnection(
        table_service_uri=table_uri.rstrip("/"),
        blob_service_uri=identity["blobServiceUri"].rstrip("/") or None,
        client_id=identity["clientId"] or None,
    )


def _table_name(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip() or default
    if not _TABLE_NAME.match(value) or value.lower() == "tables":
        raise SettingsError(
            f"{name} must be a valid table name: 3 to 63 letters and digits, starting with a letter"
        )
    return value


def _container_name(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip() or default
    if not _CONTAINER_NAME.match(value):
        raise SettingsError(
            f"{name} must be a valid blob container name: 3 to 63 lower-case letters, digits "
            "and single hyphens"
        )
    return value


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number of bytes") from None
    if value <= 0:
        raise SettingsError(f"{name} must be greater than zero")
    return value


def _flag(env: Mapping[str, str], name: str, *, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise SettingsError(f"{name} must be true or false")
