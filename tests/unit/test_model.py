"""The session model: the rules a sender must know (docs/http-api.md), rule by rule, and the
plausibility rules (docs/configuration.md).

Every session is judged as `validate_session` judges it in the receiver: against the default
limits and the instant its push was received (RECEIVED, the morning after the article's example).
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from sessions.model import (
    MAX_EXTRA_DEPTH,
    MAX_EXTRA_INT_DIGITS,
    Session,
    field_errors,
    validate_session,
)
from sessions.settings import SessionLimits
from tests.helpers.pushes import session
from tools.simulate import generate_sessions

RECEIVED = datetime(2025, 1, 10, 7, 0, tzinfo=UTC)
LIMITS = SessionLimits()
EXAMPLE = "2025-01-09T13:04:34Z or 2025-01-09T15:04:34+02:00"


def judged(
    item: dict[str, Any], *, limits: SessionLimits = LIMITS, received_at: datetime = RECEIVED
) -> Session:
    return validate_session(item, limits=limits, received_at=received_at)


def valid(**fields: Any) -> Session:
    return judged(session(**fields))


def errors_of(**fields: Any) -> dict[str, str]:
    """The reasons a session with these fields is rejected, by field."""
    with pytest.raises(ValidationError) as caught:
        valid(**fields)
    return {error.field: error.message for error in field_errors(caught.value)}


def error_types_of(**fields: Any) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        valid(**fields)
    return {".".join(map(str, error["loc"])): error["type"] for error in caught.value.errors()}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


# --- The contract's fields -----------------------------------------------------------------


def test_the_articles_example_is_valid_and_kept_as_sent() -> None:
    parsed = valid(TransactionID=7030760)
    assert parsed.TransactionID == 7030760
    assert parsed.ChargerID == "TACW2242521T0570"
    assert parsed.StartAt == datetime(2025, 1, 9, 13, 4, 34, tzinfo=UTC)
    assert parsed.EnergyDelivered == 17233
    assert parsed.InitialSoC is None and parsed.EndSoC is None


@pytest.mark.parametrize("soc", [-0.1, 100.5, 1000])
def test_state_of_charge_outside_0_to_100_is_rejected(soc: float) -> None:
    assert set(errors_of(InitialSoC=soc, EndSoC=soc)) == {"InitialSoC", "EndSoC"}


def test_state_of_charge_bounds_and_null_are_valid() -> None:
    parsed = valid(InitialSoC=0, EndSoC=100)
    assert (parsed.InitialSoC, parsed.EndSoC) == (0, 100)


def test_absent_state_of_charge_and_card_mean_null() -> None:
    fields = session()
    for name in ("InitialSoC", "EndSoC", "Id"):
        del fields[name]
    parsed = judged(fields)
    assert parsed.InitialSoC is None and parsed.EndSoC is None and parsed.Id is None


@pytest.mark.parametrize("energy", [-1, float("nan"), float("inf"), float("-inf"), json.loads("1e400")])
def test_negative_or_non_finite_energy_is_rejected(energy: float) -> None:
    assert "EnergyDelivered" in errors_of(EnergyDelivered=energy)


def test_zero_and_fractional_energy_are_valid() -> None:
    assert valid(EnergyDelivered=0).EnergyDelivered == 0
    assert valid(EnergyDelivered=12.5).EnergyDelivered == 12.5


@pytest.mark.parametrize(("card", "kept"), [(None, None), ("", ""), (56395736, "56395736"), (12.0, "12")])
def test_card_id_may_be_null_empty_or_a_number_kept_as_its_decimal_string(card: Any, kept: Any) -> None:
    assert valid(Id=card).Id == kept


@pytest.mark.parametrize(
    "card", [True, [1], {"a": 1}, 10**MAX_EXTRA_INT_DIGITS, pytest.param(10**5000, id="5000 digits")]
)
def test_card_id_of_another_type_or_a_number_too_long_for_a_tag_is_rejected(card: Any) -> None:
    assert "Id" in errors_of(Id=card)


def test_transaction_id_above_2_to_the_31_is_valid() -> None:
    assert valid(TransactionID=2**40 + 7).TransactionID == 2**40 + 7


@pytest.mark.parametrize(
    "value", ["7030760", 7030760.5, True, -1, 2**63, pytest.param(10**5000, id="5000 digits")]
)
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
        judged({"ChargerID": "X"})
    named = {error.field for error in field_errors(caught.value)}
    assert named == {"TransactionID", "ConnectorID", "StartAt", "EndAt", "EnergyDelivered"}


def test_unknown_extra_fields_are_kept_not_rejected() -> None:
    parsed = valid(Tariff={"name": "depot", "ct_per_kwh": 31}, MeterStart=1)
    assert parsed.extra_fields == {"Tariff": {"name": "depot", "ct_per_kwh": 31}, "MeterStart": 1}


# --- Timestamps ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "instant"),
    [
        ("2025-01-09T13:04:34.000Z", "2025-01-09T13:04:34+00:00"),
        ("2025-01-09T13:04:34Z", "2025-01-09T13:04:34+00:00"),
        ("2025-01-09T15:04:34+02:00", "2025-01-09T13:04:34+00:00"),
        ("2025-01-09T08:04:34.125-05:00", "2025-01-09T13:04:34.125+00:00"),
        ("2025-01-09T13:04:34-00:00", "2025-01-09T13:04:34+00:00"),
        ("2025-01-09T15:04:34+0200", "2025-01-09T13:04:34+00:00"),
        ("2025-01-09t13:04:34z", "2025-01-09T13:04:34+00:00"),
        ("2025-01-09 13:04:34Z", "2025-01-09T13:04:34+00:00"),
        ("2025-01-09T13:04:34,5Z", "2025-01-09T13:04:34.5+00:00"),
    ],
)
def test_iso_8601_date_times_with_a_zone_are_read_as_their_instant_in_utc(sent: str, instant: str) -> None:
    parsed = valid(StartAt=sent)
    assert parsed.StartAt == utc(instant) and parsed.StartAt.utcoffset() == timedelta(0)


def test_fraction_digits_beyond_microseconds_are_cut_not_rounded() -> None:
    assert valid(EndAt="2025-01-10T06:02:38.123456789Z").EndAt.microsecond == 123456


@pytest.mark.parametrize("field", ["StartAt", "EndAt"])
@pytest.mark.parametrize("text", ["20251010", "1736427874", "0", "-1", "1736427874.5", " 1736427874 ", "1e9"])
def test_a_number_in_a_string_is_rejected_never_read_as_unix_time(field: str, text: str) -> None:
    message = errors_of(**{field: text})[field]
    assert message.startswith(f"{json.dumps(text)} is a number in a string, not an ISO 8601 date-time")
    assert "never read as Unix time" in message


@pytest.mark.parametrize("field", ["StartAt", "EndAt"])
@pytest.mark.parametrize("value", [1736427874, 0, -1, 1736427874.5])
def test_a_number_is_rejected_never_read_as_unix_time(field: str, value: float) -> None:
    message = errors_of(**{field: value})[field]
    assert "not a number (a number is never read as Unix time)" in message


@pytest.mark.parametrize(("value", "kind"), [(None, "null"), (True, "a JSON boolean"), ([], "an array")])
def test_a_timestamp_of_another_json_type_is_rejected_naming_the_type(value: Any, kind: str) -> None:
    assert errors_of(StartAt=value)["StartAt"].endswith(f"with a zone, such as {EXAMPLE}, not {kind}")


@pytest.mark.parametrize("text", ["2025-01-09", "2025-10-10"])
def test_a_date_without_a_time_is_rejected(text: str) -> None:
    assert errors_of(StartAt=text)["StartAt"] == (
        f'"{text}" is a date without a time of day: send an ISO 8601 date-time with a zone, such as {EXAMPLE}'
    )


@pytest.mark.parametrize("text", ["2025-01-09T13:04:34", "2025-01-09T13:04:34.000", "2025-01-09 13:04:34"])
def test_a_date_time_without_a_zone_is_rejected(text: str) -> None:
    assert errors_of(StartAt=text)["StartAt"] == (
        f'"{text}" has no zone, so its instant is unknown: add Z for UTC or the offset, such as {EXAMPLE}'
    )


@pytest.mark.parametrize(
    "text",
    [
        "",
        "13:04:34Z",  # a time without a date
        "2025-01-09T13:04Z",  # seconds left out
        "2025-01-09T13:04:34+02",  # an offset of hours only
        "2025-01-09T13:04:34+02:00:00",
        "20250109T130434Z",  # ISO 8601's basic format
        "2025-W02-4T13:04:34Z",  # a week date
        "2025-009T13:04:34Z",  # an ordinal date
        "\uff12\uff10\uff12\uff15-01-09T13:04:34Z",  # fullwidth digits
        "٢٠٢٥-01-09T13:04:34Z",  # Arabic-Indic digits
        " 2025-01-09T13:04:34Z",
        "2025-01-09T13:04:34Z\n",
        "2025-01-09T13:04:34 Z",
        "2025-01-09T13:04:34.Z",
        "Thu, 09 Jan 2025 13:04:34 GMT",
        "2025-01-09T13:04:34Z[Europe/Berlin]",
    ],
)
def test_other_spellings_are_rejected_as_not_iso_8601_with_a_zone(text: str) -> None:
    assert errors_of(StartAt=text)["StartAt"] == (
        f"{json.dumps(text)} is not an ISO 8601 date-time with a zone, such as {EXAMPLE}"
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("2025-02-30T13:04:34Z", "day is out of range for month"),
        ("2025-13-09T13:04:34Z", "month must be in 1..12"),
        ("2025-01-09T24:00:00Z", "hour must be in 0..23"),
        ("2016-12-31T23:59:60Z", "second must be in 0..59"),
        ("2025-01-09T13:04:34+24:00", "the offset must be less than 24 hours, its minutes 0 to 59"),
        ("2025-01-09T13:04:34+01:60", "the offset must be less than 24 hours, its minutes 0 to 59"),
    ],
)
def test_a_date_time_that_names_no_instant_is_rejected_with_the_reason(text: str, reason: str) -> None:
    assert errors_of(StartAt=text)["StartAt"] == f'"{text}" is not a valid date-time: {reason}'


def test_a_timestamp_beyond_table_storage_range_is_rejected() -> None:
    assert errors_of(StartAt="1600-12-31T23:59:59Z")["StartAt"].startswith("is before 1601-01-01 in UTC")
    assert errors_of(EndAt="9999-12-31T23:00:00-05:00")["EndAt"].startswith("is after 9999-12-31 in UTC")


def test_end_before_start_is_rejected_on_end_at() -> None:
    assert errors_of(EndAt="2025-01-09T13:04:33Z") == {"EndAt": "must not be before StartAt"}


def test_end_equal_to_start_is_valid() -> None:
    valid(EndAt="2025-01-09T13:04:34Z")


# --- Plausibility ----------------------------------------------------------------------------


@pytest.mark.parametrize("start", ["1970-01-01T00:00:00Z", "2009-12-31T23:59:59Z", "1601-01-01T00:00:00Z"])
def test_a_start_before_the_earliest_start_is_rejected_naming_limit_and_setting(start: str) -> None:
    message = errors_of(StartAt=start)["StartAt"]
    assert message == (
        f"{start} is before 2010-01-01T00:00:00Z, the earliest start a session may have "
        "(setting SESSION_EARLIEST_START; a charger whose clock was reset is not billed)"
    )


def test_a_start_at_midnight_utc_of_the_earliest_start_is_valid() -> None:
    valid(StartAt="2010-01-01T00:00:00Z", EndAt="2010-01-01T01:00:00Z")


def test_the_earliest_start_is_the_setting_of_the_limits_given() -> None:
    limits = replace(LIMITS, earliest_start=date(1970, 1, 1))
    judged(session(StartAt="1970-01-01T00:00:00Z", EndAt="1970-01-01T01:00:00Z"), limits=limits)


def test_a_start_years_in_the_future_is_rejected_naming_the_allowance_and_setting() -> None:
    message = errors_of(StartAt="2030-01-01T00:00:00Z", EndAt="2030-01-01T01:00:00Z")["StartAt"]
    assert message == (
        "2030-01-01T00:00:00Z is 5 years after the push was received (2025-01-10T07:00:00Z), more than "
        "the 24 hours a charger's clock may run ahead (setting SESSION_MAX_FUTURE_HOURS)"
    )


def test_an_end_beyond_the_clock_skew_allowance_is_rejected_on_end_at() -> None:
    errors = errors_of(EndAt="2025-01-11T07:00:01Z")
    assert set(errors) == {"EndAt"} and "(setting SESSION_MAX_FUTURE_HOURS)" in errors["EndAt"]


def test_timestamps_within_the_clock_skew_allowance_are_valid() -> None:
    # A charger whose clock runs 14 hours ahead (local time sent as UTC, east of Greenwich).
    valid(StartAt="2025-01-10T19:00:00Z", EndAt="2025-01-11T07:00:00Z")


def test_without_a_context_the_model_judges_by_the_defaults_and_now() -> None:
    Session.model_validate(session())
    with pytest.raises(ValidationError) as caught:
        Session.model_validate(session(StartAt="2999-01-01T00:00:00Z", EndAt="2999-01-01T01:00:00Z"))
    assert "SESSION_MAX_FUTURE_HOURS" in field_errors(caught.value)[0].message
    with pytest.raises(ValidationError):
        Session.model_validate(session(StartAt="1970-01-01T00:00:00Z"))


@pytest.mark.parametrize(
    ("end", "length"),
    [
        ("2025-04-09T13:04:35Z", "90 days"),
        ("2027-01-09T13:04:34Z", "730 days"),
        ("9999-12-31T23:59:59Z", "7974.8 years"),
    ],
)
def test_a_session_longer_than_the_longest_duration_is_rejected_on_end_at(end: str, length: str) -> None:
    message = errors_of(EndAt=end, EnergyDelivered=0)["EndAt"]
    assert message == (
        f"{end} is {length} after StartAt (2025-01-09T13:04:34Z), longer than the 90 days a session "
        "may last (setting SESSION_MAX_DAYS)"
    )


def test_a_session_of_exactly_the_longest_duration_is_valid() -> None:
    valid(StartAt="2024-10-01T00:00:00Z", EndAt="2024-12-30T00:00:00Z")


@pytest.mark.parametrize("energy", [1e308, 5_000_001, float(2**63)])
def test_energy_above_the_cap_is_rejected_naming_the_cap_and_setting(energy: float) -> None:
    message = errors_of(EnergyDelivered=energy, EndAt="2025-01-29T13:04:34Z")["EnergyDelivered"]
    assert message.startswith("is ") and message.endswith(
        "more than the 5000 kWh one session may deliver (setting SESSION_MAX_ENERGY_KWH)"
    )


def test_the_energy_message_shows_a_huge_value_in_exponent_form() -> None:
    assert errors_of(EnergyDelivered=1e308)["EnergyDelivered"].startswith("is 1e+308 Wh (1e+305 kWh), ")


def test_energy_beyond_what_the_power_limit_delivers_in_the_duration_is_rejected() -> None:
    message = errors_of(EndAt="2025-01-09T13:34:34Z", EnergyDelivered=2_500_000)["EnergyDelivered"]
    assert message == (
        "is 2500 kWh in 30 minutes from StartAt to EndAt: 5000 kW on average, more than the 4000 kW "
        "a charger can deliver (setting SESSION_MAX_POWER_KW)"
    )


def test_a_session_shorter_than_a_minute_is_judged_as_one_minute() -> None:
    # 4,000 kW for one minute is 66.7 kWh: meters round, so a 10-second session may show that much.
    valid(EndAt="2025-01-09T13:04:44Z", EnergyDelivered=66_000)
    valid(EndAt="2025-01-09T13:04:34Z", EnergyDelivered=66_000)
    message = errors_of(EndAt="2025-01-09T13:04:44Z", EnergyDelivered=100_000)["EnergyDelivered"]
    assert message.startswith(
        "is 100 kWh in 10 seconds from StartAt to EndAt (counted as 1 minute, as meters round)"
    )


def test_relaxed_limits_let_a_session_beyond_the_defaults_through() -> None:
    item = session(EndAt="2025-01-09T13:34:34Z", EnergyDelivered=6_000_000)
    with pytest.raises(ValidationError):
        judged(item)
    judged(item, limits=replace(LIMITS, max_energy_kwh=10_000, max_power_kw=20_000))


def test_each_plausibility_rule_has_its_own_error_type() -> None:
    assert error_types_of(StartAt="1970-01-01T00:00:00Z") == {"StartAt": "timestamp_before_earliest_start"}
    assert error_types_of(StartAt="2030-01-01T00:00:00Z") == {"StartAt": "timestamp_in_future"}
    assert error_types_of(EndAt="2026-01-01T00:00:00Z") == {"EndAt": "session_too_long"}
    assert error_types_of(EnergyDelivered=1e308) == {"EnergyDelivered": "energy_above_cap"}
    assert error_types_of(EndAt="2025-01-09T13:05:34Z", EnergyDelivered=100_000) == {
        "EnergyDelivered": "energy_above_power"
    }
    assert error_types_of(StartAt="20251010") == {"StartAt": "timestamp_format"}


@pytest.fixture(scope="module")
def half_a_year() -> list[dict[str, Any]]:
    return generate_sessions(4000, seed=10, start=datetime(2025, 1, 1, tzinfo=UTC), months=6)


def test_a_simulated_half_year_of_real_sessions_passes_every_rule(half_a_year: list[dict[str, Any]]) -> None:
    for item in half_a_year:
        # Pushed within the hour after the session ended.
        judged(item, received_at=utc(item["EndAt"]) + timedelta(minutes=59))


def test_a_megawatt_truck_charging_700_kwh_in_45_minutes_passes() -> None:
    valid(
        StartAt="2025-01-09T13:00:00Z",
        EndAt="2025-01-09T13:45:00Z",
        EnergyDelivered=700_000,
        InitialSoC=10,
        EndSoC=85,
    )


def test_an_ac_car_plugged_in_for_three_weeks_passes() -> None:
    valid(StartAt="2024-12-19T17:30:00Z", EndAt="2025-01-09T17:30:00Z", EnergyDelivered=48_000)


def test_an_ac_car_plugged_in_overnight_at_a_depot_passes() -> None:
    valid(StartAt="2025-01-09T16:30:00Z", EndAt="2025-01-10T06:45:00Z", EnergyDelivered=77_000)


def test_validate_session_wants_an_aware_received_at() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        judged(session(), received_at=datetime(2025, 1, 10, 7))


# --- Identifiers -----------------------------------------------------------------------------

INVISIBLE = [
    "\x00",
    "\x1f",
    "\x7f",
    "\x85",
    "\t",
    "\n",
    "\u00a0",  # NO-BREAK SPACE
    "\u2007",  # FIGURE SPACE
    "\u3000",  # IDEOGRAPHIC SPACE
    "\u00ad",  # SOFT HYPHEN
    "\u200b",  # ZERO WIDTH SPACE
    "\u200c",
    "\u200d",
    "\u2060",  # WORD JOINER
    "\ufeff",
    "\u3164",  # HANGUL FILLER
    "\u115f",
    "\uffa0",
    "\ufe0f",  # VARIATION SELECTOR-16
    "\U000e0100",  # VARIATION SELECTOR-17
    "\U000e0041",  # TAG LATIN CAPITAL LETTER A
    "\u034f",  # COMBINING GRAPHEME JOINER
    "\u180e",
    "\u061c",
    "\u200e",
    "\u200f",
    *(chr(code) for code in range(0x202A, 0x202F)),  # bidi embeddings and overrides
    *(chr(code) for code in range(0x2066, 0x206A)),  # bidi isolates
    "\u2028",  # LINE SEPARATOR
    "\u2029",  # PARAGRAPH SEPARATOR
    "\ud83d",  # a lone surrogate, as JSON.stringify writes a broken string
    "\udc00",
    "\ue000",  # private use
    "\U000f0000",
    "\u0378",  # unassigned
    "\ufffd",  # REPLACEMENT CHARACTER
    "\u2800",  # BRAILLE PATTERN BLANK
]


@pytest.mark.parametrize("field", ["ChargerID", "Id"])
@pytest.mark.parametrize("character", INVISIBLE, ids=lambda c: f"U+{ord(c):04X}")
def test_an_identifier_with_an_invisible_or_control_character_is_rejected_naming_it(
    field: str, character: str
) -> None:
    message = errors_of(**{field: f"TACW{character}2242"})[field]
    assert message.startswith(f"holds U+{ord(character):04X}")
    assert "at character 5: an identifier must be visible text" in message


def test_the_reason_gives_the_characters_unicode_name() -> None:
    assert errors_of(ChargerID="ABC\u202e1")["ChargerID"] == (
        "holds U+202E RIGHT-TO-LEFT OVERRIDE, a bidi control, which changes the order in which text is "
        "shown, at character 4: an identifier must be visible text (nothing is removed or normalised "
        "here; the sender must fix it)"
    )


@pytest.mark.parametrize("field", ["ChargerID", "Id"])
@pytest.mark.parametrize(("text", "where"), [(" TACW1", "begins"), ("TACW1 ", "ends"), (" ", "begins")])
def test_an_identifier_beginning_or_ending_with_a_space_is_rejected(
    field: str, text: str, where: str
) -> None:
    assert errors_of(**{field: text})[field].startswith(f"{where} with a space (U+0020)")


@pytest.mark.parametrize("field", ["ChargerID", "Id"])
@pytest.mark.parametrize(
    "text",
    [
        "\uff34\uff21\uff23\uff372242",  # fullwidth letters
        "Lade\u0301",  # e + COMBINING ACUTE ACCENT: NFD, not NFC
        "Bay ﬁve",  # LATIN SMALL LIGATURE FI
        "Bay²",  # SUPERSCRIPT TWO
        "Ⓐ1",  # CIRCLED LATIN CAPITAL LETTER A
        "\uff2b\uff11",  # fullwidth K and 1
        "\U0001d4001",  # MATHEMATICAL BOLD CAPITAL A
    ],
)
def test_an_identifier_not_in_nfkc_form_is_rejected(field: str, text: str) -> None:
    assert errors_of(**{field: text})[field].startswith("is not in Unicode normalization form NFKC (")


def test_the_nfkc_reason_names_the_character_and_its_normal_form() -> None:
    assert errors_of(ChargerID="TACW\uff12")["ChargerID"].startswith(
        'is not in Unicode normalization form NFKC (U+FF12 FULLWIDTH DIGIT TWO at character 5 is "2" in NFKC)'
    )


@pytest.mark.parametrize(
    "text",
    ["TACW2242521T0570", "Depot 3 Bay 12", "Ladesäule-Köln", "充電器-01", "Зарядка-1", "a-b_c.d/e#f?%"],
)
def test_an_identifier_in_any_script_in_its_usual_composed_form_is_valid_and_kept_exactly(text: str) -> None:
    assert unicodedata.is_normalized("NFKC", text)
    parsed = valid(ChargerID=text, Id=text)
    assert (parsed.ChargerID, parsed.Id) == (text, text)


@pytest.mark.parametrize(
    "look_alike",
    [
        unicodedata.normalize("NFD", "Ladesäule-1"),
        "Ladesäule-1 ",
        "Ladesäule\u00a01",
        "Ladesäule-1\u200b",
        "\uff2cadesäule-1",
    ],
    ids=["NFD", "trailing space", "NBSP", "zero-width space", "fullwidth"],
)
def test_of_two_look_alike_charger_ids_only_the_plain_one_is_valid(look_alike: str) -> None:
    plain = unicodedata.normalize("NFC", "Ladesäule-1")
    assert valid(ChargerID=plain).ChargerID == plain
    assert "ChargerID" in errors_of(ChargerID=look_alike)


def test_each_identifier_rule_has_its_own_error_type() -> None:
    assert error_types_of(ChargerID="A\u200b") == {"ChargerID": "identifier_character"}
    assert error_types_of(Id="A ") == {"Id": "identifier_whitespace"}
    assert error_types_of(Id="\uff21") == {"Id": "identifier_not_nfkc"}


# --- Extra fields ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (float("nan"), "holds NaN, which standard JSON cannot hold"),
        (json.loads("1e400"), "holds Infinity, which standard JSON cannot hold"),
        ({"price": -float("inf")}, "holds -Infinity at .price, which standard JSON cannot hold"),
        ({"a b": [1, float("nan")]}, 'holds NaN at ."a b"[1], which standard JSON cannot hold'),
        pytest.param(
            10**5000, f"holds an integer of more than {MAX_EXTRA_INT_DIGITS} digits", id="5000 digits"
        ),
        (
            [1, -(10**MAX_EXTRA_INT_DIGITS)],
            f"holds an integer of more than {MAX_EXTRA_INT_DIGITS} digits at [1]",
        ),
        (nested(300), f"is nested more than {MAX_EXTRA_DEPTH} levels deep"),
        (nested(MAX_EXTRA_DEPTH + 1), f"is nested more than {MAX_EXTRA_DEPTH} levels deep"),
        ("\ud83d", "holds a lone surrogate U+D83D: a string must be text"),
        (
            {"note": ["ok", "broken \udc00"]},
            "holds a lone surrogate U+DC00 at .note[1]: a string must be text",
        ),
        ({"\ud800": 1}, "has a member name holding a lone surrogate: a name must be text"),
        ((1, 2), "holds tuple, which is no JSON value"),
        ({1: "x"}, "has a member name that is not a string"),
    ],
)
def test_an_extra_field_that_standard_json_cannot_hold_is_rejected_naming_it(
    extra: Any, message: str
) -> None:
    errors = errors_of(Meter=extra)
    assert set(errors) == {"Meter"} and errors["Meter"].startswith(message)


def test_an_extra_field_whose_name_holds_a_lone_surrogate_is_rejected_naming_it() -> None:
    assert errors_of(**{"Meter\ud83d": 1}) == {
        "(session)": 'the extra field "Meter\\ud83d" has a name holding a lone surrogate U+D83D: '
        "a name must be text"
    }


def test_an_extra_field_decoded_by_pythons_json_with_a_lone_surrogate_is_rejected() -> None:
    item = json.loads(json.dumps(session())[:-1] + ', "Note": "\\ud83d"}')
    assert item["Note"] == "\ud83d"
    with pytest.raises(ValidationError) as caught:
        judged(item)
    assert [error.field for error in field_errors(caught.value)] == ["Note"]


def test_odd_but_standard_extra_fields_are_kept_as_they_came() -> None:
    extras: dict[str, Any] = {
        "Deep": nested(MAX_EXTRA_DEPTH),
        "Big": 10**MAX_EXTRA_INT_DIGITS - 1,
        "Text": "Zähler \u202e 😀 \x00",
        "Nothing": None,
        "Flag": False,
        "Tiny": 5e-324,
        "Empty": {},
        "": [],
    }
    assert valid(**extras).extra_fields == extras
