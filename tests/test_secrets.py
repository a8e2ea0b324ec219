"""The shared secret never shows: not in repr, str, errors or logs."""

from __future__ import annotations

import base64
import logging

import pytest

import reconkit
from reconkit import Client, Config, errors
from reconkit.auth import CyberSourceAuth
from reconkit.sandbox import FaultPlan

from .conftest import CARD


def _traces(secret: str) -> list[str]:
    raw = base64.b64decode(secret)
    return [secret, secret[:16], raw.hex(), base64.urlsafe_b64encode(raw).decode().rstrip("=")]


def test_no_trace_of_the_secret_anywhere(sandbox, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    secret = sandbox.config.secret_key
    texts: list[str] = []
    config = sandbox.config
    texts += [repr(config), str(config), f"{config}", repr(CyberSourceAuth(config)), repr(sandbox),
              repr(sandbox.credentials)]
    with Client(config, ledger=str(tmp_path / "l.sqlite3"), timeout=(2, 1.5)) as client:
        texts += [repr(client), str(client)]
        credit = client.create_credit("1.00", "USD", card=CARD)
        texts += [repr(credit), str(client.ledger.credits().to_dict())]
        bad = Config(config.merchant_id, config.key_id, "AAAA", sandbox.url)
        with Client(bad, ledger=":memory:") as other, pytest.raises(reconkit.AuthenticationError) as info:
            other.get_credit(credit.id)
        texts += [str(info.value), repr(info.value)]
        sandbox.faults = FaultPlan(rates={"create": {"lost": 1.0}}, hang_seconds=3)
        with pytest.raises(reconkit.AmbiguousOutcomeError) as amb:
            client.create_credit("1.00", "USD", card=CARD)
        texts += [str(amb.value)]
    for name in errors.__all__:
        cls = getattr(errors, name)
        try:
            instance = cls(401, {"response": {"rmsg": "x"}})
        except TypeError:
            instance = cls("message", reference_code="r", transaction_id="t") if "Ambiguous" in name else (
                cls("field", "message") if name == "ConfigError" else cls("message"))
        texts += [str(instance), repr(instance)]
    try:
        Config("m", "k", "!!" + secret)
    except reconkit.ConfigError as exc:
        texts.append(str(exc))
    texts += [record.getMessage() for record in caplog.records]
    assert any("POST /pts/v2/credits" in t for t in texts)  # the log really was captured
    blob = "\n".join(texts)
    for trace in _traces(secret):
        assert trace not in blob
