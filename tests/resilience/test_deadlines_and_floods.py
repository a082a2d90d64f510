"""Issue 11, judged black-box over HTTP against a served receiver: storage that never answers,
floods of invalid objects, and a 15 MiB push of valid sessions.

- Storage that accepts connections and never answers: the push is answered 503 with Retry-After
  within 15 s, claiming nothing; /api/health answers GET and HEAD within 10 s.
- 15 MiB of distinct invalid objects (more than MAX_PUSH_SESSIONS tiny ones; or realistic
  sessions each invalid in one field): answered within 60 s in under 1 MiB, the server's peak RSS
  under 1.5 GiB, under 10 MB of log for the push, and nothing lost: the raw archive holds the
  body, the quarantine at most 1,000 of its sessions one by one and one entry for the rest.
- 15 MiB of valid sessions: answered 202 within 15 s, every session stored soon after, and the
  push record says so.
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from typing import Any

import pytest
import requests

from devtools.served import ServedReceiver, receiver_environment, start_receiver
from sessions.ingest import QUARANTINE_PER_PUSH
from sessions.results import MAX_LISTED_REJECTIONS
from sessions.settings import Settings, StorageConnection
from sessions.storage import RawArchive
from sessions.storage.pushes import PushRecord
from tests.helpers.push_records import (
    eventually,
    finished_record,
    isolated,
    log_bytes,
    log_events,
    push_records,
)
from tests.helpers.pushes import NEW_KEY, OLD_KEY, post, session
from tests.helpers.silent_storage import SilentStorage
from tests.helpers.tables import quarantined, tables
from tools.simulate import generate_sessions

MiB = 1024 * 1024
# About 15 MiB of the simulated depot's sessions (about 236 bytes each), over two months.
FLOOD_SESSIONS = 67_000
PEAK_RSS_LIMIT = 1536 * MiB
LOG_LIMIT = 10_000_000
ANSWER_LIMIT = MiB


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """This test's own push records, index and queue, besides its own tables and archive."""
    return isolated(settings)


# --- storage that never answers ---------------------------------------------------------------


@pytest.fixture(scope="module")
def hanging() -> Iterator[tuple[ServedReceiver, SilentStorage]]:
    """A receiver whose every storage endpoint accepts connections and never answers."""
    with closing(SilentStorage()) as silent:
        connection = StorageConnection(connection_string=silent.connection_string)
        served = start_receiver(
            receiver_environment(
                Settings(api_keys=(OLD_KEY, NEW_KEY), storage=connection, push_queue="pushes-to-store")
            )
        )
        try:
            yield served, silent
        finally:
            silent.close()  # first: what the receiver still waits on ends, and it stops at once
            served.stop()


