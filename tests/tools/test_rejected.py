"""`python -m sessions rejected list|show|replay` against Azurite, on sessions the receiver rejected."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.data.tables import UpdateMode

from sessions.decoding import PushBody
from sessions.ingest import QUARANTINE_PER_PUSH, ingest_push
from sessions.model import FieldError, Session
from sessions.results import Rejection
from sessions.settings import Settings
from sessions.storage import RawArchive, SessionStore
from sessions.storage.entities import rejection_entity, session_entity, session_row_key
from tests.helpers.pushes import as_body, session
from tests.helpers.tables import all_entities, tables
from tests.helpers.tools import run_tool

BACKWARDS = {"StartAt": "2025-01-10T06:02:38.000Z", "EndAt": "2025-01-09T13:04:34.000Z"}
NO_ZONE = {"StartAt": "2025-01-10T07:12:00", "EndAt": "2025-01-10T09:30:00Z"}
# The properties the receiver sets anew each time it stores a session.
PER_STORE = {"ReceivedAt", "PushId", "Timestamp", "etag"}


def push(
    store: SessionStore, items: list[dict[str, Any]], push_id: str = "push-1", **kwargs: Any
) -> list[str]:
    """Push through the receiver's use-case; the quarantine ids of the rejected sessions."""
    result = ingest_push(as_body(items), store, push_id=push_id, **kwargs)
    return [rejection.quarantine_id for rejection in result.rejections]


def quarantine_under_an_old_rule(
    store: SessionStore, item: dict[str, Any], reason: str, *, received_at: datetime
) -> str:
    """Quarantine a session as an earlier, stricter receiver did (the receiver's own entity)."""
    body = PushBody(as_body([item]))
    (pushed,) = list(body)
    rejection = Rejection.of(pushed, body.raw(pushed), (FieldError("EnergyDelivered", reason),))
    store.quarantine([rejection_entity(rejection, received_at=received_at, push_id="old-push")], received_at)
    return rejection.quarantine_id


def stored(settings: Settings) -> dict[str, dict[str, Any]]:
    return {entity["RowKey"]: entity for entity in all_entities(tables(settings)[0])}


def quarantined_ids(settings: Settings) -> set[str]:
    return {entity["RowKey"] for entity in all_entities(tables(settings)[1])}


def correct_by_hand(settings: Settings, quarantine_id: str, **fields: Any) -> None:
    """Edit a quarantined session's raw JSON in place, as an operator would in Storage Explorer."""
    _, rejected = tables(settings)
    entity = dict(rejected.get_entity("rejected", quarantine_id))
    entity["Raw"] = json.dumps({**json.loads(entity["Raw"]), **fields})
    rejected.update_entity(entity, mode=UpdateMode.REPLACE)


