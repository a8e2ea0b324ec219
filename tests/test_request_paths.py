"""A request goes only where it was aimed (issue 21): no redirect is followed, on any request, by
the session or per call; a 3xx to a POST is an unknown outcome resolvable by lookup, to a read an
error naming the Location; a link is followed only when it names the credit it came with; and
reads share one retry path that reads any Retry-After or falls back to the backoff.

Name resolution is intercepted: every name that is not loopback resolves to a trap on 127.0.0.1
that counts connections, so a failure here can send nothing anywhere."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

import reconkit.client
from reconkit import (
    AmbiguousOutcomeError,
    AmbiguousVoidError,
    Client,
    Credit,
    CreditShapeError,
    RedirectError,
)
from reconkit.sandbox.faults import FaultPlan
from reconkit.transport import NoRedirectSession, retry_after_seconds

from .conftest import CARD
from .hostile import ForwardingProxy, HostileServer, Trap, client_for

CREDIT = "7" * 22
OTHER = "8" * 22
STATUSES = [301, 302, 303, 307, 308]
LOCATIONS = {
    "production": "https://api.cybersource.com{path}",
    "same path": "{self}{path}",
    "another test host": "https://apitest.cybersource.com{path}",
}


@pytest.fixture
def trap(monkeypatch):
    trap = Trap()
    trap.install(monkeypatch)
    yield trap
    trap.close()


def _create(client):
    return client.create_credit("12.34", "USD", card=CARD, reference_code="redirected-1", transaction_id="t-r-1")


def _void(client):
    return client.void_credit(CREDIT, reference_code="void-redirected")


def _get(client):
    return client.get_credit(Credit({"id": CREDIT, "_links": {"self": {"href": f"/pts/v2/credits/{CREDIT}"}}}))


def _tss_get(client):
    return client.get_credit(CREDIT)


def _search(client):
    return client.find_credits_by_reference("redirected-1")


def _download(client, folder):
    return client.download_report("PaymentBatchDetailReport_Daily", "2026-11-03", data_dir=folder)


def _purchase_refund_details(client, folder):
    return client.purchase_refund_details("2026-11-02T00:00:00Z", "2026-11-03T00:00:00Z", data_dir=folder)


OPERATIONS = {
    # name: (call, method, path redirected, requests the hostile server sees)
    "create": (_create, "POST", "/pts/v2/credits", 1),
    "void": (_void, "POST", f"/pts/v2/credits/{CREDIT}/voids", 1),
    "get": (_get, "GET", f"/pts/v2/credits/{CREDIT}", 1),
    "tss get": (_tss_get, "GET", f"/tss/v2/transactions/{CREDIT}", 2),  # the self path answers 404 first
    "tss search": (_search, "POST", "/tss/v2/searches", 1),
    "report download": (_download, "GET", "/reporting/v3/report-downloads", 1),
    "purchase-refund-details": (_purchase_refund_details, "GET", "/reporting/v3/purchase-refund-details", 1),
}


@pytest.mark.parametrize("where", list(LOCATIONS))
@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_no_request_follows_a_redirect(operation, status, where, trap, tmp_path):
    call, method, redirected, seen = OPERATIONS[operation]
    holder: dict[str, str] = {}

    def respond(m, path, headers, body):
        if path.split("?")[0] == redirected:
            location = LOCATIONS[where].format(self=holder["url"], path=path)
            return status, {"Location": location, "Content-Type": "text/html"}, b"<a>moved</a>"
        return 404, {"Content-Type": "application/json"}, json.dumps(
            {"errorInformation": {"reason": "NOT_FOUND", "message": "not here"}}).encode()

    folder = tmp_path / "reports"
    with HostileServer(respond) as hostile:
        holder["url"] = hostile.url
        location = LOCATIONS[where].format(self=hostile.url, path="")
        with client_for(hostile.url, tmp_path) as client:
            args = (client, folder) if operation in ("report download", "purchase-refund-details") else (client,)
            expected = {"create": AmbiguousOutcomeError, "void": AmbiguousVoidError}.get(operation, RedirectError)
            with pytest.raises(expected) as info:
                call(*args)
            message = str(info.value)
            assert f"HTTP {status}" in message and location in message
            assert hostile.count() == seen and hostile.count(method, redirected) == 1  # one, never resent
            scope = {"environment": client.config.ledger_environment, "merchant_id": client.config.merchant_id}
            if operation == "create":
                row = client.ledger.credit("redirected-1")
                assert (row["outcome"], row["credit_id"]) == ("unknown_outcome", None)
                assert [r["reference_code"] for r in client.ledger.unknown_outcomes(**scope)] == ["redirected-1"]
            elif operation == "void":
                row = client.ledger.void(CREDIT, **scope)
                assert (row["outcome"], row["reference_code"]) == ("unknown_outcome", "void-redirected")
            else:
                assert isinstance(info.value, RedirectError)
                assert info.value.http_status == status and info.value.location.startswith(location)
                assert client.ledger.credits().empty
    assert trap.connections == [] and trap.lookups == []  # nothing reached, or even looked up, another host
    assert not folder.exists() or not any(folder.iterdir())


@pytest.mark.parametrize("status", STATUSES)
def test_a_plain_session_swapped_in_still_follows_nothing(status, trap, tmp_path):
    """The per-call allow_redirects=False holds even without the client's own session."""
    def respond(m, path, headers, body):
        return status, {"Location": f"https://api.cybersource.com{path}"}, b""

    with HostileServer(respond) as hostile, client_for(hostile.url, tmp_path) as client:
        auth = client.session.auth
        client.session = requests.Session()
        client.session.auth = auth
        with pytest.raises(RedirectError):
            client.get_credit(CREDIT)
        with pytest.raises(AmbiguousOutcomeError):
            _create(client)
        assert hostile.count() == 2
    assert trap.connections == [] and trap.lookups == []


