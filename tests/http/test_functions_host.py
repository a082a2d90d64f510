"""The local stand-in for the Functions host: routes, request and response objects, queue triggers,
and its own handling of bodies (read whole, within the host's limit), slow, malformed and
`Expect: 100-continue` requests, as the Functions host."""

from __future__ import annotations

import http.client
import itertools
import json
import logging
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
import requests

from devtools.azurite import Azurite
from devtools.served import NO_LOCAL_SETTINGS, PROJECT, ServedReceiver
from sessions.keys import KEY_HEADER
from sessions.settings import SettingsError, StorageConnection
from sessions.storage import MessageQueue
from tests.helpers.pushes import OLD_KEY, as_body, post, session
from tools.host import BODY_LIMIT_SETTING, FunctionsHost, body_limit_of, describe, start_host

TOY_APP = """
import asyncio
import json
import time
import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
# What the queue function saw, one entry per call (the tests read it).
CALLS = []


@app.route(route="echo/{name}", methods=["GET", "POST"])
def echo(req: func.HttpRequest) -> func.HttpResponse:
    answer = {
        "method": req.method,
        "route": dict(req.route_params),
        "query": dict(req.params),
        "header": req.headers.get("X-Custom"),
        "body": req.get_body().decode("utf-8"),
        "url": req.url,
    }
    return func.HttpResponse(json.dumps(answer), status_code=201, mimetype="application/json",
                             headers={"X-Answer": "yes"})


@app.route(route="slow", methods=["GET"])
async def slow(req: func.HttpRequest) -> func.HttpResponse:
    await asyncio.sleep(0.01)
    return func.HttpResponse("async ok")


@app.route(route="context", methods=["GET"])
def with_context(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return func.HttpResponse(context.function_name)


@app.route(route="ignores-body", methods=["POST"])
def ignores_body(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("not read", status_code=401)


@app.route(route="boom", methods=["GET"])
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("boom")


@app.route(route="swallows-body-errors", methods=["POST"])
def swallows_body_errors(req: func.HttpRequest) -> func.HttpResponse:
    try:
        return func.HttpResponse(f"got {len(req.get_body())} bytes", status_code=201)
    except Exception:
        return func.HttpResponse("took it anyway", status_code=200)


@app.queue_trigger(arg_name="msg", queue_name="%TOY_QUEUE%", connection="TOY_STORAGE")
def work(msg: func.QueueMessage) -> None:
    order = json.loads(msg.get_body())
    CALLS.append({"message": msg, "at": time.monotonic()})
    if msg.dequeue_count <= order.get("fail", 0):
        raise RuntimeError("failing on purpose, try " + str(msg.dequeue_count))
"""
# host.json of the queue tests: quick retries, quick polls, three tries before the poison queue.
QUEUE_HOST_JSON: dict[str, object] = {
    "version": "2.0",
    "extensions": {
        "queues": {
            "batchSize": 2,
            "maxDequeueCount": 3,
            "visibilityTimeout": "00:00:01",
            "maxPollingInterval": "00:00:00.200",
            "messageEncoding": "base64",
        }
    },
}


def toy_project(tmp_path: Path, host_json: dict[str, object] | None) -> tuple[Path, str]:
    module = f"toy_app_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(TOY_APP))
    if host_json is not None:
        (tmp_path / "host.json").write_text(json.dumps(host_json))
    return tmp_path, module


RunHost = Callable[..., FunctionsHost]


@pytest.fixture
def running_host() -> Iterator[RunHost]:
    started: list[FunctionsHost] = []

    def run(project: Path, module: str, **options: Any) -> FunctionsHost:
        server = start_host(
            "127.0.0.1", 0, project=project, app_module=module, env=options.pop("env", {}), **options
        )
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        return server

    yield run
    for server in started:
        server.shutdown()
        server.server_close()


@pytest.fixture
def toy(tmp_path: Path, running_host: RunHost) -> FunctionsHost:
    return running_host(*toy_project(tmp_path, {"version": "2.0"}))


