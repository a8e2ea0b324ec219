"""The sandbox's Reporting API: settlement data as CyberSource serves it, built from the sandbox's own batches.

Three read-only endpoints (docs/reporting-api.md and docs/sandbox.md say where they follow CyberSource):

- ``GET /reporting/v3/report-downloads?reportDate=&reportName=`` — a daily Payment Batch Detail
  report, ``text/csv`` (the classic v1.0 CSV) or ``application/xml``. ``reportDate`` is the
  report's *end* date in the subscription's time zone: the day D (00:00 to 24:00) is fetched with
  ``reportDate = D + 1``. The file is the one :func:`~reconkit.sandbox.settlement.generate_settlement`
  writes for that batch date, so downloads and generated files agree byte for byte.
  :meth:`ReportingDesk.add_report` offers a report over several batch dates with injected
  discrepancies (like a one-time report), downloaded with ``reportDate`` the day after the last.
- ``GET /reporting/v3/reports?startTime=&endTime=&reportName=`` — the report instances and their
  ``status`` (``PENDING`` while the day runs, ``RUNNING`` until ``ready_after`` has passed,
  then ``COMPLETED`` or ``NO_DATA``). A download that answers 404 is explained by this list.
- ``GET /reporting/v3/purchase-refund-details?startTime=&endTime=&offset=&limit=`` — the
  credits submitted to the processor whose request time is in ``[startTime, endTime)``, as
  parallel arrays keyed by ``requestId``, paged by ``offset``/``limit`` (1 to 2000).

The subscription's time zone is UTC (the batch cut-off's), the only one the sandbox models.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .settlement import SettlementBundle
    from .state import SandboxState

__all__ = ["PBDR_REPORT_NAME", "ReportingDesk"]

PBDR_REPORT_NAME = "PaymentBatchDetailReport_Daily"
"""The name of the sandbox's predefined daily Payment Batch Detail subscription."""
_FORMATS = {"text/csv": "csv", "application/xml": "xml"}
_MAX_LIMIT = 2000
_STAMP = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class Answer:
    """One HTTP answer: status, body (bytes or a JSON-able dict) and its content type."""

    status: int
    body: Any
    content_type: str = "application/hal+json"


def _problem(now: datetime, status: int, reason: str, message: str, *fields: str) -> Answer:
    # CyberSource's documented 400 shape (submitTimeUtc, status INVALID_REQUEST, reason, message,
    # details[field, reason]); the 404 body is undocumented, so the sandbox uses the same fields for it.
    body: dict[str, Any] = {"submitTimeUtc": now.strftime(_STAMP), "reason": reason, "message": message}
    if status == 400:
        body = {"submitTimeUtc": body["submitTimeUtc"], "status": "INVALID_REQUEST", "reason": reason,
                "message": message}
    if fields:
        body["details"] = [{"field": name, "reason": "INVALID_DATA" if status == 400 else reason} for name in fields]
    return Answer(status, body)


_INVALID = "Declined - One or more fields in the request contains invalid data"


