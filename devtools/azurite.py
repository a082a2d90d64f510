"""Start and stop a real Azurite (from the project's node_modules) for tests and benchmarks.

Listens on loopback only, telemetry off, in memory or in a given folder; free ports are picked
by Azurite itself (port 0) and read back from what it prints.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections import deque
from pathlib import Path
from types import TracebackType

PROJECT = Path(__file__).resolve().parent.parent
AZURITE_BIN = PROJECT / "node_modules" / ".bin" / "azurite"
ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key (public, documented, not a secret).
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
_LISTENING = re.compile(r"Azurite (Blob|Queue|Table) service is successfully listening at http://[^:]+:(\d+)")


class AzuriteError(RuntimeError):
    """Azurite is not installed or did not start."""


class Azurite:
    """One Azurite process; a context manager. Started again after `kill()`, it keeps its ports (and,
    on disk, its data)."""

    def __init__(self, *, location: Path | None = None) -> None:
        self.location = location
        self.ports: dict[str, int] = {}
        self._process: subprocess.Popen[str] | None = None
        self._output: deque[str] = deque(maxlen=200)

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def table_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['Table']}/{ACCOUNT}"

    @property
    def blob_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['Blob']}/{ACCOUNT}"

    @property
    def queue_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['Queue']}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        """Every endpoint named: the SDKs would seek one left out at <account>.<service>.core.windows.net."""
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={self.blob_endpoint};QueueEndpoint={self.queue_endpoint};"
            f"TableEndpoint={self.table_endpoint};"
        )

    def start(self, timeout: float = 60.0) -> Azurite:
        if not AZURITE_BIN.exists():
            raise AzuriteError(f"{AZURITE_BIN} is missing: run `npm ci` (make test does)")
        command = [str(AZURITE_BIN), "--disableTelemetry", "--silent"]
        command += ["--location", str(self.location)] if self.location else ["--inMemoryPersistence"]
        for service in ("blob", "queue", "table"):
            port = self.ports.get(service.capitalize(), 0)
            command += [f"--{service}Host", "127.0.0.1", f"--{service}Port", str(port)]
        self._process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=self.location or PROJECT,
        )
        found: dict[str, int] = {}
        ready = threading.Event()

        def read_output() -> None:
            assert self._process is not None and self._process.stdout is not None
            for line in self._process.stdout:
                self._output.append(line.rstrip())
                match = _LISTENING.search(line)
                if match:
                    found[match.group(1)] = int(match.group(2))
                    if len(found) == 3:
                        ready.set()
            ready.set()

        threading.Thread(target=read_output, name="azurite-output", daemon=True).start()
        deadline = time.monotonic() + timeout
        while not ready.wait(0.1):
            if time.monotonic() > deadline:
                break
        if len(found) != 3:
            self.stop()
            raise AzuriteError("Azurite did not start:\n" + "\n".join(self._output))
        self.ports = found
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def kill(self) -> None:
        """Stop abruptly, as a crash would (SIGKILL)."""
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=10)
            self._process = None
