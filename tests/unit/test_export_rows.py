"""The export's rows as pure functions: CSV cells, JSON objects, and any stored value, however odd.

Entities are made as the receiver stores them (entities.session_entity), then spoiled by hand
where a test needs what only data stored before today's rules (or written by hand) can hold.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sessions.export import (
    CSV_COLUMNS,
    UNWRITABLE_EXTRA,
    ExportFormat,
    csv_row,
    export_sessions,
    json_row,
    readable_session,
)
from sessions.model import Session, unfit_character
from sessions.period import Period, time_zone
from sessions.storage.entities import session_entity
from tests.helpers import PROJECT
from tests.helpers.pushes import session

BERLIN = time_zone("Europe/Berlin")
MARCH = Period.month("2025-03", BERLIN)
RECEIVED = datetime(2025, 3, 11, 8, 0, tzinfo=UTC)
# Every property of a session entity a test may spoil.
PROPERTIES = (
    "TransactionID",
    "ChargerID",
    "ConnectorID",
    "StartAt",
    "EndAt",
    "EnergyDelivered",
    "EnergyKWh",
    "DurationSeconds",
    "ReceivedAt",
    "PushId",
    "InitialSoC",
    "EndSoC",
    "Id",
    "Extra",
)
MISSING = object()


def entity(**fields: Any) -> dict[str, Any]:
    """A session entity as the receiver stores it (the article's example, moved into March)."""
    fields.setdefault("StartAt", "2025-03-10T10:00:00Z")
    fields.setdefault("EndAt", "2025-03-10T10:45:00Z")
    model = Session.model_validate(session(**fields))
    return dict(session_entity(model, received_at=RECEIVED, push_id="push-1").entity)


def spoiled(**properties: Any) -> dict[str, Any]:
    """A valid entity with properties replaced as stored by hand (MISSING removes one)."""
    stored = entity(InitialSoC=10, EndSoC=80, Tariff="depot")
    for name, value in properties.items():
        if value is MISSING:
            stored.pop(name, None)
        else:
            stored[name] = value
    return stored


def export(
    entities: list[dict[str, Any]],
    output_format: ExportFormat = ExportFormat.CSV,
    period: Period = MARCH,
    **options: Any,
) -> str:
    out = io.StringIO(newline="")
    export_sessions([entities], out, period=period, output_format=output_format, **options)
    return out.getvalue()


def csv_rows(text: str, delimiter: str = ",") -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"), newline=""), delimiter=delimiter))


def row_of(stored: dict[str, Any], period: Period = MARCH) -> dict[str, str]:
    (row,) = csv_rows(export([stored], period=period))
    return row


def json_of(stored: dict[str, Any], period: Period = MARCH) -> dict[str, Any]:
    (line,) = export([stored], ExportFormat.JSONL, period=period).splitlines()
    row: dict[str, Any] = strict_json(line)
    return row


def strict_json(text: str) -> Any:
    """JSON as a strict parser reads it: NaN, Infinity and -Infinity are no JSON."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not standard JSON")

    return json.loads(text, parse_constant=refuse)


def unsafe_in(text: str, line_end: str = "\r\n") -> list[str]:
    """The characters of an export that a viewer would not show as they are (the line ends, CRLF
    in CSV and LF in JSON, and the byte-order mark at the start are the format's own)."""
    body = text.removeprefix("\ufeff").replace(line_end, "")
    return [f"U+{ord(character):04X}" for character in body if unfit_character(character)]


# --- CSV -------------------------------------------------------------------------------------


def test_the_csv_starts_with_a_byte_order_mark_and_ends_every_line_with_crlf() -> None:
    raw = export([entity(), entity()])
    assert raw.startswith("\ufeff" + ",".join(CSV_COLUMNS) + "\r\n")
    assert raw.count("\r\n") == 3 and "\n" not in raw.replace("\r\n", "")


def test_a_csv_row_has_utc_and_local_times_kwh_beside_wh_and_the_extras_as_json() -> None:
    row = row_of(entity(EnergyDelivered=17233, Id="56395736", Tariff="depot"))
    assert list(row) == list(CSV_COLUMNS)
    assert (row["StartAt"], row["EndAt"]) == ("2025-03-10T10:00:00Z", "2025-03-10T10:45:00Z")
    assert (row["StartLocal"], row["EndLocal"]) == ("2025-03-10 11:00:00", "2025-03-10 11:45:00")
    assert (row["EnergyDelivered"], row["EnergyKWh"], row["DurationSeconds"]) == ("17233", "17.233", "2700")
    assert (row["InitialSoC"], row["EndSoC"], row["Id"], row["PushId"]) == ("", "", "56395736", "push-1")
    assert json.loads(row["Extra"]) == {"Tariff": "depot"}


def test_fractions_are_written_exactly_and_a_null_card_as_an_empty_cell() -> None:
    row = row_of(entity(EnergyDelivered=5018.5, InitialSoC=59, EndSoC=79.5, Id=None))
    assert (row["EnergyDelivered"], row["EnergyKWh"], row["InitialSoC"], row["EndSoC"], row["Id"]) == (
        "5018.5",
        "5.0185",
        "59",
        "79.5",
        "",
    )


def test_the_session_at_2330_utc_before_the_month_shows_its_berlin_time() -> None:
    row = row_of(entity(StartAt="2025-02-28T23:30:00Z", EndAt="2025-03-01T01:00:00Z"))
    assert (row["StartAt"], row["StartLocal"], row["EndLocal"]) == (
        "2025-02-28T23:30:00Z",
        "2025-03-01 00:30:00",
        "2025-03-01 02:00:00",
    )


def test_milliseconds_are_written_only_when_there_are_any() -> None:
    row = row_of(entity(StartAt="2025-03-10T10:00:00.250Z", EndAt="2025-03-10T10:45:00.000123Z"))
    assert (row["StartAt"], row["EndAt"]) == ("2025-03-10T10:00:00.250Z", "2025-03-10T10:45:00.000123Z")


def test_excel_de_writes_semicolons_and_decimal_commas_but_leaves_text_alone() -> None:
    raw = export([entity(EnergyDelivered=17233.5, Tariff="a,b", Id="1.5")], excel_de=True, bom=False)
    assert raw.startswith(";".join(CSV_COLUMNS) + "\r\n")
    (row,) = csv_rows(raw, delimiter=";")
    assert (row["EnergyDelivered"], row["EnergyKWh"], row["Id"]) == ("17233,5", "17,2335", "1.5")
    assert json.loads(row["Extra"]) == {"Tariff": "a,b"}


@pytest.mark.parametrize("text", ["=HYPERLINK(1)", "+1", "-1", "@SUM(A1)"])
def test_a_text_cell_a_spreadsheet_would_run_as_a_formula_gets_a_leading_apostrophe(text: str) -> None:
    row = row_of(spoiled(ChargerID=text, Id=text, PushId=text))
    assert row["ChargerID"] == row["Id"] == row["PushId"] == f"'{text}"


UNSAFE = [
    "\x00",
    "\t",
    "\n",
    "\r",
    "\x1b",
    "\x7f",
    "\x85",
    "\u00a0",
    "\u00ad",
    "\u200b",
    "\u200e",
    "\u2028",
    "\u2029",
    "\u202a",
    "\u202e",
    "\u2066",
    "\u2069",
    "\u3164",
    "\ufeff",
    "\ud83d",
    "\ue000",
    "\ufffd",
    "\U000e0100",
]


@pytest.mark.parametrize("character", UNSAFE, ids=lambda c: f"U+{ord(c):04X}")
def test_an_unsafe_character_in_a_text_cell_is_written_as_a_visible_escape(character: str) -> None:
    code = ord(character)
    escape = f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
    raw = export([spoiled(ChargerID=f"Bay{character}1", Id=f"{character}7", PushId=f"p{character}")])
    row = csv_rows(raw)[0]
    assert (row["ChargerID"], row["Id"], row["PushId"]) == (f"Bay{escape}1", f"{escape}7", f"p{escape}")
    assert unsafe_in(raw) == []


def test_a_station_name_spoofed_with_a_bidi_override_shows_the_override() -> None:
    # Stored as "ABC\u202e0121": a viewer would show "ABC1210", as if it were another station.
    assert row_of(spoiled(ChargerID="ABC\u202e0121"))["ChargerID"] == "ABC\\u202e0121"


@pytest.mark.parametrize("character", UNSAFE, ids=lambda c: f"U+{ord(c):04X}")
def test_an_unsafe_character_in_the_extra_fields_is_a_json_escape_in_the_csv(character: str) -> None:
    stored = spoiled(Extra=json.dumps({"Note": f"a{character}b"}, ensure_ascii=False))
    raw = export([stored])
    assert json.loads(csv_rows(raw)[0]["Extra"]) == {"Note": f"a{character}b"}
    assert unsafe_in(raw) == []


def test_a_number_that_is_not_finite_is_written_as_text_in_csv() -> None:
    row = row_of(spoiled(EnergyDelivered=math.nan, EnergyKWh=math.inf, DurationSeconds=-math.inf))
    assert (row["EnergyDelivered"], row["EnergyKWh"], row["DurationSeconds"]) == (
        "NaN",
        "Infinity",
        "-Infinity",
    )


def test_an_energy_of_1e308_is_written_as_it_is_stored() -> None:
    row = row_of(spoiled(EnergyDelivered=1e308, EnergyKWh=1e305))
    assert (row["EnergyDelivered"], row["EnergyKWh"]) == ("1e+308", "1e+305")


@pytest.mark.parametrize("zone", ["Europe/Berlin", "Pacific/Kiritimati", "Asia/Kathmandu"])
def test_a_local_time_after_the_year_9999_is_an_empty_cell_and_the_utc_time_is_kept(zone: str) -> None:
    end = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    row = row_of(spoiled(EndAt=end), period=Period.month("2025-03", time_zone(zone)))
    assert (row["EndAt"], row["EndLocal"]) == ("9999-12-31T23:59:59Z", "")
    assert row["StartLocal"] != ""


def test_a_start_in_1601_is_written_with_its_four_digit_year_in_utc_and_in_local_mean_time() -> None:
    row = row_of(spoiled(StartAt=datetime(1601, 1, 1, tzinfo=UTC)))
    # Before time zones, Berlin kept its local mean time: UTC+0:53:28.
    assert (row["StartAt"], row["StartLocal"]) == ("1601-01-01T00:00:00Z", "1601-01-01 00:53:28")


def test_an_entity_with_nothing_but_its_keys_is_a_row_of_its_identity() -> None:
    row = row_of({"PartitionKey": "2025-03", "RowKey": "TACW1_0000000000000000042"})
    assert (row["TransactionID"], row["ChargerID"]) == ("42", "TACW1")
    times = ("StartAt", "EndAt", "StartLocal", "EndLocal", "ReceivedAt")
    assert [row[column] for column in (*times, "Id", "PushId", "Extra")] == [""] * 8


def test_an_unreadable_transaction_id_is_read_from_the_row_key() -> None:
    stored = spoiled(TransactionID="not a number")
    assert row_of(stored)["TransactionID"] == str(int(stored["RowKey"].rpartition("_")[2]))


@pytest.mark.parametrize(
    ("name", "value", "cell"),
    [
        ("EnergyDelivered", "17233", "17233"),
        ("EnergyDelivered", "=1+1", "'=1+1"),
        ("EnergyDelivered", True, "1"),
        ("StartAt", "2025-03-10T10:00:00Z", ""),
        ("ConnectorID", "one", "one"),
        ("Extra", "{not json", "{not json"),
        ("Extra", "[" * 5000 + "]" * 5000, "[" * 5000 + "]" * 5000),
        ("Extra", '{"n": ' + "9" * 5000 + "}", '{"n": ' + "9" * 5000 + "}"),
        ("Extra", '{"x": NaN, "y": -Infinity}', '{"x": null, "y": null}'),
        ("Id", 56395736, "56395736"),
        ("PushId", 3.5, "3.5"),
    ],
)
def test_a_property_of_another_type_or_value_is_written_as_what_it_holds(
    name: str, value: Any, cell: str
) -> None:
    assert row_of(spoiled(**{name: value}))[name] == cell


# --- JSON ------------------------------------------------------------------------------------


def test_json_and_json_lines_give_the_sessions_as_they_were_sent() -> None:
    sent = json.loads((PROJECT / "samples" / "hourly-push.json").read_text(encoding="utf-8"))
    stored = [
        dict(session_entity(Session.model_validate(item), received_at=RECEIVED, push_id="p").entity)
        for item in sent
    ]
    january = Period.month("2025-01", BERLIN)
    lines = [strict_json(line) for line in export(stored, ExportFormat.JSONL, period=january).splitlines()]
    assert strict_json(export(stored, ExportFormat.JSON, period=january)) == lines

    def as_sent(row: dict[str, Any]) -> dict[str, Any]:
        nine = {name: row[name] for name in sent[0]}
        nine["StartAt"] = row["StartAt"].replace("Z", ".000Z")
        nine["EndAt"] = row["EndAt"].replace("Z", ".000Z")
        return nine

    assert [as_sent(row) for row in lines] == sent


def test_a_json_row_has_local_times_with_their_offset_across_the_change_to_winter_time() -> None:
    day = Period.days("2025-10-26", "2025-10-26", BERLIN)
    before = json_row(
        readable_session(entity(StartAt="2025-10-26T00:30:00Z", EndAt="2025-10-26T01:30:00Z")), day
    )
    assert (before["StartLocal"], before["EndLocal"]) == (
        "2025-10-26T02:30:00+02:00",
        "2025-10-26T02:30:00+01:00",
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("EnergyDelivered", math.nan),
        ("EnergyDelivered", math.inf),
        ("EnergyKWh", -math.inf),
        ("DurationSeconds", math.nan),
        ("InitialSoC", math.nan),
        ("EndSoC", math.inf),
    ],
)
def test_a_number_that_is_not_finite_is_null_in_json(name: str, value: float) -> None:
    assert json_of(spoiled(**{name: value}))[name] is None


def test_nan_and_infinity_inside_the_extra_fields_are_null_in_json() -> None:
    stored = spoiled(Extra='{"Price": NaN, "Meter": [1, Infinity, -Infinity]}')
    assert json_of(stored)["Extra"] == {"Price": None, "Meter": [1, None, None]}


@pytest.mark.parametrize("output_format", [ExportFormat.JSON, ExportFormat.JSONL])
def test_an_unsafe_character_is_a_json_escape_that_reads_back_as_itself(output_format: ExportFormat) -> None:
    text = "".join(UNSAFE)
    raw = export([spoiled(ChargerID=f"A{text}", Extra=json.dumps({f"k{text}": text}))], output_format)
    assert unsafe_in(raw, "\n") == []
    parsed = strict_json(raw)
    row = parsed[0] if isinstance(parsed, list) else parsed
    assert row["ChargerID"] == f"A{text}" and row["Extra"] == {f"k{text}": text}


def test_a_local_time_after_the_year_9999_is_null_in_json_and_the_utc_time_is_kept() -> None:
    row = json_of(spoiled(EndAt=datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)))
    assert (row["EndAt"], row["EndLocal"]) == ("9999-12-31T23:59:59Z", None)


