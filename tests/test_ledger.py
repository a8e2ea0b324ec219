"""The SQLite ledger under concurrent writers."""

from __future__ import annotations

import concurrent.futures
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from reconkit import Ledger, ReconkitError, UnresolvedVoidError
from reconkit.errors import DuplicateReferenceError

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


def test_a_reused_reference_code_names_the_earlier_credit(tmp_path):
    ledger = Ledger(tmp_path / "l.sqlite3")
    ledger.record_intent(reference_code="r", transaction_id="t", amount="1.00", currency="USD", environment="e",
                         merchant_id="m")
    ledger.record_outcome("r", "created", credit_id="1" * 22, status="PENDING")
    with pytest.raises(DuplicateReferenceError) as info:
        ledger.record_intent(reference_code="r", transaction_id="t2", amount="2.00", currency="EUR",
                             environment="e", merchant_id="m")
    assert isinstance(info.value, ReconkitError) and not isinstance(info.value, sqlite3.Error)
    assert (info.value.reference_code, info.value.credit_id, info.value.outcome) == ("r", "1" * 22, "created")
    assert "1" * 22 in str(info.value) and "1.00 USD" in str(info.value)
    assert len(ledger.credits()) == 1


def test_old_ledger_files_gain_the_new_columns(tmp_path):
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:  # the first release's credits table
        conn.execute("CREATE TABLE credits (reference_code TEXT PRIMARY KEY, transaction_id TEXT NOT NULL,"
                     " amount TEXT NOT NULL, currency TEXT NOT NULL, environment TEXT NOT NULL, merchant_id TEXT"
                     " NOT NULL, intent_at TEXT NOT NULL, outcome TEXT NOT NULL, credit_id TEXT, status TEXT,"
                     " reconciliation_id TEXT, raw_json TEXT, error TEXT, updated_at TEXT NOT NULL)")
        conn.execute("INSERT INTO credits VALUES ('old','t','1.00','USD','e','m','2026-01-01T00:00:00+00:00',"
                     "'created','1',NULL,NULL,NULL,NULL,'2026-01-01T00:00:00+00:00')")
    ledger = Ledger(path)
    ledger.record_intent(reference_code="new", transaction_id="t2", amount="1.00", currency="USD",
                         environment="e", merchant_id="m", instrument="card:4111111111111111")
    frame = ledger.credits()
    assert frame["reference_code"].tolist() == ["old", "new"]
    assert "4111111111111111" not in frame.to_csv()  # only a keyed hash of the instrument is kept


def test_of_concurrent_voids_of_one_credit_exactly_one_may_be_sent(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    sent_at = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

    def begin(i: int) -> bool:
        try:  # a ledger each, opened at once on a new file, as separate processes would
            Ledger(path).begin_void("1" * 22, reference_code=f"void-{i}", sent_at=sent_at, **SCOPE)
        except UnresolvedVoidError as exc:
            assert exc.credit_id == "1" * 22 and exc.sent_at.startswith("2026-11-02T09:00:00")
            return False
        return True

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(begin, range(16))) == 1
    ledger = Ledger(path)
    assert ledger.void("1" * 22, **SCOPE)["outcome"] == "unknown_outcome"
    ledger.record_void("1" * 22, "not_voided", status="PENDING", **SCOPE)
    ledger.begin_void("1" * 22, reference_code="void-again", sent_at=sent_at + timedelta(minutes=6), **SCOPE)
    assert ledger.void("1" * 22, **SCOPE)["reference_code"] == "void-again"
