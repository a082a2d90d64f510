"""The app's own cold start, against the push deadline: what a first push after an idle spell costs
before the Functions platform's share (instance, package, host), which only Azure can show.

    .venv/bin/python -m devtools.cold_start            # 5 runs, an hourly push of 100 sessions
    .venv/bin/python -m devtools.cold_start --runs 1 --json cold.json

Each run starts a fresh `python -m sessions serve` (a new process: nothing imported, no client,
no key fingerprint computed), against one in-memory Azurite whose tables exist already (as Bicep
makes them in Azure), and times: process start until it serves (imports, function_app loaded),
the first push (the receiver built: settings, keys, clients, first connections), and the same
push size again once warm. The push deadline (PUSH_DEADLINE_SECONDS) starts when the function
is called, so the first push's own time is what the deadline sees of a cold start.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import requests

from devtools.azurite import Azurite
from devtools.served import receiver_environment, start_receiver
from sessions.keys import KEY_HEADER
from sessions.settings import DEFAULT_PUSH_DEADLINE_SECONDS, Settings, StorageConnection
from tools.simulate import generate_sessions

KEY = "cold-start-key-not-a-secret"


def one_run(settings: Settings, body: bytes) -> dict[str, float]:
    """Seconds to serve, for the first push and for a warm one, of one fresh receiver."""
    started = time.perf_counter()
    served = start_receiver(receiver_environment(settings), keep_lines=False)
    try:
        serving = time.perf_counter() - started
        timings = {"serving_s": serving}
        for name in ("first_push_s", "warm_push_s"):
            sent = time.perf_counter()
            response = requests.post(
                served.sessions_url,
                data=body,
                headers={KEY_HEADER: KEY, "Content-Type": "application/json"},
                timeout=120,
            )
            timings[name] = time.perf_counter() - sent
            assert response.status_code == 200, response.text[:300]
        return timings
    finally:
        served.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.cold_start", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh receivers to start (medians printed)")
    parser.add_argument("--sessions", type=int, default=100, help="sessions per push (an hourly push)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    arguments = parser.parse_args(argv)
    body = json.dumps(generate_sessions(arguments.sessions, seed=11, months=2)).encode()
    runs: list[dict[str, float]] = []
    with Azurite() as azurite:
        settings = Settings(
            api_keys=(KEY,),
            storage=StorageConnection(connection_string=azurite.connection_string),
            push_queue="pushes-to-store",
        )
        one_run(settings, body)  # creates the tables, container and queue, as Bicep does in Azure
        for _ in range(arguments.runs):
            runs.append(one_run(replace(settings), body))
    medians = {name: statistics.median(run[name] for run in runs) for name in runs[0]}
    print(f"{arguments.runs} fresh receivers, a push of {arguments.sessions} sessions; medians:")
    print(f"  process start until it serves:      {medians['serving_s']:.2f} s")
    print(f"  first push (the receiver built):    {medians['first_push_s']:.2f} s")
    print(f"  the same push, warm:                {medians['warm_push_s']:.2f} s")
    cold = medians["serving_s"] + medians["first_push_s"] - medians["warm_push_s"]
    print(
        f"  the app's own cold start: {cold:.2f} s, against a push deadline of"
        f" {DEFAULT_PUSH_DEADLINE_SECONDS:g} s (of which the first push's share counts:"
        f" {medians['first_push_s'] - medians['warm_push_s']:.2f} s)"
    )
    if arguments.json:
        arguments.json.write_text(json.dumps({"runs": runs, "medians": medians, "app_cold_start_s": cold}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
