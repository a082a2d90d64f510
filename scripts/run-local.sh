#!/usr/bin/env bash
# Start Azurite on loopback and the receiver on http://localhost:7071 (`make run`).
# Uses `func start` when Azure Functions Core Tools is installed, else `python -m sessions serve`.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -f local.settings.json ]; then
  cp local.settings.sample.json local.settings.json
  echo "Created local.settings.json from local.settings.sample.json (git-ignored; edit the key there)."
fi

port_open() { .venv/bin/python - "$1" <<'PY'
import socket, sys
with socket.socket() as s:
    s.settimeout(0.5)
    sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)
PY
}

azurite_pid=""
stop_azurite() { [ -n "$azurite_pid" ] && kill "$azurite_pid" 2>/dev/null && wait "$azurite_pid" 2>/dev/null; true; }
trap stop_azurite EXIT INT TERM

if port_open 10002; then
  echo "Something already listens on 127.0.0.1:10002; using it as Azurite's Table service."
else
  mkdir -p .azurite
  node_modules/.bin/azurite --silent --disableTelemetry --location .azurite \
    --blobHost 127.0.0.1 --queueHost 127.0.0.1 --tableHost 127.0.0.1 &
  azurite_pid=$!
  for _ in $(seq 1 100); do port_open 10002 && break; sleep 0.2; done
  port_open 10002 || { echo "Azurite did not start (see above)." >&2; exit 1; }
  echo "Azurite is running on 127.0.0.1 (blob 10000, queue 10001, table 10002), data in .azurite/"
fi

if command -v func >/dev/null 2>&1; then
  # shellcheck disable=SC1091
  . .venv/bin/activate
  func start --port 7071
else
  echo "Azure Functions Core Tools not found: serving with python -m sessions serve."
  .venv/bin/python -m sessions serve --host 127.0.0.1 --port 7071
fi
