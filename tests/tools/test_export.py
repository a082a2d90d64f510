"""`python -m sessions export` against Azurite: local-date periods, formats, partitions, streaming."""

from __future__ import annotations

import io
import json
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from azure.data.tables import UpdateMode

from devtools.served import ServedReceiver
from sessions.model import Session
from sessions.settings import Settings
from sessions.storage import SessionStore
from sessions.storage.entities import session_entity
from sessions.storage.tables import partition_range
from tests.helpers import PROJECT
from tests.helpers.pushes import OLD_KEY, session
from tests.helpers.tables import tables
from tests.helpers.tools import csv_rows, run_tool, run_tool_process, store_sessions
from tools.export import CSV_COLUMNS, ExportFormat, export_sessions
from tools.period import Period, time_zone
from tools.simulate import generate_sessions

SAMPLES = PROJECT / "samples"
BERLIN = time_zone("Europe/Berlin")


def starting(start: str, minutes: int = 45, **fields: Any) -> dict[str, Any]:
    """A session that started at `start` (UTC) and lasted `minutes`."""
    begin = datetime.fromisoformat(start.replace("Z", "+00:00"))
    end = begin.timestamp() + minutes * 60
    return session(
        StartAt=start, EndAt=datetime.fromtimestamp(end, UTC).isoformat().replace("+00:00", "Z"), **fields
    )


def exported_starts(text: str) -> set[str]:
    return {row["StartAt"] for row in csv_rows(text)}


# The month in Berlin against the UTC instants around its edges. January: the previous month is
# in the previous year (partition 2024-12), winter time at both ends. March: winter time at the
# start, summer time at the end (Berlin is UTC+2 from 2025-03-30 01:00 UTC).
MONTH_EDGES = {
    "2025-01": {
        "2024-12-31T23:30:00Z": True,  # 00:30 on 1 January in Berlin
        "2024-12-31T22:59:59Z": False,  # 23:59:59 on 31 December in Berlin
        "2025-01-31T22:59:59Z": True,
        "2025-01-31T23:30:00Z": False,  # 00:30 on 1 February in Berlin
    },
    "2025-03": {
        "2025-02-28T23:30:00Z": True,  # 00:30 on 1 March in Berlin, stored in partition 2025-02
        "2025-02-28T22:59:59Z": False,
        "2025-03-30T01:30:00Z": True,  # 03:30 CEST, just after the clocks went forward
        "2025-03-31T21:59:59Z": True,  # 23:59:59 on 31 March in Berlin (CEST)
        "2025-03-31T22:00:00Z": False,  # midnight in Berlin: April
        "2025-03-31T23:30:00Z": False,  # 01:30 on 1 April in Berlin, though still March in UTC
    },
}


