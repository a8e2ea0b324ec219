"""The sandbox's Reporting API: settlement data as CyberSource serves it, built from the sandbox's own batches.

Three read-only endpoints (docs/reporting-api.md and docs/sandbox.md say where they follow CyberSource):

- ``GET /reporting/v3/report-downloads?reportDate=&reportName=`` — a daily Payment Batch Detail
  report, ``text/csv`` (the classic v1.0 CSV) or ``application/xml``. ``reportDate`` is the
  report's *end* date in the subscription's time zone: the day D (00:00 to 24:00) is fetched with
  ``reportDate = D + 1``. The file is the one :func:`~reconkit.sandbox.settlement.generate_settlement`
  writes for that batch date, so downloads and generated files agree byte for byte.
  :meth:`ReportingDesk.add_report` offers a report over several batch dates with injected
  discrepancies (like a one-time report), downloaded with ``reportDate`` the day after the last.
- ``GET /reporting/v3/reports?startTime=&endTime=&timeQueryType=&reportName=`` — the report
  instances and their ``status``: ``PENDING`` while the period runs, ``QUEUED`` for
  ``queued_for`` after it ends, ``RUNNING`` until ``ready_after`` has passed, then ``COMPLETED``,
  ``NO_DATA`` or (:meth:`ReportingDesk.fail`) ``ERROR`` -- the order of the SDK's ``queuedTime``,
  ``reportGeneratingTime`` and ``reportCompletedTime``. ``timeQueryType=reportTimeFrame`` lists the
  instances whose period lies in ``[startTime, endTime)``; ``executedTime`` those queued (run) in
  it. A download that answers 404 is explained by this list.
- ``PUT /reporting/v3/report-subscriptions`` (any ``reportName``, any tz-database ``timezone``,
  ``DAILY`` only), ``GET /reporting/v3/report-subscriptions[/{name}]``, ``DELETE .../{name}``.
- ``GET /reporting/v3/report-definitions[/{name}]`` — the one class the sandbox can generate,
  ``PaymentBatchDetailClass``, in the SDK model's shape (``reportDefintionName``, sic).
- ``GET /reporting/v3/purchase-refund-details?startTime=&endTime=&offset=&limit=`` — the
  credits submitted to the processor whose request time is in ``[startTime, endTime)``, as
  parallel arrays keyed by ``requestId``, paged by ``offset``/``limit`` (1 to 2000).

The batch cut-off is UTC. A daily subscription in time zone Z has, for each ``reportDate`` R,
the period from R-1 00:00 to R 00:00 in Z; it holds the batch that *closed* in that period
(a batch closing at midnight exactly belongs to the day that just ended) -- the sandbox's
choice where the documentation is silent. The file's own timestamps stay UTC.
"""

from __future__ import annotations

import re
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .settlement import PBDR_NEW_HEADER

if TYPE_CHECKING:
    from .settlement import SettlementBundle
    from .state import SandboxState

__all__ = ["PBDR_DEFINITION", "PBDR_FIELDS", "PBDR_REPORT_NAME", "ReportingDesk"]

PBDR_REPORT_NAME = "PaymentBatchDetailReport_Daily"
"""The name of the sandbox's predefined daily Payment Batch Detail subscription."""
PBDR_DEFINITION = "PaymentBatchDetailClass"
"""The report definition the sandbox generates (the classic Payment Batch Detail layout)."""
PBDR_FIELDS = ("batch_id", "merchant_id", "batch_date", "request_id", "merchant_ref_number", "trans_ref_no",
               "payment_method", "currency", "amount", "transaction_type")
