"""`python -m sessions report`: a period's totals per card, station or day, as a table, CSV or chart."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sessions.cli import load_settings
from sessions.commands.period_options import add_period_options, period_of
from sessions.commands.pipes import survives_closed_pipe
from sessions.export import sessions_of
from sessions.period import PeriodError
from sessions.queries import session_pages
from sessions.report import Grouping, build_report, format_table, plot, write_csv
from sessions.store import SessionStore, StorageUnavailable


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
    report.add_argument("--excel-de", action="store_true", help="CSV with ';' and a decimal comma")
    report.add_argument(
        "--plot", type=Path, metavar="FILE.png", help="also draw energy per group as a PNG chart"
    )
    report.set_defaults(run=survives_closed_pipe(run))


def run(arguments: argparse.Namespace) -> int:
    try:
        period = period_of(arguments)
    except PeriodError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if arguments.plot is not None and arguments.plot.suffix.lower() != ".png":
        print("error: --plot writes a PNG: name the file *.png", file=sys.stderr)
        return 2
    store = SessionStore.connect(load_settings())
    try:
        sessions = sessions_of(session_pages(store.sessions, period.start, period.end))
        report = build_report(sessions, period, arguments.by)
    except StorageUnavailable as error:
        print(f"error: storage: {error}", file=sys.stderr)
        return 1
    finally:
        store.close()
    if arguments.output_format == "csv":
        write_csv(report, sys.stdout, excel_de=arguments.excel_de)
    else:
        sys.stdout.write(format_table(report))
    sys.stdout.flush()
    if arguments.plot is not None:
        try:
            plot(report, arguments.plot)
        except OSError as error:
            print(f"error: cannot write {arguments.plot}: {error.strerror or error}", file=sys.stderr)
            return 2
        print(f"Chart written to {arguments.plot}", file=sys.stderr)
    return 0
