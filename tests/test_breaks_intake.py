"""Checked intake and withdrawable runs: a wrong file is refused, overridden with a reason, then
withdrawn, and the book's state is what it was before; a property test over random sequences of
runs, actions and withdrawals."""

from __future__ import annotations

import shutil
import tempfile
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import hypothesis.strategies as st
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings

from reconkit import read_settlement, reconcile
from reconkit.breaks import SYSTEM, BreakBook, IntakeCheck, IntakePreview
from reconkit.errors import BreakBookError, IntakeError, ReconkitError
from reconkit.identity import os_login
from reconkit.sandbox import Sandbox
from reconkit.sandbox.scenario import populate
from reconkit.sandbox.settlement import generate_settlement

from .breaks_helpers import T0, credits_frame, days, run, settlement_frame
from .conftest import START, examples

# --- the wrong file, end to end against the sandbox ------------------------------------------------


def _amounts(pairs) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {}
    for amount, currency in pairs:
        totals[currency] = totals.get(currency, Decimal(0)) + abs(Decimal(amount))
    return totals


@pytest.fixture(scope="module")
def wrong_file(tmp_path_factory):
    """Our merchant's credits (fetched over HTTP) reconciled against our own file, then against a
    Payment Batch Detail Report of another merchant, two weeks later."""
    out = tmp_path_factory.mktemp("wrong_file")
    with Sandbox(start=START, seed=31) as ours, Sandbox(start=START + timedelta(days=14), seed=77,
                                                         merchant_id="another_merchant") as theirs:
        client = ours.client()
        scenario = populate(ours, client, 40, seed=31, days=3, void_rate=0.15)
        merchant = ours.credentials.merchant_id
        # Credits fetched under one configuration belong to its merchant: the caller says so.
        credits = client.fetch_credits(scenario.credit_ids, progress=False).to_frame().assign(merchant_id=merchant)
        client.close()
        right = generate_settlement(ours.state, discrepancies={"voided_settled": 1, "unexpected": 2}, seed=3,
                                    out_dir=out / "right")
        other_client = theirs.client()
        populate(theirs, other_client, 12, seed=77, days=2, void_rate=0)
        other_client.close()
        wrong = generate_settlement(theirs.state, seed=4, out_dir=out / "wrong", captures=0)
        ours_credits = ours.state.credits()
    return credits, right, wrong, ours_credits, out


