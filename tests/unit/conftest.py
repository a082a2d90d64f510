"""The unit tier touches no network, no Azurite and no subprocess: any attempt fails the test."""

from __future__ import annotations

import platform
import socket
import subprocess
from typing import Any

import pytest


def _refused(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a unit test may not open a connection or start a process (move it to another tier)")


@pytest.fixture(scope="session", autouse=True)
def matplotlib_font_cache() -> None:
    """matplotlib lists the system's fonts with `fc-list` the first time it is imported on a machine
    (then caches them): done here, before the guard below, so that a chart test does not fail on a
    machine that has never drawn one."""
    import matplotlib.font_manager  # noqa: F401


@pytest.fixture(scope="session", autouse=True)
def platform_description() -> None:
    """The Azure SDK's User-Agent names the platform, which Python reads once with `uname -p`
    (then caches): read here, before the guard below, as any process does on its first request."""
    platform.platform()
    platform.processor()


@pytest.fixture(autouse=True)
def no_network_and_no_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _refused)
    monkeypatch.setattr(socket.socket, "connect_ex", _refused)
    monkeypatch.setattr(socket, "create_connection", _refused)
    monkeypatch.setattr(subprocess.Popen, "__init__", _refused)
