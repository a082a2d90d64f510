"""`python -m sessions report` against Azurite: totals that equal the export, and the chart option.

The report's sums, table and CSV as pure functions: tests/unit/test_report_sums.py; the chart's
drawing: tests/unit/test_report_chart.py.
"""

from __future__ import annotations

import math
import struct
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sessions.settings import Settings
from sessions.storage import SessionStore
from tests.helpers.pushes import session
from tests.helpers.tools import csv_rows, run_tool, store_sessions
from tools.report import NO_CARD
from tools.simulate import generate_sessions

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def march(store: SessionStore) -> int:
    """A depot's March (generated) and sessions at the month's Berlin edges; how many are March's."""
    sessions = generate_sessions(400, seed=11, start=datetime(2025, 3, 1, tzinfo=UTC))
    edges = [
        session(StartAt="2025-02-28T23:30:00Z", EndAt="2025-03-01T01:00:00Z", EnergyDelivered=9000, Id=None),
        session(StartAt="2025-03-31T23:30:00Z", EndAt="2025-04-01T01:00:00Z", EnergyDelivered=7000),
    ]
    store_sessions(store, [*sessions, *edges])
    # In Berlin, March ends at 22:00 UTC on the 31st; the first edge is March's, the second April's.
    return sum(str(item["StartAt"]) < "2025-03-31T22:00:00" for item in sessions) + 1


def totals_of_export(rows: list[dict[str, str]], by: str) -> dict[str, tuple[int, float, float]]:
    """Sessions, kWh and hours per group, summed from the exported rows themselves."""
    groups: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        group = {"card": row["Id"] or NO_CARD, "station": row["ChargerID"], "day": row["StartLocal"][:10]}[by]
        groups[group].append(row)
    return {
        group: (
            len(members),
            math.fsum(float(row["EnergyKWh"]) for row in members),
            math.fsum(float(row["DurationSeconds"]) for row in members) / 3600,
        )
        for group, members in groups.items()
    }


@pytest.mark.parametrize("by", ["card", "station", "day"])
def test_the_report_totals_equal_the_sum_of_the_exported_rows(
    by: str,
    march: int,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    exported = csv_rows(run_tool(settings, monkeypatch, capsys, "export", "--month", "2025-03").out)
    ran = run_tool(
        settings, monkeypatch, capsys, "report", "--month", "2025-03", "--by", by, "--format", "csv"
    )
    assert ran.status == 0, ran.err
    reported = {row[by]: row for row in csv_rows(ran.out)}
    total = reported.pop("total")
    expected = totals_of_export(exported, by)
    nonzero = {group: row for group, row in reported.items() if row["sessions"] != "0"}
    assert set(nonzero) == set(expected)
    for group, (sessions, kwh, hours) in expected.items():
        row = reported[group]
        assert (int(row["sessions"]), row["kWh"], row["hours"]) == (sessions, f"{kwh:.3f}", f"{hours:.2f}")
    assert int(total["sessions"]) == len(exported) == march
    assert total["kWh"] == f"{math.fsum(float(row['EnergyKWh']) for row in exported):.3f}"
    assert total["hours"] == f"{math.fsum(float(row['DurationSeconds']) for row in exported) / 3600:.2f}"


@pytest.mark.usefixtures("march")
def test_the_chart_is_a_real_png(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    chart = tmp_path / "march.png"
    ran = run_tool(
        settings, monkeypatch, capsys, "report", "--month", "2025-03", "--by", "day", "--plot", str(chart)
    )
    assert ran.status == 0 and f"Chart written to {chart}" in ran.err
    data = chart.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and data[12:16] == b"IHDR" and data.endswith(b"IEND\xaeB`\x82")
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 800 and height >= 500 and len(data) > 20_000


def test_a_chart_must_be_named_png(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    ran = run_tool(
        settings, monkeypatch, capsys, "report", "--month", "2025-03", "--plot", str(tmp_path / "a.pdf")
    )
    assert ran.status == 2 and "PNG" in ran.err and not (tmp_path / "a.pdf").exists()


def test_a_chart_that_cannot_be_written_says_so(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    chart = tmp_path / "missing" / "march.png"
    ran = run_tool(settings, monkeypatch, capsys, "report", "--month", "2025-03", "--plot", str(chart))
    assert ran.status == 2 and f"cannot write {chart}" in ran.err
