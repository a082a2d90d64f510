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
    would = "would " if arguments.dry_run else ""
    for (charger_id, transaction_id), partition in report.doubles_removed:
        print(f"{would}remove the older copy of {charger_id} {transaction_id} in {partition}")
    print(
        f"{report.sessions:,} sessions read: {report.index_entries:,} index entries, "
        f"{report.pointers:,} moved pointers {would}written, "
        f"{len(report.doubles_removed):,} older copies {would}removed, "
        f"{report.stale_entries_removed:,} entries leading nowhere {would}removed; the quarantine holds "
        f"{report.quarantined:,} sessions"
    )
    return 0
