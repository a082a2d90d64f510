"""The period options that `export` and `report` share: --month or --from/--to, and --tz."""

from __future__ import annotations

import argparse

from sessions.period import DEFAULT_ZONE, Period, PeriodError, time_zone


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
