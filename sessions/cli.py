"""`python -m sessions`: the receiver's command line (serve it locally, and the operator tools)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from sessions.settings import Settings, SettingsError, with_local_settings

# The project directory: where function_app.py, host.json and local.settings.json live.
PROJECT = Path(__file__).resolve().parent.parent
LOCAL_SETTINGS = PROJECT / "local.settings.json"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    arguments = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # The SDK's HTTP logging would print every request to storage at INFO.
    logging.getLogger("azure").setLevel(logging.WARNING)
    try:
        _apply_local_settings(arguments.settings)
        return int(arguments.run(arguments))
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def load_settings() -> Settings:
    """The same settings the receiver reads (after local.settings.json has been applied)."""
    return Settings.from_env(os.environ)


def _apply_local_settings(path: Path) -> None:
    # Like `func start`: fill in what the environment does not set; the environment wins.
    for name, value in with_local_settings(os.environ, path).items():
        os.environ.setdefault(name, value)


def _serve(arguments: argparse.Namespace) -> int:
    from sessions.functions_host import describe, start_host

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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sessions",
        description="ChargePilot push receiver: serve it locally, and tools for its data.",
    )
    parser.add_argument(
        "--settings",
        type=Path,
        default=LOCAL_SETTINGS,
        help="local.settings.json whose Values fill in settings the environment lacks (default: %(default)s)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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
    serve.set_defaults(run=_serve)
    return parser
