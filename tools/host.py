"""A small stand-in for the Azure Functions host: runs the HTTP and queue triggers of `function_app.app`.

For machines without Azure Functions Core Tools. Same URLs as `func start` (the `api` route
prefix, or host.json's `extensions.http.routePrefix`), the same request and response objects of
the azure-functions library, sync and async handlers. Like `func start`, settings come from the
environment and from local.settings.json's `Values` (the environment wins).

Queue-triggered functions run as the host runs them (host.json's `extensions.queues`): a poller
per function takes up to batchSize messages, calls the function with an azure.functions
QueueMessage, deletes the message when the function returns, makes it visible again after
visibilityTimeout when it raises, and after maxDequeueCount failed tries moves it to the poison
queue `<queue>-poison`. Queue access goes through sessions.storage.queues.

Like the host, it reads the whole request body before it calls a function, and refuses one over
the host's limit (the app setting FUNCTIONS_REQUEST_BODY_SIZE_LIMIT, 100 MB unset), a declared
Content-Length over it before reading anything, with the host's answer: 500, not 413 (the host
fails binding the request, Azure/azure-functions-host#10519), the function never called;
`100 Continue` goes out when the body is read, as Kestrel sends it. Like the host's web server,
it gives slow senders a bounded time (a body that stops short of its Content-Length is a 400,
never handed to the function), and answers in JSON even what it refuses itself.

As the host's stand-in, this module (and function_app.py) are the only ones that import
azure.functions; the domain modules of this package never do.
"""

from __future__ import annotations

import asyncio
import errno
import importlib
import inspect
import json
import logging
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func
from azure.functions.queue import QueueMessage as TriggerMessage

from sessions.decoding import declared_length
from sessions.settings import Setting, SettingsError, StorageConnection, host_storage_configured
from sessions.storage import MessageQueue, QueuedMessage, StorageUnavailable

log = logging.getLogger("sessions.host")

# The Functions host reads a request body whole before it calls a function, and fails a larger one
# with 500 (binding the request parameter fails): this app setting, in bytes, or 100 MB unset.
BODY_LIMIT_SETTING = "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT"
DEFAULT_BODY_LIMIT = 100 * 1024 * 1024
# How long a connection may send nothing: between requests (then it is closed), within the
# request head, or within the body (then the answer is 400 and the body is never processed).
DEFAULT_REQUEST_TIMEOUT = 30.0
_ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
_QUERY = re.compile(r"\?[^\s\"']*")
_READ_SIZE = 64 * 1024
# The Functions host's queue listener: a message it works on stays hidden for 10 minutes, and an
# empty queue is polled again after 100 ms, then ever more rarely up to maxPollingInterval.
QUEUE_LEASE_SECONDS = 600.0
_FIRST_POLL_INTERVAL = 0.1
_TIME_SPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{1,2}):(\d{1,2}(?:\.\d+)?)$")
# How long shutdown waits for a queue function still running.
_STOP_WAIT_SECONDS = 10.0


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
class QueueFunction:
    """One queue-triggered function, as declared: its queue (maybe `%SETTING%`) and connection setting."""

    name: str
    queue_name: str
    connection: str
    message_parameter: str
    handler: Callable[..., Any]
    wants_context: bool = False


@dataclass(frozen=True)
class InvocationContext:
    """What a function that asks for `context` receives (the parts a local run can honour)."""

    invocation_id: str
    function_name: str
    function_directory: str
    trace_context: Any = None
    retry_context: Any = None
    thread_local_storage: Any = field(default=None, repr=False)


@dataclass(frozen=True)
class QueueOptions:
    """host.json's `extensions.queues`, with the Functions host's own defaults."""

    batch_size: int = 16
    max_dequeue_count: int = 5
    visibility_timeout: float = 0.0
    max_polling_interval: float = 60.0

    @classmethod
    def from_host_json(cls, config: Mapping[str, Any]) -> QueueOptions:
        """The options of host.json's `extensions.queues` (SettingsError for a value the host refuses)."""
        queues = config.get("extensions", {}).get("queues", {})
        encoding = str(queues.get("messageEncoding", "base64")).lower()
        if encoding != "base64":
            raise SettingsError(
                f"host.json extensions.queues.messageEncoding is {encoding!r}: the local host reads base64"
            )
        defaults = cls()
        return cls(
            batch_size=_whole(queues, "batchSize", defaults.batch_size, 1, 32),
            max_dequeue_count=_whole(queues, "maxDequeueCount", defaults.max_dequeue_count, 1, 10_000),
            visibility_timeout=_time_span(queues, "visibilityTimeout", defaults.visibility_timeout),
            max_polling_interval=max(
                _FIRST_POLL_INTERVAL,
                _time_span(queues, "maxPollingInterval", defaults.max_polling_interval),
            ),
        )


