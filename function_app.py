"""The routes of the ChargePilot push receiver (Azure Functions, Python v2 programming model).

Only HTTP lives here: the headers a push is judged on before its body is looked at (the Functions
host has read it, within its FUNCTIONS_REQUEST_BODY_SIZE_LIMIT), and which status answers
which outcome. The work is done by `sessions`; the background function finishes, from the push
queue, the pushes answered 202.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import azure.functions as func

from sessions.decoding import BodyTooLarge, InvalidPush, UnsupportedEncoding, declared_length, expand_body
from sessions.export import json_text
from sessions.keys import KEY_HEADER, KeyCheck
from sessions.logs import log_event
from sessions.reading import ReadError, csv_text, parse_request, read_page
from sessions.receiver import IncomingPush, Outcome, Receiver, current_receiver
from sessions.settings import Setting, SettingsError
from sessions.storage import StorageUnavailable

# The receiver checks ChargePilot's key itself: that header is what ChargePilot sends.
app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

RETRY_AFTER_SECONDS = 30
_JSON_TYPES = {"application/json", "text/json"}
_STATUS = {
    Outcome.STORED: 200,
    Outcome.ACCEPTED: 202,
    Outcome.UNAUTHORIZED: 401,
    Outcome.UNAVAILABLE: 503,
    Outcome.NOT_CONFIGURED: 503,
}
_REFUSAL_STATUS = {"invalid_body": 400, "too_many_sessions": 413}


@app.route(route="sessions", methods=["POST"])
def push_sessions(req: func.HttpRequest) -> func.HttpResponse:
    """Take one ChargePilot push: a session object, or an array of them."""
    try:
        receiver = current_receiver()
    except SettingsError as error:
        log_event("receiver_not_configured", logging.ERROR, reason=str(error))
        log_event("push", logging.ERROR, status=503, outcome=str(Outcome.NOT_CONFIGURED), reason=str(error))
        return _error(503, "not_configured", "the receiver is not configured; its log says why")
    push = receiver.arrival()
    response = _take(receiver, push, req)
    receiver.conclude(push, response.status_code)
    return response


def _take(receiver: Receiver, push: IncomingPush, req: func.HttpRequest) -> func.HttpResponse:
    # Key first: nothing about the body is looked at before the sender is known.
    push.key = receiver.keys.check(req.headers.get(KEY_HEADER))
    if push.key.check is KeyCheck.NOT_CONFIGURED:
        push.outcome, push.reason = (
            Outcome.NOT_CONFIGURED,
            _no_key_reason(receiver.settings.api_keys_unresolved),
        )
        return _error(503, "not_configured", "no API key is configured: every push is refused")
    if push.key.check is not KeyCheck.ACCEPTED:
        push.outcome, push.reason = Outcome.UNAUTHORIZED, f"{push.key.check.value} key"
        return _error(401, "unauthorized", f"missing or invalid {KEY_HEADER} header")

    limit = receiver.settings.max_body_bytes
    declared = req.headers.get("Content-Length", "").strip()
    length = declared_length(declared)
    if declared and length is None:
        return _refused(push, 400, "invalid_body", "Content-Length is not a number")
    if length is not None and length > limit:
        return _too_large(push, f"body is {length} bytes", limit)
    content_type = req.headers.get("Content-Type", "").strip()
    if content_type and not _is_json_utf8(content_type):
        return _refused(push, 415, "unsupported_media_type", "send application/json (UTF-8)")
    try:
        body = expand_body(req.get_body(), req.headers.get("Content-Encoding"), limit)
    except UnsupportedEncoding as error:
        return _refused(push, 415, "unsupported_media_type", str(error))
    except BodyTooLarge as error:
        return _too_large(push, str(error), limit)
    except InvalidPush as error:  # a gzip body that is not gzip
        return _refused(push, 400, "invalid_body", str(error))

    outcome = receiver.take(push, body, content_type=content_type or None)
    if outcome is Outcome.STORED:
        assert push.result is not None
        return _json(200, push.result.to_json())
    if outcome is Outcome.ACCEPTED:
        return _json(202, _accepted(push))
    if outcome is Outcome.REFUSED:
        refusal = push.refusal or "invalid_body"
        return _error(_REFUSAL_STATUS[refusal], refusal, push.reason or "")
    if push.refusal == "background_unavailable":
        return _error(
            503,
            "background_unavailable",
            "this push must be stored in the background, and the background function cannot run "
            "(the receiver's log says why); nothing of it is claimed stored: send it again later",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    return _error(
        _STATUS[outcome],
        "storage_unavailable",
        "storage did not take the push; nothing of it is claimed stored: send it again",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


@app.route(route="sessions", methods=["GET"])
def read_sessions(req: func.HttpRequest) -> func.HttpResponse:
    """One page of the stored sessions, for a billing system with a read key (never a push key)."""
    started = time.perf_counter()
    try:
        receiver = current_receiver()
    except SettingsError as error:
        log_event("receiver_not_configured", logging.ERROR, reason=str(error))
        return _read_refused(
            started, 503, "not_configured", "the receiver is not configured; its log says why"
        )
    verdict = receiver.read_keys.check(req.headers.get(KEY_HEADER))
    if verdict.check is KeyCheck.NOT_CONFIGURED:
        problem = receiver.settings.reading_problem() or "no read key"
        return _read_refused(
            started,
            503,
            "reading_not_configured",
            f"no read key is configured: nothing can be read ({problem})",
        )
    if verdict.check is not KeyCheck.ACCEPTED:
        return _read_refused(
            started, 401, "unauthorized", f"missing or invalid {KEY_HEADER} header (a read key)"
        )
    try:
        request = parse_request(req.params, req.headers.get("Accept"), now=datetime.now(UTC))
        page = read_page(receiver.store, request)
    except ReadError as error:
        return _read_refused(started, 400, "invalid_parameter", str(error))
    except StorageUnavailable as error:
        log_event("read", logging.ERROR, status=503, reason=str(error), duration_ms=_ms(started))
        return _error(
            503,
            "storage_unavailable",
            "storage did not answer; ask again later",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    headers = {"X-Next-Changed-Since": _utc(page.next_changed_since), "Cache-Control": "no-store"}
    next_url = (
        None
        if page.next_cursor is None
        else _next_url(req.url, page.next_cursor, page.limit, as_csv=request.csv)
    )
    if next_url is not None:
        headers["Link"] = f'<{next_url}>; rel="next"'
    count = len(page.rows)
    log_event(
        "read",
        status=200,
        sessions=count,
        more=next_url is not None,
        format="csv" if request.csv else "json",
        duration_ms=_ms(started),
        key_slot=verdict.slot,
        key_fingerprint=verdict.fingerprint,
    )
    if request.csv:
        return func.HttpResponse(
            csv_text(page), status_code=200, headers=headers, mimetype="text/csv", charset="utf-8"
        )
    body = {
        "sessions": page.rows,
        "count": count,
        "limit": page.limit,
        "next": next_url,
        "next_changed_since": _utc(page.next_changed_since),
    }
    # As the export writes JSON: no invisible or bidi character raw (sessions/export.py).
    return func.HttpResponse(
        json_text(body), status_code=200, headers=headers, mimetype="application/json", charset="utf-8"
    )


def _read_refused(started: float, status: int, code: str, message: str) -> func.HttpResponse:
    log_event("read", logging.WARNING, status=status, reason=message, duration_ms=_ms(started))
    return _error(status, code, message)


def _next_url(url: str, cursor: str, limit: int, *, as_csv: bool) -> str:
    parts = urlsplit(url)
    query = {"cursor": cursor, "limit": limit, **({"format": "csv"} if as_csv else {})}
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


@app.route(route="health", methods=["GET", "HEAD"])
def health(req: func.HttpRequest) -> func.HttpResponse:
    """Whether the receiver can take pushes: configured, and its storage reachable (no key, no data)."""
    try:
        receiver = current_receiver()
    except SettingsError as error:
        log_event("receiver_not_configured", logging.ERROR, reason=str(error))
        return _json(503, {"status": "unhealthy", "reason": "not configured"})
    problem = receiver.health()
    if problem is not None:
        log_event("health_failed", logging.ERROR, reason=problem.detail)
        return _json(503, {"status": "unhealthy", "reason": problem.reason})
    return _json(200, {"status": "healthy"})


@app.queue_trigger(arg_name="message", queue_name=f"%{Setting.PUSH_QUEUE}%", connection=Setting.STORAGE)
def store_push_in_background(message: func.QueueMessage) -> None:
    """Store a push that was answered 202. A failure is retried by the queue, then poisoned."""
    current_receiver().finish(message.get_body().decode("utf-8"), attempt=message.dequeue_count or 1)


def _accepted(push: IncomingPush) -> dict[str, Any]:
    return {
        "push_id": push.push_id,
        "status": "accepted",
        "received": push.sessions,
        "message": (
            "the push is archived and will be stored in the background; its outcome goes to its push "
            f"record: python -m sessions pushes --id {push.push_id}"
        ),
    }


def _refused(push: IncomingPush, status: int, code: str, message: str) -> func.HttpResponse:
    push.outcome, push.reason, push.refusal = Outcome.REFUSED, message, code
    return _error(status, code, message)


def _too_large(push: IncomingPush, size: str, limit: int) -> func.HttpResponse:
    return _refused(
        push,
        413,
        "payload_too_large",
        f"{size}; the limit is {limit} ({Setting.MAX_BODY_BYTES}): split the push",
    )


def _no_key_reason(unresolved_reference: bool) -> str:
    if unresolved_reference:
        return (
            f"{Setting.API_KEYS} is an unresolved Key Vault reference (secret missing, or the "
            "identity cannot read it): refusing every push"
        )
    return f"no key in {Setting.API_KEYS}: refusing every push"


def _is_json_utf8(content_type: str) -> bool:
    media_type, *parameters = (part.strip().lower() for part in content_type.split(";"))
    if media_type not in _JSON_TYPES and not (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        return False
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip() == "charset" and value.strip().strip('"') not in ("utf-8", "utf8"):
            return False
    return True


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return _json(status, {"error": code, "message": message}, headers)


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body, ensure_ascii=False),
        status_code=status,
        headers=headers,
        mimetype="application/json",
        charset="utf-8",
    )
