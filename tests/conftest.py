from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconkit.sandbox import Sandbox
from reconkit.sandbox.scenario import populate

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

_TIERS = {"test_browser": "browser", "test_sdk_interop": "sdk", "test_notebooks": "notebook",
          "test_spark_notebook": "notebook", "test_demo": "notebook", "test_spark_read": "spark",
          "test_spark_reconcile": "spark"}
"""The modules outside ``make test-fast``, by what they need: a real browser, the official SDK's
venv, a Jupyter kernel (the demo executes notebook 02) or a JVM."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tier = _TIERS.get(item.module.__name__.rpartition(".")[2]) if item.module else None
        if tier:
            item.add_marker(tier)
CARD = {"number": "4111111111111111", "expiration_month": "12", "expiration_year": "2031", "type": "001"}
SEED_SECRET = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="


@pytest.fixture(scope="session")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (PEM files), valid for a day, made with
    the openssl CLI."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


@pytest.fixture
def sandbox():
    with Sandbox(start=START, seed=7) as sb:
        yield sb


@pytest.fixture
def client(sandbox, tmp_path):
    c = sandbox.client(ledger=str(tmp_path / "ledger.sqlite3"), backoff_base=0.01, timeout=(2, 5))
    yield c
    c.close()

def kill_on_the_wire(sandbox, script: str, done: Callable[[], bool], **env: str) -> None:
    """Run ``script`` in a child Python given the sandbox's credentials (``RK_MERCHANT``, ``RK_KEY``,
    ``RK_SECRET``, ``RK_URL``, ``RK_IDENTITY``) and ``env``, and kill it once ``done()`` says the sandbox carried out
    its POST (whose answer a ``lost`` fault holds back)."""
    creds = sandbox.credentials
    env = dict(os.environ, RK_MERCHANT=creds.merchant_id, RK_KEY=creds.key_id, RK_SECRET=creds.secret_key,
               RK_URL=sandbox.url, RK_IDENTITY=sandbox.identity, **env)
    child = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=Path(__file__).parents[1])
    try:
        for _ in range(1200):
            if done() or child.poll() is not None:
                break
            time.sleep(0.1)
        assert child.poll() is None, "the child exited before it could be killed"
        child.kill()
    finally:
        child.wait()


ALL_KINDS = {"missing": 3, "amount": 3, "currency": 2, "duplicate": 2, "unexpected": 3, "voided_settled": 1,
             "next_day": 2, "debit_shared_id": 2, "whitespace": 3, "recon_id_missing": 2}
"""Every discrepancy kind at once."""


@pytest.fixture(scope="module")
def world():
    """A sandbox with 90 credits over three days (declines, voids) and those credits fetched back."""
    with Sandbox(start=START.replace(hour=6), seed=21) as sb:
        client = sb.client()
        scenario = populate(sb, client, 90, seed=21, days=3, void_rate=0.08)
        credits = client.fetch_credits(scenario.credit_ids, progress=False).to_frame()
        yield sb, scenario, credits
