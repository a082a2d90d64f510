"""Part 2 of the benchmark (devtools/bench.py): the 202 path and the flood (issue 11), over HTTP.

Each push goes to a fresh `python -m sessions serve` of its own (which also runs the background
queue function, as `func start` would) over tables, archive container and queue of its own, so
that the server's peak RSS (VmHWM) and its log belong to that push alone:
  valid     sessions above SYNC_MAX_SESSIONS: time to the 202, then time until the background
            function logged the push stored (polled, bounded), and the sessions counted in the
            table afterwards; with --resend-valid, the same push re-sent (all unchanged), timed
            the same way on the same server (its peak RSS is then that of both pushes);
  flood     tiny invalid objects {"x":N}, more than MAX_PUSH_SESSIONS of them: answered 413;
  invalid   sessions that each end before they start: 202, then quarantined in the background
            (one by one up to the quarantine's bound per push, then one entry for the rest).
For each: the answer's status, time and size, the server's CPU and peak RSS, and the bytes and
lines the server logged from the request until the push was done.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import requests
from azure.core.exceptions import ResourceNotFoundError

from devtools.served import ServedReceiver, receiver_environment, start_receiver
from sessions.receiver import SYNC_MAX_SESSIONS
from sessions.settings import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_PUSH_SESSIONS, Settings
from sessions.storage.connection import table_service
from tools.simulate import generate_sessions

KEY_HEADER = "Ocp-Apim-Subscription-Key"
BENCH_KEY = "bench-key-not-a-secret"
# How often the server's log is looked at while waiting for the background function.
_POLL_SECONDS = 0.1


@dataclass(frozen=True)
class FloodOptions:
    """What part 2 sends (the defaults: what issue 11 names, about 15 MiB each)."""

    valid_sessions: int = 60_000
    flood_mib: float = 15.0
    invalid_sessions: int = 60_000
    background_timeout: float = 600.0
    resend_valid: bool = False
    skip: bool = False

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("part 2: the 202 path and the flood")
        group.add_argument(
            "--valid-sessions", type=int, default=60_000, help="valid sessions in the 202 push"
        )
        group.add_argument(
            "--flood-mib", type=float, default=15.0, help='MiB of {"x":N} objects in the flood'
        )
        group.add_argument("--invalid-sessions", type=int, default=60_000, help="sessions, each invalid")
        group.add_argument(
            "--background-timeout", type=float, default=600.0, help="longest wait for the background (s)"
        )
        group.add_argument(
            "--resend-valid",
            action="store_true",
            help="send the valid push again once stored (all unchanged; as long again or longer)",
        )
        group.add_argument("--skip-floods", action="store_true", help="part 1 only")

    @classmethod
    def from_arguments(cls, arguments: argparse.Namespace) -> FloodOptions:
        return cls(
            valid_sessions=arguments.valid_sessions,
            flood_mib=arguments.flood_mib,
            invalid_sessions=arguments.invalid_sessions,
            background_timeout=arguments.background_timeout,
            resend_valid=arguments.resend_valid,
            skip=arguments.skip_floods,
        )


@dataclass
class PushFigures:
    """What one push over HTTP cost, from the sender's side and the server's."""

    name: str
    items: int
    body_bytes: int
    status: int = 0
    answer: str = ""  # the answer's error code, or its status word
    answer_s: float = 0.0
    answer_bytes: int = 0
    done_s: float | None = None  # from the POST until the background logged the push done
    outcome: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    checked: dict[str, int] = field(default_factory=dict)  # counted in storage afterwards
    server_cpu_s: float = 0.0
    peak_rss_bytes: int = 0
    log_bytes: int = 0
    log_lines: int = 0


def run_floods(
    fresh_settings: Callable[[], Settings], drop: Callable[[Settings], None], options: FloodOptions
) -> dict[str, Any]:
    print("Part 2: the 202 path and the flood (issue 11), over HTTP")
    print("  each push to a fresh `python -m sessions serve` (background queue function included);")
    print(
        f"  SYNC_MAX_SESSIONS {SYNC_MAX_SESSIONS:,}, MAX_PUSH_SESSIONS {DEFAULT_MAX_PUSH_SESSIONS:,},"
        f" body limit {DEFAULT_MAX_BODY_BYTES / 2**20:.0f} MiB;"
    )
    print("  log = what the server printed from the request until the push was done\n", flush=True)
    figures: list[PushFigures] = []
    valid = json.dumps(generate_sessions(options.valid_sessions, seed=11, months=2)).encode()
    figures += _valid_and_resent(fresh_settings, drop, valid, options)
    flood, flood_items = tiny_objects(int(options.flood_mib * 2**20))
    figures.append(_one_push(fresh_settings, drop, 'flood of {"x":N}', flood, flood_items, options))
    invalid = json.dumps(each_invalid(options.invalid_sessions)).encode()
    figures.append(
        _one_push(fresh_settings, drop, "sessions, each invalid", invalid, options.invalid_sessions, options)
    )
    print_table(figures)
    return {"pushes": [asdict(figure) for figure in figures]}


def tiny_objects(limit_bytes: int) -> tuple[bytes, int]:
    """`[{"x":0},{"x":1},...]` as long as it stays within `limit_bytes`; and how many there are."""
    parts: list[str] = []
    size, number = 2, 0
    while True:
        part = f'{{"x":{number}}}'
        if size + len(part) + 1 > limit_bytes:
            break
        parts.append(part)
        size += len(part) + 1
        number += 1
    return ("[" + ",".join(parts) + "]").encode(), number


def each_invalid(count: int) -> list[dict[str, Any]]:
    """Realistic sessions, each ending before it starts (its StartAt and EndAt swapped)."""
    sessions = generate_sessions(count, seed=13, months=2)
    for session in sessions:
        session["StartAt"], session["EndAt"] = session["EndAt"], session["StartAt"]
    return sessions


def _valid_and_resent(
    fresh_settings: Callable[[], Settings],
    drop: Callable[[Settings], None],
    body: bytes,
    options: FloodOptions,
) -> list[PushFigures]:
    settings = fresh_settings()
    served = _serve(settings)
    try:
        first = _push(served, "valid sessions (202)", body, options.valid_sessions, options)
        first.checked["sessions_in_table"] = _count_entities(settings, settings.sessions_table)
        if not options.resend_valid:
            return [first]
        resent = _push(served, "the same push re-sent", body, options.valid_sessions, options)
        resent.checked["sessions_in_table"] = _count_entities(settings, settings.sessions_table)
        return [first, resent]
    finally:
        served.stop()
        drop(settings)


def _one_push(
    fresh_settings: Callable[[], Settings],
    drop: Callable[[Settings], None],
    name: str,
    body: bytes,
    items: int,
    options: FloodOptions,
) -> PushFigures:
    settings = fresh_settings()
    served = _serve(settings)
    try:
        figures = _push(served, name, body, items, options)
        figures.checked["quarantine_entries"] = _count_entities(
            settings, settings.rejected_table, "PartitionKey eq 'rejected' and RowKey lt '~'"
        )
        figures.checked["sessions_in_table"] = _count_entities(settings, settings.sessions_table)
        return figures
    finally:
        served.stop()
        drop(settings)


def _serve(settings: Settings) -> ServedReceiver:
    served = start_receiver(receiver_environment(settings), keep_lines=True)
    health = requests.get(served.health_url, timeout=60)  # warm up: imports done, tables made
    assert health.status_code == 200, health.text
    return served


def _push(served: ServedReceiver, name: str, body: bytes, items: int, options: FloodOptions) -> PushFigures:
    """POST the body; wait for its log line, and for a 202 until the background is done."""
    figures = PushFigures(name, items, len(body))
    mark = len(served.lines)
    started_cpu = served.cpu_seconds()
    started = time.perf_counter()
    response = requests.post(
        served.sessions_url,
        data=body,
        headers={KEY_HEADER: BENCH_KEY, "Content-Type": "application/json"},
        timeout=600,
    )
    figures.answer_s = time.perf_counter() - started
    figures.status = response.status_code
    figures.answer_bytes = len(response.content)
    answer = response.json()
    figures.answer = str(answer.get("error") or answer.get("status") or response.reason)
    line = _wait_for_event(served, mark, lambda event: event.get("event") == "push", 30.0)
    figures.outcome = str(line.get("outcome")) if line else None
    figures.counts = _counts_of(line)
    if response.status_code == 202:
        push_id = str(answer["push_id"])
        finished = _wait_for_event(
            served,
            mark,
            lambda event: (
                event.get("event") == "push_finished"
                and event.get("push_id") == push_id
                and event.get("outcome") in ("stored", "poisoned")
            ),
            options.background_timeout,
        )
        if finished is not None:
            figures.done_s = time.perf_counter() - started
            figures.outcome = str(finished.get("outcome"))
            figures.counts = _counts_of(finished)
    elif response.status_code == 200:
        figures.done_s = figures.answer_s
    time.sleep(0.2)  # the last lines on their way through the pipe
    figures.server_cpu_s = served.cpu_seconds() - started_cpu
    figures.peak_rss_bytes = served.peak_rss_bytes()
    printed = served.lines[mark:]
    figures.log_lines = len(printed)
    figures.log_bytes = sum(len(text.encode("utf-8")) + 1 for text in printed)
    print(
        f"  {name}: {response.status_code} {figures.answer} after {figures.answer_s:.2f} s"
        + (f", done after {figures.done_s:.1f} s" if figures.done_s is not None else "")
        + f" ({figures.outcome})",
        flush=True,
    )
    return figures


def _wait_for_event(
    served: ServedReceiver, mark: int, wanted: Callable[[dict[str, Any]], bool], timeout: float
) -> dict[str, Any] | None:
    """The first event logged since `mark` that is `wanted`, waiting at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    seen = mark
    while True:
        lines = served.lines
        for text in lines[seen:]:
            event = _event_of(text)
            if event is not None and wanted(event):
                return event
        seen = len(lines)
        if time.monotonic() > deadline or served.process.poll() is not None:
            return None
        time.sleep(_POLL_SECONDS)