class AddressUnavailable(Exception):
    """The host cannot listen where it was told (the port is taken, the address is not this machine's)."""


class BodyUnreadable(Exception):
    """The request body could not be read in full: the answer is `status`, and the function never sees it."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


class BodyOverLimit(BodyUnreadable):
    """The body is larger than the host's limit (FUNCTIONS_REQUEST_BODY_SIZE_LIMIT)."""


def load_functions(
    function_app: func.FunctionApp, route_prefix: str
) -> tuple[list[Route], list[QueueFunction]]:
    """Every HTTP-triggered function with its URL pattern and methods, and every queue-triggered one."""
    routes: list[Route] = []
    queue_functions: list[QueueFunction] = []
    # get_functions() may be called only once per app instance (azure-functions 1.26).
    for function in function_app.get_functions():
        trigger = function.get_trigger()
        if trigger is None:
            continue
        kind = trigger.get_binding_name()
        handler = function.get_user_function()
        name = function.get_function_name() or handler.__name__
        wants_context = "context" in inspect.signature(handler).parameters
        if kind == "httpTrigger":
            routes.append(_route(name, trigger.get_dict_repr(), route_prefix, handler, wants_context))
        elif kind == "queueTrigger":
            binding = trigger.get_dict_repr()
            queue_functions.append(
                QueueFunction(
                    name=name,
                    queue_name=str(binding["queueName"]),
                    # The host's default connection, as for any trigger that names none.
                    connection=str(binding.get("connection") or "AzureWebJobsStorage"),
                    message_parameter=binding["name"],
                    handler=handler,
                    wants_context=wants_context,
                )
            )
        else:
            log.warning("function %s has a %s trigger, which the local host does not run", name, kind)
    return routes, queue_functions


def load_routes(function_app: func.FunctionApp, route_prefix: str) -> list[Route]:
    """Every HTTP-triggered function of the app, with its URL pattern and methods."""
    return load_functions(function_app, route_prefix)[0]


def _route(
    name: str, binding: dict[str, Any], route_prefix: str, handler: Callable[..., Any], wants_context: bool
) -> Route:
    template = "/".join(part for part in (route_prefix, binding.get("route") or name) if part)
    methods = tuple(str(getattr(m, "value", m)).upper() for m in binding.get("methods") or _ALL_METHODS)
    return Route(
        name=name,
        template="/" + template,
        pattern=_route_pattern("/" + template),
        methods=methods,
        request_parameter=binding["name"],
        handler=handler,
        wants_context=wants_context,
    )


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


def host_config(project: Path) -> dict[str, Any]:
    """The project's host.json, or an empty one."""
    host_json = project / "host.json"
    if not host_json.is_file():
        return {}
    config = json.loads(host_json.read_text(encoding="utf-8"))
    return config if isinstance(config, dict) else {}


def route_prefix_of(project: Path) -> str:
    """host.json's `extensions.http.routePrefix`, or the host's default `api`."""
    return _route_prefix(host_config(project))


def _route_prefix(config: Mapping[str, Any]) -> str:
    prefix = config.get("extensions", {}).get("http", {}).get("routePrefix")
    return "api" if prefix is None else str(prefix).strip("/")


