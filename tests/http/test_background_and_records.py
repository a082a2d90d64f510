"""Over HTTP against a served receiver: the push records an operator reads with
`python -m sessions pushes` during a key rotation; Content-Encoding; which size of push is 413,
200 or 202; and a push answered 202 whose background run fails every time, which must end in
the poison queue with its record and its log saying `poisoned` (issue 11).
"""

from __future__ import annotations

import gzip
import json
import re
import struct
import time
import zlib
from collections.abc import Callable
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devtools.azurite import Azurite
from devtools.served import ServedReceiver, receiver_environment
from sessions.keys import fingerprint
from sessions.receiver import BACKGROUND_ATTEMPTS, SYNC_MAX_SESSIONS
from sessions.settings import Settings, StorageConnection
from sessions.storage import MessageQueue
from sessions.storage.pushes import PushRecord, PushRecords
from tests.helpers.blob_read_fault import BlobReadFault, Fault
from tests.helpers.push_records import (
    eventually,
    finished_record,
    isolated,
    log_events,
    push_records,
    record_of,
)
from tests.helpers.pushes import NEW_KEY, OLD_KEY, post, session
from tests.helpers.quick_retry_host import start_quick_retry_receiver
from tests.helpers.tables import quarantined, stored
from tests.helpers.tools import Ran, run_tool_process

MiB = 1024 * 1024
WRONG_KEY = "test-key-wrong-000000"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """This test's own push records, index and queue, besides its own tables and archive."""
    return isolated(settings)


def pushes(settings: Settings, *arguments: str) -> Ran:
    """`python -m sessions pushes ARGUMENTS`, run as an operator runs it, on this test's records."""
    ran = run_tool_process(receiver_environment(settings), "pushes", *arguments, timeout=60)
    for key in (OLD_KEY, NEW_KEY, WRONG_KEY):
        assert key not in ran.out + ran.err
    return ran


def recorded_push(settings: Settings, received_at: datetime, push_id: str) -> PushRecord:
    """A push record as the receiver writes it for a push of 10 sessions taken with key 1."""
    record = PushRecord(
        push_id=push_id,
        received_at=received_at,
        status=200,
        outcome="stored",
        body_bytes=2345,
        duration_ms=120.0,
        counts={"received": 10, "stored": 10, "rejected": 0},
        key_slot=1,
        key_fingerprint=fingerprint(OLD_KEY),
        finished_at=received_at,
    )
    records = PushRecords.connect(settings)
    try:
        records.save(record)
    finally:
        records.close()
    return record


# --- a key rotation, as `python -m sessions pushes` shows it ---------------------------------


def test_pushes_shows_both_pushes_of_a_rotation_with_the_slot_and_fingerprint_of_each_key(
    receiver: ServedReceiver, settings: Settings
) -> None:
    with_old = post(receiver.sessions_url, [session()], key=OLD_KEY)
    with_new = post(receiver.sessions_url, [session(), session()], key=NEW_KEY)
    assert (with_old.status_code, with_new.status_code) == (200, 200)

    listed = pushes(settings, "--since", "1h")
    assert listed.status == 0, listed.err
    rows = {line.split()[2]: line for line in listed.out.splitlines() if re.match(r"\d{4}-\d\d-\d\d ", line)}
    old_row, new_row = rows[with_old.json()["push_id"][:8]], rows[with_new.json()["push_id"][:8]]
    assert old_row.endswith(f"1 ({fingerprint(OLD_KEY)})")
    assert new_row.endswith(f"2 ({fingerprint(NEW_KEY)})")
    assert len(rows) == 2 and "2 pushes since" in listed.out
    assert listed.out.index(new_row) < listed.out.index(old_row)  # newest first


def test_a_wrong_key_is_401_logged_and_leaves_no_push_record(
    receiver: ServedReceiver, settings: Settings
) -> None:
    response = post(receiver.sessions_url, [session()], key=WRONG_KEY)
    assert response.status_code == 401
    line = eventually(lambda: log_events(receiver.lines, "push"), within=5, what="the push's log line")[-1]
    assert (line["status"], line["outcome"]) == (401, "unauthorized")
    assert "push_id" not in line and "key_slot" not in line
    assert push_records(settings) == []
    assert "No push since" in pushes(settings, "--since", "1h").out


def test_max_silence_exits_0_right_after_a_push(receiver: ServedReceiver, settings: Settings) -> None:
    assert post(receiver.sessions_url, [session()], key=NEW_KEY).status_code == 200
    checked = pushes(settings, "--max-silence", "1m")
    assert checked.status == 0, checked.err
    assert "OK: the newest push was taken" in checked.err


def test_max_silence_exits_3_when_the_newest_push_is_older_than_it(settings: Settings) -> None:
    recorded_push(settings, datetime.now(UTC) - timedelta(minutes=5), "older-push")
    checked = pushes(settings, "--max-silence", "1m")
    assert checked.status == 3, (checked.out, checked.err)
    assert "SILENT: no push taken within" in checked.err
    assert pushes(settings, "--max-silence", "10m").status == 0


