"""Reading a push body: one session object, or an array of them, as JSON (RFC 8259) in UTF-8.

The body is judged as a whole only on what makes it no push at all: not UTF-8, not JSON by RFC
8259's grammar, or JSON of another shape than an object or an array of objects (InvalidPush, HTTP
400). Within that, each item is read on its own. An item that is grammatically JSON but of which
no session value can be made (nested deeper than a decoder goes, a number beyond any range, a
broken UTF-16 surrogate in a string) is an *odd* item: it is rejected like an invalid session,
on its own, with its text kept, while the rest of the push is taken. So one odd session never
makes a sender retry a whole push forever.

Items are read lazily: `PushBody.count()` reads through once, to judge the body and count its
items, and iterating reads them again one at a time, so that a large push is never held whole as
Python objects. NaN and Infinity are read as numbers (the model then rejects that one session).
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

_UTF8_BOM = "\ufeff"
_WHITESPACE = re.compile(r"[ \t\n\r]*")
# A JSON token, for reading the rare item the C decoder cannot (depth, size) without recursion.
_TOKEN = re.compile(
    r"""[ \t\n\r]*(?:
      (?P<string>"(?:[^"\\\x00-\x1f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*")
     |(?P<number>-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)
     |(?P<literal>true|false|null|NaN|-?Infinity)
     |(?P<open>[{\[])|(?P<close>[}\]])|(?P<colon>:)|(?P<comma>,)
    )""",
    re.VERBOSE,
)
# A \uD800-\uDFFF escape: the only way a JSON string can hold half of a UTF-16 pair.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
# Best-effort identifiers of an odd item, for the answer and the quarantine.
_CHARGER_ID = re.compile(r'"ChargerID"[ \t\n\r]*:[ \t\n\r]*"((?:[^"\\\x00-\x1f]|\\.){1,160})"')
_TRANSACTION_ID = re.compile(r'"TransactionID"[ \t\n\r]*:[ \t\n\r]*([0-9]{1,19})(?![0-9.eE])')
_DECODER = json.JSONDecoder()


class InvalidPush(ValueError):
    """The body as a whole is not a push: nothing of it can be taken (HTTP 400)."""


class BodyTooLarge(ValueError):
    """The body, once expanded, is larger than the limit (HTTP 413)."""


class UnsupportedEncoding(ValueError):
    """The body is compressed in a way the receiver does not read (HTTP 415)."""


# More digits than any body's size has (a Content-Length of 10**18 bytes or more is not a size).
_LENGTH_DIGITS = 18


def declared_length(header: str) -> int | None:
    """The size a Content-Length header declares, or None when it is not a number of bytes.

    Only ASCII digits count: `str.isdigit` also takes superscripts (which `int` refuses) and other
    scripts' digits (which `int` reads), and a number of thousands of digits is beyond what `int`
    converts.
    """
    value = header.strip()
    if not value.isascii() or not value.isdigit() or len(value) > _LENGTH_DIGITS:
        return None
    return int(value)


def expand_body(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """The body as JSON text: as sent, or gunzipped (`Content-Encoding: gzip`) with the limit
    applied to what it expands to, so that a small bomb is refused, never expanded.

    Raises UnsupportedEncoding for any other encoding (never read as plain JSON), BodyTooLarge,
    or InvalidPush for a gzip body that is broken.
    """
    codings = [coding.strip().lower() for coding in (content_encoding or "").split(",") if coding.strip()]
    if codings in ([], ["identity"]):
        if len(body) > limit:
            raise BodyTooLarge(f"body is {len(body)} bytes")
        return body
    if codings not in (["gzip"], ["x-gzip"]):
        raise UnsupportedEncoding(
            f"Content-Encoding {content_encoding!r} is not read here: send the body as it is, or gzip"
        )
    expander = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        expanded = expander.decompress(body, limit + 1)
        if len(expanded) > limit:
            raise BodyTooLarge("the gzip body expands to more")
        if not expander.eof or expander.unused_data:
            raise InvalidPush("the gzip body is cut short, or holds more than one gzip member")
    except zlib.error as error:
        raise InvalidPush(f"the body is not valid gzip: {error}") from None
    return expanded


@dataclass(frozen=True, slots=True)
class PushItem:
    """One item of a push: its position, its value (None for an odd item) and where it stands."""

    index: int
    value: dict[str, Any] | None
    start: int
    end: int
    # Why no session value can be made of it (an odd item), or None.
    odd: str | None = None


class PushBody:
    """A push body checked to be UTF-8, read item by item."""

    def __init__(self, body: bytes) -> None:
        """Raise InvalidPush unless the body is UTF-8 text starting an object or an array."""
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as error:
            raise InvalidPush(f"body is not UTF-8: invalid byte at offset {error.start}") from None
        self.text = text[1:] if text.startswith(_UTF8_BOM) else text
        self._start = _skip_whitespace(self.text, 0)
        if self._start == len(self.text):
            raise InvalidPush("body is empty: expected a session object or an array of them")
        self.is_array = self.text[self._start] == "["
        if not self.is_array and self.text[self._start] != "{":
            kind = _kind_of_document(self.text, self._start)
            raise InvalidPush(f"body is a JSON {kind}: expected a session object or an array of them")
        self._count: int | None = None

    def count(self, stop_after: int | None = None) -> int:
        """How many items the push holds; raises InvalidPush if the body is not a push.

        With `stop_after`, reading stops at the item after that many (a flood of junk is found
        too large without being read to its end): the count is then stop_after + 1.
        """
        if self._count is not None:
            return self._count
        count = 0
        for _ in self._items(keep_values=False):
            count += 1
            if stop_after is not None and count > stop_after:
                return count
        self._count = count
        return count

    def __iter__(self) -> Iterator[PushItem]:
        """The items in order (values decoded one at a time); raises InvalidPush where it stops."""
        return self._items(keep_values=True)

    def raw(self, item: PushItem) -> str:
        """The item's JSON text exactly as the sender wrote it."""
        return self.text[item.start : item.end]

    def _items(self, *, keep_values: bool) -> Iterator[PushItem]:
        text = self.text
        if not self.is_array:
            item = _read_item(text, self._start, 0, keep_values)
            _expect_end(text, item.end)
            yield item
            return
        position = _skip_whitespace(text, self._start + 1)
        if text.startswith("]", position):
            _expect_end(text, position + 1)
            return
        index = 0
        while True:
            item = _read_item(text, position, index, keep_values)
            yield item
            position = _skip_whitespace(text, item.end)
            if text.startswith(",", position):
                position = _skip_whitespace(text, position + 1)
                index += 1
            elif text.startswith("]", position):
                _expect_end(text, position + 1)
                return
            else:
                raise InvalidPush(f"body is not valid JSON: expected ',' or ']' {_where(text, position)}")


def odd_identifiers(raw: str) -> tuple[str | None, int | None]:
    """ChargerID and TransactionID of an odd item's text, where a plain reading finds them."""
    charger = _CHARGER_ID.search(raw)
    transaction = _TRANSACTION_ID.search(raw)
    charger_id = None
    if charger is not None:
        try:
            charger_id = json.loads(f'"{charger.group(1)}"').encode("utf-8").decode("utf-8")
        except (ValueError, UnicodeEncodeError):
            charger_id = None
    return charger_id, int(transaction.group(1)) if transaction else None


def _read_item(text: str, position: int, index: int, keep_values: bool) -> PushItem:
    if not text.startswith("{", position):
        if position >= len(text):
            raise InvalidPush(f"body is not valid JSON: the array is not closed {_where(text, position)}")
        raise InvalidPush(
            f"item {index} of the array is a JSON {_kind_of_document(text, position)}: "
            "every item must be a session object"
        )
    try:
        value, end = _DECODER.raw_decode(text, position)
    except json.JSONDecodeError as error:
        raise InvalidPush(f"body is not valid JSON: {error.msg} {_where(text, error.pos)}") from None
    except RecursionError:
        return PushItem(index, None, position, _skip_value(text, position), odd=_TOO_DEEP)
    except ValueError:  # an integer of more digits than Python converts
        return PushItem(index, None, position, _skip_value(text, position), odd=_TOO_LONG)
    if _SURROGATE_ESCAPE.search(text, position, end) and _holds_lone_surrogate(value):
        return PushItem(index, None, position, end, odd=_BROKEN_TEXT)
    return PushItem(index, value if keep_values else None, position, end)


_TOO_DEEP = "is nested deeper than a session can be read: it cannot be stored"
_TOO_LONG = "holds a number of more digits than can be read: it cannot be stored"
_BROKEN_TEXT = (
    "holds a lone UTF-16 surrogate (a \\uD800-\\uDFFF escape without its pair): a broken string "
    "that is not text and cannot be stored"
)


def _holds_lone_surrogate(value: Any) -> bool:
    """Whether any string or key in the value holds half of a surrogate pair (no recursion)."""
    pending = [value]
    while pending:
        current = pending.pop()
        if isinstance(current, str):
            if any("\ud800" <= character <= "\udfff" for character in current):
                return True
        elif isinstance(current, dict):
            pending.extend(current.keys())
            pending.extend(current.values())
        elif isinstance(current, list):
            pending.extend(current)
    return False


def _skip_value(text: str, position: int) -> int:
    """The end of the JSON value starting at `position`, read without recursion, however deep.

    Raises InvalidPush if it is not JSON by RFC 8259's grammar (NaN and Infinity allowed).
    """
    # What may come next: "value"; "first-value" (just after '[': a value or ']'); "key" (after
    # ','); "first-key" (just after '{': a key or '}'); "colon"; "after" (after a value inside a
    # container: ',' or the closing bracket); "done".
    expecting = "value"
    stack: list[str] = []
    while expecting != "done":
        token = _TOKEN.match(text, position)
        if token is None or token.lastgroup is None:
            raise InvalidPush(f"body is not valid JSON {_where(text, _skip_whitespace(text, position))}")
        kind, symbol, position = token.lastgroup, text[token.end() - 1], token.end()
        if kind == "close" and expecting in ("first-key", "first-value", "after"):
            if (
                not stack
                or {"{": "}", "[": "]"}[stack[-1]] != symbol
                or (expecting == "first-key" and symbol != "}")
            ):
                raise InvalidPush(
                    f"body is not valid JSON: unexpected {symbol!r} {_where(text, position - 1)}"
                )
            stack.pop()
            expecting = "after" if stack else "done"
        elif expecting in ("key", "first-key"):
            if kind != "string":
                raise InvalidPush(f"body is not valid JSON: expected a key {_where(text, position - 1)}")
            expecting = "colon"
        elif expecting == "colon":
            if kind != "colon":
                raise InvalidPush(f"body is not valid JSON: expected ':' {_where(text, position - 1)}")
            expecting = "value"
        elif expecting in ("value", "first-value"):
            if kind == "open":
                stack.append(symbol)
                expecting = "first-key" if symbol == "{" else "first-value"
            elif kind in ("string", "number", "literal"):
                expecting = "after" if stack else "done"
            else:
                raise InvalidPush(f"body is not valid JSON: expected a value {_where(text, position - 1)}")
        elif kind == "comma":  # expecting "after"
            expecting = "key" if stack[-1] == "{" else "value"
        else:
            raise InvalidPush(f"body is not valid JSON: expected ',' {_where(text, position - 1)}")
    return position


def _expect_end(text: str, position: int) -> None:
    rest = _skip_whitespace(text, position)
    if rest != len(text):
        raise InvalidPush(f"body is not valid JSON: extra data after the push {_where(text, rest)}")


def _skip_whitespace(text: str, position: int) -> int:
    found = _WHITESPACE.match(text, position)
    return found.end() if found else position


def _where(text: str, position: int) -> str:
    line = text.count("\n", 0, position) + 1
    column = position - text.rfind("\n", 0, position)
    return f"at line {line} column {column}"


def _kind_of_document(text: str, position: int) -> str:
    """What JSON value starts at `position` (or that it is no JSON at all)."""
    first = text[position : position + 1]
    if first == "[":
        return "array"
    if first == '"':
        return "string"
    if first in "-0123456789" or text.startswith(("NaN", "Infinity"), position):
        return "number"
    if text.startswith(("true", "false"), position):
        return "boolean"
    if text.startswith("null", position):
        return "null"
    raise InvalidPush(f"body is not valid JSON: expected a value {_where(text, position)}")
