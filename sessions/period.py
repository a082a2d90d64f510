"""A billing period: whole local days in a time zone, and the UTC instants that bound it.

Operators bill by local date ("March in Berlin"), while sessions are stored by UTC instant: a
local month can start in the previous UTC month, and a day across a DST change has 23 or 25
hours. zoneinfo does the arithmetic.

Python's datetimes hold the years 1 to 9999, and Table Storage's from 1601 to 9999, so a period
at either end of time is cut there: its `start` is at the earliest 0001-01-01T00:00Z, its `end`
at the latest 9999-12-31T23:59:59.999999Z (a session stored in the last microsecond of 9999 is
outside every period). An instant whose wall-clock time in the zone is beyond those years has
no local time: `local` answers None, and the export writes its UTC time alone.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_ZONE = "Europe/Berlin"
_MONTH = re.compile(r"^([0-9]{4})-([0-9]{2})$")
_FIRST_INSTANT = datetime.min.replace(tzinfo=UTC)
_LAST_INSTANT = datetime.max.replace(tzinfo=UTC)


class PeriodError(ValueError):
    """A period or time zone that cannot be used; the message says what to write instead."""


def time_zone(name: str) -> ZoneInfo:
    """The IANA time zone `name` (e.g. Europe/Berlin, UTC), or PeriodError."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise PeriodError(
            f"unknown time zone {name!r}: use an IANA name such as Europe/Berlin or UTC"
        ) from None


@dataclass(frozen=True)
class Period:
    """The local days first..last (both included) in `zone`."""

    first: date
    last: date
    zone: ZoneInfo

    @classmethod
    def month(cls, text: str, zone: ZoneInfo) -> Period:
        """A calendar month written YYYY-MM."""
        match = _MONTH.match(text.strip())
        if not match or not 1 <= int(match.group(2)) <= 12 or match.group(1) == "0000":
            raise PeriodError(f"month {text!r} is not written YYYY-MM, e.g. 2025-03")
        year, month = int(match.group(1)), int(match.group(2))
        return cls(date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1]), zone)

    @classmethod
    def days(cls, first: str, last: str, zone: ZoneInfo) -> Period:
        """From the local date `first` to the local date `last`, both YYYY-MM-DD and included."""
        start, end = _date(first), _date(last)
        if end < start:
            raise PeriodError(f"--to {last} is before --from {first}")
        return cls(start, end, zone)

    @property
    def start(self) -> datetime:
        """The first instant of the period, in UTC (local midnight of the first day)."""
        return _local_midnight(self.first, self.zone)

    @property
    def end(self) -> datetime:
        """The first instant after the period, in UTC (local midnight after the last day)."""
        if self.last == date.max:
            return _LAST_INSTANT
        return _local_midnight(self.last + timedelta(days=1), self.zone)

    def local(self, moment: datetime) -> datetime | None:
        """An instant as wall-clock time in the period's zone; None beyond the years 1 to 9999."""
        try:
            return moment.astimezone(self.zone)
        except (OverflowError, ValueError):
            return None

    def each_day(self) -> Iterator[date]:
        day = self.first
        while day <= self.last:
            yield day
            if day == date.max:
                return
            day += timedelta(days=1)

    def describe(self) -> str:
        """The period in words, e.g. `2025-03 (Europe/Berlin)`."""
        whole_month = (
            self.first.day == 1
            and (self.first.year, self.first.month) == (self.last.year, self.last.month)
            and self.last.day == calendar.monthrange(self.last.year, self.last.month)[1]
        )
        if whole_month:
            what = f"{self.first.year:04d}-{self.first.month:02d}"
        elif self.first == self.last:
            what = str(self.first)
        else:
            what = f"{self.first} to {self.last}"
        return f"{what} ({self.zone.key})"


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise PeriodError(f"date {text!r} is not written YYYY-MM-DD, e.g. 2025-03-01") from None


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    try:
        return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
    except OverflowError:  # before 0001-01-01 or after 9999-12-31 in UTC
        return _FIRST_INSTANT if day.year == 1 else _LAST_INSTANT
