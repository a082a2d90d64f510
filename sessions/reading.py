"""GET /api/sessions: what a billing system asks for, where the next page starts, and the page.

No HTTP here (function_app.py turns a page into an answer): the query parameters come in as a
mapping, a page goes out as rows of the export (sessions/export.py), so that a session read over
the API is exactly the row `python -m sessions export` writes for it.

Parameters (docs/billing-systems.md):
- `month=YYYY-MM`, or `date_from` and/or `date_to`: the sessions whose StartAt is in
  [date_from, date_to). Each is a date (`2025-03-01`, local midnight in `tz`) or a date-time with
  an offset (`2025-03-01T00:00:00Z`). `tz` is an IANA zone, Europe/Berlin unless given; it also
  decides the local-time columns.
- `changed_since` (a date-time with an offset): only sessions whose record changed after it
  (stored, corrected or moved); unchanged re-sends change nothing.
- `limit` (1 to MAX_LIMIT, DEFAULT_LIMIT unless given), `format=json|csv` (or the Accept header).
- `cursor`: where the previous page stopped (from its `next` link); it carries the filters, so a
  request with a cursor takes no other filter.

The cursor is the filters, the phase ("home", then "moved") and the Table service's continuation
token, as base64url JSON: not a secret and not trusted; a cursor that does not parse is a 400.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sessions.export import CSV_COLUMNS, UTF8_BOM, csv_row, json_row, readable_session
from sessions.period import DEFAULT_ZONE, Period, PeriodError, time_zone
from sessions.storage import ReadCursor, SessionQuery, SessionStore

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000
# How far before a read pass began the next changed_since is put: the storage's clock and this
# app's may differ by a little, and an overlap only returns a few sessions twice (a consumer keys
# them by ChargerID and TransactionID), where a gap would lose a correction for good.
CHANGED_SINCE_OVERLAP = timedelta(minutes=1)
PARAMETERS = ("month", "date_from", "date_to", "tz", "changed_since", "limit", "format", "cursor")
_CURSOR_VERSION = 1


class ReadError(ValueError):
    """A parameter that cannot be used; the message says which and what to write instead."""


@dataclass(frozen=True)
class ReadRequest:
    """A parsed request: the storage query, the zone of the local times, where to go on."""

    query: SessionQuery
    zone: ZoneInfo
    limit: int
    cursor: ReadCursor | None
    # When the read pass began (its first page), less the overlap: the next changed_since.
    next_changed_since: datetime
    csv: bool


@dataclass(frozen=True)
class SessionsPage:
    """One page: its rows as the export makes them (json_row's objects, or csv_row's cells when
    the request asked for CSV), and the cursor of the next page (None: the last)."""

    rows: list[Any]
    csv: bool
    next_cursor: str | None
    next_changed_since: datetime
    limit: int


def parse_request(params: Mapping[str, str], accept: str | None, *, now: datetime) -> ReadRequest:
    """The request these query parameters (and Accept header) make, or ReadError."""
    unknown = sorted(set(params) - set(PARAMETERS))
    if unknown:
        raise ReadError(f"unknown parameter {unknown[0]!r}: the parameters are {', '.join(PARAMETERS)}")
    limit = _limit(params.get("limit"))
    as_csv = _wants_csv(params.get("format"), accept)
    if "cursor" in params:
        others = sorted(set(params) - {"cursor", "limit", "format"})
        if others:
            raise ReadError(f"a cursor carries the filters: leave out {', '.join(others)}")
        return _from_cursor(params["cursor"], limit, as_csv)
    zone = _zone(params.get("tz"))
    start, end = _period(params, zone)
    changed_after = _instant(params["changed_since"], "changed_since") if "changed_since" in params else None
    return ReadRequest(
        SessionQuery(start, end, changed_after),
        zone,
        limit,
        None,
        (now - CHANGED_SINCE_OVERLAP).astimezone(UTC),
        as_csv,
    )


def read_page(store: SessionStore, request: ReadRequest) -> SessionsPage:
    """One page of sessions as the export writes them (StorageUnavailable if storage fails)."""
    page = store.read_page(request.query, request.cursor, request.limit)
    period = _rows_period(request)
    row = csv_row if request.csv else json_row
    rows = [row(readable_session(entity), period) for entity in page.entities]
    next_cursor = None if page.next is None else encode_cursor(request, page.next)
    return SessionsPage(rows, request.csv, next_cursor, request.next_changed_since, request.limit)


def csv_text(page: SessionsPage) -> str:
    """A page as a CSV file of the export's columns, as Excel reads it (BOM, CRLF)."""
    out = io.StringIO()
    out.write(UTF8_BOM)
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(page.rows)
    return out.getvalue()