@pytest.mark.parametrize("status", STATUSES)
def test_the_session_follows_nothing_even_when_asked_to(status, trap):
    """What requests itself does (it follows 301/302/303 as a GET and re-sends 307/308 with the
    body) is switched off in the session, whatever a caller passes."""
    def respond(m, path, headers, body):
        return status, {"Location": "https://api.cybersource.com/pts/v2/credits"}, b""

    with HostileServer(respond) as hostile:
        with pytest.raises(requests.RequestException):  # the trap speaks no TLS
            requests.post(hostile.url + "/pts/v2/credits", data=b"{}", timeout=5)
        # The threat is real: requests, left to itself, goes to the Location's host.
        assert trap.lookups == ["api.cybersource.com"] and len(trap.connections) == 1
        trap.connections.clear()
        session = NoRedirectSession()
        answer = session.post(hostile.url + "/pts/v2/credits", data=b"{}", allow_redirects=True, timeout=5)
        assert answer.status_code == status and answer.history == [] and session.max_redirects == 0
        assert trap.connections == [] and hostile.count("POST") == 2


@pytest.mark.parametrize("action", ["create", "void"])
@pytest.mark.parametrize("status", STATUSES)
def test_a_redirected_post_that_was_carried_out_is_resolved_by_lookup(action, status, sandbox, trap, tmp_path):
    """The POST reached CyberSource and was carried out; a proxy answered 3xx instead. The client
    sends it once, records an unknown outcome, and the lookup finds what happened."""
    seed = sandbox.client(ledger=":memory:")
    credit = seed.create_credit("4.00", "USD", card=CARD) if action == "void" else None
    target = "/pts/v2/credits" if action == "create" else f"/pts/v2/credits/{credit.id}/voids"

    def intercept(method, path):
        if method == "POST" and path == target:
            return status, {"Location": f"https://api.cybersource.com{path}"}, b""
        return None

    with ForwardingProxy(sandbox.url, intercept) as proxy:
        config = replace(sandbox.config, environment=proxy.url)
        with Client(config, ledger=str(tmp_path / "l.sqlite3"), clock=sandbox.now, backoff_base=0.01) as client:
            scope = {"environment": client.config.ledger_environment, "merchant_id": client.config.merchant_id}
            if action == "create":
                with pytest.raises(AmbiguousOutcomeError):
                    client.create_credit("4.50", "EUR", card=CARD, reference_code="r-3xx", transaction_id="t-3xx")
                assert client.ledger.credit("r-3xx")["outcome"] == "unknown_outcome"
                assert sandbox.count("POST", "create") == 1
                [found] = client.resolve_unknown()
                made = [c for c in sandbox.credits() if c["reference_code"] == "r-3xx"]
                assert len(made) == 1 and (found.outcome, found.credit_id) == ("created", made[0]["id"])
                assert client.ledger.credit("r-3xx")["credit_id"] == made[0]["id"]
                assert sandbox.count("POST", "create") == 1
            else:
                with pytest.raises(AmbiguousVoidError):
                    client.void_credit(credit.id)
                assert client.ledger.void(credit.id, **scope)["outcome"] == "unknown_outcome"
                [found] = client.resolve_unknown()
                assert (found.action, found.outcome) == ("void", "voided")
                assert sandbox.count("POST", "void") == 1
    assert trap.connections == [] and trap.lookups == []


