"""Unknown outcomes through the public API against the sandbox: a 5xx that is not CyberSource's
definite refusal is unknown, never rejected; lookups settle it from what the sandbox holds; reads
are retried; a reused reference code names the earlier credit; a killed process's intent shows
as unknown on the next start."""

from __future__ import annotations

import pytest

import reconkit.client
from reconkit import AmbiguousOutcomeError, Ledger, ReconkitError, ServerError
from reconkit.errors import DuplicateReferenceError
from reconkit.sandbox import FaultPlan
from reconkit.sandbox.faults import PROXY_ERRORS
from reconkit.widgets import IssueCreditApp

from .conftest import CARD, kill_on_the_wire


def _truth(sandbox, reference: str) -> list[str]:
    return [c["id"] for c in sandbox.credits() if c["reference_code"] == reference]


@pytest.mark.parametrize("kind", ["html_502", "html_503", "bare_500", "503"])
def test_a_5xx_without_cybersource_s_refusal_is_unknown_then_resolved(client, sandbox, kind):
    sandbox.faults = FaultPlan(rates={"create": {kind: 1.0}})
    with pytest.raises(AmbiguousOutcomeError) as info:
        client.create_credit("9.99", "USD", card=CARD, reference_code=f"ref-{kind}")
    assert info.value.reference_code == f"ref-{kind}" and "not resent" in str(info.value)
    assert sandbox.count("POST", "create") == 1
    assert client.ledger.credit(f"ref-{kind}")["outcome"] == "unknown_outcome"
    sandbox.faults = FaultPlan()
    created = _truth(sandbox, f"ref-{kind}")
    assert len(created) == (1 if kind in PROXY_ERRORS and PROXY_ERRORS[kind].processed else 0)

    [first] = client.resolve_unknown()
    if created:
        assert (first.outcome, first.credit.id) == ("created", created[0])
        row = client.ledger.credit(f"ref-{kind}")
        assert (row["outcome"], row["credit_id"], row["status"]) == ("created", created[0], "PENDING")
        return
    assert first.outcome == "unknown_outcome"  # nothing found yet, but TSS lags: still unknown
    sandbox.advance(client.tss_delay)
    [later] = client.resolve_unknown()
    assert later.outcome == "not_created" and client.ledger.credit(f"ref-{kind}")["outcome"] == "not_created"
    assert client.resolve_unknown() == []  # settled for good


def test_cybersource_s_own_502_refusal_is_definite(client, sandbox):
    sandbox.faults = FaultPlan(rates={"create": {"502": 1.0}})
    with pytest.raises(ServerError) as info:
        client.create_credit("9.99", "USD", card=CARD, reference_code="sys-err")
    assert info.value.reason == "SYSTEM_ERROR" and not isinstance(info.value, AmbiguousOutcomeError)
    assert client.ledger.credit("sys-err")["outcome"] == "rejected" and _truth(sandbox, "sys-err") == []


def test_resolve_one_reference_leaves_the_others(client, sandbox):
    sandbox.faults = FaultPlan(rates={"create": {"html_502": 1.0}})
    for reference in ("one", "two"):
        with pytest.raises(AmbiguousOutcomeError):
            client.create_credit("1.00", "USD", card=CARD, reference_code=reference)
    sandbox.faults = FaultPlan()
    [only] = client.resolve_unknown("two")
    assert (only.reference_code, only.outcome, only.credit.id) == ("two", "created", _truth(sandbox, "two")[0])
    assert client.ledger.credit("one")["outcome"] == "unknown_outcome"


@pytest.mark.parametrize("kind", ["429", "502", "503", "reset", "bad_json", "truncated", "html_502", "html_503"])
def test_find_credits_by_reference_is_a_read_retried_like_a_get(client, sandbox, monkeypatch, kind):
    monkeypatch.setattr(reconkit.client.time, "sleep", lambda s: None)
    credit = client.create_credit("4.00", "USD", card=CARD, reference_code="look-me-up")
    sandbox.faults = FaultPlan(rates={"search": {kind: 0.5}}, seed=5)
    for _ in range(6):
        assert [c.id for c in client.find_credits_by_reference("look-me-up")] == [credit.id]
        assert client.find_credits_by_reference("nobody") == []
    assert sandbox.count("POST", "search") > 12  # some attempts failed and were retried


def test_a_search_that_keeps_failing_is_a_network_or_server_error_never_ambiguous(client, sandbox, monkeypatch):
    monkeypatch.setattr(reconkit.client.time, "sleep", lambda s: None)
    sandbox.faults = FaultPlan(rates={"search": {"503": 1.0}})
    with pytest.raises(ServerError) as info:
        client.find_credits_by_reference("x")
    assert not isinstance(info.value, AmbiguousOutcomeError)
    assert sandbox.count("POST", "search") == client.max_retries + 1


def test_a_reused_reference_code_names_the_earlier_credit_and_sends_nothing(client, sandbox):
    first = client.create_credit("5.00", "USD", card=CARD, reference_code="order-7")
    with pytest.raises(DuplicateReferenceError) as info:
        client.create_credit("6.00", "EUR", card=CARD, reference_code="order-7")
    assert isinstance(info.value, ReconkitError) and first.id in str(info.value) and "5.00 USD" in str(info.value)
    assert info.value.credit_id == first.id and sandbox.count("POST", "create") == 1


def test_an_intent_of_this_living_process_is_not_taken_for_abandoned(tmp_path):
    ledger = Ledger(tmp_path / "l.sqlite3")
    ledger.record_intent(reference_code="in-flight", transaction_id="t", amount="1.00", currency="USD",
                         environment="e", merchant_id="m")
    assert ledger.mark_abandoned_intents() == [] and ledger.credit("in-flight")["outcome"] == "intent"


_CHILD = """
import os
from reconkit import Client, Config
config = Config(os.environ["RK_MERCHANT"], os.environ["RK_KEY"], os.environ["RK_SECRET"], os.environ["RK_URL"],
                identity=os.environ["RK_IDENTITY"])
card = {"number": "4111111111111111", "expiration_month": "12", "expiration_year": "2031", "type": "001"}
Client(config, ledger=os.environ["RK_LEDGER"], timeout=(5, 300)).create_credit("7.00", "USD", card=card,
                                                                               reference_code="killed-1")
"""


def test_an_intent_left_by_a_killed_process_shows_as_unknown_on_the_next_start(sandbox, tmp_path):
    ledger_path = tmp_path / "ledger.sqlite3"
    sandbox.faults = FaultPlan(rates={"create": {"lost": 1.0}}, hang_seconds=300)
    # the credit is processed, its answer never comes
    kill_on_the_wire(sandbox, _CHILD, lambda: bool(_truth(sandbox, "killed-1")), RK_LEDGER=str(ledger_path))
    assert Ledger(ledger_path).credit("killed-1")["outcome"] == "intent"
    sandbox.faults = FaultPlan()

    app = IssueCreditApp(sandbox.client(ledger=str(ledger_path)))
    assert "unknown_outcome" in app.issued.value and app.lookup_button.layout.display == "flex"
    app.lookup_button.click()
    row = app.client.ledger.credit("killed-1")
    assert (row["outcome"], row["credit_id"]) == ("created", _truth(sandbox, "killed-1")[0])
    assert sandbox.count("POST", "create") == 1
