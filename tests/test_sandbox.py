"""The sandbox over real HTTP: authentication, validation, lifecycle, faults, concurrency."""

from __future__ import annotations

import base64
import concurrent.futures
import json
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from reconkit import Client, Config, InvalidRequestError, NotFoundError
from reconkit.auth import http_date, sign_request
from reconkit.sandbox import FaultPlan, Sandbox, SandboxCredentials

from .conftest import CARD, SEED_SECRET, START
from .test_auth import BODY

VECTOR = SandboxCredentials("reconkit_test", "00000000-1111-2222-3333-444444444444", SEED_SECRET)


def _send(sb: Sandbox, method: str, path: str, body: bytes | None, *, date: str | None = None,
          config: Config | None = None, tamper=None) -> requests.Response:
    config = config or sb.config
    headers = sign_request(config, method, path, body, date or http_date())
    headers["Content-Type"] = "application/json"
    if tamper:
        body, headers = tamper(body, headers)
    return requests.request(method, sb.url + path, data=body, headers=headers, timeout=5)


def test_reference_vector_inputs_are_accepted_and_one_flipped_byte_is_not():
    with Sandbox(start=START, credentials=VECTOR) as sb:
        answer = _send(sb, "POST", "/pts/v2/credits", BODY)
        assert answer.status_code == 201, answer.text
        credit = answer.json()
        assert credit["clientReferenceInformation"]["code"] == "RTS-Auth"
        assert credit["paymentInformation"]["instrumentIdentifier"] == {"id": "7010000000016241111",
                                                                        "state": "ACTIVE"}
        flipped = bytearray(BODY)
        flipped[100] ^= 0x01

        def swap(body, headers):
            return bytes(flipped), headers
        answer = _send(sb, "POST", "/pts/v2/credits", BODY, tamper=swap)
        assert answer.status_code == 401
        assert answer.json() == {"response": {"rmsg": "Authentication Failed"}}
        assert sb.auth_failures == ["Digest does not match the body"]
        assert len(sb.credits()) == 1


@pytest.mark.parametrize(("name", "tamper", "reason"), [
    ("bad signature", lambda b, h: (b, h | {"Signature": h["Signature"][:-6] + 'AAAA="'}), "signature mismatch"),
    # The signature covers the Digest header, so a replaced Digest fails before the body is read.
    ("replaced digest", lambda b, h: (b, h | {"Digest": "SHA-256=" + base64.b64encode(b"x" * 32).decode()}),
     "signature mismatch"),
    ("unknown key", lambda b, h: (b, h | {"Signature": h["Signature"].replace('keyid="', 'keyid="x')}),
     "unknown key id"),
    ("unknown merchant", lambda b, h: (b, h | {"v-c-merchant-id": "someone_else"}), "unknown merchant id"),
    ("no signature", lambda b, h: (b, {k: v for k, v in h.items() if k != "Signature"}),
     "no Signature or Authorization header"),
])
def test_authentication_failures(sandbox, name, tamper, reason):
    answer = _send(sandbox, "POST", "/pts/v2/credits", BODY, tamper=tamper)
    assert answer.status_code == 401, name
    assert sandbox.auth_failures == [reason]


def test_stale_date_is_refused(sandbox):
    stale = http_date(time.time() - 16 * 60)
    assert _send(sandbox, "GET", "/pts/v2/credits/1", None, date=stale).status_code == 401
    assert sandbox.auth_failures == ["Date is more than 15 minutes off"]
    fresh = http_date(time.time() - 14 * 60)
    assert _send(sandbox, "GET", "/pts/v2/credits/1", None, date=fresh).status_code == 404


def test_parenthesised_request_target_is_refused_as_the_service_does(sandbox):
    def paren(body, headers):
        import hashlib
        import hmac
        lines = [f"host: {headers['Host']}", f"date: {headers['Date']}", "(request-target): get /pts/v2/credits/1",
                 f"v-c-merchant-id: {headers['v-c-merchant-id']}"]
        mac = base64.b64encode(hmac.new(base64.b64decode(sandbox.credentials.secret_key), "\n".join(lines).encode(),
                                        hashlib.sha256).digest()).decode()
        headers["Signature"] = (f'keyid="{sandbox.config.key_id}", algorithm="HmacSHA256", '
                                f'headers="host date (request-target) v-c-merchant-id", signature="{mac}"')
        return body, headers
    # CyberSource refuses "(request-target)" since 22 April 2024 (reference §3.1); so does the sandbox.
    assert _send(sandbox, "GET", "/pts/v2/credits/1", None, tamper=paren).status_code == 401
    assert sandbox.auth_failures == ["(request-target) is no longer accepted; sign request-target"]


