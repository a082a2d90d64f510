"""Stored sessions of a period as CSV, JSON Lines or JSON, streamed: one page in memory at a time.

CSV is for spreadsheets: UTF-8 with a byte-order mark and CRLF, as Excel expects, times both in
UTC and in the period's zone, energy in Wh and kWh; `excel_de` writes `;` and a decimal comma,
as German Excel reads them. JSON keeps every value exact, for programs.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from sessions.storage.entities import stored_session
from tools.period import Period

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
            yield stored_session(entity)
        del page  # not held while the next page is read


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
    """One session as the cells of CSV_COLUMNS."""

    def number(value: float | int | None) -> str:
        text = _number(value)
        return text.replace(".", ",") if excel_de else text

    return [
        str(session["TransactionID"]),
        _text_cell(session["ChargerID"]),
        str(session["ConnectorID"]) if session["ConnectorID"] is not None else "",
        _text_cell(session["Id"] or ""),
        _utc_text(session["StartAt"]),
        _utc_text(session["EndAt"]),
        _local_text(session["StartAt"], period),
        _local_text(session["EndAt"], period),
        number(session["DurationSeconds"]),
        number(session["EnergyDelivered"]),
        number(session["EnergyKWh"]),
        number(session["InitialSoC"]),
        number(session["EndSoC"]),
        _utc_text(session["ReceivedAt"]),
        _text_cell(session["PushId"] or ""),
        _text_cell(json.dumps(session["Extra"], ensure_ascii=False)) if session["Extra"] else "",
    ]


def json_row(session: dict[str, Any], period: Period) -> dict[str, Any]:
    """One session as a JSON object: the sender's nine fields, local times, derived values."""
    return {
        "TransactionID": session["TransactionID"],
        "ChargerID": session["ChargerID"],
        "ConnectorID": session["ConnectorID"],
        "StartAt": _utc_text(session["StartAt"]),
        "EndAt": _utc_text(session["EndAt"]),
        "InitialSoC": _json_number(session["InitialSoC"]),
        "Id": session["Id"],
        "EndSoC": _json_number(session["EndSoC"]),
        "EnergyDelivered": _json_number(session["EnergyDelivered"]),
        "StartLocal": _local_iso(session["StartAt"], period),
        "EndLocal": _local_iso(session["EndAt"], period),
        "DurationSeconds": _json_number(session["DurationSeconds"]),
        "EnergyKWh": session["EnergyKWh"],
        "ReceivedAt": _utc_text(session["ReceivedAt"]),
        "PushId": session["PushId"],
        "Extra": session["Extra"],
    }


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
        out.write(json.dumps(row, ensure_ascii=False))
        out.write("\n")
        yield count


def _json_array_writer(rows: Iterator[dict[str, Any]], out: TextOutput) -> Iterator[int]:
    # One JSON array, written an element at a time: never the whole document in memory.
    out.write("[")
    count = 0
    for count, row in enumerate(rows, start=1):
        out.write("\n  " if count == 1 else ",\n  ")
        out.write(json.dumps(row, ensure_ascii=False))
        yield count
    out.write("\n]\n" if count else "]\n")


def _number(value: float | int | None) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


def _json_number(value: float | int | None) -> float | int | None:
    # 17233.0 Wh was sent as 17233: write it back the way it came.
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _text_cell(text: str) -> str:
    # A leading apostrophe makes a spreadsheet show the text instead of running it (OWASP).
    return f"'{text}" if text.startswith(_FORMULA_START) else text


def _utc_text(moment: datetime | None) -> str:
    """ISO 8601 in UTC with Z, as ChargePilot writes it (milliseconds only when there are any)."""
    if moment is None:
        return ""
    utc = moment.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond % 1000:
        text += f".{utc.microsecond:06d}"
    elif utc.microsecond:
        text += f".{utc.microsecond // 1000:03d}"
    return text + "Z"


def _local_text(moment: datetime | None, period: Period) -> str:
    """Wall-clock time in the period's zone, as a spreadsheet reads a date and time."""
    if moment is None:
        return ""
    return period.local(moment).strftime("%Y-%m-%d %H:%M:%S")


def _local_iso(moment: datetime | None, period: Period) -> str | None:
    if moment is None:
        return None
    return period.local(moment).isoformat(timespec="seconds")
