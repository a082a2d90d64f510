"""Ingest benchmark: the receiver against what the storage itself allows, side by side, in one run.

    .venv/bin/python -m devtools.bench                 # N = 100, 2,000, 20,000 (about 6 minutes)
    .venv/bin/python -m devtools.bench --sizes 200 --runs 1   # the smoke run of the test suite

Against one fresh in-memory Azurite, for each N it measures, each figure the median of several
runs on a fresh table:
  1. floor:    the same entities written straight with azure-data-tables, 100-entity
               transactions, sequentially, no validation (what the storage itself allows);
  2. naive:    one upsert request per entity (N <= 2,000 only: slow, which is the point);
  3. receiver: the ingest use-case called in-process with the raw body;
  4. http:     the receiver over HTTP through `python -m sessions serve` (with its raw archive);
then the ratios 3/1, 4/1 and 1/2, the CPU per entity of the floor's client and of the receiver,
the CPU per session of parse + validate + map alone (no I/O), and the receiver's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import requests

from devtools.azurite import Azurite
from devtools.served import receiver_environment, start_receiver
from sessions.decoding import decode_push
from sessions.ingest import ingest_push
from sessions.model import Session
from sessions.settings import Settings, StorageConnection
from sessions.storage import SessionStore
from sessions.storage.connection import table_service
from sessions.storage.entities import TableWrite, session_entity
from sessions.storage.tables import plan_transactions
from tools.simulate import generate_sessions

PROJECT = Path(__file__).resolve().parent.parent
BENCH_KEY = "bench-key-not-a-secret"


@dataclass
class Sample:
    """One timed run: wall seconds and CPU seconds of the process that did the work."""

    wall: float
    cpu: float


@dataclass
class Figures:
    """Every sample of one method at one N."""

    samples: list[Sample] = field(default_factory=list)

    @property
    def wall(self) -> float:
        return statistics.median(sample.wall for sample in self.samples)

    @property
    def cpu(self) -> float:
        return statistics.median(sample.cpu for sample in self.samples)


class Bench:
    """The benchmark's shared state: one Azurite, and a fresh table for every run."""

    def __init__(self, connection_string: str) -> None:
        self.connection_string = connection_string
        self.service = table_service(StorageConnection(connection_string=connection_string))

    def fresh_settings(self) -> Settings:
        suffix = uuid.uuid4().hex[:12]
        return Settings(
            api_keys=(BENCH_KEY,),
            storage=StorageConnection(connection_string=self.connection_string),
            sessions_table=f"Bench{suffix}",
            rejected_table=f"BenchRejected{suffix}",
        )

    def entities(self, body: bytes) -> list[TableWrite]:
        received = datetime.now(UTC)
        return [
            session_entity(Session.model_validate(item), received_at=received, push_id="bench")
            for item in decode_push(body)
        ]

    def floor(self, body: bytes) -> Sample:
        """The same entities, 100 per transaction, one transaction after the other."""
        writes = self.entities(body)
        table = self.service.create_table(self.fresh_settings().sessions_table)
        transactions = plan_transactions(writes)
        with measured() as sample:
            for batch in transactions:
                table.submit_transaction([("upsert", write.entity) for write in batch])
        return sample

    def naive(self, body: bytes) -> Sample:
        """One upsert request per entity."""
        writes = self.entities(body)
        table = self.service.create_table(self.fresh_settings().sessions_table)
        with measured() as sample:
            for write in writes:
                table.upsert_entity(write.entity)
        return sample

    def in_process(self, body: bytes) -> Sample:
        """The ingest use-case with the raw body, tables created beforehand (as after a warm start)."""
        store = SessionStore.connect(self.fresh_settings())
        store.ensure_tables()
        with measured() as sample:
            result = ingest_push(body, store, push_id="bench")
        store.close()
        assert result.stored == result.received, result
        return sample

    def over_http(self, body: bytes) -> tuple[Sample, int]:
        """A POST to a fresh `python -m sessions serve`; CPU and peak RSS are the server's."""
        served = start_receiver(
            receiver_environment(
                self.fresh_settings(), RAW_ARCHIVE_CONTAINER=f"bench-{uuid.uuid4().hex[:12]}"
            ),
            keep_lines=False,
        )
        try:
            health = requests.get(served.health_url, timeout=60)  # warm up: imports done, tables made
            assert health.status_code == 200, health.text
            started_cpu = served.cpu_seconds()
            started = time.perf_counter()
            response = requests.post(
                served.sessions_url,
                data=body,
                headers={"Ocp-Apim-Subscription-Key": BENCH_KEY, "Content-Type": "application/json"},
                timeout=600,
            )
            wall = time.perf_counter() - started
            assert response.status_code == 200, response.text[:300]
            assert response.json()["stored"] == response.json()["received"]
            return Sample(wall, served.cpu_seconds() - started_cpu), served.peak_rss_bytes()
        finally:
            served.stop()


@contextmanager
def measured() -> Iterator[Sample]:
    """Wall and this process's CPU time (all threads) of the block."""
    sample = Sample(0.0, 0.0)
    started, started_cpu = time.perf_counter(), time.process_time()
    yield sample
    sample.wall = time.perf_counter() - started
    sample.cpu = time.process_time() - started_cpu


