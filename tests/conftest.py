from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reconkit.sandbox import Sandbox
from reconkit.sandbox.scenario import populate

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
CARD = {"number": "4111111111111111", "expiration_month": "12", "expiration_year": "2031", "type": "001"}
SEED_SECRET = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="


@pytest.fixture
def sandbox():
    with Sandbox(start=START, seed=7) as sb:
        yield sb


@pytest.fixture
def client(sandbox, tmp_path):
    c = sandbox.client(ledger=str(tmp_path / "ledger.sqlite3"), backoff_base=0.01, timeout=(2, 5))
    yield c
    c.close()

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
