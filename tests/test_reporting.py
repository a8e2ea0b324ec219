"""The Reporting API as a settlement source, over HTTP against the sandbox.

Expected rows are derived from the sandbox's own credits (creation time against the 00:00 UTC
cut-off) and from the settlement generator, never from the code under test.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconkit import Client, DeclinedError, InvalidRequestError, reconcile
from reconkit.auth import http_date, sign_request
from reconkit.reporting import NoReportDataError, ReportFailedError, ReportNotReadyError
from reconkit.sandbox import FaultPlan, Sandbox
from reconkit.sandbox.reporting import PBDR_REPORT_NAME

from .conftest import CARD, examples

DAY = date(2026, 11, 2)
MIDNIGHT = datetime(2026, 11, 3, 0, 0, tzinfo=UTC)


def _issue(client, amount: str = "10.00", currency: str = "USD"):
    return client.create_credit(amount, currency, card=CARD)


@pytest.fixture(scope="module")
def world():
    """Credits on 2 November (one a second before midnight, one declined, one voided), one at
    midnight exactly and two on 3 November; the clock then stands at 4 November 03:00."""
    with Sandbox(start=datetime(2026, 11, 2, 9, 0, tzinfo=UTC), seed=5) as sb:
        client = sb.client()
        early = [_issue(client, a, c) for a, c in (("10.00", "USD"), ("25.50", "EUR"), ("700", "JPY"))]
        with pytest.raises(DeclinedError):
            _issue(client, "2005.00")  # declined: never submitted
        client.void_credit(_issue(client, "4.00"))
        sb.advance(MIDNIGHT - timedelta(seconds=1) - sb.now())
        last_second = _issue(client, "11.11")
        sb.advance(seconds=1)
        at_midnight = _issue(client, "12.12")
        sb.advance(hours=10)
        later = [_issue(client, "13.13"), _issue(client, "14.14", "GBP")]
        sb.advance(datetime(2026, 11, 4, 3, 0, tzinfo=UTC) - sb.now())
        ids = {"early": [c.id for c in early], "last_second": last_second.id, "at_midnight": at_midnight.id,
               "later": [c.id for c in later]}
        yield sb, client, ids


def _batched_on(sb: Sandbox, day: date) -> set[str]:
    """Credits a correct daily report contains: submitted, created before that day's cut-off."""
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    return {c["id"] for c in sb.credits() if c["status"] not in ("DECLINED", "VOIDED")
            and start <= datetime.fromisoformat(c["created_at"]) < start + timedelta(days=1)}


@pytest.mark.parametrize("format", ["csv", "xml"])
def test_daily_report_is_the_generators_file_for_the_day_before_report_date(world, tmp_path, format):
    sb, client, ids = world
    frame = client.download_report(PBDR_REPORT_NAME, "2026-11-03", format, data_dir=tmp_path)
    saved = tmp_path / f"{PBDR_REPORT_NAME}_2026-11-03.{format}"
    generated = sb.settlement((DAY, DAY), format=f"pbdr_{format}", captures=0, out_dir=tmp_path / "gen",
                              filename=saved.name)
    assert saved.read_bytes() == generated.files[0].read_bytes()
    assert set(frame["request_id"]) == _batched_on(sb, DAY)
    assert ids["last_second"] in set(frame["request_id"]) and ids["at_midnight"] not in set(frame["request_id"])
    assert set(frame["source_file"].map(lambda p: Path(p).name)) == {saved.name}
    lines = saved.read_text().splitlines()
    for request_id, line in zip(frame["request_id"], frame["source_line"], strict=True):
        assert request_id in "\n".join(lines[line - 1: line + 1]), (request_id, line)


def test_report_date_is_the_end_date_so_midnight_belongs_to_the_next_report(world, tmp_path):
    sb, client, ids = world
    frame = client.download_report(PBDR_REPORT_NAME, date(2026, 11, 4), data_dir=tmp_path)
    assert set(frame["request_id"]) == _batched_on(sb, date(2026, 11, 3)) == {ids["at_midnight"], *ids["later"]}


