"""The SQLite ledger under concurrent writers."""

from __future__ import annotations

import concurrent.futures
from datetime import timedelta

from reconkit import Ledger

SCOPE = {"environment": "http://sandbox", "merchant_id": "m"}


def test_concurrent_writers_of_one_process_lose_nothing(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite3")

    def write(i: int) -> None:
        ref = f"ref-{i:04d}"
        ledger.record_intent(reference_code=ref, transaction_id=f"t{i}", amount=f"{i}.00", currency="USD",
                             environment="http://sandbox", merchant_id="m")
        ledger.record_outcome(ref, "created", credit_id=f"{i:022d}", status="PENDING", raw={"id": f"{i:022d}"})
        ledger.cache_put([(f"{i:022d}", {"id": f"{i:022d}"}, "self_link", "PENDING")], **SCOPE)

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        list(pool.map(write, range(400)))
    frame = Ledger(tmp_path / "ledger.sqlite3").credits()  # a second connection sees every row
    assert len(frame) == 400 and set(frame["outcome"]) == {"created"}
    assert frame["credit_id"].str.len().eq(22).all() and frame["amount"].iloc[0] == "0.00"
    assert ledger.cache_size() == 400
    assert len(ledger.cache_get_many([f"{i:022d}" for i in range(10)], max_age=timedelta(hours=1),
                                     final_statuses=(), **SCOPE)) == 10


def test_a_reference_code_is_recorded_once(tmp_path):
    import sqlite3

    import pytest
    ledger = Ledger(tmp_path / "l.sqlite3")
    ledger.record_intent(reference_code="r", transaction_id="t", amount="1.00", currency="USD", environment="e",
                         merchant_id="m")
    with pytest.raises(sqlite3.IntegrityError):
        ledger.record_intent(reference_code="r", transaction_id="t2", amount="1.00", currency="USD",
                             environment="e", merchant_id="m")
    assert len(ledger.credits()) == 1
