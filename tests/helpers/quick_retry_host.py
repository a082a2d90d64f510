"""The receiver served by the local Functions host with quick background retries.

    python -m tests.helpers.quick_retry_host FOLDER

runs function_app.app on tools.host (as `python -m sessions serve` does) with FOLDER's host.json
in place of the project's: the same one but for `extensions.queues.visibilityTimeout` (1 s, not
30 s) and `maxPollingInterval`, so that a push whose background run keeps failing goes through
its maxDequeueCount tries to the poison queue in seconds, not minutes. The app settings come from
the environment only (no local.settings.json).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from devtools.served import PROJECT, ServedReceiver, start_receiver
from tools.host import describe, host_config, start_host

QUICK_QUEUES = {"visibilityTimeout": "00:00:01", "maxPollingInterval": "00:00:00.200"}
_READY = "Serving on "


def quick_host_json(folder: Path) -> dict[str, Any]:
    """Write FOLDER/host.json: the project's, with quick retries; return what was written."""
    config = host_config(PROJECT)
    config.setdefault("extensions", {}).setdefault("queues", {}).update(QUICK_QUEUES)
    (folder / "host.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return config


def start_quick_retry_receiver(env: Mapping[str, str], folder: Path) -> ServedReceiver:
    """Serve the receiver with `env` as its app settings and quick retries (host.json in `folder`)."""
    quick_host_json(folder)
    return start_receiver(env, command=[sys.executable, "-m", __name__, str(folder)])


def main(arguments: Sequence[str]) -> int:
    (folder,) = arguments
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stdout
    )
    logging.getLogger("azure").setLevel(logging.WARNING)
    server = start_host("127.0.0.1", 0, project=Path(folder))
    print(describe(server), flush=True)
    print(f"{_READY}{server.base_url}", flush=True)
    try:
        server.serve_forever()  # until the test terminates the process
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
