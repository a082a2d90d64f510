"""`python -m sessions rejected list|show|replay`: the quarantined sessions, and replaying them."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sessions.storage import RawArchive, SessionStore, StorageUnavailable
from tools.cli import load_settings, survives_closed_pipe
from tools.quarantine import AmbiguousId, Quarantine, QuarantinedSession, ReplayOutcome, judge

SHORT_ID = 12


def register(commands: argparse._SubParsersAction[Any]) -> None:
    rejected = commands.add_parser(
        "rejected",
        help="the quarantine: list rejected sessions, show one, replay them with today's rules",
        description="Sessions that failed validation are kept in the quarantine table with their raw "
        "JSON and the reasons. An ID may be shortened to its first characters, as `list` shows it.",
    )
    actions = rejected.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser(
        "list",
        help="list the quarantined sessions, newest first, and how many there are",
        description="List the newest quarantined sessions (only those shown are read), or those of "
        "one push, and say how many the quarantine holds.",
    )
    listing.add_argument(
        "--limit", type=int, default=50, metavar="N", help="show the newest N (default: %(default)s)"
    )
    listing.add_argument("--push", metavar="PUSH_ID", help="show the rejected sessions of this push instead")
    listing.set_defaults(run=_with_quarantine(list_sessions))
    show = actions.add_parser("show", help="one quarantined session in full, raw JSON included")
    show.add_argument("id", metavar="ID")
    show.set_defaults(run=_with_quarantine(show_session))
    replay = actions.add_parser(
        "replay",
        help="re-validate quarantined sessions; store those that pass today and release them",
        description="Validate the quarantined sessions again with today's rules. Those that pass are "
        "stored exactly as the receiver stores them and removed from the quarantine; those that "
        "still fail stay, and their current errors are shown. A copy older than the one stored is "
        "released without overwriting it. Safe to run again; with --all, progress goes to standard "
        "error. Exit status 0 when every session named was stored (or a newer copy was), 1 when "
        "some still fail or an ID was not found.",
    )
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("ids", nargs="*", default=[], metavar="ID", help="the sessions to replay")
    which.add_argument("--all", action="store_true", help="replay every quarantined session")
    replay.set_defaults(run=_with_quarantine(replay_sessions))


def list_sessions(quarantine: Quarantine, arguments: argparse.Namespace) -> int:
    if arguments.push:
        listed = quarantine.of_push(arguments.push)
        what = f"of push {arguments.push}"
    else:
        listed = list(quarantine.newest(max(arguments.limit, 0)))
        what = "newest first"
    total = quarantine.total()
    if not listed:
        print("The quarantine is empty." if total == 0 else f"No quarantined sessions {what}.")
        return 0
    rows = [("ID", "RECEIVED (UTC)", "STATION", "TRANSACTION", "WHY")]
    rows += [
        (
            item.id[:SHORT_ID],
            _when(item.received_at),
            _cut(item.charger_id or "?", 32),
            str(item.transaction_id) if item.transaction_id is not None else "?",
            item.reasons,
        )
        for item in listed
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    for row in rows:
        print("  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[4]]))
    shown = f"{len(listed):,} shown ({what})"
    if total is None:
        print(f"\n{shown}; the total is not counted yet: run `python -m sessions index rebuild`")
    else:
        print(f"\n{shown} of {total:,} quarantined session{'s' if total != 1 else ''}")
    return 0


def show_session(quarantine: Quarantine, arguments: argparse.Namespace) -> int:
    item = quarantine.find(arguments.id)
    if item is None:
        print(f"error: no quarantined session {arguments.id!r}", file=sys.stderr)
        return 1
    verdict = judge(item, quarantine.limits)
    today = (
        "passes today's rules: `rejected replay` stores it"
        if verdict.write is not None
        else "still rejected: " + "; ".join(f"{e.field}: {e.message}" for e in verdict.errors)
    )
    print(f"ID           {item.id}")
    print(f"Received     {_when(item.received_at)} UTC, push {item.push_id or '?'}, item {item.index}")
    print(f"Station      {item.charger_id or '?'}")
    print(f"Transaction  {item.transaction_id if item.transaction_id is not None else '?'}")
    print("Errors       " + "\n             ".join(f"{e.field}: {e.message}" for e in item.errors))
    print(f"Today        {today}")
    if item.raw_truncated:
        print(f"Raw JSON     (cut: {item.raw_length:,} characters; the raw archive keeps the whole push)")
        print(item.raw_json or "")
        return 0
    print("Raw JSON")
    try:
        print(json.dumps(json.loads(item.raw_json or ""), indent=2, ensure_ascii=False))
    except ValueError:
        print(item.raw_json)
    return 0


def replay_sessions(quarantine: Quarantine, arguments: argparse.Namespace) -> int:
    ids: Sequence[str] | None = None if arguments.all else arguments.ids
    total = quarantine.total() if arguments.all else len(ids or [])

    def progress(outcome: ReplayOutcome) -> None:
        if arguments.all:
            of = f" of {total:,}" if total else ""
            print(f"  {outcome.replayed:,}{of} replayed...", file=sys.stderr, flush=True)

    outcome = quarantine.replay(ids, on_batch=progress)
    for item in outcome.stored:
        print(f"stored      {_describe(item)}")
    for item in outcome.superseded:
        print(f"released    {_describe(item)}: a newer copy of this session is stored (kept that one)")
    for item, errors in outcome.still_rejected:
        reasons = "; ".join(f"{error.field}: {error.message}" for error in errors)
        print(f"kept        {_describe(item)}: {reasons}")
    for missing in outcome.not_found:
        print(f"not found   {missing} (not in the quarantine: already replayed?)")
    if outcome.replayed == 0 and not outcome.not_found:
        print("Nothing to replay: the quarantine is empty.")
        return 0
    print(
        f"Replayed {outcome.replayed}: {len(outcome.stored)} stored, {len(outcome.superseded)} skipped as "
        f"older than the copy stored, {len(outcome.still_rejected)} still rejected (kept in the quarantine)"
        + (f", {len(outcome.not_found)} not found" if outcome.not_found else "")
    )
    return 1 if outcome.still_rejected or outcome.not_found else 0


def _with_quarantine(
    action: Callable[[Quarantine, argparse.Namespace], int],
) -> Callable[[argparse.Namespace], int]:
    """`action` run on the configured quarantine; storage errors and ambiguous ids end it with a message."""

    def run(arguments: argparse.Namespace) -> int:
        settings = load_settings()
        store, archive = SessionStore.connect(settings), RawArchive.connect(settings)
        try:
            return action(Quarantine(store, archive, settings.limits), arguments)
        except StorageUnavailable as error:
            print(f"error: storage: {error}", file=sys.stderr)
            return 1
        except AmbiguousId as error:
            print(f"error: {error}: give more of the id", file=sys.stderr)
            return 2
        finally:
            store.close()
            archive.close()

    return survives_closed_pipe(run)


def _describe(item: QuarantinedSession) -> str:
    transaction = item.transaction_id if item.transaction_id is not None else "?"
    return f"{item.id[:SHORT_ID]}  {item.charger_id or '?'} {transaction}"


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "?"


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
