"""The HTTP contract (docs/http-api.md, openapi.yaml), over real HTTP against
`python -m sessions serve` and Azurite."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from devtools.served import ServedReceiver
from sessions.keys import KEY_HEADER
from sessions.settings import Settings
from tests.helpers import PROJECT
from tests.helpers.push_records import log_events
from tests.helpers.pushes import NEW_KEY, OLD_KEY, as_body, post, session
from tests.helpers.tables import all_entities, tables

SAMPLES = PROJECT / "samples"
CLOSED_PORT_STORAGE = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
    "TableEndpoint=http://127.0.0.1:9/devstoreaccount1;BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;"
    "QueueEndpoint=http://127.0.0.1:9/devstoreaccount1;"
)


def stored_count(settings: Settings) -> int:
    return len(all_entities(tables(settings)[0]))


def quarantine_count(settings: Settings) -> int:
    return len(all_entities(tables(settings)[1]))


def assert_json_error(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["error"] == code and body["message"]
    return body


def send_head_only(url: str, headers: dict[str, str], timeout: float = 10) -> http.client.HTTPResponse:
    """Send a POST's headers but none of the body it declares, and read the answer."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    connection.putrequest("POST", parts.path)
    for name, value in headers.items():
        connection.putheader(name, value)
    connection.endheaders()
    return connection.getresponse()


# 1. Key first


def test_a_wrong_key_is_401_and_stores_nothing(receiver: ServedReceiver, settings: Settings) -> None:
    response = post(receiver.sessions_url, [session()], key="not-the-key")
    assert_json_error(response, 401, "unauthorized")
    assert stored_count(settings) == 0


def test_a_missing_key_is_401_and_stores_nothing(receiver: ServedReceiver, settings: Settings) -> None:
    assert_json_error(post(receiver.sessions_url, [session()], key=None), 401, "unauthorized")
    assert stored_count(settings) == 0


def test_old_and_new_key_are_both_taken_during_a_rotation(
    receiver: ServedReceiver, settings: Settings
) -> None:
    assert post(receiver.sessions_url, [session()], key=OLD_KEY).status_code == 200
    assert post(receiver.sessions_url, [session()], key=NEW_KEY).status_code == 200
    assert stored_count(settings) == 2


