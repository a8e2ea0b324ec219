"""The shared secret never shows: not in repr, str, errors, logs or a traceback's locals; every
error survives pickle."""

from __future__ import annotations

import base64
import logging
import pickle
import sys
import traceback

import pandas as pd
import pytest

import reconkit
from reconkit import Client, Config, errors
from reconkit.auth import CyberSourceAuth
from reconkit.breaks import IntakeCheck
from reconkit.sandbox import FaultPlan
from reconkit.secret import Secret

from .conftest import CARD, SEED_SECRET


def _traces(secret: str) -> list[str]:
    raw = base64.b64decode(secret)
    return [secret, secret[:16], raw.hex(), base64.urlsafe_b64encode(raw).decode().rstrip("="), repr(raw)[2:18]]


def _one_of_each() -> dict[str, errors.ReconkitError]:
    """An instance of every error class of the tree, with its attributes filled."""
    made: dict[str, errors.ReconkitError] = {
        "AmbiguousOutcomeError": errors.AmbiguousOutcomeError("No answer.", reference_code="r", transaction_id="t",
                                                              path="/pts/v2/credits"),
        "AmbiguousVoidError": errors.AmbiguousVoidError("No answer.", credit_id="1" * 22, reference_code="r",
                                                        path="/pts/v2/credits/" + "1" * 22 + "/voids"),
        "UnresolvedVoidError": errors.UnresolvedVoidError("1" * 22, sent_at="2026-11-02T09:00:00+00:00"),
        "ConfigError": errors.ConfigError("secret_key", "is missing"),
        "DuplicateReferenceError": errors.DuplicateReferenceError("r", credit_id="1" * 22, outcome="created",
                                                                  amount="1.00", currency="USD"),
        "NetworkError": errors.NetworkError("down", attempts=3),
        "SettlementFormatError": errors.SettlementFormatError(
            "bad amount", file="f.csv", line=3, column="amount", expected="a decimal",
            failure_cases=pd.DataFrame({"source_line": [3], "value": ["x"]})),
        "IntakeError": errors.IntakeError((IntakeCheck("merchant", False, "the settlement is merchant m9's"),)),
        "FieldError": errors.FieldError("tolerance", "“x” is not an amount"),
        "NotReadError": errors.NotReadError([errors.FieldError("ids", "the ids typed were not fetched")]),
        "DatabaseKindError": errors.DatabaseKindError("ledger.sqlite3", "ledger", "a reconkit sandbox database"),
        "SettlementEncodingError": errors.SettlementEncodingError("byte 0xe9 at offset 3", file="f.csv", line=2,
                                                                  encoding="utf-8"),
        "MissingExtraError": errors.MissingExtraError("spark", "pyspark", "spark-env"),
        "NotIndexedYetError": errors.NotIndexedYetError(404, {"reason": "NOT_FOUND", "message": "m"},
                                                        credit_id="1" * 22, outcome="created",
                                                        created_at="2026-11-02T09:00:00Z", correlation_id="c"),
        "DeclinedError": errors.DeclinedError(201, {"status": "DECLINED", "errorInformation": {"reason": "R"}},
                                              credit=reconkit.Credit({"id": "1" * 22, "status": "DECLINED"}),
                                              correlation_id="c"),
    }
    for name in errors.__all__:
        cls = getattr(errors, name)
        if name in made:
            continue
        if issubclass(cls, errors.ApiError):
            made[name] = cls(400, {"reason": "INVALID_DATA", "message": "m", "details": [{"field": "f",
                                                                                       "reason": "r"}]},
                             correlation_id="c", method="POST", path="/p", retry_after=2.0)
        else:
            made[name] = cls("message")
    return made


def test_every_error_class_survives_pickle_with_its_attributes():
    made = _one_of_each()
    assert set(made) == set(errors.__all__)  # the whole tree, not a sample
    for name, error in made.items():
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and str(copy) == str(error), name
        for attribute, value in vars(error).items():
            if isinstance(value, pd.DataFrame):
                pd.testing.assert_frame_equal(getattr(copy, attribute), value)
            elif attribute != "credit":
                assert getattr(copy, attribute) == value, (name, attribute)
    declined = pickle.loads(pickle.dumps(made["DeclinedError"]))
    assert declined.credit.id == "1" * 22


