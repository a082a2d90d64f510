"""What ChargePilot sends: one completed charging session, and a push of them.

The pydantic model is the contract: field names, types and limits live here, and the
messages a sender sees when a session is rejected come from here.

A session is judged against the plausibility limits (`SessionLimits`, from the settings) and
the instant its push was received: `validate_session` passes both as pydantic's validation
context. `Session.model_validate` without a context judges by the default limits and the
current time.

The rules, each with its own error type (`ValidationError.errors()[i]["type"]`):

- Timestamps (`parse_timestamp`; `_start_at`, `_end_at`): an ISO 8601 date-time with a zone.
  `timestamp_format`, `timestamp_out_of_range`, `timestamp_before_earliest_start`,
  `timestamp_in_future`, `end_before_start`, `session_too_long`.
- Energy: `energy_above_cap` (SESSION_MAX_ENERGY_KWH), `energy_above_power`
  (SESSION_MAX_POWER_KW over the session's duration, at least SHORTEST_METERED_SECONDS).
- Identifiers, ChargerID and the card `Id` (`check_identifier`): `identifier_character`,
  `identifier_whitespace`, `identifier_not_nfkc`.
- Extra fields (`check_storable_json`): `extra_not_json`, `extra_name_not_text`.

A rejection's message names the value and the limit, and for a plausibility rule the setting
that relaxes it; the field is the error's location. Nothing is repaired or normalised here: a
rejected session is quarantined, the sender fixes its data (or an operator relaxes a setting),
and the quarantine's replay stores it.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, time
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
    model_validator,
)
from pydantic_core import PydanticCustomError

from sessions.settings import SessionLimits, Setting

# Table Storage keeps DateTime values from 1601-01-01 to 9999-12-31 (UTC).
_EARLIEST = datetime(1601, 1, 1, tzinfo=UTC)
# The RowKey (at most 1 KiB, in UTF-16) holds the ChargerID with forbidden characters escaped
# (up to three characters each) and the TransactionID: 160 characters always fit.
MAX_CHARGER_ID_LENGTH = 160
MAX_INT64 = 2**63 - 1
MAX_INT32 = 2**31 - 1
# Meters round: a session shorter than this is judged as if it had lasted this long.
SHORTEST_METERED_SECONDS = 60.0
# Extra fields: containers inside one another, and digits of an integer, at most.
MAX_EXTRA_DEPTH = 32
MAX_EXTRA_INT_DIGITS = 40  # a 128-bit integer has 39; anything longer is no identifier or count
# A card id sent as a number: beyond this many digits it is junk, not a tag.
MAX_CARD_NUMBER_DIGITS = 40

_EXAMPLE = "2025-01-09T13:04:34Z or 2025-01-09T15:04:34+02:00"
_LIMITS = "limits"
_DEFAULT_LIMITS = SessionLimits()
_RECEIVED_AT = "received_at"


def validate_session(item: dict[str, Any], *, limits: SessionLimits, received_at: datetime) -> Session:
    """One pushed session validated against the contract and the plausibility `limits`.

    `received_at` (timezone-aware) is when the push arrived: timestamps more than
    `limits.max_future_hours` after it are refused. Raises pydantic's ValidationError, which
    `field_errors` turns into the sender's reasons.
    """
    if received_at.utcoffset() is None:
        raise ValueError("received_at must be timezone-aware")
    context = {_LIMITS: limits, _RECEIVED_AT: received_at.astimezone(UTC)}
    return Session.model_validate(item, context=context)


def _judged_by(info: ValidationInfo) -> tuple[SessionLimits, datetime]:
    """The limits and the receiving instant of this validation (defaults and now without)."""
    context: Any = info.context
    try:
        return context[_LIMITS], context[_RECEIVED_AT]
    except (TypeError, KeyError):
        return _DEFAULT_LIMITS, datetime.now(UTC)


# --- Timestamps -------------------------------------------------------------------------------

# ASCII digits only: `\d` would also take Arabic-Indic or fullwidth digits.
_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:[.,][0-9]+)?"
    r"(?P<zone>[Zz]|[+-](?P<hours>[0-9]{2}):?(?P<minutes>[0-9]{2}))?"
)
_NUMBER_TEXT = re.compile(r"\s*[+-]?[0-9]+(?:[.,][0-9]*)?(?:[eE][+-]?[0-9]+)?\s*")
_DATE_ONLY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def parse_timestamp(value: Any) -> datetime:
    """A sender's timestamp as an aware datetime in UTC, or PydanticCustomError saying what is wrong.

    Accepted: an ISO 8601 date-time with a zone, in the profile of RFC 3339:
    `YYYY-MM-DDThh:mm:ss[.fraction]zone`, the zone `Z` or `±hh:mm`, e.g.
    `2025-01-09T13:04:34.000Z`, `2025-01-09T15:04:34+02:00`. Three spellings that are just as
    unambiguous are accepted too, because rejecting them would be pedantry, not safety:
    a lower-case `t` or `z` and a space instead of `T` (RFC 3339 allows both), a decimal comma
    in the fraction (ISO 8601's preferred decimal sign), and an offset without its colon,
    `±hhmm` (what strftime's `%z` writes). Digits of the fraction beyond microseconds are cut,
    not rounded (Python and the tools keep microseconds).

    Refused, each with its own reason: anything that is not a string (a number is never read
    as Unix time); a string of digits (`"20251010"`, `"1736427874"`, `"0"`, `"-1"`: ambiguous
    between a compact date and Unix seconds, so never guessed); a date without a time; a
    date-time without a zone (whose instant nobody knows); an offset of hours only (`+02`);
    seconds left out; week or ordinal dates and the basic format (`20250109T130434Z`);
    non-ASCII digits; and values that name no instant (`2025-02-30`, `24:00:00`, a leap
    second `23:59:60`, which Python cannot hold, an offset of 24 hours or more). An instant
    before 1601-01-01 or after 9999-12-31 in UTC is refused as beyond Table Storage's range
    (`timestamp_out_of_range`); the plausibility rules (`_start_at`, `_end_at`) come after.
    """
    match = _DATE_TIME.fullmatch(value) if isinstance(value, str) else None
    if match is None or match["zone"] is None:
        raise _timestamp_format(_malformed(value, match is not None))
    # Python's own ISO parser reads every form the pattern admits, once `t` and `z` are capitals.
    text = value if value[10] != "t" and match["zone"] != "z" else value.upper()
    try:
        if match["hours"] is not None and (match["hours"] > "23" or match["minutes"] > "59"):
            raise ValueError("the offset must be less than 24 hours, its minutes 0 to 59")
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        raise _timestamp_format(f"{_shown(value)} is not a valid date-time: {error}") from None
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:
        raise PydanticCustomError(
            "timestamp_out_of_range", "is after 9999-12-31 in UTC, beyond what Table Storage can hold"
        ) from None
    if utc < _EARLIEST:
        raise PydanticCustomError(
            "timestamp_out_of_range", "is before 1601-01-01 in UTC, beyond what Table Storage can hold"
        )
    return utc


def _malformed(value: Any, without_zone: bool) -> str:
    if not isinstance(value, str):
        never = " (a number is never read as Unix time)" if _json_kind(value) == "a number" else ""
        return (
            f"must be an ISO 8601 date-time string with a zone, such as {_EXAMPLE}, "
            f"not {_json_kind(value)}{never}"
        )
    if without_zone:
        return (
            f"{_shown(value)} has no zone, so its instant is unknown: add Z for UTC or the offset, "
            f"such as {_EXAMPLE}"
        )
    if _NUMBER_TEXT.fullmatch(value):
        return (
            f"{_shown(value)} is a number in a string, not an ISO 8601 date-time with a zone such "
            f"as {_EXAMPLE} (it is never read as Unix time or as a compact date)"
        )
    if _DATE_ONLY.fullmatch(value.strip()):
        return (
            f"{_shown(value)} is a date without a time of day: send an ISO 8601 date-time with a "
            f"zone, such as {_EXAMPLE}"
        )
    return f"{_shown(value)} is not an ISO 8601 date-time with a zone, such as {_EXAMPLE}"


def _timestamp_format(message: str) -> PydanticCustomError:
    return PydanticCustomError("timestamp_format", message)


def _not_in_future(moment: datetime, limits: SessionLimits, received_at: datetime) -> None:
    ahead = (moment - received_at).total_seconds()
    if ahead > limits.max_future_hours * 3600:
        raise PydanticCustomError(
            "timestamp_in_future",
            f"{_iso(moment)} is {_duration(ahead)} after the push was received ({_iso(received_at)}), "
            f"more than the {_amount(limits.max_future_hours)} hours a charger's clock may run ahead "
            f"(setting {Setting.SESSION_MAX_FUTURE_HOURS})",
        )


def _start_at(value: Any, info: ValidationInfo) -> datetime:
    """StartAt: a timestamp, not before the earliest start, not beyond the clock-skew allowance."""
    start = parse_timestamp(value)
    limits, received_at = _judged_by(info)
    earliest = datetime.combine(limits.earliest_start, time(0), tzinfo=UTC)
    if start < earliest:
        raise PydanticCustomError(
            "timestamp_before_earliest_start",
            f"{_iso(start)} is before {_iso(earliest)}, the earliest start a session may have "
            f"(setting {Setting.SESSION_EARLIEST_START}; a charger whose clock was reset is not billed)",
        )
    _not_in_future(start, limits, received_at)
    return start


def _end_at(value: Any, info: ValidationInfo) -> datetime:
    """EndAt: a timestamp, not before StartAt, at most the longest duration after it, not beyond
    the clock-skew allowance."""
    end = parse_timestamp(value)
    limits, received_at = _judged_by(info)
    start = info.data.get("StartAt")
    if isinstance(start, datetime):
        if end < start:
            raise PydanticCustomError("end_before_start", "must not be before StartAt")
        seconds = (end - start).total_seconds()
        if seconds > limits.max_days * 86400:
            raise PydanticCustomError(
                "session_too_long",
                f"{_iso(end)} is {_duration(seconds)} after StartAt ({_iso(start)}), longer than the "
                f"{_amount(limits.max_days)} days a session may last (setting {Setting.SESSION_MAX_DAYS})",
            )
    _not_in_future(end, limits, received_at)
    return end


# --- Identifiers -----------------------------------------------------------------------------

# Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt): drawn as nothing.
_DEFAULT_IGNORABLE = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)
_BIDI_CONTROLS = frozenset((0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)))
# Visible, but never in a real identifier: a blank and the marks of text damaged on its way.
_STAND_INS = {
    0x2800: "a blank (braille pattern blank)",
    0xFFFC: "a stand-in for a missing object",
    0xFFFD: "the mark of a decoding error (the text was damaged before it was sent)",
}
# A sequence is compared in NFKC within this many characters (longer ones are not named).
_NORMALIZATION_WINDOW = 32


def check_identifier(text: Any) -> Any:
    """`text` unchanged if it is a clean identifier (ChargerID, card Id), else PydanticCustomError.

    Runs before pydantic's own string validation (which refuses a lone surrogate without
    naming it); what is not a string is left to that validation.

    Decision: an identifier is exactly the text the sender sent, compared code point for code
    point, and it must be text that looks like what it is. Three rules, each rejecting with a
    reason that names the character (U+XXXX and its Unicode name) and its position:

    1. No character that is invisible or that changes how the text around it is shown: the
       Unicode categories Cc (controls, NUL to U+001F, U+007F to U+009F), Cf (format: zero-width
       space U+200B, word joiner U+2060, byte-order mark U+FEFF, soft hyphen U+00AD), Cs (lone
       surrogates, which are not characters at all), Co (private use), Cn (unassigned, by
       Python's Unicode database), Zl and Zp (line and paragraph separators); every space but
       U+0020 (NBSP U+00A0, the ideographic space U+3000, ...); every Default_Ignorable_Code_Point
       (variation selectors, the Hangul fillers U+115F, U+1160, U+3164, U+FFA0, Mongolian
       selectors, tags); the bidi controls (U+061C, U+200E, U+200F, U+202A to U+202E, U+2066 to
       U+2069), which can show `ABC` for what is stored as `CBA`; and three stand-ins (U+2800
       braille blank, U+FFFC, U+FFFD, the last being the mark of text damaged by a decoding error).
    2. No leading or trailing whitespace (after rule 1 only U+0020 is left to check): `"A1 "`
       and `"A1"` would be two stations that look the same in every report.
    3. The text must be in Unicode Normalization Form KC (NFKC). NFC alone would stop the two
       spellings of one letter (`é` precomposed, U+00E9, and `e` + U+0301 COMBINING ACUTE
       ACCENT: canonically equivalent, drawn the same, different code points); NFKC also stops
       the compatibility forms that look like other text: fullwidth letters (U+FF21 for `A`),
       ligatures (U+FB01 for `fi`), superscripts, circled and styled letters. Every ASCII
       identifier is NFKC, so real charger ids (serials such as `TACW2242521T0570`) and card
       tags pass, and so does text in any script written in its usual, composed form.

    Why reject instead of normalising: an identifier is half of a session's identity and the
    key of its bill. Silently normalising would merge what the sender keeps apart (and a replay
    of the raw push would store something else than was sent), while accepting the variants
    makes look-alike stations and cards. A rejected session is quarantined with its raw JSON;
    once the sender fixes its data, or an operator decides, it is replayed. So the three rules
    together mean: two accepted identifiers that look alike are the same string, but for the
    case below.

    Not covered: look-alikes across scripts (Latin `A` and Cyrillic U+0410 are both NFKC), which
    need Unicode's confusables data (UTS #39); and case, which stays significant as OCPP has it.
    """
    if not isinstance(text, str):
        return text
    if text.isascii() and text.isprintable() and text[:1] != " " and text[-1:] != " ":
        return text  # the common case: no control, no space at either end, nothing to normalise
    for index, character in enumerate(text):
        kind = unfit_character(character)
        if kind is not None:
            raise PydanticCustomError(
                "identifier_character",
                f"holds {_character(character)}, {kind}, at character {index + 1}: an identifier must "
                "be visible text (nothing is removed or normalised here; the sender must fix it)",
            )
    _check_edges(text)
    if not unicodedata.is_normalized("NFKC", text):
        raise PydanticCustomError("identifier_not_nfkc", _not_nfkc_message(text))
    return text


def _check_edges(text: str) -> None:
    if text.startswith(" ") or text.endswith(" "):
        where = "begins" if text.startswith(" ") else "ends"
        raise PydanticCustomError(
            "identifier_whitespace",
            f"{where} with a space (U+0020): an identifier must not begin or end with whitespace "
            "(nothing is trimmed here; the sender must fix it)",
        )


def unfit_character(character: str) -> str | None:
    """What makes `character` unfit for an identifier (check_identifier's rule 1), or None.

    The tools escape the same characters wherever they write stored text (sessions/export.py).
    """
    code = ord(character)
    category = unicodedata.category(character)
    if category == "Cc":
        return "a control character"
    if category == "Cs":
        return "a lone surrogate (half of a UTF-16 pair, not a character)"
    if category == "Co":
        return "a private-use character"
    if category == "Cn":
        return "an unassigned code point"
    if category in ("Zl", "Zp"):
        return "a line or paragraph separator"
    if category == "Zs" and character != " ":
        return "a space other than U+0020"
    if code in _BIDI_CONTROLS:
        return "a bidi control, which changes the order in which text is shown"
    if category == "Cf":
        return "an invisible format character"
    if any(first <= code <= last for first, last in _DEFAULT_IGNORABLE):
        return "an invisible (default-ignorable) character"
    return _STAND_INS.get(code)


def _not_nfkc_message(text: str) -> str:
    reason = "is not in Unicode normalization form NFKC"
    advice = (
        ": send the NFKC form, so that spellings that look alike cannot name different stations "
        "or cards (nothing is normalised here)"
    )
    for index, character in enumerate(text):
        normal = unicodedata.normalize("NFKC", character)
        if normal != character:
            where = f"{_character(character)} at character {index + 1} is {_shown(normal)} in NFKC"
            return f"{reason} ({where}){advice}"
    for index in range(len(text)):
        window = text[max(0, index + 1 - _NORMALIZATION_WINDOW) : index + 1]
        if not unicodedata.is_normalized("NFKC", window):
            return (
                f"{reason} ({_character(text[index])} at character {index + 1} combines with what "
                f"precedes it into another spelling of the same text){advice}"
            )
    return reason + advice


def _character(character: str) -> str:
    name = unicodedata.name(character, "")
    return f"U+{ord(character):04X} {name}" if name else f"U+{ord(character):04X}"


def _card(value: Any) -> Any:
    # The RFID tag is text; a sender that writes it as a number still means those digits.
    if isinstance(value, bool):
        raise ValueError("must be a string, a number or null")
    if isinstance(value, int):
        if abs(value) >= 10**MAX_CARD_NUMBER_DIGITS:
            raise ValueError(f"is a number of more than {MAX_CARD_NUMBER_DIGITS} digits, no card id")
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("must be a finite number when it is a number")
        if value.is_integer() and abs(value) < 10**MAX_CARD_NUMBER_DIGITS:
            return str(int(value))
        return repr(value)
    return value


# --- Extra fields ----------------------------------------------------------------------------

_SURROGATE = re.compile("[\ud800-\udfff]")


def check_storable_json(value: Any) -> Any:
    """An extra field's value unchanged if standard JSON (RFC 8259, UTF-8) can hold it as it is.

    The sender may add fields; they are kept as one JSON string, exported and replayed. So an
    extra field is refused (`extra_not_json`, naming the field and where in it) when it holds:
    NaN or Infinity (a number such as 1e400 decodes to Infinity); an integer of more than
    MAX_EXTRA_INT_DIGITS digits (Python refuses to print one of over 4,300 digits, and no
    parser but Python's keeps one beyond 64 bits exactly); containers nested more than
    MAX_EXTRA_DEPTH deep; a string or a name holding a lone surrogate (JSON's `"\\ud83d"`
    escape of half a UTF-16 pair, which UTF-8 cannot carry); or anything that is no JSON value.
    """
    problem = _json_problem(value, "", 0)
    if problem is not None:
        raise PydanticCustomError("extra_not_json", problem)
    return value


def _json_problem(value: Any, path: str, depth: int) -> str | None:
    where = f" at {path}" if path else ""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        found = _SURROGATE.search(value)
        if found is not None:
            return f"holds a lone surrogate U+{ord(found.group()):04X}{where}: a string must be text"
        return None
    if isinstance(value, int):
        if abs(value) >= 10**MAX_EXTRA_INT_DIGITS:
            return f"holds an integer of more than {MAX_EXTRA_INT_DIGITS} digits{where}"
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            what = "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
            return (
                f"holds {what}{where}, which standard JSON cannot hold "
                "(a number such as 1e400 is beyond any float)"
            )
        return None
    if isinstance(value, list | dict):
        if depth >= MAX_EXTRA_DEPTH:
            return f"is nested more than {MAX_EXTRA_DEPTH} levels deep"
        if isinstance(value, list):
            for index, item in enumerate(value):
                problem = _json_problem(item, f"{path}[{index}]", depth + 1)
                if problem is not None:
                    return problem
            return None
        for key, item in value.items():
            if not isinstance(key, str):
                return f"has a member name that is not a string{where}"
            if _SURROGATE.search(key):
                return f"has a member name holding a lone surrogate{where}: a name must be text"
            problem = _json_problem(item, f"{path}.{_member(key)}", depth + 1)
            if problem is not None:
                return problem
        return None
    return f"holds {type(value).__name__}{where}, which is no JSON value"


def _all_ascii(names: dict[Any, Any]) -> bool:
    try:
        return "".join(names).isascii()
    except TypeError:  # a name that is no string: not from JSON
        return False


def _member(key: str) -> str:
    return key if key.isidentifier() and key.isascii() else json.dumps(key)


# --- The model -------------------------------------------------------------------------------

StateOfCharge = Annotated[float, Field(strict=True, ge=0, le=100, allow_inf_nan=False)]
Identifier = Annotated[StrictStr, BeforeValidator(check_identifier)]


class Session(BaseModel):
    """One completed charging session, exactly as ChargePilot names its fields."""

    # Extra fields are validated one by one (check_storable_json); the schema still says "any".
    model_config = ConfigDict(extra="allow", json_schema_extra={"additionalProperties": True})
    __pydantic_extra__: dict[str, Annotated[Any, AfterValidator(check_storable_json)]]

    TransactionID: Annotated[int, Field(strict=True, ge=0, le=MAX_INT64)]
    ChargerID: Annotated[
        StrictStr, Field(min_length=1, max_length=MAX_CHARGER_ID_LENGTH), BeforeValidator(check_identifier)
    ]
    ConnectorID: Annotated[int, Field(strict=True, ge=0, le=MAX_INT32)]
    # Kept in UTC from here on: the sender's offset has done its job once the instant is known.
    StartAt: Annotated[AwareDatetime, BeforeValidator(_start_at)]
    EndAt: Annotated[AwareDatetime, BeforeValidator(_end_at)]
    # DC only, and no tag when none was used: absent means the same as null.
    InitialSoC: StateOfCharge | None = None
    Id: Annotated[Identifier | None, BeforeValidator(_card)] = None
    EndSoC: StateOfCharge | None = None
    EnergyDelivered: Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)]

    @field_validator("EnergyDelivered")
    @classmethod
    def _plausible_energy(cls, energy: float, info: ValidationInfo) -> float:
        limits, _ = _judged_by(info)
        kwh = energy / 1000
        if kwh > limits.max_energy_kwh:
            raise PydanticCustomError(
                "energy_above_cap",
                f"is {_amount(energy)} Wh ({_amount(kwh)} kWh), more than the "
                f"{_amount(limits.max_energy_kwh)} kWh one session may deliver "
                f"(setting {Setting.SESSION_MAX_ENERGY_KWH})",
            )
        start, end = info.data.get("StartAt"), info.data.get("EndAt")
        if isinstance(start, datetime) and isinstance(end, datetime):
            seconds = (end - start).total_seconds()
            counted = max(seconds, SHORTEST_METERED_SECONDS)
            average_kw = kwh / (counted / 3600)
            if average_kw > limits.max_power_kw:
                floor = " (counted as 1 minute, as meters round)" if seconds < counted else ""
                raise PydanticCustomError(
                    "energy_above_power",
                    f"is {_amount(kwh)} kWh in {_duration(seconds)} from StartAt to EndAt{floor}: "
                    f"{_amount(average_kw)} kW on average, more than the {_amount(limits.max_power_kw)} "
                    f"kW a charger can deliver (setting {Setting.SESSION_MAX_POWER_KW})",
                )
        return energy

    @model_validator(mode="before")
    @classmethod
    def _field_names_are_text(cls, data: Any) -> Any:
        # pydantic would refuse such a name without saying which field or why.
        if isinstance(data, dict) and not _all_ascii(data):
            for name in data:
                found = _SURROGATE.search(name) if isinstance(name, str) else None
                if found is not None:
                    raise PydanticCustomError(
                        "extra_name_not_text",
                        f"the extra field {_shown(name)} has a name holding a lone surrogate "
                        f"U+{ord(found.group()):04X}: a name must be text",
                    )
        return data

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


# --- Wording ---------------------------------------------------------------------------------


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _amount(value: float) -> str:
    """A number for a message: up to three decimals, or in exponent form when it is huge."""
    if abs(value) >= 1e9:
        return f"{value:.4g}"
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _duration(seconds: float) -> str:
    for unit, size, below in (
        ("seconds", 1, 120),
        ("minutes", 60, 120 * 60),
        ("hours", 3600, 72 * 3600),
        ("days", 86400, 3 * 365.25 * 86400),
    ):
        if abs(seconds) < below:
            return f"{_amount(round(seconds / size, 1))} {unit}"
    return f"{_amount(round(seconds / (365.25 * 86400), 1))} years"


def _shown(value: str, limit: int = 40) -> str:
    """A sender's text quoted for a message: JSON-escaped (controls visible), cut if long."""
    cut = value[:limit]
    return json.dumps(cut) + ("..." if len(value) > limit else "")


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a JSON boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
