"""A void with no usable answer through the public API against the sandbox over HTTP: it is an
unknown outcome naming its credit, never resent, recorded in the ledger, and settled by reading
the credit back (VOIDED: done; anything else after the lookup delay: not done). The truth is the
credit's status in the sandbox. A void is written down before it is sent, so one whose
process was killed on the wire is unknown too."""

from __future__ import annotations

import socket

import pytest

from reconkit import (
    AmbiguousOutcomeError,
    AmbiguousVoidError,
    Client,
    Config,
    InvalidRequestError,
    Ledger,
    NetworkError,
    ServerError,
    UnresolvedVoidError,
)
from reconkit.sandbox import FaultPlan
from reconkit.widgets import IssueCreditApp
from reconkit.widgets.issue import VOID_UNKNOWN

from .conftest import CARD, kill_on_the_wire
from .test_issue_app import table

PROCESSED = {"html_502": True, "truncated": True, "lost": True, "bad_json": True,
             "html_503": False, "bare_500": False, "503": False, "reset": False, "hang": False}
"""Whether the sandbox carries out the void before the fault (from reconkit.sandbox.faults and the
server's order of fault and handling)."""


def _status(sandbox, credit_id: str) -> str:
    return next(c["status"] for c in sandbox.credits() if c["id"] == credit_id)


@pytest.fixture
def short(sandbox, tmp_path):
    """A client whose read timeout a hung void outlasts (a normal answer never does)."""
    c = sandbox.client(ledger=str(tmp_path / "ledger.sqlite3"), backoff_base=0.01, timeout=(2, 1.5))
    yield c
    c.close()


@pytest.mark.parametrize("kind", sorted(PROCESSED))
def test_a_void_without_a_usable_answer_is_unknown_then_settled_by_the_credit_s_status(short, sandbox, kind):
    client = short
    credit = client.create_credit("12.00", "USD", card=CARD, reference_code=f"c-{kind}")
    sandbox.faults = FaultPlan(rates={"void": {kind: 1.0}}, hang_seconds=5)
    with pytest.raises(AmbiguousVoidError) as info:
        client.void_credit(credit.id)
    error = info.value
    assert isinstance(error, AmbiguousOutcomeError) and error.credit_id == credit.id
    assert "Void outcome unknown" in str(error) and credit.id in str(error) and "not resent" in str(error)
    assert sandbox.count("POST", "void") == 1
    voided = _status(sandbox, credit.id) == "VOIDED"
    assert voided == PROCESSED[kind]  # both branches below are exercised across the kinds
    row = client.ledger.void(credit.id, environment=client.config.ledger_environment, merchant_id=client.config.merchant_id)
    assert (row["outcome"], row["reference_code"]) == ("unknown_outcome", f"void-{credit.id}")

    sandbox.faults = FaultPlan()
    with pytest.raises(UnresolvedVoidError) as again:  # never resent blindly, not even by hand
        client.void_credit(credit.id)
    assert credit.id in str(again.value) and sandbox.count("POST", "void") == 1

    [first] = client.resolve_unknown()
    assert (first.action, first.credit.id, first.reference_code) == ("void", credit.id, f"void-{credit.id}")
    if voided:
        assert first.outcome == "voided" and first.credit.status == "VOIDED"
    else:
        assert first.outcome == "unknown_outcome"  # still PENDING, but too soon to tell
        sandbox.advance(client.tss_delay)
        [first] = client.resolve_unknown()
        assert (first.outcome, first.credit.status) == ("not_voided", _status(sandbox, credit.id))
    assert client.ledger.credit(f"c-{kind}")["status"] == _status(sandbox, credit.id)
    assert client.resolve_unknown() == []  # settled for good
    if not voided:  # the void was not done: it may be sent again, and this time it is
        assert client.void_credit(credit.id).status == "VOIDED" and _status(sandbox, credit.id) == "VOIDED"
        assert client.ledger.void(credit.id, environment=client.config.ledger_environment,
                                  merchant_id=client.config.merchant_id)["outcome"] == "voided"


def test_a_credit_batched_while_its_void_was_unknown_is_not_voided(client, sandbox):
    credit = client.create_credit("5.00", "EUR", card=CARD)
    sandbox.faults = FaultPlan(rates={"void": {"html_503": 1.0}})
    with pytest.raises(AmbiguousVoidError):
        client.void_credit(credit)
    sandbox.faults = FaultPlan()
    sandbox.advance(hours=25)
    [resolution] = client.resolve_unknown()
    assert resolution.outcome == "not_voided" and resolution.credit.status != "VOIDED"
    assert _status(sandbox, credit.id) == "TRANSMITTED"
    with pytest.raises(InvalidRequestError) as info:  # allowed to try again, and refused: batched
        client.void_credit(credit)
    assert info.value.reason == "NOT_VOIDABLE"


