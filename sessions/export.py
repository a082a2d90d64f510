"""Stored sessions of a period as CSV, JSON Lines or JSON, streamed: one page in memory at a time.

CSV is for spreadsheets: UTF-8 with a byte-order mark and CRLF, as Excel expects, times both in
UTC and in the period's zone, energy in Wh and kWh; `excel_de` writes `;` and a decimal comma,
as German Excel reads them. JSON keeps every value exact, for programs.

Any stored value is exported, never a traceback: sessions stored before today's rules, or
entities written by hand, may hold what the model now refuses (1e308 Wh, NaN, an EndAt of
9999-12-31, a StartAt of 1601, a missing property, a property of another type). The rules:

- Reading: every entity is read by `stored_session`; one it cannot read is read property by
  property (`readable_session`), an unreadable property as absent, so the row is still written.
- Local times: an instant whose wall-clock time in the period's zone is beyond what Python can
  hold (9999-12-31T23:30Z is in the year 10000 in Europe/Berlin) has an empty StartLocal or
  EndLocal cell (null in JSON); its UTC column is written as always.
- Numbers that are not finite (NaN, Infinity) are written `NaN`, `Infinity`, `-Infinity` in CSV
  (text to a spreadsheet, which leaves it out of its sums) and `null` in JSON, which has no such
  numbers: the JSON and JSON Lines exports are standard JSON (RFC 8259) that strict parsers read.
- Unsafe characters: stored text is never written with a character that is invisible or that
  changes how text around it is shown, `sessions.model.unfit_character`'s set: controls (NUL,
  tab, line feed, DEL, C1), format characters (U+200B, U+FEFF...), the bidi controls (U+202A to
  U+202E, U+2066 to U+2069, which can show a station's name reversed), line and paragraph
  separators (U+2028, U+2029), spaces other than U+0020, lone surrogates, private-use and
  unassigned code points, default-ignorable characters, U+FFFD. In a CSV text cell each is
  written as a visible escape, `\\u202e` (`\\U000e0100` beyond the BMP); a backslash in the data
  itself is written as it is, so a cell that reads `\\u202e` may also have been sent so: the
  JSON export is exact. In JSON, and in CSV's Extra cell (which is JSON), each is written as a
  JSON escape (`\\u202e`; a pair of them beyond the BMP), which a JSON parser reads back as the
  same character: nothing is lost.
- Formulas: a CSV text cell that starts with `=`, `+`, `-`, `@`, tab or carriage return gets a
  leading apostrophe, so that a spreadsheet shows it rather than runs it (OWASP's CSV injection).
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from sessions.model import unfit_character
from sessions.period import Period
from sessions.storage.entities import split_session_row_key, stored_session

UTF8_BOM = "\ufeff"
# Columns of the CSV export, in order.
CSV_COLUMNS: tuple[str, ...] = (
    "TransactionID",
    "ChargerID",
    "ConnectorID",
    "Id",
    "StartAt",
    "EndAt",
    "StartLocal",
    "EndLocal",
    "DurationSeconds",
    "EnergyDelivered",
    "EnergyKWh",
    "InitialSoC",
    "EndSoC",
    "ReceivedAt",
    "PushId",
    "Extra",
)
# A text cell starting with one of these is a formula to a spreadsheet (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# What stored_session may stumble over in an entity it was not written for.
_UNREADABLE = (ValueError, TypeError, KeyError, OverflowError, RecursionError, AttributeError)
UNWRITABLE_EXTRA = "(not exported: nested deeper, or with longer numbers, than Python writes)"
_NUMBER_FIELDS = ("InitialSoC", "EndSoC", "EnergyDelivered", "EnergyKWh", "DurationSeconds")


class TextOutput(Protocol):
    """Where an export goes: anything with write(str), a file or standard output."""

    def write(self, text: str, /) -> object: ...


class ExportFormat(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"
    JSON = "json"


def sessions_of(pages: Iterable[list[dict[str, Any]]]) -> Iterator[dict[str, Any]]:
    """The sessions (in the sender's fields, see entities.stored_session) of pages of entities."""
    for page in pages:
        for entity in page:
            yield readable_session(entity)
        del page  # not held while the next page is read


def readable_session(entity: dict[str, Any]) -> dict[str, Any]:
    """An entity as `stored_session` reads it, or, where that fails, read property by property.

    The fields are those of stored_session; one that cannot be read (missing, or of a type or
    value nobody stores today) is None, and the Extra text that is not JSON is kept as text.
    """
    try:
        return stored_session(entity)
    except _UNREADABLE:
        return _salvaged(entity)


def _salvaged(entity: dict[str, Any]) -> dict[str, Any]:
    def value_of(name: str) -> Any:
        value = entity.get(name)
        # An EntityProperty (a typed value) is a named tuple of the value and its EDM type.
        if isinstance(value, tuple) and hasattr(value, "edm_type"):
            return getattr(value, "value", None)
        return value

    def utc(name: str) -> datetime | None:
        value = value_of(name)
        if not isinstance(value, datetime) or value.utcoffset() is None:
            return None
        try:
            return value.astimezone(UTC)
        except (OverflowError, ValueError):
            return None

    def text(name: str) -> str | None:
        value = value_of(name)
        return str(value) if isinstance(value, str | int | float) and not isinstance(value, bool) else None

    try:
        from_key: tuple[str | None, int | None] = split_session_row_key(str(entity.get("RowKey", "")))
    except ValueError:
        from_key = (None, None)
    # Numbers as stored, of whatever type: the export writes them as they are, the report sums
    # only those it can.
    session: dict[str, Any] = {name: value_of(name) for name in _NUMBER_FIELDS}
    transaction_id = value_of("TransactionID")
    start, end = utc("StartAt"), utc("EndAt")
    if session["EnergyKWh"] is None and _is_number(session["EnergyDelivered"]):
        session["EnergyKWh"] = session["EnergyDelivered"] / 1000.0
    if session["DurationSeconds"] is None and start is not None and end is not None:
        session["DurationSeconds"] = (end - start).total_seconds()
    extra = value_of("Extra") or {}
    if isinstance(extra, str):
        with contextlib.suppress(ValueError, RecursionError):  # else kept as the stored text
            extra = json.loads(extra)
    session.update(
        TransactionID=transaction_id if _is_int(transaction_id) else from_key[1],
        ChargerID=text("ChargerID") or from_key[0],
        ConnectorID=value_of("ConnectorID") if _is_int(value_of("ConnectorID")) else None,
        StartAt=start,
        EndAt=end,
        Id=text("Id"),
        ReceivedAt=utc("ReceivedAt"),
        PushId=text("PushId"),
        Extra=extra,
    )
    return session


def export_sessions(
    pages: Iterable[list[dict[str, Any]]],
    out: TextOutput,
    *,
    period: Period,
    output_format: ExportFormat,
    excel_de: bool = False,
    bom: bool = True,
    on_progress: Callable[[int], None] | None = None,
    progress_every: int = 10_000,
) -> int:
    """Write every session of `pages` to `out`; return how many. Memory: one page at a time.

    `on_progress(count)` is called after every `progress_every` sessions.
    """
    sessions = sessions_of(pages)
    if output_format is ExportFormat.CSV:
        rows: Iterator[Any] = (csv_row(session, period, excel_de=excel_de) for session in sessions)
        writer: Callable[[Iterator[Any], TextOutput], Iterator[int]] = (
            _semicolon_csv_writer if excel_de else _comma_csv_writer
        )
        if bom:
            out.write(UTF8_BOM)
    else:
        rows = (json_row(session, period) for session in sessions)
        writer = _json_lines_writer if output_format is ExportFormat.JSONL else _json_array_writer
    count = 0
    for count in writer(rows, out):
        if on_progress is not None and count % progress_every == 0:
            on_progress(count)
    return count


def csv_row(session: dict[str, Any], period: Period, *, excel_de: bool = False) -> list[str]:
    """One session as the cells of CSV_COLUMNS: any value written, never an unsafe character."""

    def number(value: Any) -> str:
        text = _number(value)
        return text.replace(".", ",") if excel_de and _is_number(value) else text

    return [
        number(session.get("TransactionID")),
        csv_text(session.get("ChargerID")),
        number(session.get("ConnectorID")),
        csv_text(session.get("Id")),
        _utc_text(session.get("StartAt")) or "",
        _utc_text(session.get("EndAt")) or "",
        _local_text(session.get("StartAt"), period),
        _local_text(session.get("EndAt"), period),
        number(session.get("DurationSeconds")),
        number(session.get("EnergyDelivered")),
        number(session.get("EnergyKWh")),
        number(session.get("InitialSoC")),
        number(session.get("EndSoC")),
        _utc_text(session.get("ReceivedAt")) or "",
        csv_text(session.get("PushId")),
        _extra_cell(session.get("Extra")),
    ]


def _extra_cell(extra: Any) -> str:
    if extra is None or extra == {}:
        return ""
    writable = _json_extra(extra)
    return csv_text(writable) if isinstance(writable, str) else _formula_safe(json_text(writable))


def json_row(session: dict[str, Any], period: Period) -> dict[str, Any]:
    """One session as a JSON object: the sender's nine fields, local times, derived values.

    Every value is one standard JSON can hold: a number that is not finite is None (null), an
    instant that cannot be shown in the period's zone has a null local time.
    """
    return {
        "TransactionID": _json_value(session.get("TransactionID")),
        "ChargerID": _json_value(session.get("ChargerID")),
        "ConnectorID": _json_value(session.get("ConnectorID")),
        "StartAt": _utc_text(session.get("StartAt")),
        "EndAt": _utc_text(session.get("EndAt")),
        "InitialSoC": _json_value(session.get("InitialSoC")),
        "Id": _json_value(session.get("Id")),
        "EndSoC": _json_value(session.get("EndSoC")),
        "EnergyDelivered": _json_value(session.get("EnergyDelivered")),
        "StartLocal": _local_iso(session.get("StartAt"), period),
        "EndLocal": _local_iso(session.get("EndAt"), period),
        "DurationSeconds": _json_value(session.get("DurationSeconds")),
        "EnergyKWh": _json_value(session.get("EnergyKWh")),
        "ReceivedAt": _utc_text(session.get("ReceivedAt")),
        "PushId": _json_value(session.get("PushId")),
        "Extra": _json_extra(session.get("Extra")),
    }


def write_json_rows(rows: Iterable[dict[str, Any]], out: TextOutput, output_format: ExportFormat) -> int:
    """Rows made by json_row (here or by GET /api/sessions) written as the export writes them."""
    writer = _json_lines_writer if output_format is ExportFormat.JSONL else _json_array_writer
    counts = writer(iter(rows), out)
    return max(counts, default=0)


def _comma_csv_writer(rows: Iterator[list[str]], out: TextOutput) -> Iterator[int]:
    return _csv_writer(rows, out, delimiter=",")


def _semicolon_csv_writer(rows: Iterator[list[str]], out: TextOutput) -> Iterator[int]:
    return _csv_writer(rows, out, delimiter=";")


def _csv_writer(rows: Iterator[list[str]], out: TextOutput, *, delimiter: str) -> Iterator[int]:
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for count, row in enumerate(rows, start=1):
        writer.writerow(row)
        yield count


def _json_lines_writer(rows: Iterator[dict[str, Any]], out: TextOutput) -> Iterator[int]:
    for count, row in enumerate(rows, start=1):
        out.write(json_text(row))
        out.write("\n")
        yield count


def _json_array_writer(rows: Iterator[dict[str, Any]], out: TextOutput) -> Iterator[int]:
    # One JSON array, written an element at a time: never the whole document in memory.
    out.write("[")
    count = 0
    for count, row in enumerate(rows, start=1):
        out.write("\n  " if count == 1 else ",\n  ")
        out.write(json_text(row))
        yield count
    out.write("\n]\n" if count else "]\n")


# --- Values ----------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(value: Any) -> str:
    """A number cell: exact, integers without `.0`; a value of another type as escaped text."""
    if value is None:
        return ""
    if isinstance(value, float):
        if not math.isfinite(value):
            return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
        if value.is_integer() and abs(value) < 2**53:
            return str(int(value))
        return repr(value)
    if _is_int(value):
        return str(value)
    return csv_text(value)


def _json_value(value: Any) -> Any:
    """`value` as standard JSON holds it: non-finite numbers None, 17233.0 as 17233 (as sent)."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if isinstance(value, dict):
        return {str(key): _json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(item) for item in value]
    if value is None or isinstance(value, str | int):
        return value
    return str(value)


def _json_extra(extra: Any) -> Any:
    """Extra as standard JSON holds it (see _json_value). Stored text that is not JSON stays that
    text; what Python cannot write (nested deeper than it follows, an integer of more than 4,300
    digits: nothing the receiver stores) is replaced by a note saying so."""
    if isinstance(extra, str):
        return extra
    try:
        writable = _json_value(extra)
        json.dumps(writable, allow_nan=False)
    except (RecursionError, ValueError):
        return UNWRITABLE_EXTRA
    return writable


def json_text(value: Any) -> str:
    """Standard JSON text of a value made by _json_value (rows of json_row, the read API's pages),
    with no unsafe character raw (escaped instead)."""
    return _escaped(json.dumps(value, ensure_ascii=False, allow_nan=False), _json_escape)


def csv_text(value: Any) -> str:
    """A CSV text cell: unsafe characters escaped visibly, a formula defused."""
    return _formula_safe(shown_text(value))


def shown_text(value: Any) -> str:
    """Stored text (or any value, as text) with every unsafe character escaped visibly."""
    if value is None:
        return ""
    return _escaped(value if isinstance(value, str) else str(value), _visible_escape)


def _formula_safe(text: str) -> str:
    # A leading apostrophe makes a spreadsheet show the text instead of running it (OWASP).
    return f"'{text}" if text.startswith(_FORMULA_START) else text


def _escaped(text: str, escape: Callable[[str], str]) -> str:
    if text.isascii() and text.isprintable():  # the common case: nothing to escape
        return text
    return "".join(escape(character) if unfit_character(character) else character for character in text)


def _visible_escape(character: str) -> str:
    code = ord(character)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _json_escape(character: str) -> str:
    code = ord(character)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    high, low = divmod(code - 0x10000, 0x400)
    return f"\\u{0xD800 + high:04x}\\u{0xDC00 + low:04x}"


# --- Times -----------------------------------------------------------------------------------


def _utc_text(moment: Any) -> str | None:
    """ISO 8601 in UTC with Z, as ChargePilot writes it (milliseconds only when there are any)."""
    if not isinstance(moment, datetime):
        return None
    try:
        utc = moment.astimezone(UTC).replace(tzinfo=None)
    except (OverflowError, ValueError):
        return None
    timespec = (
        "seconds" if not utc.microsecond else "microseconds" if utc.microsecond % 1000 else "milliseconds"
    )
    return utc.isoformat(timespec=timespec) + "Z"


def _local_text(moment: Any, period: Period) -> str:
    """Wall-clock time in the period's zone, as a spreadsheet reads a date and time; empty when
    it is beyond the years Python can hold."""
    local = period.local(moment) if isinstance(moment, datetime) else None
    return "" if local is None else local.replace(tzinfo=None).isoformat(sep=" ", timespec="seconds")


def _local_iso(moment: Any, period: Period) -> str | None:
    local = period.local(moment) if isinstance(moment, datetime) else None
    return None if local is None else local.isoformat(timespec="seconds")
