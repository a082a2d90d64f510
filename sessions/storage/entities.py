"""How sessions and rejected sessions become Table Storage entities, within the service's rules.

Azurite is more lenient than Azure (it accepts oversized entities, too many properties and
mixed partitions in a transaction), so the service's own limits are enforced here, before
anything is sent.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, NamedTuple

from azure.data.tables import EdmType, EntityProperty

from sessions.model import Session
from sessions.results import Rejection, compact_json

# Table Storage limits (learn.microsoft.com: "Understanding the Table service data model").
MAX_STRING_BYTES = 64 * 1024  # a String property, UTF-16
MAX_ENTITY_BYTES = 1024 * 1024
MAX_KEY_BYTES = 1024
MAX_OWN_PROPERTIES = 252  # 255 minus PartitionKey, RowKey and Timestamp
MAX_PROPERTY_NAME = 255
MAX_TRANSACTION_OPERATIONS = 100
MAX_TRANSACTION_BYTES = 4 * 1024 * 1024

# Characters Table Storage forbids in PartitionKey and RowKey, plus "%", which escapes them.
_KEY_UNSAFE = re.compile(r"[/\\#?%\x00-\x1f\x7f-\x9f]")
_KEY_ESCAPE = re.compile(r"%([0-9A-F]{2})")
TRANSACTION_DIGITS = 19  # 2**63 - 1 has 19 digits, so the RowKey sorts numerically
QUARANTINE_PARTITION = "rejected"
# A quarantined session's JSON is split over properties of this many characters: even
# characters outside the BMP (two UTF-16 units each) keep a chunk within 64 KiB.
_RAW_CHUNK = 16_000
# Per-operation overhead of a transaction's multipart body (headers, URL), generously.
_OPERATION_OVERHEAD_BYTES = 1024
# A session whose card id and extra fields hold at most this many characters meets every entity
# limit by construction (keys within 1 KiB, 16 properties, small strings): no need to check.
_SMALL_TEXT = 2000
# Its payload estimate: the overhead, the fixed-size properties, and 6 bytes per character.
_SESSION_FIXED_PAYLOAD = _OPERATION_OVERHEAD_BYTES + 1024


class EntityRuleError(ValueError):
    """An entity would break one of Table Storage's limits; the message says which."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class TableWrite(NamedTuple):
    """One upsert: the entity, and its estimated share of a transaction's request body."""

    entity: dict[str, Any]
    payload_bytes: int

    @property
    def partition_key(self) -> str:
        return str(self.entity["PartitionKey"])

    @property
    def row_key(self) -> str:
        return str(self.entity["RowKey"])


def escape_key(text: str) -> str:
    """`text` without the characters Table Storage forbids in keys, reversibly (%XX)."""
    if not _KEY_UNSAFE.search(text):
        return text
    return _KEY_UNSAFE.sub(lambda match: f"%{ord(match.group()):02X}", text)


def unescape_key(text: str) -> str:
    """The original text of an escape_key result."""
    if "%" not in text:
        return text
    return _KEY_ESCAPE.sub(lambda match: chr(int(match.group(1), 16)), text)


def month_partition(moment: datetime) -> str:
    """The UTC month of an instant, `YYYY-MM`: billing reads a month as one partition."""
    utc = moment.astimezone(UTC)
    return f"{utc.year:04d}-{utc.month:02d}"


def session_row_key(charger_id: str, transaction_id: int) -> str:
    """ChargerID (escaped) and the zero-padded TransactionID: one row per OCPP transaction."""
    return f"{escape_key(charger_id)}_{transaction_id:0{TRANSACTION_DIGITS}d}"


def split_session_row_key(row_key: str) -> tuple[str, int]:
    """ChargerID and TransactionID back from a RowKey made by session_row_key."""
    escaped, separator, digits = row_key.rpartition("_")
    if not separator or len(digits) != TRANSACTION_DIGITS or not digits.isdigit():
        raise ValueError(f"not a session RowKey: {row_key!r}")
    return unescape_key(escaped), int(digits)


