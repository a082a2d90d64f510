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
    "tools.commands.serve",
    "tools.commands.push",
    "tools.commands.export",
    "tools.commands.report",
    "tools.commands.rejected",
    "tools.commands.archive",
    "tools.commands.pushes",
    "tools.commands.index",
)


def register_all(commands: argparse._SubParsersAction[Any]) -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(commands)
