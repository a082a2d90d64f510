"""The local stand-in for the Functions host: routes, request and response objects, as `func start`."""

from __future__ import annotations

import http.client
import json
import socket
import textwrap
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from devtools.served import ServedReceiver
from tests.helpers.pushes import OLD_KEY, as_body, post, session
from tools.host import FunctionsHost, start_host

TOY_APP = """
import asyncio
import json
import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


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
"""


def toy_project(tmp_path: Path, host_json: dict[str, object] | None) -> tuple[Path, str]:
    module = f"toy_app_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(TOY_APP))
    if host_json is not None:
        (tmp_path / "host.json").write_text(json.dumps(host_json))
    return tmp_path, module


@pytest.fixture
def running_host() -> Iterator[Callable[[Path, str], FunctionsHost]]:
    started: list[FunctionsHost] = []

    def run(project: Path, module: str) -> FunctionsHost:
        server = start_host("127.0.0.1", 0, project=project, app_module=module)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        return server

    yield run
    for server in started:
        server.shutdown()
        server.server_close()


@pytest.fixture
def toy(tmp_path: Path, running_host: Callable[[Path, str], FunctionsHost]) -> FunctionsHost:
    return running_host(*toy_project(tmp_path, {"version": "2.0"}))


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


def test_the_route_prefix_comes_from_host_json(
    tmp_path: Path, running_host: Callable[[Path, str], FunctionsHost]
) -> None:
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


def test_a_body_the_function_did_not_read_closes_the_connection_instead_of_desyncing(
    toy: FunctionsHost,
) -> None:
    host, port = toy.server_address[:2]
    connection = http.client.HTTPConnection(str(host), port, timeout=10)
    connection.request("POST", "/api/ignores-body", body=b"x" * 5000)
    response = connection.getresponse()
    assert response.status == 401
    assert response.getheader("Connection") == "close"


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
