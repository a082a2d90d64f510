"""Realistic charging sessions as ChargePilot would push them, for `push --generate` and benchmarks.

A depot fleet: AC wallboxes (11 or 22 kW, one or two connectors) and a few DC chargers
(50 or 150 kW), employees' RFID cards each tied to a car (battery, onboard charger), arrivals
that follow a working day, overnight AC sessions, short DC top-ups with a state of charge.
The same seed always gives the same sessions, and the sessions come in StartAt order.
"""

from __future__ import annotations

import bisect
import calendar
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

# A fixed default, so that a seed alone reproduces the same sessions on any day.
DEFAULT_START = datetime(2025, 1, 1, tzinfo=UTC)
# The smallest depot; a larger count of sessions gets a larger fleet (about one session per card
# and working day, about three cards per AC station, one DC charger per four AC stations).
MIN_AC_STATIONS = 8
MIN_DC_STATIONS = 2
MIN_CARDS = 12
_SESSIONS_PER_CARD_MONTH = 20
# Share of sessions started without an RFID tag (free charging, plug and charge).
_NO_CARD = 0.03
# Share of sessions on a DC charger when the depot has one.
_DC_SHARE = 0.2
# When sessions start, by UTC hour: a depot near UTC+1, morning shift and evening return.
_ARRIVALS_BY_HOUR = (1, 1, 1, 1, 2, 6, 9, 8, 6, 4, 4, 4, 5, 5, 5, 7, 9, 9, 7, 5, 3, 2, 1, 1)
# How busy each weekday is, Monday first: a depot is quiet at the weekend.
_SESSIONS_BY_WEEKDAY = (1.0, 1.0, 1.0, 1.0, 0.95, 0.4, 0.25)


@dataclass(frozen=True)
class Station:
    charger_id: str
    dc: bool
    power_kw: float
    connectors: int


@dataclass(frozen=True)
class Card:
    tag: str
    battery_kwh: float
    ac_kw: float  # the car's onboard charger
    dc_kw: float  # the car's DC peak


def generate_sessions(
    count: int,
    seed: int | None = None,
    *,
    start: datetime = DEFAULT_START,
    months: int = 1,
    ac_stations: int | None = None,
    dc_stations: int | None = None,
    cards: int | None = None,
) -> list[dict[str, Any]]:
    """`count` sessions starting within `months` calendar months from `start`, in StartAt order.

    The fleet (stations, cards) grows with count/months unless given.
    """
    return list(
        iter_sessions(
            count,
            seed,
            start=start,
            months=months,
            ac_stations=ac_stations,
            dc_stations=dc_stations,
            cards=cards,
        )
    )


