"""The session model and the push decoder: DESIGN.md's contract point 2 and 3, rule by rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from sessions.decoding import InvalidPush, decode_push
from sessions.model import Session, field_errors
from tests.helpers.pushes import session


def errors_of(**fields: Any) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        Session.model_validate(session(**fields))
    return {error.field: error.message for error in field_errors(caught.value)}


def test_the_articles_example_is_valid_and_kept_as_sent() -> None:
    parsed = Session.model_validate(session(TransactionID=7030760))
    assert parsed.TransactionID == 7030760
    assert parsed.ChargerID == "TACW2242521T0570"
    assert parsed.StartAt == datetime(2025, 1, 9, 13, 4, 34, tzinfo=UTC)
    assert parsed.EnergyDelivered == 17233
    assert parsed.InitialSoC is None and parsed.EndSoC is None


def test_timestamps_with_an_offset_are_kept_in_utc() -> None:
    parsed = Session.model_validate(
        session(StartAt="2025-01-09T15:04:34+02:00", EndAt="2025-01-09T23:00:00.125-05:00")
    )
    assert parsed.StartAt == datetime(2025, 1, 9, 13, 4, 34, tzinfo=UTC)
    assert parsed.StartAt.tzinfo is not None and parsed.StartAt.utcoffset() == timedelta(0)
    assert parsed.EndAt == datetime(2025, 1, 10, 4, 0, 0, 125000, tzinfo=UTC)


def test_a_timestamp_without_a_zone_is_rejected() -> None:
    assert errors_of(StartAt="2025-01-09T13:04:34") == {"StartAt": "Input should have timezone info"}


def test_a_timestamp_given_as_a_number_is_rejected_not_read_as_unix_time() -> None:
    assert "StartAt" in errors_of(StartAt=1736427874)


def test_nanosecond_digits_are_cut_to_microseconds() -> None:
    parsed = Session.model_validate(session(EndAt="2025-01-10T06:02:38.123456789Z"))
    assert parsed.EndAt.microsecond == 123456


def test_a_timestamp_beyond_table_storage_range_is_rejected() -> None:
    assert "StartAt" in errors_of(StartAt="1600-12-31T23:59:59Z")
    assert "EndAt" in errors_of(EndAt="9999-12-31T23:00:00-05:00")


def test_end_before_start_is_rejected_on_end_at() -> None:
    assert errors_of(EndAt="2025-01-09T13:04:33Z") == {"EndAt": "must not be before StartAt"}


def test_end_equal_to_start_is_valid() -> None:
    Session.model_validate(session(EndAt="2025-01-09T13:04:34Z"))


@pytest.mark.parametrize("soc", [-0.1, 100.5, 1000])
def test_state_of_charge_outside_0_to_100_is_rejected(soc: float) -> None:
    assert set(errors_of(InitialSoC=soc, EndSoC=soc)) == {"InitialSoC", "EndSoC"}


def test_state_of_charge_bounds_and_null_are_valid() -> None:
    parsed = Session.model_validate(session(InitialSoC=0, EndSoC=100))
    assert (parsed.InitialSoC, parsed.EndSoC) == (0, 100)


def test_absent_state_of_charge_and_card_mean_null() -> None:
    fields = session()
    for name in ("InitialSoC", "EndSoC", "Id"):
        del fields[name]
    parsed = Session.model_validate(fields)
    assert parsed.InitialSoC is None and parsed.EndSoC is None and parsed.Id is None


@pytest.mark.parametrize("energy", [-1, float("nan"), float("inf"), float("-inf")])
def test_negative_or_non_finite_energy_is_rejected(energy: float) -> None:
    assert "EnergyDelivered" in errors_of(EnergyDelivered=energy)


def test_zero_and_fractional_energy_are_valid() -> None:
    assert Session.model_validate(session(EnergyDelivered=0)).EnergyDelivered == 0
    assert Session.model_validate(session(EnergyDelivered=12.5)).EnergyDelivered == 12.5


@pytest.mark.parametrize(("card", "kept"), [(None, None), ("", ""), (56395736, "56395736"), (12.0, "12")])
def test_card_id_may_be_null_empty_or_a_number_kept_as_its_decimal_string(card: Any, kept: Any) -> None:
    assert Session.model_validate(session(Id=card)).Id == kept


@pytest.mark.parametrize("card", [True, [1], {"a": 1}])
def test_card_id_of_another_type_is_rejected(card: Any) -> None:
    assert "Id" in errors_of(Id=card)


def test_transaction_id_above_2_to_the_31_is_valid() -> None:
    assert Session.model_validate(session(TransactionID=2**40 + 7)).TransactionID == 2**40 + 7


@pytest.mark.parametrize("value", ["7030760", 7030760.5, True, -1, 2**63])
def test_transaction_id_must_be_a_whole_non_negative_int64_number(value: Any) -> None:
    assert "TransactionID" in errors_of(TransactionID=value)


@pytest.mark.parametrize("value", ["", 5, None, "x" * 161])
def test_charger_id_must_be_a_non_empty_string_that_fits_a_row_key(value: Any) -> None:
    assert "ChargerID" in errors_of(ChargerID=value)


@pytest.mark.parametrize("value", ["1", 1.5, True, -1])
def test_connector_id_must_be_a_whole_number(value: Any) -> None:
    assert "ConnectorID" in errors_of(ConnectorID=value)


def test_missing_required_fields_are_each_named() -> None:
    with pytest.raises(ValidationError) as caught:
        Session.model_validate({"ChargerID": "X"})
    named = {error.field for error in field_errors(caught.value)}
    assert named == {"TransactionID", "ConnectorID", "StartAt", "EndAt", "EnergyDelivered"}


def test_unknown_extra_fields_are_kept_not_rejected() -> None:
    parsed = Session.model_validate(session(Tariff={"name": "depot", "ct_per_kwh": 31}, MeterStart=1))
    assert parsed.extra_fields == {"Tariff": {"name": "depot", "ct_per_kwh": 31}, "MeterStart": 1}


def test_a_single_object_is_a_push_of_one() -> None:
    assert decode_push(b'{"a": 1}') == [{"a": 1}]


def test_an_array_of_objects_is_a_push_and_an_empty_array_a_push_of_nothing() -> None:
    assert decode_push(b'[{"a": 1}, {"b": 2}]') == [{"a": 1}, {"b": 2}]
    assert decode_push(b"[]") == []


def test_a_utf8_byte_order_mark_is_ignored() -> None:
    assert decode_push(b'\xef\xbb\xbf[{"a": 1}]') == [{"a": 1}]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"a": "\xff"}', "not UTF-8: invalid byte at offset 7"),
        (b'{"a": 1', "not valid JSON: EOF while parsing an object at line 1 column 7"),
        (b"", "body is empty"),
        (b"42", "body is a JSON number"),
        (b'"text"', "body is a JSON string"),
        (b"null", "body is a JSON null"),
        (b'[{"a": 1}, "x"]', "item 1 of the array is a JSON string"),
        (b"[[]]", "item 0 of the array is a JSON array"),
        (b"[" * 10_000 + b"]" * 10_000, "not valid JSON: recursion limit exceeded"),
        (b'{"a": "\\ud800"}', "not valid JSON"),
    ],
)
def test_a_body_that_is_not_a_push_says_what_is_wrong_and_where(body: bytes, says: str) -> None:
    with pytest.raises(InvalidPush) as caught:
        decode_push(body)
    assert says in str(caught.value)


def test_nan_and_huge_numbers_reach_validation_instead_of_failing_the_push() -> None:
    items = decode_push(b'[{"EnergyDelivered": NaN}, {"EnergyDelivered": 1e400}]')
    for item in items:
        assert "EnergyDelivered" in errors_of(EnergyDelivered=item["EnergyDelivered"])
