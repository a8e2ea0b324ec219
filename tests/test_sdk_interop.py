"""The unmodified official SDK (cybersource-rest-client-python 0.0.80) against the sandbox over TLS.

The SDK runs in its own virtual environment (``make sdk-env``: it pins setuptools and must not mix
with ``.venv``); ``tests/sdk/drive_sdk.py`` drives it and prints what the SDK parsed. The sandbox
presents a throwaway self-signed certificate made for this test; the SDK is told to accept it only
through its own ``ssl_verify`` setting.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from reconkit import Config
from reconkit.auth import auth_headers
from reconkit.sandbox import Sandbox
from reconkit.sandbox.reporting import PBDR_REPORT_NAME

from .conftest import CARD, START

ROOT = Path(__file__).resolve().parent.parent
SDK_PYTHON = ROOT / ".venv-sdk" / "bin" / "python"
DRIVER = Path(__file__).resolve().parent / "sdk" / "drive_sdk.py"

if not SDK_PYTHON.exists():
    if os.environ.get("RECONKIT_REQUIRE_SDK"):
        raise RuntimeError(f"{SDK_PYTHON} is missing: run 'make sdk-env'")
    pytest.skip("the official SDK's venv is missing: 'make sdk-env' (make test builds it)", allow_module_level=True)


@pytest.fixture(scope="module")
def tls_sandbox(certificate):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    # tss_delay 0: Transaction Details answers at once (the live API lags by minutes).
    with Sandbox(start=START, seed=11, tls=context, tss_delay=timedelta(0)) as sb:
        # One credit settled on 2 November, its report ready, before the SDK starts (3 November 03:00).
        with sb.client() as client:
            # Trust the throwaway certificate. requests lets REQUESTS_CA_BUNDLE override a session's
            # verify, so the environment is switched off for this session, or the setting is ignored.
            client.session.trust_env = False
            client.session.verify = str(certificate[0])
            client.create_credit("42.00", "EUR", card=CARD)
        sb.advance(hours=18)
        yield sb


@pytest.fixture(scope="module")
def sdk_report(tls_sandbox) -> dict:
    config = tls_sandbox.config
    given = {"host": config.host, "merchant_id": config.merchant_id, "key_id": config.key_id,
             "secret_key": tls_sandbox.credentials.secret_key, "report_date": "2026-11-03", "report_name": PBDR_REPORT_NAME,
             "start_time": "2026-11-02T00:00:00Z", "end_time": "2026-11-03T00:00:00Z",
             "mle_config": tls_sandbox.sdk_config() | {"run_environment": config.host, "ssl_verify": 0}}
    run = subprocess.run([str(SDK_PYTHON), "-W", "ignore", str(DRIVER)], input=json.dumps(given),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout)


def _held(sb: Sandbox, credit_id: str) -> dict:
    return next(c for c in sb.credits() if c["id"] == credit_id)


@pytest.mark.parametrize("mode", ["create_signature", "create_jwt"])
def test_sdk_creates_credits_with_either_authentication(tls_sandbox, sdk_report, mode):
    created = sdk_report[mode]
    assert created["http_status"] == 201 and created["model"] == "PtsV2CreditsPost201Response"
    held = _held(tls_sandbox, created["id"])
    assert (created["reconciliation_id"], created["amount"], created["currency"]) == \
        (held["reconciliation_id"], held["amount"], held["currency"]) == (held["reconciliation_id"], "12.34", "USD")
    assert created["code"] == held["reference_code"] == ("sdk-signature" if mode == "create_signature" else "sdk-jwt")


def test_sdk_voids_with_jwt(tls_sandbox, sdk_report):
    void = sdk_report["void"]
    assert void["http_status"] == 201 and void["model"] == "PtsV2PaymentsVoidsPost201Response"
    assert void["status"] == "VOIDED" and void["amount"] == "12.34"
    assert _held(tls_sandbox, sdk_report["create_jwt"]["id"])["status"] == "VOIDED"
    assert _held(tls_sandbox, sdk_report["create_signature"]["id"])["status"] == "PENDING"


def test_sdk_reads_transaction_details(tls_sandbox, sdk_report):
    details = sdk_report["details"]
    held = _held(tls_sandbox, sdk_report["create_signature"]["id"])
    assert details["http_status"] == 200 and details["model"] == "TssV2TransactionsGet200Response"
    assert (details["id"], details["reconciliation_id"], details["amount"]) == \
        (held["id"], held["reconciliation_id"], held["amount"])
    assert details["applications"] == ["ics_credit"]


def test_sdk_sees_a_400_naming_the_field(sdk_report):
    refused = sdk_report["invalid_card"]
    assert refused["http_status"] == 400
    assert refused["body"]["reason"] == "INVALID_CARD"
    assert refused["body"]["details"] == [{"field": "paymentInformation.card.number", "reason": "INVALID_DATA"}]


def test_sdk_sees_a_401_for_a_wrong_secret(tls_sandbox, sdk_report):
    assert sdk_report["wrong_secret"] == {"http_status": 401, "body": {"response": {"rmsg": "Authentication Failed"}}}
    # The only refusal of the run is the wrong secret's: every other SDK request passed authentication.
    assert tls_sandbox.auth_failures == ["JWT signature mismatch"]
    assert {c["reference_code"] for c in tls_sandbox.credits()} >= {"sdk-signature", "sdk-jwt"}


def test_reconkit_jwt_passes_the_same_tls_sandbox(tls_sandbox, sdk_report, certificate):
    config = tls_sandbox.config
    jwt = Config(config.merchant_id, config.key_id, config.secret_key, config.base_url, auth_type="jwt")
    path = f"/tss/v2/transactions/{sdk_report['create_signature']['id']}"
    answer = requests.get(config.base_url + path, headers=auth_headers(jwt, "GET", path, None),
                          verify=str(certificate[0]), timeout=10)
    assert answer.status_code == 200 and answer.json()["id"] == sdk_report["create_signature"]["id"]
    assert tls_sandbox.url.startswith("https://")


@pytest.mark.parametrize("auth", ["signature", "jwt"])
def test_sdk_reads_the_reporting_api(tls_sandbox, sdk_report, auth):
    seen = sdk_report["reporting"][auth]
    [settled] = [c for c in tls_sandbox.credits() if c["batch_date"] == "2026-11-02"]
    assert seen["download_status"] == 200
    assert seen["page_status"] == 200 and seen["model"] == "ReportingV3PurchaseRefundDetailsGet200Response"
    assert seen["page_results"] == 1
    assert seen["settlements"] == [[settled["id"], settled["amount"], settled["currency"], settled["batch_id"]]]
    assert seen["references"] == [settled["reconciliation_id"]]
    # the official sample's search: date math, a sort of two keys, a time zone
    [signed] = [c["id"] for c in tls_sandbox.credits() if c["reference_code"] == "sdk-signature"]
    assert seen["search"] == {"http_status": 201, "model": "TssV2TransactionsPost201Response", "total_count": 1,
                              "ids": [signed]}
    # report search as the sample asks (executedTime) over 2 November: the report that ran then is
    # 1 November's (it runs when its day ends), and 1 November had no batch
    assert seen["reports"] == [200, "ReportingV3ReportsGet200Response", [[PBDR_REPORT_NAME, "NO_DATA"]]]
    assert seen["definitions"][:3] == [200, "ReportingV3ReportDefinitionsGet200Response", ["PaymentBatchDetailClass"]]
    assert seen["definitions"][3] == "ReportingV3ReportDefinitionsNameGet200Response"
    assert {"request_id", "trans_ref_no", "amount"} <= set(seen["definitions"][4])


def test_sdk_jwt_p12_with_mle_both_ways(tls_sandbox, sdk_report):
    """The SDK's own P12 JWT and JWE (jwcrypto) against the sandbox's (joserfc): a credit, its void and
    its details, every body encrypted on the wire both ways and decrypted by the other side."""
    mle = sdk_report["mle"]
    created = mle["create"]
    assert created["http_status"] == 201 and created["model"] == "PtsV2CreditsPost201Response"
    held = _held(tls_sandbox, created["id"])
    assert (created["code"], created["amount"], created["currency"]) == (held["reference_code"], "12.34", "USD") \
        == ("sdk-mle", held["amount"], held["currency"])
    assert mle["void"] == {"http_status": 201, "model": "PtsV2PaymentsVoidsPost201Response", "status": "VOIDED"}
    assert mle["details"] == {"http_status": 200, "model": "TssV2TransactionsGet200Response", "id": created["id"],
                              "amount": "12.34"}
    assert ("POST", "/pts/v2/credits", True, True) in tls_sandbox.mle_log
    assert ("POST", f"/pts/v2/credits/{created['id']}/voids", True, True) in tls_sandbox.mle_log
    assert ("GET", f"/tss/v2/transactions/{created['id']}", False, True) in tls_sandbox.mle_log
    assert mle["search"] == {"http_status": 201, "model": "TssV2TransactionsPost201Response", "total_count": 1,
                             "ids": [created["id"]]}
    assert ("POST", "/tss/v2/searches", True, True) in tls_sandbox.mle_log
