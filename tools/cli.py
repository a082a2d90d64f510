"""`python -m sessions`: the receiver's command line (serve it locally, and the operator tools).

Every command reads the same settings as the receiver: the environment, completed by
local.settings.json's `Values` like `func start` does (the environment wins).
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from sessions.settings import Settings, SettingsError, with_local_settings

# The project directory: where function_app.py, host.json and local.settings.json live.
PROJECT = Path(__file__).resolve().parent.parent
LOCAL_SETTINGS = PROJECT / "local.settings.json"

# What a command's `run` is: the parsed arguments in, the exit status out.
Run = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parser().parse_args(argv)
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
    """The same settings the receiver reads (local.settings.json already applied by main)."""
    return Settings.from_env(os.environ)


def _apply_local_settings(path: Path) -> None:
    for name, value in with_local_settings(os.environ, path).items():
        os.environ.setdefault(name, value)


def parser() -> argparse.ArgumentParser:
    from tools.commands import register_all

    top = argparse.ArgumentParser(
        prog="python -m sessions",
        description="ChargePilot push receiver: serve it locally, and tools for its data.",
    )
    top.add_argument(
        "--settings",
        type=Path,
        default=LOCAL_SETTINGS,
        help="local.settings.json whose Values fill in settings the environment lacks (default: %(default)s)",
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    register_all(commands)
    return top


def survives_closed_pipe(run: Run) -> Run:
    """`run`, ending with status 1 and no traceback when standard output is closed under it
    (`export | head`)."""

    @functools.wraps(run)
    def guarded(arguments: argparse.Namespace) -> int:
        try:
            return run(arguments)
        except BrokenPipeError:
            # Python would complain again when it flushes standard output on exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1

    return guarded