def _whole(section: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = section.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise SettingsError(f"host.json extensions.queues.{key} must be a whole number from {low} to {high}")
    return value


def _time_span(section: Mapping[str, Any], key: str, default: float) -> float:
    """A .NET TimeSpan of host.json (`[d.]hh:mm:ss[.fff]`) in seconds."""
    raw = section.get(key)
    if raw is None:
        return default
    found = _TIME_SPAN.match(str(raw).strip())
    if found is None:
        raise SettingsError(f"host.json extensions.queues.{key} must be a time span, hh:mm:ss")
    days, hours, minutes, seconds = found.groups()
    return ((int(days or 0) * 24 + int(hours)) * 60 + int(minutes)) * 60 + float(seconds)


@dataclass
class QueueListener:
    """Polls one queue for one queue-triggered function, as the Functions host's queue listener does."""

    function: QueueFunction
    options: QueueOptions
    project: Path
    queue: MessageQueue | None = None
    # Why the function cannot run (a setting missing), as the host reports a function "in error".
    error: str | None = None
    create_queues: bool = False
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _queues_ready: bool = field(default=False, repr=False)
    _unavailable: bool = field(default=False, repr=False)

    def start(self) -> None:
        """Start polling in a background thread (nothing happens for a function in error)."""
        if self.queue is None or self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._poll, name=f"queue-trigger-{self.function.name}", daemon=True
        )
        self._thread.start()

    def stop(self, wait: float = _STOP_WAIT_SECONDS) -> None:
        """Stop polling; wait up to `wait` s for a function call in progress, then close the queue."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(wait)
            if self._thread.is_alive():
                log.warning("queue function %s still running at shutdown", self.function.name)
                return
        if self.queue is not None:
            self.queue.close()

    def _poll(self) -> None:
        """Take batches while there are messages; back off to maxPollingInterval while there are none."""
        assert self.queue is not None
        interval = _FIRST_POLL_INTERVAL
        with ThreadPoolExecutor(self.options.batch_size, f"queue-{self.function.name}") as workers:
            while not self._stop.is_set():
                messages = self._receive(self.queue)
                if messages:
                    interval = _FIRST_POLL_INTERVAL
                    list(workers.map(self._process, messages))
                    continue
                self._stop.wait(interval)
                interval = min(interval * 2, self.options.max_polling_interval)

    def _receive(self, queue: MessageQueue) -> list[QueuedMessage]:
        """The next batch, or none while storage is unreachable (said once per outage, not per poll)."""
        try:
            if self.create_queues and not self._queues_ready:
                queue.ensure()
                self._queues_ready = True
            messages = queue.receive(self.options.batch_size, visibility_timeout=QUEUE_LEASE_SECONDS)
        except StorageUnavailable as error:
            if not self._unavailable:
                log.warning("queue function %s cannot poll %s: %s", self.function.name, queue.name, error)
            self._unavailable = True
            return []
        if self._unavailable:
            log.info("queue function %s polls %s again", self.function.name, queue.name)
            self._unavailable = False
        return messages

    def _process(self, message: QueuedMessage) -> None:
        """Run the function on one message, then settle the message as the host would."""
        assert self.queue is not None
        try:
            if message.dequeue_count > self.options.max_dequeue_count:
                self._poison(message)  # left over by a host that stopped between failing and moving it
            elif self._invoke(message):
                self.queue.delete(message)
            elif message.dequeue_count >= self.options.max_dequeue_count:
                self._poison(message)
            else:
                self.queue.release(message, self.options.visibility_timeout)
        except StorageUnavailable as error:
            # The message shows up again when its lease ends: nothing is lost.
            log.warning("queue message %s of %s not settled: %s", message.id, self.queue.name, error)
        except Exception:
            # Never the end of the poller: the message shows up again when its lease ends.
            log.exception("queue message %s of %s not settled", message.id, self.queue.name)

    def _poison(self, message: QueuedMessage) -> None:
        assert self.queue is not None
        log.warning(
            "Message has reached MaxDequeueCount of %d. Moving message to queue '%s'.",
            self.options.max_dequeue_count,
            self.queue.poison_name,
        )
        self.queue.to_poison(message)

    def _invoke(self, message: QueuedMessage) -> bool:
        """Call the function with the message, as the Python worker would; whether it succeeded."""
        assert self.queue is not None
        invocation_id = str(uuid.uuid4())
        name = self.function.name
        log.info(
            "Executing 'Functions.%s' (Reason='New queue message detected on '%s'.', Id=%s)",
            name,
            self.queue.name,
            invocation_id,
        )
        arguments: dict[str, Any] = {self.function.message_parameter: _trigger_message(message)}
        if self.function.wants_context:
            arguments["context"] = InvocationContext(invocation_id, name, str(self.project))
        started = time.perf_counter()
        try:
            result = self.function.handler(**arguments)
            if inspect.isawaitable(result):
                asyncio.run(_awaited(result))
        except Exception:
            log.exception(
                "Executed 'Functions.%s' (Failed, Id=%s, attempt %d of %d)",
                name,
                invocation_id,
                message.dequeue_count,
                self.options.max_dequeue_count,
            )
            return False
        log.info(
            "Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%dms)",
            name,
            invocation_id,
            (time.perf_counter() - started) * 1000,
        )
        return True


def _trigger_message(message: QueuedMessage) -> TriggerMessage:
    """The azure.functions QueueMessage the Python worker passes to a queue-triggered function."""
    return TriggerMessage(  # type: ignore[no-untyped-call]  # azure.functions.queue has no annotations
        id=message.id,
        body=message.text.encode("utf-8"),
        dequeue_count=message.dequeue_count,
        expiration_time=message.expires_at,
        insertion_time=message.inserted_at,
        time_next_visible=message.next_visible_at,
        pop_receipt=message.pop_receipt,
    )


def queue_listener(
    function: QueueFunction, options: QueueOptions, project: Path, env: Mapping[str, str]
) -> QueueListener:
    """A listener for `function`, its queue name and connection taken from the app settings in `env`.

    A setting that is missing makes the function "in error", as in the host: the others still run.
    """
    try:
        if not host_storage_configured(env):
            # What `func start` refuses, and the host in Azure cannot run without.
            raise SettingsError(
                f"app setting {Setting.HOST_STORAGE} is not set: it is required for all triggers "
                "other than HTTP (a storage connection string, or its identity-based form)"
            )
        queue_name = _resolved(function.queue_name, env)
        storage = _storage_of(function.connection, env)
        queue = MessageQueue.connect(storage, queue_name, setting=function.connection)
    except SettingsError as error:
        log.error("function %s is in error: %s", function.name, error)
        return QueueListener(function, options, project, error=str(error))
    # Locally (a connection string, Azurite) the queues are created as needed; in Azure, by Bicep.
    return QueueListener(function, options, project, queue=queue, create_queues=not storage.uses_identity)


def _resolved(value: str, env: Mapping[str, str]) -> str:
    """A binding value with `%SETTING%` replaced by that app setting, as the host resolves it."""

    def setting(found: re.Match[str]) -> str:
        name = found.group(1)
        if not env.get(name):
            raise SettingsError(f"app setting {name} (in the binding's {value!r}) is not set")
        return env[name]

    return re.sub(r"%([^%]+)%", setting, value)


def _storage_of(connection: str, env: Mapping[str, str]) -> StorageConnection:
    """The storage account of a trigger's `connection`: a connection string, or identity settings."""
    connection_string = env.get(connection, "").strip()
    if connection_string:
        return StorageConnection(connection_string=connection_string)
    queue_service_uri = env.get(f"{connection}__queueServiceUri", "").strip()
    if queue_service_uri:
        return StorageConnection(
            queue_service_uri=queue_service_uri.rstrip("/"),
            client_id=env.get(f"{connection}__clientId", "").strip() or None,
        )
    raise SettingsError(
        f"app setting {connection} is not set (a storage connection string, or "
        f"{connection}__queueServiceUri for a managed identity)"
    )