def _instant(text: str) -> datetime:
    """An ISO 8601 instant with a zone (``Z`` or an offset); a naive time, or one whose UTC time
    is not a date (``0001-01-01T00:00:00+01:00``), is refused with ``ValueError``."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("no time zone")
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range") from None


@dataclass(frozen=True)
class _Report:
    """A report subscription: daily (``first`` None) or one report over the batch dates ``first`` to ``last``."""

    name: str
    first: date | None = None
    last: date | None = None
    discrepancies: Mapping[str, float] | None = None
    seed: int = 0
    captures: int = 0

    def window(self, report_date: date) -> tuple[date, date] | None:
        """The batch dates the instance ending at ``report_date`` covers; None if there is none."""
        if self.first is None or self.last is None:
            return report_date - timedelta(days=1), report_date - timedelta(days=1)
        return (self.first, self.last) if report_date == self.last + timedelta(days=1) else None


class ReportingDesk:
    """Answers the Reporting API from a :class:`SandboxState`.

    Parameters
    ----------
    state : SandboxState
    ready_after : timedelta
        How long after the end of its last day (sandbox time) a report becomes downloadable.
    """

    def __init__(self, state: SandboxState, *, ready_after: timedelta = timedelta(hours=2)) -> None:
        self.state = state
        self.ready_after = ready_after
        self._reports: dict[str, _Report] = {PBDR_REPORT_NAME: _Report(PBDR_REPORT_NAME)}
        self._bundles: dict[tuple[str, date, str], SettlementBundle] = {}
        self._failed: set[tuple[str, date]] = set()
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self._lock = threading.Lock()

    def add_report(self, name: str, first: date, last: date, *, discrepancies: Mapping[str, float] | None = None,
                   seed: int = 0, captures: int = 0) -> date:
        """Offer a Payment Batch Detail report over the batch dates ``first`` to ``last``.

        Like a one-time report made in the Business Center; ``discrepancies``, ``seed`` and
        ``captures`` (unrelated capture rows, noise) go to
        :func:`~reconkit.sandbox.settlement.generate_settlement`, so the download carries known
        breaks and :meth:`bundle` holds their ground truth. Returns the ``reportDate`` to
        download it with (the day after ``last``).
        """
        if last < first:
            raise ValueError(f"last ({last}) is before first ({first})")
        self._reports[name] = _Report(name, first, last, dict(discrepancies or {}), seed, captures)
        return last + timedelta(days=1)

    def fail(self, name: str, report_date: date) -> None:
        """Make the report ``name`` of ``report_date`` one CyberSource could not generate: once its
        time has come its status is ``ERROR`` (the Reporting API's word for a failed run), and it
        cannot be downloaded."""
        self._failed.add((name, report_date))

    # --- report instances -------------------------------------------------------------
    def status(self, window: tuple[date, date], name: str | None = None) -> str:
        """The status of the report ``name`` over the batch dates ``window`` at the sandbox's current time."""
        end = datetime.combine(window[1] + timedelta(days=1), time(0), tzinfo=UTC)
        now = self.state.now()
        if now >= end and (name, window[1] + timedelta(days=1)) in self._failed:
            return "ERROR"
        if now < end:
            return "PENDING"
        if now < end + self.ready_after:
            return "RUNNING"
        return "COMPLETED" if any(window[0] <= d <= window[1] for d in self.state.batch_dates()) else "NO_DATA"

    def bundle(self, name: str, report_date: date, format: str = "csv") -> SettlementBundle:
        """The generator's output behind a download: the file and its ground truth.

        The file is named ``<name>_<report_date>.<format>``, the name :func:`reconkit.reporting.download_report`
        saves it under, so the truth's (file, line) keys match the downloaded frame's.
        """
        from .settlement import generate_settlement

        report = self._reports[name]
        window = report.window(report_date)
        if window is None:
            raise KeyError(f"report {name!r} has no instance ending {report_date}")
        key = (name, report_date, format)
        with self._lock:
            if key not in self._bundles:
                if self._folder is None:
                    self._folder = tempfile.TemporaryDirectory(prefix="reconkit-reports-")
                folder = Path(self._folder.name) / f"{len(self._bundles)}"
                self._bundles[key] = generate_settlement(
                    self.state, window, format=f"pbdr_{format}", discrepancies=report.discrepancies,
                    seed=report.seed, captures=report.captures, out_dir=folder, as_of=self.state.now(),
                    filename=f"{name}_{report_date}.{format}")
            return self._bundles[key]

    def close(self) -> None:
        """Remove the generated files."""
        with self._lock:
            if self._folder is not None:
                self._folder.cleanup()
                self._folder = None
            self._bundles.clear()

    # --- endpoints --------------------------------------------------------------------
    def download(self, query: dict[str, list[str]], accept: str) -> Answer:
        """``GET /reporting/v3/report-downloads``."""
        now = self.state.now()
        name, when = query.get("reportName", [""])[0], query.get("reportDate", [""])[0]
        bad = [f for f, ok in (("reportName", bool(name)), ("reportDate", _is_date(when))) if not ok]
        mime = next((m for m in _FORMATS if m in accept), None)
        if bad:
            return _problem(now, 400, "INVALID_DATA", _INVALID, *bad)
        if mime is None:
            return _problem(now, 400, "INVALID_DATA", "Accept must be text/csv or application/xml", "Accept")
        report_date = date.fromisoformat(when)
        try:  # the day before the date and the time after its end must be dates too
            window = self._reports[name].window(report_date) if name in self._reports else None
            status = self.status(window, name) if window is not None else ""
        except OverflowError:
            return _problem(now, 400, "INVALID_DATA", f"{_INVALID}: reportDate {when} is out of range", "reportDate")
        if window is None:
            return _problem(now, 404, "NOT_FOUND", f"No report named {name} for report date {when}")
        if status != "COMPLETED":
            message = {"NO_DATA": "No data for the report date", "ERROR": "The report could not be generated"}.get(
                status, "The report is not available yet")
            return _problem(now, 404, "NOT_FOUND", message)
        return Answer(200, self.bundle(name, report_date, _FORMATS[mime]).files[0].read_bytes(), mime)

    def reports(self, query: dict[str, list[str]]) -> Answer:
        """``GET /reporting/v3/reports``: the instances whose time frame lies in ``[startTime, endTime)``."""
        now = self.state.now()
        start, end, bad = _window(query)
        if bad:
            return _problem(now, 400, "INVALID_DATA", f"{_INVALID}: startTime and endTime must be ISO 8601 "
                            "instants with a zone, endTime after startTime", *bad)
        assert start is not None and end is not None
        try:
            results = self._instances(start, end, query.get("reportName", [None])[0])
        except OverflowError:  # a day or its end past 9999-12-31
            return _problem(now, 400, "INVALID_DATA", f"{_INVALID}: startTime and endTime must lie within the "
                            "years 1 to 9999 with a day to spare", "startTime", "endTime")
        if not results:
            return _problem(now, 404, "NOT_FOUND", "No reports found for the given time range")
        return Answer(200, {"reportSearchResults": results})

    def _instances(self, start: datetime, end: datetime, name: str | None) -> list[dict[str, Any]]:
        """The report instances whose time frame lies in ``[start, end)``."""
        results = []
        for report in self._reports.values():
            if name not in (None, report.name):
                continue
            if report.first is None or report.last is None:
                days = (end.date() - start.date()).days + 1
                windows = [(d, d) for d in (start.date() + timedelta(days=i) for i in range(min(days, 1000)))]
            else:
                windows = [(report.first, report.last)]
            for first, last in windows:
                begins = datetime.combine(first, time(0), tzinfo=UTC)
                ends = datetime.combine(last + timedelta(days=1), time(0), tzinfo=UTC)
                if not (start <= begins and ends <= end):
                    continue
                results.append({
                    "reportDefinitionId": "PaymentBatchDetailClass", "reportName": report.name,
                    "reportMimeType": "text/csv", "reportFrequency": "DAILY" if report.first is None else "ADHOC",
                    "status": self.status((first, last), report.name), "reportStartTime": begins.strftime(_STAMP),
                    "reportEndTime": ends.strftime(_STAMP), "timezone": "UTC",
                    "reportId": f"{report.name}-{last + timedelta(days=1):%Y%m%d}",
                    "organizationId": self.state.merchant_id,
                    "subscriptionType": "PREDEFINED" if report.first is None else "CUSTOM"})
        return results

    def _batch_time(self, credit: dict[str, Any]) -> datetime:
        """When the credit's batch closed: the first cut-off after its batch date began."""
        day = date.fromisoformat(credit["batch_date"])
        cut = datetime.combine(day, self.state.cutoff, tzinfo=UTC)
        return cut if self.state.cutoff != time(0) else cut + timedelta(days=1)

    def purchase_refund_details(self, query: dict[str, list[str]]) -> Answer:
        """``GET /reporting/v3/purchase-refund-details`` (JSON only)."""
        now = self.state.now()
        start, end, bad = _window(query)
        offset, limit = _integer(query, "offset", 0), _integer(query, "limit", _MAX_LIMIT)
        bad += [f for f, ok in (("offset", offset is not None and offset >= 0),
                                ("limit", limit is not None and 1 <= limit <= _MAX_LIMIT)) if not ok]
        if bad:
            return _problem(now, 400, "INVALID_DATA", _INVALID, *bad)
        assert start is not None and end is not None and offset is not None and limit is not None
        view = query.get("viewBy", ["requestDate"])[0]
        if view not in ("requestDate", "submissionDate"):
            return _problem(now, 400, "INVALID_DATA", "viewBy must be requestDate or submissionDate", "viewBy")

        def moment(credit: dict[str, Any]) -> datetime:
            if view == "submissionDate":
                return self._batch_time(credit)
            return datetime.fromisoformat(credit["created_at"])
        submitted = [c for c in self.state.credits() if c["batch_id"] and start <= moment(c) < end]
        if not submitted:
            return _problem(now, 404, "NOT_FOUND", "No data found for the given time range")
        page = submitted[offset: offset + limit]
        merchant = self.state.merchant_id
        details, settlements, statuses = [], [], []
        for credit in page:
            closed = self._batch_time(credit).strftime(_STAMP)
            details.append({"requestId": credit["id"], "cybersourceMerchantId": merchant,
                            "processorMerchantId": merchant, "groupName": merchant,
                            "transactionReferenceNumber": credit["reconciliation_id"],
                            "merchantReferenceNumber": credit["reference_code"]})
            settlements.append({"requestId": credit["id"], "transactionType": "Refunds", "submissionTime": closed,
                                "amount": credit["amount"], "currencyCode": credit["currency"],
                                "paymentMethod": credit["payment_method"], "paymentType": "credit card",
                                "accountSuffix": credit["card_suffix"], "cybersourceBatchTime": closed,
                                "cybersourceBatchId": credit["batch_id"], "cardType": credit["payment_method"]})
            statuses.append({"requestId": credit["id"], "status": "TRANSMITTED", "settlementTime": closed,
                             "reasonCode": "100", "errorText": None})
        return Answer(200, {"offset": offset, "limit": limit, "pageResults": len(page),
                            "requestDetails": details, "settlements": settlements, "authorizations": [],
                            "feeAndFundingDetails": [], "others": [], "settlementStatuses": statuses})


def _window(query: dict[str, list[str]]) -> tuple[datetime | None, datetime | None, list[str]]:
    """``startTime`` and ``endTime`` of a query, and the names of those missing, malformed, out of
    range, or (``endTime``) not after the start."""
    moments: dict[str, datetime] = {}
    bad = []
    for name in ("startTime", "endTime"):
        try:
            moments[name] = _instant(query[name][0])
        except (KeyError, ValueError):
            bad.append(name)
    if not bad and moments["endTime"] <= moments["startTime"]:
        bad.append("endTime")
    return moments.get("startTime"), moments.get("endTime"), bad


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10


_MAX_DIGITS = 18
"""The most digits an integer parameter may have (a 64-bit value; Python's int() refuses 4300)."""


def _integer(query: dict[str, list[str]], name: str, default: int) -> int | None:
    if name not in query:
        return default
    text = query[name][0]
    return int(text) if text.isascii() and text.isdigit() and len(text) <= _MAX_DIGITS else None
