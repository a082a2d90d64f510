"""`python -m sessions export` against Azurite: local-date periods, formats, partitions, streaming."""

from __future__ import annotations

import io
import json
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from azure.data.tables import UpdateMode

from devtools.served import ServedReceiver
from sessions.export import CSV_COLUMNS, ExportFormat, export_sessions
from sessions.model import Session
from sessions.period import Period, time_zone
from sessions.settings import Settings
from sessions.storage import SessionStore
from sessions.storage.entities import session_entity
from sessions.storage.tables import partition_range
from tests.helpers import PROJECT
from tests.helpers.pushes import OLD_KEY, post, session
from tests.helpers.tables import tables
from tests.helpers.tools import csv_rows, run_tool, run_tool_process, store_sessions
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
    # After December comes "13" of the same year: it sorts before the next year, even after 9999.
    assert partition_range(*_bounds(Period.month("2025-12", time_zone("UTC")))) == ("2025-12", "2025-13")
    assert partition_range(*_bounds(Period.month("9999-12", time_zone("UTC")))) == ("9999-12", "9999-13")


def _bounds(period: Period) -> tuple[datetime, datetime]:
    return period.start, period.end


def test_an_export_to_a_file_takes_its_name_only_when_complete_and_says_how_many(
    store: SessionStore,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    # The cells themselves: tests/unit/test_export_rows.py.
    store_sessions(
        store, [starting(f"2025-03-10T1{hour}:00:00Z", ChargerID="=HYPERLINK(1)") for hour in range(3)]
    )
    out = tmp_path / "march.csv"
    ran = run_tool(settings, monkeypatch, capsys, "export", "--month", "2025-03", "--out", str(out))
    assert ran.status == 0 and ran.out == ""
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and raw.count(b"\r\n") == 4
    rows = csv_rows(raw.decode("utf-8"))
    assert list(rows[0]) == list(CSV_COLUMNS) and {row["ChargerID"] for row in rows} == {"'=HYPERLINK(1)"}
    assert not (tmp_path / "march.csv.partial").exists()
    assert "Exported 3 sessions of 2025-03 (Europe/Berlin)" in ran.err


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


# Old values: what sessions stored before today's rules (or entities written by hand) may hold.
def old_values(template: dict[str, Any]) -> list[dict[str, Any]]:
    """Entities of March 2025 (and of the first and last months Table Storage holds) that the
    model refuses today, written as stored entities: each one a copy of `template` with a twist."""

    def twisted(number: int, **properties: Any) -> dict[str, Any]:
        entity = {**template, "RowKey": f"OLD{number}_{number:019d}", "TransactionID": number}
        for name, value in properties.items():
            if value is None:
                entity.pop(name, None)
            else:
                entity[name] = value
        return entity

    return [
        twisted(1, EnergyDelivered=1e308, EnergyKWh=1e305),
        twisted(2, EnergyDelivered=float("nan"), EnergyKWh=float("inf"), DurationSeconds=float("-inf")),
        twisted(3, EndAt=datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC), DurationSeconds=2.5e11),
        twisted(4, ChargerID="ABC\u202e0121\x00", Id="\u2028=cmd", PushId="p\u200b"),
        twisted(5, EnergyDelivered="17233", ConnectorID="one", Extra='{"broken": ', TransactionID="x"),
        twisted(6, Extra='{"Price": NaN, "Meter": [Infinity]}'),
        {key: template[key] for key in ("PartitionKey", "StartAt")} | {"RowKey": "OLD7_0000000000000000007"},
        twisted(8, PartitionKey="1601-01", StartAt=datetime(1601, 1, 1, tzinfo=UTC), EndAt=None),
        twisted(9, PartitionKey="9999-12", StartAt=datetime(9999, 12, 31, 23, 30, tzinfo=UTC), EndAt=None),
    ]


@pytest.fixture
def old_months(store: SessionStore, settings: Settings) -> None:
    """A valid session of March 2025 and the old values beside it, stored bypassing the model."""
    store_sessions(store, [starting("2025-03-10T10:00:00Z")])
    sessions_table, _ = tables(settings)
    (template,) = [dict(entity) for entity in sessions_table.list_entities()]
    for entity in old_values(template):
        sessions_table.upsert_entity(entity, mode=UpdateMode.REPLACE)


