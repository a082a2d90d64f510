"""The subcommands of `python -m sessions`, one module each.

Each module has `register(commands)`, which adds its parser and sets `run` to a function
taking the parsed arguments and returning the exit status.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

# In the order `--help` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "sessions.commands.serve",
    "sessions.commands.push",
    "sessions.commands.export",
    "sessions.commands.report",
    "sessions.commands.rejected",
    "sessions.commands.replay",
)


def register_all(commands: argparse._SubParsersAction[Any]) -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(commands)
