"""`python -m sessions index rebuild`: make the identity index and the quarantine's bookkeeping
agree with what is stored (after upgrading from a version without them, or as a repair)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sessions.storage import SessionStore, StorageUnavailable
from tools.cli import load_settings
from tools.index import rebuild


def register(commands: argparse._SubParsersAction[Any]) -> None:
    index = commands.add_parser(
        "index",
        help="rebuild the identity index of the stored sessions (after an upgrade, or as a repair)",
        description="Every stored session gets its identity index entry (and a pointer when a "
        "correction moved its StartAt into another month); two records of one session (kept before "
        "identity crossed months) become one, the copy received last; the quarantine gets its count "
        "and its arrival list. Reads the whole sessions table once. Safe to run again.",
    )
    actions = index.add_subparsers(dest="action", required=True, metavar="ACTION")
    rebuilding = actions.add_parser("rebuild", help="rebuild the indexes from the stored sessions")
    rebuilding.add_argument("--dry-run", action="store_true", help="say what would change, change nothing")
    rebuilding.set_defaults(run=run)


def run(arguments: argparse.Namespace) -> int:
    store = SessionStore.connect(load_settings())
    try:
        report = rebuild(
            store,
            apply=not arguments.dry_run,
            progress=lambda line: print(f"  {line}", file=sys.stderr, flush=True),
        )
    except StorageUnavailable as error:
        print(f"error: storage: {error} (nothing is lost: run it again)", file=sys.stderr)
        return 1
    finally:
        store.close()
    written, removed = (
        ("would be written", "would be removed") if arguments.dry_run else ("written", "removed")
    )
    for (charger_id, transaction_id), partition in report.doubles_removed:
        verb = "would remove" if arguments.dry_run else "removed"
        print(f"{verb} the older copy of {charger_id} {transaction_id} in {partition}")
    entries = _count(report.index_entries, "index entry", "index entries")
    pointers = _count(report.pointers, "moved pointer")
    doubles = _count(len(report.doubles_removed), "older copy", "older copies")
    stale = _count(report.stale_entries_removed, "entry", "entries")
    read, quarantined = _count(report.sessions, "session"), _count(report.quarantined, "quarantined session")
    print(
        f"{read} read: {entries} and {pointers} {written}, {doubles} {removed}, "
        f"{stale} leading nowhere {removed}; {quarantined} counted"
    )
    return 0


def _count(number: int, one: str, many: str | None = None) -> str:
    return f"{number:,} {one if number == 1 else many or one + 's'}"
