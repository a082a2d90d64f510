"""`python -m sessions report`: a period's totals per card, station or day, as a table, CSV or chart."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sessions.export import sessions_of
from sessions.period import Period
from sessions.storage import SessionStore
from tools.cli import load_settings, survives_closed_pipe
from tools.commands.periods import add_period_options, over_period
from tools.report import Grouping, build_report, format_table, write_csv


def register(commands: argparse._SubParsersAction[Any]) -> None:
    report = commands.add_parser(
        "report",
        help="totals of a period per card, station or day: sessions, kWh, charging hours",
        description="Sum the stored sessions whose StartAt falls in the period (local days in --tz), "
        "per RFID card (Id), station (ChargerID) or local day: sessions, kWh and charging hours "
        "(StartAt to EndAt). The same sessions as `export` of the same period.",
    )
    add_period_options(report)
    report.add_argument(
        "--by",
        type=Grouping,
        choices=list(Grouping),
        default=Grouping.CARD,
        help="group per card, station or day (default: %(default)s)",
    )
    report.add_argument(
        "--format",
        dest="output_format",
        choices=("table", "csv"),
        default="table",
        help="an aligned table, or CSV (default: %(default)s)",
    )
    report.add_argument(
        "--excel-de", action="store_true", help="with --format csv: ';' between cells and a decimal comma"
    )
    report.add_argument(
        "--plot", type=Path, metavar="FILE.png", help="also draw energy per group as a PNG chart"
    )
    report.set_defaults(run=survives_closed_pipe(over_period(write_report)))


def write_report(arguments: argparse.Namespace, period: Period, store: SessionStore) -> int:
    if arguments.excel_de and arguments.output_format != "csv":
        print("error: --excel-de is for --format csv", file=sys.stderr)
        return 2
    if arguments.plot is not None and arguments.plot.suffix.lower() != ".png":
        print("error: --plot writes a PNG: name the file *.png", file=sys.stderr)
        return 2
    sessions = sessions_of(store.session_pages(period.start, period.end))
    # Values beyond the receiver's own limits are left out of the sums (and counted).
    report = build_report(sessions, period, arguments.by, limits=load_settings().limits)
    if arguments.output_format == "csv":
        write_csv(report, sys.stdout, excel_de=arguments.excel_de)
    else:
        sys.stdout.write(format_table(report))
    sys.stdout.flush()
    if arguments.plot is not None:
        from tools.chart import plot  # matplotlib is imported only for a chart

        try:
            plot(report, arguments.plot)
        except OSError as error:
            print(f"error: cannot write {arguments.plot}: {error.strerror or error}", file=sys.stderr)
            return 2
        print(f"Chart written to {arguments.plot}", file=sys.stderr)
    return 0