def test_a_wrong_file_is_refused_overridden_with_a_reason_and_withdrawn(wrong_file):
    credits, right, wrong, sandbox_credits, out = wrong_file
    as_of = right.as_of
    with BreakBook(out / "ledger.sqlite3", analyst="ann") as book:
        first = reconcile(credits, read_settlement(right.files), as_of=as_of, grace_days=right.grace_days)
        assert book.preview(first).ok
        book.record(first, inputs=right.files)
        before = book.snapshot()
        voided = right.credits_truth[right.credits_truth["outcome"] == "VOIDED_BUT_SETTLED"]["credit_id"].tolist()
        assert len(voided) == 1 and book.get(voided[0]).status == "open"

        result = reconcile(credits, read_settlement(wrong.files), as_of=as_of, grace_days=right.grace_days)
        assert (result.credits["outcome"] == "MATCHED").sum() == 0  # it matched nothing

        # What it would do, derived from the two generators' own records.
        amount = {c["id"]: (c["amount"], c["currency"]) for c in sandbox_credits}
        truth = right.credits_truth.set_index("credit_id")["outcome"]
        newly_missing = [c for c in truth.index if truth[c] == "MATCHED"]
        foreign_rows = wrong.settlement_truth[wrong.settlement_truth["transaction_type"] == "ics_credit"]
        expected_opens = _amounts([amount[c] for c in newly_missing]
                                  + list(zip(foreign_rows["amount"], foreign_rows["currency"], strict=True)))
        preview = book.preview(result, inputs=wrong.files)
        assert isinstance(preview, IntakePreview)
        assert preview.opens == len(newly_missing) + len(foreign_rows)
        assert preview.opens_at_risk == expected_opens
        assert preview.clears == 1
        assert preview.clears_at_risk == _amounts([amount[voided[0]]])
        assert [c.name for c in preview.failed] == ["merchant", "batch_dates", "changes"]
        assert not preview.ok
        assert "another_merchant" in preview.failed[0].message and "reconkit_sandbox" in preview.failed[0].message
        assert preview.text.startswith(f"opens {preview.opens} breaks worth ")
        assert f", clears 1 break worth {amount[voided[0]][0]} {amount[voided[0]][1]}" in preview.text

        with pytest.raises(IntakeError) as refused:
            book.record(result, inputs=wrong.files)
        assert [c.name for c in refused.value.checks] == ["merchant", "batch_dates", "changes"]
        assert all(c.message in str(refused.value) for c in refused.value.checks)
        assert isinstance(refused.value, ReconkitError) and "override=" in str(refused.value)
        assert book.snapshot() == before and len(book.runs()) == 1  # nothing was written

        with pytest.raises(BreakBookError, match="reason in words"):
            book.record(result, override="  ")
        run_id = book.record(result, inputs=wrong.files, override="checking what the other merchant's file does")
        assert book.get(voided[0]).reason == "NO_SETTLEMENT_EXPECTED"  # the harm the issue saw
        runs = book.runs()
        assert runs.loc[1, "override"] == "checking what the other merchant's file does"
        overridden = book.audit().query("event == 'intake_overridden'")
        assert overridden["break_key"].tolist() == [f"run:{run_id}"]
        assert overridden["note"].tolist() == ["checking what the other merchant's file does"]
        assert overridden["login"].tolist() == [os_login()]

        put_back = book.withdraw(run_id, "wrong merchant's file", by="bob")
        assert book.snapshot() == before
        assert len(put_back) == preview.opens + preview.changes + preview.clears
        assert book.get(voided[0]).status == "open" and book.get(voided[0]).outcome == "VOIDED_BUT_SETTLED"
        assert bool(book.runs().loc[1, "withdrawn"]) and not bool(book.runs().loc[0, "withdrawn"])
        audit = book.audit()
        assert (audit["run_id"] == run_id).sum() == 1 + len(put_back) * 2 + 1  # override, run, withdrawal
        last = audit.iloc[-1]
        assert (last["event"], last["who"], last["login"]) == ("run_withdrawn", "bob", os_login())
        assert "wrong merchant's file" in last["note"]
        book.verify()
        # The withdrawn run no longer counts as the latest.
        assert book.open()["new"].sum() == len(book.open()[book.open()["key"].isin(
            {k for k, s in before.items() if s["first_run"] == 1})])


# --- the intake checks, one at a time ----------------------------------------------------------------

def _with(frame: pd.DataFrame, **columns) -> pd.DataFrame:
    return frame.assign(**columns)


CHECK_CASES = [
    # name, credits' merchant, settlement merchant, rows, expected failures
    ("all agree", "m1", "m1", [("r-c1", "c1", "10.00", "2026-11-03"), ("r-x", "x1", "5.00", "2026-11-04")], []),
    ("no merchant on the file", "m1", None, [("r-c1", "c1", "10.00", "2026-11-03")], []),
    ("no merchant on the credits", None, "m2", [("r-c1", "c1", "10.00", "2026-11-03")], []),
    ("another merchant's rows", "m1", "m2", [("r-c1", "c1", "10.00", "2026-11-03")], ["merchant"]),
    ("an unpaired row before the first submission", "m1", "m1",
     [("r-c1", "c1", "10.00", "2026-11-03"), ("r-x", "x1", "5.00", "2026-11-01")], ["batch_dates"]),
    ("an unpaired row after the grace period", "m1", "m1",
     [("r-c1", "c1", "10.00", "2026-11-03"), ("r-x", "x1", "5.00", "2026-11-06")], ["batch_dates"]),
    ("the last day of the grace period", "m1", "m1",
     [("r-c1", "c1", "10.00", "2026-11-03"), ("r-x", "x1", "5.00", "2026-11-05")], []),
    ("a paired row settled late", "m1", "m1", [("r-c1", "c1", "10.00", "2026-11-09")], []),
]


