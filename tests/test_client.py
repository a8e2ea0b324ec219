"""The client against the sandbox over real HTTP on loopback."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

import reconkit.client
from reconkit import (
    AmbiguousOutcomeError,
    AuthenticationError,
    Client,
    Config,
    DeclinedError,
    InvalidRequestError,
    NetworkError,
    NotFoundError,
    ProductionGuardError,
    ServerError,
)
from reconkit.errors import ApiError, _parse_error_body
from reconkit.sandbox import FaultPlan

from .conftest import CARD, SEED_SECRET


def test_create_get_void_roundtrip(shared_client, shared_sandbox):
    client, sandbox = shared_client, shared_sandbox
    credit = client.create_credit("12.50", "usd", card=CARD, reference_code="order-1")
    assert credit.status == "PENDING" and credit.source == "create"
    assert len(credit.id) == 22 and credit.id.isdigit()
    assert credit.amount == Decimal("12.50") and credit.currency == "USD"
    assert credit.reference_code == "order-1"
    assert credit.submit_time == sandbox.now()
    assert credit.links["self"]["href"] == f"/pts/v2/credits/{credit.id}"
    fetched = client.get_credit(credit)
    assert fetched.source == "self_link" and fetched.raw == credit.raw
    assert fetched.correlation_id
    void = client.void_credit(credit)
    assert void.status == "VOIDED" and void.credit_id == credit.id
    assert client.get_credit(credit.id).status == "VOIDED"
    rows = client.ledger.credits()
    assert rows.loc[0, "outcome"] == "created" and rows.loc[0, "status"] == "VOIDED"
    assert rows.loc[0, "credit_id"] == credit.id and rows.loc[0, "amount"] == "12.50"


def test_sends_exactly_the_bytes_it_signed_with_jwt_too(shared_sandbox, tmp_path):
    sandbox = shared_sandbox
    failures = len(sandbox.auth_failures)  # the shared sandbox's, from tests before this one
    config = Config(sandbox.config.merchant_id, sandbox.config.key_id, sandbox.config.secret_key, sandbox.url,
                    auth_type="jwt")
    with Client(config, ledger=":memory:") as jwt_client:
        credit = jwt_client.create_credit("1.00", "USD", instrument_identifier="7010000000016241111",
                                          card={"expiration_month": "12", "expiration_year": "2031", "type": "001"})
        assert jwt_client.get_credit(credit.id).id == credit.id
    assert sandbox.auth_failures[failures:] == []


def test_tss_fallback_when_self_link_answers_405(client, sandbox):
    credit = client.create_credit("5.00", "EUR", card=CARD)
    sandbox.self_link_status = 405
    with pytest.raises(NotFoundError) as info:  # Transaction Details lags creation
        client.get_credit(credit)
    assert info.value.http_status == 404 and "not found" in info.value.message
    sandbox.advance(minutes=6)
    fetched = client.get_credit(credit)
    assert fetched.source == "tss"
    assert (fetched.id, fetched.reconciliation_id, fetched.amount, fetched.currency, fetched.submit_time) == (
        credit.id, credit.reconciliation_id, credit.amount, credit.currency, credit.submit_time)


def test_tss_fallback_when_self_link_is_404(shared_client):
    with pytest.raises(NotFoundError):
        shared_client.get_credit("1234567890123456789012")


def test_validation_never_sends(shared_client, shared_sandbox):
    client, sandbox = shared_client, shared_sandbox
    creates = sandbox.count("POST", "create")  # the shared sandbox's, from tests before this one
    with pytest.raises(InvalidRequestError) as info:
        client.create_credit("1.005", "USD", card=CARD)
    assert info.value.details[0]["field"] == "orderInformation.amountDetails.totalAmount"
    for bad in [dict(amount="-1", currency="USD", card=CARD), dict(amount="1", currency="XXX", card=CARD),
                dict(amount="1", currency="USD"), dict(amount="1", currency="USD", card=CARD, customer="c1"),
                dict(amount="1", currency="USD", card=CARD | {"number": "4111111111111112"}),
                dict(amount="1", currency="USD", card=CARD | {"expiration_month": "13"}),
                dict(amount=1.5, currency="USD", card=CARD), dict(amount="100", currency="JPY", card=CARD,
                                                                  reference_code="x" * 60)]:
        with pytest.raises(InvalidRequestError):
            client.create_credit(**bad)
    assert sandbox.count("POST", "create") == creates
    assert client.ledger.credits().empty


def test_server_side_400_shape(shared_client):
    client = shared_client
    body = client.build_credit_request("1.00", "USD", card=CARD)
    del body["orderInformation"]["amountDetails"]["totalAmount"]
    status, parsed, _ = client._post("/pts/v2/credits", body, reference_code=None, transaction_id=None)
    assert status == 400 and parsed["reason"] == "MISSING_FIELD"
    assert parsed["details"] == [{"field": "orderInformation.amountDetails.totalAmount", "reason": "MISSING_FIELD"}]


def test_duplicate_transaction_id(client):
    client.create_credit("1.00", "USD", card=CARD, transaction_id="txn-1")
    with pytest.raises(InvalidRequestError) as info:
        client.create_credit("1.00", "USD", card=CARD, transaction_id="txn-1")
    assert info.value.reason == "DUPLICATE_REQUEST" and info.value.correlation_id
    assert client.ledger.credits()["outcome"].tolist() == ["created", "rejected"]


def test_declined_credit_raises_and_keeps_the_credit(shared_client):
    client = shared_client
    with pytest.raises(DeclinedError) as info:
        client.create_credit("2005.00", "USD", card=CARD)
    assert info.value.reason == "PROCESSOR_DECLINED" and info.value.credit.status == "DECLINED"
    assert "PROCESSOR_DECLINED" in str(info.value)
    row = client.ledger.credits().iloc[0]
    assert row["outcome"] == "declined" and row["credit_id"] == info.value.credit.id


def test_invalid_amount_trigger_and_server_error(shared_client):
    client = shared_client
    with pytest.raises(InvalidRequestError, match="INVALID_AMOUNT"):
        client.create_credit("3000.00", "USD", card=CARD)
    with pytest.raises(ServerError) as info:
        client.create_credit("5020.00", "USD", card=CARD)
    assert info.value.http_status == 502 and info.value.reason == "SYSTEM_ERROR"


def test_server_timeout_502_is_an_ambiguous_outcome(client, sandbox):
    with pytest.raises(AmbiguousOutcomeError) as info:
        client.create_credit("5040.00", "USD", card=CARD, reference_code="amb-1")
    assert info.value.reference_code == "amb-1"
    found = client.find_credits_by_reference("amb-1")
    assert [c.id for c in found] == [sandbox.credits()[0]["id"]]
    assert client.ledger.credits().iloc[0]["outcome"] == "unknown_outcome"


def test_authentication_failure(shared_sandbox):
    sandbox = shared_sandbox
    bad = Config(sandbox.config.merchant_id, sandbox.config.key_id, SEED_SECRET, sandbox.url)
    with Client(bad, ledger=":memory:") as c, pytest.raises(AuthenticationError) as info:
        c.get_credit("1234567890123456789012")
    assert info.value.http_status == 401 and info.value.message == "Authentication Failed"


def test_get_retries_honour_retry_after(client, sandbox, monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr(reconkit.client.time, "sleep", waits.append)
    credit = client.create_credit("1.00", "USD", card=CARD)
    sandbox.faults = FaultPlan(rates={"get": {"429": 0.6}}, retry_after="2", seed=3)
    for _ in range(5):
        assert client.get_credit(credit.id).id == credit.id
    assert 2.0 in waits and sandbox.count("GET", "get") == 5 + len(waits)


@pytest.mark.parametrize("kind", ["502", "503", "reset", "bad_json", "truncated"])
def test_get_retries_transient_faults(client, sandbox, monkeypatch, kind):
    monkeypatch.setattr(reconkit.client.time, "sleep", lambda s: None)
    credit = client.create_credit("1.00", "USD", card=CARD)
    sandbox.faults = FaultPlan(rates={"get": {kind: 0.5}}, seed=11)
    for _ in range(6):
        assert client.get_credit(credit.id).id == credit.id
    assert sandbox.count("GET", "get") > 6


def test_get_gives_up_within_its_bounds(client, sandbox, monkeypatch):
    monkeypatch.setattr(reconkit.client.time, "sleep", lambda s: None)
    sandbox.faults = FaultPlan(rates={"get": {"503": 1.0}})
    with pytest.raises(ServerError) as info:
        client.get_credit("1234567890123456789012")
    assert info.value.attempts == client.max_retries + 1
    assert sandbox.count("GET", "get") == client.max_retries + 1


@pytest.mark.parametrize("kind", ["lost", "reset", "truncated", "bad_json"])
def test_post_without_answer_is_ambiguous_and_never_resent(sandbox, tmp_path, kind):
    sandbox.faults = FaultPlan(rates={"create": {kind: 1.0}}, hang_seconds=5)
    with Client(sandbox.config, ledger=str(tmp_path / "l.sqlite3"), timeout=(2, 1.5)) as c:  # a hung POST must outlast it; a normal one never does
        with pytest.raises(AmbiguousOutcomeError) as info:
            c.create_credit("9.99", "USD", card=CARD, reference_code="lost-1", transaction_id="t-lost-1")
        assert (info.value.reference_code, info.value.transaction_id) == ("lost-1", "t-lost-1")
        assert "not resent" in str(info.value)
        assert sandbox.count("POST", "create") == 1
        assert c.ledger.credits().iloc[0]["outcome"] == "unknown_outcome"
        sandbox.faults = FaultPlan()
        created = [r for r in sandbox.credits() if r["reference_code"] == "lost-1"]
        assert len(c.find_credits_by_reference("lost-1")) == len(created)
        assert len(created) == (0 if kind == "reset" else 1)


def test_unreachable_server_is_not_sent(tmp_path):
    config = Config("m", "k", SEED_SECRET, "http://127.0.0.1:9")
    with Client(config, ledger=str(tmp_path / "l.sqlite3")) as c:
        with pytest.raises(NetworkError, match="nothing was sent"):
            c.create_credit("1.00", "USD", card=CARD)
        assert c.ledger.credits().iloc[0]["outcome"] == "not_sent"


def test_production_guard():
    config = Config("m", "k", SEED_SECRET, "production")
    with Client(config, ledger=":memory:") as c:
        with pytest.raises(ProductionGuardError):
            c.create_credit("1.00", "USD", card=CARD)
        with pytest.raises(ProductionGuardError):
            c.void_credit("1234567890123456789012")
        assert c.ledger.credits().empty


def test_void_after_batch_is_refused(client, sandbox):
    credit = client.create_credit("1.00", "USD", card=CARD)
    sandbox.advance(timedelta(days=1))
    with pytest.raises(InvalidRequestError, match="NOT_VOIDABLE"):
        client.void_credit(credit)


@pytest.mark.parametrize(("status", "body", "reason", "message"), [
    (400, {"submitTimeUtc": "x", "status": "INVALID_REQUEST", "reason": "MISSING_FIELD", "message": "m",
           "details": [{"field": "a.b", "reason": "MISSING_FIELD"}]}, "MISSING_FIELD", "m"),
    (502, {"id": "1", "submitTimeUtc": "x", "status": "SERVER_ERROR", "reason": "SYSTEM_ERROR",
           "message": "Error - General system failure."}, "SYSTEM_ERROR", "Error - General system failure."),
    (201, {"id": "1", "status": "DECLINED", "errorInformation": {"reason": "EXPIRED_CARD", "message": "e",
                                                                 "details": [{"field": "f", "reason": "r"}]}},
     "EXPIRED_CARD", "e"),
    (401, {"response": {"rmsg": "Authentication Failed"}}, None, "Authentication Failed"),
    (404, {"errors": [{"type": "notFound", "message": "gone"}]}, "notFound", "gone"),
    (404, {"submitTimeUtc": "x", "status": "404", "errorInformation": {"reason": "NOT_FOUND ", "message": "no"}},
     "NOT_FOUND", "no"),
    (503, "<html>down</html>", None, None),
])
def test_every_error_shape_parses(status, body, reason, message):
    parsed = _parse_error_body(body)
    assert (parsed.reason, parsed.message) == (reason, message)
    error = ApiError(status, body, correlation_id="cid-1")
    assert str(error).count("\n") == 0 and "cid-1" in str(error) and str(status) in str(error)
