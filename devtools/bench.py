"""Ingest benchmark: the cost of identity side by side, then the 202 path and the flood, in one run.

    .venv/bin/python -m devtools.bench                  # the whole benchmark (10 to 20 minutes)
    .venv/bin/python -m devtools.bench --sizes 2000 --runs 1 --skip-floods   # one size, quickly
    .venv/bin/python -m devtools.bench --latency-ms 10  # a network round trip in front of the tables
    .venv/bin/python -m devtools.bench --json figures.json   # also every figure as JSON

Part 1, the cost of identity (issue 10). Against one fresh in-memory Azurite, for each N of
`--sizes` (sessions of tools.simulate's depot fleet over two months: two partitions), in rounds
where the methods take turns, each run on tables of its own (medians printed):
  floor    the same entities written straight with azure-data-tables, 100-entity transactions,
           one after the other, entities built beforehand: what the storage itself allows;
  naive    one upsert request per entity (N <= --naive-max, 100: slow, which is the point);
  before   the receiver before identity: read, validate and map the push, then
           SessionStore.upsert_sessions (plain upserts by month partition, no index);
  after    the receiver's ingest, sessions.ingest.ingest_push: reads the identity index, claims
           new identities, creates or updates each record only if unchanged since read;
  http     `after` over HTTP through a fresh `python -m sessions serve` (N <= SYNC_MAX_SESSIONS,
           which is answered 200; raw archive and push record included; its push deadline
           raised so that a busy machine does not send it to the background);
`before` and `after` each push N new sessions, then the same push again (re-sent: all unchanged).
Each figure: wall time, sessions/s, CPU per session (the bench process's, all threads; the
server's for http), and the storage requests per push, counted by a raw_request_hook on the Table
service client (devtools/request_count.py: every try of every request, by table and kind).

Part 2, the 202 path and the flood (issue 11), over HTTP against a fresh `python -m sessions serve`
each (devtools/bench_floods.py): a push of valid sessions above SYNC_MAX_SESSIONS (answered 202,
stored by the background queue function the server runs too), a flood of tiny invalid objects
(more than MAX_PUSH_SESSIONS: 413), and a push of sessions that are each invalid (202, then
quarantined); answer time and size, time until the background is done, peak RSS, log bytes.
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
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import requests
from azure.data.tables import TableClient

from devtools.azurite import Azurite
from devtools.bench_floods import FloodOptions, run_floods
from devtools.request_count import RequestCounter, Requests, counting_table_service
from devtools.served import receiver_environment, start_receiver
from sessions.decoding import PushBody
from sessions.ingest import ingest_push
from sessions.model import validate_session
from sessions.receiver import SYNC_MAX_SESSIONS
from sessions.settings import DEFAULT_PUSH_DEADLINE_SECONDS, SessionLimits, Settings, StorageConnection
from sessions.storage import SessionStore
from sessions.storage.connection import table_service
from sessions.storage.entities import TableWrite, session_entity
from sessions.storage.tables import plan_transactions
from tools.simulate import generate_sessions

PROJECT = Path(__file__).resolve().parent.parent
BENCH_KEY = "bench-key-not-a-secret"
# The served receiver's deadline in part 1 (its default is DEFAULT_PUSH_DEADLINE_SECONDS).
HTTP_DEADLINE_SECONDS = 120.0
# With the default deadline, how long the receiver stores before it hands a push to the background
# (sessions/receiver.py keeps a quarter of the deadline, at most 2.5 s, back for the handoff).
SYNC_BUDGET_SECONDS = DEFAULT_PUSH_DEADLINE_SECONDS - min(DEFAULT_PUSH_DEADLINE_SECONDS * 0.25, 2.5)
# The methods of part 1, in the order they are printed.
METHODS = ("floor", "naive", "before", "after", "before_resent", "after_resent", "http")
LABELS = {
    "floor": "floor   SDK, 100/transaction",
    "naive": "naive   one upsert each",
    "before": "before  upserts, no index",
    "after": "after   ingest_push",
    "before_resent": "before  same push re-sent",
    "after_resent": "after   same push re-sent",
    "http": "after   over HTTP (200)",
}


@dataclass
class Sample:
    """One timed run: wall seconds, CPU seconds of the process that did the work, its requests."""

    wall: float
    cpu: float
    requests: Requests | None = None


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

    @property
    def requests(self) -> Requests | None:
        """The requests of the run whose total is the median (they are the same run to run
        unless a request was retried)."""
        counted = sorted((s.requests for s in self.samples if s.requests is not None), key=lambda r: r.total)
        return counted[(len(counted) - 1) // 2] if counted else None

    @property
    def request_range(self) -> tuple[int, int] | None:
        totals = [s.requests.total for s in self.samples if s.requests is not None]
        return (min(totals), max(totals)) if totals else None


class Bench:
    """The benchmark's shared state: one Azurite (maybe behind a latency proxy), fresh tables per run."""

    def __init__(self, connection_string: str) -> None:
        self.connection_string = connection_string
        self.service = table_service(StorageConnection(connection_string=connection_string))

    def fresh_settings(self) -> Settings:
        """Settings whose every table, container and queue is new, so that no run sees another's."""
        suffix = uuid.uuid4().hex[:12]
        return Settings(
            api_keys=(BENCH_KEY,),
            storage=StorageConnection(connection_string=self.connection_string),
            sessions_table=f"Bench{suffix}",
            rejected_table=f"BenchRejected{suffix}",
            session_index_table=f"BenchIndex{suffix}",
            pushes_table=f"BenchPushes{suffix}",
            raw_archive_container=f"bench-{suffix}",
            push_queue=f"bench-{suffix}",
        )

    def drop(self, settings: Settings) -> None:
        """Delete a run's tables, so that the in-memory Azurite does not grow run after run."""
        for table in (
            settings.sessions_table,
            settings.rejected_table,
            settings.session_index_table,
            settings.pushes_table,
        ):
            with suppress(Exception):
                self.service.delete_table(table)

    @contextmanager
    def counted_store(self) -> Iterator[tuple[SessionStore, RequestCounter, Settings]]:
        """A SessionStore as the receiver builds it, its tables created, its requests counted."""
        settings = self.fresh_settings()
        counter = RequestCounter(
            {
                settings.sessions_table: "sessions",
                settings.session_index_table: "index",
                settings.rejected_table: "quarantine",
            }
        )
        store = SessionStore(
            counting_table_service(self.connection_string, counter),
            sessions_table=settings.sessions_table,
            rejected_table=settings.rejected_table,
            index_table=settings.session_index_table,
        )
        store.ensure_tables()
        counter.take()
        try:
            yield store, counter, settings
        finally:
            store.close()
            self.drop(settings)

    def floor(self, body: bytes) -> dict[str, Sample]:
        """The same entities, 100 per transaction, one transaction after the other."""

        def write_all(table: TableClient, writes: list[TableWrite]) -> None:
            for batch in plan_transactions(writes):
                table.submit_transaction([("upsert", write.entity) for write in batch])

        return {"floor": self._straight(body, write_all)}

    def naive(self, body: bytes) -> dict[str, Sample]:
        """One upsert request per entity."""

        def write_all(table: TableClient, writes: list[TableWrite]) -> None:
            for write in writes:
                table.upsert_entity(write.entity)

        return {"naive": self._straight(body, write_all)}

    def _straight(self, body: bytes, write_all: Callable[[TableClient, list[TableWrite]], None]) -> Sample:
        """The push's entities (built before timing) written straight with the SDK, timed and counted."""
        writes = entities(body)
        settings = self.fresh_settings()
        counter = RequestCounter({settings.sessions_table: "sessions"})
        service = counting_table_service(self.connection_string, counter)
        try:
            table = service.create_table(settings.sessions_table)
            counter.take()
            with measured() as sample:
                write_all(table, writes)
            sample.requests = counter.take()
        finally:
            service.close()
            self.drop(settings)
        return sample

    def before(self, body: bytes) -> dict[str, Sample]:
        """What the receiver did before identity, twice on the same tables: new, then re-sent."""
        samples: dict[str, Sample] = {}
        with self.counted_store() as (store, counter, _):
            for name in ("before", "before_resent"):
                with measured() as sample:
                    written = upsert_push(body, store)
                sample.requests = counter.take()
                samples[name] = sample
                assert written == body_sessions(body), (name, written)
        return samples

    def after(self, body: bytes) -> dict[str, Sample]:
        """The receiver's ingest, twice on the same tables: new sessions, then the same re-sent."""
        samples: dict[str, Sample] = {}
        size = body_sessions(body)
        with self.counted_store() as (store, counter, _):
            for name in ("after", "after_resent"):
                push_id = f"bench-{uuid.uuid4().hex[:8]}"
                with measured() as sample:
                    result = ingest_push(body, store, push_id=push_id, received_at=datetime.now(UTC))
                sample.requests = counter.take()
                samples[name] = sample
                assert result.stored == result.received == size, result
                expected = size if name == "after_resent" else 0
                assert result.unchanged == expected and not result.rejections, (name, result)
        return samples

    def over_http(self, body: bytes, peaks: list[int]) -> dict[str, Sample]:
        """A POST to a fresh `python -m sessions serve`; CPU and peak RSS are the server's.

        Its deadline is raised to HTTP_DEADLINE_SECONDS, so that the synchronous path is timed whole
        even when a busy machine would pass the default (the push would be answered 202 and
        finished in the background: part 2 times that path)."""
        settings = replace(self.fresh_settings(), push_deadline_seconds=HTTP_DEADLINE_SECONDS)
        served = start_receiver(receiver_environment(settings), keep_lines=False)
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
            peaks.append(served.peak_rss_bytes())
            return {"http": Sample(wall, served.cpu_seconds() - started_cpu)}
        finally:
            served.stop()
            self.drop(settings)


