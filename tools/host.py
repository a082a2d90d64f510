"""A small stand-in for the Azure Functions host: serves the HTTP routes of `function_app.app`.

For machines without Azure Functions Core Tools. Same URLs as `func start` (the `api` route
prefix, or host.json's `extensions.http.routePrefix`), the same request and response objects of
the azure-functions library, sync and async handlers. Like `func start`, settings come from the
environment and from local.settings.json's `Values` (the environment wins).

As the host's stand-in, this module (and function_app.py) are the only ones that import
azure.functions; the domain modules of this package never do.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

log = logging.getLogger("sessions.host")

# The Functions host refuses larger request bodies (FUNCTIONS_REQUEST_BODY_SIZE_LIMIT).
HOST_BODY_LIMIT = 100 * 1024 * 1024
_ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
_QUERY = re.compile(r"\?[^\s\"']*")


@dataclass(frozen=True)
class Route:
    """One HTTP-triggered function, as the host would route it."""

    name: str
    template: str
    pattern: re.Pattern[str]
    methods: tuple[str, ...]
    request_parameter: str
    handler: Callable[..., Any]
    wants_context: bool = False

    def match(self, path: str) -> dict[str, str] | None:
        found = self.pattern.fullmatch(path)
        if found is None:
            return None
        return {name: value for name, value in found.groupdict().items() if value is not None}


@dataclass(frozen=True)
class InvocationContext:
    """What a function that asks for `context` receives (the parts a local run can honour)."""

    invocation_id: str
    function_name: str
    function_directory: str
    trace_context: Any = None
    retry_context: Any = None
    thread_local_storage: Any = field(default=None, repr=False)


class StreamedHttpRequest(func.HttpRequest):
    """An azure.functions.HttpRequest whose body is read from the socket on first use.

    So a handler that answers before reading (wrong key, declared length over the limit)
    never makes the server read the body at all.
    """

    def __init__(self, method: str, url: str, *, read_body: Callable[[], bytes], **parts: Any) -> None:
        super().__init__(method, url, body=b"", **parts)
        self._read_body = read_body
        self._body: bytes | None = None

    @property
    def body_was_read(self) -> bool:
        return self._body is not None

    def get_body(self) -> bytes:
        if self._body is None:
            self._body = self._read_body()
        return self._body

    def get_json(self) -> Any:
        return json.loads(self.get_body().decode("utf-8"))


def load_routes(function_app: func.FunctionApp, route_prefix: str) -> list[Route]:
    """Every HTTP-triggered function of the app, with its URL pattern and methods."""
    routes = []
    # get_functions() may be called only once per app instance (azure-functions 1.26).
    for function in function_app.get_functions():
        trigger = function.get_trigger()
        if trigger is None or trigger.get_binding_name() != "httpTrigger":
            continue
        binding = trigger.get_dict_repr()
        template = "/".join(
            part for part in (route_prefix, binding.get("route") or function.get_function_name()) if part
        )
        methods = tuple(str(getattr(m, "value", m)).upper() for m in binding.get("methods") or _ALL_METHODS)
        handler = function.get_user_function()
        routes.append(
            Route(
                name=function.get_function_name() or handler.__name__,
                template="/" + template,
                pattern=_route_pattern("/" + template),
                methods=methods,
                request_parameter=binding["name"],
                handler=handler,
                wants_context="context" in inspect.signature(handler).parameters,
            )
        )
    return routes


def _route_pattern(template: str) -> re.Pattern[str]:
    """A regex for an ASP.NET-style route template: `{name}`, `{name?}`, `{name:int}`, `{*rest}`."""
    pattern = ""
    position = 0
    for found in re.finditer(r"\{(\*?)([A-Za-z_][A-Za-z0-9_]*)(?::[^}?]+)?(\?)?\}", template):
        pattern += re.escape(template[position : found.start()])
        catch_all, name, optional = found.groups()
        value = f"(?P<{name}>.*)" if catch_all else f"(?P<{name}>[^/]+)"
        if optional:
            value = f"(?:{value})?"
            if pattern.endswith("/"):
                pattern = pattern[:-1] + f"(?:/{value})?"
                value = ""
        pattern += value
        position = found.end()
    pattern += re.escape(template[position:])
    return re.compile(pattern, re.IGNORECASE)


def route_prefix_of(project: Path) -> str:
    """host.json's `extensions.http.routePrefix`, or the host's default `api`."""
    host_json = project / "host.json"
    if host_json.is_file():
        config = json.loads(host_json.read_text(encoding="utf-8"))
        prefix = config.get("extensions", {}).get("http", {}).get("routePrefix")
        if prefix is not None:
            return str(prefix).strip("/")
    return "api"


class FunctionsHost(ThreadingHTTPServer):
    """A threading HTTP server that dispatches to the app's HTTP functions."""

    daemon_threads = True
    # socketserver's default backlog of 5 resets connections when a few senders push at once.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], routes: list[Route], project: Path) -> None:
        self.routes = routes
        self.project = project
        super().__init__(address, _FunctionRequestHandler)

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{host}:{port}"


