"""One deadline for a whole answer: every storage call made under it gets what time is left.

A push is answered within PUSH_DEADLINE_SECONDS whatever the storage does: each request to
storage is given at most the remaining time as its connect and read timeout, and none is started
(or retried) once the deadline has passed. The deadline travels with the work in a context
variable, so that the storage code needs no extra argument, and `carry` hands it to the threads
that write transactions in parallel.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

_current: contextvars.ContextVar[float | None] = contextvars.ContextVar("deadline", default=None)

P = ParamSpec("P")
R = TypeVar("R")


class DeadlineExceeded(Exception):
    """The time for this answer is up: no further storage request is made for it."""


@contextmanager
def within(seconds: float) -> Iterator[None]:
    """Run the block under a deadline `seconds` from now (or the enclosing one, if sooner)."""
    expires = time.monotonic() + seconds
    enclosing = _current.get()
    token = _current.set(expires if enclosing is None else min(expires, enclosing))
    try:
        yield
    finally:
        _current.reset(token)


def remaining() -> float | None:
    """Seconds left before the current deadline (negative once passed), or None without one."""
    expires = _current.get()
    return None if expires is None else expires - time.monotonic()


def check() -> None:
    """Raise DeadlineExceeded when the current deadline has passed."""
    left = remaining()
    if left is not None and left <= 0:
        raise DeadlineExceeded("the deadline for this answer has passed")


def carry(function: Callable[P, R]) -> Callable[P, R]:
    """`function` bound to the caller's context (its deadline), to run in another thread."""
    context = contextvars.copy_context()

    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        # A context can be entered by one thread at a time: each call runs in a copy of its own.
        return context.copy().run(function, *args, **kwargs)

    return run
