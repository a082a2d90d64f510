"""What ChargePilot sends: one completed charging session, and a push of them.

The pydantic model is the contract: field names, types and limits live here, and the
messages a sender sees when a session is rejected come from here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

# Table Storage keeps DateTime values from 1601-01-01 to 9999-12-31 (UTC).
_EARLIEST = datetime(1601, 1, 1, tzinfo=UTC)
# The RowKey (at most 1 KiB, in UTF-16) holds the ChargerID with forbidden characters escaped
# (up to three characters each) and the TransactionID: 160 characters always fit.
MAX_CHARGER_ID_LENGTH = 160
MAX_INT64 = 2**63 - 1
MAX_INT32 = 2**31 - 1


def _timestamp(value: Any) -> Any:
    # Only strings: a bare number would silently be read as Unix time. (Digits finer than
    # microseconds are cut by pydantic, not rounded: Python and our tools keep microseconds.)
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 timestamp string with a zone, e.g. 2025-01-09T13:04:34Z")
    return value


def _in_utc(value: datetime) -> datetime:
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is after 9999-12-31 in UTC, beyond what Table Storage can hold") from None
    if utc < _EARLIEST:
        raise ValueError("is before 1601-01-01 in UTC, beyond what Table Storage can hold")
    return utc


def _card(value: Any) -> Any:
    # The RFID tag is text; a sender that writes it as a number still means those digits.
    if isinstance(value, bool):
        raise ValueError("must be a string, a number or null")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("must be a finite number when it is a number")
        return str(int(value)) if value.is_integer() else repr(value)
    return value


# Kept in UTC from here on: the sender's offset has done its job once the instant is known.
Timestamp = Annotated[AwareDatetime, BeforeValidator(_timestamp), AfterValidator(_in_utc)]
StateOfCharge = Annotated[float, Field(strict=True, ge=0, le=100, allow_inf_nan=False)]


class Session(BaseModel):
    """One completed charging session, exactly as ChargePilot names its fields."""

    model_config = ConfigDict(extra="allow")

    TransactionID: Annotated[int, Field(strict=True, ge=0, le=MAX_INT64)]
    ChargerID: Annotated[str, Field(strict=True, min_length=1, max_length=MAX_CHARGER_ID_LENGTH)]
    ConnectorID: Annotated[int, Field(strict=True, ge=0, le=MAX_INT32)]
    StartAt: Timestamp
    EndAt: Timestamp
    # DC only, and no tag when none was used: absent means the same as null.
    InitialSoC: StateOfCharge | None = None
    Id: Annotated[StrictStr | None, BeforeValidator(_card)] = None
    EndSoC: StateOfCharge | None = None
    EnergyDelivered: Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)]

    @field_validator("EndAt")
    @classmethod
    def _not_before_start(cls, end: datetime, info: ValidationInfo) -> datetime:
        start = info.data.get("StartAt")
        if start is not None and end < start:
            raise ValueError("must not be before StartAt")
        return end

    @property
    def extra_fields(self) -> dict[str, Any]:
        """Fields the sender added beyond the nine known ones, kept as they came."""
        return dict(self.__pydantic_extra__ or {})


@dataclass(frozen=True)
class FieldError:
    """One reason a session was rejected."""

    field: str
    message: str


def field_errors(error: ValidationError) -> list[FieldError]:
    """pydantic's errors in the sender's words: which field, and what is wrong with it."""
    reasons = []
    for item in error.errors(include_url=False, include_input=False, include_context=False):
        location = ".".join(str(part) for part in item["loc"])
        message = item["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        reasons.append(FieldError(field=location or "(session)", message=message))
    return reasons