# --- links that name another credit ---------------------------------------------------------

FOREIGN_LINKS = [
    ("void", f"/pts/v2/credits/{OTHER}/voids"),
    ("void", f"/pts/v2/credits/{CREDIT}"),
    ("void", f"/pts/v2/credits/{CREDIT}/refunds"),
    ("void", f"/pts/v2/credits/{CREDIT}/voids/{OTHER}"),
    ("void", f"/pts/v2/voids/{CREDIT}"),
    ("void", f"/tss/v2/transactions/{CREDIT}"),
    ("void", f"/pts/v2/credits/{CREDIT}0/voids"),
    ("self", f"/pts/v2/credits/{OTHER}"),
    ("self", f"/tss/v2/transactions/{OTHER}"),
    ("self", f"/pts/v2/credits/{CREDIT}/voids"),
    ("self", f"/pts/v2/credits/{CREDIT}/captures"),
    ("self", f"/pts/v2/payments/{CREDIT}"),
]


@pytest.mark.parametrize(("link", "href"), FOREIGN_LINKS)
def test_a_link_naming_another_credit_is_not_followed(link, href, client, sandbox, trap):
    credit = client.create_credit("6.00", "USD", card=CARD)
    other = client.create_credit("7.00", "USD", card=CARD)
    href = href.replace(CREDIT, credit.id).replace(OTHER, other.id)
    raw = {**credit.raw, "_links": {**credit.links, link: {"href": href, "method": "GET" if link == "self" else "POST"}}}
    before = len(sandbox.requests)
    with pytest.raises(CreditShapeError, match=f"{link} link"):
        if link == "void":
            client.void_credit(Credit(raw))
        else:
            client.get_credit(Credit(raw))
    assert len(sandbox.requests) == before
    scope = {"environment": client.config.ledger_environment, "merchant_id": client.config.merchant_id}
    assert client.ledger.void(credit.id, **scope) is None and client.ledger.void(other.id, **scope) is None
    assert {c["id"]: c["status"] for c in sandbox.credits()} == {credit.id: "PENDING", other.id: "PENDING"}
    assert trap.connections == []


def test_own_links_are_followed(client, sandbox):
    credit = client.create_credit("6.00", "USD", card=CARD)
    assert client.void_credit(credit).status == "VOIDED" and sandbox.count("POST", "void") == 1
    sandbox.advance(minutes=20)  # Transaction Details lags creation
    tss_self = {**credit.raw, "_links": {"self": {"href": f"/tss/v2/transactions/{credit.id}"}}}
    assert client.get_credit(Credit(tss_self, source="self_link")).id == credit.id
    assert sandbox.count("GET", "tss") == 1


