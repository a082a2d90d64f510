"""Billing periods: local days in a zone, the UTC instants that bound them, and the ends of time."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from sessions.period import Period, PeriodError, time_zone

BERLIN = time_zone("Europe/Berlin")
LAST_INSTANT = datetime.max.replace(tzinfo=UTC)
FIRST_INSTANT = datetime.min.replace(tzinfo=UTC)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@pytest.mark.parametrize(
    ("month", "start", "end"),
    [
        # Winter time at both ends; the previous month is in the previous year.
        ("2025-01", "2024-12-31T23:00:00Z", "2025-01-31T23:00:00Z"),
        # Winter time at the start, summer time at the end.
        ("2025-03", "2025-02-28T23:00:00Z", "2025-03-31T22:00:00Z"),
        ("2024-02", "2024-01-31T23:00:00Z", "2024-02-29T23:00:00Z"),
    ],
)
def test_a_berlin_month_runs_from_local_midnight_to_local_midnight(month: str, start: str, end: str) -> None:
    period = Period.month(month, BERLIN)
    assert (period.start, period.end) == (utc(start), utc(end))


def test_the_same_month_in_utc_has_other_edges() -> None:
    period = Period.month("2025-03", time_zone("UTC"))
    assert (period.start, period.end) == (utc("2025-03-01T00:00:00Z"), utc("2025-04-01T00:00:00Z"))


def test_the_day_the_clocks_go_back_has_25_hours_and_the_day_they_go_forward_23() -> None:
    autumn = Period.days("2025-10-26", "2025-10-26", BERLIN)
    spring = Period.days("2025-03-30", "2025-03-30", BERLIN)
    assert autumn.end - autumn.start == timedelta(hours=25)
    assert spring.end - spring.start == timedelta(hours=23)


def test_a_month_has_each_of_its_days_once() -> None:
    assert list(Period.month("2024-02", BERLIN).each_day()) == [date(2024, 2, day) for day in range(1, 30)]


@pytest.mark.parametrize(
    ("first", "last", "described"),
    [
        ("2025-03-01", "2025-03-31", "2025-03 (Europe/Berlin)"),
        ("2025-03-05", "2025-03-05", "2025-03-05 (Europe/Berlin)"),
        ("2025-03-01", "2025-04-30", "2025-03-01 to 2025-04-30 (Europe/Berlin)"),
        ("2025-03-01", "2025-03-30", "2025-03-01 to 2025-03-30 (Europe/Berlin)"),
    ],
)
def test_a_period_describes_itself_as_a_month_a_day_or_a_range(first: str, last: str, described: str) -> None:
    assert Period.days(first, last, BERLIN).describe() == described


def test_an_instant_is_shown_as_wall_clock_time_in_the_zone() -> None:
    local = Period.month("2025-03", BERLIN).local(utc("2025-03-30T01:30:00Z"))
    assert local is not None and local.isoformat() == "2025-03-30T03:30:00+02:00"


@pytest.mark.parametrize(
    ("zone", "moment"),
    [
        ("Europe/Berlin", datetime(9999, 12, 31, 23, 0, tzinfo=UTC)),
        ("Pacific/Kiritimati", datetime(9999, 12, 31, 10, 0, tzinfo=UTC)),
        ("America/Los_Angeles", datetime(1, 1, 1, 7, 0, tzinfo=UTC)),
    ],
)
def test_an_instant_whose_wall_clock_time_is_beyond_the_years_python_holds_has_no_local_time(
    zone: str, moment: datetime
) -> None:
    assert Period.month("2025-03", time_zone(zone)).local(moment) is None


@pytest.mark.parametrize(
    "zone", ["Europe/Berlin", "UTC", "America/Los_Angeles", "Pacific/Kiritimati", "Etc/GMT+12"]
)
def test_the_last_month_of_9999_ends_at_the_last_instant_python_holds(zone: str) -> None:
    period = Period.month("9999-12", time_zone(zone))
    assert period.end == LAST_INSTANT and period.start < period.end
    assert list(period.each_day())[-1] == date(9999, 12, 31)
    assert period.describe() == f"9999-12 ({zone})"


@pytest.mark.parametrize("zone", ["UTC", "Pacific/Kiritimati", "Asia/Tokyo"])
def test_the_first_month_of_the_year_1_starts_at_the_first_instant_python_holds(zone: str) -> None:
    period = Period.month("0001-01", time_zone(zone))
    assert period.start >= FIRST_INSTANT and period.start < period.end
    assert len(list(period.each_day())) == 31


def test_the_months_a_stored_session_can_fall_in_are_all_periods() -> None:
    # Table Storage holds 1601 to 9999: the first and the last of those months, in the zone furthest
    # ahead of UTC and the one furthest behind.
    for zone in ("Pacific/Kiritimati", "Etc/GMT+12"):
        for month in ("1601-01", "9999-12"):
            period = Period.month(month, time_zone(zone))
            assert period.start < period.end


@pytest.mark.parametrize(
    "month", ["2025-13", "2025-00", "0000-01", "25-03", "2025-3", "2025/03", "२०२५-03", ""]
)
def test_a_month_not_written_yyyy_mm_is_refused(month: str) -> None:
    with pytest.raises(PeriodError, match="is not written YYYY-MM"):
        Period.month(month, BERLIN)


def test_a_range_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(PeriodError, match="--to 2025-03-01 is before --from 2025-03-31"):
        Period.days("2025-03-31", "2025-03-01", BERLIN)


@pytest.mark.parametrize("day", ["2025-02-30", "tomorrow", "31.03.2025"])
def test_a_day_not_written_yyyy_mm_dd_is_refused(day: str) -> None:
    with pytest.raises(PeriodError, match="is not written YYYY-MM-DD"):
        Period.days(day, "2025-03-31", BERLIN)


@pytest.mark.parametrize("name", ["Mars/Olympus", "", "../etc/passwd"])
def test_an_unknown_time_zone_is_refused(name: str) -> None:
    with pytest.raises(PeriodError, match="unknown time zone"):
        time_zone(name)
