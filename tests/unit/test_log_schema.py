"""The log lines are an interface: the alert rules in infra/ query their events and fields. Every
event the code logs, with every field, is declared in sessions.logs.EVENT_FIELDS (the infra tests
hold the alert queries to the same list), and the background's retries are the host's."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from sessions.logs import EVENT_FIELDS
from sessions.receiver import BACKGROUND_ATTEMPTS, Outcome
from tests.helpers import PROJECT

# Fields a call passes on from a dictionary: the counts (`**result.counts`), a session's identity.
COUNT_FIELDS = frozenset(
    {"received", "stored", "updated", "unchanged", "duplicates", "superseded", "rejected"}
)
IDENTITY_FIELDS = frozenset({"ChargerID", "TransactionID"})


def log_calls() -> list[tuple[str, int, str, set[str], bool]]:
    """(file, line, event, field names, passes **fields) of every log_event call that runs in Azure."""
    calls = []
    for path in [PROJECT / "function_app.py", *sorted((PROJECT / "sessions").rglob("*.py"))]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "log_event":
                event = node.args[0]
                assert isinstance(event, ast.Constant), (
                    f"{path.name}:{node.lineno}: the event must be a literal"
                )
                names = {keyword.arg for keyword in node.keywords if keyword.arg is not None}
                spread = any(keyword.arg is None for keyword in node.keywords)
                calls.append(
                    (str(Path(path).relative_to(PROJECT)), node.lineno, str(event.value), names, spread)
                )
    return calls


def test_every_logged_event_and_field_is_declared() -> None:
    calls = log_calls()
    assert len(calls) > 5
    for where, line, event, names, spread in calls:
        assert event in EVENT_FIELDS, f"{where}:{line} logs undeclared event {event}"
        assert names <= EVENT_FIELDS[event], f"{where}:{line}: {sorted(names - EVENT_FIELDS[event])}"
        if spread:
            passed_on = COUNT_FIELDS if event.startswith("push") else IDENTITY_FIELDS
            assert EVENT_FIELDS[event] >= passed_on, f"{where}:{line} passes on fields it does not declare"


def test_every_declared_event_is_logged_somewhere() -> None:
    logged = {event for _, _, event, _, _ in log_calls()}
    assert logged == set(EVENT_FIELDS)


def test_the_outcomes_the_alerts_watch_are_the_receivers() -> None:
    assert {"stored", "accepted", "refused", "unavailable", "poisoned"} <= {
        str(outcome) for outcome in Outcome
    }


def test_the_background_gives_up_when_the_functions_host_does() -> None:
    host = json.loads((PROJECT / "host.json").read_text(encoding="utf-8"))
    assert host["extensions"]["queues"]["maxDequeueCount"] == BACKGROUND_ATTEMPTS
    assert host["extensions"]["queues"]["messageEncoding"] == "base64"
