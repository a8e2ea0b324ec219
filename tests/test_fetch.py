"""Bulk fetch against the sandbox: faults, cache, interruption, order."""

from __future__ import annotations

import _thread
import threading
import time
from datetime import timedelta

import pytest

import reconkit.client
from reconkit import Client
from reconkit.sandbox import FaultPlan
from reconkit.sandbox.scenario import populate

from .conftest import CARD


@pytest.fixture
def issued(sandbox, tmp_path):
    issuer = sandbox.client()
    ids = [issuer.create_credit(f"{i % 50 + 1}.{i % 100:02d}", "USD", card=CARD).id for i in range(150)]
    return ids


def _gets_for(sandbox, ids):
    wanted = set(ids)
    return sum(1 for m, p, e in sandbox.requests if m == "GET" and p.rsplit("/", 1)[-1] in wanted)


def test_ids_are_cleaned_and_malformed_ones_reported(client, issued, sandbox):
    messy = [f"  {issued[0]} ", issued[1], issued[0], "4.17379E+21", "", "abc", issued[2] + "\n"]
    result = client.fetch_credits(messy, progress=False)
    assert [c.id for c in result.credits] == issued[:3]
    assert result.failed["id"].tolist() == ["4.17379E+21", "", "abc"]
    assert set(result.failed["error"]) == {"MalformedId"} and result.failed["attempts"].tolist() == [0, 0, 0]
    assert result.requested == 6 == len(result.credits) + len(result.failed)
    assert _gets_for(sandbox, ["4.17379E+21", "abc"]) == 0


def test_every_id_ends_in_credits_or_failed_under_faults_then_the_cache_completes(sandbox, issued, tmp_path,
                                                                                    monkeypatch):
    monkeypatch.setattr(reconkit.client.time, "sleep", lambda s: None)
    unknown = ["1111111111111111111111", "2222222222222222222222"]
    ids = issued + unknown
    sandbox.faults = FaultPlan.uniform(0.10, kinds=("429", "502", "503", "reset", "hang", "bad_json", "truncated"),
                                       endpoints=("get", "tss"), hang_seconds=1, retry_after="0", seed=5)
    ledger = str(tmp_path / "ledger.sqlite3")
    # No retries here, so ~10% of ids fail (P(none failing) ~ 1e-7): both branches are exercised.
    with Client(sandbox.config, ledger=ledger, timeout=(2, 0.3), max_retries=0) as client:
        first = client.fetch_credits(ids, workers=16, progress=False)
    assert len(first.credits) + len(first.failed) == len(ids)
    assert {c.id for c in first.credits}.isdisjoint(set(first.failed["id"]))
    assert set(unknown) <= set(first.failed["id"])
    assert len(first.failed) > len(unknown)  # some ids really did fail under faults
    assert first.failed["error"].notna().all() and first.failed["message"].notna().all()
    assert [c.id for c in first.credits] == [i for i in ids if i in {c.id for c in first.credits}]
    sandbox.faults = FaultPlan()
    held = {c.id for c in first.credits}
    before = _gets_for(sandbox, held)
    with Client(sandbox.config, ledger=ledger) as client:
        second = client.fetch_credits(ids, progress=False)
    assert _gets_for(sandbox, held) == before  # nothing held was fetched again
    assert second.from_cache == len(held)
    assert {c.id for c in second.credits} == set(issued)
    assert second.failed["id"].tolist() == unknown
    assert (second.failed["error"] == "NotFoundError").all() and (second.failed["http_status"] == 404).all()


def test_refresh_and_max_age_refetch(client, issued, sandbox):
    client.fetch_credits(issued[:5], progress=False)
    assert _gets_for(sandbox, issued[:5]) == 5
    client.fetch_credits(issued[:5], progress=False)
    assert _gets_for(sandbox, issued[:5]) == 5
    client.fetch_credits(issued[:5], progress=False, refresh=True)
    assert _gets_for(sandbox, issued[:5]) == 10
    time.sleep(0.01)
    client.fetch_credits(issued[:5], progress=False, max_age=timedelta(microseconds=1))
    assert _gets_for(sandbox, issued[:5]) == 15


def test_interrupted_fetch_keeps_what_it_fetched(sandbox, issued, tmp_path):
    sandbox.faults = FaultPlan(latency_ms=20)
    ledger = str(tmp_path / "ledger.sqlite3")
    client = Client(sandbox.config, ledger=ledger)

    def interrupt_after_some():
        while _gets_for(sandbox, issued) < 40:
            time.sleep(0.005)
        _thread.interrupt_main()
    threading.Thread(target=interrupt_after_some, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        client.fetch_credits(issued, workers=4, progress=False)
    kept = client.ledger.cache_size()
    assert 40 <= kept < len(issued)
    sandbox.faults = FaultPlan()
    gets_before = _gets_for(sandbox, issued)
    resumed = client.fetch_credits(issued, workers=4, progress=False)
    assert resumed.from_cache == kept and len(resumed.credits) == len(issued)
    assert _gets_for(sandbox, issued) - gets_before == len(issued) - kept


def test_in_flight_requests_are_bounded(sandbox, issued, tmp_path):
    sandbox.faults = FaultPlan(latency_ms=5)
    peak, current, lock = [0], [0], threading.Lock()
    original = Client.get_credit

    class Counting(Client):
        def get_credit(self, credit_or_id):
            with lock:
                current[0] += 1
                peak[0] = max(peak[0], current[0])
            try:
                return original(self, credit_or_id)
            finally:
                with lock:
                    current[0] -= 1
    with Counting(sandbox.config, ledger=str(tmp_path / "l.sqlite3")) as client:
        result = client.fetch_credits(issued, workers=6, progress=False)
    assert len(result.credits) == len(issued) and peak[0] <= 6


def test_tss_fallback_in_bulk_and_frame(sandbox, tmp_path):
    client = sandbox.client()
    scenario = populate(sandbox, client, 30, seed=1, days=2)
    sandbox.self_link_status = 405
    result = Client(sandbox.config, ledger=str(tmp_path / "l.sqlite3")).fetch_credits(scenario.credit_ids,
                                                                                      progress=False)
    frame = result.to_frame()
    assert len(frame) == 30 and set(frame["source"]) == {"tss"}
    assert frame["reconciliation_id"].notna().all()
    assert set(frame.loc[frame["credit_id"].isin(scenario.declined), "status"]) <= {"DECLINED"}


def test_progress_bar_writes_done_and_failed(client, issued, capsys):
    client.fetch_credits([*issued[:3], "bad"], progress=True)
    err = capsys.readouterr().err
    assert "fetching credits" in err and "failed=1" in err