def test_no_trace_of_the_secret_anywhere(sandbox, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    secret = sandbox.credentials.secret_key
    texts: list[str] = []
    config = sandbox.config
    texts += [repr(config), str(config), f"{config}", repr(config.secret_key), str(config.secret_key),
              repr(CyberSourceAuth(config)), repr(sandbox), repr(sandbox.credentials)]
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
    for error in _one_of_each().values():
        texts += [str(error), repr(error)]
    try:
        Config("m", "k", "!!" + secret)
    except reconkit.ConfigError as exc:
        texts.append(str(exc))
    texts += [record.getMessage() for record in caplog.records]
    assert any("POST /pts/v2/credits" in t for t in texts)  # the log really was captured
    blob = "\n".join(texts)
    for trace in _traces(secret):
        assert trace not in blob


def _locals_after_raise(call) -> str:
    """Every local of every frame outside this test file (the caller's own secret is the caller's),
    as a locals-capturing traceback prints them."""
    try:
        call()
    except Exception:
        seen = []
        error = sys.exc_info()[1]
        while error is not None:  # the chained exceptions' frames too (raise ... from, implicit context)
            for frame, _line in traceback.walk_tb(error.__traceback__):
                if frame.f_code.co_filename != __file__:
                    seen += [f"{name}={value!r}" for name, value in frame.f_locals.items()]
            error = error.__cause__ or error.__context__
        text = "\n".join(seen)
        assert len(seen) > 3, text  # frames were really walked
        return text
    raise AssertionError("the call did not raise")


@pytest.mark.parametrize("case", ["auth_type", "merchant_id", "environment", "from_env", "from_env_dotenv",
                                  "from_sdk_dict", "from_sdk_dict_bad_env", "client_production"])
def test_a_traceback_capturing_locals_never_holds_the_secret(case, tmp_path):
    secret = SEED_SECRET
    env = {"CYBERSOURCE_MERCHANT_ID": "m", "CYBERSOURCE_KEY_ID": "k", "CYBERSOURCE_SECRET_KEY": secret}
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"CYBERSOURCE_SECRET_KEY={secret}\nCYBERSOURCE_MERCHANT_ID=m\nthis line is broken\n")
    sdk = {"merchantid": "m", "merchant_keyid": "k", "merchant_secretkey": secret,
           "run_environment": "apitest.cybersource.com", "authentication_type": "oauth"}
    calls = {
        "auth_type": lambda: Config("m", "k", secret, auth_type="oauth"),
        "merchant_id": lambda: Config("bad id", "k", secret),
        "environment": lambda: Config("m", "k", secret, "ftp://example.com"),
        "from_env": lambda: Config.from_env(env | {"CYBERSOURCE_AUTH_TYPE": "oauth"}, dotenv=None),
        "from_env_dotenv": lambda: Config.from_env({}, dotenv=dotenv),
        "from_sdk_dict": lambda: Config.from_sdk_dict(sdk),
        "from_sdk_dict_bad_env": lambda: Config.from_sdk_dict(sdk | {"authentication_type": "http_signature",
                                                                     "run_environment": "ftp://x"}),
        "client_production": lambda: Client(Config("m", "k", secret, "https://api.cybersource.com."),
                                            ledger=":memory:").create_credit("1.00", "USD", card=CARD),
    }
    text = _locals_after_raise(calls[case])
    for trace in _traces(secret):
        assert trace not in text


def test_the_secret_type_masks_and_signs():
    secret = Secret(SEED_SECRET)
    assert repr(secret) == str(secret) == f"{secret}" == "Secret('***')"
    assert secret == SEED_SECRET and secret == Secret(SEED_SECRET) and secret != "other"
    assert pickle.loads(pickle.dumps(secret)) == secret
    assert Secret(secret) == secret and Secret(None).is_blank() and not Secret("%%%").is_base64()
    import hashlib
    import hmac
    assert secret.hmac_sha256(b"m") == hmac.new(base64.b64decode(SEED_SECRET), b"m", hashlib.sha256).digest()
