"""Fixtures: one real Azurite per test session, fresh tables per test, real HTTP servers.

Each folder of tests is a tier, marked by its name (`pytest -m unit` runs the unit tier alone);
tests/unit may touch no network, no Azurite and no subprocess (tests/unit/conftest.py enforces it).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devtools.azurite import Azurite
from devtools.served import ServedReceiver, receiver_environment, start_receiver
from sessions.settings import Settings, StorageConnection
from sessions.storage import SessionStore
from tests.helpers.proxies import DroppingProxy, store_through
from tests.helpers.pushes import NEW_KEY, OLD_KEY
from tests.helpers.tables import unique_table

TIERS = ("unit", "storage", "http", "tools", "resilience", "infra")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tier = Path(item.path).parent.name
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    with Azurite() as emulator:
        yield emulator


@pytest.fixture
def settings(azurite: Azurite) -> Settings:
    return Settings(
        api_keys=(OLD_KEY, NEW_KEY),
        storage=StorageConnection(connection_string=azurite.connection_string),
        sessions_table=unique_table("Sessions"),
        rejected_table=unique_table("Rejected"),
        session_index_table=unique_table("Index"),
        pushes_table=unique_table("Pushes"),
        raw_archive_container=f"raw-{uuid.uuid4().hex[:16]}",
        push_queue=f"push-{uuid.uuid4().hex[:16]}",
    )


@pytest.fixture
def store(settings: Settings) -> Iterator[SessionStore]:
    session_store = SessionStore.connect(settings)
    yield session_store
    session_store.close()


@pytest.fixture
def counted_store(azurite: Azurite, settings: Settings) -> Iterator[tuple[SessionStore, DroppingProxy]]:
    """A store whose Table requests go through a proxy that counts them (and drops none)."""
    proxy = DroppingProxy(azurite.ports["Table"], drops=0)
    with store_through(proxy, azurite, settings) as store:
        store.ensure_tables()
        yield store, proxy


@pytest.fixture
def serve(settings: Settings) -> Iterator[Callable[..., ServedReceiver]]:
    """Start receivers with these test tables, with settings overridden per call."""
    started: list[ServedReceiver] = []

    def start(*, settings_file: Path | None = None, **overrides: str | None) -> ServedReceiver:
        served = start_receiver(receiver_environment(settings, **overrides), settings_file=settings_file)
        started.append(served)
        return served

    yield start
    for served in started:
        served.stop()


@pytest.fixture
def receiver(serve: Callable[..., ServedReceiver]) -> ServedReceiver:
    """A receiver with two keys (a rotation in progress) over this test's fresh tables."""
    return serve()