def encode_cursor(request: ReadRequest, at: ReadCursor) -> str:
    query = request.query
    state = {
        "v": _CURSOR_VERSION,
        "start": _text(query.start),
        "end": _text(query.end),
        "changed": _text(query.changed_after),
        "tz": request.zone.key,
        "next_changed": _text(request.next_changed_since),
        "phase": at.phase,
        "token": at.token,
    }
    raw = json.dumps(state, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _from_cursor(text: str, limit: int, as_csv: bool) -> ReadRequest:
    problem = ReadError("cursor is not one this receiver gave: start again without it")
    try:
        raw = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
        state = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise problem from None
    if not isinstance(state, dict) or state.get("v") != _CURSOR_VERSION:
        raise problem
    try:
        start, end = _maybe(state["start"]), _maybe(state["end"])
        changed, next_changed = _maybe(state["changed"]), _maybe(state["next_changed"])
        zone = time_zone(str(state["tz"]))
        phase, token = state["phase"], state["token"]
    except (KeyError, TypeError, ValueError, PeriodError):
        raise problem from None
    if phase not in ("home", "moved") or (phase == "moved" and start is None) or next_changed is None:
        raise problem
    if (start is None) != (end is None) or (start is not None and end is not None and end <= start):
        raise problem
    if token is not None and (
        not isinstance(token, dict)
        or not all(isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in token.items())
    ):
        raise problem
    return ReadRequest(
        SessionQuery(start, end, changed), zone, limit, ReadCursor(phase, token), next_changed, as_csv
    )


def _period(params: Mapping[str, str], zone: ZoneInfo) -> tuple[datetime | None, datetime | None]:
    if "month" in params:
        if "date_from" in params or "date_to" in params:
            raise ReadError("give either month or date_from/date_to, not both")
        try:
            month = Period.month(params["month"], zone)
        except PeriodError as error:
            raise ReadError(f"month: {error}") from None
        return month.start, month.end
    if "date_from" not in params and "date_to" not in params:
        return None, None
    start = _bound(params.get("date_from"), "date_from", zone) or datetime.min.replace(tzinfo=UTC)
    end = _bound(params.get("date_to"), "date_to", zone) or datetime.max.replace(tzinfo=UTC)
    if end <= start:
        raise ReadError(f"date_to {params['date_to']!r} is not after date_from {params['date_from']!r}")
    return start, end


def _bound(text: str | None, name: str, zone: ZoneInfo) -> datetime | None:
    """A date (local midnight in the zone) or a date-time with an offset, in UTC."""
    if text is None:
        return None
    value = text.strip()
    if len(value) == 10:
        try:
            day = Period.days(value, value, zone)
        except PeriodError as error:
            raise ReadError(f"{name}: {error}") from None
        return day.start
    return _instant(value, name)


def _instant(text: str, name: str) -> datetime:
    value = text.strip()
    try:
        moment = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise ReadError(
            f"{name} {text!r} is not a date-time such as 2025-03-01T00:00:00Z (or a date, 2025-03-01)"
        ) from None
    if moment.utcoffset() is None:
        raise ReadError(f"{name} {text!r} has no time zone: add Z or an offset such as +01:00")
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ReadError(f"{name} {text!r} is beyond the years 1 to 9999") from None


def _limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_LIMIT
    value = text.strip()
    if not (value.isascii() and value.isdigit()) or len(value) > 6 or not 1 <= int(value) <= MAX_LIMIT:
        raise ReadError(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(value)


def _zone(text: str | None) -> ZoneInfo:
    try:
        return time_zone((text or DEFAULT_ZONE).strip())
    except PeriodError as error:
        raise ReadError(f"tz: {error}") from None


def _wants_csv(requested: str | None, accept: str | None) -> bool:
    if requested is not None:
        value = requested.strip().lower()
        if value not in ("json", "csv"):
            raise ReadError("format must be json or csv")
        return value == "csv"
    types = [part.split(";")[0].strip().lower() for part in (accept or "").split(",")]
    return "text/csv" in types and "application/json" not in types


def _rows_period(request: ReadRequest) -> Period:
    # The export's rows take a period only for the zone of their local times.
    today = datetime.now(UTC).date()
    return Period(today, today, request.zone)


def _text(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def _maybe(text: Any) -> datetime | None:
    if text is None:
        return None
    moment = datetime.fromisoformat(str(text))
    if moment.utcoffset() is None:
        raise ValueError("no offset")
    return moment.astimezone(UTC)