def test_cybersource_s_own_502_refusal_of_a_void_is_definite(client, sandbox):
    credit = client.create_credit("7.00", "USD", card=CARD)
    sandbox.faults = FaultPlan(rates={"void": {"502": 1.0}})
    with pytest.raises(ServerError) as info:
        client.void_credit(credit.id)
    assert info.value.reason == "SYSTEM_ERROR" and not isinstance(info.value, AmbiguousOutcomeError)
    scope = {"environment": client.config.ledger_environment, "merchant_id": client.config.merchant_id}
    assert client.ledger.void(credit.id, **scope)["outcome"] == "rejected" and client.resolve_unknown() == []
    sandbox.faults = FaultPlan()
    assert client.void_credit(credit.id).status == "VOIDED" and _status(sandbox, credit.id) == "VOIDED"


def test_resolving_one_reference_leaves_the_other_void_unknown(client, sandbox):
    one = client.create_credit("1.00", "USD", card=CARD, reference_code="credit-one")
    two = client.create_credit("2.00", "USD", card=CARD, reference_code="credit-two")
    sandbox.faults = FaultPlan(rates={"void": {"html_502": 1.0}})
    for credit in (one, two):
        with pytest.raises(AmbiguousVoidError):
            client.void_credit(credit)  # a Credit: the void carries the credit's reference code
    sandbox.faults = FaultPlan()
    [only] = client.resolve_unknown("credit-two")
    assert (only.action, only.credit.id, only.outcome) == ("void", two.id, "voided")
    [left] = client.resolve_unknown()
    assert (left.credit.id, left.outcome) == (one.id, "voided")


_CHILD = """
import os
from reconkit import Client, Config
config = Config(os.environ["RK_MERCHANT"], os.environ["RK_KEY"], os.environ["RK_SECRET"], os.environ["RK_URL"],
                identity=os.environ["RK_IDENTITY"])
Client(config, ledger=os.environ["RK_LEDGER"], timeout=(5, 300)).void_credit(os.environ["RK_CREDIT"])
"""


def test_a_void_whose_process_was_killed_on_the_wire_is_unknown_on_the_next_start(sandbox, tmp_path):
    ledger_path = tmp_path / "ledger.sqlite3"
    with sandbox.client(ledger=str(ledger_path)) as client:
        credit = client.create_credit("9.00", "USD", card=CARD, reference_code="void-killed")
        scope = {"environment": client.config.ledger_environment, "merchant_id": client.config.merchant_id}
    sandbox.faults = FaultPlan(rates={"void": {"lost": 1.0}}, hang_seconds=300)
    # the void is carried out, its answer never comes
    kill_on_the_wire(sandbox, _CHILD, lambda: _status(sandbox, credit.id) == "VOIDED", RK_LEDGER=str(ledger_path),
                     RK_CREDIT=credit.id)
    assert Ledger(ledger_path).void(credit.id, **scope)["outcome"] == "unknown_outcome"
    sandbox.faults = FaultPlan()

    app = IssueCreditApp(sandbox.client(ledger=str(ledger_path)))
    assert {r["Credit id"]: r["Status"] for r in table(app.issued.value)} == {credit.id: VOID_UNKNOWN}
    with pytest.raises(UnresolvedVoidError):  # never resent blindly
        app.client.void_credit(credit.id)
    app.lookup_button.click()
    [row] = table(app.lookup_result.value)
    assert (row["Looked up"], row["Now"], row["Credit id"], row["Status"]) == ("void", "voided", credit.id, "VOIDED")
    assert sandbox.count("POST", "void") == 1 and _status(sandbox, credit.id) == "VOIDED"


def test_a_void_that_could_not_connect_was_not_sent_and_may_be_sent_again(sandbox, tmp_path):
    with socket.socket() as probe:  # a loopback port nobody listens on: the connection is refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    creds = sandbox.credentials
    config = Config(creds.merchant_id, creds.key_id, creds.secret_key, f"http://127.0.0.1:{port}")
    with Client(config, ledger=str(tmp_path / "ledger.sqlite3")) as client:
        scope = {"environment": client.config.ledger_environment, "merchant_id": client.config.merchant_id}
        for _ in range(2):  # the second is tried too: not refused as an unresolved void
            with pytest.raises(NetworkError):
                client.void_credit("1" * 22)
            assert client.ledger.void("1" * 22, **scope)["outcome"] == "not_sent"
        assert client.resolve_unknown() == []


def test_a_void_of_a_credit_that_cannot_be_read_back_does_not_hold_up_the_other_lookups(client, sandbox):
    real = client.create_credit("3.00", "USD", card=CARD)
    nobody = "9" * 22  # no credit has this id: the void is refused upstream, and the proxy hides it
    sandbox.faults = FaultPlan(rates={"void": {"html_502": 1.0}})
    for credit_id in (nobody, real.id):
        with pytest.raises(AmbiguousVoidError):
            client.void_credit(credit_id)
    sandbox.faults = FaultPlan()
    first, second = client.resolve_unknown()
    assert (first.credit_id, first.credit, first.matches, first.outcome) == (nobody, None, 0, "unknown_outcome")
    assert (second.credit_id, second.outcome) == (real.id, "voided") and _status(sandbox, real.id) == "VOIDED"
    sandbox.advance(client.tss_delay)
    [first] = client.resolve_unknown()
    assert (first.credit_id, first.outcome) == (nobody, "not_voided")
    scope = {"environment": client.config.ledger_environment, "merchant_id": client.config.merchant_id}
    assert "not found" in client.ledger.void(nobody, **scope)["error"] and client.resolve_unknown() == []