"""The columns of the sandbox's Payment Batch Detail file, offered as the definition's attributes."""
_FORMATS = {"text/csv": "csv", "application/xml": "xml"}
_REPORT_NAME = re.compile(r"[A-Za-z0-9_ -]{1,128}")
"""A subscription name: the SDK documents none, CyberSource's UI allows letters, digits, ``_``, ``-``, space."""
_HHMM = re.compile(r"([01]\d|2[0-3])[0-5]\d")
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
    timezone: str = "UTC"
    mime: str = "text/csv"
    start_time: str = "0000"
    fields: tuple[str, ...] = field(default=PBDR_FIELDS)
    subscription_type: str = "PREDEFINED"
    convention: str | None = None
    """``reportPreferences.fieldNameConvention``: ``"SOAPI"`` is the standard (new) layout's
    field names (``RequestID``); ``"SCMP"`` or none, the classic layout's (``request_id``)."""

    @property
    def writer(self) -> str:
        """The settlement generator's format for a download of this report in ``format``."""
        return "pbdr_new_csv" if self.convention == "SOAPI" else f"pbdr_{_FORMATS[self.mime]}"

    def frame(self, report_date: date) -> tuple[datetime, datetime] | None:
        """The period (UTC instants) of the instance ending at ``report_date``; None if there is none."""
        if self.first is None or self.last is None:
            zone = ZoneInfo(self.timezone)
            begins = datetime.combine(report_date - timedelta(days=1), time(0), tzinfo=zone)
            ends = datetime.combine(report_date, time(0), tzinfo=zone)
            return begins.astimezone(UTC), ends.astimezone(UTC)
        if report_date != self.last + timedelta(days=1):
            return None
        return (datetime.combine(self.first, time(0), tzinfo=UTC),
                datetime.combine(report_date, time(0), tzinfo=UTC))


