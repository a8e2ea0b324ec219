"""Report subscriptions in any time zone, report definitions, the QUEUED status and
``timeQueryType``, over HTTP against the sandbox.

Expected periods and statuses are computed here from the documented rules (a daily report's
``reportDate`` is the end of its day in the subscription's zone; QUEUED, then RUNNING, then done)
with zoneinfo arithmetic; the sandbox's batch cut-off is midnight UTC, so the batch of day D
closes at D+1 00:00 UTC.
"""

from __future__ import annotations

import ast
import json
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests

from reconkit.auth import http_date, sign_request
from reconkit.errors import InvalidRequestError, NotFoundError
from reconkit.reporting import (
    NoReportDataError,
    ReportNotReadyError,
    report_definitions,
    search_reports,
    subscribe_report,
)
from reconkit.sandbox import Sandbox
from reconkit.sandbox.reporting import PBDR_REPORT_NAME

from .conftest import CARD

D = date(2026, 11, 2)
CLOSE = datetime(2026, 11, 3, 0, 0, tzinfo=UTC)  # when the batch of D closes
TOKYO, NEW_YORK = ZoneInfo("Asia/Tokyo"), ZoneInfo("America/New_York")
SDK_MODELS = Path(__file__).parents[1] / ".venv-sdk/lib/python3.11/site-packages/CyberSource/models"


def local_report_date(close: datetime, zone: ZoneInfo) -> date:
    """The reportDate of the daily report holding a batch that closed at ``close``: the end of
    the local day the close falls in (a close at midnight exactly ends the day before)."""
    local = close.astimezone(zone)
    day = local.date() if local.time() != time(0) else local.date() - timedelta(days=1)
    return day + timedelta(days=1)


