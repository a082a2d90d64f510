"""Reading a push body: a session object, or an array of them, as JSON (RFC 8259) in UTF-8."""

from __future__ import annotations

from typing import Any

import pydantic_core

_UTF8_BOM = b"\xef\xbb\xbf"


class InvalidPush(ValueError):
    """The body as a whole is not a push: nothing of it can be taken (HTTP 400)."""


def decode_push(body: bytes) -> list[Any]:
    """The items of a push: a single session object, or an array of them.

    Raises InvalidPush, saying what is wrong and where, when the body is not UTF-8, not JSON,
    or JSON of another shape. Items are not validated here: each is judged on its own later.
    """
    if body.startswith(_UTF8_BOM):
        body = body[len(_UTF8_BOM) :]
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidPush(f"body is not UTF-8: invalid byte at offset {error.start}") from None
    if not body.strip():
        raise InvalidPush("body is empty: expected a session object or an array of them")
    try:
        document = pydantic_core.from_json(body, allow_inf_nan=True)
    except ValueError as error:
        raise InvalidPush(f"body is not valid JSON: {error}") from None
    if isinstance(document, dict):
        return [document]
    if not isinstance(document, list):
        raise InvalidPush(
            f"body is a JSON {_json_kind(document)}: expected a session object or an array of them"
        )
    for index, item in enumerate(document):
        if not isinstance(item, dict):
            raise InvalidPush(
                f"item {index} of the array is a JSON {_json_kind(item)}: every item must be a session object"
            )
    return document


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
