"""The two-day break demo against the sandbox, checked against the settlement generator's ground truth."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest

from reconkit.demo_breaks import CHECKER, MAKER, run_two_days
from reconkit.sandbox.settlement import SettlementBundle, missing_outcome

NOT_BREAKS = {"MATCHED", "NO_SETTLEMENT_EXPECTED", "OUT_OF_SCOPE"}  # every other outcome is a break (reconkit.outcomes.BREAKS)


@pytest.fixture(scope="module")
def two_days(tmp_path_factory):
    lines: list[str] = []
    out = tmp_path_factory.mktemp("two_days")
    return run_two_days(out, credits=90, seed=5, say=lines.append), lines


def _truth(two):
    """Each credit's outcome on day 1 and day 2, from the generator's record of what it wrote."""
    t1 = two.day1.credits_truth.set_index("credit_id")
    t2 = two.day2.credits_truth.set_index("credit_id")
    submitted = {c["id"]: datetime.fromisoformat(c["created_at"]) for c in two.credits}
    day1, day2 = {}, {}
    for credit, outcome, kind in zip(t1.index, t1["outcome"], t1["kind"], strict=True):
        day1[credit] = outcome
        if kind == "not_in_range":  # not batched when day 1's file was made: day 2's file says
            day2[credit] = t2.loc[credit, "outcome"]
        elif kind == "missing":  # left out of day 1's file on purpose: still missing, a day older
            day2[credit] = missing_outcome(submitted[credit], two.day2.as_of, two.day2.grace_days)
        else:
            day2[credit] = outcome
    return day1, day2


def _unexpected(bundle):
    rows = bundle.settlement_truth
    rows = rows[rows["outcome"] == "UNEXPECTED_SETTLEMENT"]
    return {f"settlement:{q}|{a}|{c}" for q, a, c in zip(rows["request_id"], rows["amount"], rows["currency"],
                                                         strict=True)}


def test_day_two_reconciles_as_the_ground_truth_says(two_days):
    two, _ = two_days
    _, day2 = _truth(two)
    combined = SettlementBundle(
        [*two.day1.files, *two.day2.files], "pbdr_csv",
        pd.DataFrame({"credit_id": list(day2), "outcome": list(day2.values())}),
        pd.concat([two.day1.settlement_truth, two.day2.settlement_truth], ignore_index=True),
        two.day2.as_of, two.day2.grace_days)
    assert combined.disagreements(two.results[1]).empty
    assert two.day1.disagreements(two.results[0]).empty


def test_day_two_carries_clears_and_adds_breaks_as_the_ground_truth_says(two_days):
    two, lines = two_days
    day1, day2 = _truth(two)
    breaks1 = {f"credit:{c}": o for c, o in day1.items() if o not in NOT_BREAKS}
    breaks2 = {f"credit:{c}": o for c, o in day2.items() if o not in NOT_BREAKS}
    unexpected1, unexpected2 = _unexpected(two.day1), _unexpected(two.day2)
    frame = two.diff.frame
    # settlement keys end in the batch date, which the truth does not hold: compare without it
    got = {(k.rsplit("|", 1)[0] if k.startswith("settlement:") else k): c
           for k, c in zip(frame["key"], frame["change"], strict=True)}
    expected = {k: "cleared" for k in set(breaks1) - set(breaks2)}
    expected |= {k: "new" for k in set(breaks2) - set(breaks1)}
    expected |= {k: ("changed" if breaks1[k] != breaks2[k] else "unchanged") for k in set(breaks1) & set(breaks2)}
    expected |= {k: "unchanged" for k in unexpected1} | {k: "new" for k in unexpected2}
    assert got == expected

    cleared = frame[frame["change"] == "cleared"].set_index("key")
    timing = {k for k in cleared.index if breaks1[k] == "MISSING_PENDING"}
    assert timing, "the demo must show timing differences cleared"
    assert set(cleared.index[cleared["status"] == "timing_difference"]) == timing
    assert set(cleared.loc[sorted(timing), "reason"]) == {"SETTLED"}
    counts = two.diff.counts()
    assert counts["new"] == len(set(breaks2) - set(breaks1)) + len(unexpected2) >= 1
    assert counts["still_open"] == len(set(breaks1) & set(breaks2)) + len(unexpected1) >= 1
    assert any(f"{counts['new']} new, {len(cleared)} cleared, {counts['still_open']} still open "
               f"({counts['changed_open']} of them changed)" in line for line in lines)
    assert any(f"cleared by the new file: {len(cleared)} ({len(timing)} timing differences" in line for line in lines)


def test_one_break_is_resolved_by_one_analyst_and_signed_off_by_another(two_days):
    two, lines = two_days
    from reconkit.breaks import BreakBook

    with BreakBook(two.ledger, analyst="someone") as book:
        state = book.get(two.signed_off)
        assert (state.status, state.reason, state.owner) == ("resolved", "PROCESSOR_CORRECTED", MAKER)
        assert (state.resolved_by, state.signed_off_by) == (MAKER, CHECKER)
        assert state.outcome == "AMOUNT_MISMATCH"
        _, day2 = _truth(two)
        assert day2[state.credit_id] == "AMOUNT_MISMATCH"
        audit = pd.read_csv(two.ledger.parent / "break_audit.csv", dtype=str)
        assert audit[audit["break_key"] == two.signed_off]["event"].tolist()[-4:] == [
            "assigned", "noted", "resolved", "signed_off"]
        assert len(audit) == len(book.events())
    assert any(f"{two.signed_off}: resolved by {MAKER} (PROCESSOR_CORRECTED), signed off by {CHECKER}" in line
               for line in lines)
