"""GET /api/sessions pages through 100,000 stored sessions at bounded memory and time per page:
the server's peak memory after the last page is close to what it was after the first."""

from __future__ import annotations

import time
from collections.abc import Callable

import requests

from devtools.served import ServedReceiver
from sessions.keys import KEY_HEADER
from sessions.settings import Setting
from sessions.storage import SessionStore
from tests.helpers.tools import store_sessions
from tools.simulate import generate_sessions

READ_KEY = "memory-read-key-0b7e"
SESSIONS = 100_000
LIMIT = 10_000
MIB = 1024 * 1024


def test_paging_through_100000_sessions_stays_within_bounded_memory_and_time_per_page(
    store: SessionStore, serve: Callable[..., ServedReceiver]
) -> None:
    sessions = generate_sessions(SESSIONS, seed=17, months=1)
    store_sessions(store, sessions, batch=5000)
    del sessions
    served = serve(**{Setting.READ_KEYS: READ_KEY})
    url: str | None = f"{served.sessions_url}?limit={LIMIT}"
    seen: set[tuple[str, int]] = set()
    peaks: list[int] = []
    slowest = 0.0
    with requests.Session() as http:
        while url is not None:
            started = time.monotonic()
            response = http.get(url, headers={KEY_HEADER: READ_KEY}, timeout=120)
            slowest = max(slowest, time.monotonic() - started)
            assert response.status_code == 200, response.text
            page = response.json()
            assert page["count"] <= LIMIT
            for row in page["sessions"]:
                seen.add((row["ChargerID"], row["TransactionID"]))
            peaks.append(served.peak_rss_bytes())
            url = page["next"]
            assert len(peaks) <= 2 * SESSIONS // LIMIT, "far more pages than sessions need"
    print(
        f"{len(peaks)} pages, peak RSS {peaks[0] / MIB:.0f} MiB after the first, {peaks[-1] / MIB:.0f} MiB "
        f"after the last, slowest page {slowest:.1f} s"
    )
    assert len(seen) == SESSIONS  # every session, once
    # One page's worth of memory, not the table's: the peak grows by less than a page's share.
    assert peaks[-1] - peaks[0] < 64 * MIB
    assert peaks[-1] < 400 * MIB
    assert slowest < 30