def entities(body: bytes) -> list[TableWrite]:
    """The entities of a push's sessions (for the floor and naive writers, built before timing)."""
    received = datetime.now(UTC)
    limits = SessionLimits()
    return [
        session_entity(
            validate_session(item.value or {}, limits=limits, received_at=received),
            received_at=received,
            push_id="bench",
        )
        for item in PushBody(body)
    ]


def upsert_push(body: bytes, store: SessionStore) -> int:
    """The receiver before identity: every valid session mapped to its entity in its StartAt
    month, repeats in the push merged (the later copy wins), all written as plain upserts."""
    received = datetime.now(UTC)
    limits = SessionLimits()
    push_id = f"bench-{uuid.uuid4().hex[:8]}"
    writes: dict[tuple[str, str], TableWrite] = {}
    for item in PushBody(body):
        assert item.value is not None
        write = session_entity(
            validate_session(item.value, limits=limits, received_at=received),
            received_at=received,
            push_id=push_id,
        )
        writes[(write.partition_key, write.row_key)] = write
    failures = store.upsert_sessions(list(writes.values()))
    assert not failures, failures[:3]
    return len(writes)


def body_sessions(body: bytes) -> int:
    return PushBody(body).count()


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
    """Azurite's connection string, its tables through a latency proxy when one is asked for."""
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
    """CPU per session of read + validate + map, no I/O (best of `repeat`)."""
    count = body_sessions(body)
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        entities(body)
        best = min(best, time.process_time() - started)
    return best / count * 1e6