@pytest.mark.parametrize("names", [
    "host request-target date digest v-c-merchant-id",       # the documented names in another order
    "host date request-target digest v-c-merchant-id user-agent",  # one header more than documented
    "host date request-target v-c-merchant-id",              # a POST whose digest is not signed
])
def test_only_the_documented_signed_header_list_is_accepted(sandbox, names):
    def resign(body, headers):
        import hashlib
        import hmac
        values = {"host": headers["Host"], "date": headers["Date"], "request-target": "post /pts/v2/credits",
                  "digest": headers["Digest"], "v-c-merchant-id": headers["v-c-merchant-id"],
                  "user-agent": "x"}
        headers["user-agent"] = "x"
        text = "\n".join(f"{name}: {values[name]}" for name in names.split())
        mac = base64.b64encode(hmac.new(base64.b64decode(sandbox.credentials.secret_key), text.encode(),
                                        hashlib.sha256).digest()).decode()
        headers["Signature"] = (f'keyid="{sandbox.config.key_id}", algorithm="HmacSHA256", headers="{names}", '
                                f'signature="{mac}"')
        return body, headers
    assert _send(sandbox, "POST", "/pts/v2/credits", BODY, tamper=resign).status_code == 401
    assert sandbox.auth_failures == ["signed headers must be exactly 'host date request-target digest "
                                     "v-c-merchant-id' (or with v-c-date for date)"]
    assert _send(sandbox, "POST", "/pts/v2/credits", BODY).status_code == 201  # the documented list passes


def test_metakey_signatures(tmp_path):
    with Sandbox(start=START, portfolio_id="portfolio_1") as sb:
        client = Client(sb.config, ledger=":memory:")
        assert client.create_credit("1.00", "USD", card=CARD).status == "PENDING"
        plain = Config(sb.config.merchant_id, sb.config.key_id, sb.config.secret_key, sb.url)
        assert _send(sb, "GET", "/pts/v2/credits/1", None, config=plain).status_code == 401


def test_unknown_path_answers_404_in_cybersource_shape(sandbox):
    answer = _send(sandbox, "GET", "/pts/v2/payments/1", None)
    assert answer.status_code == 404
    assert answer.json()["errorInformation"]["reason"] == "NOT_FOUND"
    assert answer.headers["v-c-correlation-id"]


def test_validation_errors_name_fields(sandbox):
    answer = _send(sandbox, "POST", "/pts/v2/credits", b'{"orderInformation":{"amountDetails":{"currency":"usd"}}}')
    body = answer.json()
    assert answer.status_code == 400 and body["status"] == "INVALID_REQUEST" and body["reason"] == "MISSING_FIELD"
    assert {d["field"] for d in body["details"]} == {"orderInformation.amountDetails.totalAmount",
                                                     "paymentInformation.card.number"}
    bad_card = json.dumps({"orderInformation": {"amountDetails": {"currency": "USD", "totalAmount": "1.001"}},
                           "paymentInformation": {"card": {"number": "4111111111111112", "expirationMonth": "12",
                                                           "expirationYear": "2031"}}}).encode()
    body = _send(sandbox, "POST", "/pts/v2/credits", bad_card).json()
    assert body["reason"] == "INVALID_CARD"
    assert {d["field"] for d in body["details"]} == {"orderInformation.amountDetails.totalAmount",
                                                     "paymentInformation.card.number"}
    assert _send(sandbox, "POST", "/pts/v2/credits", b"{not json").json()["details"][0]["field"] == "body"


def test_duplicate_transaction_id_expires_after_15_minutes(client, sandbox):
    client.create_credit("1.00", "USD", card=CARD, transaction_id="dup")
    with pytest.raises(InvalidRequestError, match="DUPLICATE_REQUEST"):
        client.create_credit("1.00", "USD", card=CARD, transaction_id="dup")
    sandbox.advance(minutes=16)
    assert client.create_credit("1.00", "USD", card=CARD, transaction_id="dup").status == "PENDING"


def test_ids_are_deterministic_from_the_seed():
    def run():
        with Sandbox(start=START, seed=5) as sb:
            c = Client(sb.config, ledger=":memory:")
            return [c.create_credit("1.00", "USD", card=CARD).raw for _ in range(3)]
    first, second = run(), run()
    strip = [{k: v for k, v in r.items() if k != "clientReferenceInformation"} for r in first]
    assert strip == [{k: v for k, v in r.items() if k != "clientReferenceInformation"} for r in second]
    epoch = str(int(START.timestamp()))[1:]  # the documented shape: epoch seconds without the leading 1
    assert all(len(r["id"]) == 22 and r["id"].startswith(epoch) for r in first)
    assert all(len(r["reconciliationId"]) == 16 for r in first)