@pytest.mark.parametrize("month", sorted(MONTH_EDGES))
def test_a_berlin_month_takes_the_sessions_of_its_local_days(
    month: str,
    store: SessionStore,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    edges = MONTH_EDGES[month]
    store_sessions(store, [starting(start) for start in edges])
    ran = run_tool(settings, monkeypatch, capsys, "export", "--month", month)
    assert ran.status == 0, ran.err
    assert exported_starts(ran.out) == {start for start, inside in edges.items() if inside}


def test_the_session_at_2330_utc_before_the_month_shows_its_berlin_time(
    store: SessionStore,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store_sessions(store, [starting("2025-02-28T23:30:00Z", minutes=90)])
    (row,) = csv_rows(run_tool(settings, monkeypatch, capsys, "export", "--month", "2025-03").out)
    assert (row["StartAt"], row["StartLocal"]) == ("2025-02-28T23:30:00Z", "2025-03-01 00:30:00")
    assert row["EndLocal"] == "2025-03-01 02:00:00"


def test_the_same_month_in_utc_has_other_edges(
    store: SessionStore,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store_sessions(store, [starting(start) for start in MONTH_EDGES["2025-03"]])
    ran = run_tool(settings, monkeypatch, capsys, "export", "--month", "2025-03", "--tz", "UTC")
    assert exported_starts(ran.out) == {
        "2025-03-30T01:30:00Z",
        "2025-03-31T21:59:59Z",
        "2025-03-31T22:00:00Z",
        "2025-03-31T23:30:00Z",
    }


def test_the_day_the_clocks_go_back_has_25_hours(
    store: SessionStore,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    edges = {
        "2025-10-25T21:59:59Z": False,  # 23:59:59 CEST on the 25th
        "2025-10-25T22:00:00Z": True,  # midnight CEST: the 26th begins
        "2025-10-26T00:30:00Z": True,  # 02:30 CEST
        "2025-10-26T01:30:00Z": True,  # 02:30 CET, an hour later
        "2025-10-26T22:59:59Z": True,  # 23:59:59 CET
        "2025-10-26T23:00:00Z": False,  # midnight CET: the 27th
    }
    store_sessions(store, [starting(start) for start in edges])
    ran = run_tool(
        settings,
        monkeypatch,
        capsys,
        "export",
        "--from",
        "2025-10-26",
        "--to",
        "2025-10-26",
        "--format",
        "jsonl",
    )
    rows = [json.loads(line) for line in ran.out.splitlines()]
    assert {row["StartAt"] for row in rows} == {start for start, inside in edges.items() if inside}
    local = {row["StartAt"]: row["StartLocal"] for row in rows}
    assert local["2025-10-26T00:30:00Z"] == "2025-10-26T02:30:00+02:00"
    assert local["2025-10-26T01:30:00Z"] == "2025-10-26T02:30:00+01:00"


def test_only_the_partitions_of_the_period_are_read(
    store: SessionStore,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store_sessions(store, [starting("2025-03-10T10:00:00Z")])
    # A decoy in a partition the period does not need, with a StartAt inside the period: only a
    # query that scanned other partitions would find it.
    decoy = session_entity(
        Session.model_validate(starting("2025-03-11T10:00:00Z")),
        received_at=datetime.now(UTC),
        push_id="decoy",
    ).entity
    sessions_table, _ = tables(settings)
    sessions_table.upsert_entity({**decoy, "PartitionKey": "2025-07"}, mode=UpdateMode.REPLACE)
    ran = run_tool(settings, monkeypatch, capsys, "export", "--month", "2025-03")
    assert exported_starts(ran.out) == {"2025-03-10T10:00:00Z"}
    assert partition_range(*_bounds(Period.month("2025-03", BERLIN))) == ("2025-02", "2025-04")
    assert partition_range(*_bounds(Period.month("2025-01", BERLIN))) == ("2024-12", "2025-02")
    assert partition_range(*_bounds(Period.month("2025-03", time_zone("UTC")))) == ("2025-03", "2025-04")


def _bounds(period: Period) -> tuple[datetime, datetime]:
    return period.start, period.end


def test_the_csv_is_ready_for_excel_with_utc_and_local_times_and_kwh_beside_wh(
    store: SessionStore,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    store_sessions(
        store,
        [
            starting("2025-03-10T10:00:00Z", EnergyDelivered=17233, Id="56395736", Tariff="depot"),
            starting("2025-03-10T11:00:00Z", EnergyDelivered=5018.5, InitialSoC=59, EndSoC=79.5, Id=None),
            starting("2025-03-10T12:00:00Z", ChargerID="=HYPERLINK(1)"),
        ],
    )
    out = tmp_path / "march.csv"
    ran = run_tool(settings, monkeypatch, capsys, "export", "--month", "2025-03", "--out", str(out))
    assert ran.status == 0 and ran.out == ""
    raw = out.read_bytes()
    assert (
        raw.startswith(b"\xef\xbb\xbf") and raw.count(b"\r\n") == 4 and b"\n" not in raw.replace(b"\r\n", b"")
    )
    rows = {row["StartAt"]: row for row in csv_rows(raw.decode("utf-8"))}
    assert list(next(iter(rows.values()))) == list(CSV_COLUMNS)
    first = rows["2025-03-10T10:00:00Z"]
    assert (first["EnergyDelivered"], first["EnergyKWh"], first["DurationSeconds"]) == (
        "17233",
        "17.233",
        "2700",
    )
    assert (first["StartLocal"], first["EndLocal"]) == ("2025-03-10 11:00:00", "2025-03-10 11:45:00")
    assert (first["InitialSoC"], first["EndSoC"], first["Id"]) == ("", "", "56395736")
    assert json.loads(first["Extra"]) == {"Tariff": "depot"}
    second = rows["2025-03-10T11:00:00Z"]
    assert (second["EnergyDelivered"], second["EnergyKWh"], second["EndSoC"], second["Id"]) == (
        "5018.5",
        "5.0185",
        "79.5",
        "",
    )
    # A text cell that a spreadsheet would run as a formula is written as text.
    assert rows["2025-03-10T12:00:00Z"]["ChargerID"] == "'=HYPERLINK(1)"
    assert not (tmp_path / "march.csv.partial").exists()
    assert "Exported 3 sessions of 2025-03 (Europe/Berlin)" in ran.err


def test_excel_de_writes_semicolons_and_decimal_commas(
    store: SessionStore,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store_sessions(store, [starting("2025-03-10T10:00:00Z", EnergyDelivered=17233.5, Tariff="a,b")])
    ran = run_tool(settings, monkeypatch, capsys, "export", "--month", "2025-03", "--excel-de", "--no-bom")
    assert not ran.out.startswith("\ufeff")
    header = ran.out.splitlines()[0]
    assert header == ";".join(CSV_COLUMNS)
    (row,) = csv_rows(ran.out, delimiter=";")
    assert (row["EnergyDelivered"], row["EnergyKWh"]) == ("17233,5", "17,2335")
    assert json.loads(row["Extra"]) == {"Tariff": "a,b"}


def test_json_and_json_lines_give_the_sessions_as_they_were_sent(
    store: SessionStore,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sent = json.loads((SAMPLES / "hourly-push.json").read_text())
    store_sessions(store, sent)
    lines = run_tool(settings, monkeypatch, capsys, "export", "--month", "2025-01", "--format", "jsonl").out
    array = run_tool(settings, monkeypatch, capsys, "export", "--month", "2025-01", "--format", "json").out
    from_lines = [json.loads(line) for line in lines.splitlines()]
    assert json.loads(array) == from_lines and len(from_lines) == len(sent) == 24

    def as_sent(row: dict[str, Any]) -> dict[str, Any]:
        nine = {name: row[name] for name in sent[0]}
        nine["StartAt"] = row["StartAt"].replace("Z", ".000Z")
        nine["EndAt"] = row["EndAt"].replace("Z", ".000Z")
        return nine

    key = "TransactionID"
    assert sorted(map(as_sent, from_lines), key=lambda s: s[key]) == sorted(sent, key=lambda s: s[key])


def test_an_empty_period_is_a_header_or_an_empty_array(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # No table yet at all: nothing has been pushed.
    csv_out = run_tool(settings, monkeypatch, capsys, "export", "--month", "2025-03")
    assert csv_out.status == 0 and csv_out.out == "\ufeff" + ",".join(CSV_COLUMNS) + "\r\n"
    assert (
        json.loads(
            run_tool(settings, monkeypatch, capsys, "export", "--month", "2025-03", "--format", "json").out
        )
        == []
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--month", "2025-13"], "not written YYYY-MM"),
        (["--from", "2025-03-01"], "--from needs --to"),
        (["--from", "2025-03-31", "--to", "2025-03-01"], "is before --from"),
        (["--month", "2025-03", "--tz", "Mars/Olympus"], "unknown time zone"),
    ],
)
def test_a_period_that_names_no_days_is_refused(
    arguments: list[str],
    message: str,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ran = run_tool(settings, monkeypatch, capsys, "export", *arguments)
    assert ran.status == 2 and message in ran.err and ran.out == ""


def test_a_large_export_to_a_file_shows_progress_on_stderr(
    store: SessionStore,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    store_sessions(store, generate_sessions(120, seed=3, start=datetime(2025, 3, 2, tzinfo=UTC)))
    monkeypatch.setattr("tools.commands.export.PROGRESS_EVERY", 50)
    out = tmp_path / "march.jsonl"
    ran = run_tool(
        settings, monkeypatch, capsys, "export", "--month", "2025-03", "--format", "jsonl", "--out", str(out)
    )
    exported = len(out.read_text(encoding="utf-8").splitlines())
    assert "50 sessions exported" in ran.err and "100 sessions exported" in ran.err
    assert f"Exported {exported} sessions" in ran.err and exported >= 115
    # On standard output the progress would be mixed into the data: none there.
    ran = run_tool(settings, monkeypatch, capsys, "export", "--month", "2025-03")
    assert "exported" not in ran.err.lower()


def test_an_export_to_a_folder_that_does_not_exist_says_so(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "missing" / "march.csv"
    ran = run_tool(settings, monkeypatch, capsys, "export", "--month", "2025-03", "--out", str(out))
    assert ran.status == 2 and f"cannot write {out}" in ran.err and not out.parent.exists()


# Streaming: the export holds one page, whatever the number of sessions.


class _Discard(io.TextIOBase):
    def write(self, text: str) -> int:
        return len(text)


def test_the_export_writes_a_page_before_it_reads_the_next() -> None:
    period = Period.month("2025-03", BERLIN)
    pages_read: list[int] = []
    written_when: list[int] = []
    entity = session_entity(
        Session.model_validate(starting("2025-03-10T10:00:00Z")), received_at=datetime.now(UTC), push_id="p"
    ).entity

    def pages() -> Iterator[list[dict[str, Any]]]:
        for number in range(5):
            pages_read.append(number)
            yield [entity] * 10

    class Recorder(io.TextIOBase):
        def write(self, text: str) -> int:
            written_when.append(len(pages_read))
            return len(text)

    count = export_sessions(pages(), Recorder(), period=period, output_format=ExportFormat.JSONL)
    assert count == 50
    # Rows of page n are written while only n pages have been read.
    assert written_when[:20] == [1] * 20 and written_when[20:40] == [2] * 20


def test_exporting_ten_times_the_sessions_does_not_take_ten_times_the_memory(
    store: SessionStore, settings: Settings
) -> None:
    store_sessions(store, generate_sessions(100, seed=1, start=datetime(2025, 2, 1, tzinfo=UTC)))
    store_sessions(store, generate_sessions(1000, seed=2, start=datetime(2025, 5, 1, tzinfo=UTC)))
    utc = time_zone("UTC")

    def export(period: Period) -> int:
        pages = store.session_pages(period.start, period.end, page_size=50)
        return export_sessions(pages, _Discard(), period=period, output_format=ExportFormat.CSV)

    def peak_bytes(period: Period) -> tuple[int, int]:
        tracemalloc.start()
        try:
            return export(period), tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    export(Period.month("2025-02", utc))  # warm up: imports and caches are not the export
    small, small_peak = peak_bytes(Period.month("2025-02", utc))
    large, large_peak = peak_bytes(Period.month("2025-05", utc))
    assert (small, large) == (100, 1000)
    assert large_peak < 2 * small_peak, (small_peak, large_peak)


def test_sessions_pushed_over_http_are_exported_by_the_command(
    receiver: ServedReceiver, tmp_path: Path
) -> None:
    env = {**receiver.env, "CHARGEPILOT_KEY": OLD_KEY}
    pushed = run_tool_process(env, "push", "--url", receiver.sessions_url, str(SAMPLES / "hourly-push.json"))
    assert pushed.status == 0, pushed.out + pushed.err
    out = tmp_path / "january.csv"
    ran = run_tool_process(env, "export", "--month", "2025-01", "--out", str(out))
    assert ran.status == 0, ran.err
    sent = json.loads((SAMPLES / "hourly-push.json").read_text())
    rows = csv_rows(out.read_text(encoding="utf-8"))
    assert sorted(int(row["TransactionID"]) for row in rows) == sorted(item["TransactionID"] for item in sent)