class FunctionsHost(ThreadingHTTPServer):
    """A threading HTTP server that dispatches to the app's HTTP functions, and runs its queue triggers."""

    daemon_threads = True
    # socketserver's default backlog of 5 resets connections when a few senders push at once.
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        routes: list[Route],
        project: Path,
        *,
        listeners: list[QueueListener] | None = None,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        body_limit: int = DEFAULT_BODY_LIMIT,
    ) -> None:
        self.routes = routes
        self.project = project
        self.listeners = listeners or []
        self.request_timeout = request_timeout
        self.body_limit = body_limit
        super().__init__(address, _FunctionRequestHandler)

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{host}:{port}"

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Serve HTTP; the queue triggers poll in the background meanwhile (until server_close)."""
        for listener in self.listeners:
            listener.start()
        super().serve_forever(poll_interval)

    def server_close(self) -> None:
        """Close the socket and stop the queue triggers (waiting a bounded time for a running call)."""
        super().server_close()
        for listener in self.listeners:
            listener.stop()


class _FunctionRequestHandler(BaseHTTPRequestHandler):
    server: FunctionsHost
    protocol_version = "HTTP/1.1"
    server_version = "sessions-functions-host"

    def setup(self) -> None:
        super().setup()
        # The socket timeout: how long the sender may stay silent.
        self.connection.settimeout(self.server.request_timeout)

    def handle_one_request(self) -> None:
        self._continue_pending = False
        self._body_consumed = False
        super().handle_one_request()

    def parse_request(self) -> bool:
        """The base class's parsing, with a 408 when the head stops coming, and no HTTP/0.9."""
        try:
            parsed = super().parse_request()
        except TimeoutError:
            self.send_error(HTTPStatus.REQUEST_TIMEOUT, "Request timed out", self._silence("headers"))
            return False
        if parsed and self.request_version == "HTTP/0.9":
            self.send_error(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, "HTTP/0.9 is not supported")
            return False
        return parsed

    def handle_expect_100(self) -> bool:
        # Not yet: `100 Continue` goes out when the body is read, after the declared size is
        # judged against the limit, as Kestrel does it.
        self._continue_pending = True
        return True

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        # Never a query string: a key put in the URL must not reach the log with it.
        log.debug("%s", _QUERY.sub("?(query left out)", format % args))

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The host's own refusals (bad request line, headers too long, unknown method...) in JSON.

        The reason never repeats the request (the base class quotes it), and the connection closes.
        """
        status = HTTPStatus(code)
        reason = (message or status.phrase).split(" (")[0]
        self.log_error("code %d, message %s", code, reason)
        if self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.0"  # a status line and headers, whatever the request was
        self.close_connection = True
        self._answer_plain(status, message=explain or (reason if reason != status.phrase else None))

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
        # As the host: the whole body first, within the limit; the function sees it in full or not at all.
        declared = self.headers.get("Content-Length")
        length = None if declared is None else declared_length(declared)
        if declared is not None and length is None:
            return self._answer_plain(HTTPStatus.BAD_REQUEST)
        if length is not None and length > self.server.body_limit:
            return self._over_body_limit(route)
        try:
            body = self._read_body()
        except BodyOverLimit:
            return self._over_body_limit(route)
        except BodyUnreadable as error:
            self.close_connection = True
            return self._answer_plain(error.status, message=str(error))
        request = func.HttpRequest(
            self.command,
            f"{self.server.base_url}{self.path}",
            headers=self._joined_headers(),
            params=dict(parse_qsl(query, keep_blank_values=True)),
            route_params=route_params,
            body=body,
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
            return self._answer_plain(HTTPStatus.INTERNAL_SERVER_ERROR)
        return self._answer(result)

    def _over_body_limit(self, route: Route) -> int:
        # What the host logs and answers: Kestrel's "Request body too large" surfaces as a failed
        # binding of the request parameter, so the function is never called and the answer is 500.
        message = (
            f"Exception binding parameter '{route.request_parameter}': Request body too large. "
            f"The max request body size is {self.server.body_limit} bytes."
        )
        log.error("function %s not called: %s (%s)", route.name, message, BODY_LIMIT_SETTING)
        self.close_connection = True
        return self._answer_plain(HTTPStatus.INTERNAL_SERVER_ERROR, message=message)

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

    def _silence(self, part: str) -> str:
        return f"no data of the request's {part} for {self.server.request_timeout:g} s"

    def _read_body(self) -> bytes:
        """The whole body, or BodyUnreadable (after `100 Continue`, if the sender waits for one)."""
        if not self._has_body():
            return b""
        self._body_consumed = True
        if self._continue_pending:
            self._continue_pending = False
            self.send_response_only(HTTPStatus.CONTINUE)
            self.end_headers()
        try:
            if self._chunked():
                return b"".join(self._read_chunks())
            return self._read_exactly(int(self.headers.get("Content-Length") or 0))
        except TimeoutError:
            raise BodyUnreadable(
                HTTPStatus.BAD_REQUEST, f"incomplete body: {self._silence('body')}"
            ) from None

    def _read_exactly(self, length: int) -> bytes:
        """`length` bytes, or BodyUnreadable when the sender stops short (closes, or goes silent)."""
        parts: list[bytes] = []
        left = length
        while left > 0:
            part = self.rfile.read1(min(left, _READ_SIZE))
            if not part:
                raise BodyUnreadable(
                    HTTPStatus.BAD_REQUEST, f"incomplete body: {length - left} of {length} bytes arrived"
                )
            parts.append(part)
            left -= len(part)
        return b"".join(parts)

    def _read_chunks(self) -> Iterator[bytes]:
        total = 0
        while True:
            size = self._chunk_size(self.rfile.readline(1024))
            if size == 0:
                self._skip_trailers()
                return
            total += size
            if total > self.server.body_limit:
                raise BodyOverLimit(HTTPStatus.INTERNAL_SERVER_ERROR, "chunked body over the host's limit")
            yield self._read_exactly(size)
            if self.rfile.readline(8) not in (b"\r\n", b"\n"):
                raise BodyUnreadable(
                    HTTPStatus.BAD_REQUEST, "malformed chunked body: no line end after a chunk"
                )

    @staticmethod
    def _chunk_size(line: bytes) -> int:
        text = line.split(b";")[0].strip()
        if not line.endswith(b"\n") or not re.fullmatch(rb"[0-9A-Fa-f]{1,15}", text):
            raise BodyUnreadable(HTTPStatus.BAD_REQUEST, "malformed chunked body: a bad chunk size line")
        return int(text, 16)

    def _skip_trailers(self) -> None:
        for _ in range(100):
            line = self.rfile.readline(8192)
            if line in (b"\r\n", b"\n"):
                return
            if not line.endswith(b"\n"):
                break
        raise BodyUnreadable(HTTPStatus.BAD_REQUEST, "malformed chunked body: bad trailers")

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

    def _answer_plain(
        self, status: HTTPStatus, headers: dict[str, str] | None = None, *, message: str | None = None
    ) -> int:
        """The host's own answer (no route, wrong method, a function that failed, a bad request), as JSON."""
        error = status.phrase.lower().replace(" ", "_").replace("-", "_")
        body = json.dumps({"error": error, "message": message or status.description})
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self._finish(body.encode("utf-8"))
        return int(status)

    def _finish(self, body: bytes) -> None:
        # A body still on the wire (never read, or not invited with 100 Continue) would be taken
        # for the next request: close the connection instead.
        if not self.close_connection and not self._body_consumed and self._has_body():
            self.close_connection = True
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
    env: Mapping[str, str] | None = None,
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
) -> FunctionsHost:
    """Import the app from `project` and bind the server (the caller runs serve_forever).

    Queue triggers take their queue names and connections, and the host its body limit, from `env`
    (the app settings; by default the environment). Raises SettingsError for a body limit that is
    not a number of bytes, AddressUnavailable when the address cannot be bound.
    """
    settings = os.environ if env is None else env
    body_limit = body_limit_of(settings)
    if str(project) not in sys.path:
        sys.path.insert(0, str(project))
    module = importlib.import_module(app_module)
    config = host_config(project)
    routes, queue_functions = load_functions(module.app, _route_prefix(config))
    listeners = []
    if queue_functions:
        options = QueueOptions.from_host_json(config)
        listeners = [queue_listener(function, options, project, settings) for function in queue_functions]
    try:
        return FunctionsHost(
            (host, port),
            routes,
            project,
            listeners=listeners,
            request_timeout=request_timeout,
            body_limit=body_limit,
        )
    except OSError as error:  # the server closed itself, and its listeners, before raising
        raise AddressUnavailable(_cannot_listen(host, port, error)) from error


