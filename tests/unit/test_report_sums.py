"""The report as pure functions: sums per card, station and day, what is left out of them, and
how the table and the CSV show it."""

from __future__ import annotations

import csv
import io
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sessions.period import Period, time_zone
from sessions.settings import SessionLimits
from tools.report import LEFT_OUT, NO_CARD, NO_DAY, Grouping, build_report, format_table, write_csv

BERLIN = time_zone("Europe/Berlin")
MARCH = Period.month("2025-03", BERLIN)


def session(
    start: str = "2025-03-10T10:00:00Z",
    *,
    card: str | None = "C1",
    station: str = "TACW1",
    wh: Any = 10_000,
    seconds: Any = 3600,
) -> dict[str, Any]:
    """A session as sessions.export.sessions_of reads it, with only what the report reads."""
    return {
        "Id": card,
        "ChargerID": station,
        "StartAt": datetime.fromisoformat(start),
        "EnergyDelivered": wh,
        "DurationSeconds": seconds,
    }


def csv_of(report_text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(report_text, newline="")))


def written_csv(*sessions: dict[str, Any], grouping: Grouping = Grouping.CARD, excel_de: bool = False) -> str:
    out = io.StringIO(newline="")
    write_csv(build_report(sessions, MARCH, grouping), out, excel_de=excel_de)
    return out.getvalue()


def test_the_sessions_energy_and_hours_are_summed_per_card_with_the_cardless_last() -> None:
    report = build_report(
        [
            session(card="C2"),
            session(card="C1", wh=2500.5, seconds=1800),
            session(card=None),
            session(card="C2"),
        ],
        MARCH,
        Grouping.CARD,
    )
    assert [(row.group, row.sessions, row.energy_kwh, row.charging_hours) for row in report.rows] == [
        ("C1", 1, 2.5005, 0.5),
        ("C2", 2, 20.0, 2.0),
        (NO_CARD, 1, 10.0, 1.0),
    ]
    assert (report.total.sessions, report.total.energy_kwh, report.total.charging_hours) == (4, 32.5005, 3.5)


def test_the_sessions_are_summed_per_station() -> None:
    report = build_report(
        [session(station="B"), session(station="A"), session(station="B")], MARCH, Grouping.STATION
    )
    assert [(row.group, row.sessions) for row in report.rows] == [("A", 1), ("B", 2)]


def test_a_report_by_day_has_every_local_day_of_the_month_and_counts_a_session_on_its_berlin_day() -> None:
    report = build_report(
        [session("2025-02-28T23:30:00Z"), session("2025-03-31T21:59:59Z")], MARCH, Grouping.DAY
    )
    assert [row.group for row in report.rows] == [f"2025-03-{day:02d}" for day in range(1, 32)]
    busy = {row.group: row.sessions for row in report.rows if row.sessions}
    assert busy == {"2025-03-01": 1, "2025-03-31": 1}


def test_the_sums_are_exact_over_many_sessions() -> None:
    report = build_report([session(wh=0.1, seconds=0.1)] * 100_000, MARCH, Grouping.CARD)
    assert report.total.energy_kwh == math.fsum([0.1] * 100_000) / 1000
    assert report.total.charging_hours == math.fsum([0.1] * 100_000) / 3600


@pytest.mark.parametrize(
    "wh",
    [math.nan, math.inf, -math.inf, 1e308, -1.0, 5_000_001, 10**30, "17233", None, True, [1]],
    ids=repr,
)
def test_an_energy_that_cannot_be_billed_is_left_out_of_the_sums_and_counted(wh: Any) -> None:
    report = build_report(
        [session(card="C1"), session(card="C1", wh=wh), session(card="C2")], MARCH, Grouping.CARD
    )
    first, second = report.rows
    assert (first.sessions, first.energy_kwh, first.charging_hours, first.left_out) == (2, 10.0, 2.0, 1)
    assert (second.left_out, report.total.left_out, report.total.energy_kwh) == (0, 1, 20.0)


@pytest.mark.parametrize("seconds", [math.nan, math.inf, -1, 91 * 86400, 1e300, "3600", None])
def test_a_duration_that_cannot_be_billed_is_left_out_of_the_hours_but_its_energy_counts(
    seconds: Any,
) -> None:
    report = build_report([session(), session(seconds=seconds)], MARCH, Grouping.CARD)
    assert (report.total.sessions, report.total.energy_kwh, report.total.charging_hours) == (2, 20.0, 1.0)
    assert report.total.left_out == 1


def test_many_energies_of_1e308_leave_every_total_finite() -> None:
    report = build_report(
        [session(wh=1e308)] * 3 + [session(wh=math.nan)] * 2 + [session()], MARCH, Grouping.CARD
    )
    assert report.total.energy_kwh == 10.0 and report.total.left_out == 5
    assert all(math.isfinite(row.energy_kwh) and math.isfinite(row.charging_hours) for row in report.rows)


