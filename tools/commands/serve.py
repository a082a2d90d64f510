"""`python -m sessions serve`: the function app's HTTP routes on localhost, as `func start` serves them."""

from __future__ import annotations

import argparse
import signal
from types import FrameType
from typing import Any

from tools.cli import PROJECT


def register(commands: argparse._SubParsersAction[Any]) -> None:
    serve = commands.add_parser(
        "serve",
        help="serve the function app's HTTP routes locally, as `func start` does",
        description="Serve every HTTP route of function_app.app on http://HOST:PORT/api/..., "
        "with the azure-functions request and response types (for machines without Core Tools).",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    serve.add_argument(
        "--port", type=int, default=7071, help="port (default: %(default)s; 0 picks a free one)"
    )
    serve.set_defaults(run=run)


def run(arguments: argparse.Namespace) -> int:
    from tools.host import describe, start_host

    server = start_host(arguments.host, arguments.port, project=PROJECT)

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
