"""Totals of a period for billing: sessions, kWh and charging hours per card, station or day.

Summed while the sessions stream past (memory grows with the number of groups, never with the
number of sessions), from exactly the sessions the export writes, so the two always agree.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TextIO

from tools.period import Period

NO_CARD = "(no card)"


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


@dataclass(frozen=True)
class GroupRow:
    """What one card, station or day (or the whole period) adds up to."""

    group: str
    sessions: int
    energy_kwh: float
    charging_hours: float  # from StartAt to EndAt (plugged in), as ChargePilot reports a session


class _Sum:
    """Exact running sums (Neumaier), so that totals do not drift over 100,000 sessions."""

    __slots__ = ("count", "energy_wh", "seconds")

    def __init__(self) -> None:
        self.count = 0
        self.energy_wh = _Accumulator()
        self.seconds = _Accumulator()

    def add(self, energy_wh: float, seconds: float) -> None:
        self.count += 1
        self.energy_wh.add(energy_wh)
        self.seconds.add(seconds)

    def row(self, group: str) -> GroupRow:
        return GroupRow(group, self.count, self.energy_wh.value / 1000.0, self.seconds.value / 3600.0)


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
        return str(session["Id"]) if session["Id"] else NO_CARD
    if grouping is Grouping.STATION:
        return str(session["ChargerID"])
    return period.local(session["StartAt"]).date().isoformat()


def build_report(sessions: Iterable[dict[str, Any]], period: Period, grouping: Grouping) -> Report:
    """Totals per group of the sessions (as entities.stored_session gives them)."""
    sums: dict[str, _Sum] = {}
    if grouping is Grouping.DAY:
        # Every day of the period has a row, so that a chart shows the quiet days too.
        sums = {day.isoformat(): _Sum() for day in period.each_day()}
    everything = _Sum()
    for session in sessions:
        energy, seconds = float(session["EnergyDelivered"]), float(session["DurationSeconds"])
        sums.setdefault(group_of(session, grouping, period), _Sum()).add(energy, seconds)
        everything.add(energy, seconds)
    rows = tuple(sums[group].row(group) for group in sorted(sums, key=_group_order))
    return Report(period, grouping, rows, everything.row("total"))


def format_table(report: Report) -> str:
    """The report as an aligned text table with a total line."""
    header = (report.grouping.value, "sessions", "kWh", "hours")
    lines = [header] + [_cells(row) for row in report.rows] + [_cells(report.total)]
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]

    def render(cells: tuple[str, ...]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))
        return "  ".join((first, *rest)).rstrip()

    rule = "  ".join("-" * width for width in widths)
    title = f"Sessions of {report.period.describe()}, by {report.grouping.value}"
    body = [render(line) for line in lines[1:-1]]
    return "\n".join([title, "", render(header), rule, *body, rule, render(lines[-1])]) + "\n"


def write_csv(report: Report, out: TextIO, *, excel_de: bool = False) -> None:
    """The report as CSV: group, sessions, kWh, hours, then the total (Excel-ready, as the export)."""
    writer = csv.writer(out, delimiter=";" if excel_de else ",", lineterminator="\r\n")
    writer.writerow((report.grouping.value, "sessions", "kWh", "hours"))
    for row in (*report.rows, report.total):
        cells = _cells(row)
        writer.writerow([cells[0], cells[1], *(_decimal(cell, excel_de) for cell in cells[2:])])


def _cells(row: GroupRow) -> tuple[str, ...]:
    return (row.group, str(row.sessions), f"{row.energy_kwh:.3f}", f"{row.charging_hours:.2f}")


def _decimal(text: str, excel_de: bool) -> str:
    return text.replace(".", ",") if excel_de else text


def _group_order(group: str) -> tuple[int, str]:
    # The no-card group goes last, after the cards.
    return (group == NO_CARD, group)