def session_entity(session: Session, *, received_at: datetime, push_id: str) -> TableWrite:
    """The entity of a valid session: the nine fields typed, derived values, extras as JSON.

    Raises EntityRuleError if the session cannot be stored within the service's limits.
    """
    row_key = session_row_key(session.ChargerID, session.TransactionID)
    entity: dict[str, Any] = {
        "PartitionKey": month_partition(session.StartAt),
        "RowKey": row_key,
        "TransactionID": EntityProperty(session.TransactionID, EdmType.INT64),
        "ChargerID": session.ChargerID,
        "ConnectorID": session.ConnectorID,
        "StartAt": session.StartAt,
        "EndAt": session.EndAt,
        "EnergyDelivered": float(session.EnergyDelivered),
        "EnergyKWh": session.EnergyDelivered / 1000.0,
        "DurationSeconds": (session.EndAt - session.StartAt).total_seconds(),
        "ReceivedAt": received_at,
        "PushId": push_id,
    }
    # A null is an absent property.
    if session.InitialSoC is not None:
        entity["InitialSoC"] = float(session.InitialSoC)
    if session.EndSoC is not None:
        entity["EndSoC"] = float(session.EndSoC)
    text = 0
    if session.Id is not None:
        entity["Id"] = session.Id
        text += len(session.Id)
    extra = session.__pydantic_extra__
    if extra:
        entity["Extra"] = compact_json(extra)
        text += len(entity["Extra"])
    if text > _SMALL_TEXT:
        return TableWrite(entity, check_entity(entity))
    characters = len(row_key) + len(session.ChargerID) + len(push_id) + text
    return TableWrite(entity, _SESSION_FIXED_PAYLOAD + 6 * characters)


