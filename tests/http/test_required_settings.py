"""A receiver started as a newcomer starts it, with only the settings docs/configuration.md calls
required (sessions.settings.REQUIRED_SETTINGS), against an Azurite of its own: every setting with
a default works unset, and a push answered 202 is stored in full. Without a setting the
background function needs, the receiver never answers 202: what would need the background is 503,
and the log and /api/health say why (issue 16)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import requests

from devtools.azurite import Azurite
from devtools.served import ServedReceiver, start_receiver
from sessions.receiver import SYNC_MAX_SESSIONS
from sessions.settings import REQUIRED_SETTINGS, Setting, Settings, StorageConnection
from tests.helpers.push_records import eventually, log_events
from tests.helpers.pushes import OLD_KEY, post, session
from tests.helpers.tables import stored

LARGE = SYNC_MAX_SESSIONS + 1000


@pytest.fixture(scope="module")
def own_azurite() -> Iterator[Azurite]:
    """Nothing in it but what these receivers write: the tables, container and queues by their defaults."""
    with Azurite() as emulator:
        yield emulator


def required_only(azurite: Azurite, *, without: Setting | None = None) -> dict[str, str]:
    """The process environment without any app setting, plus the required settings (less one)."""
    prefixes = tuple(setting.value for setting in Setting)
    env = {name: value for name, value in os.environ.items() if not name.startswith(prefixes)}
    values = {
        Setting.API_KEYS: OLD_KEY,
        Setting.STORAGE: azurite.connection_string,
        Setting.PUSH_QUEUE: "pushes-to-store",
        Setting.HOST_STORAGE: azurite.connection_string,
    }
    assert set(values) == set(REQUIRED_SETTINGS)
    env.update({name: value for name, value in values.items() if name != without})
    return {**env, "PYTHONUNBUFFERED": "1"}


def default_tables(azurite: Azurite) -> Settings:
    return Settings(storage=StorageConnection(connection_string=azurite.connection_string))


@pytest.fixture
def started() -> Iterator[list[ServedReceiver]]:
    receivers: list[ServedReceiver] = []
    yield receivers
    for receiver in receivers:
        receiver.stop()


def test_with_only_the_required_settings_a_large_push_is_202_and_stored_in_full(
    own_azurite: Azurite, started: list[ServedReceiver]
) -> None:
    receiver = start_receiver(required_only(own_azurite))
    started.append(receiver)
    charger = "REQUIRED-ONLY-1"
    response = post(
        receiver.sessions_url,
        [session(ChargerID=charger, TransactionID=number) for number in range(LARGE)],
        key=OLD_KEY,
        timeout=60,
    )
    assert response.status_code == 202, response.text[:500]

    def all_stored() -> bool:
        found = [entity for entity in stored(default_tables(own_azurite)) if entity["ChargerID"] == charger]
        return len(found) == LARGE

    eventually(all_stored, within=240, every=2, what=f"all {LARGE} sessions stored in the background")
    assert requests.get(receiver.health_url, timeout=30).json() == {"status": "healthy"}


@pytest.mark.parametrize("missing", [Setting.PUSH_QUEUE, Setting.HOST_STORAGE])
def test_without_what_the_background_needs_no_push_is_answered_202(
    own_azurite: Azurite, started: list[ServedReceiver], missing: Setting
) -> None:
    receiver = start_receiver(required_only(own_azurite, without=missing))
    started.append(receiver)
    assert "store_push_in_background: queueTrigger (in error:" in receiver.log

    small = post(receiver.sessions_url, [session(ChargerID="SMALL-PUSH")], key=OLD_KEY)
    assert small.status_code == 200 and small.json()["stored"] == 1

    large = post(receiver.sessions_url, [session(ChargerID="LARGE-PUSH") for _ in range(LARGE)], key=OLD_KEY)
    assert large.status_code == 503, large.text[:500]
    assert large.json()["error"] == "background_unavailable"
    assert large.headers["Retry-After"] == "30"
    assert not any(entity["ChargerID"] == "LARGE-PUSH" for entity in stored(default_tables(own_azurite)))
    refusals = eventually(
        lambda: [line for line in log_events(receiver.lines, "background_unavailable") if "push_id" in line],
        within=10,
        what="the refusal's log line",
    )
    assert missing.value in refusals[0]["reason"]

    health = requests.get(receiver.health_url, timeout=30)
    assert (health.status_code, health.json()) == (
        503,
        {"status": "unhealthy", "reason": "background function cannot run"},
    )