def iter_sessions(
    count: int,
    seed: int | None = None,
    *,
    start: datetime = DEFAULT_START,
    months: int = 1,
    ac_stations: int | None = None,
    dc_stations: int | None = None,
    cards: int | None = None,
) -> Iterator[dict[str, Any]]:
    """The sessions of generate_sessions one at a time (constant memory, for large counts)."""
    cards = cards if cards is not None else max(MIN_CARDS, round(count / months / _SESSIONS_PER_CARD_MONTH))
    ac_stations = ac_stations if ac_stations is not None else max(MIN_AC_STATIONS, cards // 3)
    dc_stations = dc_stations if dc_stations is not None else max(MIN_DC_STATIONS, ac_stations // 4)
    if count < 0 or months < 1 or ac_stations + dc_stations < 1 or cards < 1:
        raise ValueError("count must be >= 0, months >= 1, and there must be a station and a card")
    rng = random.Random(seed)  # noqa: S311 - a reproducible simulation, not a secret
    start = start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    days = [start + timedelta(days=day) for day in range((_add_months(start, months) - start).days)]
    # Where each day begins on a scale of 0..1 of all sessions, weekdays weighing more.
    day_weights = [_SESSIONS_BY_WEEKDAY[day.weekday()] for day in days]
    day_starts = list(itertools.accumulate(day_weights, initial=0.0))
    total_weight = day_starts[-1]
    depot = _stations(rng, ac_stations, dc_stations)
    fleet = _cards(rng, cards)
    ac = [station for station in depot if not station.dc] or depot
    dc = [station for station in depot if station.dc]
    weights = [rng.uniform(0.4, 1.6) for _ in fleet]  # some employees charge more often
    transaction = rng.randrange(1_000_000, 900_000_000)
    for index in range(count):
        # Strictly ordered: session i falls in the i-th slice of the period, by its weight.
        target = (index + rng.random()) / count * total_weight
        day = min(bisect.bisect_right(day_starts, target) - 1, len(days) - 1)
        within = (target - day_starts[day]) / day_weights[day]
        started = days[day] + timedelta(seconds=int(_time_of_day(min(within, 1.0))))
        card = rng.choices(fleet, weights)[0]
        transaction += rng.randint(1, 3)
        if dc and rng.random() < _DC_SHARE:
            yield _dc_session(rng, rng.choice(dc), card, started, transaction)
        else:
            yield _ac_session(rng, rng.choice(ac), card, started, transaction)


def _ac_session(
    rng: random.Random, station: Station, card: Card, started: datetime, transaction: int
) -> dict[str, Any]:
    power = min(station.power_kw, card.ac_kw)
    # Back from the shift in the afternoon: plugged in overnight; else a top-up during the day.
    overnight = started.hour >= 14
    hours = rng.uniform(8, 14) if overnight else min(max(rng.lognormvariate(1.0, 0.6), 0.25), 10.0)
    needed_kwh = card.battery_kwh * rng.uniform(0.15, 0.7)
    energy_kwh = min(needed_kwh, power * hours * rng.uniform(0.85, 0.97))
    return _session(rng, station, card, started, hours * 3600, energy_kwh, transaction, soc=None)


def _dc_session(
    rng: random.Random, station: Station, card: Card, started: datetime, transaction: int
) -> dict[str, Any]:
    initial = rng.randint(8, 50)
    final = rng.randint(max(initial + 15, 70), 95)
    # Measured at the charger: the car's share plus conversion losses.
    energy_kwh = card.battery_kwh * (final - initial) / 100 * rng.uniform(1.03, 1.10)
    average_kw = min(station.power_kw, card.dc_kw) * rng.uniform(0.65, 0.85)
    seconds = energy_kwh / average_kw * 3600 + rng.uniform(60, 240)
    return _session(rng, station, card, started, seconds, energy_kwh, transaction, soc=(initial, final))


def _session(
    rng: random.Random,
    station: Station,
    card: Card,
    started: datetime,
    seconds: float,
    energy_kwh: float,
    transaction: int,
    *,
    soc: tuple[int, int] | None,
) -> dict[str, Any]:
    ended = started + timedelta(seconds=round(seconds))
    tag = None if rng.random() < _NO_CARD else card.tag
    return {
        "TransactionID": transaction,
        "ChargerID": station.charger_id,
        "ConnectorID": rng.randint(1, station.connectors),
        "StartAt": _timestamp(started),
        "EndAt": _timestamp(ended),
        "InitialSoC": soc[0] if soc else None,
        "Id": tag,
        "EndSoC": soc[1] if soc else None,
        "EnergyDelivered": round(energy_kwh * 1000),
    }


def _stations(rng: random.Random, ac_count: int, dc_count: int) -> list[Station]:
    serial = rng.randrange(2_200_000, 2_400_000)
    stations = [
        Station(
            charger_id=f"TACW{serial}T{570 + number:04d}",
            dc=False,
            power_kw=rng.choice((11.0, 22.0)),
            connectors=rng.choice((1, 1, 2)),
        )
        for number in range(ac_count)
    ]
    first_dc = rng.randrange(100, 900)
    stations += [
        Station(
            charger_id=f"ABB-TAC-DC-{first_dc + number:06d}",
            dc=True,
            power_kw=rng.choice((50.0, 150.0)),
            connectors=rng.choice((1, 2)),
        )
        for number in range(dc_count)
    ]
    return stations


def _cards(rng: random.Random, count: int) -> list[Card]:
    tags = rng.sample(range(10_000_000, 99_999_999), count)
    return [
        Card(
            tag=str(tag),
            battery_kwh=rng.choice((40.0, 58.0, 64.0, 77.0, 82.0, 100.0)),
            ac_kw=rng.choice((7.4, 11.0, 11.0, 22.0)),
            dc_kw=rng.choice((50.0, 100.0, 135.0, 170.0)),
        )
        for tag in tags
    ]


def _time_of_day(fraction: float) -> float:
    """Seconds after midnight for a fraction of the day, following the arrivals profile.

    Monotone in `fraction`, so that sessions generated in order stay in StartAt order.
    """
    target = fraction * sum(_ARRIVALS_BY_HOUR)
    for hour, weight in enumerate(_ARRIVALS_BY_HOUR):
        if target < weight:
            return (hour + target / weight) * 3600
        target -= weight
    return 24 * 3600 - 1


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _add_months(moment: datetime, months: int) -> datetime:
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))
