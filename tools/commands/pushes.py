"""`python -m sessions pushes`: the record of every push, newest first; per hour or day with the
quiet hours shown; and a check for a cron job or a probe that the feed has not gone silent."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sessions.settings import Setting, Settings
from sessions.storage import StorageUnavailable
from sessions.storage.pushes import PushRecord, PushRecords
from sessions.storage.queues import MessageQueue
from tools.cli import load_settings, survives_closed_pipe

# Exit status when the newest taken push is older than --max-silence.
SILENT = 3
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([mhd])\s*$")
_UNIT = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}


def register(commands: argparse._SubParsersAction[Any]) -> None:
    pushes = commands.add_parser(
        "pushes",
        help="the pushes that arrived: when, how big, what became of them, which key they used",
        description="List the push records (one per push that passed the key check), newest first. "
        "KEY is the position of the key in CHARGEPILOT_API_KEYS and its fingerprint (never the key): "
        "during a rotation, this shows when pushes arrive with the new key.",
        epilog=f"Exit status: 0, or {SILENT} when --max-silence is given and no push was taken within "
        "it (for a cron job or a probe); 1 storage unreachable; 2 wrong usage.",
    )
    pushes.add_argument(
        "--since",
        type=_moment,
        default="24h",
        metavar="WHEN",
        help="how far back: a duration (90m, 24h, 7d) or a UTC date or ISO 8601 time (default: %(default)s)",
    )
    pushes.add_argument(
        "--limit", type=int, default=50, metavar="N", help="list at most N (default: %(default)s)"
    )
    pushes.add_argument(
        "--by", choices=("hour", "day"), help="count per hour or day instead, quiet ones shown"
    )
    pushes.add_argument("--id", metavar="PUSH_ID", help="show one push's record in full")
    pushes.add_argument(
        "--max-silence",
        type=_duration,
        metavar="DURATION",
        help=f"exit {SILENT} if the newest push taken (200 or 202) is older than this (e.g. 3h)",
    )
    pushes.set_defaults(run=survives_closed_pipe(run))


def run(arguments: argparse.Namespace) -> int:
    settings = load_settings()
    records = PushRecords.connect(settings)
    now = datetime.now(UTC)
    since: datetime = arguments.since
    try:
        found = list(
            _limited(records.newest(since), None if arguments.by or arguments.id else arguments.limit)
        )
        if arguments.id:
            return _show(found, arguments.id)
        if arguments.by:
            _print_buckets(found, since, now, arguments.by)
        else:
            _print_list(found, since)
        _print_poisoned(settings)
        if arguments.max_silence is not None:
            return _check_silence(records, now, arguments.max_silence)
    except StorageUnavailable as error:
        print(f"error: storage: {error}", file=sys.stderr)
        return 1
    finally:
        records.close()
    return 0


def _print_list(found: list[PushRecord], since: datetime) -> None:
    if not found:
        print(f"No push since {since:%Y-%m-%d %H:%M} UTC.")
        return
    rows = [
        (
            "RECEIVED (UTC)",
            "PUSH",
            "STATUS",
            "OUTCOME",
            "SESSIONS",
            "STORED",
            "UPDATED",
            "REJECTED",
            "BYTES",
            "MS",
            "KEY",
        )
    ]
    for record in found:
        counts = record.counts
        rows.append(
            (
                f"{record.received_at:%Y-%m-%d %H:%M:%S}",
                record.push_id[:8],
                str(record.status),
                record.outcome + (" (background)" if record.mode == "background" else ""),
                _count(counts, "received"),
                _count(counts, "stored"),
                _count(counts, "updated"),
                _count(counts, "rejected"),
                f"{record.body_bytes:,}",
                f"{record.duration_ms:,.0f}",
                f"{record.key_slot} ({record.key_fingerprint})" if record.key_slot else "-",
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    print(
        f"\n{len(found)} push{'es' if len(found) != 1 else ''} since {since:%Y-%m-%d %H:%M} UTC, newest first"
    )


def _print_buckets(found: list[PushRecord], since: datetime, now: datetime, by: str) -> None:
    step = timedelta(hours=1) if by == "hour" else timedelta(days=1)
    start = since.replace(minute=0, second=0, microsecond=0)
    if by == "day":
        start = start.replace(hour=0)
    buckets: dict[datetime, list[PushRecord]] = {}
    moment = start
    while moment <= now:
        buckets[moment] = []
        moment += step
    for record in found:
        key = record.received_at.replace(minute=0, second=0, microsecond=0)
        if by == "day":
            key = key.replace(hour=0)
        buckets.setdefault(key, []).append(record)
    label = "%Y-%m-%d %H:00" if by == "hour" else "%Y-%m-%d"
    print(f"{by.upper():16}  PUSHES  SESSIONS  REJECTED  NOT TAKEN  KEYS")
    for moment, records in sorted(buckets.items()):
        if not records:
            print(f"{moment:{label}}".ljust(16) + "  -       (no push)")
            continue
        taken = [record for record in records if record.status in (200, 202)]
        sessions = sum(record.counts.get("received", 0) for record in taken)
        rejected = sum(record.counts.get("rejected", 0) for record in taken)
        keys = ",".join(sorted({str(record.key_slot) for record in records if record.key_slot}))
        print(
            f"{moment:{label}}".ljust(16)
            + f"  {len(records):6}  {sessions:8}  {rejected:8}  {len(records) - len(taken):9}  {keys}"
        )


def _print_poisoned(settings: Settings) -> None:
    """The pushes given up after the background's last try, if any: each needs an operator."""
    if settings.push_queue is None:
        print(f"(no poison queue to read: {Setting.PUSH_QUEUE} is not set)", file=sys.stderr)
        return
    queue = MessageQueue.connect(settings.require_storage(), settings.push_queue)
    try:
        count = queue.poison_count()
        waiting = queue.peek_poison() if count else []
    except StorageUnavailable as error:
        print(f"(the poison queue {queue.poison_name} could not be read: {error})", file=sys.stderr)
        return
    finally:
        queue.close()
    if not waiting:
        return
    shown = f" (the oldest {len(waiting)})" if count > len(waiting) else ""
    print(f"\n{count} push(es) given up after the background's last try, in {queue.poison_name}{shown}:")
    for message in waiting:
        try:
            push = json.loads(message.text)
            print(f"  {push['push_id']}  received {push['received_at']}  archived as {push['raw_archive']}")
        except (ValueError, KeyError, TypeError):
            print(f"  (a message that is not a push: {message.text[:80]!r})")
    print(
        "Once the cause is fixed (pushes --id PUSH_ID says it), `archive replay` over its arrival stores it."
    )