def interleaved(runs: int, methods: dict[str, Callable[[], dict[str, Sample]]]) -> dict[str, Figures]:
    """`runs` rounds of every method, one after the other within a round, so that a slow moment
    of the machine weighs on every method alike rather than on whichever ran then."""
    figures: dict[str, Figures] = {}
    for _ in range(runs):
        for method in methods.values():
            for name, sample in method().items():
                figures.setdefault(name, Figures()).samples.append(sample)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[100, 2000, 20000], help="N of part 1")
    parser.add_argument("--runs", type=int, default=3, help="rounds per N; the median is printed")
    parser.add_argument(
        "--runs-small", type=int, default=5, help="rounds for N <= 200 (short runs vary more)"
    )
    parser.add_argument("--naive-max", type=int, default=100, help="largest N for the naive writer")
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="one-way latency put in front of Azurite's tables (a network round trip to Table Storage)",
    )
    FloodOptions.add_arguments(parser)
    arguments = parser.parse_args(argv)
    floods = FloodOptions.from_arguments(arguments)

    started = time.perf_counter()
    machine = describe_machine()
    print(f"machine: {machine}")
    print(f"storage: {describe_storage()}, one for the whole run", end="")
    latency = arguments.latency_ms
    print(f", {latency:g} ms one-way latency in front of its tables" if latency else " (loopback)")
    print(f"load average at the start: {_load()} (other work on the machine slows every method alike)\n")
    results: dict[str, Any] = {
        "machine": machine,
        "storage": describe_storage(),
        "latency_ms": latency,
        "options": {
            name: str(value) if isinstance(value, Path) else value for name, value in vars(arguments).items()
        },
        "load_average_start": os.getloadavg(),
        "identity": {},
        "floods": None,
    }
    with Azurite() as azurite, table_endpoint(azurite, latency) as connection_string:
        bench = Bench(connection_string)
        if arguments.sizes:
            print_identity_header(arguments.runs, arguments.runs_small)
            warm_up(bench)
        for size in arguments.sizes:
            results["identity"][str(size)] = identity_at(bench, size, arguments)
        if not floods.skip:
            results["floods"] = run_floods(bench.fresh_settings, bench.drop, floods)
    results["seconds"] = time.perf_counter() - started
    results["load_average_end"] = os.getloadavg()
    print(f"benchmark run time: {results['seconds'] / 60:.1f} min; load average at the end: {_load()}")
    if arguments.json:
        arguments.json.write_text(json.dumps(results, indent=2))
    return 0


