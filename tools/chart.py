"""The report as a bar chart (PNG): energy per card, station or day. Tools only: needs matplotlib.

Labels are the report's group names with unsafe characters escaped (as the export writes them)
and `$` escaped, which matplotlib would otherwise read as the start of a formula (mathtext).
"""

from __future__ import annotations

import logging
import math
from datetime import date
from pathlib import Path

from sessions.export import shown_text
from tools.report import Grouping, GroupRow, Report

# Groups a chart shows by name; the rest are summed into one bar.
MAX_CHART_BARS = 31


def plot(report: Report, path: Path) -> None:
    """Energy per group as a bar chart, written as PNG (headless: matplotlib's Agg renderer)."""
    # Imported here: only a chart needs matplotlib (a tools-only dependency), and its first
    # import builds a font cache, which is no news for the operator.
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = list(report.rows)
    if report.grouping is not Grouping.DAY and len(rows) > MAX_CHART_BARS:
        biggest = sorted(rows, key=lambda row: row.energy_kwh, reverse=True)
        shown, rest = biggest[: MAX_CHART_BARS - 1], biggest[MAX_CHART_BARS - 1 :]
        rows = [row for row in rows if row in shown]
        rows.append(
            GroupRow(
                f"{len(rest)} others",
                sum(row.sessions for row in rest),
                math.fsum(row.energy_kwh for row in rest),
                math.fsum(row.charging_hours for row in rest),
                sum(row.left_out for row in rest),
            )
        )
    by_day = report.grouping is Grouping.DAY
    labels = [_label(row.group[5:] if by_day and _day(row) else row.group) for row in rows]
    figure = Figure(figsize=(max(8.0, 0.38 * len(rows) + 2), 5.0), dpi=120, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    # Weekends in a lighter shade, so that a month's rhythm shows at a glance.
    colors = ["#9ecae1" if by_day and _weekend(row) else "#2b7bb9" for row in rows]
    bars = axes.bar(range(len(rows)), [row.energy_kwh for row in rows], color=colors)
    axes.set_xticks(range(len(rows)), labels, rotation=90 if len(rows) > 12 else 0, fontsize=8)
    axes.set_ylabel("energy delivered (kWh)")
    axes.set_xlabel(
        {Grouping.DAY: "day", Grouping.CARD: "RFID card", Grouping.STATION: "station"}[report.grouping]
    )
    left_out = f" ({report.total.left_out:,} with values left out)" if report.total.left_out else ""
    axes.set_title(
        _label(
            f"Energy per {report.grouping.value}, {report.period.describe()}: "
            f"{report.total.energy_kwh:,.1f} kWh in {report.total.sessions:,} sessions{left_out}"
        )
    )
    axes.grid(axis="y", alpha=0.3)
    axes.set_axisbelow(True)
    if len(rows) <= 12:
        axes.bar_label(bars, labels=[f"{row.energy_kwh:,.1f}" for row in rows], fontsize=8)
    figure.savefig(path, format="png")


def _day(row: GroupRow) -> date | None:
    """The local day a row of a report by day stands for (None for a row that is no day)."""
    try:
        return date.fromisoformat(row.group)
    except ValueError:
        return None


def _weekend(row: GroupRow) -> bool:
    day = _day(row)
    return day is not None and day.weekday() >= 5


def _label(text: str) -> str:
    return shown_text(text).replace("$", r"\$")
