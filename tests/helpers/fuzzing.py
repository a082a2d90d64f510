"""Generated push bodies for the fuzz tests, each with what the receiver must make of it.

A body is built as JSON text by hand, so that it can hold what Python's json module would never
write: NaN and Infinity literals, 1e400, duplicate keys, byte order marks, invalid UTF-8, nesting
10,000 levels deep, lone surrogate escapes. Every session carries its own verdict, decided by how
it was made (not by asking the code under test): `valid` ones must be stored, `invalid` ones
quarantined. Valid sessions are plausible by the default limits (sessions.settings.SessionLimits)
for a push received now: they start after 2010 and end in the past, last at most two days, and
carry no more energy than their duration allows.
"""

from __future__ import annotations

import hashlib
import json
import math
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from sessions.storage.entities import SESSION_FIELDS

FIELDS = SESSION_FIELDS
REQUIRED = ("TransactionID", "ChargerID", "ConnectorID", "StartAt", "EndAt", "EnergyDelivered")
GIGANTIC = 1_100_000  # characters: over an entity's 1 MiB, and over a property's 64 KiB


@dataclass(frozen=True)
class Literal:
    """A JSON token written as is (NaN, Infinity, 1e400), and the value a parser makes of it."""

    text: str
    value: float


NAN = Literal("NaN", math.nan)
INFINITY = Literal("Infinity", math.inf)
MINUS_INFINITY = Literal("-Infinity", -math.inf)
HUGE = Literal("1e400", math.inf)


@dataclass
class GeneratedSession:
    """One session as (key, value) pairs in the order written, and whether it must be stored."""

    pairs: list[tuple[str, Any]]
    valid: bool
    start: datetime | None = None  # the StartAt instant of a valid session, for its partition
    mutation: str = "none"
    # An item no value can be read of (nested too deep, a number too long, a lone surrogate).
    odd: bool = False

    @property
    def value(self) -> dict[str, Any]:
        """The session as a JSON parser reads it: the last of duplicate keys wins."""
        return {key: _parsed(value) for key, value in self.pairs}

    def identity(self) -> tuple[str, int, str]:
        """ChargerID, TransactionID and the UTC month of StartAt: the stored entity's identity."""
        assert self.valid and self.start is not None
        value = self.value
        return value["ChargerID"], value["TransactionID"], f"{self.start:%Y-%m}"

    def quarantine_id(self, *, spaced: bool = False) -> str:
        """The documented quarantine RowKey: SHA-256 of the canonical JSON (sorted keys), or of the
        session's JSON text as sent when no value can be read of it (an odd item)."""
        if self.odd:
            return hashlib.sha256(write_json(self, spaced=spaced).strip().encode("utf-8")).hexdigest()
        canonical = json.dumps(self.value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass
class GeneratedPush:
    """A body, the sessions in it, and whether the body as a whole is a push (else 400)."""

    body: bytes
    sessions: list[GeneratedSession] = field(default_factory=list)
    is_push: bool = True
    shape: str = "array"
    spaced: bool = False

    def homes(self) -> dict[tuple[str, int], str]:
        """Where each session of the push is stored when the push is its first: one record per
        (ChargerID, TransactionID), the later copy winning, in the UTC month of its StartAt."""
        homes: dict[tuple[str, int], str] = {}
        for item in self.sessions:
            if item.valid:
                charger_id, transaction_id, month = item.identity()
                homes[(charger_id, transaction_id)] = month
        return homes

    def quarantine_ids(self) -> set[str]:
        """The quarantine ids of its invalid sessions."""
        return {item.quarantine_id(spaced=self.spaced) for item in self.sessions if not item.valid}


def _parsed(value: Any) -> Any:
    if isinstance(value, Literal):
        return value.value
    if isinstance(value, RawPairs):
        return {key: _parsed(item) for key, item in value.pairs}
    if isinstance(value, list):
        return [_parsed(item) for item in value]
    return value


@dataclass(frozen=True)
class RawPairs:
    """A nested JSON object written from pairs (so it may repeat a key)."""

    pairs: tuple[tuple[str, Any], ...]


def write_json(value: Any, *, spaced: bool = False) -> str:
    """JSON text for a generated value; Literal tokens are written as they are."""
    comma, colon = (", ", ": ") if spaced else (",", ":")
    if isinstance(value, Literal):
        return value.text
    if isinstance(value, GeneratedSession):
        return write_json(RawPairs(tuple(value.pairs)), spaced=spaced)
    if isinstance(value, RawPairs):
        inner = comma.join(
            f"{json.dumps(key, ensure_ascii=False)}{colon}{write_json(item, spaced=spaced)}"
            for key, item in value.pairs
        )
        return "{" + inner + "}"
    if isinstance(value, list):
        return "[" + comma.join(write_json(item, spaced=spaced) for item in value) + "]"
    return json.dumps(value, ensure_ascii=False)


# Extra fields the sender may add: any JSON, kept small enough to fit one entity.
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
_EXTRA_VALUES = (
    _SCALARS
    | st.lists(_SCALARS, max_size=3)
    | st.dictionaries(st.text(max_size=6), _SCALARS | st.lists(_SCALARS, max_size=2), max_size=3)
)
_EXTRA_NAMES = st.text(min_size=1, max_size=12).filter(lambda name: name not in FIELDS)


# Identifiers: letters and digits, the characters Table Storage forbids in keys, and a few others;
# never control, format or invisible characters, edge spaces or forms NFKC would change.
_IDENTIFIER_CHARACTERS = st.sampled_from(
    list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcxyz0123456789-_.:/\\#?%'\" ,;()+=@*&") + list("éüßÅøŁλЖ✓中")
)
_IDENTIFIERS = st.text(_IDENTIFIER_CHARACTERS, min_size=1, max_size=12).filter(
    lambda text: text == text.strip() and unicodedata.normalize("NFKC", text) == text
)
# The newest a valid session may start: the push is received now, and a session ends before it.
_LATEST_START = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=3)


