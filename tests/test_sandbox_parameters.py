"""Every parameter the sandbox parses, given a value it cannot use, is a 400 in CyberSource's
documented error shape (status, reason, details naming the field), never a 500; and a request
the protocol cannot carry is answered at once. One table row per parse point."""

from __future__ import annotations

import http.client
import json
import socket
import time

import pytest
import requests

from reconkit.auth import http_date, sign_request
from reconkit.sandbox import Sandbox
from reconkit.sandbox.reporting import PBDR_REPORT_NAME

from .conftest import START

DOWNLOAD = f"/reporting/v3/report-downloads?reportName={PBDR_REPORT_NAME}&reportDate="
REPORTS = "/reporting/v3/reports?timeQueryType=reportTimeFrame&"
DETAILS = "/reporting/v3/purchase-refund-details?"
WINDOW = "startTime=2026-11-01T00:00:00Z&endTime=2026-11-03T00:00:00Z"
CARD = {"number": "4111111111111111", "expirationMonth": "12", "expirationYear": "2031"}


def _credit(**extra) -> bytes:
    body = {"orderInformation": {"amountDetails": {"totalAmount": "10.00", "currency": "USD"}},
            "paymentInformation": {"card": CARD}} | extra
    return json.dumps(body).encode()  # ensure_ascii: a lone surrogate travels as the escape \\ud800


ROWS = [
    # (name, method, path, body, the fields the 400 names)
    ("reportDate 0001-01-01 (its day before is no date)", "GET", DOWNLOAD + "0001-01-01", None, ["reportDate"]),
    ("reportDate 2026-02-30", "GET", DOWNLOAD + "2026-02-30", None, ["reportDate"]),
    ("reportDate without dashes", "GET", DOWNLOAD + "20261103", None, ["reportDate"]),
    ("reportName missing", "GET", "/reporting/v3/report-downloads?reportDate=2026-11-03", None, ["reportName"]),
    ("reports in the last day of 9999", "GET", REPORTS + "startTime=9999-12-31T00:00:00Z&endTime=9999-12-31T23:59:59Z",
     None, ["startTime", "endTime"]),
    ("reports startTime before year 1 in UTC", "GET",
     REPORTS + "startTime=0001-01-01T00:00:00%2B01:00&endTime=2026-01-01T00:00:00Z", None, ["startTime"]),
    ("reports endTime after 9999 in UTC", "GET",
     REPORTS + "startTime=2026-01-01T00:00:00Z&endTime=9999-12-31T23:00:00-01:00", None, ["endTime"]),
    ("reports endTime before startTime", "GET",
     REPORTS + "startTime=2026-11-03T00:00:00Z&endTime=2026-11-01T00:00:00Z", None, ["endTime"]),
    ("reports startTime missing", "GET", REPORTS + "endTime=2026-11-03T00:00:00Z", None, ["startTime"]),
    ("reports startTime without a zone", "GET",
     REPORTS + "startTime=2026-11-01T00:00:00&endTime=2026-11-03T00:00:00Z", None, ["startTime"]),
    ("details startTime before year 1 in UTC", "GET",
     DETAILS + "startTime=0001-01-01T00:00:00%2B01:00&endTime=2026-01-01T00:00:00Z", None, ["startTime"]),
    ("details endTime after 9999 in UTC", "GET",
     DETAILS + "startTime=2026-11-01T00:00:00Z&endTime=9999-12-31T23:59:59-01:00", None, ["endTime"]),
    ("details endTime equal to startTime", "GET",
     DETAILS + "startTime=2026-11-01T00:00:00Z&endTime=2026-11-01T00:00:00Z", None, ["endTime"]),
    ("details offset of 5000 digits", "GET", DETAILS + WINDOW + "&offset=" + "9" * 5000, None, ["offset"]),
    ("details limit of 5000 digits", "GET", DETAILS + WINDOW + "&limit=" + "9" * 5000, None, ["limit"]),
    ("details limit 2001", "GET", DETAILS + WINDOW + "&limit=2001", None, ["limit"]),
    ("details offset -1", "GET", DETAILS + WINDOW + "&offset=-1", None, ["offset"]),
    ("details viewBy unknown", "GET", DETAILS + WINDOW + "&viewBy=settlementDate", None, ["viewBy"]),
    ("credit body with a 5000-digit number", "POST", "/pts/v2/credits", b'{"a":' + b"1" * 5000 + b"}", ["body"]),
    ("credit body nested 100000 deep", "POST", "/pts/v2/credits", b"[" * 100_000 + b"]" * 100_000, ["body"]),
    ("credit reference code a lone surrogate", "POST", "/pts/v2/credits",
     _credit(clientReferenceInformation={"code": "\ud800"}), ["clientReferenceInformation.code"]),
    ("credit transaction id a lone surrogate", "POST", "/pts/v2/credits",
     _credit(clientReferenceInformation={"transactionId": "a\udfff"}), ["clientReferenceInformation.transactionId"]),
    ("credit customer id a lone surrogate", "POST", "/pts/v2/credits",
     json.dumps({"orderInformation": {"amountDetails": {"totalAmount": "10.00", "currency": "USD"}},
                 "paymentInformation": {"card": CARD, "customer": {"id": "\ud800"}}}).encode(),
     ["paymentInformation.customer.id"]),
    ("search query a lone surrogate", "POST", "/tss/v2/searches",
     json.dumps({"query": "clientReferenceInformation.code:\ud800"}).encode(), ["query"]),
    ("search of 5000 terms", "POST", "/tss/v2/searches", json.dumps({"query": " AND ".join(["id:1"] * 5000)}).encode(),
     ["query"]),
    ("void reference code a lone surrogate", "POST", "/pts/v2/credits/{credit}/voids",
     json.dumps({"clientReferenceInformation": {"code": "\ud800"}}).encode(), ["clientReferenceInformation.code"]),
]