@contextmanager
def table_endpoint(azurite: Azurite, latency_ms: float) -> Iterator[str]:
    """Azurite's connection string, through a latency proxy when one is asked for."""
    if not latency_ms:
        yield azurite.connection_string
        return
    proxy = subprocess.Popen(
        [sys.executable, "-m", "devtools.latency_proxy", str(azurite.ports["Table"]), str(latency_ms)],
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proxy.stdout is not None
        port = int(proxy.stdout.readline().split()[-1])
        yield azurite.connection_string.replace(f":{azurite.ports['Table']}/", f":{port}/")
    finally:
        proxy.terminate()
        proxy.wait(timeout=10)


def mapping_cpu_microseconds(body: bytes, repeat: int) -> float:
    """CPU per session of parse + validate + map, no I/O (best of `repeat`)."""
    received = datetime.now(UTC)
    count = len(decode_push(body))
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        for item in decode_push(body):
            session_entity(Session.model_validate(item), received_at=received, push_id="bench")
        best = min(best, time.process_time() - started)
    return best / count * 1e6


def interleaved(runs: int, methods: dict[str, Callable[[], Sample]]) -> dict[str, Figures]:
    """`runs` rounds of every method, one after the other within a round, so that a slow moment
    of the machine weighs on every method alike rather than on whichever ran then."""
    figures = {name: Figures() for name in methods}
    for _ in range(runs):
        for name, method in methods.items():
            figures[name].samples.append(method())
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 2000, 20000])
    parser.add_argument("--runs", type=int, default=3, help="runs per figure; the median is printed")
    parser.add_argument("--naive-max", type=int, default=2000, help="largest N for the naive writer")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="one-way network latency put in front of Azurite (a round trip to Table Storage)",
    )
    arguments = parser.parse_args(argv)

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"runs per figure: {arguments.runs} (median; the methods take turns within each round),")
    print("a fresh table for every run, in-memory Azurite", end="")
    print(f", {arguments.latency_ms:g} ms one-way latency in front of it\n" if arguments.latency_ms else "\n")
    results: dict[str, Any] = {"latency_ms": arguments.latency_ms, "sizes": {}}
    with Azurite() as azurite, table_endpoint(azurite, arguments.latency_ms) as connection_string:
        bench = Bench(connection_string)
        for size in arguments.sizes:
            sessions = generate_sessions(size, seed=7, months=2)
            stations = len({session["ChargerID"] for session in sessions})
            body = json.dumps(sessions).encode()
            runs = max(arguments.runs, 5) if size <= 200 else arguments.runs
            peaks: list[int] = []

            def http_run(body: bytes = body, peaks: list[int] = peaks) -> Sample:
                sample, peak = bench.over_http(body)
                peaks.append(peak)
                return sample

            methods: dict[str, Callable[[], Sample]] = {"floor": partial(bench.floor, body)}
            if size <= arguments.naive_max:
                methods["naive"] = partial(bench.naive, body)
            methods["receiver"] = partial(bench.in_process, body)
            methods["http"] = http_run
            figures = interleaved(runs, methods)
            floor, receiver, http = (figures[name] for name in ("floor", "receiver", "http"))
            naive = figures.get("naive")
            peak_rss = max(peaks)
            mapping = mapping_cpu_microseconds(body, repeat=3 if size > 5000 else 10)
            print(f"N = {size:,} sessions ({stations} stations, 2 months, {len(body) / 2**20:.1f} MiB)")
            row = report(size, floor, naive, receiver, http, mapping, peak_rss)
            results["sizes"][str(size)] = row
    if arguments.json:
        arguments.json.write_text(json.dumps(results, indent=2))
    return 0


def report(
    size: int,
    floor: Figures,
    naive: Figures | None,
    receiver: Figures,
    http: Figures,
    mapping_us: float,
    peak_rss: int,
) -> dict[str, Any]:
    def rate(figures: Figures) -> str:
        return f"{figures.wall * 1000:9.1f} ms  {size / figures.wall:8.0f}/s"

    def per(cpu_seconds: float) -> str:
        return f"{cpu_seconds / size * 1e6:6.0f} us"

    print(f"  1 floor     (SDK, 100/transaction) {rate(floor)}   client CPU {per(floor.cpu)}/entity")
    if naive is not None:
        print(f"  2 naive     (one upsert each)      {rate(naive)}")
    print(f"  3 receiver  (in-process ingest)    {rate(receiver)}   CPU {per(receiver.cpu)}/session")
    print(f"  4 receiver  (HTTP, sessions serve) {rate(http)}   CPU {per(http.cpu)}/session")
    print(f"  ratios: 3/1 = {receiver.wall / floor.wall:.2f}   4/1 = {http.wall / floor.wall:.2f}", end="")
    print(f"   1/2 = {floor.wall / naive.wall:.2f}" if naive is not None else "")
    print(
        f"  CPU: receiver over HTTP / floor client = {http.cpu / floor.cpu:.2f};"
        f" parse + validate + map alone {mapping_us:.1f} us/session"
    )
    print(f"  receiver peak RSS (server process): {peak_rss / 2**20:.0f} MB\n", flush=True)
    return {
        "floor_s": floor.wall,
        "naive_s": naive.wall if naive else None,
        "receiver_s": receiver.wall,
        "http_s": http.wall,
        "floor_cpu_us_per_entity": floor.cpu / size * 1e6,
        "receiver_cpu_us_per_session": receiver.cpu / size * 1e6,
        "http_cpu_us_per_session": http.cpu / size * 1e6,
        "mapping_us_per_session": mapping_us,
        "peak_rss_bytes": peak_rss,
        "ratio_receiver_floor": receiver.wall / floor.wall,
        "ratio_http_floor": http.wall / floor.wall,
        "ratio_floor_naive": floor.wall / naive.wall if naive else None,
    }


if __name__ == "__main__":
    sys.exit(main())
