"""The sandbox's Reporting API: settlement data as CyberSource serves it, built from the sandbox's own batches.

Three read-only endpoints (reference: settlement-formats.md §6.1, §6.2):

- ``GET /reporting/v3/report-downloads?reportDate=&reportName=`` — a daily Payment Batch Detail
  report, ``text/csv`` (the classic v1.0 CSV) or ``application/xml``. ``reportDate`` is the
  report's *end* date in the subscription's time zone: the day D (00:00 to 24:00) is fetched with
  ``reportDate = D + 1``. The file is the one :func:`~reconkit.sandbox.settlement.generate_settlement`
  writes for that batch date, so downloads and generated files agree byte for byte.
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
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from .state import SandboxState

__all__ = ["PBDR_REPORT_NAME", "ReportingDesk"]

PBDR_REPORT_NAME = "PaymentBatchDetailReport_Daily"
"""The name of the sandbox's predefined daily Payment Batch Detail subscription."""
_FORMATS = {"text/csv": "pbdr_csv", "application/xml": "pbdr_xml"}
_MAX_LIMIT = 2000
_STAMP = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class Answer:
    """One HTTP answer: status, body (bytes or a JSON-able dict) and its content type."""

    status: int
    body: Any
    content_type: str = "application/hal+json"


def _problem(now: datetime, status: int, reason: str, message: str, *fields: str) -> Answer:
    # The Reporting API's documented 400 shape (submitTimeUtc, reason, message, details[field, reason]);
    # its 404 body is undocumented, so the sandbox uses the same shape for it.
    body: dict[str, Any] = {"submitTimeUtc": now.strftime(_STAMP), "reason": reason, "message": message}
    if fields:
        body["details"] = [{"field": name, "reason": "INVALID_DATA" if status == 400 else reason} for name in fields]
    return Answer(status, body)


