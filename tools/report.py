"""Totals of a period for billing: sessions, kWh and charging hours per card, station or day.

Summed while the sessions stream past (memory grows with the number of groups, never with the
number of sessions), from exactly the sessions the export writes, so the two always agree.

A stored value that cannot be billed is left out of the sums, never summed into a total of
`nan` or `inf`: an energy or a duration that is missing, not a number, not finite, negative, or
beyond the plausibility limits (`SessionLimits`: more than SESSION_MAX_ENERGY_KWH, longer than
SESSION_MAX_DAYS), as sessions stored before those rules may hold. Its session still counts
(it is a row of the export); the report says how many sessions had a value left out, per group
(`left_out`, marked `*` in the table) and in all, in a note under the table and in a last CSV
row `(left out of the sums)`, which only a report with such sessions has. Group names (cards,
stations) are written with unsafe characters escaped, as the export writes them.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, TextIO

from sessions.export import csv_text, shown_text
from sessions.period import Period
from sessions.settings import SessionLimits, Setting

NO_CARD = "(no card)"
# The day of a session whose local time cannot be shown (beyond the year 9999 in the zone).
NO_DAY = "(no local day)"
LEFT_OUT = "(left out of the sums)"
_DEFAULTS = SessionLimits()


class Grouping(StrEnum):
    CARD = "card"
    STATION = "station"
    DAY = "day"


@dataclass(frozen=True)
class Report:
    """The totals of a period, one row per group in order, and the grand total."""

    period: Period
    grouping: Grouping
    rows: tuple[GroupRow, ...]
    total: GroupRow
    limits: SessionLimits = _DEFAULTS


@dataclass(frozen=True)
class GroupRow:
    """What one card, station or day (or the whole period) adds up to."""

    group: str
    sessions: int
    energy_kwh: float
    charging_hours: float  # from StartAt to EndAt (plugged in), as ChargePilot reports a session
    left_out: int = 0  # sessions with an energy or a duration left out of the sums


class _Sum:
    """Exact running sums (Neumaier), so that totals do not drift over 100,000 sessions."""

    __slots__ = ("count", "energy_wh", "left_out", "seconds")

    def __init__(self) -> None:
        self.count = 0
        self.left_out = 0
        self.energy_wh = _Accumulator()
        self.seconds = _Accumulator()

    def add(self, energy_wh: float | None, seconds: float | None) -> None:
        """One session; None is a value left out of the sums."""
        self.count += 1
        if energy_wh is None or seconds is None:
            self.left_out += 1
        if energy_wh is not None:
            self.energy_wh.add(energy_wh)
        if seconds is not None:
            self.seconds.add(seconds)

    def row(self, group: str) -> GroupRow:
        return GroupRow(
            group, self.count, self.energy_wh.value / 1000.0, self.seconds.value / 3600.0, self.left_out
        )


class _Accumulator:
    __slots__ = ("compensation", "total")

    def __init__(self) -> None:
        self.total = 0.0
        self.compensation = 0.0

    def add(self, value: float) -> None:
        total = self.total + value
        if abs(self.total) >= abs(value):
            self.compensation += (self.total - total) + value
        else:
            self.compensation += (value - total) + self.total
        self.total = total

    @property
    def value(self) -> float:
        return self.total + self.compensation


def group_of(session: dict[str, Any], grouping: Grouping, period: Period) -> str:
    """The card (Id), station (ChargerID) or local day of StartAt that a session counts for."""
    if grouping is Grouping.CARD:
        card = session.get("Id")
        return str(card) if card else NO_CARD
    if grouping is Grouping.STATION:
        return str(session.get("ChargerID"))
    start = session.get("StartAt")
    local = period.local(start) if isinstance(start, datetime) else None
    return NO_DAY if local is None else local.date().isoformat()


def summable(value: Any, limit: float) -> float | None:
    """`value` as a float if it can be billed: a finite number from 0 to `limit`; else None."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= limit:
        return None  # NaN fails every comparison
    return float(value)