@pytest.fixture
def impatient(tmp_path: Path, running_host: RunHost) -> FunctionsHost:
    """The toy app on a host that waits one second for a silent sender."""
    return running_host(*toy_project(tmp_path, {"version": "2.0"}), request_timeout=1.0)


def wait_until(condition: Callable[[], bool], timeout: float = 20) -> bool:
    """Whether `condition` became true within `timeout` s (checked every 50 ms)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def connect(server: FunctionsHost, timeout: float = 10) -> socket.socket:
    host, port = server.server_address[:2]
    return socket.create_connection((str(host), port), timeout=timeout)


def read_head(sock: socket.socket) -> bytes:
    """The bytes up to the first blank line: one status line and its headers, nothing more."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        if not byte:
            break
        head += byte
    return head


def answer_of(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """The next response on the socket: status, headers (lower-case names), body."""
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response.status, {name.lower(): value for name, value in response.getheaders()}, response.read()


def raw_answer(server: FunctionsHost, request: bytes) -> tuple[int, dict[str, str], bytes]:
    with connect(server) as sock:
        sock.sendall(request)
        return answer_of(sock)


def test_routes_get_the_api_prefix_and_route_params_query_headers_body(toy: FunctionsHost) -> None:
    response = requests.post(
        f"{toy.base_url}/api/echo/charger-7?month=2025-01",
        data=b"hello",
        headers={"X-Custom": "custom value"},
        timeout=10,
    )
    assert response.status_code == 201
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.headers["X-Answer"] == "yes"
    assert response.json() == {
        "method": "POST",
        "route": {"name": "charger-7"},
        "query": {"month": "2025-01"},
        "header": "custom value",
        "body": "hello",
        "url": f"{toy.base_url}/api/echo/charger-7?month=2025-01",
    }


def test_the_route_prefix_comes_from_host_json(tmp_path: Path, running_host: RunHost) -> None:
    server = running_host(*toy_project(tmp_path, {"extensions": {"http": {"routePrefix": "v1"}}}))
    assert requests.get(f"{server.base_url}/v1/echo/x", timeout=10).status_code == 201
    assert requests.get(f"{server.base_url}/api/echo/x", timeout=10).status_code == 404


def test_async_handlers_are_awaited(toy: FunctionsHost) -> None:
    response = requests.get(f"{toy.base_url}/api/slow", timeout=10)
    assert (response.status_code, response.text) == (200, "async ok")
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_a_function_asking_for_context_gets_one(toy: FunctionsHost) -> None:
    assert requests.get(f"{toy.base_url}/api/context", timeout=10).text == "with_context"


def test_unknown_routes_are_404_and_wrong_methods_405_with_allow_both_as_json(toy: FunctionsHost) -> None:
    missing = requests.get(f"{toy.base_url}/api/nothing-here", timeout=10)
    assert missing.status_code == 404
    assert missing.headers["Content-Type"].startswith("application/json")
    assert missing.json()["error"] == "not_found"
    response = requests.delete(f"{toy.base_url}/api/echo/x", timeout=10)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, POST"
    assert response.json()["error"] == "method_not_allowed"


def test_a_function_that_raises_is_500_and_the_host_keeps_serving(toy: FunctionsHost) -> None:
    failed = requests.get(f"{toy.base_url}/api/boom", timeout=10)
    assert failed.status_code == 500
    assert failed.json()["error"] == "internal_server_error"
    assert "boom" not in failed.text  # no exception text in the answer
    assert requests.get(f"{toy.base_url}/api/slow", timeout=10).status_code == 200


def test_connections_are_kept_alive_between_requests(toy: FunctionsHost) -> None:
    with requests.Session() as client:
        for _ in range(3):
            assert client.post(f"{toy.base_url}/api/echo/a", data=b"x" * 100, timeout=10).status_code == 201


def test_the_whole_body_is_read_before_the_function_runs_and_the_connection_stays_usable(
    toy: FunctionsHost,
) -> None:
    """As the Functions host: the body is buffered first, whatever the function makes of it."""
    host, port = toy.server_address[:2]
    connection = http.client.HTTPConnection(str(host), port, timeout=10)
    connection.request("POST", "/api/ignores-body", body=b"x" * 5000)
    response = connection.getresponse()
    assert (response.status, response.read()) == (401, b"not read")
    assert response.getheader("Connection") is None
    connection.request("POST", "/api/echo/again", body=b"next")
    assert json.loads(connection.getresponse().read())["body"] == "next"
    connection.close()


def test_a_body_over_the_hosts_limit_is_500_as_the_host_answers_and_never_reaches_the_function(
    tmp_path: Path, running_host: RunHost, caplog: pytest.LogCaptureFixture
) -> None:
    """The Functions host fails binding the request (Kestrel's "Request body too large") and
    answers 500, not 413 (Azure/azure-functions-host#10519): the stand-in answers the same."""
    server = running_host(*toy_project(tmp_path, {"version": "2.0"}), env={BODY_LIMIT_SETTING: "1000"})
    within = requests.post(f"{server.base_url}/api/echo/a", data=b"x" * 1000, timeout=10)
    assert (within.status_code, len(within.json()["body"])) == (201, 1000)
    for body in (b"x" * 1001, iter([b"x" * 600, b"x" * 401])):  # declared, then chunked
        with caplog.at_level(logging.ERROR, logger="sessions.host"):
            refused = requests.post(f"{server.base_url}/api/echo/a", data=body, timeout=10)
        assert refused.status_code == 500
        assert "The max request body size is 1000 bytes" in refused.json()["message"]
        assert refused.headers["Connection"] == "close"
    assert sum("Request body too large" in record.getMessage() for record in caplog.records) == 2


def test_the_hosts_body_limit_is_100_mb_unset_and_must_be_a_number_of_bytes(
    tmp_path: Path, running_host: RunHost
) -> None:
    assert body_limit_of({}) == body_limit_of({BODY_LIMIT_SETTING: " "}) == 100 * 1024 * 1024
    assert body_limit_of({BODY_LIMIT_SETTING: "16777216"}) == 16 * 1024 * 1024
    for wrong in ("16MB", "0", "-1", "1e6"):
        with pytest.raises(SettingsError, match=BODY_LIMIT_SETTING):
            running_host(*toy_project(tmp_path, None), env={BODY_LIMIT_SETTING: wrong})


def test_a_chunked_request_body_is_read_in_full(toy: FunctionsHost) -> None:
    chunks = iter([b"first,", b"second"])
    response = requests.post(f"{toy.base_url}/api/echo/c", data=chunks, timeout=10)
    assert response.json()["body"] == "first,second"


def test_the_host_listens_where_it_is_told(toy: FunctionsHost) -> None:
    host, port = toy.server_address[:2]
    assert host == "127.0.0.1"
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass


def test_serve_reads_local_settings_and_the_environment_wins(
    serve: Callable[..., ServedReceiver], tmp_path: Path
) -> None:
    local_settings = tmp_path / "local.settings.json"
    local_settings.write_text(
        json.dumps({"Values": {"CHARGEPILOT_API_KEYS": "key-from-file", "MAX_BODY_BYTES": "400"}})
    )
    receiver = serve(settings_file=local_settings, MAX_BODY_BYTES=None)
    # The environment's key wins over the file's; the file fills in the body limit.
    assert post(receiver.sessions_url, [], key="key-from-file").status_code == 401
    assert post(receiver.sessions_url, [], key=OLD_KEY).status_code == 200
    assert post(receiver.sessions_url, as_body([session(), session()]), key=OLD_KEY).status_code == 413


# --- Slow, incomplete and malformed requests -------------------------------------------------


def test_a_body_shorter_than_its_content_length_is_400_after_the_timeout_never_processed(
    impatient: FunctionsHost,
) -> None:
    with connect(impatient) as sock:
        sock.sendall(b"POST /api/echo/short HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        started = time.monotonic()
        status, headers, body = answer_of(sock)
        waited = time.monotonic() - started
    assert status == 400  # not the echo's 201: the function never got the ten bytes as a body
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert headers["connection"] == "close"
    assert json.loads(body) == {
        "error": "bad_request",
        "message": "incomplete body: no data of the request's body for 1 s",
    }
    assert 0.9 <= waited < 8


def test_a_sender_that_hangs_up_mid_body_gets_400_at_once(impatient: FunctionsHost) -> None:
    with connect(impatient) as sock:
        sock.sendall(b"POST /api/echo/short HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        sock.shutdown(socket.SHUT_WR)
        status, _, body = answer_of(sock)
    assert status == 400
    assert json.loads(body)["message"] == "incomplete body: 10 of 100 bytes arrived"


def test_an_incomplete_body_never_reaches_the_function_whatever_it_would_make_of_it(
    impatient: FunctionsHost,
) -> None:
    with connect(impatient) as sock:
        sock.sendall(b"POST /api/swallows-body-errors HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\nabc")
        status, _, _ = answer_of(sock)
    assert status == 400


def test_an_idle_keep_alive_connection_is_closed_after_the_timeout(impatient: FunctionsHost) -> None:
    with connect(impatient) as sock:
        sock.sendall(b"GET /api/slow HTTP/1.1\r\nHost: x\r\n\r\n")
        assert answer_of(sock)[0] == 200
        started = time.monotonic()
        assert sock.recv(1) == b""  # the host hung up
        assert 0.9 <= time.monotonic() - started < 8


def test_headers_that_stop_coming_are_408_in_json(impatient: FunctionsHost) -> None:
    with connect(impatient) as sock:
        sock.sendall(b"GET /api/slow HTTP/1.1\r\nHost: x\r\n")
        status, headers, body = answer_of(sock)
    assert (status, headers["connection"]) == (408, "close")
    assert json.loads(body)["error"] == "request_timeout"


CHUNKED = b"POST /api/echo/c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize(
    ("request_bytes", "status", "error"),
    [
        (b"GARBAGE\r\n\r\n", 400, "bad_request"),
        (b"GET /api/slow HTTP/1.1 extra\r\n\r\n", 400, "bad_request"),
        (b"GET /api/slow HTTP/1.x\r\n\r\n", 400, "bad_request"),
        (b"GET /api/slow\r\n\r\n", 505, "http_version_not_supported"),
        (b"GET /api/slow HTTP/2.0\r\n\r\n", 505, "http_version_not_supported"),
        (b"BREW /api/slow HTTP/1.1\r\nHost: x\r\n\r\n", 501, "not_implemented"),
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 414, "request_uri_too_long"),
        (
            b"GET /api/slow HTTP/1.1\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n",
            431,
            "request_header_fields_too_large",
        ),
        (
            CHUNKED + b"zz\r\nhello\r\n0\r\n\r\n",
            400,
            "bad_request",
        ),
        (
            CHUNKED + b"5\r\nhelloXX0\r\n\r\n",
            400,
            "bad_request",
        ),
        (b"POST /api/echo/e HTTP/1.1\r\nHost: x\r\nContent-Length: 12x\r\n\r\n", 400, "bad_request"),
        # "\xb2" is "²" in Latin-1, the headers' charset: str.isdigit() takes it, int() does not.
        (b"POST /api/echo/e HTTP/1.1\r\nHost: x\r\nContent-Length: \xb2\r\n\r\n", 400, "bad_request"),
        (
            b"POST /api/echo/e HTTP/1.1\r\nHost: x\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n",
            400,
            "bad_request",
        ),
        (
            b"POST /api/echo/e HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n",
            500,
            "internal_server_error",
        ),
    ],
    ids=[
        "no-version",
        "four-words",
        "bad-version",
        "http-0.9",
        "http-2",
        "unknown-method",
        "long-uri",
        "long-header",
        "bad-chunk-size",
        "bad-chunk-end",
        "length-not-a-number",
        "length-superscript-digit",
        "length-of-5000-digits",
        "length-over-the-limit",
    ],
)
def test_the_hosts_own_refusals_are_json_and_close_the_connection(
    toy: FunctionsHost, request_bytes: bytes, status: int, error: str
) -> None:
    got_status, headers, body = raw_answer(toy, request_bytes)
    assert got_status == status
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert headers["connection"] == "close"
    answer = json.loads(body)
    assert answer["error"] == error and answer["message"]
    assert "aaaa" not in answer["message"] and "BREW" not in answer["message"]  # the request is not echoed


# --- Expect: 100-continue ---------------------------------------------------------------------


def test_100_continue_comes_when_the_body_is_read_before_the_function_runs(toy: FunctionsHost) -> None:
    with connect(toy) as sock:
        sock.sendall(
            b"POST /api/ignores-body HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        assert read_head(sock) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hello")
        status, headers, body = answer_of(sock)
    assert (status, body) == (401, b"not read")
    assert "connection" not in headers


def test_a_request_refused_before_its_body_gets_no_100_continue_and_the_connection_closes(
    tmp_path: Path, running_host: RunHost
) -> None:
    server = running_host(*toy_project(tmp_path, {"version": "2.0"}), env={BODY_LIMIT_SETTING: "1000"})
    for path, length, status in ((b"/api/nothing-here", 10, b"404"), (b"/api/echo/big", 1001, b"500")):
        with connect(server) as sock:
            sock.sendall(
                b"POST "
                + path
                + b" HTTP/1.1\r\nHost: x\r\nContent-Length: "
                + str(length).encode()
                + b"\r\nExpect: 100-continue\r\n\r\n"
            )
            head = read_head(sock)
            assert head.startswith(b"HTTP/1.1 " + status)
            assert b"Connection: close" in head


def test_the_receiver_judges_the_key_and_the_size_once_the_host_has_read_the_body(
    serve: Callable[..., ServedReceiver],
) -> None:
    """As in Azure: the host buffers a body within its limit (FUNCTIONS_REQUEST_BODY_SIZE_LIMIT)
    before the receiver sees the key; over the limit the host itself answers 500, unread."""
    receiver = serve(MAX_BODY_BYTES="1000", **{BODY_LIMIT_SETTING: "2000"})
    host, port = receiver.base_url.removeprefix("http://").split(":")
    body = as_body([session()])

    def ask(key: str, length: int) -> bytes:
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(
                f"POST /api/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"{KEY_HEADER}: {key}\r\nContent-Length: {length}\r\nExpect: 100-continue\r\n\r\n".encode()
            )
            head = read_head(sock)
            if head.startswith(b"HTTP/1.1 100"):
                sock.sendall((body * (length // len(body) + 1))[:length])
                head += read_head(sock)
            return head

    assert ask("wrong-key", len(body)).startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 401")
    assert ask(OLD_KEY, 1500).startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 413")  # the receiver's
    assert ask(OLD_KEY, 2001).startswith(b"HTTP/1.1 500")  # the host's, the body never read
    accepted = ask(OLD_KEY, len(body))
    assert accepted.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200")


# --- The port taken ---------------------------------------------------------------------------


def test_a_taken_port_is_one_clear_line_and_exit_status_1() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ran = subprocess.run(
            [
                sys.executable,
                "-m",
                "sessions",
                "--settings",
                str(NO_LOCAL_SETTINGS),
                "serve",
                "--port",
                str(port),
            ],
            cwd=PROJECT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert ran.returncode == 1
    assert "Traceback" not in ran.stderr
    assert ran.stderr.strip().splitlines()[-1] == (
        f"error: port {port} on 127.0.0.1 is already in use (another `func start` or "
        "`python -m sessions serve`?): stop it, or choose another --port"
    )


# --- Queue triggers ---------------------------------------------------------------------------


@pytest.fixture
def queue_app(
    tmp_path: Path, azurite: Azurite, running_host: RunHost
) -> Iterator[tuple[FunctionsHost, MessageQueue, list[dict[str, Any]]]]:
    """The toy app served with its queue function on a fresh Azurite queue; and what it was called with."""
    project, module = toy_project(tmp_path, QUEUE_HOST_JSON)
    name = f"toy-{uuid.uuid4().hex[:12]}"
    env = {"TOY_QUEUE": name, "TOY_STORAGE": azurite.connection_string, "AzureWebJobsStorage": "x"}
    server = running_host(project, module, env=env)
    queue = MessageQueue.connect(StorageConnection(connection_string=azurite.connection_string), name)
    queue.ensure()
    yield server, queue, sys.modules[module].CALLS
    queue.close()


def attempts(calls: list[dict[str, Any]]) -> list[int]:
    return [call["message"].dequeue_count for call in calls]


def test_a_queue_message_calls_the_function_with_a_real_queue_message_then_is_deleted(
    queue_app: tuple[FunctionsHost, MessageQueue, list[dict[str, Any]]],
) -> None:
    _, queue, calls = queue_app
    sent_id = queue.send('{"push_id": "p-1", "note": "größe"}')
    assert wait_until(lambda: len(calls) == 1)
    message = calls[0]["message"]
    assert isinstance(message, func.QueueMessage)
    assert message.id == sent_id
    assert message.get_body() == '{"push_id": "p-1", "note": "größe"}'.encode()
    assert message.dequeue_count == 1
    assert isinstance(message.insertion_time, datetime) and message.pop_receipt
    assert wait_until(lambda: queue.count() == 0)
    assert queue.poison_count() == 0


def test_a_failing_function_is_tried_again_after_the_visibility_timeout(
    queue_app: tuple[FunctionsHost, MessageQueue, list[dict[str, Any]]],
) -> None:
    _, queue, calls = queue_app
    queue.send('{"fail": 2}')
    assert wait_until(lambda: len(calls) == 3)
    assert attempts(calls) == [1, 2, 3]
    gaps = [later["at"] - earlier["at"] for earlier, later in itertools.pairwise(calls)]
    assert all(gap >= 0.9 for gap in gaps)  # visibilityTimeout: 1 s
    assert wait_until(lambda: queue.count() == 0)
    assert queue.poison_count() == 0


def test_a_message_that_keeps_failing_goes_to_the_poison_queue_after_max_dequeue_count(
    queue_app: tuple[FunctionsHost, MessageQueue, list[dict[str, Any]]],
) -> None:
    _, queue, calls = queue_app
    queue.send('{"fail": 99, "push_id": "p-poison"}')
    assert wait_until(lambda: queue.poison_count() == 1)
    assert attempts(calls) == [1, 2, 3]  # maxDequeueCount: 3, then no more tries
    assert [poisoned.text for poisoned in queue.peek_poison()] == ['{"fail": 99, "push_id": "p-poison"}']
    # As the host moves it: put on the poison queue first, then deleted from its own (two requests).
    assert wait_until(lambda: queue.count() == 0)


def test_the_banner_lists_queue_functions_and_shutdown_stops_their_pollers(
    queue_app: tuple[FunctionsHost, MessageQueue, list[dict[str, Any]]], azurite: Azurite
) -> None:
    server, queue, _ = queue_app
    # The banner says which queue, where: the endpoint polled is Azurite's.
    banner = describe(server).splitlines()
    assert f"        work: queueTrigger ({azurite.queue_endpoint}/{queue.name})" in banner

    def pollers() -> list[threading.Thread]:
        return [thread for thread in threading.enumerate() if thread.name == "queue-trigger-work"]

    assert wait_until(lambda: bool(pollers()))
    server.shutdown()
    server.server_close()
    assert not pollers()


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        (
            {"TOY_QUEUE": "toy", "TOY_STORAGE": "UseDevelopmentStorage=true"},
            "app setting AzureWebJobsStorage is not set: it is required for all triggers other than HTTP",
        ),
        (
            {"AzureWebJobsStorage__accountName": "x", "TOY_STORAGE": "UseDevelopmentStorage=true"},
            "app setting TOY_QUEUE (in the binding's '%TOY_QUEUE%') is not set",
        ),
    ],
    ids=["no-host-storage", "no-queue-setting"],
)
def test_a_queue_function_whose_settings_are_missing_is_in_error_and_http_still_serves(
    tmp_path: Path, running_host: RunHost, env: dict[str, str], missing: str
) -> None:
    server = running_host(*toy_project(tmp_path, {"version": "2.0"}), env=env)
    (line,) = [line for line in describe(server).splitlines() if "work: queueTrigger" in line]
    assert line.startswith(f"        work: queueTrigger (in error: {missing}")
    assert requests.get(f"{server.base_url}/api/slow", timeout=10).status_code == 200