def _padded(text: str, length: int) -> str:
    """`text`, made up to `length` characters (the longest ChargerID is 160) when it is shorter."""
    return text + "\u00e9" * (length - len(text)) if length > len(text) else text


def _timestamp(moment: datetime, offset_minutes: int, precision: str, zulu: bool) -> str:
    local = moment.astimezone(timezone(timedelta(minutes=offset_minutes)))
    text = local.isoformat(timespec=precision)
    if zulu and offset_minutes == 0:
        text = text.replace("+00:00", "Z")
    return text


@st.composite
def valid_sessions(draw: st.DrawFn) -> GeneratedSession:
    """A session within every rule of the contract, in many spellings."""
    start = draw(
        st.datetimes(min_value=datetime(2010, 1, 2), max_value=_LATEST_START, timezones=st.just(UTC))
    )
    end = start + draw(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=2)))
    # At most what 4 MW deliver in the session (a minute at least), and never more than 5 MWh.
    hours = max((end - start).total_seconds(), 60) / 3600
    most_wh = min(5_000_000.0, 4_000_000.0 * hours)
    fraction = draw(st.floats(0, 0.999))
    energy = draw(st.sampled_from([math.floor(most_wh * fraction), most_wh * fraction, 0]))
    offset = draw(st.sampled_from([0, 0, 60, -300, 330, 14 * 60, -12 * 60]))
    precision = draw(st.sampled_from(["seconds", "milliseconds", "microseconds"]))
    zulu = draw(st.booleans())
    soc = st.none() | st.integers(0, 100) | st.floats(0, 100)
    pairs: list[tuple[str, Any]] = [
        ("TransactionID", draw(st.integers(0, 2**63 - 1))),
        ("ChargerID", _padded(draw(_IDENTIFIERS), draw(st.sampled_from([0, 0, 0, 160])))),
        ("ConnectorID", draw(st.integers(0, 2**31 - 1))),
        ("StartAt", _timestamp(start, offset, precision, zulu)),
        ("EndAt", _timestamp(end, draw(st.sampled_from([0, 120, -60])), precision, zulu)),
        ("EnergyDelivered", energy),
    ]
    for name, values in (
        ("InitialSoC", soc),
        ("EndSoC", soc),
        ("Id", st.none() | st.just("") | _IDENTIFIERS | st.integers(-(10**20), 10**20)),
    ):
        if draw(st.booleans()):
            pairs.append((name, draw(values)))
    if draw(st.integers(0, 3)) == 0:
        pairs.extend(draw(st.dictionaries(_EXTRA_NAMES, _EXTRA_VALUES, min_size=1, max_size=2)).items())
    # Field order is the sender's business: start the object anywhere in it.
    turn = draw(st.integers(0, len(pairs) - 1))
    return GeneratedSession(pairs[turn:] + pairs[:turn], valid=True, start=start)