def rejection_entity(rejection: Rejection, *, received_at: datetime, push_id: str) -> TableWrite:
    """The quarantine entity of a rejected session, keyed by its content so that it is kept once.

    The raw JSON is split over `Raw`, `Raw1`, `Raw2`... as far as an entity can hold; beyond
    that it is cut, and `RawTruncated` says so (the raw archive keeps the whole push).
    """
    errors = compact_json([{"field": e.field, "message": e.message} for e in rejection.errors])
    entity: dict[str, Any] = {
        "PartitionKey": QUARANTINE_PARTITION,
        "RowKey": rejection.quarantine_id,
        "ReceivedAt": received_at,
        "PushId": push_id,
        "Index": rejection.index,
        "Errors": errors[: MAX_STRING_BYTES // 4],
    }
    if rejection.charger_id is not None:
        entity["ChargerID"] = rejection.charger_id
    if rejection.transaction_id is not None:
        entity["TransactionID"] = EntityProperty(rejection.transaction_id, EdmType.INT64)
    raw = rejection.raw_json
    entity["RawLength"] = EntityProperty(len(raw), EdmType.INT64)
    entity["RawTruncated"] = False
    budget = MAX_ENTITY_BYTES - entity_size(entity) - 4096
    for number, start in enumerate(range(0, max(len(raw), 1), _RAW_CHUNK)):
        chunk = raw[start : start + _RAW_CHUNK]
        cost = _property_size(f"Raw{number}", chunk)
        if cost > budget:
            entity["RawTruncated"] = True
            break
        entity["Raw" if number == 0 else f"Raw{number}"] = chunk
        budget -= cost
    return TableWrite(entity, check_entity(entity))


def overflow_entity(
    *, push_id: str, received_at: datetime, count: int, kept: int, raw_archive: str | None
) -> TableWrite:
    """The one quarantine entry that stands for the rejected sessions of a push beyond those kept
    one by one: how many, and the archived body that holds them all (replaying it replays them)."""
    message = (
        f"{count} more rejected sessions of this push, beyond the {kept} the quarantine keeps one by one "
        "for a push: the raw archive holds the whole push; `rejected replay` of this entry replays it"
    )
    entity: dict[str, Any] = {
        "PartitionKey": QUARANTINE_PARTITION,
        "RowKey": overflow_id(push_id),
        "ReceivedAt": received_at,
        "PushId": push_id,
        "Overflow": EntityProperty(count, EdmType.INT64),
        "Errors": compact_json([{"field": "(push)", "message": message}]),
        "RawLength": EntityProperty(0, EdmType.INT64),
        "RawTruncated": True,
    }
    if raw_archive:
        entity["RawArchive"] = raw_archive
    return TableWrite(entity, check_entity(entity))


def overflow_id(push_id: str) -> str:
    """The quarantine id of a push's overflow entry (no content hash: one per push)."""
    return f"push-{push_id.lower()}"


def raw_json_of(entity: dict[str, Any]) -> str:
    """The quarantined session's JSON, joined back from its chunks (cut if RawTruncated)."""
    parts = [str(entity.get("Raw", ""))]
    number = 1
    while f"Raw{number}" in entity:
        parts.append(str(entity[f"Raw{number}"]))
        number += 1
    return "".join(parts)


def check_entity(entity: dict[str, Any]) -> int:
    """Enforce Table Storage's per-entity limits; return the entity's share of a transaction.

    Raises EntityRuleError naming the property that breaks a limit.
    """
    for key in ("PartitionKey", "RowKey"):
        value = entity[key]
        if _utf16_bytes(value) > MAX_KEY_BYTES:
            raise EntityRuleError(key, f"is longer than {MAX_KEY_BYTES} bytes")
        if _KEY_UNSAFE.search(value.replace("%", "")):
            raise EntityRuleError(key, "holds a character Table Storage forbids in keys")
    own = [name for name in entity if name not in ("PartitionKey", "RowKey")]
    if len(own) > MAX_OWN_PROPERTIES:
        raise EntityRuleError("(session)", f"has more than {MAX_OWN_PROPERTIES} properties")
    payload = _OPERATION_OVERHEAD_BYTES
    for name in own:
        value = entity[name]
        if len(name) > MAX_PROPERTY_NAME:
            raise EntityRuleError(name[:40], f"property name is over {MAX_PROPERTY_NAME} characters")
        if isinstance(value, str):
            if _utf16_bytes(value) > MAX_STRING_BYTES:
                raise EntityRuleError(
                    name, f"is too large to store (a text value may hold {MAX_STRING_BYTES} bytes)"
                )
            # Escaped JSON takes at most 6 bytes a character (\uXXXX).
            payload += len(name) * 2 + 40 + 6 * len(value)
        else:
            payload += len(name) * 2 + 80
    size = entity_size(entity)
    if size > MAX_ENTITY_BYTES:
        raise EntityRuleError("(session)", f"is {size} bytes, over the {MAX_ENTITY_BYTES} of an entity")
    return payload


def entity_size(entity: dict[str, Any]) -> int:
    """The entity's size as Table Storage counts it (its documented formula)."""
    size = 4 + _utf16_bytes(entity["PartitionKey"]) + _utf16_bytes(entity["RowKey"])
    for name, value in entity.items():
        if name not in ("PartitionKey", "RowKey"):
            size += _property_size(name, value)
    return size


def _property_size(name: str, value: Any) -> int:
    if isinstance(value, EntityProperty):
        value = value.value
    if isinstance(value, str):
        value_size = 4 + _utf16_bytes(value)
    elif isinstance(value, bool):
        value_size = 1
    else:  # Int32 4, Int64, Double and DateTime 8: count 8 for all
        value_size = 8
    return 8 + len(name) * 2 + value_size


def _utf16_bytes(text: str) -> int:
    if text.isascii():
        return 2 * len(text)
    return len(text.encode("utf-16-le", "surrogatepass"))


# --- identity: one record per (ChargerID, TransactionID), whatever month StartAt falls in ------
#
# A session's record lives in its *home* partition: the UTC month of StartAt when it was first
# stored. The index table says, for each identity, which partition that is (written once, with
# an insert that only one writer can win). A correction that moves StartAt into another month
# rewrites the record in place; a *moved* pointer under the new month lets that month's export
# find it. docs/decisions/identity-across-months.md has the why and the costs.

Identity = tuple[str, int]  # (ChargerID, TransactionID)
# Index partitions: TransactionIDs by the million, so the sessions of one push (near ids) share one.
_INDEX_BUCKET = 1_000_000
INDEX_PREFIX = "txn-"
MOVED_PREFIX = "moved-"


def identity_of(entity: dict[str, Any]) -> Identity:
    """The (ChargerID, TransactionID) of a session entity (from its RowKey, which always has both)."""
    return split_session_row_key(str(entity["RowKey"]))


def index_partition(transaction_id: int) -> str:
    """The index partition of a TransactionID: `txn-` and its millions, zero-padded to sort."""
    return f"{INDEX_PREFIX}{transaction_id // _INDEX_BUCKET:013d}"


def index_row_key(identity: Identity) -> str:
    """The zero-padded TransactionID first (a push's ids make one range), then the ChargerID."""
    charger_id, transaction_id = identity
    return f"{transaction_id:0{TRANSACTION_DIGITS}d}_{escape_key(charger_id)}"


def index_range(first: int, last: int) -> tuple[str, str]:
    """RowKey bounds, lower included and upper excluded, of every index entry of the ids first..last."""
    # "`" is the character after "_": every key "<last>_..." sorts below "<last>`".
    return f"{first:0{TRANSACTION_DIGITS}d}_", f"{last:0{TRANSACTION_DIGITS}d}`"


def index_entity(identity: Identity, home: str) -> dict[str, Any]:
    """The index entry of an identity: the partition that holds its one record."""
    charger_id, transaction_id = identity
    return {
        "PartitionKey": index_partition(transaction_id),
        "RowKey": index_row_key(identity),
        "Home": home,
        "ChargerID": charger_id,
        "TransactionID": EntityProperty(transaction_id, EdmType.INT64),
    }


def moved_pointer(month: str, home: str, identity: Identity) -> dict[str, Any]:
    """The pointer, under the month StartAt now falls in, to a record kept in another month."""
    return {
        "PartitionKey": f"{MOVED_PREFIX}{month}",
        "RowKey": f"{home}_{session_row_key(*identity)}",
        "Home": home,
    }


def start_month(entity: dict[str, Any]) -> str:
    """The UTC month of a session entity's StartAt (what its pointer, if any, is filed under)."""
    value = entity["StartAt"]
    return month_partition(value if isinstance(value, datetime) else datetime.fromisoformat(str(value)))


def billable_values(entity: dict[str, Any]) -> dict[str, Any]:
    """What the sender sent of a session entity, comparable between a new one and a stored one:
    the nine fields and the extra fields (timestamps as UTC instants, an absent property as None)."""
    session = stored_session(entity)
    return {name: session[name] for name in (*SESSION_FIELDS, "Extra")}


def changed_fields(old: dict[str, Any], new: dict[str, Any]) -> dict[str, list[Any]]:
    """Field -> [old, new] of what differs between two sessions' billable values."""
    before, after = billable_values(old), billable_values(new)
    return {name: [before[name], after[name]] for name in before if before[name] != after[name]}


# --- the quarantine's own bookkeeping, in its one partition -----------------------------------
# Besides the rejected sessions (keyed by content), the partition holds a count of them and an
# arrival list (newest first), so that `rejected list` reads only what it shows. Both change in
# the same entity-group transactions as the sessions they count: they cannot drift apart.
QUARANTINE_COUNT_KEY = "~count"
_ARRIVAL_PREFIX = "~arrived-"
# Arrival keys count down from here, so that the newest sorts first.
_LAST_MICROSECOND = 10**17


def quarantine_count(count: int) -> dict[str, Any]:
    return {
        "PartitionKey": QUARANTINE_PARTITION,
        "RowKey": QUARANTINE_COUNT_KEY,
        "Count": EntityProperty(count, EdmType.INT64),
    }


def arrival_row_key(received_at: datetime, quarantine_id: str) -> str:
    """Newest first: microseconds since 1970 counted down, then the quarantine id."""
    micros = int((received_at.astimezone(UTC) - _EPOCH).total_seconds() * 1_000_000)
    return f"{_ARRIVAL_PREFIX}{_LAST_MICROSECOND - micros:017d}-{quarantine_id}"


def arrival_range() -> tuple[str, str]:
    """RowKey bounds of the arrival list (lower included, upper excluded)."""
    return _ARRIVAL_PREFIX, _ARRIVAL_PREFIX[:-1] + "."


def arrival_entity(received_at: datetime, quarantine_id: str) -> dict[str, Any]:
    return {
        "PartitionKey": QUARANTINE_PARTITION,
        "RowKey": arrival_row_key(received_at, quarantine_id),
        "QuarantineId": quarantine_id,
    }


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# The sender's nine fields, in the order of ChargePilot's Push-API article.
SESSION_FIELDS: tuple[str, ...] = (
    "TransactionID",
    "ChargerID",
    "ConnectorID",
    "StartAt",
    "EndAt",
    "InitialSoC",
    "Id",
    "EndSoC",
    "EnergyDelivered",
)


def stored_session(entity: dict[str, Any]) -> dict[str, Any]:
    """A stored session back in the sender's nine fields (timestamps as UTC datetimes, an absent
    property as None), then EnergyKWh, DurationSeconds, ReceivedAt, PushId and Extra (a dict)."""
    import json  # only the tools read entities back; the receiver's write path never does

    def value_of(name: str) -> Any:
        value = entity.get(name)
        return value.value if isinstance(value, EntityProperty) else value

    def utc(name: str) -> datetime | None:
        value = value_of(name)
        return value.astimezone(UTC) if isinstance(value, datetime) else None

    charger_id, transaction_id = value_of("ChargerID"), value_of("TransactionID")
    if charger_id is None or transaction_id is None:
        charger_id, transaction_id = split_session_row_key(str(entity["RowKey"]))
    energy = float(value_of("EnergyDelivered") or 0.0)
    start, end = utc("StartAt"), utc("EndAt")
    duration = value_of("DurationSeconds")
    if duration is None and start is not None and end is not None:
        duration = (end - start).total_seconds()
    kwh = value_of("EnergyKWh")
    extra = value_of("Extra")
    return {
        "TransactionID": int(transaction_id),
        "ChargerID": str(charger_id),
        "ConnectorID": value_of("ConnectorID"),
        "StartAt": start,
        "EndAt": end,
        "InitialSoC": value_of("InitialSoC"),
        "Id": value_of("Id"),
        "EndSoC": value_of("EndSoC"),
        "EnergyDelivered": energy,
        "EnergyKWh": float(kwh) if kwh is not None else energy / 1000.0,
        "DurationSeconds": float(duration or 0.0),
        "ReceivedAt": utc("ReceivedAt"),
        "PushId": value_of("PushId"),
        "Extra": json.loads(extra) if isinstance(extra, str) and extra else {},
    }
