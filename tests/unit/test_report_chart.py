"""The report's chart: a real PNG, whatever the groups are called."""

from __future__ import annotations

import math
import struct
from datetime import datetime
from pathlib import Path
from typing import Any

from sessions.period import Period, time_zone
from tools.chart import MAX_CHART_BARS, plot
from tools.report import Grouping, build_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MARCH = Period.month("2025-03", time_zone("Europe/Berlin"))


def session(start: str, card: str, wh: float = 10_000) -> dict[str, Any]:
    return {
        "Id": card,
        "ChargerID": card,
        "StartAt": datetime.fromisoformat(start),
        "EnergyDelivered": wh,
        "DurationSeconds": 3600,
    }


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and data[12:16] == b"IHDR" and data.endswith(b"IEND\xaeB`\x82")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_a_chart_by_day_is_a_real_png(tmp_path: Path) -> None:
    sessions = [session(f"2025-03-{day:02d}T10:00:00Z", "C1", 1000 * day) for day in range(1, 32)]
    plot(build_report(sessions, MARCH, Grouping.DAY), tmp_path / "march.png")
    width, height = png_size(tmp_path / "march.png")
    assert width >= 800 and height >= 500


def test_a_chart_draws_any_group_name_and_values_left_out(tmp_path: Path) -> None:
    names = ["$x^2$", "$", "AB\u202e21", "NUL\x00", "2025-03-01", "\ud83d", "=cmd"]
    sessions = [session("2025-03-10T10:00:00Z", name) for name in names] + [
        session("2025-03-10T10:00:00Z", "C1", math.nan)
    ]
    plot(build_report(sessions, MARCH, Grouping.CARD), tmp_path / "cards.png")
    assert png_size(tmp_path / "cards.png")[0] >= 800


def test_a_chart_of_many_groups_sums_the_smallest_into_one_bar(tmp_path: Path) -> None:
    sessions = [
        session("2025-03-10T10:00:00Z", f"C{number:03d}", 1000 + number)
        for number in range(2 * MAX_CHART_BARS)
    ]
    plot(build_report(sessions, MARCH, Grouping.STATION), tmp_path / "stations.png")
    assert png_size(tmp_path / "stations.png")[0] >= 800


def test_a_chart_by_day_of_the_last_month_of_9999_draws(tmp_path: Path) -> None:
    last = Period.month("9999-12", time_zone("Europe/Berlin"))
    sessions = [session("9999-12-31T23:30:00Z", "C1"), session("9999-12-31T12:00:00Z", "C1")]
    plot(build_report(sessions, last, Grouping.DAY), tmp_path / "end.png")
    assert png_size(tmp_path / "end.png")[0] >= 800