def warm_up(bench: Bench) -> None:
    """One small round of every method, not recorded: imports, connections and Azurite's own
    warm-up do not weigh on whichever method happens to run first."""
    body = json.dumps(generate_sessions(50, seed=3, months=2)).encode()
    for method in (bench.floor, bench.naive, bench.before, bench.after):
        method(body)


def describe_machine() -> str:
    cores = os.cpu_count()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{cores} cores, {memory:.0f} GiB, {platform.machine()}, {platform.system()},"
        f" Python {platform.python_version()}"
    )


def describe_storage() -> str:
    try:
        azurite = json.loads((PROJECT / "node_modules" / "azurite" / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        azurite = "?"
    return f"Azurite {azurite} in memory, azure-data-tables {version('azure-data-tables')}"


def _load() -> str:
    return " ".join(f"{load:.1f}" for load in os.getloadavg())


def print_identity_header(runs: int, runs_small: int) -> None:
    print("Part 1: the cost of identity (issue 10)")
    print(f"  median of {runs} rounds ({runs_small} for N <= 200), the methods taking turns in each round;")
    print("  every run on tables of its own; CPU is the bench process's (all threads), the server's")
    print("  for HTTP; requests per push counted on the Table client (every try of every request);")
    print(
        f"  over HTTP the server's push deadline is {HTTP_DEADLINE_SECONDS:g} s, not"
        f" {DEFAULT_PUSH_DEADLINE_SECONDS:g}, so that the 200 path is timed whole;"
    )
    print(
        f"  runs the default would have handed to the background (after {SYNC_BUDGET_SECONDS:g} s)"
        " are counted\n"
    )


def identity_at(bench: Bench, size: int, arguments: argparse.Namespace) -> dict[str, Any]:
    sessions = generate_sessions(size, seed=7, months=2)
    stations = len({session["ChargerID"] for session in sessions})
    body = json.dumps(sessions).encode()
    runs = arguments.runs_small if size <= 200 else arguments.runs
    peaks: list[int] = []
    methods: dict[str, Callable[[], dict[str, Sample]]] = {"floor": lambda: bench.floor(body)}
    if size <= arguments.naive_max:
        methods["naive"] = lambda: bench.naive(body)
    methods["before"] = lambda: bench.before(body)
    methods["after"] = lambda: bench.after(body)
    if size <= SYNC_MAX_SESSIONS:
        methods["http"] = lambda: bench.over_http(body, peaks)
    figures = interleaved(runs, methods)
    mapping = mapping_cpu_microseconds(body, repeat=3 if size > 5000 else 10)
    partitions = len({session["StartAt"][:7] for session in sessions})
    print(
        f"N = {size:,} sessions ({stations} stations, {partitions} month partitions,"
        f" {len(body) / 2**20:.2f} MiB), {runs} rounds"
    )
    return report_identity(size, figures, mapping, max(peaks) if peaks else None)


def report_identity(
    size: int, figures: dict[str, Figures], mapping_us: float, peak_rss: int | None
) -> dict[str, Any]:
    print(f"  {'method':<29} {'wall':>9} {'sessions/s':>11} {'CPU/session':>12}  requests per push")
    row: dict[str, Any] = {"sessions": size, "methods": {}}
    for name in METHODS:
        if name not in figures:
            continue
        figure = figures[name]
        counted = figure.requests
        spread = figure.request_range
        varied = f" (runs: {spread[0]}..{spread[1]})" if spread and spread[0] != spread[1] else ""
        print(
            f"  {LABELS[name]:<29} {_duration(figure.wall):>9} {size / figure.wall:>9,.0f}/s"
            f" {figure.cpu / size * 1e6:>9,.0f} us  {counted.brief() if counted else '-'}{varied}"
        )
        row["methods"][name] = {
            "wall_s": figure.wall,
            "sessions_per_s": size / figure.wall,
            "cpu_us_per_session": figure.cpu / size * 1e6,
            "requests": counted.as_json() if counted else None,
            "requests_range": list(spread) if spread else None,
            "samples": [{"wall_s": s.wall, "cpu_s": s.cpu} for s in figure.samples],
        }
    ratios = {
        "after_before_first": figures["after"].wall / figures["before"].wall,
        "after_before_resent": figures["after_resent"].wall / figures["before_resent"].wall,
        "after_before_cpu_first": figures["after"].cpu / figures["before"].cpu,
        "after_before_cpu_resent": figures["after_resent"].cpu / figures["before_resent"].cpu,
        "before_floor": figures["before"].wall / figures["floor"].wall,
        "after_floor": figures["after"].wall / figures["floor"].wall,
    }
    after_requests, before_requests = figures["after"].requests, figures["before"].requests
    resent_after, resent_before = figures["after_resent"].requests, figures["before_resent"].requests
    if after_requests and before_requests and resent_after and resent_before:
        ratios["after_before_requests_first"] = after_requests.total / before_requests.total
        ratios["after_before_requests_resent"] = resent_after.total / resent_before.total
    if "naive" in figures:
        ratios["floor_naive"] = figures["floor"].wall / figures["naive"].wall
    if "http" in figures:
        ratios["http_floor"] = figures["http"].wall / figures["floor"].wall
        slow = sum(sample.wall > SYNC_BUDGET_SECONDS for sample in figures["http"].samples)
        row["http_runs_past_default_budget"] = slow
        if slow:
            print(
                f"  over HTTP: {slow} of {len(figures['http'].samples)} runs took longer than"
                f" {SYNC_BUDGET_SECONDS:g} s (with the default deadline: answered 202, stored later)"
            )
    print(
        f"  after/before: first push {ratios['after_before_first']:.2f} wall,"
        f" {ratios['after_before_cpu_first']:.2f} CPU,"
        f" {ratios.get('after_before_requests_first', float('nan')):.2f} requests;"
        f" re-sent {ratios['after_before_resent']:.2f} wall, {ratios['after_before_cpu_resent']:.2f} CPU,"
        f" {ratios.get('after_before_requests_resent', float('nan')):.2f} requests"
    )
    print(
        f"  against the floor: before {ratios['before_floor']:.2f}, after {ratios['after_floor']:.2f}"
        + (f", after over HTTP {ratios['http_floor']:.2f}" if "http_floor" in ratios else "")
        + (f"; floor/naive {ratios['floor_naive']:.2f}" if "floor_naive" in ratios else "")
    )
    print(f"  read + validate + map alone (no I/O): {mapping_us:.1f} us/session", end="")
    print(f"; HTTP server peak RSS {peak_rss / 2**20:.0f} MiB\n" if peak_rss else "\n", flush=True)
    row["ratios"] = ratios
    row["mapping_us_per_session"] = mapping_us
    row["http_peak_rss_bytes"] = peak_rss
    return row


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


if __name__ == "__main__":
    sys.exit(main())
