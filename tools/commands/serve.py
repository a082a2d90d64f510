"""`python -m sessions serve`: the function app on localhost, as `func start` runs it.

Its HTTP routes, and its queue-triggered functions polling their queues (Azurite, locally).
"""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType
from typing import Any

from tools.cli import PROJECT


def register(commands: argparse._SubParsersAction[Any]) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the function app locally, as `func start` does",
        description="Serve every HTTP route of function_app.app on http://HOST:PORT/api/..., "
        "with the azure-functions request and response types, and run its queue-triggered "
        "functions on their queues (for machines without Core Tools).",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    serve.add_argument(
        "--port", type=int, default=7071, help="port (default: %(default)s; 0 picks a free one)"
    )
    serve.add_argument(
        "--request-timeout",
        type=_positive_seconds,
        default=30.0,
        metavar="SECONDS",
        help="how long a connection may send nothing before it is closed, or its request refused "
        "(default: %(default)g)",
    )
    serve.set_defaults(run=run)


def _positive_seconds(text: str) -> float:
    value = float(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError("must be a number of seconds greater than zero")
    return value


def run(arguments: argparse.Namespace) -> int:
    from tools.host import AddressUnavailable, describe, start_host

    try:
        server = start_host(
            arguments.host, arguments.port, project=PROJECT, request_timeout=arguments.request_timeout
        )
    except AddressUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return 1

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print(describe(server), flush=True)
    print(f"Serving on {server.base_url} (Ctrl+C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