def test_pushes_by_hour_shows_the_hours_without_a_push_as_gaps(settings: Settings) -> None:
    now = datetime.now(UTC)
    recorded_push(settings, now - timedelta(hours=3), "three-hours-ago")
    recorded_push(settings, now, "just-now")
    by_hour = pushes(settings, "--by", "hour", "--since", "4h")
    assert by_hour.status == 0, by_hour.err
    lines = {line[:16]: line for line in by_hour.out.splitlines()[1:]}

    def hour(moment: datetime) -> str:
        return f"{moment:%Y-%m-%d %H}:00"

    for pushed in (now - timedelta(hours=3), now):
        assert lines[hour(pushed)].split()[2] == "1", by_hour.out  # one push, with key 1
        assert lines[hour(pushed)].split()[-1] == "1"
    for quiet in (now - timedelta(hours=2), now - timedelta(hours=1)):
        assert lines[hour(quiet)].endswith("-       (no push)"), by_hour.out


# --- Content-Encoding -------------------------------------------------------------------------


def test_a_gzip_body_is_taken(receiver: ServedReceiver, settings: Settings) -> None:
    sent = [session(), session()]
    body = gzip.compress(json.dumps(sent).encode("utf-8"))
    response = post(receiver.sessions_url, body, key=OLD_KEY, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 2
    assert {entity["TransactionID"].value for entity in stored(settings)} == {
        s["TransactionID"] for s in sent
    }


@pytest.mark.parametrize("broken", ["cut short", "not gzip at all"])
def test_a_gzip_body_that_is_not_valid_gzip_is_400_and_nothing_stored(
    receiver: ServedReceiver, settings: Settings, broken: str
) -> None:
    plain_json = json.dumps([session(), session()]).encode("utf-8")
    body = gzip.compress(plain_json)[:-12] if broken == "cut short" else plain_json
    response = post(receiver.sessions_url, body, key=OLD_KEY, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_body"
    assert stored(settings) == []
    line = eventually(lambda: log_events(receiver.lines, "push"), within=5, what="the push's log line")[-1]
    assert (line["status"], line["outcome"]) == (400, "refused")


def gzip_bomb(expanded: int) -> bytes:
    """A valid gzip body of `expanded` bytes of JSON white space, about a thousandth of that long:
    one compressed MiB, repeated (a full flush makes each block stand alone)."""
    chunk = b" " * MiB
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    head = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    end = compressor.flush(zlib.Z_FINISH)[:-8]  # the trailer comes for the whole of it
    crc = 0
    for _ in range(expanded // MiB):
        crc = zlib.crc32(chunk, crc)
    return head + block * (expanded // MiB - 1) + end + struct.pack("<II", crc, expanded % 2**32)


def test_a_gzip_bomb_is_413_and_never_expanded_in_full(
    serve: Callable[..., ServedReceiver], settings: Settings
) -> None:
    limit = 2 * MiB
    bomb = gzip_bomb(1024 * MiB)
    assert len(bomb) < limit  # its declared length passes: only what it expands to is over
    receiver = serve(MAX_BODY_BYTES=str(limit))
    started = time.monotonic()
    response = post(receiver.sessions_url, bomb, key=OLD_KEY, headers={"Content-Encoding": "gzip"})
    seconds, peak = time.monotonic() - started, receiver.peak_rss_bytes()
    print(f"answered {response.status_code} after {seconds:.1f} s, server peak RSS {peak / MiB:.0f} MiB")
    assert response.status_code == 413, response.text
    assert response.json()["error"] == "payload_too_large"
    assert str(limit) in response.json()["message"]
    assert seconds < 10
    assert peak < 512 * MiB  # a gibibyte expanded would be twice that
    assert stored(settings) == [] and quarantined(settings) == []


@pytest.mark.parametrize("encoding", ["br", "deflate", "gzip, br"])
def test_a_body_in_another_encoding_is_415_and_never_read_as_json(
    receiver: ServedReceiver, settings: Settings, encoding: str
) -> None:
    plain_json = json.dumps([session()]).encode("utf-8")  # would be a valid push if read as it is
    response = post(receiver.sessions_url, plain_json, key=OLD_KEY, headers={"Content-Encoding": encoding})
    assert response.status_code == 415, response.text
    assert response.json()["error"] == "unsupported_media_type"
    assert stored(settings) == []


# --- the size of a push: 413, 200, 202 --------------------------------------------------------


@pytest.fixture
def ten_at_most(serve: Callable[..., ServedReceiver]) -> ServedReceiver:
    """A receiver that takes at most 10 sessions a push."""
    return serve(MAX_PUSH_SESSIONS="10")


def test_more_sessions_than_max_push_sessions_is_413_saying_the_limit(
    ten_at_most: ServedReceiver, settings: Settings
) -> None:
    response = post(ten_at_most.sessions_url, [session() for _ in range(11)], key=OLD_KEY)
    assert response.status_code == 413, response.text
    assert response.json()["error"] == "too_many_sessions"
    assert "10 sessions (MAX_PUSH_SESSIONS)" in response.json()["message"]
    assert stored(settings) == []


def test_a_push_refused_for_too_many_sessions_is_recorded_without_a_count_it_never_made(
    ten_at_most: ServedReceiver, settings: Settings
) -> None:
    assert post(ten_at_most.sessions_url, [session() for _ in range(50)], key=OLD_KEY).status_code == 413
    (record,) = push_records(settings)
    assert (record.status, record.outcome) == (413, "refused")
    # The receiver stops reading after the 11th: the record may say 50, or no count, never 11.
    assert record.counts.get("received") in (None, 50), record.counts


def test_a_push_of_more_than_sync_max_sessions_is_202_at_once_for_its_size(receiver: ServedReceiver) -> None:
    # (Up to SYNC_MAX_SESSIONS a push is 200, unless storage cannot take it within the deadline:
    # then it is 202 too. So only this side of the line is a contract that holds on any machine.)
    count = SYNC_MAX_SESSIONS + 1
    response = post(receiver.sessions_url, [session() for _ in range(count)], key=OLD_KEY)
    assert response.status_code == 202, response.text[:1000]
    answer = response.json()
    assert (answer["status"], answer["received"]) == ("accepted", count)
    assert f"pushes --id {answer['push_id']}" in answer["message"]
    line = eventually(
        lambda: [e for e in log_events(receiver.lines, "push") if e.get("push_id") == answer["push_id"]],
        within=5,
        what="the push's log line",
    )[0]
    assert line["reason"] == f"{count} sessions: stored in the background"  # by its size, not by time


def test_a_large_push_sent_twice_is_stored_once_and_each_outcome_is_where_its_answer_says(
    receiver: ServedReceiver, settings: Settings
) -> None:
    sent = [session() for _ in range(SYNC_MAX_SESSIONS + 1)]
    answers = [post(receiver.sessions_url, sent, key=OLD_KEY) for _ in range(2)]  # a sender's retry
    assert [answer.status_code for answer in answers] == [202, 202]
    records = [finished_record(settings, answer.json()["push_id"], within=180) for answer in answers]
    assert [record.outcome for record in records] == ["stored", "stored"]
    assert [record.counts["stored"] for record in records] == [len(sent), len(sent)]
    assert sorted(record.counts["unchanged"] for record in records) == [0, len(sent)]
    assert len(stored(settings)) == len(sent)
    for answer in answers:  # the command the answer names, run as it says
        command = re.search(r"python -m sessions (pushes --id \S+)", answer.json()["message"])
        assert command is not None, answer.json()["message"]
        shown = run_tool_process(receiver_environment(settings), *command.group(1).split())
        assert shown.status == 0, shown.err
        assert re.search(r"^Answered +202 stored \(background\)$", shown.out, re.MULTILINE), shown.out


# --- a background run that fails every time ---------------------------------------------------


@pytest.mark.parametrize("fault", ["refused", "corrupted"])
def test_a_push_whose_background_run_always_fails_ends_in_the_poison_queue_recorded_and_logged_poisoned(
    azurite: Azurite, settings: Settings, tmp_path: Path, fault: Fault
) -> None:
    """Its archived body cannot be read back: refused by storage, or unreadable when it comes."""
    with closing(BlobReadFault(azurite, fault)) as unreadable:
        faulty = replace(settings, storage=StorageConnection(connection_string=unreadable.connection_string))
        receiver = start_quick_retry_receiver(receiver_environment(faulty), tmp_path)
        try:
            response = post(
                receiver.sessions_url, [session() for _ in range(SYNC_MAX_SESSIONS + 1)], key=OLD_KEY
            )
            assert response.status_code == 202, response.text[:1000]
            push_id = response.json()["push_id"]
            assert settings.push_queue is not None
            with MessageQueue.connect(settings.require_storage(), settings.push_queue) as queue:
                eventually(queue.poison_count, within=90, what="the push in the poison queue")
                poisoned = [json.loads(message.text)["push_id"] for message in queue.peek_poison()]
                left = queue.count()
        finally:
            receiver.stop()
    assert (poisoned, left) == ([push_id], 0)
    assert unreadable.spoiled >= BACKGROUND_ATTEMPTS
    record = record_of(settings, push_id)
    assert record is not None and record.reason  # says why
    assert (record.outcome, record.status, record.attempts) == ("poisoned", 202, BACKGROUND_ATTEMPTS)
    finished = [event for event in log_events(receiver.lines, "push_finished") if event["push_id"] == push_id]
    assert [event["outcome"] for event in finished] == ["failed"] * (BACKGROUND_ATTEMPTS - 1) + ["poisoned"]
    assert stored(settings) == []
    # The operator's view: the push given up, in the poison queue, with what to do about it.
    shown = run_tool_process(receiver_environment(settings), "pushes", "--since", "1h")
    assert shown.status == 0, shown.err
    assert "1 push(es) given up after the background's last try" in shown.out and push_id in shown.out
