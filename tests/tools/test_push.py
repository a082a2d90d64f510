"""`python -m sessions push` as its own process, over real HTTP, against a served receiver."""

from __future__ import annotations

import json
import os
from pathlib import Path

from devtools.served import ServedReceiver
from sessions.settings import Settings
from tests.helpers import PROJECT
from tests.helpers.pushes import NEW_KEY, OLD_KEY, session
from tests.helpers.tables import all_entities, tables
from tests.helpers.tools import run_tool_process

SAMPLES = PROJECT / "samples"
CLOSED_PORT_URL = "http://127.0.0.1:9/api/sessions"


def operator_environment(**variables: str) -> dict[str, str]:
    """The operator's shell: no receiver settings, no key unless given."""
    env = {name: value for name, value in os.environ.items() if name != "CHARGEPILOT_KEY"}
    env.update(variables)
    return env


def stored_count(settings: Settings) -> int:
    return len(all_entities(tables(settings)[0]))


def test_a_file_is_pushed_as_it_is_with_the_key_from_a_named_variable(
    receiver: ServedReceiver, settings: Settings
) -> None:
    sample = SAMPLES / "hourly-push.json"
    ran = run_tool_process(
        operator_environment(DEV_KEY=OLD_KEY),
        *("push", "--url", receiver.sessions_url, "--key-env", "DEV_KEY", str(sample)),
    )
    assert ran.status == 0, ran.out + ran.err
    assert f"POST {receiver.sessions_url}: {sample}, {sample.stat().st_size:,} bytes" in ran.out
    assert "HTTP 200: 24 received, 24 stored, 0 rejected" in ran.out
    answer = json.loads(ran.out.split("rejected\n", 1)[1])
    assert answer["stored"] == 24 and answer["rejected_sessions"] == []
    assert stored_count(settings) == 24
    assert OLD_KEY not in ran.out + ran.err


def test_the_key_comes_from_chargepilot_key_by_default(receiver: ServedReceiver, settings: Settings) -> None:
    ran = run_tool_process(
        operator_environment(CHARGEPILOT_KEY=NEW_KEY),
        *("push", "--url", receiver.sessions_url, str(SAMPLES / "single-session.json")),
    )
    assert ran.status == 0, ran.out + ran.err
    assert stored_count(settings) == 1 and NEW_KEY not in ran.out + ran.err


def test_an_answer_that_lists_rejected_sessions_exits_3(
    receiver: ServedReceiver, settings: Settings, tmp_path: Path
) -> None:
    body = tmp_path / "push.json"
    body.write_text(json.dumps([session(), session(EndAt="2025-01-01T00:00:00Z")]))
    ran = run_tool_process(
        operator_environment(CHARGEPILOT_KEY=OLD_KEY), "push", "--url", receiver.sessions_url, str(body)
    )
    assert ran.status == 3, ran.out + ran.err
    assert "HTTP 200: 2 received, 1 stored, 1 rejected" in ran.out
    assert '"message": "must not be before StartAt"' in ran.out
    assert stored_count(settings) == 1


def test_a_wrong_key_exits_1_and_the_key_is_never_printed(
    receiver: ServedReceiver, settings: Settings
) -> None:
    wrong = "wrong-key-3f9a1c77"
    ran = run_tool_process(
        operator_environment(),
        *("push", "--url", receiver.sessions_url, "--key", wrong, str(SAMPLES / "single-session.json")),
    )
    assert ran.status == 1 and "HTTP 401" in ran.out and '"error": "unauthorized"' in ran.out
    assert wrong not in ran.out + ran.err and stored_count(settings) == 0


def test_an_endpoint_that_cannot_be_reached_exits_1() -> None:
    ran = run_tool_process(
        operator_environment(CHARGEPILOT_KEY=OLD_KEY),
        *("push", "--url", CLOSED_PORT_URL, "--timeout", "5", str(SAMPLES / "single-session.json")),
        timeout=60,
    )
    assert ran.status == 1 and f"not sent: cannot reach {CLOSED_PORT_URL}" in ran.out
    assert OLD_KEY not in ran.out + ran.err


def test_without_a_key_nothing_is_sent_and_the_status_is_2() -> None:
    ran = run_tool_process(operator_environment(), "push", "--url", CLOSED_PORT_URL, "--generate", "3")
    assert ran.status == 2 and "no API key: set the environment variable CHARGEPILOT_KEY" in ran.err
    assert "POST" not in ran.out


def test_files_and_generate_together_are_refused() -> None:
    ran = run_tool_process(
        operator_environment(CHARGEPILOT_KEY=OLD_KEY),
        *("push", "--url", CLOSED_PORT_URL, "--generate", "3", str(SAMPLES / "single-session.json")),
    )
    assert ran.status == 2 and "not both" in ran.err


def test_generated_sessions_are_stored_and_the_same_seed_sends_the_same_ones(
    receiver: ServedReceiver, settings: Settings
) -> None:
    command = (
        "push",
        "--url",
        receiver.sessions_url,
        "--generate",
        "150",
        "--seed",
        "5",
        "--batch-size",
        "100",
    )
    env = operator_environment(CHARGEPILOT_KEY=OLD_KEY)
    first = run_tool_process(env, *command)
    assert first.status == 0, first.out + first.err
    assert (
        "100 generated sessions (1-100 of 150)" in first.out
        and "50 generated sessions (101-150 of 150)" in first.out
    )
    assert "2 pushes: 2 taken in full, 0 with rejected sessions, 0 not taken" in first.out
    assert stored_count(settings) == 150
    again = run_tool_process(env, *command)
    assert again.status == 0 and stored_count(settings) == 150
