"""How much memory `python -m sessions export` takes for a small and a large month (flat, we hope).

    .venv/bin/python -m devtools.export_memory                  # 10,000 and 100,000 sessions (~5 min)
    .venv/bin/python -m devtools.export_memory --sizes 1000 5000 --tracemalloc

Starts its own in-memory Azurite, stores each size of generated sessions (sessions.simulate) in
a month of its own through the receiver's ingest use-case, then runs the export command of each
month as its own process, once per size, and reports that process's peak RSS (and, with
--tracemalloc, the peak of Python allocations in a second run). An empty month gives the fixed
cost: the interpreter, the libraries and the clients.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory

from devtools.azurite import Azurite
from sessions.ingest import ingest_push
from sessions.settings import Settings, StorageConnection
from sessions.storage import SessionStore, StorageUnavailable
from tools.simulate import iter_sessions

PROJECT = Path(__file__).resolve().parent.parent
SESSIONS_TABLE = "ChargingSessions"
REJECTED_TABLE = "RejectedSessions"
PUSH_SIZE = 1000
EMPTY_MONTH = "2024-01"


def main() -> int:
    options = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    options.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    options.add_argument("--format", default="csv", choices=("csv", "jsonl", "json"))
    options.add_argument("--tracemalloc", action="store_true", help="also measure Python allocations")
    options.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    arguments = options.parse_args()
    if arguments.child is not None:
        return measure_child(arguments.child)

    results = []
    with Azurite() as azurite, TemporaryDirectory() as scratch:
        settings = Settings(
            storage=StorageConnection(connection_string=azurite.connection_string),
            sessions_table=SESSIONS_TABLE,
            rejected_table=REJECTED_TABLE,
        )
        env = {
            **os.environ,
            "SESSIONS_STORAGE": azurite.connection_string,
            "SESSIONS_TABLE": SESSIONS_TABLE,
            "REJECTED_TABLE": REJECTED_TABLE,
        }
        months = {size: f"2025-{number + 1:02d}" for number, size in enumerate(arguments.sizes)}
        for size, month in months.items():
            started = time.perf_counter()
            load(settings, size, month)
            print(f"stored {size:,} sessions in {month} in {time.perf_counter() - started:.0f} s", flush=True)
        for size, month in [(0, EMPTY_MONTH), *months.items()]:
            out = Path(scratch) / f"{month}.{arguments.format}"
            figures: dict[str, object] = {**run_export(env, month, out, arguments.format, traced=False)}
            if arguments.tracemalloc:
                figures["tracemalloc_peak_mib"] = run_export(env, month, out, arguments.format, traced=True)[
                    "tracemalloc_peak_mib"
                ]
            figures.update(sessions=size, month=month, file_mib=round(out.stat().st_size / 2**20, 1))
            results.append(figures)
            print(json.dumps(figures), flush=True)

    print()
    print(f"machine: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}")
    print(
        f"{'sessions':>9}  {'file MiB':>8}  {'seconds':>7}  {'CPU s':>5}  "
        f"{'peak RSS MiB':>12}  {'tracemalloc MiB':>15}"
    )
    for row in results:
        traced = row.get("tracemalloc_peak_mib", "")
        print(
            f"{row['sessions']:>9,}  {row['file_mib']:>8}  {row['seconds']:>7}  {row['cpu_seconds']:>5}  "
            f"{row['peak_rss_mib']:>12}  {traced:>15}"
        )
    return 0


def load(settings: Settings, count: int, month: str) -> None:
    """Store `count` generated sessions starting in `month` through the receiver's use-case."""
    start = datetime.fromisoformat(f"{month}-01T00:00:00+00:00").astimezone(UTC)
    store = SessionStore.connect(settings)
    try:
        batch: list[dict[str, object]] = []
        for session in iter_sessions(count, seed=count, start=start):
            batch.append(session)
            if len(batch) == PUSH_SIZE:
                _push(store, batch)
                batch = []
        if batch:
            _push(store, batch)
    finally:
        store.close()


def _push(store: SessionStore, batch: list[dict[str, object]]) -> None:
    body = json.dumps(batch).encode()
    for attempt in range(5):
        try:
            result = ingest_push(body, store, push_id=f"load-{time.monotonic_ns()}")
            break
        except StorageUnavailable as error:
            # As ChargePilot would: a push is idempotent, so send it again (Azurite, busy with
            # 100,000 entities in memory, now and then resets a connection).
            print(f"retrying a push: {error}", flush=True)
            time.sleep(2 * (attempt + 1))
    else:
        raise SystemExit("storage kept failing")
    if result.rejections:
        raise SystemExit(f"the generator made invalid sessions: {result.rejections[0]}")


def run_export(
    env: dict[str, str], month: str, out: Path, output_format: str, *, traced: bool
) -> dict[str, float]:
    """Run the export command in its own process; its peak RSS (or Python allocations) and time."""
    command = [sys.executable, "-m", "devtools.export_memory", "--child", "traced" if traced else "plain"]
    command += ["--settings", "/nonexistent", "export", "--month", month, "--tz", "UTC"]
    command += ["--format", output_format, "--out", str(out)]
    done = subprocess.run(command, cwd=PROJECT, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"export failed ({done.returncode}):\n{done.stderr}")
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def measure_child(arguments: list[str]) -> int:
    """In the child: run `python -m sessions ARGUMENTS` and print what it took, as JSON."""
    from tools.cli import main as sessions_main

    mode, *command = arguments
    if mode == "traced":
        tracemalloc.start()
    started, cpu_started = time.perf_counter(), time.process_time()
    status = sessions_main(command)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    # Wall time against CPU time: what the export itself costs, and what it waits for.
    figures: dict[str, float] = {"seconds": round(seconds, 1), "cpu_seconds": round(cpu_seconds, 1)}
    if mode == "traced":
        figures["tracemalloc_peak_mib"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
    else:
        # Linux reports ru_maxrss in KiB.
        figures["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(figures))
    return status


if __name__ == "__main__":
    sys.exit(main())
