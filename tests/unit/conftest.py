"""The unit tier touches no network, no Azurite and no subprocess: any attempt fails the test."""

from __future__ import annotations

import socket
import subprocess
from typing import Any

import pytest


def _refused(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a unit test may not open a connection or start a process (move it to another tier)")


@pytest.fixture(autouse=True)
def no_network_and_no_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _refused)
    monkeypatch.setattr(socket.socket, "connect_ex", _refused)
    monkeypatch.setattr(socket, "create_connection", _refused)
    monkeypatch.setattr(subprocess.Popen, "__init__", _refused)