def test_the_limits_of_the_settings_decide_what_can_be_billed() -> None:
    big = session(wh=6_000_000, seconds=100 * 86400)
    assert build_report([big], MARCH, Grouping.CARD).total.left_out == 1
    relaxed = build_report(
        [big], MARCH, Grouping.CARD, limits=SessionLimits(max_energy_kwh=10_000, max_days=365)
    )
    assert (relaxed.total.left_out, relaxed.total.energy_kwh) == (0, 6000.0)


def test_the_table_marks_the_groups_with_values_left_out_and_says_why_under_the_total() -> None:
    text = format_table(
        build_report([session(card="C1", wh=math.nan), session(card="C2")], MARCH, Grouping.CARD)
    )
    lines = text.splitlines()
    assert lines[4].split() == ["C1", "*", "1", "0.000", "1.00"]
    assert lines[5].split()[0] == "C2" and "*" not in lines[5]
    assert lines[-3].split()[:3] == ["total", "*", "2"] and lines[-2] == ""
    assert lines[-1] == (
        "* 1 session with an energy or a duration left out of the sums: not a finite number from 0 to "
        "5000 kWh (SESSION_MAX_ENERGY_KWH) or 90 days (SESSION_MAX_DAYS); `export` shows them as stored"
    )


def test_the_csv_ends_with_a_row_counting_the_sessions_left_out_only_when_there_are_any() -> None:
    assert csv_of(written_csv(session(), session(wh=math.inf)))[-1] == [LEFT_OUT, "1", "", ""]
    assert csv_of(written_csv(session()))[-1][0] == "total"


def test_a_report_is_an_aligned_table_with_a_title_and_a_total() -> None:
    sessions = [session(station=f"TACW{number}", wh=1000 * number) for number in range(1, 12)]
    title, blank, header, rule, *body = format_table(
        build_report(sessions, MARCH, Grouping.STATION)
    ).splitlines()
    assert title == "Sessions of 2025-03 (Europe/Berlin), by station" and blank == ""
    assert header.split() == ["station", "sessions", "kWh", "hours"]
    *stations, closing_rule, total = body
    assert closing_rule == rule and total.split() == ["total", "11", "66.000", "11.00"]
    # Numbers are right-aligned under their headings: every line ends at the same column.
    assert {len(line) for line in [header, *stations, total]} == {len(rule)} and len(stations) == 11


def test_the_csv_uses_a_decimal_comma_for_german_excel() -> None:
    text = written_csv(session(card="C1", wh=17233, seconds=5400), excel_de=True)
    assert text.splitlines()[:2] == ["card;sessions;kWh;hours", "C1;1;17,233;1,50"]


def test_group_names_with_unsafe_characters_are_escaped_and_formulas_defused() -> None:
    sessions = [session(card="=cmd|' /C calc'!A0"), session(card="AB\u202e21\x00")]
    rows = csv_of(written_csv(*sessions))
    assert [row[0] for row in rows[1:3]] == ["'=cmd|' /C calc'!A0", "AB\\u202e21\\u0000"]
    table = format_table(build_report(sessions, MARCH, Grouping.CARD))
    assert "AB\\u202e21\\u0000" in table and "\u202e" not in table and "\x00" not in table


def test_a_session_whose_local_day_is_beyond_9999_counts_under_no_local_day() -> None:
    last = Period.month("9999-12", BERLIN)
    report = build_report(
        [session("9999-12-31T23:30:00Z"), session("9999-12-31T12:00:00Z")], last, Grouping.DAY
    )
    assert [row.group for row in report.rows][-2:] == ["9999-12-31", NO_DAY]
    assert report.rows[-1].sessions == 1 and report.total.sessions == 2


def test_a_session_without_a_start_counts_under_no_local_day() -> None:
    odd = {"EnergyDelivered": 1000, "DurationSeconds": 60}
    report = build_report([odd], MARCH, Grouping.DAY)
    assert report.rows[-1].group == NO_DAY and report.total.energy_kwh == 1.0


def test_a_report_of_the_last_month_of_9999_in_any_zone_has_its_31_days() -> None:
    for zone in ("Europe/Berlin", "America/Los_Angeles", "Pacific/Kiritimati"):
        last = Period.month("9999-12", time_zone(zone))
        assert len(build_report([], last, Grouping.DAY).rows) == 31


def test_a_report_of_every_day_of_a_period_starting_at_the_earliest_start_works() -> None:
    first = datetime(2010, 1, 1, tzinfo=UTC)
    sessions = [session((first + timedelta(hours=hour)).isoformat()) for hour in range(48)]
    report = build_report(sessions, Period.month("2010-01", time_zone("UTC")), Grouping.DAY)
    assert report.rows[0].sessions == 24 and report.rows[1].sessions == 24