def _show(found: list[PushRecord], push_id: str) -> int:
    for record in found:
        if record.push_id.startswith(push_id.lower()):
            for name, value in (
                ("Push", record.push_id),
                ("Received", f"{record.received_at:%Y-%m-%d %H:%M:%S.%f} UTC"),
                ("Answered", f"{record.status} {record.outcome} ({record.mode})"),
                ("Sessions", ", ".join(f"{count} {name}" for name, count in record.counts.items()) or "-"),
                ("Body", f"{record.body_bytes:,} bytes"),
                ("Took", f"{record.duration_ms:,.0f} ms"),
                ("Key", f"{record.key_slot} (fingerprint {record.key_fingerprint})"),
                ("Archived as", record.raw_archive or "-"),
                ("Finished", f"{record.finished_at:%Y-%m-%d %H:%M:%S} UTC" if record.finished_at else "-"),
                ("Tries", str(record.attempts or "-")),
                ("Reason", record.reason or "-"),
            ):
                print(f"{name:12} {value}")
            return 0
    print(f"error: no push {push_id!r} since the --since asked for (try --since 30d)", file=sys.stderr)
    return 1


def _check_silence(records: PushRecords, now: datetime, limit: timedelta) -> int:
    newest = next(
        (record for record in records.newest(now - limit - timedelta(days=1)) if record.status in (200, 202)),
        None,
    )
    if newest is None or now - newest.received_at > limit:
        when = f"the newest was taken at {newest.received_at:%Y-%m-%d %H:%M} UTC" if newest else "none found"
        print(f"SILENT: no push taken within {_say(limit)} ({when})", file=sys.stderr)
        return SILENT
    print(f"OK: the newest push was taken {_say(now - newest.received_at)} ago", file=sys.stderr)
    return 0


def _limited(records: Iterable[PushRecord], limit: int | None) -> Iterable[PushRecord]:
    for number, record in enumerate(records):
        if limit is not None and number >= limit:
            return
        yield record


def _count(counts: dict[str, int], name: str) -> str:
    return str(counts[name]) if name in counts else "-"


def _duration(text: str) -> timedelta:
    found = _DURATION.match(text)
    if found is None:
        raise argparse.ArgumentTypeError(f"not a duration like 90m, 3h or 2d: {text!r}")
    return float(found.group(1)) * _UNIT[found.group(2)]


def _moment(text: str) -> datetime:
    if _DURATION.match(text):
        return datetime.now(UTC) - _duration(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a duration (24h) or a date or ISO 8601 time: {text!r}"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _say(span: timedelta) -> str:
    minutes = span.total_seconds() / 60
    if minutes < 120:
        return f"{minutes:.0f} minutes"
    if minutes < 48 * 60:
        return f"{minutes / 60:.1f} hours"
    return f"{minutes / 1440:.1f} days"
