"""Settlement from CyberSource's Reporting API: download, keep the file, read it like an upload.

Two sources (docs/reporting-api.md says how each behaves):

- :func:`download_report` — a subscribed report by name and ``reportDate``, e.g. the daily
  Payment Batch Detail report as CSV or XML.
- :func:`purchase_refund_details` — the purchase-and-refund details of a time window, every page.

Each saves exactly the bytes CyberSource sent under ``data_dir`` and returns
:func:`reconkit.read_settlement`'s frame of those files, so every row's ``source_file`` and
``source_line`` point into a file the analyst can open. A report that cannot be downloaded raises
:class:`~reconkit.ReportNotReadyError`, :class:`~reconkit.NoReportDataError` or
:class:`~reconkit.ReportFailedError` (all :class:`~reconkit.NotFoundError`) saying which, from the
report's status in ``GET /reporting/v3/reports``.

Complete or an error: a download is kept only once its framing (``Content-Length`` or chunked
transfer) proves it whole and it is well-formed XML or CSV ending on a whole record; a page walk
only once every page was read, none repeated, and the offsets advanced. Otherwise
:class:`~reconkit.IncompleteReportError` names the report and nothing is saved. Every request is a
read through :func:`reconkit.transport.read` (retried, never redirected).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode
from xml.parsers import expat
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import requests

from .errors import (
    IncompleteReportError,
    NetworkError,
    NoReportDataError,
    NotFoundError,
    ReportFailedError,
    ReportNotReadyError,
)
from .files import write_all_or_none
from .settlement import read_settlement
from .transport import json_object, read

if TYPE_CHECKING:
    import pandas as pd

    from .client import Client

__all__ = ["DEFAULT_DATA_DIR", "NoReportDataError", "ReportFailedError", "ReportNotReadyError", "download_report",
           "purchase_refund_details", "report_definitions", "search_reports", "subscribe_report"]

DEFAULT_DATA_DIR = Path("data") / "reports"
"""Where downloaded reports are kept unless a ``data_dir`` is given."""
_MIME = {"csv": ("text/csv", "pbdr_csv"), "xml": ("application/xml", "pbdr_xml")}
_PAGE_LIMIT = 2000


def _iso_date(value: date | str, name: str) -> date:
    if isinstance(value, datetime):
        raise ValueError(f"{name} must be a date (yyyy-mm-dd), not a datetime: {value!r}")
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"{name} must be a date in yyyy-mm-dd form, not {value!r}") from None


def _instant(value: datetime | str, name: str) -> datetime:
    try:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{name} must be an ISO 8601 instant such as 2026-11-02T00:00:00Z, not {value!r}") from None
    if moment.tzinfo is None:
        raise ValueError(f"{name} has no time zone ({value!r}): give e.g. 2026-11-02T00:00:00Z")
    return moment


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_REPORT_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_DEFAULT_MAX_PAGES = 5000
"""The most pages one pull walks (10 million rows at the largest page size)."""


def _report_name(name: object) -> str:
    """``name`` when it can only name a file inside ``data_dir`` (it is part of the saved file's name)."""
    if not isinstance(name, str) or not _REPORT_NAME.fullmatch(name) or name in (".", ".."):
        raise ValueError(f"report name {name!r} may hold only letters, digits, '_', '.' and '-' (and be neither "
                         "'.' nor '..'): it names the file the report is saved as; nothing was sent")
    return name


def _framed(response: requests.Response, what: str) -> bytes:
    """The body, once its framing proves it whole: a ``Content-Length`` it matches, or chunked
    transfer (whose last chunk urllib3 insists on). A body that simply ends where the connection
    closed cannot be told from one cut short, so it is refused."""
    data = response.content
    length = response.headers.get("Content-Length")
    chunked = "chunked" in response.headers.get("Transfer-Encoding", "").lower()
    if length is None:
        if not chunked:
            raise IncompleteReportError(what, "the server sent it without a Content-Length or chunked framing, so "
                                              "whether it arrived whole cannot be checked")
        return data
    if not length.strip().isdigit():
        raise IncompleteReportError(what, f"its Content-Length {length!r} is not a byte count")
    if not response.headers.get("Content-Encoding") and len(data) != int(length):
        raise IncompleteReportError(what, f"{len(data)} bytes arrived where Content-Length said {int(length)}")
    return data


def _well_formed_xml(data: bytes, what: str) -> None:
    parser = expat.ParserCreate()
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise IncompleteReportError(what, f"it is not well-formed XML ({expat.ErrorString(exc.code)} at line "
                                          f"{exc.lineno}, character {exc.offset + 1})") from None


def _whole_csv(data: bytes, what: str) -> None:
    """A CSV report ends with a complete record: a line break after its last field, no quote left
    open, and as many fields in its last record as in its header (the second line: the first is
    the report's title)."""
    if not data.strip():
        raise IncompleteReportError(what, "the CSV is empty")
    if not data.endswith(b"\n"):
        raise IncompleteReportError(what, "the CSV ends mid-record (no line break after its last field)")
    text = data.decode("utf-8-sig", errors="replace")
    try:
        records = [row for row in csv.reader(io.StringIO(text, newline=""), strict=True) if row]
    except csv.Error as exc:
        raise IncompleteReportError(what, f"the CSV ends mid-record ({exc})") from None
    if len(records) > 2 and len(records[-1]) != len(records[1]):
        raise IncompleteReportError(what, f"the CSV's last record has {len(records[-1])} fields where its header "
                                          f"has {len(records[1])}: it ends mid-record")


def _fetch(client: Client, path: str, accept: str,
           check: Callable[[requests.Response], Any] | None = None) -> tuple[requests.Response, Any]:
    """A read through :func:`reconkit.transport.read` with an ``Accept`` header."""
    return read(client, "GET", path, headers={"Accept": accept}, check=check)


def _report_status(client: Client, name: str, day: date) -> str | None:
    """The status of the daily report ``name`` whose ``reportDate`` is ``day``, from ``GET /reporting/v3/reports``.

    The report's period is a day in the subscription's own time zone, which may be anything from
    UTC-12 to UTC+14; the search spans a day more each side and picks the instance whose end,
    in that zone, is ``day``'s midnight.
    """
    try:
        results = search_reports(client, datetime.combine(day - timedelta(days=2), time(0), tzinfo=UTC),
                                 datetime.combine(day + timedelta(days=2), time(0), tzinfo=UTC),
                                 time_query_type="reportTimeFrame", name=name)
    except OverflowError:  # a report date at the edge of the calendar has no days around it
        return None
    statuses = [r.get("status") for r in results if r.get("reportName") == name and _ends_on(r, day)]
    return str(statuses[-1]) if statuses else None


def _ends_on(result: dict[str, Any], day: date) -> bool:
    """Whether a report search result's period ends at ``day``'s midnight in its own ``timezone``."""
    try:
        zone = ZoneInfo(str(result.get("timezone") or "UTC"))
        ends = datetime.fromisoformat(str(result.get("reportEndTime")).replace("Z", "+00:00")).astimezone(zone)
    except (ValueError, ZoneInfoNotFoundError):
        return False
    return ends.date() == day and ends.time() == time(0)


def search_reports(client: Client, start: datetime | str, end: datetime | str, *,
                   time_query_type: str = "executedTime", name: str | None = None) -> list[dict[str, Any]]:
    """Report instances and their status (``GET /reporting/v3/reports``), as the official sample asks.

    Parameters
    ----------
    client : Client
    start, end : datetime or ISO 8601 text with a zone
    time_query_type : {"executedTime", "reportTimeFrame"}
        ``executedTime``: the reports run (queued) in ``[start, end)``, the official sample's
        query; ``reportTimeFrame``: the reports whose period lies in ``[start, end)``.
    name : str, optional
        Only the instances of this report subscription.

    Returns
    -------
    list of dict
        ``reportSearchResults`` as CyberSource sent them (``reportName``, ``status``,
        ``reportStartTime``, ``reportEndTime``, ``timezone``, ``queuedTime``, ...); empty when it
        answered 404 (no report in the window).
    """
    if time_query_type not in ("executedTime", "reportTimeFrame"):
        raise ValueError(f"time_query_type must be 'executedTime' or 'reportTimeFrame', not {time_query_type!r}")
    params = {"startTime": _stamp(_instant(start, "start")), "endTime": _stamp(_instant(end, "end")),
              "timeQueryType": time_query_type}
    if name is not None:
        params["reportName"] = name
    path = f"/reporting/v3/reports?{urlencode(params)}"
    try:
        _, listing = _fetch(client, path, "application/hal+json", json_object("GET", path))
    except NotFoundError:
        return []
    results = listing.get("reportSearchResults") or []
    return [r for r in results if isinstance(r, dict)]


def report_definitions(client: Client, name: str | None = None) -> Any:
    """``GET /reporting/v3/report-definitions`` (a list of definitions) or, given ``name``,
    ``/report-definitions/{name}`` (one definition with its ``attributes``), as sent."""
    path = "/reporting/v3/report-definitions" + (f"/{quote(name, safe='')}" if name is not None else "")
    _, body = _fetch(client, path, "application/hal+json", json_object("GET", path))
    return body if name is not None else (body or {}).get("reportDefinitions") or []


def subscribe_report(client: Client, name: str, *, timezone: str = "UTC", fields: list[str] | None = None,
                     format: str = "csv", start_time: str = "0000",
                     definition: str = "PaymentBatchDetailClass", field_names: str | None = None) -> None:
    """Create or replace a daily report subscription (``PUT /reporting/v3/report-subscriptions``).

    A PUT replaces the subscription of that name whole, so sending it again is harmless: it is
    retried like a read. ``timezone`` (a tz-database name) sets the report's day: its
    ``reportDate`` is the end of that day *there*. ``fields`` default to every attribute of the
    definition (``GET /reporting/v3/report-definitions/{definition}``). ``field_names``, sent as
    ``reportPreferences.fieldNameConvention`` (CSV only): ``"SOAPI"`` asks for the standard (new)
    Payment Batch Detail layout's names (``RequestID``, ``TransactionReferenceNumber``; give
    ``fields`` in those names), ``"SCMP"`` or None the classic ones (``request_id``).
    """
    if field_names not in (None, "SOAPI", "SCMP"):
        raise ValueError(f"field_names must be 'SOAPI', 'SCMP' or None, not {field_names!r}")
    if format not in _MIME:
        raise ValueError(f"format must be 'csv' or 'xml', not {format!r}")
    try:
        ZoneInfo(timezone)
    except (ValueError, ZoneInfoNotFoundError):
        raise ValueError(f"timezone {timezone!r} is not a tz-database name such as 'America/New_York'") from None
    if fields is None and field_names == "SOAPI":
        raise ValueError("field_names='SOAPI' needs fields in those names (e.g. RequestID, "
                         "TransactionReferenceNumber, Amount); the definition lists its attributes in the classic ones")
    if fields is None:
        fields = [a["id"] for a in report_definitions(client, definition).get("attributes") or []
                  if isinstance(a, dict) and "id" in a]
    body: dict[str, Any] = {
        "reportDefinitionName": definition, "reportFields": list(fields), "reportMimeType": _MIME[format][0],
        "reportFrequency": "DAILY", "reportName": name, "timezone": timezone, "startTime": start_time}
    if field_names is not None:
        body["reportPreferences"] = {"fieldNameConvention": field_names}
    read(client, "PUT", "/reporting/v3/report-subscriptions", data=json.dumps(body).encode("utf-8"),
         headers={"Content-Type": "application/json"})


def download_report(client: Client, name: str, report_date: date | str, format: str = "csv", *,
                    data_dir: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Download a subscribed report, save it and read it as settlement.

    Parameters
    ----------
    client : Client
    name : str
        The report subscription's name, e.g. ``"PaymentBatchDetailReport_Daily"``.
    report_date : date or "yyyy-mm-dd"
        The report's *end* date in the subscription's time zone: the report of 9 March
        (00:00 to 24:00) has ``report_date`` 10 March.
    format : {"csv", "xml"}
    data_dir : path, optional
        Where the file is kept (default ``data/reports``); an earlier download of the same
        report is replaced.

    Returns
    -------
    DataFrame
        :func:`reconkit.read_settlement`'s frame; ``source_file`` is the saved file.

    Raises
    ------
    ReportNotReadyError, NoReportDataError, ReportFailedError
        CyberSource answered 404; the report's status tells which (``PENDING``/``RUNNING``/``QUEUED``,
        ``NO_DATA`` or none, ``ERROR``).
    IncompleteReportError
        The body did not arrive whole (its ``Content-Length`` or framing, XML that is not
        well-formed, CSV that ends mid-record), after the retries; nothing is saved.
    ValueError
        A report name that is not only ``[A-Za-z0-9_.-]`` (it names the saved file); nothing is sent.
    ApiError, NetworkError
    """
    name = _report_name(name)
    if format not in _MIME:
        raise ValueError(f"format must be 'csv' or 'xml', not {format!r}")
    day = _iso_date(report_date, "report_date")
    accept, reader_format = _MIME[format]
    what = f"report {name!r} for report date {day}"
    query = urlencode({"reportDate": day.isoformat(), "reportName": name})

    def whole(response: requests.Response) -> bytes:
        data = _framed(response, what)
        (_well_formed_xml if format == "xml" else _whole_csv)(data, what)
        return data

    try:
        _, data = _fetch(client, f"/reporting/v3/report-downloads?{query}", accept, whole)
    except NetworkError as failed:
        if isinstance(failed.__cause__, requests.exceptions.ChunkedEncodingError):
            raise IncompleteReportError(what, "its body ended before its Content-Length or chunked framing said, "
                                              f"on each of {failed.attempts} attempts") from None
        raise NetworkError(f"{what}: {failed}", attempts=failed.attempts) from None
    except NotFoundError as missing:
        status = _report_status(client, name, day)
        kind = {None: NoReportDataError, "NO_DATA": NoReportDataError, "ERROR": ReportFailedError}.get(
            status, ReportNotReadyError)
        reason = {None: "was not found", "NO_DATA": "has no data",
                  "ERROR": "could not be generated by CyberSource (status ERROR): waiting will not bring it; "
                           "run it again in the Business Center or ask CyberSource support"}.get(
            status, f"is not ready yet (status {status})")
        error = kind(missing.http_status, {"reason": missing.reason, "message": f"The {what} {reason}"},
                     correlation_id=missing.correlation_id, method="GET", path="/reporting/v3/report-downloads")
        error.report_status = status  # type: ignore[attr-defined]
        raise error from None
    folder = Path(data_dir) if data_dir is not None else DEFAULT_DATA_DIR
    [path] = write_all_or_none(folder, {f"{name}_{day}.{format}": data})
    if format == "csv" and _standard_layout(data):
        reader_format = "pbdr_new_csv"
    return read_settlement(path, reader_format)


def _standard_layout(data: bytes) -> bool:
    """Whether a Payment Batch Detail CSV has the standard (new) layout's header: ``RequestID``
    where the classic one has ``request_id`` (a subscription's ``fieldNameConvention`` chooses)."""
    lines = data.decode("utf-8", errors="replace").splitlines()
    header = next(csv.reader(lines[1:2]), []) if len(lines) > 1 else []
    return "RequestID" in (cell.strip().lstrip("\ufeff") for cell in header)


def purchase_refund_details(client: Client, start: datetime | str, end: datetime | str, *,
                            data_dir: str | os.PathLike[str] | None = None, view_by: str = "requestDate",
                            limit: int = _PAGE_LIMIT, max_pages: int = _DEFAULT_MAX_PAGES) -> pd.DataFrame:
    """Pull the purchase-and-refund details of ``[start, end)``, every page, and read them as settlement.

    Parameters
    ----------
    client : Client
    start, end : datetime (with a time zone) or ISO 8601 text
    data_dir : path, optional
        Each page is saved as it came, ``purchase_refund_details_<start>_<end>_p<n>.json``;
        pages of an earlier pull of the same window are replaced.
    view_by : {"requestDate", "submissionDate"}
    limit : int
        Page size asked for, 1 to 2000. The server may answer fewer per page (it caps them):
        pages are requested, each at the offset after the entries received so far, until one
        comes back empty (the response carries no total), or a 404 follows a short page.
    max_pages : int
        The most pages walked before the pull is refused as runaway.

    Returns
    -------
    DataFrame
        ``source_file`` is the page's file; ``source_line`` the entry's 1-based position in
        that page's ``settlements``.

    Raises
    ------
    NoReportDataError
        CyberSource has no purchases or refunds in the window (404).
    IncompleteReportError
        The pages do not add up: a page repeats an earlier one or its requests, answers another
        offset than asked, says ``pageResults`` other than the entries it carries, holds more
        than ``limit``, a 404 follows a full page, or the pages pass ``max_pages``. Nothing is
        returned or saved.
    ApiError, NetworkError
    """
    begin, finish = _instant(start, "start"), _instant(end, "end")
    if finish <= begin:
        raise ValueError(f"end ({finish.isoformat()}) must be after start ({begin.isoformat()})")
    if not 1 <= limit <= _PAGE_LIMIT:
        raise ValueError(f"limit must be between 1 and {_PAGE_LIMIT}, not {limit}")
    if max_pages < 1:
        raise ValueError(f"max_pages must be at least 1, not {max_pages}")
    what = f"the purchase-and-refund details of {_stamp(begin)} to {_stamp(finish)}"
    stem = f"purchase_refund_details_{_stamp(begin).replace(':', '')}_{_stamp(finish).replace(':', '')}"
    pages = _walk(client, begin, finish, view_by=view_by, limit=limit, max_pages=max_pages, stem=stem, what=what)
    folder = Path(data_dir) if data_dir is not None else DEFAULT_DATA_DIR
    paths = write_all_or_none(folder, pages)
    for stale in folder.glob(f"{stem}_p*.json"):  # pages of an earlier, longer pull of the same window
        if stale.name not in pages:
            stale.unlink()
    return read_settlement(paths, "purchase_refund_json")


def _count(value: object) -> int | None:
    """A non-negative count from JSON (an int, or digits as text), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _walk(client: Client, begin: datetime, finish: datetime, *, view_by: str, limit: int, max_pages: int,
          stem: str, what: str) -> dict[str, bytes]:
    """Every page of the window, by file name, proved to add up (see :func:`purchase_refund_details`)."""
    path = "/reporting/v3/purchase-refund-details"
    pages: dict[str, bytes] = {}
    seen_pages: set[str] = set()
    seen_requests: set[str] = set()
    offset, last = 0, 0
    while True:
        if len(pages) >= max_pages:
            raise IncompleteReportError(what, f"it has more than {max_pages} pages of up to {limit} entries (the "
                                              "page budget); ask for a larger limit or max_pages, or a shorter window")
        query = urlencode({"startTime": _stamp(begin), "endTime": _stamp(finish), "viewBy": view_by,
                           "offset": offset, "limit": limit})
        try:
            response, body = _fetch(client, f"{path}?{query}", "application/hal+json",
                                    json_object("GET", path))
        except NotFoundError as missing:
            if not pages:
                raise NoReportDataError(missing.http_status, missing.body, correlation_id=missing.correlation_id,
                                        method="GET", path=path) from None
            if last < limit:  # a short page, then nothing: the end as CyberSource says it
                break
            raise IncompleteReportError(what, f"the page at offset {offset} answered 404 after a full page, so "
                                              "the pages may not all have been read") from missing
        entries = body.get("settlements", [])
        if not isinstance(entries, list):
            raise IncompleteReportError(what, f"the page at offset {offset} has no list of settlements")
        count = len(entries)
        if "offset" in body and _count(body["offset"]) != offset:
            raise IncompleteReportError(what, f"the page asked for at offset {offset} says it is at offset "
                                              f"{body['offset']!r}: the walk would not advance")
        if "pageResults" in body and _count(body["pageResults"]) != count:
            raise IncompleteReportError(what, f"the page at offset {offset} says pageResults {body['pageResults']!r} "
                                              f"but carries {count} settlements")
        if count > limit:
            raise IncompleteReportError(what, f"the page at offset {offset} carries {count} settlements, more than "
                                              f"the {limit} asked for")
        if count == 0:
            if not pages:  # nothing at all: kept, so the frame says so from a file
                pages[f"{stem}_p001.json"] = response.content
            break
        digest = hashlib.sha256(json.dumps({k: v for k, v in body.items() if k not in ("offset", "limit")},
                                           sort_keys=True, default=str).encode()).hexdigest()
        requests_here = {str(e["requestId"]) for e in entries if isinstance(e, dict) and e.get("requestId")}
        again = sorted(requests_here & seen_requests)
        if digest in seen_pages or again:
            shown = ", ".join(again[:3]) + (" ..." if len(again) > 3 else "")
            raise IncompleteReportError(what, f"the page at offset {offset} repeats an earlier page"
                                              f"{f' (requests {shown})' if again else ''}: the walk would not "
                                              "advance through the window")
        seen_pages.add(digest)
        seen_requests |= requests_here
        pages[f"{stem}_p{len(pages) + 1:03d}.json"] = response.content
        offset, last = offset + count, count
    return pages