class _FunctionRequestHandler(BaseHTTPRequestHandler):
    server: FunctionsHost
    protocol_version = "HTTP/1.1"
    server_version = "sessions-functions-host"

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        # Never a query string: a key put in the URL must not reach the log with it.
        log.debug("%s", _QUERY.sub("?(query left out)", format % args))

    def _dispatch(self) -> None:
        started = time.perf_counter()
        split = urlsplit(self.path)
        status = self._invoke(split.path, split.query)
        log.info(
            "%s %s -> %d (%.1f ms)", self.command, split.path, status, (time.perf_counter() - started) * 1000
        )

    def _invoke(self, path: str, query: str) -> int:
        allowed: list[str] = []
        for route in self.server.routes:
            route_params = route.match(path)
            if route_params is None:
                continue
            if self.command not in route.methods:
                allowed.extend(route.methods)
                continue
            return self._call(route, route_params, query)
        if allowed:
            return self._answer_plain(
                HTTPStatus.METHOD_NOT_ALLOWED, {"Allow": ", ".join(sorted(set(allowed)))}
            )
        return self._answer_plain(HTTPStatus.NOT_FOUND)

    def _call(self, route: Route, route_params: dict[str, str], query: str) -> int:
        declared = self.headers.get("Content-Length")
        if declared is not None and (not declared.strip().isdigit() or int(declared) > HOST_BODY_LIMIT):
            return self._answer_plain(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE if declared.strip().isdigit() else HTTPStatus.BAD_REQUEST
            )
        request = StreamedHttpRequest(
            self.command,
            f"{self.server.base_url}{self.path}",
            headers=self._joined_headers(),
            params=dict(parse_qsl(query, keep_blank_values=True)),
            route_params=route_params,
            read_body=self._read_body,
        )
        arguments: dict[str, Any] = {route.request_parameter: request}
        if route.wants_context:
            arguments["context"] = InvocationContext(str(uuid.uuid4()), route.name, str(self.server.project))
        try:
            result = route.handler(**arguments)
            if inspect.isawaitable(result):
                result = asyncio.run(_awaited(result))
        except Exception:
            log.exception("function %s raised", route.name)
            self.close_connection = not request.body_was_read
            return self._answer_plain(HTTPStatus.INTERNAL_SERVER_ERROR)
        # A body the function never read is still on the wire: close rather than misread it.
        if not request.body_was_read and self._has_body():
            self.close_connection = True
        return self._answer(result)

    def _joined_headers(self) -> dict[str, str]:
        joined: dict[str, str] = {}
        for name in self.headers:
            key = name.lower()
            if key not in joined:
                joined[key] = ", ".join(self.headers.get_all(name) or [])
        return joined

    def _has_body(self) -> bool:
        return bool(self.headers.get("Content-Length", "0").strip() not in ("", "0")) or self._chunked()

    def _chunked(self) -> bool:
        return "chunked" in self.headers.get("Transfer-Encoding", "").lower()

    def _read_body(self) -> bytes:
        if self._chunked():
            return b"".join(self._read_chunks())
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _read_chunks(self) -> Iterator[bytes]:
        total = 0
        while True:
            size_line = self.rfile.readline(1024)
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return
            total += size
            if total > HOST_BODY_LIMIT:
                raise ValueError("chunked body over the host's limit")
            yield self.rfile.read(size)
            self.rfile.readline(8)

    def _answer(self, result: Any) -> int:
        if isinstance(result, str | bytes):
            result = func.HttpResponse(result, status_code=200)
        if not isinstance(result, func.HttpResponse):
            log.error("function returned %s, not an HttpResponse", type(result).__name__)
            return self._answer_plain(HTTPStatus.INTERNAL_SERVER_ERROR)
        body = result.get_body()
        self.send_response(result.status_code)
        headers = {name.lower(): (name, value) for name, value in result.headers.items()}
        if "content-type" not in headers:
            content_type = result.mimetype + (f"; charset={result.charset}" if result.charset else "")
            self.send_header("Content-Type", content_type)
        for name, value in headers.values():
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self._finish(body)
        return int(result.status_code)

    def _answer_plain(self, status: HTTPStatus, headers: dict[str, str] | None = None) -> int:
        """The host's own answer (no route, wrong method, a function that failed), as JSON too."""
        body = json.dumps({"error": status.phrase.lower().replace(" ", "_"), "message": status.description})
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self._finish(body.encode("utf-8"))
        return int(status)

    def _finish(self, body: bytes) -> None:
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def start_host(
    host: str,
    port: int,
    *,
    project: Path,
    app_module: str = "function_app",
) -> FunctionsHost:
    """Import the app from `project` and bind the server (the caller runs serve_forever)."""
    if str(project) not in sys.path:
        sys.path.insert(0, str(project))
    module = importlib.import_module(app_module)
    routes = load_routes(module.app, route_prefix_of(project))
    return FunctionsHost((host, port), routes, project)


def describe(server: FunctionsHost) -> str:
    """The banner `func start` prints: each function with its methods and URL."""
    lines = ["Functions:"]
    for route in server.routes:
        lines.append(f"        {route.name}: [{','.join(route.methods)}] {server.base_url}{route.template}")
    return "\n".join(lines)