def body_limit_of(env: Mapping[str, str]) -> int:
    """The host's request body limit: FUNCTIONS_REQUEST_BODY_SIZE_LIMIT in bytes, 100 MB unset."""
    raw = env.get(BODY_LIMIT_SETTING, "").strip()
    if not raw:
        return DEFAULT_BODY_LIMIT
    limit = declared_length(raw)
    if not limit:
        raise SettingsError(f"{BODY_LIMIT_SETTING} must be a whole number of bytes greater than zero")
    return limit


def _cannot_listen(host: str, port: int, error: OSError) -> str:
    if error.errno == errno.EADDRINUSE:
        return (
            f"port {port} on {host} is already in use (another `func start` or `python -m sessions serve`?): "
            "stop it, or choose another --port"
        )
    return f"cannot listen on {host}:{port}: {error.strerror or error}"


def describe(server: FunctionsHost) -> str:
    """The banner `func start` prints: each function with its methods and URL, or its queue."""
    lines = ["Functions:"]
    for route in server.routes:
        lines.append(f"        {route.name}: [{','.join(route.methods)}] {server.base_url}{route.template}")
    for listener in server.listeners:
        if listener.queue is None:
            lines.append(f"        {listener.function.name}: queueTrigger (in error: {listener.error})")
        else:
            lines.append(f"        {listener.function.name}: queueTrigger ({listener.queue.url})")
    return "\n".join(lines)
