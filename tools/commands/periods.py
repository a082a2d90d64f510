"""What `export` and `report` share: the period options (--month or --from/--to, and --tz), and
the preamble of a command over a period (the period read, the store opened, storage errors told)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from sessions.period import DEFAULT_ZONE, Period, PeriodError, time_zone
from sessions.storage import SessionStore, StorageUnavailable
from tools.cli import Run, load_settings

PeriodWork = Callable[[argparse.Namespace, Period, SessionStore], int]


def add_period_options(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--month", metavar="YYYY-MM", help="a calendar month in the time zone, e.g. 2025-03")
    which.add_argument("--from", dest="first", metavar="YYYY-MM-DD", help="first local day (with --to)")
    parser.add_argument("--to", dest="last", metavar="YYYY-MM-DD", help="last local day, included")
    parser.add_argument(
        "--tz",
        default=DEFAULT_ZONE,
        metavar="ZONE",
        help="IANA time zone of the dates and of the local-time columns (default: %(default)s)",
    )


def period_of(arguments: argparse.Namespace) -> Period:
    """The period the options name; PeriodError if they do not name one."""
    zone = time_zone(arguments.tz)
    if arguments.month is not None:
        if arguments.last is not None:
            raise PeriodError("--to goes with --from, not with --month")
        return Period.month(arguments.month, zone)
    if arguments.last is None:
        raise PeriodError("--from needs --to (the last day, included)")
    return Period.days(arguments.first, arguments.last, zone)


def named_period(arguments: argparse.Namespace) -> Period | None:
    """The period the options name, or None once the error is told on standard error."""
    try:
        return period_of(arguments)
    except PeriodError as error:
        print(f"error: {error}", file=sys.stderr)
        return None


def over_period(work: PeriodWork) -> Run:
    """A command's run: `work` on the period the options name and the configured store.

    Options that name no period end it with status 2, a storage failure with status 1 (each with
    a message, never a traceback); the store is closed whatever happens.
    """

    def run(arguments: argparse.Namespace) -> int:
        period = named_period(arguments)
        if period is None:
            return 2
        store = SessionStore.connect(load_settings())
        try:
            return work(arguments, period, store)
        except StorageUnavailable as error:
            print(f"error: storage: {error}", file=sys.stderr)
            return 1
        finally:
            store.close()

    return run