def test_a_missing_timestamp_is_null_in_json() -> None:
    row = json_of(spoiled(StartAt=MISSING, ReceivedAt=MISSING))
    assert (row["StartAt"], row["StartLocal"], row["ReceivedAt"]) == (None, None, None)


def test_extra_fields_python_cannot_write_are_replaced_by_a_note_in_json() -> None:
    deep: Any = 1
    for _ in range(2000):
        deep = [deep]
    row = json_row({"Extra": deep, "TransactionID": 1}, MARCH)
    assert row["Extra"] == UNWRITABLE_EXTRA


def test_an_empty_period_is_a_header_or_an_empty_array() -> None:
    assert export([]) == "\ufeff" + ",".join(CSV_COLUMNS) + "\r\n"
    assert export([], ExportFormat.JSON) == "[]\n"
    assert export([], ExportFormat.JSONL) == ""


# --- Any stored value --------------------------------------------------------------------------

ODD_VALUES = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([1e308, -1e308, 5e-324, 0.0, -0.0])
    | st.text(max_size=8)
    | st.sampled_from(["", "=cmd", "\ud83d", "\u202e", "{", "NaN", '{"x": NaN}', '"\\ud800"', "[1, 1e400]"])
    | st.datetimes(
        min_value=datetime(1601, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59), timezones=st.just(UTC)
    )
    | st.sampled_from(
        [datetime(1601, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), MISSING]
    )
)
ZONES = st.sampled_from(
    ["Europe/Berlin", "UTC", "America/Los_Angeles", "Pacific/Kiritimati", "Etc/GMT+12", "Asia/Kathmandu"]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=st.dictionaries(st.sampled_from(PROPERTIES), ODD_VALUES, max_size=6),
    zone=ZONES,
    output_format=st.sampled_from(list(ExportFormat)),
    excel_de=st.booleans(),
)
def test_any_stored_value_in_any_zone_and_format_is_exported_as_safe_standard_text(
    values: dict[str, Any], zone: str, output_format: ExportFormat, excel_de: bool
) -> None:
    stored = spoiled(**values)
    period = Period.month("2025-03", time_zone(zone))
    options = {"excel_de": excel_de} if output_format is ExportFormat.CSV else {}
    raw = export([stored, entity()], output_format, period=period, **options)
    assert unsafe_in(raw, "\r\n" if output_format is ExportFormat.CSV else "\n") == []
    raw.encode("utf-8")  # no lone surrogate left to break the file
    if output_format is ExportFormat.JSONL:
        assert [strict_json(line)["PushId"] for line in raw.splitlines()][1] == "push-1"
    elif output_format is ExportFormat.JSON:
        assert len(strict_json(raw)) == 2
    else:
        assert len(csv_rows(raw, delimiter=";" if excel_de else ",")) == 2


def test_the_export_writes_a_page_before_it_reads_the_next() -> None:
    pages_read: list[int] = []
    written_when: list[int] = []
    stored = entity()

    def pages() -> Iterator[list[dict[str, Any]]]:
        for number in range(5):
            pages_read.append(number)
            yield [stored] * 10

    class Recorder(io.TextIOBase):
        def write(self, text: str) -> int:
            written_when.append(len(pages_read))
            return len(text)

    count = export_sessions(pages(), Recorder(), period=MARCH, output_format=ExportFormat.JSONL)
    assert count == 50
    # Rows of page n are written while only n pages have been read.
    assert written_when[:20] == [1] * 20 and written_when[20:40] == [2] * 20


def test_a_csv_row_of_a_session_read_from_any_dict_never_fails() -> None:
    assert csv_row({}, MARCH) == [""] * len(CSV_COLUMNS)
    assert set(json_row({}, MARCH).values()) == {None}
