"""The benchmark is not a test, but a small run of it belongs in the suite so that it cannot rot:
the smallest sizes, one round, pushes just above the synchronous limit and a flood just above the
item limit. It checks that every figure is there and that the request counts are what the design
says, not how fast anything is."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from sessions.receiver import SYNC_MAX_SESSIONS
from tests.helpers import PROJECT

SIZE = 100
PUSH = SYNC_MAX_SESSIONS + 500


def run_benchmark(tmp_path: Path) -> tuple[str, dict[str, Any]]:
    figures = tmp_path / "figures.json"
    command = [sys.executable, "-m", "devtools.bench", "--sizes", str(SIZE), "--runs", "1"]
    command += ["--runs-small", "1", "--valid-sessions", str(PUSH), "--invalid-sessions", str(PUSH)]
    command += ["--flood-mib", "3", "--resend-valid", "--background-timeout", "60", "--json", str(figures)]
    completed = subprocess.run(command, cwd=PROJECT, capture_output=True, text=True, timeout=240, check=False)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    return completed.stdout, json.loads(figures.read_text())


def test_the_benchmark_runs_end_to_end_and_reports_every_figure(tmp_path: Path) -> None:
    printed, figures = run_benchmark(tmp_path)
    for label in ("floor", "naive", "before", "after", "re-sent", "over HTTP", "after/before", "peak RSS"):
        assert label in printed, label
    assert "cores" in figures["machine"] and "Python" in figures["machine"]

    # Part 1: every method timed and counted; the counts are the design's.
    row = figures["identity"][str(SIZE)]
    methods = row["methods"]
    assert set(methods) == {"floor", "naive", "before", "after", "before_resent", "after_resent", "http"}
    for name, method in methods.items():
        assert method["wall_s"] > 0 and method["sessions_per_s"] > 0 and method["cpu_us_per_session"] > 0, (
            name
        )
    # 100 sessions over two months: one transaction per month partition, for the floor and before.
    assert methods["floor"]["requests"]["total"] == 2
    assert methods["before"]["requests"] == methods["before_resent"]["requests"]
    assert methods["before"]["requests"]["transaction"] == 2
    assert methods["naive"]["requests"]["write"] == SIZE
    # After: the index read, the new identities claimed, the records created; nothing per session.
    first = methods["after"]["requests"]
    assert first["read"] >= 1 and first["transaction"] >= 3 and first["write"] == 0
    assert first["transaction_operations"] == 2 * SIZE
    # Re-sent, all unchanged: reads only.
    resent = methods["after_resent"]["requests"]
    assert resent["read"] >= 1 and resent["transaction"] == resent["write"] == 0
    assert row["ratios"]["after_before_first"] > 0 and row["ratios"]["after_before_requests_first"] >= 1
    assert 0 < row["mapping_us_per_session"] < 1000
    assert row["http_peak_rss_bytes"] > 10 * 2**20

    # Part 2: the 202 path stores everything in the background; the flood is refused whole.
    pushes = {push["name"]: push for push in figures["floods"]["pushes"]}
    valid, resent_push = pushes["valid sessions (202)"], pushes["the same push re-sent"]
    for push in (valid, resent_push):
        assert push["status"] == 202 and push["outcome"] == "stored" and push["done_s"] > push["answer_s"]
        assert push["checked"]["sessions_in_table"] == PUSH
    assert valid["counts"]["stored"] == PUSH and resent_push["counts"]["unchanged"] == PUSH
    flood = pushes['flood of {"x":N}']
    assert flood["status"] == 413 and flood["answer"] == "too_many_sessions" and flood["items"] > 150_000
    invalid = pushes["sessions, each invalid"]
    assert invalid["status"] == 202 and invalid["counts"]["rejected"] == PUSH
    assert invalid["checked"]["sessions_in_table"] == 0 and invalid["checked"]["quarantine_entries"] > 0
    for push in pushes.values():
        assert 0 < push["answer_bytes"] < 2**20 and push["peak_rss_bytes"] > 10 * 2**20, push["name"]
        assert push["log_bytes"] > 0 and push["log_lines"] > 0, push["name"]


def test_the_cold_start_measurement_runs_and_reports_every_figure(tmp_path: Path) -> None:
    figures = tmp_path / "cold.json"
    command = [sys.executable, "-m", "devtools.cold_start", "--runs", "1", "--json", str(figures)]
    completed = subprocess.run(command, cwd=PROJECT, capture_output=True, text=True, timeout=180, check=False)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    assert "the app's own cold start" in completed.stdout
    measured = json.loads(figures.read_text())
    assert set(measured["medians"]) == {"serving_s", "first_push_s", "warm_push_s"}
    assert all(value > 0 for value in measured["medians"].values())
