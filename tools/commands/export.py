"""`python -m sessions export`: every stored session of a period, streamed to CSV, JSON Lines or JSON."""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlencode

import requests

from sessions.export import UTF8_BOM, ExportFormat, export_sessions, write_json_rows
from sessions.keys import KEY_HEADER
from sessions.period import Period
from sessions.storage import SessionStore, StorageUnavailable
from tools.cli import survives_closed_pipe
from tools.commands.periods import add_period_options, named_period, over_period

PROGRESS_EVERY = 10_000
# Sessions per page of GET /api/sessions (its maximum), and how long one page may take.
API_PAGE = 10_000
API_TIMEOUT = 120


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
    export.add_argument(
        "--api",
        metavar="URL",
        help="read through the receiver's GET /api/sessions at this base URL "
        "(https://<app>.azurewebsites.net) with a read key, instead of the tables with Azure credentials",
    )
    export.add_argument(
        "--read-key-env",
        metavar="VAR",
        default="CHARGEPILOT_READ_KEY",
        help="with --api: the environment variable holding the read key (default: %(default)s)",
    )
    from_storage = over_period(write_export)

    def run(arguments: argparse.Namespace) -> int:
        return export_from_api(arguments) if arguments.api else from_storage(arguments)

    export.set_defaults(run=survives_closed_pipe(run))


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
    return _finish(out_path, partial, count, period)


def _finish(out_path: Path | None, partial: Path | None, count: int, period: Period) -> int:
    if out_path is not None and partial is not None:
        # Only a complete export takes the name asked for.
        os.replace(partial, out_path)
        print(f"Exported {count:,} sessions of {period.describe()} to {out_path}", file=sys.stderr)
    return 0


def export_from_api(arguments: argparse.Namespace) -> int:
    """The same export, page by page through GET /api/sessions (docs/billing-systems.md)."""
    period = named_period(arguments)
    if period is None:
        return 2
    if arguments.excel_de:
        print("error: --excel-de is not served by the API: export from storage for it", file=sys.stderr)
        return 2
    if arguments.output_format is not ExportFormat.CSV and arguments.no_bom:
        print("error: --no-bom is for --format csv", file=sys.stderr)
        return 2
    key = os.environ.get(arguments.read_key_env, "").strip()
    if not key:
        print(f"error: no read key in the environment variable {arguments.read_key_env}", file=sys.stderr)
        return 2
    as_csv = arguments.output_format is ExportFormat.CSV
    query = {
        "date_from": period.first.isoformat(),
        "date_to": (period.last + timedelta(days=1)).isoformat(),
        "tz": period.zone.key,
        "limit": str(API_PAGE),
        "format": "csv" if as_csv else "json",
    }
    url = f"{arguments.api.rstrip('/')}/api/sessions?{urlencode(query)}"
    out_path: Path | None = arguments.out
    partial = out_path.with_name(out_path.name + ".partial") if out_path else None
    count = 0
    try:
        with _output(partial) as out, requests.Session() as http:
            pages = _api_pages(http, url, key, show_progress=out_path is not None)
            if as_csv:
                for number, response in enumerate(pages):
                    header, _, body = response.content.decode("utf-8-sig").partition("\r\n")
                    if number == 0:
                        out.write(("" if arguments.no_bom else UTF8_BOM) + header + "\r\n")
                    out.write(body)
                    count += body.count("\r\n") - _quoted_line_ends(body)
            else:
                rows = (row for response in pages for row in response.json()["sessions"])
                count = write_json_rows(rows, out, arguments.output_format)
    except (ApiRefused, requests.RequestException, OSError, ValueError) as error:
        if isinstance(error, BrokenPipeError):
            raise
        if partial is not None:
            partial.unlink(missing_ok=True)
        print(f"error: {error}", file=sys.stderr)
        return 1
    return _finish(out_path, partial, count, period)


def _api_pages(
    http: requests.Session, url: str, key: str, *, show_progress: bool
) -> Iterator[requests.Response]:
    """Each page of a read, following its Link headers; ApiRefused for any other answer."""
    next_url: str | None = url
    pages = 0
    while next_url is not None:
        response = http.get(next_url, headers={KEY_HEADER: key}, timeout=API_TIMEOUT)
        if response.status_code != 200:
            raise ApiRefused(_refusal(response))
        yield response
        pages += 1
        if show_progress:
            print(f"  page {pages:,} read...", file=sys.stderr, flush=True)
        link = response.links.get("next", {}).get("url")
        next_url = str(link) if link else None


class ApiRefused(Exception):
    """The read endpoint answered something else than a page."""


def _refusal(response: requests.Response) -> str:
    try:
        message = str(response.json().get("message", ""))
    except ValueError:
        message = ""
    return f"the API answered {response.status_code}" + (f": {message}" if message else "")


def _quoted_line_ends(body: str) -> int:
    """Line ends inside quoted cells (none: the export escapes line feeds), counted to be exact."""
    return sum(cell.count("\r\n") for cell in body.split('"')[1::2])


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
