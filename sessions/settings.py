"""The receiver's settings: one object, built once from the environment.

Every app setting the code reads is named here and nowhere else. Infra (`infra/`) and
`local.settings.sample.json` mirror this list, and a test keeps the three in step.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import overload


class Setting(StrEnum):
    """The names of the app settings the receiver and its tools read (the names, not the values)."""

    API_KEYS = "CHARGEPILOT_API_KEYS"
    # The keys of billing systems that read the sessions (GET /api/sessions); never push keys.
    READ_KEYS = "CHARGEPILOT_READ_KEYS"
    SESSIONS_TABLE = "SESSIONS_TABLE"
    REJECTED_TABLE = "REJECTED_TABLE"
    SESSION_INDEX_TABLE = "SESSION_INDEX_TABLE"
    PUSHES_TABLE = "PUSHES_TABLE"
    RAW_ARCHIVE_CONTAINER = "RAW_ARCHIVE_CONTAINER"
    PUSH_QUEUE = "PUSH_QUEUE"
    MAX_BODY_BYTES = "MAX_BODY_BYTES"
    MAX_PUSH_SESSIONS = "MAX_PUSH_SESSIONS"
    PUSH_DEADLINE_SECONDS = "PUSH_DEADLINE_SECONDS"
    # Plausibility: a session beyond one of these is quarantined, not stored (docs/configuration.md).
    SESSION_MAX_ENERGY_KWH = "SESSION_MAX_ENERGY_KWH"
    SESSION_MAX_POWER_KW = "SESSION_MAX_POWER_KW"
    SESSION_MAX_DAYS = "SESSION_MAX_DAYS"
    SESSION_MAX_FUTURE_HOURS = "SESSION_MAX_FUTURE_HOURS"
    SESSION_EARLIEST_START = "SESSION_EARLIEST_START"
    # The Functions host's own storage (leases, keys, the queue listener's bookkeeping): read by
    # the host, not by the receiver, which only checks that it is set, because without it the host
    # runs no trigger but HTTP and a push handed to the background would never be stored.
    HOST_STORAGE = "AzureWebJobsStorage"
    # The storage connection, in the Azure Functions convention: either a connection string in
    # SESSIONS_STORAGE itself (locally, Azurite), or identity-based settings under the same
    # prefix (in Azure, with a managed identity: no account key anywhere).
    STORAGE = "SESSIONS_STORAGE"


# Every app setting but the storage connections, which are prefixes (STORAGE_IDENTITY_SUFFIXES).
APP_SETTINGS: tuple[Setting, ...] = tuple(
    setting for setting in Setting if setting not in (Setting.STORAGE, Setting.HOST_STORAGE)
)
# Settings without a default: unset, the receiver refuses what needs them (docs/configuration.md).
REQUIRED_SETTINGS: tuple[Setting, ...] = (
    Setting.API_KEYS,
    Setting.STORAGE,
    Setting.PUSH_QUEUE,
    Setting.HOST_STORAGE,
)
STORAGE_IDENTITY_SUFFIXES: tuple[str, ...] = (
    "tableServiceUri",
    "blobServiceUri",
    "queueServiceUri",
    "credential",
    "clientId",
)

DEFAULT_SESSIONS_TABLE = "ChargingSessions"
DEFAULT_REJECTED_TABLE = "RejectedSessions"
DEFAULT_SESSION_INDEX_TABLE = "SessionIndex"
DEFAULT_PUSHES_TABLE = "Pushes"
DEFAULT_RAW_ARCHIVE_CONTAINER = "raw-pushes"
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
# A 16 MiB body holds at most about 140,000 sessions of even the shortest realistic form (about
# 120 bytes each): the limit refuses only bodies of junk (a million `{}`), never a real push.
DEFAULT_MAX_PUSH_SESSIONS = 150_000
# Well under the 10 to 30 s after which webhook senders commonly give up (and retry).
DEFAULT_PUSH_DEADLINE_SECONDS = 10.0

# Azure's rules for table, container and queue names. A queue's poison queue adds "-poison".
_TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}$")
_CONTAINER_NAME = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$")
_QUEUE_NAME = re.compile(r"^(?=.{3,56}$)[a-z0-9]+(-[a-z0-9]+)*$")
_KEY_VAULT_REFERENCE = "@Microsoft.KeyVault("


class SettingsError(ValueError):
    """A setting is present but unusable; the message names the setting, never its value."""


@dataclass(frozen=True)
class StorageConnection:
    """Where the tables, the raw archive and the push queue live, and how to authenticate."""

    connection_string: str | None = field(default=None, repr=False)
    table_service_uri: str | None = None
    blob_service_uri: str | None = None
    queue_service_uri: str | None = None
    client_id: str | None = None

    @property
    def uses_identity(self) -> bool:
        """In Azure: a managed identity, whose resources Bicep creates (the app creates none)."""
        return self.connection_string is None

    def describe(self) -> str:
        """A description safe to log: endpoints only, never the account key."""
        if self.connection_string is not None:
            return f"connection string in {Setting.STORAGE}"
        who = f"managed identity {self.client_id}" if self.client_id else "DefaultAzureCredential"
        return f"{self.table_service_uri} with {who}"


@dataclass(frozen=True)
class SessionLimits:
    """What a plausible session looks like; beyond any of these it is quarantined, not stored.

    The defaults let every real session through (an AC car plugged in overnight at a depot,
    multi-day parking, megawatt truck charging) and stop absurd ones (1e308 Wh, a duration of
    millennia, a start years ahead or a charger clock reset to 1970).
    """

    # No vehicle battery comes near: even a heavy truck's is about 1 MWh.
    max_energy_kwh: float = 5_000.0
    # The Megawatt Charging System goes up to 3.75 MW; meters round, so short sessions get a minute.
    max_power_kw: float = 4_000.0
    # Multi-week parking at an airport or over a holiday stays well inside.
    max_days: float = 90.0
    # A charger whose clock is set to local time and reported as UTC runs up to 14 hours ahead.
    max_future_hours: float = 24.0
    # Before public OCPP charging: a charger whose clock was reset (1970) is not billed.
    earliest_start: date = date(2010, 1, 1)


@dataclass(frozen=True)
class Settings:
    """Everything the receiver and its tools are configured with."""

    api_keys: tuple[str, ...] = field(default=(), repr=False)
    # CHARGEPILOT_API_KEYS still holds "@Microsoft.KeyVault(...)": App Service could not resolve
    # the reference (secret missing, identity without access). Then no key is valid.
    api_keys_unresolved: bool = False
    # The read keys (GET /api/sessions): optional; unset, or unresolved, nothing can be read.
    read_keys: tuple[str, ...] = field(default=(), repr=False)
    read_keys_unresolved: bool = False
    storage: StorageConnection | None = None
    sessions_table: str = DEFAULT_SESSIONS_TABLE
    rejected_table: str = DEFAULT_REJECTED_TABLE
    session_index_table: str = DEFAULT_SESSION_INDEX_TABLE
    pushes_table: str = DEFAULT_PUSHES_TABLE
    raw_archive_container: str = DEFAULT_RAW_ARCHIVE_CONTAINER
    # The queue the background function's trigger binds (%PUSH_QUEUE%): no default, because the
    # binding has none; unset, no push is handed to the background (background_problem).
    push_queue: str | None = None
    # Whether the Functions host has its own storage (AzureWebJobsStorage), without which it runs
    # no queue trigger.
    host_storage: bool = False
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_push_sessions: int = DEFAULT_MAX_PUSH_SESSIONS
    push_deadline_seconds: float = DEFAULT_PUSH_DEADLINE_SECONDS
    limits: SessionLimits = SessionLimits()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Read every setting from `env` (normally `os.environ`); raise SettingsError if unusable.

        Missing API keys are not an error here: the receiver then refuses every push (503).
        Neither is an unresolved Key Vault reference, which must never itself become a key.
        """
        tables = {
            setting: _table_name(env, setting, default)
            for setting, default in (
                (Setting.SESSIONS_TABLE, DEFAULT_SESSIONS_TABLE),
                (Setting.REJECTED_TABLE, DEFAULT_REJECTED_TABLE),
                (Setting.SESSION_INDEX_TABLE, DEFAULT_SESSION_INDEX_TABLE),
                (Setting.PUSHES_TABLE, DEFAULT_PUSHES_TABLE),
            )
        }
        if len({name.lower() for name in tables.values()}) < len(tables):
            raise SettingsError(f"{', '.join(tables)} must name four different tables")
        raw_keys = env.get(Setting.API_KEYS, "")
        unresolved = raw_keys.strip().startswith(_KEY_VAULT_REFERENCE)
        raw_read_keys = env.get(Setting.READ_KEYS, "")
        read_unresolved = raw_read_keys.strip().startswith(_KEY_VAULT_REFERENCE)
        defaults = SessionLimits()
        return cls(
            api_keys=() if unresolved else parse_api_keys(raw_keys),
            api_keys_unresolved=unresolved,
            read_keys=() if read_unresolved else parse_api_keys(raw_read_keys),
            read_keys_unresolved=read_unresolved,
            storage=_storage_connection(env),
            sessions_table=tables[Setting.SESSIONS_TABLE],
            rejected_table=tables[Setting.REJECTED_TABLE],
            session_index_table=tables[Setting.SESSION_INDEX_TABLE],
            pushes_table=tables[Setting.PUSHES_TABLE],
            raw_archive_container=_matching(
                env,
                Setting.RAW_ARCHIVE_CONTAINER,
                DEFAULT_RAW_ARCHIVE_CONTAINER,
                _CONTAINER_NAME,
                _CONTAINER_RULE,
            ),
            push_queue=_matching(env, Setting.PUSH_QUEUE, None, _QUEUE_NAME, _QUEUE_RULE),
            host_storage=host_storage_configured(env),
            max_body_bytes=int(_positive(env, Setting.MAX_BODY_BYTES, DEFAULT_MAX_BODY_BYTES, whole=True)),
            max_push_sessions=int(
                _positive(env, Setting.MAX_PUSH_SESSIONS, DEFAULT_MAX_PUSH_SESSIONS, whole=True)
            ),
            push_deadline_seconds=_positive(
                env, Setting.PUSH_DEADLINE_SECONDS, DEFAULT_PUSH_DEADLINE_SECONDS
            ),
            limits=SessionLimits(
                max_energy_kwh=_positive(env, Setting.SESSION_MAX_ENERGY_KWH, defaults.max_energy_kwh),
                max_power_kw=_positive(env, Setting.SESSION_MAX_POWER_KW, defaults.max_power_kw),
                max_days=_positive(env, Setting.SESSION_MAX_DAYS, defaults.max_days),
                max_future_hours=_positive(env, Setting.SESSION_MAX_FUTURE_HOURS, defaults.max_future_hours),
                earliest_start=_date(env, Setting.SESSION_EARLIEST_START, defaults.earliest_start),
            ),
        )

    def background_problem(self) -> str | None:
        """Why the background function (the queue trigger that stores pushes answered 202) cannot
        run with these settings, or None. The receiver hands no push to it then: it answers 503."""
        if self.push_queue is None:
            return (
                f"{Setting.PUSH_QUEUE} is not set: the background function's queue trigger binds "
                f"%{Setting.PUSH_QUEUE}%, and the Functions host cannot run it without the setting"
            )
        if not self.host_storage:
            return (
                f"{Setting.HOST_STORAGE} is not set: the Functions host runs no trigger but HTTP "
                "without its own storage"
            )
        return None

    def reading_problem(self) -> str | None:
        """Why no billing system can read the sessions with these settings, or None. A read key
        that is also a push key is never accepted for reading (keys are for one thing only)."""
        if self.read_keys_unresolved:
            return (
                f"{Setting.READ_KEYS} is an unresolved Key Vault reference (secret missing, or the "
                "identity cannot read it): no read key is accepted"
            )
        if not self.read_keys:
            return f"no key in {Setting.READ_KEYS}: reading the sessions is off"
        if not self.usable_read_keys:
            return (
                f"every key in {Setting.READ_KEYS} is also a push key ({Setting.API_KEYS}): none is accepted"
            )
        return None

    @property
    def usable_read_keys(self) -> tuple[str, ...]:
        """The read keys that are not also push keys."""
        return tuple(key for key in self.read_keys if key not in self.api_keys)

    def require_storage(self) -> StorageConnection:
        """The storage connection, or SettingsError saying which settings to set."""
        if self.storage is None:
            raise SettingsError(
                f"no storage configured: set {Setting.STORAGE} to a connection string, or "
                f"{Setting.STORAGE}__tableServiceUri, __blobServiceUri and __queueServiceUri for a "
                "managed identity"
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
    connection_string = env.get(Setting.STORAGE, "").strip()
    if connection_string:
        if connection_string != "UseDevelopmentStorage=true" and "=" not in connection_string:
            raise SettingsError(f"{Setting.STORAGE} is not a storage connection string")
        return StorageConnection(connection_string=connection_string)
    identity = {
        suffix: env.get(f"{Setting.STORAGE}__{suffix}", "").strip() for suffix in STORAGE_IDENTITY_SUFFIXES
    }
    if not identity["tableServiceUri"]:
        return None
    for suffix in ("tableServiceUri", "blobServiceUri", "queueServiceUri"):
        uri = identity[suffix]
        if uri and not uri.startswith("https://"):
            raise SettingsError(f"{Setting.STORAGE}__{suffix} must be an https:// endpoint")
    credential = identity["credential"]
    if credential and credential != "managedidentity":
        raise SettingsError(f"{Setting.STORAGE}__credential must be 'managedidentity' when it is set")
    return StorageConnection(
        table_service_uri=identity["tableServiceUri"].rstrip("/"),
        blob_service_uri=identity["blobServiceUri"].rstrip("/") or None,
        queue_service_uri=identity["queueServiceUri"].rstrip("/") or None,
        client_id=identity["clientId"] or None,
    )


_CONTAINER_RULE = "a valid blob container name: 3 to 63 lower-case letters, digits and single hyphens"
_QUEUE_RULE = "a valid queue name: 3 to 56 lower-case letters, digits and single hyphens"


def _table_name(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip() or default
    if not _TABLE_NAME.match(value) or value.lower() == "tables":
        raise SettingsError(
            f"{name} must be a valid table name: 3 to 63 letters and digits, starting with a letter"
        )
    return value


@overload
def _matching(env: Mapping[str, str], name: str, default: str, rule: re.Pattern[str], says: str) -> str: ...


@overload
def _matching(
    env: Mapping[str, str], name: str, default: None, rule: re.Pattern[str], says: str
) -> str | None: ...


def _matching(
    env: Mapping[str, str], name: str, default: str | None, rule: re.Pattern[str], says: str
) -> str | None:
    value = env.get(name, "").strip() or default
    if value is not None and not rule.match(value):
        raise SettingsError(f"{name} must be {says}")
    return value


def host_storage_configured(env: Mapping[str, str]) -> bool:
    """AzureWebJobsStorage as a connection string, or in its identity-based form (`__accountName`,
    `__blobServiceUri`...), as the Functions host reads it."""
    prefix = f"{Setting.HOST_STORAGE}__"
    return bool(env.get(Setting.HOST_STORAGE, "").strip()) or any(
        name.startswith(prefix) and value.strip() for name, value in env.items()
    )


def _positive(env: Mapping[str, str], name: str, default: float, *, whole: bool = False) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw) if whole else float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a {'whole ' if whole else ''}number") from None
    if not 0 < value < float("inf"):
        raise SettingsError(f"{name} must be greater than zero")
    return value


def _date(env: Mapping[str, str], name: str, default: date) -> date:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a date, YYYY-MM-DD") from None
