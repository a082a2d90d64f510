"""`python -m sessions archive list|replay`: the raw archive of push bodies, and re-ingesting it.

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

from sessions.decoding import InvalidPush
from sessions.ingest import ingest_push
from sessions.storage import RawArchive, SessionStore, StorageUnavailable
from tools.cli import load_settings, survives_closed_pipe


def register(commands: argparse._SubParsersAction[Any]) -> None:
    archive = commands.add_parser(
        "archive",
        help="the raw archive of push bodies: list a period's pushes, or replay them",
        description="Every push body is archived (RAW_ARCHIVE_CONTAINER) before it is processed, by "
        "its UTC time of arrival. A date includes the whole UTC day; an ISO 8601 time is exact "
        "(--to excluded).",
    )
    actions = archive.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="the archived pushes that arrived in a period")
    _add_window(listing)
    listing.set_defaults(run=survives_closed_pipe(list_pushes))
    replay = actions.add_parser(
        "replay",
        help="re-ingest the archived pushes of a period (idempotent)",
        description="Re-ingest every push archived in the period, oldest first, through the same "
        "validation and storage as a live push, as of its arrival: a session stored since by a "
        "newer push is not overwritten (it is counted as skipped as older). Safe to repeat: "
        "sessions and quarantine entries are written idempotently.",
    )
    _add_window(replay)
    replay.set_defaults(run=replay_pushes)


def _add_window(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--from",
        dest="start",
        required=True,
        type=_start_of,
        help="first arrival: a UTC date (2025-01-09) or an ISO 8601 time",
    )
    parser.add_argument(
        "--to",
        dest="end",
        required=True,
        type=_end_of,
        help="last arrival: a UTC date (the whole day is included) or an ISO 8601 time (excluded)",
    )


@dataclass
class ReplayTally:
    """What a replay did, push by push, for its closing line."""

    pushes: int = 0
    invalid: int = 0
    received: int = 0
    stored: int = 0
    updated: int = 0
    superseded: int = 0
    rejected: int = 0


def list_pushes(arguments: argparse.Namespace) -> int:
    window = _window(arguments)
    if window is None:
        return 2
    archive = RawArchive.connect(load_settings())
    count = 0
    try:
        for push in archive.pushes_between(*window):
            count += 1
            size = f"{push.size:,} bytes" if push.size is not None else "? bytes"
            print(f"{push.name}  {size}")
    except StorageUnavailable as error:
        print(f"error: storage: {error}", file=sys.stderr)
        return 1
    finally:
        archive.close()
    print(f"{count} archived pushes from {window[0].isoformat()} to {window[1].isoformat()}")
    return 0


def replay_pushes(arguments: argparse.Namespace) -> int:
    window = _window(arguments)
    if window is None:
        return 2
    settings = load_settings()
    archive = RawArchive.connect(settings)
    store = SessionStore.connect(settings)
    tally = ReplayTally()
    try:
        for push in archive.pushes_between(*window):
            tally.pushes += 1
            try:
                result = ingest_push(
                    archive.body_at(push.name),
                    store,
                    push_id=push.push_id,
                    received_at=push.received_at,
                    limits=settings.limits,
                    raw_archive=push.name,
                )
            except InvalidPush as error:
                tally.invalid += 1
                print(f"{push.name}  not a push: {error}")
                continue
            tally.received += result.received
            tally.stored += result.stored
            tally.updated += result.updated
            tally.superseded += result.superseded
            tally.rejected += result.rejected
            print(
                f"{push.name}  received {result.received}, stored {result.stored} "
                f"({result.updated} updated), skipped as older {result.superseded}, "
                f"rejected {result.rejected}"
            )
    except StorageUnavailable as error:
        print(f"error: storage unavailable, replay stopped (run it again): {error}", file=sys.stderr)
        return 1
    finally:
        archive.close()
        store.close()
    print(
        f"replayed {tally.pushes} archived pushes from {window[0].isoformat()} to {window[1].isoformat()}: "
        f"{tally.received} sessions received, {tally.stored} stored ({tally.updated} updated), "
        f"{tally.superseded} skipped as older than the copy stored, {tally.rejected} rejected; "
        f"{tally.invalid} pushes were not a push"
    )
    return 0


def _window(arguments: argparse.Namespace) -> tuple[datetime, datetime] | None:
    if arguments.end <= arguments.start:
        print("error: --to must be after --from", file=sys.stderr)
        return None
    return arguments.start, arguments.end


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