def _instant(text: str) -> datetime:
    """An ISO 8601 instant with a zone (``Z`` or an offset); a naive time is refused."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("no time zone")
    return moment.astimezone(UTC)


@dataclass
class ReportingDesk:
    """Answers the Reporting API from a :class:`SandboxState`.

    Parameters
    ----------
    state : SandboxState
    ready_after : timedelta
        How long after the end of its day (sandbox time) a daily report becomes downloadable.
    report_names : tuple of str
        The subscriptions that exist; any other ``reportName`` answers 404.
    """

    state: SandboxState
    ready_after: timedelta = timedelta(hours=2)
    report_names: tuple[str, ...] = (PBDR_REPORT_NAME,)
    _cache: dict[tuple[date, str], bytes] = field(default_factory=dict, repr=False)

    # --- report instances -------------------------------------------------------------
    def status(self, day: date) -> str:
        """The daily report's status for the batch date ``day`` at the sandbox's current time."""
        end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC)
        now = self.state.now()
        if now < end:
            return "PENDING"
        if now < end + self.ready_after:
            return "RUNNING"
        return "COMPLETED" if self._has_batch(day) else "NO_DATA"

    def _has_batch(self, day: date) -> bool:
        return day in self.state.batch_dates()

    def report_file(self, day: date, mime: str) -> bytes:
        """The Payment Batch Detail file for the batch date ``day`` (the generator's own bytes)."""
        from .settlement import generate_settlement

        key = (day, mime)
        if key not in self._cache:
            with tempfile.TemporaryDirectory(prefix="reconkit-report-") as folder:
                bundle = generate_settlement(self.state, (day, day), format=_FORMATS[mime], captures=0,
                                             out_dir=folder, as_of=self.state.now())
                self._cache[key] = bundle.files[0].read_bytes()
        return self._cache[key]

    def _batch_time(self, credit: dict[str, Any]) -> datetime:
        """When the credit's batch closed: the first cut-off after its batch date began."""
        day = date.fromisoformat(credit["batch_date"])
        cut = datetime.combine(day, self.state.cutoff, tzinfo=UTC)
        return cut if self.state.cutoff != time(0) else cut + timedelta(days=1)

    # --- endpoints --------------------------------------------------------------------
    def download(self, query: dict[str, list[str]], accept: str) -> Answer:
        """``GET /reporting/v3/report-downloads``."""
        now = self.state.now()
        name, when = query.get("reportName", [""])[0], query.get("reportDate", [""])[0]
        bad = [f for f, ok in (("reportName", bool(name)), ("reportDate", _is_date(when))) if not ok]
        mime = next((m for m in _FORMATS if m in accept), None)
        if bad:
            return _problem(now, 400, "INVALID_DATA", "Declined - One or more fields in the request contains "
                                                      "invalid data", *bad)
        if mime is None:
            return _problem(now, 400, "INVALID_DATA", "Accept must be text/csv or application/xml", "Accept")
        if name not in self.report_names:
            return _problem(now, 404, "NOT_FOUND", f"No report subscription named {name}")
        day = date.fromisoformat(when) - timedelta(days=1)
        status = self.status(day)
        if status != "COMPLETED":
            message = "No data for the report date" if status == "NO_DATA" else "The report is not available yet"
            return _problem(now, 404, "NOT_FOUND", message)
        return Answer(200, self.report_file(day, mime), mime)

    def reports(self, query: dict[str, list[str]]) -> Answer:
        """``GET /reporting/v3/reports``: the daily instances whose day lies in ``[startTime, endTime)``."""
        now = self.state.now()
        try:
            start, end = _instant(query["startTime"][0]), _instant(query["endTime"][0])
        except (KeyError, ValueError):
            return _problem(now, 400, "INVALID_DATA", "startTime and endTime must be ISO 8601 instants",
                            "startTime", "endTime")
        name = query.get("reportName", [None])[0]
        names = [n for n in self.report_names if name in (None, n)]
        results = []
        day = start.date()
        while datetime.combine(day, time(0), tzinfo=UTC) < end and len(results) < 1000:
            if datetime.combine(day, time(0), tzinfo=UTC) >= start:
                for report in names:
                    results.append({
                        "reportDefinitionId": "PaymentBatchDetailClass", "reportName": report,
                        "reportMimeType": "text/csv", "reportFrequency": "DAILY", "status": self.status(day),
                        "reportStartTime": f"{day}T00:00:00Z", "reportEndTime": f"{day + timedelta(days=1)}T00:00:00Z",
                        "timezone": "UTC", "reportId": f"{report}-{day:%Y%m%d}",
                        "organizationId": self.state.merchant_id, "subscriptionType": "PREDEFINED"})
            day += timedelta(days=1)
        if not results:
            return _problem(now, 404, "NOT_FOUND", "No reports found for the given time range")
        return Answer(200, {"reportSearchResults": results})

    def purchase_refund_details(self, query: dict[str, list[str]]) -> Answer:
        """``GET /reporting/v3/purchase-refund-details`` (JSON only)."""
        now = self.state.now()
        try:
            start, end = _instant(query["startTime"][0]), _instant(query["endTime"][0])
            bad_window = end <= start
        except (KeyError, ValueError):
            bad_window = True
        offset, limit = _integer(query, "offset", 0), _integer(query, "limit", _MAX_LIMIT)
        bad = [f for f, ok in (("startTime", not bad_window), ("offset", offset is not None and offset >= 0),
                               ("limit", limit is not None and 1 <= limit <= _MAX_LIMIT)) if not ok]
        if bad:
            return _problem(now, 400, "INVALID_DATA", "Declined - One or more fields in the request contains "
                                                      "invalid data", *bad)
        assert offset is not None and limit is not None
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


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10


def _integer(query: dict[str, list[str]], name: str, default: int) -> int | None:
    if name not in query:
        return default
    text = query[name][0]
    return int(text) if text.isascii() and text.isdigit() else None