def test_list_shows_when_why_and_which_station_and_transaction(
    store: SessionStore,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = [session(TransactionID=7030761, **BACKWARDS), session(TransactionID=7030762, **NO_ZONE)]
    ids = push(store, [session(), *bad], received_at=datetime(2025, 1, 10, 7, 0, 3, tzinfo=UTC))
    ran = run_tool(settings, monkeypatch, capsys, "rejected", "list")
    assert ran.status == 0
    header, *lines, blank, count = ran.out.splitlines()
    assert header.split() == ["ID", "RECEIVED", "(UTC)", "STATION", "TRANSACTION", "WHY"]
    assert count == "2 shown (newest first) of 2 quarantined sessions" and blank == ""
    by_transaction = {line.split()[4]: line for line in lines}
    assert by_transaction["7030761"].startswith(ids[0][:12] + "  2025-01-10 07:00:03  TACW2242521T0570")
    assert by_transaction["7030761"].endswith("EndAt: must not be before StartAt")
    assert "StartAt: " in by_transaction["7030762"] and "has no zone" in by_transaction["7030762"]


def test_list_says_when_the_quarantine_is_empty(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ran = run_tool(settings, monkeypatch, capsys, "rejected", "list")
    assert (ran.status, ran.out) == (0, "The quarantine is empty.\n")


def test_show_gives_one_in_full_by_a_short_id(
    store: SessionStore,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = session(TransactionID=7030761, Tariff="night", **BACKWARDS)
    (quarantine_id,) = push(store, [bad], push_id="push-42")
    ran = run_tool(settings, monkeypatch, capsys, "rejected", "show", quarantine_id[:8])
    assert ran.status == 0, ran.err
    assert f"ID           {quarantine_id}" in ran.out and "push push-42, item 0" in ran.out
    assert "Errors       EndAt: must not be before StartAt" in ran.out
    assert "Today        still rejected: EndAt: must not be before StartAt" in ran.out
    assert json.loads(ran.out.split("Raw JSON\n", 1)[1]) == bad


def test_show_of_an_unknown_or_ambiguous_id_says_so(
    store: SessionStore,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ids = push(store, [session(TransactionID=number, **BACKWARDS) for number in range(20)])
    ran = run_tool(settings, monkeypatch, capsys, "rejected", "show", "0" * 64)
    assert ran.status == 1 and "no quarantined session" in ran.err
    # 20 ids over 16 hex digits: some first digit is shared.
    shared = next(first for first in "0123456789abcdef" if sum(i.startswith(first) for i in ids) > 1)
    ran = run_tool(settings, monkeypatch, capsys, "rejected", "show", shared)
    assert ran.status == 2 and "matches" in ran.err and "give more of the id" in ran.err


def test_replay_stores_what_passes_today_as_the_receiver_would_and_releases_it(
    store: SessionStore,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    big = session(TransactionID=7030800, EnergyDelivered=180_000, ChargerID="DEPOT/DC 1")
    arrived = datetime(2025, 1, 10, 7, tzinfo=UTC)
    fixed_rule = quarantine_under_an_old_rule(store, big, "must be at most 150000 Wh", received_at=arrived)
    (still_bad,) = push(store, [session(TransactionID=7030801, **BACKWARDS)])
    ran = run_tool(settings, monkeypatch, capsys, "rejected", "replay", "--all")
    assert ran.status == 1  # one is still rejected
    assert f"stored      {fixed_rule[:12]}  DEPOT/DC 1 7030800" in ran.out
    assert (
        f"kept        {still_bad[:12]}  TACW2242521T0570 7030801: EndAt: must not be before StartAt"
        in ran.out
    )
    assert "Replayed 2: 1 stored, 0 skipped as older than the copy stored, 1 still rejected" in ran.out
    assert quarantined_ids(settings) == {still_bad}
    # The same entity the receiver stores for that session today.
    entity = stored(settings)[session_row_key("DEPOT/DC 1", 7030800)]
    expected = session_entity(Session.model_validate(big), received_at=arrived, push_id="old-push").entity
    assert {k: v for k, v in entity.items() if k not in PER_STORE} == {
        k: v for k, v in expected.items() if k not in PER_STORE
    }
    assert entity["PushId"] == "old-push"


def test_replay_of_a_hand_corrected_session_by_its_id(
    store: SessionStore,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first, second = push(
        store, [session(TransactionID=7030761, **BACKWARDS), session(TransactionID=7030762, **NO_ZONE)]
    )
    correct_by_hand(settings, first, EndAt="2025-01-10T09:00:00.000Z")
    ran = run_tool(settings, monkeypatch, capsys, "rejected", "replay", first[:10])
    assert ran.status == 0, ran.out + ran.err
    assert "Replayed 1: 1 stored" in ran.out
    entity = stored(settings)[session_row_key("TACW2242521T0570", 7030761)]
    assert entity["EndAt"] == datetime(2025, 1, 10, 9, tzinfo=UTC)
    assert quarantined_ids(settings) == {second}


def test_replay_twice_changes_nothing_the_second_time(
    store: SessionStore,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    arrived = datetime(2025, 1, 10, 7, tzinfo=UTC)
    ids = [
        quarantine_under_an_old_rule(
            store, session(EnergyDelivered=200_000 + n), "too much", received_at=arrived
        )
        for n in range(3)
    ]
    assert run_tool(settings, monkeypatch, capsys, "rejected", "replay", "--all").status == 0
    after_first = stored(settings)
    again = run_tool(settings, monkeypatch, capsys, "rejected", "replay", "--all")
    assert (again.status, again.out) == (0, "Nothing to replay: the quarantine is empty.\n")
    by_id = run_tool(settings, monkeypatch, capsys, "rejected", "replay", ids[0])
    assert by_id.status == 1 and f"not found   {ids[0]}" in by_id.out
    assert stored(settings) == after_first and len(after_first) == 3


def test_replay_never_overwrites_a_later_push_of_the_same_session(
    store: SessionStore,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monday = datetime(2025, 1, 13, 7, tzinfo=UTC)
    first_version = session(TransactionID=7030900, EnergyDelivered=250_000)
    old = quarantine_under_an_old_rule(store, first_version, "must be at most 150000 Wh", received_at=monday)
    # ChargePilot corrected the meter reading and sent the session again on Tuesday.
    push(store, [{**first_version, "EnergyDelivered": 25_000}], received_at=monday + timedelta(days=1))
    ran = run_tool(settings, monkeypatch, capsys, "rejected", "replay", "--all")
    assert ran.status == 0 and f"released    {old[:12]}" in ran.out
    (entity,) = stored(settings).values()
    assert entity["EnergyDelivered"] == 25_000 and quarantined_ids(settings) == set()


def test_list_tells_the_true_total_and_reads_only_the_newest_it_shows(
    store: SessionStore,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    start = datetime(2025, 1, 10, 7, tzinfo=UTC)
    for hour in range(3):
        bad = [session(TransactionID=hour * 100 + n, **BACKWARDS) for n in range(20)]
        push(store, bad, push_id=f"hour-{hour}", received_at=start + timedelta(hours=hour))
    ran = run_tool(settings, monkeypatch, capsys, "rejected", "list", "--limit", "5")
    lines = ran.out.splitlines()
    assert ran.status == 0 and lines[-1] == "5 shown (newest first) of 60 quarantined sessions"
    rows = lines[1:6]
    assert all("2025-01-10 09:00:00" in row for row in rows)  # the last hour's first
    # Reading the newest five: the count, one page of the arrival list, the five entries.
    newest = list(store.newest_quarantined(5))
    assert len(newest) == 5 and {entity["PushId"] for entity in newest} == {"hour-2"}


def test_list_of_one_push_shows_its_rejected_sessions_in_push_order(
    store: SessionStore,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    push(store, [session(TransactionID=n, **BACKWARDS) for n in range(4)], push_id="wanted")
    push(store, [session(TransactionID=10 + n, **BACKWARDS) for n in range(3)], push_id="other")
    ran = run_tool(settings, monkeypatch, capsys, "rejected", "list", "--push", "wanted")
    assert ran.out.splitlines()[-1] == "4 shown (of push wanted) of 7 quarantined sessions"
    transactions = [line.split()[4] for line in ran.out.splitlines()[1:5]]
    assert transactions == ["0", "1", "2", "3"]


def test_replay_of_everything_tells_its_progress_and_works_through_the_whole_quarantine(
    store: SessionStore,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    arrived = datetime(2025, 1, 10, 7, tzinfo=UTC)
    for n in range(250):
        quarantine_under_an_old_rule(
            store, session(TransactionID=n, EnergyDelivered=200_000 + n), "too much", received_at=arrived
        )
    ran = run_tool(settings, monkeypatch, capsys, "rejected", "replay", "--all")
    assert ran.status == 0 and "Replayed 250: 250 stored" in ran.out
    assert ran.err.splitlines() == [
        "  100 of 250 replayed...",
        "  200 of 250 replayed...",
        "  250 of 250 replayed...",
    ]
    assert quarantined_ids(settings) == set() and len(stored(settings)) == 250
    assert store.quarantined_count() == 0


def test_the_overflow_of_a_push_is_replayed_from_its_archived_body(
    store: SessionStore,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Rejected under a rule set too strict (1 kWh), more than the quarantine keeps one by one.
    sent = [session(TransactionID=n, EnergyDelivered=5_000 + n) for n in range(QUARANTINE_PER_PUSH + 20)]
    body, arrived = as_body(sent), datetime.now(UTC) - timedelta(hours=1)
    archive = RawArchive.connect(settings)
    archived = archive.store_body(body, push_id="strict", received_at=arrived, content_type=None)
    archive.close()
    strict = replace(settings.limits, max_energy_kwh=1)
    result = ingest_push(
        body, store, push_id="strict", received_at=arrived, limits=strict, raw_archive=archived.name
    )
    assert (result.rejected, result.quarantine_overflow) == (len(sent), 20)
    assert len(quarantined_ids(settings)) == QUARANTINE_PER_PUSH + 1
    # The rule is relaxed (the default limits): everything replays, the overflow from the archive.
    ran = run_tool(settings, monkeypatch, capsys, "rejected", "replay", "--all")
    assert ran.status == 0, ran.out[-500:]
    assert len(stored(settings)) == len(sent)
    assert quarantined_ids(settings) == set() and store.quarantined_count() == 0
