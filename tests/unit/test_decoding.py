"""Reading a push body by RFC 8259: what makes a whole body no push (400), what makes one item odd
(rejected on its own, the rest taken), and gzip bodies with the limit on what they expand to."""

from __future__ import annotations

import gzip
import math
from typing import Any

import pytest

from sessions.decoding import (
    BodyTooLarge,
    InvalidPush,
    PushBody,
    UnsupportedEncoding,
    expand_body,
    odd_identifiers,
)


def items(body: bytes) -> list[Any]:
    """The values of a push's items (None for an odd one), after counting it as the receiver does."""
    push = PushBody(body)
    count = push.count()
    values = [item.value for item in push]
    assert len(values) == count
    return values


def odd_reasons(body: bytes) -> list[str | None]:
    return [item.odd for item in PushBody(body)]


def test_a_single_object_is_a_push_of_one() -> None:
    assert items(b'{"a": 1}') == [{"a": 1}]


def test_an_array_of_objects_is_a_push_and_an_empty_array_a_push_of_nothing() -> None:
    assert items(b'[{"a": 1}, {"b": 2}]') == [{"a": 1}, {"b": 2}]
    assert items(b"[]") == [] and items(b" [ ] \r\n") == []


def test_a_utf8_byte_order_mark_is_ignored() -> None:
    assert items(b'\xef\xbb\xbf[{"a": 1}]') == [{"a": 1}]


def test_the_last_of_duplicate_keys_wins_as_json_parsers_read_it() -> None:
    assert items(b'{"a": 1, "a": 2}') == [{"a": 2}]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"a": "\xff"}', "not UTF-8: invalid byte at offset 7"),
        (b'{"a": 1', "not valid JSON"),
        (b"", "body is empty"),
        (b"  \r\n", "body is empty"),
        (b"42", "body is a JSON number"),
        (b'"text"', "body is a JSON string"),
        (b"null", "body is a JSON null"),
        (b"true", "body is a JSON boolean"),
        (b'[{"a": 1}, "x"]', "item 1 of the array is a JSON string"),
        (b"[[]]", "item 0 of the array is a JSON array"),
        (b"[" * 10_000 + b"]" * 10_000, "item 0 of the array is a JSON array"),
        (b'[{"a": 1},]', "not valid JSON: expected a value at line 1 column 11"),
        (b'[{"a": 1} {"b": 2}]', "expected ',' or ']' at line 1 column 11"),
        (b'[{"a": 1}] x', "extra data after the push at line 1 column 12"),
        (b'[\n{"a":\n}]', "not valid JSON"),
        (b"\xed\xa0\x80", "not UTF-8"),  # a surrogate written as UTF-8 bytes is not UTF-8
    ],
)
def test_a_body_that_is_not_a_push_says_what_is_wrong_and_where(body: bytes, says: str) -> None:
    with pytest.raises(InvalidPush) as caught:
        items(body)
    assert says in str(caught.value)


@pytest.mark.parametrize(
    ("odd", "says"),
    [
        (b'{"Id": "\\ud83d"}', "lone UTF-16 surrogate"),
        (b'{"Id": "x", "Note": {"k\\udc00": 1}}', "lone UTF-16 surrogate"),
        (b'{"Meter": ' + b"9" * 5000 + b"}", "number of more digits"),
        (b'{"Nested": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", "nested deeper"),
        (b'{"Nested": {"a": ' + b"[" * 5_000 + b"{}" + b"]" * 5_000 + b"}}", "nested deeper"),
    ],
)
def test_an_odd_session_is_rejected_on_its_own_and_the_others_read(odd: bytes, says: str) -> None:
    body = b'[{"TransactionID": 1}, ' + odd + b', {"TransactionID": 3}]'
    reasons = odd_reasons(body)
    assert reasons[0] is None and reasons[2] is None
    assert reasons[1] is not None and says in reasons[1]
    assert items(body)[0] == {"TransactionID": 1} and items(body)[2] == {"TransactionID": 3}


def test_an_odd_item_that_is_not_json_still_makes_the_whole_body_invalid() -> None:
    with pytest.raises(InvalidPush, match="not valid JSON"):
        items(b'[{"a": 1}, {"Nested": ' + b"[" * 10_000 + b"1,]" + b"]" * 9_999 + b"}]")
    with pytest.raises(InvalidPush, match="not valid JSON"):
        items(b'[{"Nested": ' + b"[" * 10_000 + b"]" * 9_999 + b"}]")


def test_a_valid_surrogate_pair_is_text_not_an_odd_item() -> None:
    assert items(b'[{"Id": "\\ud83d\\ude00"}]') == [{"Id": "\U0001f600"}]


def test_nan_infinity_and_huge_numbers_are_read_as_numbers_for_the_model_to_judge() -> None:
    (nan, huge, minus) = (value["E"] for value in items(b'[{"E": NaN}, {"E": 1e400}, {"E": -Infinity}]'))
    assert math.isnan(nan) and huge == math.inf and minus == -math.inf


def test_an_item_keeps_its_text_exactly_as_sent() -> None:
    body = PushBody(b'[ {"b" : 2,  "a":1} ,{"Id":"\\ud83d"}]')
    first, second = list(body)
    assert body.raw(first) == '{"b" : 2,  "a":1}'
    assert body.raw(second) == '{"Id":"\\ud83d"}'


def test_counting_stops_after_the_limit_without_reading_a_flood_to_its_end() -> None:
    flood = b"[" + b",".join(b"{}" for _ in range(10_000)) + b", oops]"
    assert PushBody(flood).count(stop_after=100) == 101
    with pytest.raises(InvalidPush):
        PushBody(flood).count()


def test_the_identifiers_of_an_odd_item_are_found_where_a_plain_reading_can() -> None:
    assert odd_identifiers('{"ChargerID": "TACW/1", "TransactionID": 77, "Id": "\\ud83d"}') == ("TACW/1", 77)
    assert odd_identifiers('{"ChargerID": "\\ud83d", "TransactionID": 1.5}') == (None, None)


def test_a_gzip_body_is_expanded_and_any_other_encoding_refused() -> None:
    assert expand_body(gzip.compress(b"[]"), "gzip", 100) == b"[]"
    assert expand_body(b"[]", None, 100) == b"[]" and expand_body(b"[]", "identity", 100) == b"[]"
    for encoding in ("br", "deflate", "gzip, br", "compress"):
        with pytest.raises(UnsupportedEncoding):
            expand_body(gzip.compress(b"[]"), encoding, 100)


def test_the_limit_applies_to_what_a_gzip_body_expands_to() -> None:
    bomb = gzip.compress(b" " * 10_000_000)
    assert len(bomb) < 20_000
    with pytest.raises(BodyTooLarge):
        expand_body(bomb, "gzip", 1_000_000)
    with pytest.raises(BodyTooLarge):
        expand_body(b"x" * 101, None, 100)


def test_a_broken_gzip_body_is_not_a_push() -> None:
    whole = gzip.compress(b'[{"a": 1}]')
    for broken in (whole[:-6], b"not gzip at all", whole + whole):
        with pytest.raises(InvalidPush):
            expand_body(broken, "gzip", 1000)
