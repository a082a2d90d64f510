"""The benchmark is not a test, but a small run of it belongs in the suite so that it cannot rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.helpers import PROJECT


def test_the_benchmark_runs_end_to_end_and_prints_every_figure(tmp_path: Path) -> None:
    figures = tmp_path / "figures.json"
    completed = subprocess.run(
        [sys.executable, "-m", "devtools.bench", "--sizes", "200", "--runs", "1", "--json", str(figures)],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    for label in ("1 floor", "2 naive", "3 receiver", "4 receiver", "3/1 =", "4/1 =", "1/2 =", "peak RSS"):
        assert label in completed.stdout, label
    row = json.loads(figures.read_text())["sizes"]["200"]
    assert row["floor_s"] > 0 and row["http_s"] > 0 and row["naive_s"] > 0
    assert 0 < row["mapping_us_per_session"] < 1000
    assert row["peak_rss_bytes"] > 10 * 2**20
