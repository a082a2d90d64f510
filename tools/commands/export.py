"""`python -m sessions export`: every stored session of a period, streamed to CSV, JSON Lines or JSON."""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from sessions.storage import SessionStore, StorageUnavailable
from tools.cli import survives_closed_pipe
from tools.commands.periods import add_period_options, over_period
from tools.export import ExportFormat, export_sessions
from tools.period import Period

PROGRESS_EVERY = 10_000


def register(commands: argparse._SubParsersAction[Any]) -> None:
    export = commands.add_parser(
        "export",
        help="export the stored sessions of a period (CSV for Excel, JSON Lines, JSON)",
        description="Write every stored session whose StartAt falls in the period (local days in "
        "--tz) to --out or standard output, streamed page by page (memory stays flat whatever the "
        "size). Only the partitions (UTC months) that can hold the period are read.",
    )
    add_period_options(export)
    export.add_argument(
        "--format",
        dest="output_format",
        type=ExportFormat,
        choices=list(ExportFormat),
        default=ExportFormat.CSV,
        help="csv (Excel-ready: UTF-8 with BOM, CRLF), jsonl (one session per line) or json (one array)",
    )
    export.add_argument("--out", type=Path, metavar="FILE", help="write here (default: standard output)")
    export.add_argument(
        "--excel-de",
        action="store_true",
        help="with --format csv: ';' between cells and a decimal comma, as German Excel expects",
    )
    export.add_argument("--no-bom", action="store_true", help="CSV without the UTF-8 byte-order mark")
    export.set_defaults(run=survives_closed_pipe(over_period(write_export)))


def write_export(arguments: argparse.Namespace, period: Period, store: SessionStore) -> int:
    if arguments.output_format is not ExportFormat.CSV and (arguments.excel_de or arguments.no_bom):
        print("error: --excel-de and --no-bom are for --format csv", file=sys.stderr)
        return 2
    out_path: Path | None = arguments.out
    partial = out_path.with_name(out_path.name + ".partial") if out_path else None
    try:
        with _output(partial) as out:
            count = export_sessions(
                store.session_pages(period.start, period.end),
                out,
                period=period,
                output_format=arguments.output_format,
                excel_de=arguments.excel_de,
                bom=not arguments.no_bom,
                on_progress=_progress if out_path else None,
                progress_every=PROGRESS_EVERY,
            )
    except (StorageUnavailable, OSError) as error:
        if isinstance(error, BrokenPipeError):
            raise  # the reader of standard output went away: see survives_closed_pipe
        if partial is not None:
            partial.unlink(missing_ok=True)
        if isinstance(error, StorageUnavailable):
            raise
        print(f"error: cannot write {out_path}: {error.strerror or error}", file=sys.stderr)
        return 2
    if out_path is not None and partial is not None:
        # Only a complete export takes the name asked for.
        os.replace(partial, out_path)
        print(f"Exported {count:,} sessions of {period.describe()} to {out_path}", file=sys.stderr)
    return 0


@contextmanager
def _output(path: Path | None) -> Iterator[TextIO]:
    if path is not None:
        with path.open("w", encoding="utf-8", newline="") as out:
            yield out
        return
    # Standard output as UTF-8 whatever the locale, with the CSV's own line ends.
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(encoding="utf-8", newline="")
    yield sys.stdout
    sys.stdout.flush()


def _progress(count: int) -> None:
    print(f"  {count:,} sessions exported...", file=sys.stderr, flush=True)