@pytest.mark.parametrize(("name", "ours", "theirs", "rows", "failing"), CHECK_CASES, ids=[c[0] for c in CHECK_CASES])
def test_each_intake_check(tmp_path, name, ours, theirs, rows, failing):
    credits = credits_frame({"c1": "10.00"})  # submitted 2026-11-02; grace 3 days: window to 11-05
    if ours is not None:
        credits = _with(credits, merchant_id=ours)
    settlement = settlement_frame(rows)
    if theirs is not None:
        settlement = _with(settlement, merchant_id=theirs)
    result = reconcile(credits, settlement, as_of=T0 + days(2), grace_days=3)
    with BreakBook(tmp_path / "l.sqlite3", analyst="ann") as book:
        preview = book.preview(result)
        assert [c.name for c in preview.checks] == ["merchant", "batch_dates", "changes"]
        assert [c.name for c in preview.failed] == failing
        assert all(isinstance(c, IntakeCheck) and c.message for c in preview.checks)
        if failing:
            with pytest.raises(IntakeError):
                book.record(result)
        else:
            book.record(result)


def test_a_run_that_clears_while_pairing_nothing_is_refused(tmp_path):
    credits = credits_frame({"c1": "10.00", "c2": "20.00"})
    voided = credits.assign(status=["VOIDED", "PENDING"])
    with BreakBook(tmp_path / "l.sqlite3", analyst="ann") as book:
        book.record(run(credits, [("r-c2", "c2", "20.00", "2026-11-03")], T0 + days(1)))  # c1 missing
        # c1 voided since: a file where c2 still pairs may clear it ...
        fine = reconcile(voided, settlement_frame([("r-c2", "c2", "20.00", "2026-11-03")]), as_of=T0 + days(2),
                         grace_days=3)
        assert book.preview(fine).ok and book.preview(fine).clears == 1
        # ... an empty file may not: it pairs nothing, and c2 would open as missing.
        empty = reconcile(voided, settlement_frame([]), as_of=T0 + days(2), grace_days=3)
        preview = book.preview(empty)
        assert [c.name for c in preview.failed] == ["changes"]
        assert preview.failed[0].message == ("it would clear 1 break while none of its 0 settlement credit row(s) "
                                             "pairs with a credit")
        assert preview.text == ("opens 1 break worth 20.00 USD, clears 1 break worth 10.00 USD, changes 0; "
                                "fails 1 intake check(s): changes")


def test_the_preview_counts_what_the_run_then_does(tmp_path):
    credits = credits_frame({"c1": "10.00", "c2": "20.00", "c3": "30.00"})
    with BreakBook(tmp_path / "l.sqlite3", analyst="ann") as book:
        day1 = run(credits, [("r-c1", "c1", "9.00", "2026-11-03")], T0 + days(1))
        preview = book.preview(day1)
        assert (preview.opens, preview.clears, preview.changes) == (3, 0, 0)
        assert preview.opens_at_risk == {"USD": Decimal("51.00")}  # 1.00 short + 20 + 30 missing
        assert preview.text == "opens 3 breaks worth 51.00 USD, clears 0 breaks worth nothing, changes 0"
        book.record(day1)
        day2 = run(credits, [("r-c1", "c1", "10.00", "2026-11-03"), ("r-c2", "c2", "19.00", "2026-11-04")],
                   T0 + days(2))
        preview = book.preview(day2)
        assert (preview.opens, preview.clears, preview.changes) == (0, 1, 1)
        assert preview.clears_at_risk == {"USD": Decimal("1.00")}
        run_id = book.record(day2)
        assert sum(e.kind == "cleared" for e in book.events() if e.run_id == run_id) == 1
        assert sum(e.kind == "changed" for e in book.events() if e.run_id == run_id) == 1


# --- withdrawing ----------------------------------------------------------------------------------------

def test_only_the_latest_standing_run_can_be_withdrawn(tmp_path):
    credits = credits_frame({"c1": "10.00"})
    with BreakBook(tmp_path / "l.sqlite3", analyst="ann") as book:
        one = book.record(run(credits, [], T0 + days(1)))
        two = book.record(run(credits, [], T0 + days(4)))
        with pytest.raises(BreakBookError, match=f"withdraw run {two} first"):
            book.withdraw(one, "too early")
        with pytest.raises(BreakBookError, match="reason in words"):
            book.withdraw(two, " ")
        with pytest.raises(BreakBookError, match="no run 9"):
            book.withdraw(9, "no such run")
        book.withdraw(two, "as_of was wrong")
        with pytest.raises(BreakBookError, match="only 1 run"):
            book.diff()  # the withdrawn run is not one of "the last two"
        with pytest.raises(BreakBookError, match="withdrawn already"):
            book.withdraw(two, "again")
        assert book.get("c1").outcome == "MISSING_PENDING"
        book.withdraw(one, "start again")
        assert book.snapshot() == {} and book.open().empty
        with pytest.raises(BreakBookError, match="no break"):
            book.get("c1")
        three = book.record(run(credits, [], T0 + days(1)))
        assert book.get("c1").first_run == three
        assert book.diff(one, three).frame.empty is False
        book.verify()