class ReportingDesk:
    """Answers the Reporting API from a :class:`SandboxState`.

    Parameters
    ----------
    state : SandboxState
    ready_after : timedelta
        How long after the end of its period (sandbox time) a report becomes downloadable.
    queued_for : timedelta
        How long of that a report is ``QUEUED`` before it is ``RUNNING`` (at most ``ready_after``).
    """

    def __init__(self, state: SandboxState, *, ready_after: timedelta = timedelta(hours=2),
                 queued_for: timedelta = timedelta(minutes=30)) -> None:
        self.state = state
        self.ready_after = ready_after
        self.queued_for = min(queued_for, ready_after)
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
        self._reports[name] = _Report(name, first, last, dict(discrepancies or {}), seed, captures,
                                      subscription_type="CUSTOM")
        return last + timedelta(days=1)

    def fail(self, name: str, report_date: date) -> None:
        """Make the report ``name`` of ``report_date`` one CyberSource could not generate: once its
        run is over its status is ``ERROR`` (the Reporting API's word for a failed run), and it
        cannot be downloaded."""
        self._failed.add((name, report_date))

    # --- report instances -------------------------------------------------------------
    def _close(self, batch_date: date) -> datetime:
        """When the batch of ``batch_date`` closes: the first cut-off after that date began."""
        cut = datetime.combine(batch_date, self.state.cutoff, tzinfo=UTC)
        return cut if self.state.cutoff != time(0) else cut + timedelta(days=1)

    def _batches(self, report: _Report, report_date: date) -> tuple[date, date] | None:
        """The batch dates (first, last) the instance ending at ``report_date`` holds; None if none."""
        if report.first is not None and report.last is not None:
            return report.first, report.last
        frame = report.frame(report_date)
        assert frame is not None
        days = [frame[0].date() + timedelta(days=i) for i in range(-2, 3)]
        held = [d for d in days if frame[0] < self._close(d) <= frame[1]]
        return (held[0], held[-1]) if held else None

    def _status(self, report: _Report, report_date: date) -> str:
        """The status of the instance of ``report`` ending at ``report_date``, at the sandbox's current time."""
        frame = report.frame(report_date)
        assert frame is not None
        now, ends = self.state.now(), frame[1]
        if now < ends:
            return "PENDING"
        if now < ends + self.queued_for:
            return "QUEUED"
        if now < ends + self.ready_after:
            return "RUNNING"
        if (report.name, report_date) in self._failed:
            return "ERROR"
        held = self._batches(report, report_date)
        if held is None:
            return "NO_DATA"
        return "COMPLETED" if any(held[0] <= d <= held[1] for d in self.state.batch_dates()) else "NO_DATA"

    def bundle(self, name: str, report_date: date, format: str = "csv") -> SettlementBundle:
        """The generator's output behind a download: the file and its ground truth.

        The file is named ``<name>_<report_date>.<format>``, the name :func:`reconkit.reporting.download_report`
        saves it under, so the truth's (file, line) keys match the downloaded frame's.
        """
        from .settlement import generate_settlement

        report = self._reports[name]
        window = self._batches(report, report_date) if report.frame(report_date) is not None else None
        if window is None:
            raise KeyError(f"report {name!r} has no instance ending {report_date} that holds a batch")
        key = (name, report_date, format)
        with self._lock:
            if key not in self._bundles:
                if self._folder is None:
                    self._folder = tempfile.TemporaryDirectory(prefix="reconkit-reports-")
                folder = Path(self._folder.name) / f"{len(self._bundles)}"
                layout = report.writer if format == _FORMATS[report.mime] else f"pbdr_{format}"
                self._bundles[key] = generate_settlement(
                    self.state, window, format=layout, discrepancies=report.discrepancies,
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
    def answer(self, endpoint: str, query: dict[str, list[str]], body: dict[str, Any], name: str,
               accept: str) -> Answer:
        """Route one Reporting API call (``endpoint`` as the server names it)."""
        if endpoint == "report_download":
            return self.download(query, accept)
        if endpoint == "reports":
            return self.reports(query)
        if endpoint == "purchase_refund_details":
            return self.purchase_refund_details(query)
        if endpoint == "report_definitions":
            return self.definitions(query)
        if endpoint == "report_definition":
            return self.definition(unquote(name), query)
        if endpoint == "subscribe":
            return self.subscribe(body)
        if endpoint == "subscriptions":
            return Answer(200, {"subscriptions": [self._subscription(r) for r in self._reports.values()
                                                  if r.first is None]})
        if endpoint in ("subscription", "unsubscribe"):
            report = self._reports.get(unquote(name))
            if report is None or report.first is not None:
                return _problem(self.state.now(), 404, "NOT_FOUND", f"No report subscription named {unquote(name)}")
            if endpoint == "subscription":
                return Answer(200, self._subscription(report))
            del self._reports[report.name]
            return Answer(200, b"", "application/hal+json")
        raise KeyError(endpoint)

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
        report = self._reports.get(name)
        try:  # the day before the date and the time after its end must be dates too
            frame = report.frame(report_date) if report is not None else None
            status = self._status(report, report_date) if report is not None and frame is not None else ""
        except OverflowError:
            return _problem(now, 400, "INVALID_DATA", f"{_INVALID}: reportDate {when} is out of range", "reportDate")
        if frame is None:
            return _problem(now, 404, "NOT_FOUND", f"No report named {name} for report date {when}")
        if status != "COMPLETED":
            message = {"NO_DATA": "No data for the report date", "ERROR": "The report could not be generated"}.get(
                status, "The report is not available yet")
            return _problem(now, 404, "NOT_FOUND", message)
        return Answer(200, self.bundle(name, report_date, _FORMATS[mime]).files[0].read_bytes(), mime)

    def reports(self, query: dict[str, list[str]]) -> Answer:
        """``GET /reporting/v3/reports``: the instances whose period (``timeQueryType=reportTimeFrame``)
        or run (``executedTime``: queued at the end of the period, and already queued) lies in
        ``[startTime, endTime)``."""
        now = self.state.now()
        start, end, bad = _window(query)
        kind = query.get("timeQueryType", [""])[0]
        if kind not in ("reportTimeFrame", "executedTime"):
            bad.append("timeQueryType")
        if bad:
            return _problem(now, 400, "INVALID_DATA", f"{_INVALID}: startTime and endTime must be ISO 8601 "
                            "instants with a zone, endTime after startTime; timeQueryType reportTimeFrame or "
                            "executedTime", *bad)
        assert start is not None and end is not None
        try:
            results = self._instances(start, end, query.get("reportName", [None])[0], executed=kind == "executedTime")
        except OverflowError:  # a day or its end past 9999-12-31
            return _problem(now, 400, "INVALID_DATA", f"{_INVALID}: startTime and endTime must lie within the "
                            "years 1 to 9999 with a day to spare", "startTime", "endTime")
        if not results:
            return _problem(now, 404, "NOT_FOUND", "No reports found for the given time range")
        return Answer(200, {"reportSearchResults": results})

    def _instances(self, start: datetime, end: datetime, name: str | None, *,
                   executed: bool = False) -> list[dict[str, Any]]:
        """The report instances whose period (or, ``executed``, whose queued time) lies in ``[start, end)``."""
        results = []
        now = self.state.now()
        for report in self._reports.values():
            if name not in (None, report.name):
                continue
            if report.first is None or report.last is None:
                # every local day whose end could fall in the window, with a day to spare each side
                days = (end.date() - start.date()).days + 3
                dates = [start.date() + timedelta(days=i) for i in range(min(days, 1000))]
            else:
                dates = [report.last + timedelta(days=1)]
            for report_date in dates:
                frame = report.frame(report_date)
                assert frame is not None
                begins, ends = frame
                inside = (start <= ends < end and ends <= now) if executed else (start <= begins and ends <= end)
                if not inside:
                    continue
                status = self._status(report, report_date)
                moments = {"queuedTime": ends, "reportGeneratingTime": ends + self.queued_for,
                           "reportCompletedTime": ends + self.ready_after}
                reached = {"PENDING": 0, "QUEUED": 1, "RUNNING": 2}.get(status, 3)
                results.append({
                    "reportDefinitionId": PBDR_DEFINITION, "reportName": report.name,
                    "reportMimeType": report.mime, "reportFrequency": "DAILY" if report.first is None else "ADHOC",
                    "status": status, "reportStartTime": begins.strftime(_STAMP),
                    "reportEndTime": ends.strftime(_STAMP), "timezone": report.timezone,
                    "reportId": f"{report.name}-{report_date:%Y%m%d}".replace(" ", "_"),
                    "organizationId": self.state.merchant_id,
                    **{key: moment.strftime(_STAMP) for key, moment in list(moments.items())[:reached]},
                    "subscriptionType": report.subscription_type})
        return results

    # --- subscriptions and definitions ------------------------------------------------
    def subscribe(self, body: dict[str, Any]) -> Answer:
        """``PUT /reporting/v3/report-subscriptions``: create or replace a daily subscription."""
        now = self.state.now()
        name, zone, mime = body.get("reportName"), body.get("timezone"), body.get("reportMimeType")
        preferences = body.get("reportPreferences")
        convention = preferences.get("fieldNameConvention") if isinstance(preferences, dict) else None
        fields = PBDR_NEW_HEADER if convention == "SOAPI" else PBDR_FIELDS
        checks = [
            ("reportPreferences", preferences is None or isinstance(preferences, dict),
             "reportPreferences must be an object"),
            ("reportPreferences.fieldNameConvention", convention in (None, "SOAPI", "SCMP"),
             "reportPreferences.fieldNameConvention must be SOAPI or SCMP"),
            ("reportPreferences.fieldNameConvention", convention != "SOAPI" or mime == "text/csv",
             "reportPreferences.fieldNameConvention applies to text/csv only"),
            ("reportDefinitionName", body.get("reportDefinitionName") == PBDR_DEFINITION,
             f"reportDefinitionName must be {PBDR_DEFINITION} (the only class the sandbox generates)"),
            ("reportName", isinstance(name, str) and _REPORT_NAME.fullmatch(name) is not None,
             "reportName must be 1 to 128 letters, digits, '_', '-' or spaces"),
            ("reportMimeType", mime in _FORMATS, "reportMimeType must be text/csv or application/xml"),
            ("reportFrequency", body.get("reportFrequency") == "DAILY",
             "reportFrequency must be DAILY (the only frequency the sandbox models)"),
            ("timezone", _zone(zone), "timezone must be a tz-database name such as America/New_York"),
            ("startTime", isinstance(body.get("startTime"), str) and _HHMM.fullmatch(body["startTime"]) is not None,
             "startTime must be hhmm"),
            ("reportFields", isinstance(body.get("reportFields"), list) and bool(body["reportFields"])
             and all(f in fields for f in body["reportFields"]),
             f"reportFields must name columns of {PBDR_DEFINITION}"
             f"{' (fieldNameConvention SOAPI)' if convention == 'SOAPI' else ''}: {', '.join(fields)}"),
        ]
        bad = [(field_name, why) for field_name, ok, why in checks if not ok]
        if not bad and name in self._reports and self._reports[name].first is not None:
            bad.append(("reportName", f"reportName {name!r} is taken by a one-time report"))
        if bad:
            return _problem(now, 400, "INVALID_DATA", f"{_INVALID}: " + "; ".join(why for _, why in bad),
                            *(f for f, _ in bad))
        self._reports[name] = _Report(name, timezone=zone, mime=mime, start_time=body["startTime"],
                                      fields=tuple(body["reportFields"]), subscription_type="CUSTOM",
                                      convention=convention)
        return Answer(200, b"", "application/hal+json")

    def _subscription(self, report: _Report) -> dict[str, Any]:
        return {"organizationId": self.state.merchant_id, "reportDefinitionId": PBDR_DEFINITION,
                "reportDefinitionName": PBDR_DEFINITION, "reportMimeType": report.mime,
                "reportFrequency": "DAILY", "reportName": report.name, "timezone": report.timezone,
                "startTime": report.start_time, "reportFields": list(report.fields),
                **({"reportPreferences": {"fieldNameConvention": report.convention}} if report.convention else {})}

    def _definition(self, attributes: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": "TransactionDetailReport", "reportDefinitionId": 210,  # an int in the SDK model
            "reportDefintionName": PBDR_DEFINITION,  # the SDK model's spelling
            "supportedFormats": list(_FORMATS), "description": "Payment Batch Detail Report (classic layout)",
            "defaultSettings": {"reportMimeType": "text/csv", "reportFrequency": "DAILY",
                                "reportName": PBDR_REPORT_NAME, "timezone": "UTC", "startTime": "0000"},
            "subscriptionType": "CLASSIC"}
        if attributes:
            body["attributes"] = [{"id": column, "name": column, "description": f"the {column} column",
                                   "filterType": "", "default": True, "required": column == "request_id",
                                   "supportedType": "text/csv,application/xml"} for column in PBDR_FIELDS]
        return body

    def definitions(self, query: dict[str, list[str]]) -> Answer:
        """``GET /reporting/v3/report-definitions``."""
        kind = query.get("subscriptionType", ["CLASSIC"])[0]
        if kind not in ("CLASSIC", "CUSTOM", "STANDARD"):
            return _problem(self.state.now(), 400, "INVALID_DATA",
                            f"{_INVALID}: subscriptionType must be CLASSIC, CUSTOM or STANDARD", "subscriptionType")
        return Answer(200, {"reportDefinitions": [self._definition(False)] if kind != "STANDARD" else []})

    def definition(self, name: str, query: dict[str, list[str]]) -> Answer:
        """``GET /reporting/v3/report-definitions/{name}``."""
        mime = query.get("reportMimeType", ["text/csv"])[0]
        if mime not in _FORMATS:
            return _problem(self.state.now(), 400, "INVALID_DATA",
                            f"{_INVALID}: reportMimeType must be text/csv or application/xml", "reportMimeType")
        if name != PBDR_DEFINITION:
            return _problem(self.state.now(), 404, "NOT_FOUND", f"No report definition named {name}")
        return Answer(200, self._definition(True))

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


def _zone(name: object) -> bool:
    if not isinstance(name, str) or not name:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


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
