"""Settlement from CyberSource's Reporting API: download, keep the file, read it like an upload.

Two sources (reference: settlement-formats.md §6.1 and §6.2):

- :func:`download_report` — a subscribed report by name and ``reportDate``, e.g. the daily
  Payment Batch Detail report as CSV or XML.
- :func:`purchase_refund_details` — the purchase-and-refund details of a time window, every page.

Each saves exactly the bytes CyberSource sent under ``data_dir`` and returns
:func:`reconkit.read_settlement`'s frame of those files, so every row's ``source_file`` and
``source_line`` point into a file the analyst can open. A report that cannot be downloaded raises
:class:`~reconkit.ReportNotReadyError` or :class:`~reconkit.NoReportDataError` (both :class:`~reconkit.NotFoundError`)
saying which, from the report's status in ``GET /reporting/v3/reports``.
"""

from __future__ import annotations

import os
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import requests

from .client import _RETRY_STATUSES, _retry_after_seconds
from .errors import NetworkError, NoReportDataError, NotFoundError, ReconkitError, ReportNotReadyError, error_for_status
from .settlement import read_settlement

if TYPE_CHECKING:
    import pandas as pd

    from .client import Client

__all__ = ["DEFAULT_DATA_DIR", "NoReportDataError", "ReportNotReadyError", "download_report",
           "purchase_refund_details"]

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


def _save(folder: Path, files: dict[str, bytes]) -> list[Path]:
    """Write every file or none: each goes to a temporary name first, then replaces its target."""
    folder.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[str, Path]] = []
    try:
        for name, data in files.items():
            handle, temp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".part")
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            staged.append((name, Path(temp)))
    except BaseException:
        for _, temp in staged:
            temp.unlink(missing_ok=True)
        raise
    targets = []
    for name, temp in staged:
        target = folder / name
        os.replace(temp, target)
        targets.append(target)
    return targets


def _fetch(client: Client, path: str, accept: str) -> requests.Response:
    """GET with an ``Accept`` header, retried like the client's other GETs (429/502/503/504 and
    transport errors, bounded backoff, re-signed each time); another error status raises at once."""
    deadline = time.monotonic() + client.retry_deadline
    attempt = 0
    while True:
        attempt += 1
        error: ReconkitError
        try:
            response = client.session.get(client.config.base_url + path, headers={"Accept": accept},
                                          timeout=client.timeout)
        except requests.RequestException as exc:
            error = NetworkError(f"GET {path} failed: {type(exc).__name__}", attempts=attempt)
        else:
            if response.status_code == 200:
                return response
            try:
                body: Any = response.json()
            except ValueError:
                body = response.text[:500]
            error = error_for_status(response.status_code, body, method="GET", path=path.split("?")[0],
                                     correlation_id=response.headers.get("v-c-correlation-id"),
                                     retry_after=_retry_after_seconds(response.headers.get("Retry-After")))
            if response.status_code not in _RETRY_STATUSES:
                raise error
        wait = getattr(error, "retry_after", None) or client._backoff(attempt)
        if attempt > client.max_retries or time.monotonic() + wait > deadline:
            raise error
        time.sleep(wait)


def _report_status(client: Client, name: str, day: date) -> str | None:
    """The status of the daily report that ends at ``day``'s start, from ``GET /reporting/v3/reports``."""
    query = urlencode({"startTime": f"{day - timedelta(days=1)}T00:00:00Z", "endTime": f"{day}T00:00:00Z",
                       "timeQueryType": "reportTimeFrame", "reportName": name})
    try:
        listing = _fetch(client, f"/reporting/v3/reports?{query}", "application/hal+json").json()
    except NotFoundError:
        return None
    statuses = [r.get("status") for r in listing.get("reportSearchResults") or [] if r.get("reportName") == name]
    return str(statuses[-1]) if statuses else None


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
    ReportNotReadyError, NoReportDataError
        CyberSource answered 404; the report's status tells which.
    ApiError, NetworkError
    """
    if format not in _MIME:
        raise ValueError(f"format must be 'csv' or 'xml', not {format!r}")
    day = _iso_date(report_date, "report_date")
    accept, reader_format = _MIME[format]
    query = urlencode({"reportDate": day.isoformat(), "reportName": name})
    try:
        response = _fetch(client, f"/reporting/v3/report-downloads?{query}", accept)
    except NotFoundError as missing:
        status = _report_status(client, name, day)
        kind = NoReportDataError if status in (None, "NO_DATA") else ReportNotReadyError
        what = f"report {name!r} for report date {day}"
        reason = "has no data" if status == "NO_DATA" else ("was not found" if status is None
                                                             else f"is not ready yet (status {status})")
        error = kind(missing.http_status, {"reason": missing.reason, "message": f"The {what} {reason}"},
                     correlation_id=missing.correlation_id, method="GET", path="/reporting/v3/report-downloads")
        error.report_status = status  # type: ignore[attr-defined]
        raise error from None
    folder = Path(data_dir) if data_dir is not None else DEFAULT_DATA_DIR
    [path] = _save(folder, {f"{name}_{day}.{format}": response.content})
    return read_settlement(path, reader_format)


def purchase_refund_details(client: Client, start: datetime | str, end: datetime | str, *,
                            data_dir: str | os.PathLike[str] | None = None, view_by: str = "requestDate",
                            limit: int = _PAGE_LIMIT) -> pd.DataFrame:
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
        Page size, 1 to 2000. Pages are requested until one comes back shorter than ``limit``
        (the response carries no total).

    Returns
    -------
    DataFrame
        ``source_file`` is the page's file; ``source_line`` the entry's 1-based position in
        that page's ``settlements``.

    Raises
    ------
    NoReportDataError
        CyberSource has no purchases or refunds in the window (404).
    ApiError, NetworkError
    """
    begin, finish = _instant(start, "start"), _instant(end, "end")
    if finish <= begin:
        raise ValueError(f"end ({finish.isoformat()}) must be after start ({begin.isoformat()})")
    if not 1 <= limit <= _PAGE_LIMIT:
        raise ValueError(f"limit must be between 1 and {_PAGE_LIMIT}, not {limit}")
    stem = f"purchase_refund_details_{_stamp(begin).replace(':', '')}_{_stamp(finish).replace(':', '')}"
    pages: dict[str, bytes] = {}
    offset = 0
    while True:
        query = urlencode({"startTime": _stamp(begin), "endTime": _stamp(finish), "viewBy": view_by,
                           "offset": offset, "limit": limit})
        try:
            body, response = client._get(f"/reporting/v3/purchase-refund-details?{query}")
        except NotFoundError as missing:
            if pages:  # a later page vanishing is not "no data": the pull is incomplete
                raise
            raise NoReportDataError(missing.http_status, missing.body, correlation_id=missing.correlation_id,
                                    method="GET", path="/reporting/v3/purchase-refund-details") from None
        count = int(body.get("pageResults") or 0)
        if count == 0 and pages:
            break
        pages[f"{stem}_p{len(pages) + 1:03d}.json"] = response.content
        if count < limit:
            break
        offset += limit
    folder = Path(data_dir) if data_dir is not None else DEFAULT_DATA_DIR
    paths = _save(folder, pages)
    for stale in folder.glob(f"{stem}_p*.json"):  # pages of an earlier, longer pull of the same window
        if stale.name not in pages:
            stale.unlink()
    return read_settlement(paths, "purchase_refund_json")