CREDITS = {"k0": "10.00", "k1": "20.00", "k2": "30.00"}
SETTLE = st.sampled_from(["matched", "missing", "short"])
STEP = st.one_of(
    st.tuples(st.just("run"), st.tuples(SETTLE, SETTLE, SETTLE), st.sampled_from([0.5, 1, 2, 4])),
    st.tuples(st.just("assign"), st.sampled_from(sorted(CREDITS)), st.sampled_from(["ann", "bob"])),
    st.tuples(st.just("note"), st.sampled_from(sorted(CREDITS)), st.sampled_from(["ann", "bob"])),
    st.tuples(st.just("resolve"), st.sampled_from(sorted(CREDITS)), st.sampled_from(["ann", "bob"])),
    st.tuples(st.just("sign_off"), st.sampled_from(sorted(CREDITS)), st.sampled_from(["ann", "bob"])),
    st.tuples(st.just("reopen"), st.sampled_from(sorted(CREDITS)), st.sampled_from(["ann", "bob"])),
    st.tuples(st.just("withdraw"), st.just(None), st.just(None)),
)


def _rows(settles):
    rows = []
    for (credit, amount), how in zip(CREDITS.items(), settles, strict=True):
        if how == "matched":
            rows.append((f"r-{credit}", credit, amount, "2026-11-03"))
        elif how == "short":
            rows.append((f"r-{credit}", credit, "1.00", "2026-11-03"))
    return rows


def _act(book: BreakBook, kind: str, key: str, who: str) -> None:
    if kind == "assign":
        book.assign(key, who, by=who)
    elif kind == "note":
        book.note(key, "looked", by=who)
    elif kind == "resolve":
        book.resolve(key, "TIMING", status="timing_difference", by=who)
    elif kind == "sign_off":
        book.sign_off(key, by=who)
    else:
        book.reopen(key, "not yet", by=who)


@settings(max_examples=examples(25), deadline=None,  # each example records up to 12 runs in SQLite
          suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(STEP, min_size=1, max_size=12))
def test_withdrawing_the_latest_run_puts_back_what_it_touched(steps):
    """After any sequence of runs, actions and withdrawals, withdrawing the latest standing run
    leaves every break it touched as it was before the run and every other break as it was just
    before the withdrawal; with no action in between, the whole book is as before the run."""
    folder = Path(tempfile.mkdtemp(prefix="withdraw-"))
    try:
        with BreakBook(folder / "l.sqlite3", analyst="ann") as book:
            day = 1.0
            # run id, snapshot before it, snapshot after it, whether a person acted since
            standing: list[tuple[int, dict, dict, list[bool]]] = []
            for kind, what, who in steps:
                if kind == "run":
                    day += who
                    before = book.snapshot()
                    run_id = book.record(run(credits_frame(CREDITS), _rows(what), T0 + days(day)),
                                         override="a property test")
                    standing.append((run_id, before, book.snapshot(), [False]))
                elif kind == "withdraw":
                    if not standing:
                        continue
                    run_id, before, after, acted = standing.pop()
                    touched = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
                    now = book.snapshot()
                    book.withdraw(run_id, "a property test")
                    expected = {k: v for k, v in now.items() if k not in touched}
                    expected.update({k: v for k, v in before.items() if k in touched})
                    assert book.snapshot() == expected
                    if not acted[0]:
                        assert book.snapshot() == before
                else:
                    try:
                        _act(book, kind, what, who)
                        for entry in standing:
                            entry[3][0] = True
                    except BreakBookError:
                        pass  # a step the workflow refuses (no such break, not closed, same person)
            assert book.stored_states() == book.replay()
            book.verify()
            assert all(e.actor != SYSTEM for e in book.events() if e.kind == "withdrawn")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
