"""Helpers for the operator tools' tests: run `python -m sessions ...` and store sessions for them."""

from __future__ import annotations

import csv
import io
import itertools
import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from devtools.served import NO_LOCAL_SETTINGS, PROJECT, receiver_environment
from sessions.ingest import ingest_push
from sessions.settings import APP_SETTINGS, Setting, Settings
from sessions.storage import SessionStore
from tests.helpers.pushes import as_body
from tools.cli import main

_pushes = itertools.count(1)


@dataclass(frozen=True)
class Ran:
    """What a command did: its exit status and what it printed."""

    status: int
    out: str
    err: str


def run_tool(
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *arguments: str,
) -> Ran:
    """`python -m sessions ARGUMENTS` in this process, configured for the test's tables."""
    for name in list(os.environ):
        if name in APP_SETTINGS or name.startswith(Setting.STORAGE):
            monkeypatch.delenv(name)
    for name, value in receiver_environment(settings).items():
        if name in APP_SETTINGS or name.startswith(Setting.STORAGE):
            monkeypatch.setenv(name, value)
    capsys.readouterr()
    try:
        status = main(["--settings", str(NO_LOCAL_SETTINGS), *arguments])
    except SystemExit as stop:  # argparse's usage errors
        status = int(stop.code or 0)
    captured = capsys.readouterr()
    return Ran(status, captured.out, captured.err)


def run_tool_process(env: dict[str, str], *arguments: str, timeout: float = 120) -> Ran:
    """`python -m sessions ARGUMENTS` as its own process, as an operator runs it."""
    done = subprocess.run(
        [sys.executable, "-m", "sessions", "--settings", str(NO_LOCAL_SETTINGS), *arguments],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
    )
    return Ran(done.returncode, done.stdout, done.stderr)


def store_sessions(store: SessionStore, sessions: Sequence[dict[str, Any]], *, batch: int = 1000) -> None:
    """Store sessions through the receiver's own use-case, in pushes of `batch`."""
    for start in range(0, len(sessions), batch):
        result = ingest_push(
            as_body(list(sessions[start : start + batch])), store, push_id=f"push-{next(_pushes)}"
        )
        assert not result.rejections, result.to_json()


def csv_rows(text: str, *, delimiter: str = ",") -> list[dict[str, str]]:
    """The rows of a CSV export (byte-order mark dropped)."""
    return list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"), newline=""), delimiter=delimiter))


def column(rows: Iterable[dict[str, str]], name: str) -> list[str]:
    return [row[name] for row in rows]