def test_report_not_ready_then_ready(tmp_path):
    with Sandbox(start=datetime(2026, 11, 2, 9, 0, tzinfo=UTC), seed=6, report_ready_after=timedelta(hours=2)) as fresh:
        other = fresh.client()
        _issue(other)
        with pytest.raises(ReportNotReadyError, match="PENDING") as pending:
            other.download_report(PBDR_REPORT_NAME, "2026-11-03", data_dir=tmp_path)
        assert pending.value.report_status == "PENDING" and pending.value.http_status == 404
        fresh.advance(MIDNIGHT + timedelta(hours=1) - fresh.now())
        with pytest.raises(ReportNotReadyError, match="RUNNING"):
            other.download_report(PBDR_REPORT_NAME, "2026-11-03", data_dir=tmp_path)
        assert not list(tmp_path.iterdir()), "a report that was not ready left a file behind"
        fresh.advance(hours=1)
        assert len(other.download_report(PBDR_REPORT_NAME, "2026-11-03", data_dir=tmp_path)) == 1


def test_a_report_cybersource_failed_to_generate_is_an_error_of_its_own_not_a_wait(tmp_path):
    with Sandbox(start=datetime(2026, 11, 2, 9, 0, tzinfo=UTC), seed=6, report_ready_after=timedelta(hours=2)) as fresh:
        other = fresh.client()
        _issue(other)
        fresh.reporting.fail(PBDR_REPORT_NAME, date(2026, 11, 3))
        with pytest.raises(ReportNotReadyError, match="PENDING"):  # its day is not over: not failed yet
            other.download_report(PBDR_REPORT_NAME, "2026-11-03", data_dir=tmp_path)
        fresh.advance(MIDNIGHT + timedelta(hours=5) - fresh.now())
        with pytest.raises(ReportFailedError, match="status ERROR") as failed:
            other.download_report(PBDR_REPORT_NAME, "2026-11-03", data_dir=tmp_path)
        assert not isinstance(failed.value, ReportNotReadyError | NoReportDataError)
        assert failed.value.report_status == "ERROR" and failed.value.http_status == 404
        assert "waiting will not bring it" in str(failed.value)
        assert not list(tmp_path.iterdir())


def test_no_data_and_unknown_report(world, tmp_path):
    _, client, _ = world
    with pytest.raises(NoReportDataError, match="has no data") as empty:
        client.download_report(PBDR_REPORT_NAME, "2026-11-02", data_dir=tmp_path)
    assert empty.value.report_status == "NO_DATA"
    with pytest.raises(NoReportDataError, match="was not found"):
        client.download_report("NoSuchReport", "2026-11-03", data_dir=tmp_path)
    assert not list(tmp_path.iterdir())


