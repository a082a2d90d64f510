"""`python -m sessions push`: act as ChargePilot against any endpoint (check a dev deployment first)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from tools.cli import survives_closed_pipe
from tools.push_client import (
    DEFAULT_TIMEOUT_SECONDS,
    PushAnswer,
    PushStatus,
    check_url,
    send_push,
    sends_key_in_clear,
)
from tools.simulate import DEFAULT_START, iter_sessions

DEFAULT_KEY_ENV = "CHARGEPILOT_KEY"
DEFAULT_BATCH = 1000


def register(commands: argparse._SubParsersAction[Any]) -> None:
    push = commands.add_parser(
        "push",
        help="send sessions to a receiver as ChargePilot does (a file, or generated ones)",
        description="POST pushes as ChargePilot does, with the key in the Ocp-Apim-Subscription-Key "
        "header, and print each answer. Each FILE is sent as it is, as one push; --generate N sends "
        "N realistic sessions instead.",
        epilog=f"Exit status: {PushStatus.TAKEN:d} every push taken with no rejected session; "
        f"{PushStatus.REJECTED:d} an answer lists rejected sessions; {PushStatus.NOT_TAKEN:d} an "
        f"answer was not 2xx, or the endpoint could not be reached; {PushStatus.USAGE:d} wrong usage. "
        f"The key: --key-env NAME reads it from the environment variable NAME (default "
        f"{DEFAULT_KEY_ENV}), which keeps it out of shell history and process lists.",
    )
    push.add_argument("--url", required=True, help="the endpoint, e.g. http://localhost:7071/api/sessions")
    key = push.add_mutually_exclusive_group()
    key.add_argument("--key", help="the API key (visible in the process list: prefer --key-env)")
    key.add_argument(
        "--key-env",
        metavar="NAME",
        help=f"read the API key from the environment variable NAME (default: {DEFAULT_KEY_ENV})",
    )
    push.add_argument("files", nargs="*", type=Path, metavar="FILE", help="push bodies to send (- for stdin)")
    push.add_argument("--generate", type=int, metavar="N", help="send N generated sessions instead of files")
    push.add_argument("--seed", type=int, help="seed of --generate: the same seed, the same sessions")
    push.add_argument(
        "--start",
        type=date.fromisoformat,
        default=DEFAULT_START.date(),
        metavar="YYYY-MM-DD",
        help="first UTC day of the generated sessions (default: %(default)s)",
    )
    push.add_argument("--months", type=int, default=1, help="months the generated sessions span (default: 1)")
    push.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH,
        metavar="N",
        help="generated sessions per push (default: %(default)s)",
    )
    push.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        help="seconds to wait for each answer (default: %(default)g)",
    )
    push.set_defaults(run=survives_closed_pipe(run))


def run(arguments: argparse.Namespace) -> int:
    try:
        url = check_url(arguments.url)
        key = _key(arguments)
        _check_what_to_send(arguments)
        # Every file is read before anything is sent: an unreadable one stops the whole run.
        pushes = list(_file_pushes(arguments.files)) if arguments.files else None
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return PushStatus.USAGE
    if sends_key_in_clear(url):
        print(
            "warning: plain http to another machine: the key crosses the network unencrypted", file=sys.stderr
        )

    answers: list[PushAnswer] = []
    for label, body in pushes if pushes is not None else _generated(arguments):
        print(f"POST {url}: {label}, {len(body):,} bytes", flush=True)
        answer = send_push(url, key, body, timeout=arguments.timeout)
        _print_answer(answer)
        answers.append(answer)
    outcome = max((answer.outcome for answer in answers), key=_severity, default=PushStatus.TAKEN)
    if len(answers) > 1:
        taken = sum(answer.outcome is PushStatus.TAKEN for answer in answers)
        rejected = sum(answer.outcome is PushStatus.REJECTED for answer in answers)
        print(
            f"{len(answers)} pushes: {taken} taken in full, {rejected} with rejected sessions, "
            f"{len(answers) - taken - rejected} not taken"
        )
    return outcome


def _key(arguments: argparse.Namespace) -> str:
    if arguments.key is not None:
        key = str(arguments.key)
        if not key.strip():
            raise ValueError("--key is empty")
        return key
    name = arguments.key_env or DEFAULT_KEY_ENV
    key = os.environ.get(name, "")
    if not key.strip():
        raise ValueError(f"no API key: set the environment variable {name}, or pass --key-env NAME or --key")
    return key


def _check_what_to_send(arguments: argparse.Namespace) -> None:
    if arguments.files and arguments.generate is not None:
        raise ValueError("give FILEs or --generate N, not both")
    if not arguments.files and arguments.generate is None:
        raise ValueError("nothing to send: give FILEs or --generate N")
    if arguments.generate is None and arguments.seed is not None:
        raise ValueError("--seed goes with --generate")
    if arguments.generate is not None and arguments.generate < 0:
        raise ValueError("--generate needs a count of 0 or more")
    if arguments.batch_size < 1 or arguments.months < 1:
        raise ValueError("--batch-size and --months must be at least 1")


def _file_pushes(paths: list[Path]) -> Iterator[tuple[str, bytes]]:
    for path in paths:
        if str(path) == "-":
            yield "standard input", sys.stdin.buffer.read()
        else:
            yield str(path), path.read_bytes()


def _generated(arguments: argparse.Namespace) -> Iterator[tuple[str, bytes]]:
    count = int(arguments.generate)
    start = datetime.combine(arguments.start, datetime.min.time(), tzinfo=UTC)
    sessions = iter_sessions(count, arguments.seed, start=start, months=arguments.months)
    batch: list[dict[str, Any]] = []
    sent = 0
    for session in sessions:
        batch.append(session)
        if len(batch) == arguments.batch_size:
            yield _generated_push(batch, sent, count)
            sent += len(batch)
            batch = []
    if batch or count == 0:
        yield _generated_push(batch, sent, count)


def _generated_push(batch: list[dict[str, Any]], sent: int, count: int) -> tuple[str, bytes]:
    label = f"{len(batch)} generated sessions"
    if len(batch) < count:
        label += f" ({sent + 1}-{sent + len(batch)} of {count})"
    return label, json.dumps(batch).encode("utf-8")


def _print_answer(answer: PushAnswer) -> None:
    if answer.status is None:
        print(f"not sent: {answer.error}", flush=True)
        return
    document = answer.document
    counts = ""
    if isinstance(document, dict) and all(name in document for name in ("received", "stored", "rejected")):
        counts = (
            f": {document['received']} received, {document['stored']} stored, {document['rejected']} rejected"
        )
    print(f"HTTP {answer.status}{counts}", flush=True)
    print(
        json.dumps(document, indent=2, ensure_ascii=False) if document is not None else answer.body,
        flush=True,
    )


def _severity(status: PushStatus) -> int:
    return {PushStatus.TAKEN: 0, PushStatus.REJECTED: 1, PushStatus.NOT_TAKEN: 2, PushStatus.USAGE: 3}[status]
