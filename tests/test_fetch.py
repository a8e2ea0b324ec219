"""Bulk fetch against the sandbox: faults, cache, interruption, order."""

from __future__ import annotations

import _thread
import dataclasses
import signal
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
        # The credits are PENDING: only a caller accepting answers up to an hour old gets them from the cache.
        second = client.fetch_credits(ids, progress=False, max_age=timedelta(hours=1))
    assert _gets_for(sandbox, held) == before  # nothing held was fetched again
    assert second.from_cache == len(held)
    assert {c.id for c in second.credits} == set(issued)
    assert second.failed["id"].tolist() == unknown
    assert (second.failed["error"] == "NotFoundError").all() and (second.failed["http_status"] == 404).all()


def test_refresh_and_max_age_refetch(client, issued, sandbox):
    for credit_id in issued[:5]:
        client.void_credit(credit_id)  # VOIDED is final: the cache may serve it
    client.fetch_credits(issued[:5], progress=False)
    assert _gets_for(sandbox, issued[:5]) == 5
    again = client.fetch_credits(issued[:5], progress=False)
    assert _gets_for(sandbox, issued[:5]) == 5 and again.from_cache == 5
    assert {c.status for c in again.credits} == {"VOIDED"}
    client.fetch_credits(issued[:5], progress=False, refresh=True)
    assert _gets_for(sandbox, issued[:5]) == 10
    time.sleep(0.01)
    client.fetch_credits(issued[:5], progress=False, max_age=timedelta(microseconds=1))
    assert _gets_for(sandbox, issued[:5]) == 15


def test_a_pending_credit_is_never_served_from_the_cache_by_default(client, issued, sandbox):
    first = client.fetch_credits(issued[:5], progress=False)
    assert {c.status for c in first.credits} == {"PENDING"}
    second = client.fetch_credits(issued[:5], progress=False)
    assert second.from_cache == 0 and _gets_for(sandbox, issued[:5]) == 10
    held = client.fetch_credits(issued[:5], progress=False, max_age=timedelta(hours=1))
    assert held.from_cache == 5 and _gets_for(sandbox, issued[:5]) == 10


@pytest.mark.parametrize("same_ledger", [False, True], ids=["other-ledger", "shared-ledger"])
def test_a_credit_voided_through_another_client_comes_back_voided(sandbox, issued, tmp_path, same_ledger):
    ledger = str(tmp_path / "ledger.sqlite3")
    analyst = Client(sandbox.config, ledger=ledger)
    before = analyst.fetch_credits(issued[:3], progress=False)
    assert [c.status for c in before.credits] == ["PENDING"] * 3
    other = Client(sandbox.config, ledger=ledger if same_ledger else str(tmp_path / "other.sqlite3"))
    assert other.void_credit(issued[0]).status == "VOIDED"
    # Even a caller accepting stale answers gets the void when the void went through the same ledger.
    after = analyst.fetch_credits(issued[:3], progress=False, max_age=None if not same_ledger else timedelta(hours=1))
    assert [c.status for c in after.credits] == ["VOIDED", "PENDING", "PENDING"]
    assert after.to_frame()["status"].tolist() == ["VOIDED", "PENDING", "PENDING"]
    gets = _gets_for(sandbox, issued[:1])
    assert analyst.fetch_credits(issued[:1], progress=False).from_cache == 1  # final now: served, not refetched
    assert _gets_for(sandbox, issued[:1]) == gets


def test_a_voided_then_settled_credit_reconciles_as_voided_but_settled(sandbox, tmp_path):
    from reconkit import read_settlement, reconcile

    client = sandbox.client(ledger=str(tmp_path / "ledger.sqlite3"))
    ids = [client.create_credit(f"{10 + i}.00", "USD", card=CARD).id for i in range(4)]
    assert {c.status for c in client.fetch_credits(ids, progress=False).credits} == {"PENDING"}
    sandbox.client(ledger=str(tmp_path / "elsewhere.sqlite3")).void_credit(ids[0])
    sandbox.advance(hours=24)
    bundle = sandbox.settlement(format="pbdr_csv", discrepancies={"voided_settled": 1}, out_dir=tmp_path / "s")
    truth = dict(zip(bundle.credits_truth["credit_id"].astype(str), bundle.credits_truth["outcome"], strict=True))
    assert truth[ids[0]] == "VOIDED_BUT_SETTLED" and {truth[i] for i in ids[1:]} == {"MATCHED"}
    credits = client.fetch_credits(ids, progress=False).to_frame()
    result = reconcile(credits, read_settlement(bundle.files), as_of=bundle.as_of, grace_days=bundle.grace_days)
    outcomes = dict(zip(result.credits["credit_id"], result.credits["outcome"], strict=True))
    assert outcomes[ids[0]] == "VOIDED_BUT_SETTLED"
    assert bundle.disagreements(result).empty