def test_a_second_download_replaces_the_first(world, tmp_path):
    _, client, _ = world
    first = client.download_report(PBDR_REPORT_NAME, "2026-11-03", data_dir=tmp_path)
    second = client.download_report(PBDR_REPORT_NAME, "2026-11-03", data_dir=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [f"{PBDR_REPORT_NAME}_2026-11-03.csv"]
    assert first.equals(second)


@pytest.mark.parametrize("limit", [1, 2, 3, 2000])
def test_purchase_refund_details_pages_through_the_window(world, tmp_path, limit):
    sb, client, _ = world
    before = sb.count("GET", "purchase_refund_details")
    frame = client.purchase_refund_details("2026-11-02T00:00:00Z", datetime(2026, 11, 4, tzinfo=UTC),
                                           data_dir=tmp_path, limit=limit)
    expected = _batched_on(sb, DAY) | _batched_on(sb, date(2026, 11, 3))
    assert sorted(frame["request_id"]) == sorted(expected)  # each once: no page repeated or skipped
    pages = sorted(tmp_path.glob("purchase_refund_details_*.json"))
    full, rest = divmod(len(expected), limit)
    assert len(pages) == full + (rest > 0)
    # One more request than pages: only an empty page proves that nothing follows (a server may
    # cap its pages below the limit asked for, so a short page proves nothing).
    assert sb.count("GET", "purchase_refund_details") - before == len(pages) + 1
    for path, line, request_id in zip(frame["source_file"], frame["source_line"], frame["request_id"], strict=True):
        document = json.loads(Path(path).read_bytes())
        assert document["settlements"][line - 1]["requestId"] == request_id
    assert set(frame["direction"]) == {"credit"}


def test_purchase_refund_details_window_boundaries(world, tmp_path):
    sb, client, ids = world
    frame = client.purchase_refund_details(datetime(2026, 11, 2, tzinfo=UTC), MIDNIGHT, data_dir=tmp_path)
    assert set(frame["request_id"]) == _batched_on(sb, DAY)
    assert ids["last_second"] in set(frame["request_id"]) and ids["at_midnight"] not in set(frame["request_id"])
    frame = client.purchase_refund_details(MIDNIGHT, MIDNIGHT + timedelta(seconds=1), data_dir=tmp_path)
    assert list(frame["request_id"]) == [ids["at_midnight"]]


def test_purchase_refund_details_amounts_agree_with_the_credits(world, tmp_path):
    sb, client, _ = world
    frame = client.purchase_refund_details("2026-11-01T00:00:00Z", "2026-11-05T00:00:00Z", data_dir=tmp_path)
    held = {c["id"]: c for c in sb.credits()}
    for row in frame.itertuples():
        credit = held[row.request_id]
        assert (Decimal(str(row.amount)), row.currency, row.reconciliation_id, row.batch_id) == \
            (Decimal(credit["amount"]), credit["currency"], credit["reconciliation_id"], credit["batch_id"])


def test_a_shorter_pull_of_the_same_window_removes_the_longer_pulls_pages(world, tmp_path):
    _, client, _ = world
    window = ("2026-11-02T00:00:00Z", "2026-11-04T00:00:00Z")
    client.purchase_refund_details(*window, data_dir=tmp_path, limit=1)
    assert len(list(tmp_path.glob("*.json"))) > 1
    frame = client.purchase_refund_details(*window, data_dir=tmp_path)
    assert len(list(tmp_path.glob("*.json"))) == 1
    assert set(frame["source_file"]) == {str(next(tmp_path.glob("*.json")))}


def test_purchase_refund_details_with_no_data(world, tmp_path):
    _, client, _ = world
    with pytest.raises(NoReportDataError):
        client.purchase_refund_details("2026-10-01T00:00:00Z", "2026-10-02T00:00:00Z", data_dir=tmp_path)
    assert not list(tmp_path.iterdir())


def test_reconciling_against_the_api_agrees_with_the_ground_truth(world, tmp_path):
    sb, client, _ = world
    name = f"{PBDR_REPORT_NAME}_2026-11-03.csv"
    settlement = client.download_report(PBDR_REPORT_NAME, "2026-11-03", data_dir=tmp_path)
    credits = client.fetch_credits([c["id"] for c in sb.credits()], progress=False).to_frame()
    truth = sb.settlement((DAY, DAY), format="pbdr_csv", captures=0, out_dir=tmp_path / "truth", filename=name)
    result = reconcile(credits, settlement, as_of=truth.as_of, grace_days=truth.grace_days)
    assert truth.disagreements(result).empty
    # 2 November's settled credits match, its declined and voided ones are rightly absent, 3 November's pend.
    assert truth.outcome_counts() == {"MATCHED": 2 * len(_batched_on(sb, DAY)), "NO_SETTLEMENT_EXPECTED": 2,
                                      "MISSING_PENDING": 3}


def test_bad_arguments_name_themselves(world, tmp_path):
    _, client, _ = world
    with pytest.raises(ValueError, match="format"):
        client.download_report(PBDR_REPORT_NAME, "2026-11-03", "pdf", data_dir=tmp_path)
    with pytest.raises(ValueError, match="report_date"):
        client.download_report(PBDR_REPORT_NAME, "03/11/2026", data_dir=tmp_path)
    with pytest.raises(ValueError, match="start has no time zone"):
        client.purchase_refund_details(datetime(2026, 11, 2), MIDNIGHT, data_dir=tmp_path)
    with pytest.raises(ValueError, match=r"end .* must be after start"):
        client.purchase_refund_details(MIDNIGHT, MIDNIGHT, data_dir=tmp_path)
    with pytest.raises(ValueError, match="limit"):
        client.purchase_refund_details(MIDNIGHT - timedelta(days=1), MIDNIGHT, data_dir=tmp_path, limit=2001)


@pytest.mark.parametrize(("path", "field"), [
    (f"/reporting/v3/report-downloads?reportDate=20261103&reportName={PBDR_REPORT_NAME}", "reportDate"),
    ("/reporting/v3/report-downloads?reportDate=2026-11-03", "reportName"),
    ("/reporting/v3/purchase-refund-details?startTime=2026-11-02T00:00:00Z&endTime=2026-11-03T00:00:00Z&limit=0",
     "limit"),
    ("/reporting/v3/purchase-refund-details?startTime=2026-11-02T00:00:00&endTime=2026-11-03T00:00:00Z",
     "startTime"),
    ("/reporting/v3/purchase-refund-details?startTime=2026-11-02T00:00:00Z&endTime=2026-11-03T00:00:00Z"
     "&offset=-1", "offset"),
])
def test_sandbox_refuses_bad_reporting_queries_naming_the_field(world, path, field):
    sb, _, _ = world
    headers = sign_request(sb.config, "GET", path, None, http_date()) | {"Accept": "text/csv"}
    answer = requests.get(sb.url + path, headers=headers, timeout=10)
    assert answer.status_code == 400
    error = InvalidRequestError(400, answer.json())
    assert [d["field"] for d in error.details] == [field]


def test_a_multi_day_report_with_injected_breaks_reconciles_to_its_ground_truth(world, tmp_path):
    sb, client, _ = world
    name = "PaymentBatchDetailReport_Nov"
    report_date = sb.reporting.add_report(name, DAY, date(2026, 11, 3), seed=3,
                                          discrepancies={"amount": 1, "duplicate": 1, "unexpected": 2})
    assert report_date == date(2026, 11, 4)
    settlement = client.download_report(name, report_date, data_dir=tmp_path)
    truth = sb.reporting.bundle(name, report_date)
    assert (tmp_path / f"{name}_2026-11-04.csv").read_bytes() == truth.files[0].read_bytes()
    assert truth.injected == {"amount": 1, "duplicate": 1, "unexpected": 2}
    credits = client.fetch_credits([c["id"] for c in sb.credits()], progress=False).to_frame()
    result = reconcile(credits, settlement, as_of=truth.as_of, grace_days=truth.grace_days)
    assert truth.disagreements(result).empty
    assert {"AMOUNT_MISMATCH", "DUPLICATE_SETTLEMENT", "UNEXPECTED_SETTLEMENT"} <= set(result.credits["outcome"]) \
        | set(result.settlement["outcome"])
    with pytest.raises(NoReportDataError, match="was not found"):
        client.download_report(name, "2026-11-03", data_dir=tmp_path)


def test_the_demo_pulls_its_settlement_through_the_reporting_api(tmp_path, capsys):
    from reconkit.demo import run_demo

    assert run_demo(tmp_path, credits=60, seed=4, execute_notebook=False) == 0
    said = capsys.readouterr().out
    [report] = (tmp_path / "settlement").glob("PaymentBatchDetailReport_*.csv")
    assert f"settlement pulled from the Reporting API into {report}" in said
    assert "(100.0%)" in said
    truth = (tmp_path / "truth" / "ground_truth.csv").read_text()
    assert report.name in truth  # the truth's rows point into the downloaded file


@settings(max_examples=examples(25), deadline=None,  # each example pages a search over HTTP
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start=st.integers(0, 48 * 3600), span=st.integers(1, 48 * 3600), limit=st.integers(1, 9))
def test_any_window_and_page_size_yield_each_submitted_credit_in_it_once(world, tmp_path_factory, start, span, limit):
    sb, client, _ = world
    begin = datetime(2026, 11, 2, tzinfo=UTC) + timedelta(seconds=start)
    end = begin + timedelta(seconds=span)
    expected = sorted(c["id"] for c in sb.credits() if c["batch_id"]
                      and begin <= datetime.fromisoformat(c["created_at"]) < end)
    folder = tmp_path_factory.mktemp("prd")
    if not expected:
        with pytest.raises(NoReportDataError):
            client.purchase_refund_details(begin, end, data_dir=folder, limit=limit)
        return
    frame = client.purchase_refund_details(begin, end, data_dir=folder, limit=limit)
    assert sorted(frame["request_id"]) == expected


def test_downloads_retry_transient_errors_re_signing_each_attempt(tmp_path):
    with Sandbox(start=datetime(2026, 11, 2, 9, 0, tzinfo=UTC), seed=8) as sb:
        client = sb.client(backoff_base=0.01, max_retries=8)
        _issue(client)
        sb.advance(hours=20)
        # The JWT variant re-signs too: a resent token's jti would be refused.
        jwt_client = Client(replace(sb.config, auth_type="jwt"), ledger=":memory:", backoff_base=0.01, max_retries=8)
        sb.faults = FaultPlan(rates={"*": {"503": 0.5, "429": 0.2}}, retry_after="0", seed=2)
        for who in (client, jwt_client):
            frame = who.download_report(PBDR_REPORT_NAME, "2026-11-03", data_dir=tmp_path)
            assert len(frame) == 1
        assert sb.count("GET", "report_download") > 2
        assert "JWT jti was already used" not in sb.auth_failures
