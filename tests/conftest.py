"""Shared fixtures: one real Azurite per test session, fresh tables per test, real HTTP servers."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from devtools.azurite import Azurite
from sessions.settings import APP_SETTINGS, STORAGE_CONNECTION, Settings, StorageConnection
from sessions.store import SessionStore

PROJECT = Path(__file__).resolve().parent.parent
OLD_KEY = "test-key-old-5b1f0c"
NEW_KEY = "test-key-new-9d2e7a"


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    with Azurite() as emulator:
        yield emulator


def unique_table(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:16]}"


@pytest.fixture
def settings(azurite: Azurite) -> Settings:
    return Settings(
        api_keys=(OLD_KEY, NEW_KEY),
        storage=StorageConnection(connection_string=azurite.connection_string),
        sessions_table=unique_table("Sessions"),
        rejected_table=unique_table("Rejected"),
        raw_archive_container=f"raw-{uuid.uuid4().hex[:16]}",
    )


@pytest.fixture
def store(settings: Settings) -> Iterator[SessionStore]:
    session_store = SessionStore.connect(settings)
    yield session_store
    session_store.close()


@dataclass
class ServedReceiver:
    """`python -m sessions serve` running in a subprocess, with its log captured."""

    base_url: str
    process: subprocess.Popen[str]
    env: dict[str, str]
    lines: list[str] = field(default_factory=list)

    @property
    def sessions_url(self) -> str:
        return f"{self.base_url}/api/sessions"

    @property
    def health_url(self) -> str:
        return f"{self.base_url}/api/health"

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def receiver_environment(settings: Settings, **overrides: str | None) -> dict[str, str]:
    """The environment of a served receiver: ours only, never the developer's own settings.

    An override of None removes the setting from the environment.
    """
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in APP_SETTINGS and not name.startswith(STORAGE_CONNECTION)
    }
    assert settings.storage is not None and settings.storage.connection_string is not None
    env.update(
        {
            "CHARGEPILOT_API_KEYS": ",".join(settings.api_keys),
            STORAGE_CONNECTION: settings.storage.connection_string,
            "SESSIONS_TABLE": settings.sessions_table,
            "REJECTED_TABLE": settings.rejected_table,
            "MAX_BODY_BYTES": str(settings.max_body_bytes),
            "RAW_ARCHIVE_ENABLED": str(settings.raw_archive_enabled).lower(),
            "RAW_ARCHIVE_CONTAINER": settings.raw_archive_container,
            "PYTHONUNBUFFERED": "1",
        }
    )
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def start_receiver(env: dict[str, str], *, settings_file: Path | None = None) -> ServedReceiver:
    """Start `python -m sessions serve --port 0` and wait for the URL it prints."""
    command = [sys.executable, "-m", "sessions"]
    command += ["--settings", str(settings_file or PROJECT / "tests" / "no-local-settings.json")]
    command += ["serve", "--host", "127.0.0.1", "--port", "0"]
    process = subprocess.Popen(
        command,
        cwd=PROJECT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    served = ServedReceiver(base_url="", process=process, env=env)
    ready = threading.Event()

    def read_output() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            served.lines.append(line.rstrip("\n"))
            if line.startswith("Serving on "):
                served.base_url = line.split()[2]
                ready.set()
        ready.set()

    threading.Thread(target=read_output, daemon=True).start()
    ready.wait(60)
    if not served.base_url:
        served.stop()
        raise RuntimeError("python -m sessions serve did not start:\n" + served.log)
    return served


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
