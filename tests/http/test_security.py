"""Security and observability: every key compared in constant time, and nothing secret in any log line.

The receiver runs in this process (the local Functions host on 127.0.0.1, the real handler, real
Azurite) so that every log record of every library, down to DEBUG, is captured and searched.
"""

from __future__ import annotations

import hmac
import http.client
import json
import logging
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from devtools.served import receiver_environment
from sessions import receiver as receiver_module
from sessions.keys import KEY_HEADER, KeyCheck, KeyRing
from sessions.settings import APP_SETTINGS, Setting, Settings
from tests.helpers import PROJECT
from tests.helpers.pushes import NEW_KEY, OLD_KEY, as_body, session
from tools.host import FunctionsHost, start_host

# Values that may appear in a body but never in a log line: the RFID card, extra fields, energy.
CARD_MARKER = "CARD-4f1c9e77"
EXTRA_MARKER = "EXTRA-93b2a0d5"


@pytest.fixture
def in_process(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[FunctionsHost]:
    """`python -m sessions serve`, in this process: function_app imported afresh, our settings only."""
    for name in [*APP_SETTINGS, *(n for n in os.environ if n.startswith(Setting.STORAGE))]:
        monkeypatch.delenv(name, raising=False)
    for name, value in receiver_environment(settings).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(receiver_module, "_current", None)
    monkeypatch.delitem(sys.modules, "function_app", raising=False)
    server = start_host("127.0.0.1", 0, project=PROJECT)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()
    if receiver_module._current is not None:
        receiver_module._current.store.close()
        if receiver_module._current.archive is not None:
            receiver_module._current.archive.close()


def raw_post(
    base_url: str, path: str, headers: list[tuple[str, str | bytes]], body: bytes
) -> tuple[int, str]:
    """POST with exactly these header lines (repeats and raw bytes included); status and full answer."""
    parts = urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    connection.putrequest("POST", path)
    for name, value in [*headers, ("Content-Length", str(len(body)))]:
        connection.putheader(name, value)
    connection.endheaders(body)
    response = connection.getresponse()
    answer = "\n".join(f"{name}: {value}" for name, value in response.getheaders())
    answer += "\n" + response.read().decode("utf-8", "replace")
    connection.close()
    return response.status, answer


def test_every_configured_key_is_compared_whatever_the_key_presented(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    compare_digest = hmac.compare_digest

    def counting_compare(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return compare_digest(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting_compare)
    ring = KeyRing(("first-key", "second-key", "third-key"))
    for presented, verdict in [
        ("first-key", KeyCheck.ACCEPTED),
        ("third-key", KeyCheck.ACCEPTED),
        ("wrong", KeyCheck.WRONG),
        ("first-key" + "x" * 5000, KeyCheck.WRONG),
    ]:
        compared.clear()
        assert ring.check(presented).check is verdict
        # All three, every time, and always over digests of one length: no early exit, no length leak.
        assert len(compared) == 3
        assert {len(a) for a, _ in compared} | {len(b) for _, b in compared} == {32}


@pytest.mark.parametrize(
    ("headers", "query", "status"),
    [
        ([(KEY_HEADER, OLD_KEY), (KEY_HEADER, OLD_KEY)], "", 401),  # the same key twice: refused too
        ([(KEY_HEADER.upper(), f"  {NEW_KEY}\t")], "", 200),  # header names and spaces around do not matter
        ([("Authorization", f"Bearer {OLD_KEY}")], "", 401),
        ([("X-Api-Key", OLD_KEY)], "", 401),
        ([("Ocp-Apim-Subscription-Key", "")], f"?subscription-key={OLD_KEY}&code={OLD_KEY}", 401),
        ([(KEY_HEADER, "wrong")], f"?{KEY_HEADER}={OLD_KEY}", 401),
        ([(KEY_HEADER, b"caf\xe9-\xff-key")], "", 401),  # bytes that are not UTF-8: 401, not 500
    ],
)
def test_header_and_query_tricks_get_nothing_in(
    in_process: FunctionsHost, headers: list[tuple[str, str | bytes]], query: str, status: int
) -> None:
    code, _ = raw_post(in_process.base_url, f"/api/sessions{query}", headers, as_body([session()]))
    assert code == status


def test_no_key_and_no_body_reaches_any_log_line_or_answer(
    in_process: FunctionsHost, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, every level: the SDKs' and the host's too
    url = in_process.base_url
    body = as_body(
        [
            session(Id=CARD_MARKER, Tariff=EXTRA_MARKER),
            session(Id=CARD_MARKER, EndSoC=150, Note=EXTRA_MARKER),
            {"ChargerID": 5, "Id": CARD_MARKER, "Comment": EXTRA_MARKER},
        ]
    )
    answers = [
        raw_post(url, "/api/sessions", [(KEY_HEADER, OLD_KEY)], body),
        raw_post(url, "/api/sessions", [(KEY_HEADER.lower(), NEW_KEY)], body),
        raw_post(url, "/api/sessions", [(KEY_HEADER, OLD_KEY[:-1])], body),
        raw_post(url, "/api/sessions", [(KEY_HEADER, NEW_KEY), (KEY_HEADER, OLD_KEY)], body),
        raw_post(url, f"/api/sessions?subscription-key={OLD_KEY}", [], body),
        raw_post(url, f"/api/sessions?{KEY_HEADER}={NEW_KEY}", [(KEY_HEADER, OLD_KEY)], body),
        raw_post(url, "/api/sessions", [(KEY_HEADER, OLD_KEY)], b'{"Id": "' + CARD_MARKER.encode() + b'", '),
        raw_post(url, "/api/sessions", [(KEY_HEADER, OLD_KEY), ("Content-Type", "text/csv")], body),
    ]
    assert [status for status, _ in answers] == [200, 200, 401, 401, 401, 200, 400, 415]
    assert requests.get(f"{url}/api/health", headers={KEY_HEADER: OLD_KEY}, timeout=30).status_code == 200
    logged = caplog.text + "\n".join(str(record.args) for record in caplog.records)
    assert '"event": "push"' in logged and '"event": "session_rejected"' in logged  # it did log
    for secret in (OLD_KEY, NEW_KEY, OLD_KEY[:-1]):
        assert secret not in logged
        assert not any(secret in answer for _, answer in answers)
    for marker in (CARD_MARKER, EXTRA_MARKER):
        assert marker not in logged


def events(caplog: pytest.LogCaptureFixture, event: str) -> list[dict[str, Any]]:
    found = []
    for record in caplog.records:
        if record.name == "sessions" and record.getMessage().startswith("{"):
            line = json.loads(record.getMessage())
            if line["event"] == event:
                found.append(line)
    return found


def test_each_push_logs_one_line_with_its_id_counts_duration_and_outcome(
    in_process: FunctionsHost, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sessions")
    url = f"{in_process.base_url}/api/sessions"
    pushed = [session(), session(ChargerID="CP-7", TransactionID=77, InitialSoC=-3), session()]
    answer = requests.post(url, data=as_body(pushed), headers={KEY_HEADER: OLD_KEY}, timeout=30).json()
    requests.post(url, data=b"[1]", headers={KEY_HEADER: OLD_KEY}, timeout=30)

    taken, invalid = events(caplog, "push")
    assert taken["push_id"] == answer["push_id"]
    assert (taken["status"], taken["outcome"], taken["received"], taken["stored"], taken["rejected"]) == (
        200,
        "stored",
        3,
        2,
        1,
    )
    assert taken["duration_ms"] > 0 and taken["body_bytes"] == len(as_body(pushed))
    assert taken["raw_archive"].endswith(f"-{answer['push_id']}.json.gz")
    assert (invalid["status"], invalid["outcome"]) == (400, "refused") and "received" not in invalid
    (rejected,) = events(caplog, "session_rejected")
    assert rejected == {
        "event": "session_rejected",
        "push_id": answer["push_id"],
        "index": 1,
        "ChargerID": "CP-7",
        "TransactionID": 77,
        "reasons": ["InitialSoC: Input should be greater than or equal to 0"],
        "quarantine_id": answer["rejected_sessions"][0]["quarantine_id"],
    }