def _event_of(text: str) -> dict[str, Any] | None:
    """The JSON event of a log line (`<time> <LEVEL> sessions: {...}`), or None."""
    start = text.find("{")
    if start < 0:
        return None
    try:
        event = json.loads(text[start:])
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


def _counts_of(event: dict[str, Any] | None) -> dict[str, int]:
    names = ("received", "stored", "updated", "unchanged", "duplicates", "superseded", "rejected")
    return {name: int(event[name]) for name in names if event and isinstance(event.get(name), int)}


def _count_entities(settings: Settings, table_name: str, query: str | None = None) -> int:
    """Entities in a table (keys only, page by page), counted after the push."""
    assert settings.storage is not None
    service = table_service(settings.storage)
    try:
        table = service.get_table_client(table_name)
        if query is None:
            pages = table.list_entities(select=["RowKey"], results_per_page=1000)
        else:
            pages = table.query_entities(query, select=["RowKey"], results_per_page=1000)
        try:
            return sum(1 for _ in pages)
        except ResourceNotFoundError:  # a table the push never made holds nothing
            return 0
    finally:
        service.close()


def print_table(figures: list[PushFigures]) -> None:
    print(
        f"\n  {'push':<24} {'items':>9} {'body':>9} {'answer':>26} {'answer':>8}"
        f" {'done':>9} {'server':>8} {'peak':>8} {'log':>9} {'log':>6}"
    )
    print(
        f"  {'':<24} {'':>9} {'':>9} {'status, time':>26} {'size':>8}"
        f" {'after':>9} {'CPU':>8} {'RSS':>8} {'bytes':>9} {'lines':>6}"
    )
    for figure in figures:
        answer = f"{figure.status} {figure.answer}, {figure.answer_s:.2f} s"
        done = f"{figure.done_s:.1f} s" if figure.done_s is not None else "-"
        print(
            f"  {figure.name:<24} {figure.items:>9,} {figure.body_bytes / 2**20:>5.1f} MiB {answer:>26}"
            f" {_size(figure.answer_bytes):>8} {done:>9} {figure.server_cpu_s:>6.1f} s"
            f" {figure.peak_rss_bytes / 2**20:>4.0f} MiB {_size(figure.log_bytes):>9} {figure.log_lines:>6}"
        )
    print()
    for figure in figures:
        counts = ", ".join(f"{name} {count:,}" for name, count in figure.counts.items())
        checked = ", ".join(f"{name.replace('_', ' ')} {count:,}" for name, count in figure.checked.items())
        rate = (
            f"; {figure.items / figure.done_s:,.0f} sessions/s end to end"
            if figure.done_s and figure.status in (200, 202)
            else ""
        )
        print(f"  {figure.name}: {figure.outcome}; {counts or 'no counts'}; afterwards {checked}{rate}")
    print(flush=True)


def _size(count: int) -> str:
    if count < 10_000:
        return f"{count:,} B"
    if count < 10 * 2**20:
        return f"{count / 1024:,.0f} KiB"
    return f"{count / 2**20:,.1f} MiB"
