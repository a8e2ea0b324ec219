"""Complete or an error (issue 21): the Reporting API's pages and downloads, against hostile and
faulty servers run in-process on 127.0.0.1. A walk follows a server that caps its pages and stops
with an error on a repeated page, an offset that does not advance or a page budget; a download
that is not whole raises an error naming the report; a report name cannot leave ``data_dir``.
Nothing partial is returned or saved as if it were whole."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconkit import IncompleteReportError, NetworkError, read_settlement

from .conftest import examples
from .hostile import RAW, HostileServer, client_for

SAMPLE = Path(__file__).parents[1] / "data" / "sample"
REPORT = "PaymentBatchDetailReport_Daily"
TOTAL = 60
IDS = [f"79360{index:017d}" for index in range(TOTAL)]
WINDOW = ("2026-11-02T00:00:00Z", "2026-11-03T00:00:00Z")


def _entries(ids: list[str]) -> dict[str, list[dict[str, object]]]:
    """The parallel arrays of purchase-refund-details for ``ids`` (the documented shape)."""
    return {
        "requestDetails": [{"requestId": i, "cybersourceMerchantId": "m", "processorMerchantId": "m",
                            "transactionReferenceNumber": f"R{i[-8:]}", "merchantReferenceNumber": f"ref-{i}"}
                           for i in ids],
        "settlements": [{"requestId": i, "transactionType": "Refunds", "submissionTime": "2026-11-02T18:00:00Z",
                         "amount": f"{int(i[-3:]) + 1}.25", "currencyCode": "USD", "paymentMethod": "VI",
                         "cybersourceBatchTime": "2026-11-02T18:00:00Z", "cybersourceBatchId": "2611020001",
                         "cardType": "VI"} for i in ids],
        "settlementStatuses": [{"requestId": i, "status": "TRANSMITTED", "settlementTime": "2026-11-02T18:00:00Z",
                                "reasonCode": "100", "errorText": None} for i in ids],
        "authorizations": [], "feeAndFundingDetails": [], "others": [],
    }


def _asked(path: str) -> tuple[int, int]:
    query = parse_qs(urlsplit(path).query)
    return int(query["offset"][0]), int(query["limit"][0])


def _json(body: object, status: int = 200):
    return status, {"Content-Type": "application/hal+json"}, json.dumps(body).encode()


def _not_found():
    return _json({"errorInformation": {"reason": "NOT_FOUND", "message": "No data found"}}, 404)


def _paging(cap: int | None = None, *, echo_limit: str = "asked", page_results: str = "count",
            past_end: str = "empty", shift: int = 0, echo_offset: str = "asked", endless: bool = False,
            same_page: bool = False):
    """A purchase-refund-details server: honest but for the named fault."""
    def respond(method, path, headers, body):
        offset, limit = _asked(path)
        size = min(limit, cap) if cap else limit
        start = 0 if same_page else max(0, offset - shift)
        ids = [f"79361{n:017d}" for n in range(start, start + size)] if endless else IDS[start:start + size]
        if not ids and past_end == "404":
            return _not_found()
        document: dict[str, object] = {"offset": offset if echo_offset == "asked" else 0,
                                       "limit": limit if echo_limit == "asked" else size, **_entries(ids)}
        if page_results == "count":
            document["pageResults"] = len(ids)
        elif page_results == "text":
            document["pageResults"] = str(len(ids))
        elif page_results == "short":
            document["pageResults"] = max(0, len(ids) - 2)
        elif page_results == "long":
            document["pageResults"] = len(ids) + 1
        return _json(document)
    return respond


WHOLE = {
    # name: (server, limit, pages requested)
    "honest": (_paging(), 2000, 2),
    "honest, limit 7": (_paging(), 7, math.ceil(TOTAL / 7) + 1),
    "a limit that divides the total": (_paging(), 10, TOTAL // 10 + 1),
    "caps pages at 7, echoing the limit asked": (_paging(cap=7), 2000, math.ceil(TOTAL / 7) + 1),
    "caps pages at 7, echoing 7": (_paging(cap=7, echo_limit="cap"), 2000, math.ceil(TOTAL / 7) + 1),
    "caps at 7 and says pageResults as text": (_paging(cap=7, page_results="text"), 20, math.ceil(TOTAL / 7) + 1),
    "no pageResults": (_paging(page_results="missing"), 5, TOTAL // 5 + 1),
    "no pageResults, capped": (_paging(cap=7, page_results="missing"), 50, math.ceil(TOTAL / 7) + 1),
    "404 after a short page": (_paging(cap=7, past_end="404"), 7, math.ceil(TOTAL / 7) + 1),
}


@pytest.mark.parametrize("name", list(WHOLE))
def test_every_page_is_read_however_the_server_pages(name, tmp_path):
    server, limit, requests_expected = WHOLE[name]
    with HostileServer(server) as hostile, client_for(hostile.url, tmp_path) as client:
        frame = client.purchase_refund_details(*WINDOW, data_dir=tmp_path / "reports", limit=limit)
        assert hostile.count("GET") == requests_expected
    assert sorted(frame["request_id"]) == IDS  # each once: nothing skipped, nothing twice
    amounts = dict(zip(frame["request_id"], frame["amount"], strict=True))
    assert all(str(amounts[i]) == f"{int(i[-3:]) + 1}.25" for i in IDS)


BROKEN = {
    # name: (server, limit, max_pages, words in the error, pages requested)
    "the same full page at every offset": (_paging(same_page=True), 7, 5000, "repeats an earlier page", 2),
    "pages that overlap": (_paging(shift=1), 7, 5000, "repeats an earlier page", 2),
    "an offset that does not advance": (_paging(echo_offset="zero"), 7, 5000, "would not advance", 2),
    "pageResults short of the page": (_paging(page_results="short"), 7, 5000, "pageResults 5", 1),
    "pageResults beyond the page": (_paging(page_results="long"), 7, 5000, "pageResults 8", 1),
    "more entries than the limit": (_paging(), 7, 5000, None, None),
    "endless distinct pages": (_paging(endless=True), 7, 10, "more than 10 pages", 10),
    "404 after a full page": (_paging(past_end="404"), 10, 5000, "404 after a full page", TOTAL // 10 + 1),
}


def _too_many(method, path, headers, body):
    offset, limit = _asked(path)
    ids = IDS[offset:offset + limit + 3]
    return _json({"offset": offset, "limit": limit, "pageResults": len(ids), **_entries(ids)})


@pytest.mark.parametrize("name", list(BROKEN))
def test_a_walk_that_does_not_add_up_is_an_error(name, tmp_path):
    server, limit, max_pages, words, requests_expected = BROKEN[name]
    if name == "more entries than the limit":
        server, words, requests_expected = _too_many, "more than the 7 asked for", 1
    folder = tmp_path / "reports"
    with HostileServer(server) as hostile, client_for(hostile.url, tmp_path) as client:
        with pytest.raises(IncompleteReportError) as info:
            client.purchase_refund_details(*WINDOW, data_dir=folder, limit=limit, max_pages=max_pages)
        assert hostile.count("GET") == requests_expected
    message = str(info.value)
    assert words in message and "2026-11-02T00:00:00Z to 2026-11-03T00:00:00Z" in message
    assert "nothing was returned or saved as complete" in message
    assert not folder.exists() or not any(folder.iterdir())


def test_an_earlier_pull_is_kept_when_a_later_one_breaks(tmp_path):
    folder = tmp_path / "reports"
    with HostileServer(_paging()) as honest, client_for(honest.url, tmp_path) as client:
        client.purchase_refund_details(*WINDOW, data_dir=folder, limit=7)
    kept = sorted(p.name for p in folder.iterdir())
    with HostileServer(_paging(same_page=True)) as hostile, client_for(hostile.url, tmp_path) as client, \
            pytest.raises(IncompleteReportError):
        client.purchase_refund_details(*WINDOW, data_dir=folder, limit=7)
    assert sorted(p.name for p in folder.iterdir()) == kept


# --- downloads --------------------------------------------------------------------------

CSV_BYTES = (SAMPLE / "pbdr_csv.csv").read_bytes()
XML_BYTES = (SAMPLE / "pbdr_xml.xml").read_bytes()
CSV_IDS = [row[3].strip() for row in list(csv.reader(io.StringIO(CSV_BYTES.decode(), newline="")))[2:] if row]
"""The request ids of the sample PBDR CSV, read with the csv module (not reconkit's reader), stripped
as every reader strips ids."""


def _cut_at_line(data: bytes, keep: int) -> bytes:
    """The first ``keep`` lines (each with its line break)."""
    return b"".join(data.splitlines(keepends=True)[:keep])


def _download(kind: str, data: bytes):
    def respond(method, path, headers, body):
        if not path.startswith("/reporting/v3/report-downloads"):
            return _not_found()
        if kind == "content-length":
            return 200, {"Content-Type": "text/csv"}, data
        if kind == "chunked":
            chunks = b"".join(b"%x\r\n%s\r\n" % (len(data[i:i + 500]), data[i:i + 500])
                              for i in range(0, len(data), 500))
            return 200, {"Content-Type": "text/csv", "Transfer-Encoding": "chunked"}, chunks + b"0\r\n\r\n"
        if kind == "claims more":  # the connection closes before the Content-Length is reached
            return RAW, {}, b"HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nContent-Length: %d\r\n" \
                            b"Connection: close\r\n\r\n%s" % (len(CSV_BYTES), data)
        if kind == "unframed":  # no length, no chunks: ends where the connection closes
            return RAW, {}, b"HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nConnection: close\r\n\r\n" + data
        if kind == "chunks cut":  # chunked, and the connection closes before the last chunk
            return RAW, {}, b"HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nTransfer-Encoding: chunked\r\n\r\n" \
                            b"%x\r\n%s\r\n" % (len(data), data)
        raise AssertionError(kind)
    return respond


@pytest.mark.parametrize("kind", ["content-length", "chunked"])
def test_a_whole_download_is_read_as_sent(kind, tmp_path):
    folder = tmp_path / "reports"
    with HostileServer(_download(kind, CSV_BYTES)) as hostile, client_for(hostile.url, tmp_path) as client:
        frame = client.download_report(REPORT, "2026-11-03", data_dir=folder)
        assert hostile.count("GET") == 1
    assert list(frame["request_id"]) == CSV_IDS
    assert (folder / f"{REPORT}_2026-11-03.csv").read_bytes() == CSV_BYTES


def test_a_whole_xml_download_is_read_as_sent(tmp_path):
    folder = tmp_path / "reports"
    with HostileServer(_download("content-length", XML_BYTES)) as hostile, \
            client_for(hostile.url, tmp_path) as client:
        frame = client.download_report(REPORT, "2026-11-03", "xml", data_dir=folder)
    assert (folder / f"{REPORT}_2026-11-03.xml").read_bytes() == XML_BYTES
    assert frame.equals(read_settlement(folder / f"{REPORT}_2026-11-03.xml", "pbdr_xml"))
    assert len(frame) == XML_BYTES.count(b"<Request ")


HALF = len(CSV_IDS) // 2 + 2
INCOMPLETE = {
    # name: (kind, body, format, words in the error)
    "closed before its Content-Length": ("claims more", _cut_at_line(CSV_BYTES, HALF), "csv",
                                         "ended before its Content-Length"),
    "closed at a line end, unframed": ("unframed", _cut_at_line(CSV_BYTES, HALF), "csv",
                                       "without a Content-Length or chunked framing"),
    "chunked, closed before the last chunk": ("chunks cut", _cut_at_line(CSV_BYTES, HALF), "csv",
                                              "ended before its Content-Length or chunked framing"),
    "CSV cut mid-record": ("content-length", _cut_at_line(CSV_BYTES, HALF) + b"2611020001,recon", "csv",
                           "ends mid-record"),
    "CSV cut inside a quoted field": ("content-length", _cut_at_line(CSV_BYTES, HALF) + b'1,"open\n', "csv",
                                      "ends mid-record"),
    "CSV whose last record is short": ("content-length", _cut_at_line(CSV_BYTES, HALF) + b"2611020001,x,y\n",
                                       "csv", "last record has 3 fields"),
    "empty CSV": ("content-length", b"", "csv", "the CSV is empty"),
    "XML cut short": ("content-length", XML_BYTES[: len(XML_BYTES) // 2], "xml", "not well-formed XML"),
    "XML with junk after the root": ("content-length", XML_BYTES + b"<x/>", "xml", "not well-formed XML"),
}


@pytest.mark.parametrize("name", list(INCOMPLETE))
def test_a_download_that_is_not_whole_is_an_error_naming_the_report(name, tmp_path):
    kind, data, format, words = INCOMPLETE[name]
    folder = tmp_path / "reports"
    with HostileServer(_download(kind, data)) as hostile, \
            client_for(hostile.url, tmp_path, max_retries=1) as client:
        with pytest.raises(IncompleteReportError) as info:
            client.download_report(REPORT, "2026-11-03", format, data_dir=folder)
        assert hostile.count("GET") == 2  # a read: retried once, then refused
    message = str(info.value)
    assert words in message and f"report '{REPORT}' for report date 2026-11-03" in message
    assert info.value.report == f"report '{REPORT}' for report date 2026-11-03"
    assert not folder.exists() or not any(folder.iterdir())


def test_a_download_cut_once_is_read_whole_on_the_retry(tmp_path):
    answers = [_download("claims more", _cut_at_line(CSV_BYTES, 10)), _download("content-length", CSV_BYTES)]

    def respond(method, path, headers, body):
        return (answers.pop(0) if len(answers) > 1 else answers[0])(method, path, headers, body)

    with HostileServer(respond) as hostile, client_for(hostile.url, tmp_path) as client:
        frame = client.download_report(REPORT, "2026-11-03", data_dir=tmp_path / "reports")
        assert hostile.count("GET") == 2
    assert list(frame["request_id"]) == CSV_IDS


BAD_NAMES = ["/../../x", "../x", "..", ".", "a/b", "a\\b", "", "x y", "x\x00y", "\u540d\u524d", "x\n", "~/x",
             "C:x", "%2e%2e", None, 42]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_report_name_cannot_leave_data_dir(name, tmp_path):
    folder = tmp_path / "deep" / "reports"
    with HostileServer(_download("content-length", CSV_BYTES)) as hostile, \
            client_for(hostile.url, tmp_path) as client:
        with pytest.raises(ValueError, match=r"report name .* may hold only letters, digits") as info:
            client.download_report(name, "2026-11-03", data_dir=folder)
        assert hostile.count() == 0
    assert "nothing was sent" in str(info.value)
    assert [p for p in tmp_path.rglob("*") if p.name != "ledger.sqlite3"] == []  # nothing written anywhere


@pytest.mark.parametrize("name", ["a..b", ".hidden", "Report-1.v2_x", "a" * 200])
def test_names_of_letters_digits_dots_dashes_are_kept_inside_data_dir(name, tmp_path):
    folder = tmp_path / "reports"
    with HostileServer(_download("content-length", CSV_BYTES)) as hostile, \
            client_for(hostile.url, tmp_path) as client:
        client.download_report(name, "2026-11-03", data_dir=folder)
    assert [p.name for p in folder.iterdir()] == [f"{name}_2026-11-03.csv"]


def test_a_server_that_cannot_be_reached_is_a_network_error_naming_the_report(tmp_path):
    with HostileServer(_download("content-length", CSV_BYTES)) as hostile:
        url = hostile.url
    with client_for(url, tmp_path, max_retries=0) as client, pytest.raises(NetworkError) as info:
        client.download_report(REPORT, "2026-11-03", data_dir=tmp_path / "reports")
    assert f"report '{REPORT}' for report date 2026-11-03" in str(info.value)


@settings(max_examples=examples(20), deadline=None,  # each example pages a report over HTTP
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cap=st.integers(1, TOTAL + 5), limit=st.integers(1, 2000), total=st.integers(1, TOTAL),
       page_results=st.sampled_from(["count", "text", "missing"]))
def test_any_cap_and_limit_read_each_entry_once(tmp_path_factory, cap, limit, total, page_results):
    """Whatever the server's cap and the limit asked, each entry is read once, in order, and the
    walk asks exactly one page past the last entry."""
    ids = IDS[:total]

    def respond(method, path, headers, body):
        offset, asked = _asked(path)
        page = ids[offset:offset + min(asked, cap)]
        document = {"offset": offset, "limit": asked, **_entries(page)}
        if page_results != "missing":
            document["pageResults"] = len(page) if page_results == "count" else str(len(page))
        return _json(document)

    folder = tmp_path_factory.mktemp("prd")
    with HostileServer(respond) as hostile, client_for(hostile.url, folder) as client:
        frame = client.purchase_refund_details(*WINDOW, data_dir=folder / "reports", limit=limit)
        assert hostile.count("GET") == math.ceil(total / min(cap, limit)) + 1
    assert list(frame["request_id"]) == ids