def test_a_client_of_another_sandbox_or_merchant_is_never_served_these_credits(sandbox, tmp_path):
    from reconkit.sandbox import Sandbox

    ledger = str(tmp_path / "shared.sqlite3")
    client = sandbox.client(ledger=ledger)
    ids = [client.create_credit(f"{20 + i}.00", "USD", card=CARD).id for i in range(3)]
    for credit_id in ids:
        client.void_credit(credit_id)
    assert {c.status for c in client.fetch_credits(ids, progress=False).credits} == {"VOIDED"}
    assert client.fetch_credits(ids, progress=False).from_cache == 3
    # A twin sandbox (same seed and clock, so the same ids) where these credits were never voided,
    # and a sandbox of another merchant that never saw them.
    with Sandbox(start=sandbox.now(), seed=7) as twin, \
            Sandbox(start=sandbox.now(), seed=7, merchant_id="another_merchant") as stranger:
        twin_client = twin.client(ledger=ledger)
        assert [twin_client.create_credit(f"{20 + i}.00", "USD", card=CARD).id for i in range(3)] == ids
        on_twin = twin_client.fetch_credits(ids, progress=False, max_age=timedelta(hours=1))
        assert on_twin.from_cache == 0 and {c.status for c in on_twin.credits} == {"PENDING"}
        assert stranger.url != sandbox.url and stranger.credentials.merchant_id != sandbox.credentials.merchant_id
        from_stranger = stranger.client(ledger=ledger).fetch_credits(ids, progress=False, max_age=timedelta(hours=1))
        assert from_stranger.from_cache == 0 and from_stranger.credits == []
        assert set(from_stranger.failed["error"]) == {"NotFoundError"}
    # The same sandbox, another merchant id: nothing cached for it, so it asks (and is refused).
    other_merchant = Client(dataclasses.replace(sandbox.config, merchant_id="another_merchant"), ledger=ledger)
    asked = other_merchant.fetch_credits(ids, progress=False, max_age=timedelta(hours=1))
    assert asked.from_cache == 0 and asked.credits == [] and set(asked.failed["error"]) == {"AuthenticationError"}


def test_interrupted_fetch_keeps_what_it_fetched(sandbox, issued, tmp_path):
    sandbox.faults = FaultPlan(latency_ms=20)
    ledger = str(tmp_path / "ledger.sqlite3")
    client = Client(sandbox.config, ledger=ledger)

    # Ctrl-C as Jupyter delivers it: SIGINT's handler raises KeyboardInterrupt in the main thread.
    # Python runs that handler wherever the main thread is, and one raised inside a finaliser the
    # garbage collector happens to be running is printed and dropped; so the interrupt is repeated
    # until the fetch has stopped, and the handler raises only while it runs.
    stopped, fetching = threading.Event(), threading.Event()
    fetching.set()

    def interrupt_after_some():
        while _gets_for(sandbox, issued) < 40:
            time.sleep(0.005)
        while not stopped.is_set():
            _thread.interrupt_main()
            stopped.wait(0.2)

    def ctrl_c(_signum, _frame):
        if fetching.is_set():
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, ctrl_c)
    interrupter = threading.Thread(target=interrupt_after_some, daemon=True)
    interrupter.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            try:
                client.fetch_credits(issued, workers=4, progress=False)
            finally:
                fetching.clear()
    finally:
        stopped.set()
        interrupter.join()
        signal.signal(signal.SIGINT, previous)
    kept = client.ledger.cache_size()
    assert 40 <= kept < len(issued)
    sandbox.faults = FaultPlan()
    gets_before = _gets_for(sandbox, issued)
    resumed = client.fetch_credits(issued, workers=4, progress=False, max_age=timedelta(hours=1))
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


def test_a_cache_written_before_it_was_scoped_is_dropped_not_served(tmp_path):
    import sqlite3

    from reconkit import Ledger

    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE fetch_cache (credit_id TEXT PRIMARY KEY, raw_json TEXT NOT NULL,"
                     " source TEXT NOT NULL, fetched_at TEXT NOT NULL)")
        conn.execute("INSERT INTO fetch_cache VALUES ('1', '{\"id\": \"1\", \"status\": \"VOIDED\"}', 'self_link',"
                     " '2026-01-01T00:00:00+00:00')")
    ledger = Ledger(path)
    assert ledger.cache_size() == 0
    assert ledger.cache_get_many(["1"], environment="http://x", merchant_id="m", final_statuses={"VOIDED"}) == {}