def test_the_header_name_is_case_insensitive(receiver: ServedReceiver) -> None:
    response = requests.post(
        receiver.sessions_url,
        data=as_body([session()]),
        headers={KEY_HEADER.lower(): OLD_KEY, "content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 200


def test_a_key_in_the_query_string_is_not_accepted(receiver: ServedReceiver) -> None:
    response = requests.post(
        f"{receiver.sessions_url}?subscription-key={OLD_KEY}",
        data=as_body([session()]),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert_json_error(response, 401, "unauthorized")


def test_two_key_headers_are_refused(receiver: ServedReceiver) -> None:
    parts = urlsplit(receiver.sessions_url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    body = as_body([session()])
    connection.putrequest("POST", parts.path)
    connection.putheader(KEY_HEADER, OLD_KEY)
    connection.putheader(KEY_HEADER, NEW_KEY)
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(len(body)))
    connection.endheaders(body)
    assert connection.getresponse().status == 401


def test_the_key_is_checked_before_the_body_is_looked_at(
    receiver: ServedReceiver, settings: Settings
) -> None:
    """The host has read the body (as in Azure), but with a wrong key nothing of it is parsed,
    archived or recorded: a body that is not JSON is 401, not 400."""
    response = requests.post(
        receiver.sessions_url,
        data=b"\xff not json at all" * 1000,
        headers={KEY_HEADER: "wrong", "Content-Type": "application/json"},
        timeout=30,
    )
    assert_json_error(response, 401, "unauthorized")
    assert stored_count(settings) == 0
    (line,) = [entry for entry in log_events(receiver.lines, "push") if entry["status"] == 401]
    assert "raw_archive" not in line and "push_id" not in line


def test_no_configured_key_refuses_every_push_with_503_and_logs_why(
    serve: Callable[..., ServedReceiver], settings: Settings
) -> None:
    receiver = serve(CHARGEPILOT_API_KEYS="")
    for key in (None, "", "anything", OLD_KEY):
        assert_json_error(post(receiver.sessions_url, [session()], key=key), 503, "not_configured")
    assert stored_count(settings) == 0
    assert "no key in CHARGEPILOT_API_KEYS" in receiver.log


def test_an_unresolved_key_vault_reference_refuses_every_push_and_says_why(
    serve: Callable[..., ServedReceiver],
) -> None:
    reference = "@Microsoft.KeyVault(VaultName=kv-x;SecretName=chargepilot-api-keys)"
    receiver = serve(CHARGEPILOT_API_KEYS=reference)
    assert_json_error(post(receiver.sessions_url, [session()], key=reference), 503, "not_configured")
    assert "unresolved Key Vault reference" in receiver.log


def test_keys_never_reach_the_log_or_the_answer(receiver: ServedReceiver) -> None:
    wrong = "presented-wrong-key-31337"
    answers = [
        post(receiver.sessions_url, [session()], key=wrong).text,
        post(receiver.sessions_url, [session()], key=OLD_KEY).text,
        post(receiver.sessions_url, [session(EndAt="2000-01-01T00:00:00Z")], key=NEW_KEY).text,
        post(receiver.sessions_url, b"not json", key=NEW_KEY).text,
    ]
    receiver.stop()
    for secret in (wrong, OLD_KEY, NEW_KEY):
        assert secret not in receiver.log
        assert not any(secret in answer for answer in answers)


# 2. Body


def test_a_declared_body_over_the_hosts_limit_is_refused_by_the_host_without_reading_it(
    serve: Callable[..., ServedReceiver], settings: Settings
) -> None:
    """As deployed: the host's limit is twice MAX_BODY_BYTES (infra/), and the host refuses a
    larger body unread, with its own 500 (the Functions host's answer, not the receiver's)."""
    receiver = serve(MAX_BODY_BYTES="1000", FUNCTIONS_REQUEST_BODY_SIZE_LIMIT="2000")
    started = time.monotonic()
    response = send_head_only(
        receiver.sessions_url,
        {KEY_HEADER: OLD_KEY, "Content-Type": "application/json", "Content-Length": "5000000"},
    )
    assert response.status == 500
    assert time.monotonic() - started < 5
    assert stored_count(settings) == 0


def test_a_body_over_max_body_bytes_within_the_hosts_limit_is_413_payload_too_large(
    serve: Callable[..., ServedReceiver], settings: Settings
) -> None:
    receiver = serve(MAX_BODY_BYTES="1000")
    response = post(receiver.sessions_url, as_body([session() for _ in range(20)]), key=OLD_KEY)
    body = assert_json_error(response, 413, "payload_too_large")
    assert "the limit is 1000 (MAX_BODY_BYTES)" in body["message"]
    assert stored_count(settings) == 0


def test_a_body_over_the_limit_without_a_declared_length_is_413(
    serve: Callable[..., ServedReceiver], settings: Settings
) -> None:
    receiver = serve(MAX_BODY_BYTES="1000")
    chunks = iter([as_body([session() for _ in range(20)])])
    response = requests.post(
        receiver.sessions_url,
        data=chunks,  # a generator: sent chunked, with no Content-Length
        headers={KEY_HEADER: OLD_KEY, "Content-Type": "application/json"},
        timeout=30,
    )
    assert_json_error(response, 413, "payload_too_large")
    assert stored_count(settings) == 0


def test_a_body_at_the_limit_is_taken(serve: Callable[..., ServedReceiver]) -> None:
    body = as_body([session()])
    receiver = serve(MAX_BODY_BYTES=str(len(body)))
    assert post(receiver.sessions_url, body, key=OLD_KEY).status_code == 200


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"]
)
def test_a_content_type_that_is_not_json_is_415(receiver: ServedReceiver, content_type: str) -> None:
    response = post(receiver.sessions_url, [session()], key=OLD_KEY, content_type=content_type)
    assert_json_error(response, 415, "unsupported_media_type")


@pytest.mark.parametrize(
    "content_type", [None, "application/json", "application/json; charset=UTF-8", "application/vnd.cp+json"]
)
def test_json_or_no_content_type_is_taken(receiver: ServedReceiver, content_type: str | None) -> None:
    assert post(receiver.sessions_url, [session()], key=OLD_KEY, content_type=content_type).status_code == 200


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"\xff\xfe[]", "not UTF-8"),
        (b"{not json", "not valid JSON"),
        (b"42", "JSON number"),
        (b'"a session"', "JSON string"),
        (b'[{"TransactionID": 1}, 5]', "item 1 of the array"),
    ],
)
def test_a_body_that_is_not_a_push_is_400_saying_what_and_where(
    receiver: ServedReceiver, settings: Settings, body: bytes, says: str
) -> None:
    answer = assert_json_error(post(receiver.sessions_url, body, key=OLD_KEY), 400, "invalid_body")
    assert says in answer["message"]
    assert stored_count(settings) == 0 and quarantine_count(settings) == 0


def test_an_empty_array_is_200_with_nothing_stored(receiver: ServedReceiver) -> None:
    response = post(receiver.sessions_url, b"[]", key=OLD_KEY)
    assert response.status_code == 200
    assert response.json()["received"] == response.json()["stored"] == 0


# 3, 4, 6. Sessions judged one by one; rejected ones kept; the answer


def test_a_single_object_and_an_array_are_both_pushes(receiver: ServedReceiver, settings: Settings) -> None:
    single = (SAMPLES / "single-session.json").read_bytes()
    hourly = (SAMPLES / "hourly-push.json").read_bytes()
    assert post(receiver.sessions_url, single, key=OLD_KEY).json()["stored"] == 1
    assert post(receiver.sessions_url, hourly, key=OLD_KEY).json()["stored"] == 24
    assert stored_count(settings) == 25


