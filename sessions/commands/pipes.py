"""Commands whose output is piped (`export | head`) stop quietly when the reader goes away."""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable

Run = Callable[[argparse.Namespace], int]


def survives_closed_pipe(run: Run) -> Run:
    """`run`, ending with status 1 and no traceback when standard output is closed under it."""

    @functools.wraps(run)
    def guarded(arguments: argparse.Namespace) -> int:
        try:
            return run(arguments)
        except BrokenPipeError:
            # Python would complain again when it flushes standard output on exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1

    return guarded
