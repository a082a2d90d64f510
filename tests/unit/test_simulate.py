"""The session generator behind `push --generate`: realistic, valid, ordered, and repeatable by seed."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from sessions.model import Session
from sessions.storage.entities import SESSION_FIELDS
from tools.simulate import generate_sessions, iter_sessions

MARCH = datetime(2025, 3, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def month() -> list[dict[str, Any]]:
    return generate_sessions(3000, seed=42, start=MARCH)


def hours(item: dict[str, Any]) -> float:
    start, end = (datetime.fromisoformat(item[name]) for name in ("StartAt", "EndAt"))
    return (end - start).total_seconds() / 3600


def test_the_same_seed_gives_the_same_sessions_and_another_seed_others() -> None:
    assert generate_sessions(50, seed=7) == generate_sessions(50, seed=7) == list(iter_sessions(50, seed=7))
    other = generate_sessions(50, seed=8)
    assert other != generate_sessions(50, seed=7)
    assert {s["TransactionID"] for s in other}.isdisjoint(
        s["TransactionID"] for s in generate_sessions(50, seed=7)
    )


def test_every_session_is_valid_unique_in_order_and_inside_the_months(month: list[dict[str, Any]]) -> None:
    models = [Session.model_validate(item) for item in month]
    assert len({(m.ChargerID, m.TransactionID) for m in models}) == 3000
    assert [m.StartAt for m in models] == sorted(m.StartAt for m in models)
    assert all(MARCH <= m.StartAt < datetime(2025, 4, 1, tzinfo=UTC) for m in models)
    assert set(month[0]) == set(SESSION_FIELDS)


def test_a_depot_has_ac_and_dc_stations_and_many_cards(month: list[dict[str, Any]]) -> None:
    dc = [item for item in month if item["ChargerID"].startswith("ABB-")]
    ac = [item for item in month if not item["ChargerID"].startswith("ABB-")]
    assert 0.1 < len(dc) / len(month) < 0.3
    assert len({item["ChargerID"] for item in ac}) >= 8 and len({item["ChargerID"] for item in dc}) >= 2
    cards = Counter(item["Id"] for item in month)
    assert len(cards) >= 100 and 0 < cards[None] < 0.06 * len(month)
    # State of charge only where DC reports it, and rising.
    assert all(item["InitialSoC"] is None and item["EndSoC"] is None for item in ac)
    assert all(0 <= item["InitialSoC"] < item["EndSoC"] <= 100 for item in dc)


def test_durations_and_energies_are_plausible(month: list[dict[str, Any]]) -> None:
    for item in month:
        kwh, duration = item["EnergyDelivered"] / 1000, hours(item)
        if item["InitialSoC"] is None:  # AC: up to 22 kW, a top-up to a night at the depot
            assert 0.25 <= duration <= 14 and 0 < kwh <= 22 * duration and kwh <= 100
        else:  # DC: up to 150 kW, minutes to an hour or two
            assert 0.05 <= duration <= 3 and 0 < kwh <= 150 * duration and kwh <= 110
    overnight = [
        hours(item) for item in month if item["InitialSoC"] is None and item["StartAt"][11:13] >= "16"
    ]
    assert sum(overnight) / len(overnight) > 8


def test_weekdays_are_busier_than_sundays(month: list[dict[str, Any]]) -> None:
    by_weekday = Counter(datetime.fromisoformat(item["StartAt"]).weekday() for item in month)
    # March 2025 has five Saturdays and Sundays, four or five of each weekday.
    assert by_weekday[6] * 2 < min(by_weekday[day] for day in range(5))


def test_a_start_and_several_months_spread_the_sessions() -> None:
    sessions = generate_sessions(600, seed=1, start=datetime(2024, 11, 1, tzinfo=UTC), months=3)
    months = Counter(item["StartAt"][:7] for item in sessions)
    assert set(months) == {"2024-11", "2024-12", "2025-01"} and min(months.values()) > 150