def test_a_mixed_push_is_200_with_its_rejected_list(receiver: ServedReceiver, settings: Settings) -> None:
    bad_energy = session(ChargerID="C-9", TransactionID=9, EnergyDelivered=-5)
    unreadable = {"ChargerID": ["not", "a", "string"], "EnergyDelivered": "lots"}
    push = [session(), bad_energy, session(), unreadable]
    response = post(receiver.sessions_url, push, key=OLD_KEY)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    answer = response.json()
    assert (answer["received"], answer["stored"], answer["rejected"]) == (4, 2, 2)
    first, second = answer["rejected_sessions"]
    assert first["index"] == 1 and first["ChargerID"] == "C-9" and first["TransactionID"] == 9
    assert first["errors"] == [
        {"field": "EnergyDelivered", "message": "Input should be greater than or equal to 0"}
    ]
    assert second["index"] == 3 and "ChargerID" not in second and "TransactionID" not in second
    assert {error["field"] for error in second["errors"]} >= {"ChargerID", "EnergyDelivered", "StartAt"}
    assert stored_count(settings) == 2 and quarantine_count(settings) == 2

    again = post(receiver.sessions_url, push, key=NEW_KEY).json()
    assert again["rejected"] == 2
    assert stored_count(settings) == 2 and quarantine_count(settings) == 2


def test_each_rejected_session_is_logged_for_the_operator(receiver: ServedReceiver) -> None:
    post(
        receiver.sessions_url,
        [session(ChargerID="LOGGED-1", TransactionID=4242, InitialSoC=120)],
        key=OLD_KEY,
    )
    receiver.stop()
    rejected = [json.loads(line.split(": ", 1)[1]) for line in receiver.lines if '"session_rejected"' in line]
    assert len(rejected) == 1
    assert rejected[0]["ChargerID"] == "LOGGED-1" and rejected[0]["TransactionID"] == 4242
    assert rejected[0]["reasons"] == ["InitialSoC: Input should be less than or equal to 100"]
    (summary,) = [json.loads(line.split(": ", 1)[1]) for line in receiver.lines if '"event": "push"' in line]
    assert (summary["received"], summary["stored"], summary["rejected"]) == (1, 0, 1)


# 5. Idempotent


def test_the_same_push_sent_concurrently_over_http_is_stored_once(
    receiver: ServedReceiver, settings: Settings
) -> None:
    push = [session(ChargerID=f"C{i % 4}", TransactionID=i) for i in range(200)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda _: post(receiver.sessions_url, push, key=OLD_KEY), range(4)))
    assert [answer.status_code for answer in answers] == [200] * 4
    assert stored_count(settings) == 200


# 6. Storage down


def test_unreachable_storage_is_503_with_retry_after_and_claims_nothing(
    serve: Callable[..., ServedReceiver],
) -> None:
    receiver = serve(SESSIONS_STORAGE=CLOSED_PORT_STORAGE)
    started = time.monotonic()
    response = post(receiver.sessions_url, [session()], key=OLD_KEY)
    answer = assert_json_error(response, 503, "storage_unavailable")
    assert int(response.headers["Retry-After"]) > 0
    assert "stored" not in answer and "received" not in answer
    assert time.monotonic() - started < 20


# 7. Health


def test_health_is_200_when_storage_is_reachable_and_shows_no_data(receiver: ServedReceiver) -> None:
    response = requests.get(receiver.health_url, timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {"status": "healthy"}


def test_health_is_503_when_storage_is_unreachable(serve: Callable[..., ServedReceiver]) -> None:
    receiver = serve(SESSIONS_STORAGE=CLOSED_PORT_STORAGE)
    response = requests.get(receiver.health_url, timeout=30)
    assert response.status_code == 503
    assert response.json() == {"status": "unhealthy", "reason": "storage unreachable"}


def test_health_is_503_when_no_key_is_configured(serve: Callable[..., ServedReceiver]) -> None:
    receiver = serve(CHARGEPILOT_API_KEYS=" , ")
    response = requests.get(receiver.health_url, timeout=30)
    assert response.status_code == 503
    assert response.json() == {"status": "unhealthy", "reason": "no API key configured"}


def test_unusable_settings_refuse_pushes_with_503_and_say_so_in_the_log(
    serve: Callable[..., ServedReceiver],
) -> None:
    receiver = serve(MAX_BODY_BYTES="sixteen megabytes")
    assert_json_error(post(receiver.sessions_url, [session()], key=OLD_KEY), 503, "not_configured")
    assert requests.get(receiver.health_url, timeout=30).status_code == 503
    assert "MAX_BODY_BYTES must be a whole number" in receiver.log
