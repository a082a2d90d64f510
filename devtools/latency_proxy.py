"""A TCP proxy on 127.0.0.1 that delays every chunk by a fixed one-way latency.

    python -m devtools.latency_proxy UPSTREAM_PORT LATENCY_MS

Prints `listening on PORT` and forwards until killed. Used by the benchmark to put a network
round trip (as between a function app and Table Storage) in front of Azurite, which otherwise
answers over loopback in microseconds. Bandwidth is not limited; order is kept.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import sys
import threading
import time


def pump(source: socket.socket, target: socket.socket, delay: float) -> None:
    """Forward what `source` sends to `target`, each chunk `delay` seconds after it arrived."""
    pending: queue.Queue[tuple[float, bytes]] = queue.Queue()

    def read() -> None:
        try:
            while chunk := source.recv(65536):
                pending.put((time.monotonic() + delay, chunk))
        except OSError:
            pass
        pending.put((time.monotonic() + delay, b""))

    threading.Thread(target=read, daemon=True).start()
    try:
        while True:
            due, chunk = pending.get()
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if not chunk:
                break
            target.sendall(chunk)
    except OSError:
        pass
    finally:
        for end in (source, target):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)


def serve(upstream_port: int, latency_ms: float) -> None:
    delay = latency_ms / 1000.0
    listener = socket.create_server(("127.0.0.1", 0))
    print(f"listening on {listener.getsockname()[1]}", flush=True)
    while True:
        client, _ = listener.accept()
        upstream = socket.create_connection(("127.0.0.1", upstream_port))
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=pump, args=(client, upstream, delay), daemon=True).start()
        threading.Thread(target=pump, args=(upstream, client, delay), daemon=True).start()


if __name__ == "__main__":
    serve(int(sys.argv[1]), float(sys.argv[2]))
