"""HTTP routes of the ChargePilot push receiver (Azure Functions, Python v2 programming model).

Only HTTP lives here: which status answers which outcome. The work is done by `sessions`.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import azure.functions as func

from sessions.decoding import InvalidPush
from sessions.keys import KEY_HEADER, KeyCheck
from sessions.logs import log_event
from sessions.receiver import current_receiver
from sessions.settings import Setting, SettingsError
from sessions.storage import StorageUnavailable

# The receiver checks ChargePilot's key itself: that header is what ChargePilot sends.
app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

RETRY_AFTER_SECONDS = 30
_JSON_TYPES = {"application/json", "text/json"}


@app.route(route="sessions", methods=["POST"])
def push_sessions(req: func.HttpRequest) -> func.HttpResponse:
    """Take one ChargePilot push: a session object, or an array of them."""
    try:
        receiver = current_receiver()
    except SettingsError as error:
        log_event("receiver_not_configured", logging.ERROR, reason=str(error))
        return _error(503, "not_configured", "the receiver is not configured; its log says why")

    # Key first: nothing about the body is looked at before the sender is known.
    verdict = receiver.keys.check(req.headers.get(KEY_HEADER))
    if verdict is KeyCheck.NOT_CONFIGURED:
        log_event("push_refused", logging.ERROR, reason=_no_key_reason(receiver.settings.api_keys_unresolved))
        return _error(503, "not_configured", "no API key is configured: every push is refused")
    if verdict is not KeyCheck.ACCEPTED:
        log_event("push_unauthorized", logging.WARNING, reason=f"{verdict.value} key")
        return _error(401, "unauthorized", f"missing or invalid {KEY_HEADER} header")

    limit = receiver.settings.max_body_bytes
    declared = req.headers.get("Content-Length", "").strip()
    if declared and not declared.isdigit():
        return _error(400, "invalid_body", "Content-Length is not a number")
    if declared and int(declared) > limit:
        return _too_large(int(declared), limit)
    content_type = req.headers.get("Content-Type", "").strip()
    if content_type and not _is_json_utf8(content_type):
        return _error(415, "unsupported_media_type", "send application/json (UTF-8)")
    body = req.get_body()
    if len(body) > limit:
        return _too_large(len(body), limit)

    try:
        result = receiver.take_push(body, content_type=content_type or None)
    except InvalidPush as error:
        return _error(400, "invalid_body", str(error))
    except StorageUnavailable:
        return _error(
            503,
            "storage_unavailable",
            "storage did not take the push; nothing of it is claimed stored: send it again",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    return _json(200, result.to_json())


@app.route(route="health", methods=["GET"])
def health(req: func.HttpRequest) -> func.HttpResponse:
    """Whether the receiver can take pushes: configured, and its tables reachable."""
    try:
        receiver = current_receiver()
    except SettingsError as error:
        log_event("receiver_not_configured", logging.ERROR, reason=str(error))
        return _json(503, {"status": "unhealthy", "reason": "not configured"})
    if not receiver.keys.configured:
        return _json(503, {"status": "unhealthy", "reason": "no API key configured"})
    try:
        receiver.check_health()
    except StorageUnavailable as error:
        log_event("health_failed", logging.ERROR, reason=str(error))
        return _json(503, {"status": "unhealthy", "reason": "storage unreachable"})
    return _json(200, {"status": "healthy"})


def _no_key_reason(unresolved_reference: bool) -> str:
    if unresolved_reference:
        return (
            "CHARGEPILOT_API_KEYS is an unresolved Key Vault reference (secret missing, or the "
            "identity cannot read it): refusing every push"
        )
    return "no key in CHARGEPILOT_API_KEYS: refusing every push"


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


def _too_large(size: int, limit: int) -> func.HttpResponse:
    return _error(
        413,
        "payload_too_large",
        f"body is {size} bytes; the limit is {limit} ({Setting.MAX_BODY_BYTES}): split the push",
    )


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