@pytest.fixture(scope="module")
def sb():
    with Sandbox(start=START, seed=5) as sandbox:
        sandbox.client().create_credit("10.00", "USD", card={"number": "4111111111111111", "expiration_month": "12",
                                                             "expiration_year": "2031"})
        yield sandbox


@pytest.mark.parametrize(("name", "method", "path", "body", "fields"), ROWS, ids=[r[0] for r in ROWS])
def test_a_value_the_sandbox_cannot_use_is_a_400_naming_its_field(sb, name, method, path, body, fields):
    before = sb.credits()
    path = path.format(credit=before[0]["id"])
    headers = sign_request(sb.config, method, path, body, http_date()) | {"Accept": "text/csv",
                                                                          "Content-Type": "application/json"}
    answer = requests.request(method, sb.url + path, headers=headers, data=body, timeout=20)
    assert answer.status_code == 400, answer.text[:300]
    error = answer.json()
    assert set(error) == {"submitTimeUtc", "status", "reason", "message", "details"}
    assert (error["status"], error["reason"]) == ("INVALID_REQUEST", "INVALID_DATA") and error["message"]
    assert [d["field"] for d in error["details"]] == fields
    assert {d["reason"] for d in error["details"]} == {"INVALID_DATA"}
    assert sb.credits() == before  # nothing created, nothing voided


@pytest.mark.parametrize("raw", [b"GET /\r\n", b"GET /pts/v2/credits/1\r\n", b"POST /pts/v2/credits\r\n", b"GET /\n"])
def test_an_http_0_9_request_is_answered_at_once_and_closed(sb, raw):
    started = time.monotonic()
    with socket.create_connection((sb.host, sb.port), timeout=2) as sock:
        sock.sendall(raw)  # no version, no headers: HTTP/0.9
        response = http.client.HTTPResponse(sock)
        response.begin()
        body = json.loads(response.read())
        assert sock.recv(1) == b""  # closed by the sandbox
    assert time.monotonic() - started < 1.5
    assert response.status == 505 and response.getheader("Content-Type") == "application/hal+json"
    assert (body["status"], body["reason"]) == ("SERVER_ERROR", "HTTP_VERSION_NOT_SUPPORTED")  # as for HTTP/2.0


def test_a_request_target_that_is_no_path_is_a_400(sb):
    with socket.create_connection((sb.host, sb.port), timeout=5) as sock:
        sock.sendall(b"GET http://[/ HTTP/1.1\r\nHost: x\r\n\r\n")
        response = http.client.HTTPResponse(sock)
        response.begin()
        body = json.loads(response.read())
    assert response.status == 400 and body["status"] == "INVALID_REQUEST" and body["message"]