def timed(call: Callable[[], requests.Response]) -> tuple[requests.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


@pytest.mark.parametrize("size", ["one session", "15 MiB"])
def test_a_push_to_storage_that_never_answers_is_503_with_retry_after_within_15_s_claiming_nothing(
    hanging: tuple[ServedReceiver, SilentStorage], depot_sessions: list[dict[str, Any]], size: str
) -> None:
    served, silent = hanging
    body = json.dumps([session()] if size == "one session" else depot_sessions).encode("utf-8")
    mark = len(served.lines)
    response, seconds = timed(lambda: post(served.sessions_url, body, key=OLD_KEY, timeout=60))
    print(f"answered {response.status_code} after {seconds:.1f} s")
    assert response.status_code == 503, response.text
    assert seconds < 15, f"answered after {seconds:.1f} s"
    assert int(response.headers["Retry-After"]) > 0
    assert set(response.json()) == {"error", "message"}  # no push id, no count: nothing claimed
    assert silent.connections > 0  # storage was asked, and kept silent
    line = eventually(lambda: log_events(served.lines[mark:], "push"), within=5, what="the push's log line")[
        -1
    ]
    assert (line["status"], line["outcome"], line["body_bytes"]) == (503, "unavailable", len(body))


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_health_answers_within_10_s_with_503_when_storage_never_answers(
    hanging: tuple[ServedReceiver, SilentStorage], method: str
) -> None:
    served, _ = hanging
    response, seconds = timed(lambda: requests.request(method, served.health_url, timeout=60))
    print(f"{method} answered {response.status_code} after {seconds:.1f} s")
    assert seconds < 10, f"answered after {seconds:.1f} s"
    assert response.status_code == 503
    if method == "HEAD":  # as uptime checkers ask: the status alone
        assert response.content == b""
    else:
        assert response.json() == {"status": "unhealthy", "reason": "storage unreachable"}


# --- floods -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def depot_sessions() -> list[dict[str, Any]]:
    """About 15 MiB of realistic sessions, as JSON values (made once: it takes seconds)."""
    return generate_sessions(FLOOD_SESSIONS, seed=11, months=2)


def spoiled(sessions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each session made invalid in one field, four ways in turn (and so each distinct)."""
    spoilt = copy.deepcopy(sessions)
    for index, item in enumerate(spoilt):
        way = index % 4
        if way == 0:
            item["EnergyDelivered"] = -1 - index
        elif way == 1:
            item["EndAt"] = "2010-01-01T00:00:00.000Z"  # before its StartAt
        elif way == 2:
            item["ConnectorID"] = f"connector {index}"
        else:
            del item["ChargerID"]
    return spoilt


def tiny_objects(count: int) -> bytes:
    return ("[" + ",".join(f'{{"x":{number}}}' for number in range(count)) + "]").encode("utf-8")


def the_only_record(settings: Settings) -> PushRecord:
    (record,) = push_records(settings)
    return record


def archived_body(settings: Settings, name: str | None) -> bytes:
    assert name, "the push names no archive blob"
    archive = RawArchive.connect(settings)
    try:
        return archive.body_at(name)
    finally:
        archive.close()


def assert_bounded(receiver: ServedReceiver, response: requests.Response, seconds: float) -> None:
    print(  # the figures of the judgement, shown by pytest -rP
        f"answered {response.status_code} after {seconds:.1f} s, answer {len(response.content):,} bytes, "
        f"server peak RSS {receiver.peak_rss_bytes() / MiB:.0f} MiB"
    )
    assert seconds < 60, f"answered after {seconds:.1f} s"
    assert len(response.content) < ANSWER_LIMIT, f"an answer of {len(response.content):,} bytes"
    assert receiver.peak_rss_bytes() < PEAK_RSS_LIMIT, f"peak RSS {receiver.peak_rss_bytes():,} bytes"


def test_a_flood_of_1_2_million_tiny_objects_is_413_saying_the_limit_bounded_and_archived(
    receiver: ServedReceiver, settings: Settings
) -> None:
    body = tiny_objects(1_200_000)
    assert 14 * MiB < len(body) < settings.max_body_bytes
    mark = len(receiver.lines)
    response, seconds = timed(lambda: post(receiver.sessions_url, body, key=OLD_KEY, timeout=120))
    assert response.status_code == 413, response.text[:1000]
    assert response.json()["error"] == "too_many_sessions"
    assert str(settings.max_push_sessions) in re.sub(r"[,_ ]", "", response.json()["message"])
    assert_bounded(receiver, response, seconds)
    eventually(lambda: log_events(receiver.lines[mark:], "push"), within=10, what="the push's log line")
    print(f"log of the push: {log_bytes(receiver.lines[mark:]):,} bytes")
    assert log_bytes(receiver.lines[mark:]) < LOG_LIMIT
    record = the_only_record(settings)
    assert (record.status, record.outcome, record.body_bytes) == (413, "refused", len(body))
    assert archived_body(settings, record.raw_archive) == body
    assert quarantined(settings) == []  # refused whole: not one of them was written


def test_a_flood_of_realistic_sessions_each_invalid_in_one_field_is_taken_bounded_and_nothing_lost(
    receiver: ServedReceiver, settings: Settings, depot_sessions: list[dict[str, Any]]
) -> None:
    body = json.dumps(spoiled(depot_sessions)).encode("utf-8")
    assert 14 * MiB < len(body) < settings.max_body_bytes
    mark, started = len(receiver.lines), time.monotonic()
    response, seconds = timed(lambda: post(receiver.sessions_url, body, key=OLD_KEY, timeout=120))
    assert response.status_code in (200, 202), response.text[:1000]
    assert_bounded(receiver, response, seconds)
    answer = response.json()
    push_id = answer["push_id"]
    if response.status_code == 200:
        assert answer["rejected"] == FLOOD_SESSIONS
        assert len(answer["rejected_sessions"]) <= MAX_LISTED_REJECTIONS
        assert f"--push {push_id}" in answer["rejected_sessions_where"]
    else:
        assert answer["received"] == FLOOD_SESSIONS and f"--id {push_id}" in answer["message"]
    record = finished_record(settings, push_id, within=240)
    assert record.outcome == "stored"
    assert (record.counts["received"], record.counts["stored"], record.counts["rejected"]) == (
        FLOOD_SESSIONS,
        0,
        FLOOD_SESSIONS,
    )
    assert receiver.peak_rss_bytes() < PEAK_RSS_LIMIT, f"peak RSS {receiver.peak_rss_bytes():,} bytes"
    eventually(lambda: log_events(receiver.lines[mark:], "push"), within=10, what="the push's log line")
    print(
        f"finished in the background after {time.monotonic() - started:.1f} s; log of the push: "
        f"{log_bytes(receiver.lines[mark:]):,} bytes; "
        f"server peak RSS {receiver.peak_rss_bytes() / MiB:.0f} MiB"
    )
    assert log_bytes(receiver.lines[mark:]) < LOG_LIMIT

    assert archived_body(settings, record.raw_archive) == body
    entries = [entry for entry in quarantined(settings) if entry["PushId"] == push_id]
    kept = [entry for entry in entries if "Overflow" not in entry]
    (overflow,) = [entry for entry in entries if "Overflow" in entry]
    assert len(kept) <= QUARANTINE_PER_PUSH
    assert overflow["RawArchive"] == record.raw_archive
    assert len(kept) + overflow["Overflow"].value == FLOOD_SESSIONS  # every one kept, or pointed to


def test_a_push_of_more_rejected_sessions_than_listed_answers_the_total_and_where_the_rest_are(
    receiver: ServedReceiver, settings: Settings
) -> None:
    rejected = 300  # more than the answer lists; few enough to be answered at once (200), not 202
    response = post(
        receiver.sessions_url, [session(EnergyDelivered=-1 - n) for n in range(rejected)], key=OLD_KEY
    )
    assert response.status_code == 200, response.text[:1000]
    answer = response.json()
    assert answer["rejected"] == rejected
    assert [item["index"] for item in answer["rejected_sessions"]] == list(range(MAX_LISTED_REJECTIONS))
    assert answer["rejected_sessions_not_listed"] == rejected - MAX_LISTED_REJECTIONS
    assert f"rejected list --push {answer['push_id']}" in answer["rejected_sessions_where"]


# --- 15 MiB of valid sessions -----------------------------------------------------------------


def stored_identities(settings: Settings) -> list[tuple[str, int]]:
    """(ChargerID, TransactionID) of every session record (pointers left out)."""
    sessions_table, _ = tables(settings)
    found = []
    for entity in sessions_table.list_entities(select=["ChargerID", "TransactionID"]):
        if entity.get("ChargerID") is not None:
            transaction = entity["TransactionID"]
            found.append((str(entity["ChargerID"]), int(getattr(transaction, "value", transaction))))
    return found


@pytest.mark.timeout(600)
def test_15_mib_of_valid_sessions_is_answered_202_within_15_s_and_every_session_stored_soon_after(
    receiver: ServedReceiver, settings: Settings, depot_sessions: list[dict[str, Any]]
) -> None:
    body = json.dumps(depot_sessions).encode("utf-8")
    assert 14 * MiB < len(body) < settings.max_body_bytes
    started = time.monotonic()
    response, seconds = timed(lambda: post(receiver.sessions_url, body, key=OLD_KEY, timeout=120))
    print(f"answered {response.status_code} after {seconds:.1f} s ({len(body):,} bytes)")
    assert response.status_code == 202, response.text[:1000]
    assert seconds < 15, f"answered after {seconds:.1f} s"
    answer = response.json()
    assert answer["received"] == FLOOD_SESSIONS
    assert f"python -m sessions pushes --id {answer['push_id']}" in answer["message"]

    record = finished_record(settings, answer["push_id"], within=420)
    print(
        f"stored in the background after {time.monotonic() - started:.1f} s, server CPU "
        f"{receiver.cpu_seconds():.1f} s, peak RSS {receiver.peak_rss_bytes() / MiB:.0f} MiB"
    )
    assert (record.outcome, record.status, record.mode) == ("stored", 202, "background")
    assert (record.counts["received"], record.counts["stored"], record.counts["rejected"]) == (
        FLOOD_SESSIONS,
        FLOOD_SESSIONS,
        0,
    )
    stored = stored_identities(settings)
    assert len(stored) == FLOOD_SESSIONS
    assert set(stored) == {(item["ChargerID"], item["TransactionID"]) for item in depot_sessions}
    assert receiver.peak_rss_bytes() < PEAK_RSS_LIMIT, f"peak RSS {receiver.peak_rss_bytes():,} bytes"
