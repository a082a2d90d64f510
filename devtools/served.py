"""`python -m sessions serve` in a subprocess, for the tests and the benchmark.

The receiver gets an environment of ours only (never the developer's own settings), listens on a
free loopback port, and its output is kept line by line so that a test can read its log.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from sessions.settings import APP_SETTINGS, Setting, Settings

PROJECT = Path(__file__).resolve().parent.parent
# A settings file that does not exist: the served receiver reads only the environment we give it.
NO_LOCAL_SETTINGS = PROJECT / "tests" / "no-local-settings.json"


def receiver_environment(settings: Settings, **overrides: str | None) -> dict[str, str]:
    """The environment of a receiver configured with `settings`; an override of None removes a setting."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in APP_SETTINGS
        and not name.startswith(Setting.STORAGE)
        and not name.startswith(Setting.HOST_STORAGE)
    }
    assert settings.storage is not None and settings.storage.connection_string is not None
    env.update(
        {
            Setting.API_KEYS: ",".join(settings.api_keys),
            Setting.READ_KEYS: ",".join(settings.read_keys),
            Setting.STORAGE: settings.storage.connection_string,
            Setting.SESSIONS_TABLE: settings.sessions_table,
            Setting.REJECTED_TABLE: settings.rejected_table,
            Setting.SESSION_INDEX_TABLE: settings.session_index_table,
            Setting.PUSHES_TABLE: settings.pushes_table,
            Setting.RAW_ARCHIVE_CONTAINER: settings.raw_archive_container,
            Setting.PUSH_QUEUE: settings.push_queue or "",
            # The Functions host's own storage, which it needs to run the queue trigger at all.
            Setting.HOST_STORAGE: settings.storage.connection_string,
            Setting.MAX_BODY_BYTES: str(settings.max_body_bytes),
            Setting.MAX_PUSH_SESSIONS: str(settings.max_push_sessions),
            Setting.PUSH_DEADLINE_SECONDS: str(settings.push_deadline_seconds),
            Setting.SESSION_MAX_ENERGY_KWH: str(settings.limits.max_energy_kwh),
            Setting.SESSION_MAX_POWER_KW: str(settings.limits.max_power_kw),
            Setting.SESSION_MAX_DAYS: str(settings.limits.max_days),
            Setting.SESSION_MAX_FUTURE_HOURS: str(settings.limits.max_future_hours),
            Setting.SESSION_EARLIEST_START: settings.limits.earliest_start.isoformat(),
            "PYTHONUNBUFFERED": "1",
        }
    )
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


@dataclass
class ServedReceiver:
    """One `python -m sessions serve` process and what it printed."""

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

    def cpu_seconds(self) -> float:
        times = psutil.Process(self.process.pid).cpu_times()
        return float(times.user + times.system)

    def peak_rss_bytes(self) -> int:
        """The server's peak resident memory so far (Linux VmHWM; else the current RSS)."""
        status = Path(f"/proc/{self.process.pid}/status")
        if status.exists():
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        return int(psutil.Process(self.process.pid).memory_info().rss)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_receiver(
    env: Mapping[str, str],
    *,
    settings_file: Path | None = None,
    keep_lines: bool = True,
    command: Sequence[str] | None = None,
) -> ServedReceiver:
    """Start `python -m sessions serve --port 0` (or another `command` that serves the app and
    prints "Serving on URL") and wait for the URL it prints.

    With keep_lines false the output is read and dropped (a benchmark's long run).
    """
    if command is None:
        command = [sys.executable, "-m", "sessions", "--settings", str(settings_file or NO_LOCAL_SETTINGS)]
        command += ["serve", "--host", "127.0.0.1", "--port", "0"]
    process = subprocess.Popen(
        command,
        cwd=PROJECT,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    served = ServedReceiver(base_url="", process=process, env=dict(env))
    ready = threading.Event()

    def read_output() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if keep_lines or not served.base_url:
                served.lines.append(line.rstrip("\n"))
            if not served.base_url and line.startswith("Serving on "):
                served.base_url = line.split()[2]
                ready.set()
        ready.set()

    threading.Thread(target=read_output, daemon=True).start()
    ready.wait(60)
    if not served.base_url:
        served.stop()
        raise RuntimeError(f"{' '.join(command[1:])} did not start:\n" + served.log)
    return served
