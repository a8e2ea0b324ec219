from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reconkit.sandbox import Sandbox

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