@pytest.mark.usefixtures("old_months")
def test_export_and_report_of_months_holding_old_values_run_without_a_traceback(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def run(*arguments: str) -> str:
        ran = run_tool(settings, monkeypatch, capsys, *arguments)
        assert ran.status == 0, ran.err
        return ran.out

    for zone in ("Europe/Berlin", "UTC", "America/Los_Angeles", "Pacific/Kiritimati"):
        for month in ("2025-03", "1601-01", "9999-12"):
            for output_format in ("csv", "jsonl", "json"):
                run("export", "--month", month, "--tz", zone, "--format", output_format)
            for by in ("card", "station", "day"):
                run("report", "--month", month, "--tz", zone, "--by", by)
                run("report", "--month", month, "--tz", zone, "--by", by, "--format", "csv")
    rows = {row["TransactionID"]: row for row in csv_rows(run("export", "--month", "2025-03"))}
    assert len(rows) == 8  # the valid session and seven old ones of March
    assert (rows["3"]["EndAt"], rows["3"]["EndLocal"]) == ("9999-12-31T23:59:59Z", "")
    assert (rows["2"]["EnergyDelivered"], rows["1"]["EnergyDelivered"]) == ("NaN", "1e+308")
    assert rows["4"]["ChargerID"] == "ABC\\u202e0121\\u0000" and rows["4"]["Id"] == "\\u2028=cmd"
    for line in run("export", "--month", "2025-03", "--format", "jsonl").splitlines():
        json.loads(line, parse_constant=lambda constant: pytest.fail(f"{constant} in the JSON export"))
    report = run("report", "--month", "2025-03", "--by", "card", "--format", "csv")
    assert csv_rows(report)[-1]["card"] == "(left out of the sums)"
    assert "nan" not in report.lower() and "inf" not in report.lower()


@pytest.mark.usefixtures("old_months")
def test_a_session_of_the_last_month_table_storage_holds_is_exported(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ran = run_tool(settings, monkeypatch, capsys, "export", "--month", "9999-12", "--tz", "UTC")
    assert [row["StartAt"] for row in csv_rows(ran.out)] == ["9999-12-31T23:30:00Z"]


# --- through the read API instead of the tables ------------------------------------------------

API_READ_KEY = "test-read-key-for-export-5e11"


@pytest.mark.parametrize("output_format", ["csv", "jsonl", "json"])
def test_export_through_the_api_writes_what_the_export_from_storage_writes(
    serve: Any,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    output_format: str,
) -> None:
    served: ServedReceiver = serve(CHARGEPILOT_READ_KEYS=API_READ_KEY)
    sent = [
        session(
            ChargerID=f"CP-{n % 5}",
            StartAt=f"2025-03-{1 + n % 28:02d}T10:00:00Z",
            EndAt=f"2025-03-{1 + n % 28:02d}T11:00:00Z",
            Extra="x\u202ey" if n == 3 else "plain",
        )
        for n in range(40)
    ]
    assert post(served.sessions_url, sent, key=OLD_KEY).status_code == 200
    from_storage = tmp_path / f"storage.{output_format}"
    from_api = tmp_path / f"api.{output_format}"
    common = ("export", "--month", "2025-03", "--format", output_format)
    assert run_tool(settings, monkeypatch, capsys, *common, "--out", str(from_storage)).status == 0
    monkeypatch.setenv("READ_KEY_FOR_TEST", API_READ_KEY)
    monkeypatch.setattr("tools.commands.export.API_PAGE", 7)  # several pages
    ran = run_tool(
        settings,
        monkeypatch,
        capsys,
        *common,
        "--out",
        str(from_api),
        "--api",
        served.base_url,
        "--read-key-env",
        "READ_KEY_FOR_TEST",
    )
    assert ran.status == 0, ran.err
    assert "Exported 40 sessions" in ran.err
    assert from_api.read_bytes() == from_storage.read_bytes()


def test_export_through_the_api_fails_clearly_without_a_key_or_with_a_push_key(
    serve: Any,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    served: ServedReceiver = serve(CHARGEPILOT_READ_KEYS=API_READ_KEY)
    out = tmp_path / "march.csv"
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    monkeypatch.setenv("PUSH_KEY_VAR", OLD_KEY)
    for variable, status, said in (("NO_SUCH_KEY_VAR", 2, "NO_SUCH_KEY_VAR"), ("PUSH_KEY_VAR", 1, "401")):
        ran = run_tool(
            settings, monkeypatch, capsys, "export", "--month", "2025-03", "--out", str(out),
            "--api", served.base_url, "--read-key-env", variable,
        )  # fmt: skip
        assert ran.status == status and said in ran.err
    assert not out.exists() and not out.with_name("march.csv.partial").exists()