# Each of these makes a valid session invalid, whatever else it holds.
_INVALID_VALUES: dict[str, list[Any]] = {
    "TransactionID": ["7030760", -1, 2**63, 1.5, True, None, [], 10**400 // 10**100, HUGE],
    "ChargerID": [
        "",
        "x" * 161,
        42,
        None,
        ["TACW"],
        "G" * GIGANTIC,
        "TACW 1 ",
        " TACW1",
        "TACW\u00a01",
        "TACW\u200b1",
        "TACW\u202e1",
        "TACW\x001",
        "\uff34\uff21\uff23\uff37",
        "Cafe\u0301",
    ],
    "ConnectorID": [-1, 2**31, "1", 1.0, False, NAN],
    "StartAt": [
        "2025-01-09T13:04:34",
        1736427874,
        "yesterday",
        "1600-06-01T00:00:00Z",
        None,
        "20251010",
        "1736427874",
        "0",
        "-1",
        "2025-01-09",
        "1970-01-01T00:00:00Z",
        "2009-12-31T23:00:00Z",
    ],
    "EndAt": [
        "1601-01-01T00:00:00Z",
        "2025-01-10 06:02",
        0,
        {"at": "now"},
        "9999-12-31T23:59:59Z",
        "20250110",
    ],
    "InitialSoC": [100.5, -0.1, "50", NAN, INFINITY, True],
    "EndSoC": [101, -1, MINUS_INFINITY, HUGE, [50]],
    "EnergyDelivered": [
        -1,
        -0.001,
        NAN,
        INFINITY,
        MINUS_INFINITY,
        HUGE,
        "17233",
        None,
        True,
        1e308,
        5_000_001,
    ],
    "Id": [True, [1], {"tag": 1}, NAN, "I" * GIGANTIC, "card\u200b", " 1234", "12\u202e34"],
}


@st.composite
def invalid_sessions(draw: st.DrawFn) -> GeneratedSession:
    """A valid session spoiled in one way the contract rejects."""
    base = draw(valid_sessions())
    kind = draw(
        st.sampled_from(
            [
                "missing",
                "bad_value",
                "bad_value",
                "gigantic_extra",
                "not_utc_range",
                "bad_extra",
                "in_the_future",
            ]
        )
    )
    pairs = list(base.pairs)
    if kind == "missing":
        name = draw(st.sampled_from(REQUIRED))
        pairs = [(key, value) for key, value in pairs if key != name]
        mutation = f"missing {name}"
    elif kind == "gigantic_extra":
        pairs.append(("Notes", "N" * GIGANTIC))
        mutation = "gigantic extra field"
    elif kind == "not_utc_range":
        pairs = [(key, value) for key, value in pairs if key not in ("StartAt", "EndAt")]
        pairs += [("StartAt", "9999-12-31T23:00:00-05:00"), ("EndAt", "9999-12-31T23:30:00-05:00")]
        mutation = "after 9999 in UTC"
    elif kind == "in_the_future":
        pairs = [(key, value) for key, value in pairs if key not in ("StartAt", "EndAt")]
        pairs += [("StartAt", "2030-01-01T00:00:00Z"), ("EndAt", "2030-01-01T01:00:00Z")]
        mutation = "years in the future"
    elif kind == "bad_extra":
        bad_extra = draw(st.sampled_from([NAN, INFINITY, HUGE, int("9" * 4000), _nested(40)]))
        pairs.append(("Odd", bad_extra))
        mutation = f"extra field {write_json(bad_extra)[:30]}"
    else:
        name = draw(st.sampled_from(sorted(_INVALID_VALUES)))
        bad = draw(st.sampled_from(_INVALID_VALUES[name]))
        pairs = [(key, value) for key, value in pairs if key != name]
        pairs.insert(draw(st.integers(0, len(pairs))), (name, bad))
        mutation = f"{name}={write_json(bad)[:30]}"
        # A valid value for the same key written before the bad one changes nothing: the last wins.
        if name in dict(base.pairs) and draw(st.booleans()):
            pairs.insert(0, (name, dict(base.pairs)[name]))
    return GeneratedSession(pairs, valid=False, mutation=mutation)


def _nested(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = [value]
    return value


@st.composite
def sessions_with_odd_but_valid_extras(draw: st.DrawFn) -> GeneratedSession:
    """Valid sessions whose extra fields hold duplicate keys, nesting, long integers or control
    characters: all standard JSON a table can hold."""
    base = draw(valid_sessions())
    odd = draw(
        st.sampled_from(
            [
                RawPairs((("dup", 1), ("dup", 2))),
                _nested(10),
                int("9" * 39),
                "\u0000\u001f\u007f\u2028\ufeff",
            ]
        )
    )
    base.pairs.append(("Odd", odd))
    # A duplicated known field, whose last value is the valid one.
    name = draw(st.sampled_from(REQUIRED))
    value = dict(base.pairs)[name]
    base.pairs.insert(0, (name, "overwritten by the later copy"))
    base.pairs.append((name, value))
    base.mutation = "odd extras"
    return base


@st.composite
def odd_sessions(draw: st.DrawFn) -> GeneratedSession:
    """Sessions no value can be read of, which the push must still take (rejected on their own)."""
    base = draw(valid_sessions())
    kind = draw(st.sampled_from(["deep", "long_number", "lone_surrogate"]))
    pairs = list(base.pairs)
    if kind == "deep":
        # Written as text: nesting this deep is beyond any recursive writer (and reader).
        pairs.append(("Nested", Literal("[" * 10_000 + "]" * 10_000, math.nan)))
    elif kind == "long_number":
        pairs.append(("Meter", Literal("9" * 5000, math.inf)))
    else:
        pairs.append(("Id", Literal('"\\ud83d"', math.nan)))
    return GeneratedSession(pairs, valid=False, mutation=f"odd: {kind}", odd=True)


any_session = st.one_of(
    valid_sessions(),
    valid_sessions(),
    invalid_sessions(),
    sessions_with_odd_but_valid_extras(),
    odd_sessions(),
)


@st.composite
def pushes(draw: st.DrawFn, *, max_sessions: int = 6) -> GeneratedPush:
    """A push of valid and invalid sessions, written in one of the shapes a sender might use."""
    sessions = draw(st.lists(any_session, max_size=max_sessions))
    # Now and then the same session twice, or the same bad session twice.
    repeat = draw(st.booleans())
    if sessions and repeat:
        sessions.append(draw(st.sampled_from(sessions)))
    spaced = draw(st.booleans())
    if len(sessions) == 1 and draw(st.booleans()):
        text, shape = write_json(sessions[0], spaced=spaced), "object"
    else:
        text, shape = write_json(list(sessions), spaced=spaced), "array"
    body = text.encode("utf-8")
    if draw(st.booleans()):
        body, shape = b"\xef\xbb\xbf" + body, f"{shape} with BOM"
    return GeneratedPush(body, sessions, is_push=True, shape=shape, spaced=spaced)


@st.composite
def bodies_that_are_not_pushes(draw: st.DrawFn) -> GeneratedPush:
    """Bodies that must be refused whole (400), with nothing stored or quarantined."""
    valid = draw(pushes(max_sessions=4))
    body = valid.body
    kind = draw(
        st.sampled_from(
            [
                "invalid_utf8",
                "truncated",
                "deep_nesting",
                "utf16",
                "two_boms",
                "scalar",
                "non_object_item",
                "trailing_garbage",
                "empty",
            ]
        )
    )
    if kind == "invalid_utf8":
        at = draw(st.integers(0, len(body)))
        body = (
            body[:at]
            + draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80"]))
            + body[at:]
        )
    elif kind == "truncated":
        start = 3 if body.startswith(b"\xef\xbb\xbf") else 0
        body = body[: draw(st.integers(start, len(body) - 1))]
    elif kind == "deep_nesting":
        body = b"[" * 10_000 + b"]" * 10_000
    elif kind == "utf16":
        body = body.decode("utf-8-sig").encode("utf-16")
    elif kind == "two_boms":
        body = b"\xef\xbb\xbf\xef\xbb\xbf" + body.removeprefix(b"\xef\xbb\xbf")
    elif kind == "scalar":
        body = draw(st.sampled_from([b"42", b'"a session"', b"null", b"true", b"NaN", b"1e400"]))
    elif kind == "non_object_item":
        item = draw(st.sampled_from([b"7", b'"x"', b"null", b"[]", b"NaN"]))
        first = [write_json(valid.sessions[0]).encode("utf-8")] if valid.sessions else []
        body = b"[" + b",".join([*first, item]) + b"]"
    elif kind == "trailing_garbage":
        body = body + draw(st.sampled_from([b" x", b"]", b"{}", b"\x00"]))
    else:
        body = draw(st.sampled_from([b"", b"   ", b"\r\n"]))
    return GeneratedPush(body, [], is_push=False, shape=kind)


any_body = st.one_of(pushes(), pushes(), pushes(), bodies_that_are_not_pushes())