def test_a_credit_without_an_id_follows_no_link(client, sandbox):
    before = len(sandbox.requests)
    for document in ({"_links": {"void": {"href": "/pts/v2/credits/None/voids"}}}, {"id": None}, {"id": "12ab"}):
        with pytest.raises(CreditShapeError, match="not followed and nothing was sent"):
            client.void_credit(Credit(document))
        with pytest.raises(CreditShapeError, match="not followed and nothing was sent"):
            client.get_credit(Credit(document))
    assert len(sandbox.requests) == before


def test_an_answer_about_another_credit_is_not_taken_for_the_one_asked(tmp_path, trap):
    def respond(m, path, headers, body):
        return 200, {"Content-Type": "application/hal+json"}, json.dumps(
            {"id": OTHER, "status": "VOIDED", "_links": {"self": {"href": f"/pts/v2/credits/{OTHER}"}}}).encode()

    with HostileServer(respond) as hostile, client_for(hostile.url, tmp_path) as client:
        with pytest.raises(CreditShapeError, match=f"answered with credit '{OTHER}' when credit {CREDIT}"):
            client.get_credit(CREDIT)
        result = client.fetch_credits([CREDIT], progress=False, cache=False)
        assert result.credits == [] and list(result.failed["error"]) == ["CreditShapeError"]


# --- one retry path ---------------------------------------------------------------------

def _http_date(moment: datetime) -> str:
    return format_datetime(moment, usegmt=True)


@pytest.mark.parametrize(("header", "expected"), [
    ("2", 2.0),
    (" 7 ", 7.0),
    ("1.5", 1.5),
    ("0", 0.0),
    ("soon", None),
    ("", None),
    (None, None),
    ("-1", None),
    ("1e3", None),
    ("inf", None),
    ("nan", None),
    ("9" * 400, None),
    ("Wed, 21 Oct 2015 07:28:00 -0000", None),  # zone unknown: a TypeError escaped the loop before
    ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past: no wait
    ("Wed, 99 Foo 2015 07:28:00 GMT", None),
    ("Mon, 01 Jan 10000 00:00:00 GMT", None),
])
def test_retry_after_is_read_or_left_to_the_backoff(header, expected):
    assert retry_after_seconds(header) == expected


@given(st.text())
def test_no_retry_after_header_escapes_the_loop(value):
    wait = retry_after_seconds(value)
    assert wait is None or (wait >= 0 and wait == wait and wait != float("inf"))


def test_retry_after_as_a_future_http_date():
    wait = retry_after_seconds(_http_date(datetime.now(UTC) + timedelta(seconds=30)))
    assert wait is not None and 25 <= wait <= 30


@pytest.mark.parametrize("header", ["soon", "Wed, 21 Oct 2015 07:28:00 -0000", "nan", "-5"])
def test_an_unreadable_retry_after_means_the_backoff(header, client, sandbox, monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr(reconkit.client.time, "sleep", waits.append)
    credit = client.create_credit("1.00", "USD", card=CARD)
    sandbox.faults = FaultPlan(rates={"get": {"429": 0.6}}, retry_after=header, seed=3)
    for _ in range(5):
        assert client.get_credit(credit.id).id == credit.id
    assert waits and all(0 <= w <= client.backoff_cap for w in waits)
    assert sandbox.count("GET", "get") == 5 + len(waits)


def test_reports_and_credits_share_the_read_path(client, sandbox, monkeypatch, tmp_path):
    """A transient fault on a Reporting API read is retried by the same function, the same number
    of times, as a credit read."""
    waits: list[float] = []
    monkeypatch.setattr(reconkit.client.time, "sleep", waits.append)
    sandbox.faults = FaultPlan(rates={"*": {"503": 1.0}}, retry_after="soon")
    with pytest.raises(reconkit.ServerError) as credit_read:
        client.get_credit(CREDIT)
    with pytest.raises(reconkit.ServerError) as report_read:
        client.download_report("PaymentBatchDetailReport_Daily", "2026-11-03", data_dir=tmp_path)
    assert credit_read.value.attempts == report_read.value.attempts == client.max_retries + 1
    assert len(waits) == 2 * client.max_retries