def build_report(
    sessions: Iterable[dict[str, Any]],
    period: Period,
    grouping: Grouping,
    *,
    limits: SessionLimits = _DEFAULTS,
) -> Report:
    """Totals per group of the sessions (as sessions.export.sessions_of reads them); a value beyond
    `limits` (or not a finite number from 0) is left out of the sums and counted."""
    sums: dict[str, _Sum] = {}
    if grouping is Grouping.DAY:
        # Every day of the period has a row, so that a chart shows the quiet days too.
        sums = {day.isoformat(): _Sum() for day in period.each_day()}
    everything = _Sum()
    most_wh, most_seconds = limits.max_energy_kwh * 1000, limits.max_days * 86400
    for session in sessions:
        energy = summable(session.get("EnergyDelivered"), most_wh)
        seconds = summable(session.get("DurationSeconds"), most_seconds)
        sums.setdefault(group_of(session, grouping, period), _Sum()).add(energy, seconds)
        everything.add(energy, seconds)
    rows = tuple(sums[group].row(group) for group in sorted(sums, key=_group_order))
    return Report(period, grouping, rows, everything.row("total"), limits)


def left_out_note(report: Report) -> str:
    """What was left out of the sums, and why, in a sentence; empty when nothing was."""
    count = report.total.left_out
    if not count:
        return ""
    sessions = "1 session" if count == 1 else f"{count:,} sessions"
    return (
        f"* {sessions} with an energy or a duration left out of the sums: not a finite number from 0 "
        f"to {report.limits.max_energy_kwh:g} kWh ({Setting.SESSION_MAX_ENERGY_KWH}) or "
        f"{report.limits.max_days:g} days ({Setting.SESSION_MAX_DAYS}); `export` shows them as stored"
    )


def format_table(report: Report) -> str:
    """The report as an aligned text table with a total line (and the note of left_out_note)."""
    header = (report.grouping.value, "sessions", "kWh", "hours")
    lines = [header] + [_cells(row, marked=True) for row in report.rows] + [_cells(report.total, marked=True)]
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]

    def render(cells: tuple[str, ...]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))
        return "  ".join((first, *rest)).rstrip()

    rule = "  ".join("-" * width for width in widths)
    title = f"Sessions of {report.period.describe()}, by {report.grouping.value}"
    body = [render(line) for line in lines[1:-1]]
    note = left_out_note(report)
    closing = [render(lines[-1]), "", note] if note else [render(lines[-1])]
    return "\n".join([title, "", render(header), rule, *body, rule, *closing]) + "\n"


def write_csv(report: Report, out: TextIO, *, excel_de: bool = False) -> None:
    """The report as CSV: group, sessions, kWh, hours, then the total (Excel-ready, as the export),
    and a last row `(left out of the sums)` with the count, when there is something to count."""
    writer = csv.writer(out, delimiter=";" if excel_de else ",", lineterminator="\r\n")
    writer.writerow((report.grouping.value, "sessions", "kWh", "hours"))
    for row in (*report.rows, report.total):
        cells = _cells(row)
        writer.writerow([csv_text(row.group), cells[1], *(_decimal(cell, excel_de) for cell in cells[2:])])
    if report.total.left_out:
        writer.writerow([LEFT_OUT, str(report.total.left_out), "", ""])


def _cells(row: GroupRow, *, marked: bool = False) -> tuple[str, ...]:
    group = shown_text(row.group) + (" *" if marked and row.left_out else "")
    return (group, str(row.sessions), f"{row.energy_kwh:.3f}", f"{row.charging_hours:.2f}")


def _decimal(text: str, excel_de: bool) -> str:
    return text.replace(".", ",") if excel_de else text


def _group_order(group: str) -> tuple[int, str]:
    # The no-card group (and the sessions without a local day) go last.
    return (group in (NO_CARD, NO_DAY), group)