def test_batch_cutoff_and_clock(client, sandbox):
    early = client.create_credit("1.00", "USD", card=CARD)
    voided = client.create_credit("2.00", "USD", card=CARD)
    client.void_credit(voided)
    assert sandbox.advance(hours=14) == []  # 09:00 -> 23:00, before midnight
    late = None
    sandbox.advance(hours=2)  # past midnight: the 2026-11-02 batch runs
    late = client.create_credit("3.00", "USD", card=CARD)
    rows = {r["id"]: r for r in sandbox.credits()}
    assert rows[early.id]["status"] == "TRANSMITTED" and rows[early.id]["batch_date"] == "2026-11-02"
    assert rows[voided.id]["status"] == "VOIDED" and rows[voided.id]["batch_date"] is None
    assert rows[late.id]["status"] == "PENDING"
    with pytest.raises(ValueError):
        sandbox.advance(hours=-1)


def test_restart_keeps_credits_and_clock(tmp_path):
    db = str(tmp_path / "sandbox.sqlite3")
    with Sandbox(start=START, db=db) as sb:
        credit = Client(sb.config, ledger=":memory:").create_credit("7.00", "GBP", card=CARD)
        sb.advance(hours=3)
        moved = sb.now()
    with Sandbox(db=db) as sb:
        assert sb.now() == moved
        again = Client(sb.config, ledger=":memory:").get_credit(credit.id)
        assert again.raw == credit.raw
        assert Client(sb.config, ledger=":memory:").create_credit("1.00", "USD", card=CARD).id != credit.id


def test_search_by_reference(client):
    credit = client.create_credit("1.00", "USD", card=CARD, reference_code="find-me")
    client.create_credit("1.00", "USD", card=CARD, reference_code="other")
    found = client.find_credits_by_reference("find-me")
    assert [c.id for c in found] == [credit.id]
    assert found[0].reconciliation_id == credit.reconciliation_id and found[0].amount == credit.amount


def test_hung_get_times_out_then_retries(sandbox, monkeypatch):
    import reconkit.client
    monkeypatch.setattr(reconkit.client.time, "sleep", lambda s: None)
    with Client(sandbox.config, ledger=":memory:", timeout=(2, 1.0)) as c:
        credit = c.create_credit("1.00", "USD", card=CARD)
        sandbox.faults = FaultPlan(rates={"get": {"hang": 0.5}}, hang_seconds=3, seed=2)
        for _ in range(4):
            assert c.get_credit(credit).id == credit.id


def test_latency_is_injected(sandbox, client):
    sandbox.faults = FaultPlan(latency_ms=50)
    started = time.perf_counter()
    with pytest.raises(NotFoundError):
        client.get_credit("1")
    assert time.perf_counter() - started >= 0.1  # two GETs (self link, TSS), each delayed


def test_faults_are_reproducible():
    draws = [[FaultPlan.uniform(0.5, seed=9).draw("get", "GET")[0] for _ in range(1)] for _ in range(2)]
    plan_a, plan_b = FaultPlan.uniform(0.5, seed=9), FaultPlan.uniform(0.5, seed=9)
    assert [plan_a.draw("get", "GET") for _ in range(50)] == [plan_b.draw("get", "GET") for _ in range(50)]
    assert draws[0] == draws[1]
    with pytest.raises(ValueError, match="unknown fault"):
        FaultPlan(rates={"get": {"explode": 0.1}})
    assert FaultPlan.parse(["get:429=0.1", "reset=0.05"]).rates == {"get": {"429": 0.1}, "*": {"reset": 0.05}}


def test_64_concurrent_requests(sandbox):
    with Client(sandbox.config, ledger=":memory:", pool_size=64) as c, \
            concurrent.futures.ThreadPoolExecutor(64) as pool:
        credits = list(pool.map(lambda i: c.create_credit(f"{i + 1}.00", "USD", card=CARD), range(64)))
        fetched = list(pool.map(c.get_credit, credits))
    assert len({cr.id for cr in credits}) == 64
    assert [f.id for f in fetched] == [cr.id for cr in credits]
    assert len(sandbox.credits()) == 64


