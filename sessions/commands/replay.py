"""`python -m sessions replay`: re-ingest the archived pushes of a period, idempotently.

Each archived body goes through the same ingest as a live push, under its original push id and
arrival time, so replaying twice (or replaying pushes that were stored already) leaves the tables
as they were: the same session is one entity, the same rejected session one quarantine entry.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sessions.cli import load_settings


def register(commands: argparse._SubParsersAction[Any]) -> None:
    replay = commands.add_parser(
        "replay",
        help="re-ingest the archived raw pushes of a period (idempotent)",
        description="Re-ingest every push archived in the raw archive (RAW_ARCHIVE_CONTAINER) that "
        "arrived in the period, oldest first, through the same validation and storage as a live "
        "push. Safe to repeat: sessions and quarantine entries are written idempotently.",
    )
    replay.add_argument(
        "--from",
        dest="start",
        required=True,
        type=_start_of,
        help="first arrival to replay: a UTC date (2025-01-09) or an ISO 8601 time",
    )
    replay.add_argument(
        "--to",
        dest="end",
        required=True,
        type=_end_of,
        help="last arrival to replay: a UTC date (the whole day is included) or an ISO 8601 time (excluded)",
    )
    replay.add_argument(
        "--dry-run", action="store_true", help="list the archived pushes of the period, replay nothing"
    )
    replay.set_defaults(run=run)


@dataclass
class ReplayTally:
    """What a replay did, push by push, for its closing line."""

    pushes: int = 0
    invalid: int = 0
    received: int = 0
    stored: int = 0
    rejected: int = 0


def run(arguments: argparse.Namespace) -> int:
    from sessions.archive import RawArchive
    from sessions.ingest import ingest_push
    from sessions.model import InvalidPush
    from sessions.store import SessionStore, StorageUnavailable

    start: datetime = arguments.start
    end: datetime = arguments.end
    if end <= start:
        print("error: --to must be after --from", file=sys.stderr)
        return 2
    settings = load_settings()
    archive = RawArchive.connect(settings)
    store = None if arguments.dry_run else SessionStore.connect(settings)
    tally = ReplayTally()
    try:
        for push in archive.pushes_between(start, end):
            tally.pushes += 1
            if store is None:
                print(f"{push.name}  {push.metadata.get('size', '?')} bytes  {push.outcome}")
                continue
            try:
                result = ingest_push(
                    archive.body_of(push), store, push_id=push.push_id, received_at=push.received_at
                )
            except InvalidPush as error:
                tally.invalid += 1
                print(f"{push.name}  not a push: {error}")
                continue
            tally.received += result.received
            tally.stored += result.stored
            tally.rejected += len(result.rejections)
            print(
                f"{push.name}  received {result.received}, stored {result.stored}, "
                f"rejected {len(result.rejections)}"
            )
    except StorageUnavailable as error:
        print(f"error: storage unavailable, replay stopped (run it again): {error}", file=sys.stderr)
        return 1
    finally:
        archive.close()
        if store is not None:
            store.close()
    period = f"from {start.isoformat()} to {end.isoformat()}"
    if store is None:
        print(f"found {tally.pushes} archived pushes {period} (dry run: nothing replayed)")
    else:
        print(
            f"replayed {tally.pushes} archived pushes {period}: {tally.received} sessions received, "
            f"{tally.stored} stored, {tally.rejected} rejected; {tally.invalid} pushes were not a push"
        )
    return 0


def _start_of(text: str) -> datetime:
    return _moment(text, day_end=False)


def _end_of(text: str) -> datetime:
    return _moment(text, day_end=True)


def _moment(text: str, *, day_end: bool) -> datetime:
    """A UTC instant from a date (its start, or the start of the next day) or an ISO 8601 time."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            if day_end:
                day += timedelta(days=1)
            return datetime.combine(day, time(), tzinfo=UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date or ISO 8601 time: {text!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