def period_end(report_date: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(report_date, time(0), tzinfo=zone).astimezone(UTC)


@pytest.fixture
def sb():
    with Sandbox(start=datetime(2026, 11, 2, 9, 0, tzinfo=UTC), seed=21, report_ready_after=timedelta(hours=2),
                 report_queued_for=timedelta(minutes=30)) as sandbox:
        yield sandbox


@pytest.fixture
def client(sb):
    c = sb.client()
    yield c
    c.close()


def signed(sb: Sandbox, method: str, path: str, body: dict | None = None) -> requests.Response:
    raw = json.dumps(body).encode() if body is not None else None
    headers = sign_request(sb.config, method, path, raw, http_date()) | {"Content-Type": "application/json"}
    return requests.request(method, sb.url + path, headers=headers, data=raw, timeout=10)


def sdk_keys(model: str) -> set[str]:
    """The JSON names of an official SDK model, read from its ``attribute_map`` (the SDK's source)."""
    tree = ast.parse((SDK_MODELS / f"{model}.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "attribute_map":
            return set(ast.literal_eval(node.value).values())
    raise AssertionError(model)


def test_report_definitions_have_the_sdks_shape(client):
    listed = report_definitions(client)
    assert [d["reportDefintionName"] for d in listed] == ["PaymentBatchDetailClass"]
    one = report_definitions(client, "PaymentBatchDetailClass")
    assert {a["id"] for a in one["attributes"]} >= {"request_id", "trans_ref_no", "amount", "currency"}
    if SDK_MODELS.exists():
        assert set(listed[0]) <= sdk_keys("reporting_v3_report_definitions_get200_response_report_definitions")
        assert set(one) == sdk_keys("reporting_v3_report_definitions_name_get200_response")
        assert set(one["attributes"][0]) == sdk_keys("reporting_v3_report_definitions_name_get200_response_attributes")
    with pytest.raises(NotFoundError):
        report_definitions(client, "NoSuchClass")


def test_a_subscription_in_tokyo_holds_the_batch_that_closed_on_its_local_day(sb, client, tmp_path):
    made = [client.create_credit(a, "USD", card=CARD).id for a in ("10.00", "20.00")]
    subscribe_report(client, "Refunds_Tokyo", timezone="Asia/Tokyo")
    subscribe_report(client, "Refunds_NewYork", timezone="America/New_York", format="xml")
    tokyo_date, ny_date = local_report_date(CLOSE, TOKYO), local_report_date(CLOSE, NEW_YORK)
    assert (tokyo_date, ny_date) == (date(2026, 11, 4), date(2026, 11, 3))
    sb.advance(max(period_end(tokyo_date, TOKYO), period_end(ny_date, NEW_YORK)) + timedelta(hours=3) - sb.now())
    tokyo = client.download_report("Refunds_Tokyo", tokyo_date, data_dir=tmp_path)
    new_york = client.download_report("Refunds_NewYork", ny_date, "xml", data_dir=tmp_path)
    assert set(tokyo["request_id"]) == set(new_york["request_id"]) == set(made)
    with pytest.raises(NoReportDataError):  # Tokyo's 2 November: no batch closed in it
        client.download_report("Refunds_Tokyo", tokyo_date - timedelta(days=1), data_dir=tmp_path)
    [listed] = search_reports(client, period_end(tokyo_date - timedelta(days=1), TOKYO),
                              period_end(tokyo_date, TOKYO), time_query_type="reportTimeFrame",
                              name="Refunds_Tokyo")
    assert (listed["timezone"], listed["reportEndTime"], listed["status"]) == \
        ("Asia/Tokyo", "2026-11-03T15:00:00Z", "COMPLETED")


def test_queued_comes_before_running(sb, client, tmp_path):
    client.create_credit("5.00", "USD", card=CARD)
    subscribe_report(client, "Refunds_Tokyo", timezone="Asia/Tokyo")
    report_date = local_report_date(CLOSE, TOKYO)
    ends = period_end(report_date, TOKYO)
    seen = []
    for offset in (timedelta(minutes=-1), timedelta(minutes=10), timedelta(minutes=45), timedelta(hours=2)):
        sb.advance(ends + offset - sb.now())
        try:
            client.download_report("Refunds_Tokyo", report_date, data_dir=tmp_path)
            seen.append("COMPLETED")
        except ReportNotReadyError as waiting:
            seen.append(waiting.report_status)
    assert seen == ["PENDING", "QUEUED", "RUNNING", "COMPLETED"]
    [done] = search_reports(client, ends - timedelta(days=1), ends, time_query_type="reportTimeFrame",
                            name="Refunds_Tokyo")
    assert (done["queuedTime"], done["reportGeneratingTime"], done["reportCompletedTime"]) == \
        ("2026-11-03T15:00:00Z", "2026-11-03T15:30:00Z", "2026-11-03T17:00:00Z")


def test_time_query_type_chooses_between_the_period_and_the_run(sb, client):
    subscribe_report(client, "Refunds_Tokyo", timezone="Asia/Tokyo")
    sb.advance(datetime(2026, 11, 3, 12, 0, tzinfo=UTC) - sb.now())
    start, end = datetime(2026, 11, 3, 0, 0, tzinfo=UTC), datetime(2026, 11, 3, 12, 0, tzinfo=UTC)
    executed = {(r["reportName"], r["reportEndTime"]) for r in search_reports(client, start, end)}
    # run in the window: UTC's 2 November (ends 3 Nov 00:00Z); Tokyo's 3 November ends at 15:00Z, not yet run
    assert executed == {(PBDR_REPORT_NAME, "2026-11-03T00:00:00Z")}
    framed = {(r["reportName"], r["reportEndTime"])
              for r in search_reports(client, start - timedelta(days=1), end + timedelta(hours=6),
                                      time_query_type="reportTimeFrame")}
    # a whole period inside [2 Nov 00:00Z, 3 Nov 18:00Z): UTC's 2 November, and Tokyo's 3 November
    # (2 Nov 15:00Z to 3 Nov 15:00Z), listed though it has not run yet
    assert framed == {(PBDR_REPORT_NAME, "2026-11-03T00:00:00Z"), ("Refunds_Tokyo", "2026-11-03T15:00:00Z")}
    answer = signed(sb, "GET", "/reporting/v3/reports?startTime=2026-11-03T00:00:00Z&endTime=2026-11-03T12:00:00Z")
    assert answer.status_code == 400 and [d["field"] for d in answer.json()["details"]] == ["timeQueryType"]


def test_subscriptions_are_listed_read_and_deleted(sb, client):
    subscribe_report(client, "Refunds_Tokyo", timezone="Asia/Tokyo", fields=["request_id", "amount"])
    listed = signed(sb, "GET", "/reporting/v3/report-subscriptions").json()["subscriptions"]
    assert {s["reportName"]: s["timezone"] for s in listed} == {PBDR_REPORT_NAME: "UTC", "Refunds_Tokyo": "Asia/Tokyo"}
    one = signed(sb, "GET", "/reporting/v3/report-subscriptions/Refunds_Tokyo").json()
    assert one["reportFields"] == ["request_id", "amount"]
    if SDK_MODELS.exists():
        assert set(one) <= sdk_keys("reporting_v3_report_subscriptions_get200_response_subscriptions")
    assert signed(sb, "DELETE", "/reporting/v3/report-subscriptions/Refunds_Tokyo").status_code == 200
    assert signed(sb, "GET", "/reporting/v3/report-subscriptions/Refunds_Tokyo").status_code == 404


GOOD = {"reportDefinitionName": "PaymentBatchDetailClass", "reportFields": ["request_id"],
        "reportMimeType": "text/csv", "reportFrequency": "DAILY", "reportName": "Refunds A",
        "timezone": "Europe/Berlin", "startTime": "0900"}


@pytest.mark.parametrize(("change", "field"), [
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"timezone": None}, "timezone"),
    ({"reportName": "a/b"}, "reportName"),
    ({"reportFrequency": "WEEKLY"}, "reportFrequency"),
    ({"reportMimeType": "application/pdf"}, "reportMimeType"),
    ({"reportDefinitionName": "Nope"}, "reportDefinitionName"),
    ({"startTime": "2400"}, "startTime"),
    ({"reportFields": ["shoe_size"]}, "reportFields"),
])
def test_a_bad_subscription_is_400_naming_the_field(sb, change, field):
    answer = signed(sb, "PUT", "/reporting/v3/report-subscriptions", GOOD | change)
    assert answer.status_code == 400, answer.text
    assert [d["field"] for d in answer.json()["details"]] == [field]
    assert signed(sb, "PUT", "/reporting/v3/report-subscriptions", GOOD).status_code == 200


def test_the_client_refuses_a_time_zone_before_sending(sb, client):
    before = sb.count("PUT", "subscribe")
    with pytest.raises(ValueError, match="Mars/Olympus"):
        subscribe_report(client, "X", timezone="Mars/Olympus")
    assert sb.count("PUT", "subscribe") == before


# --- the standard (new) Payment Batch Detail layout, chosen per subscription ----------------------
STANDARD_FIELDS = ["RequestID", "MerchantID", "LocalizedRequestDate", "TransactionDate", "BatchID", "BatchDate",
                   "Status", "MerchantReferenceNumber", "TransactionReferenceNumber", "Amount", "CurrencyCode"]
"""The reference's standard field set (batch: BatchDate, BatchID, Status; request:
LocalizedRequestDate, MerchantID, RequestID, TransactionDate) plus the custom fields reconciliation
needs, written out here from settlement-formats.md §5.3, not imported."""


def test_a_soapi_subscription_downloads_the_standard_layout_and_a_classic_one_the_classic(sb, client, tmp_path):
    made = {client.create_credit(a, "USD", card=CARD).id: a for a in ("10.00", "20.50")}
    subscribe_report(client, "Refunds_Standard", fields=STANDARD_FIELDS, field_names="SOAPI")
    subscribe_report(client, "Refunds_Classic", field_names="SCMP")
    report_date = local_report_date(CLOSE, ZoneInfo("UTC"))
    sb.advance(period_end(report_date, ZoneInfo("UTC")) + timedelta(hours=3) - sb.now())
    standard = client.download_report("Refunds_Standard", report_date, data_dir=tmp_path)
    classic = client.download_report("Refunds_Classic", report_date, data_dir=tmp_path)
    lines = (tmp_path / f"Refunds_Standard_{report_date}.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("Payment Batch Detail Report,1.0,")
    assert set(STANDARD_FIELDS) <= set(lines[1].split(","))
    assert "request_id" in (tmp_path / f"Refunds_Classic_{report_date}.csv").read_text(encoding="utf-8")
    for frame in (standard, classic):
        assert dict(zip(frame["request_id"], (f"{a:.2f}" for a in frame["amount"].abs()), strict=True)) == made
    listed = signed(sb, "GET", "/reporting/v3/report-subscriptions/Refunds_Standard").json()
    assert listed["reportPreferences"] == {"fieldNameConvention": "SOAPI"}


def test_the_standard_layout_is_refused_for_xml_and_classic_field_names(sb, client):
    with pytest.raises(InvalidRequestError) as xml:
        subscribe_report(client, "Std_Xml", fields=STANDARD_FIELDS, field_names="SOAPI", format="xml")
    assert "reportPreferences.fieldNameConvention applies to text/csv only" in str(xml.value)
    with pytest.raises(InvalidRequestError) as mixed:
        subscribe_report(client, "Std_Mixed", fields=["request_id", "amount"], field_names="SOAPI")
    assert "reportFields" in str(mixed.value) and "RequestID" in str(mixed.value)
    with pytest.raises(ValueError, match="field_names='SOAPI' needs fields"):
        subscribe_report(client, "Std_Nofields", field_names="SOAPI")