def _serve(*options: str) -> tuple[subprocess.Popen, str, dict[str, str]]:
    """Start ``reconkit sandbox`` on a free port: the process, its first line and the variables it
    prints (up to "Ctrl-C to stop")."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "reconkit", "sandbox", "--port", str(port), "--seed", "3",
                             *options], stdout=subprocess.PIPE, text=True)
    first = proc.stdout.readline()
    printed = {}
    for line in proc.stdout:
        if line.startswith("Ctrl-C to stop"):
            break
        name, sep, value = line.strip().partition("=")
        if sep and name.isupper():
            printed[name] = value.split()[0]
    return proc, first, printed


def test_cli_serves_and_prints_credentials(tmp_path):
    proc, first, printed = _serve()
    try:
        assert "listening on http://127.0.0.1:" in first
        config = Config.from_env(printed, dotenv=None)
        assert config.secret_key == SandboxCredentials.for_seed(3).secret_key
        with Client(config, ledger=":memory:") as c:
            assert c.create_credit("1.00", "USD", card=CARD).status == "PENDING"
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()  # else its pipe is left for the garbage collector, which warns


def test_cli_serves_https_with_the_given_certificate_and_says_how_to_trust_it(certificate, monkeypatch):
    cert, key = certificate
    proc, first, printed = _serve("--tls-cert", str(cert), "--tls-key", str(key))
    try:
        assert "listening on https://127.0.0.1:" in first
        url = printed["CYBERSOURCE_ENVIRONMENT"]
        assert url.startswith("https://") and printed["REQUESTS_CA_BUNDLE"] == str(cert.resolve())
        with pytest.raises(requests.exceptions.SSLError):  # the certificate is not trusted by default
            requests.get(url, timeout=5, verify=True)
        # Set as printed, the variables give a client that creates a credit over TLS.
        for name, value in printed.items():
            monkeypatch.setenv(name, value)
        with Client(Config.from_env(dotenv=None), ledger=":memory:") as c:
            assert c.create_credit("1.00", "USD", card=CARD).status == "PENDING"
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()  # else its pipe is left for the garbage collector, which warns


def test_cli_help_documents_triggers():
    out = subprocess.run([sys.executable, "-m", "reconkit", "sandbox", "--help"], capture_output=True, text=True,
                         check=True).stdout
    assert "2005.00" in out and "DECLINED" in out and "INVALID_AMOUNT" in out


def test_tss_delay_is_configurable():
    with Sandbox(start=START, tss_delay=timedelta(0), self_link_status=405) as sb:
        c = Client(sb.config, ledger=":memory:")
        credit = c.create_credit("1.00", "USD", card=CARD)
        assert c.get_credit(credit.id).source == "tss"


def test_cli_settlement_from_a_sandbox_database(tmp_path):
    db = tmp_path / "sandbox.sqlite3"
    with Sandbox(start=START, db=str(db)) as sb:
        client = Client(sb.config, ledger=":memory:")
        for amount in ("1.00", "2.00", "3.00"):
            client.create_credit(amount, "USD", card=CARD)
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "reconkit", "sandbox", "settlement", "--db", str(db), "--format",
                          "pbdr_xml", "--advance-hours", "24", "--discrepancy", "unexpected=2", "--out", str(out)],
                         capture_output=True, text=True, check=True)
    files = sorted(p.name for p in out.iterdir())
    assert any(f.endswith(".xml") for f in files) and not any(f.endswith("_truth.csv") for f in files)
    # The truth is beside the settlement folder, not in it: a glob over the folder reads settlement only.
    assert [p.name for p in (tmp_path / "truth").iterdir()] == [f"{Path(files[0]).stem}_truth.csv"]
    assert "UNEXPECTED_SETTLEMENT" in run.stdout and "MATCHED" in run.stdout
    missing = subprocess.run([sys.executable, "-m", "reconkit", "sandbox", "settlement", "--db",
                              str(tmp_path / "nope.sqlite3")], capture_output=True, text=True)
    assert missing.returncode != 0 and "no such sandbox database" in missing.stderr


def test_two_sandboxes_sharing_a_database_mint_distinct_ids(tmp_path):
    db = str(tmp_path / "shared.sqlite3")
    with Sandbox(start=START, db=db, id_salt="a") as first, Sandbox(db=db, id_salt="b") as second:
        ids = []
        for sb in (first, second, first, second):
            ids.append(Client(sb.config, ledger=":memory:").create_credit("1.00", "USD", card=CARD).id)
        assert len(set(ids)) == 4
        assert len(second.credits()) == 4  # both write to, and read from, the one file


def test_resume_real_time_catches_up_and_ticks(sandbox):
    from datetime import UTC, datetime
    credit = Client(sandbox.config, ledger=":memory:").create_credit("1.00", "USD", card=CARD)
    batches = sandbox.state.resume_real_time()
    assert batches  # every midnight since 2026-11-02 was a cut-off; the credit's batch ran
    assert [r["status"] for r in sandbox.credits() if r["id"] == credit.id] == ["TRANSMITTED"]
    assert abs((sandbox.now() - datetime.now(UTC)).total_seconds()) < 5
    later = Client(sandbox.config, ledger=":memory:").create_credit("1.00", "USD", card=CARD)
    assert later.submit_time >= credit.submit_time
