"""Each outcome's rule and amount at risk on a fixed, hand-worked example, its boundaries included.

The generated property tests find a broken rule only when a random example lands on it, and then
spend minutes shrinking; these examples fail in a second. The expected figures are worked out
by hand from the outcome table in docs/reconciling.md (amount at risk defined once, in ``outcomes.py``).
"""

from __future__ import annotations

from decimal import Decimal

import pandas as pd
import pytest

from reconkit import reconcile

SUBMITTED = "2026-11-01T00:00:00Z"
THREE_DAYS_LATER = "2026-11-04T00:00:00Z"


def credits(*rows: tuple[str, str | None, str, str, str]) -> pd.DataFrame:
    """Credits as (credit id, reconciliation id, amount, currency, status), all submitted at SUBMITTED."""
    return pd.DataFrame({
        "credit_id": pd.Series([r[0] for r in rows], dtype="string"),
        "reconciliation_id": pd.Series([r[1] for r in rows], dtype="string"),
        "status": pd.Series([r[4] for r in rows], dtype="string"),
        "submit_time_utc": pd.to_datetime([SUBMITTED] * len(rows), utc=True),
        "amount": pd.Series([Decimal(r[2]) for r in rows], dtype=object),
        "currency": pd.Series([r[3] for r in rows], dtype="string"),
    })


def rows(*given: tuple[str | None, str | None, str, str, str]) -> pd.DataFrame:
    """Settlement rows as (reconciliation id, request id, amount, currency, direction)."""
    return pd.DataFrame({
        "reconciliation_id": pd.Series([r[0] for r in given], dtype="string"),
        "request_id": pd.Series([r[1] for r in given], dtype="string"),
        "direction": pd.Series([r[4] for r in given], dtype="string"),
        "amount": pd.Series([Decimal(r[2]) for r in given], dtype=object),
        "currency": pd.Series([r[3] for r in given], dtype="string"),
        "transaction_type": pd.Series(["ics_credit" if r[4] == "credit" else "ics_bill" for r in given],
                                      dtype="string"),
        "source_file": pd.Series(["/data/pbdr.csv"] * len(given), dtype="string"),
        "source_line": pd.Series(range(3, len(given) + 3), dtype="int64"),
        "batch_date": pd.to_datetime(["2026-11-01"] * len(given)),
    })


NO_ROWS = rows()

CREDIT_CASES = {
    # name: (credits, settlement, tolerance, as_of, credit 1's outcome, its amount at risk or None when no break)
    "matched": (credits(("1", "A", "10.00", "USD", "PENDING")), rows(("A", None, "10.00", "USD", "credit")),
                "0.00", THREE_DAYS_LATER, "MATCHED", None),
    "matched at the tolerance": (credits(("1", "A", "10.00", "USD", "PENDING")),
                                 rows(("A", None, "9.99", "USD", "credit")), "0.01", THREE_DAYS_LATER, "MATCHED", None),
    "one cent past the tolerance": (credits(("1", "A", "10.00", "USD", "PENDING")),
                                    rows(("A", None, "9.98", "USD", "credit")), "0.01", THREE_DAYS_LATER,
                                    "AMOUNT_MISMATCH", "0.02"),
    "amount mismatch, settled more": (credits(("1", "A", "10.00", "USD", "PENDING")),
                                      rows(("A", None, "12.50", "USD", "credit")), "0.00", THREE_DAYS_LATER,
                                      "AMOUNT_MISMATCH", "2.50"),
    "amount mismatch in JPY": (credits(("1", "A", "27250", "JPY", "PENDING")),
                               rows(("A", None, "27000", "JPY", "credit")), "0.00", THREE_DAYS_LATER,
                               "AMOUNT_MISMATCH", "250"),
    "currency mismatch": (credits(("1", "A", "10.00", "USD", "PENDING")), rows(("A", None, "10.00", "EUR", "credit")),
                          "0.00", THREE_DAYS_LATER, "CURRENCY_MISMATCH", "10.00"),
    "settled twice": (credits(("1", "A", "10.00", "USD", "PENDING")),
                      rows(("A", None, "10.00", "USD", "credit"), ("A", None, "10.00", "USD", "credit")),
                      "0.00", THREE_DAYS_LATER, "DUPLICATE_SETTLEMENT", "10.00"),
    "pending on the last second of the grace period": (credits(("1", "A", "10.00", "USD", "PENDING")), NO_ROWS,
                                                       "0.00", THREE_DAYS_LATER, "MISSING_PENDING", "10.00"),
    "overdue one second after it": (credits(("1", "A", "10.00", "USD", "PENDING")), NO_ROWS, "0.00",
                                    "2026-11-04T00:00:01Z", "MISSING_OVERDUE", "10.00"),
    "voided but settled": (credits(("1", "A", "10.00", "USD", "VOIDED")), rows(("A", None, "9.00", "USD", "credit")),
                           "0.00", THREE_DAYS_LATER, "VOIDED_BUT_SETTLED", "9.00"),
    "voided and absent": (credits(("1", "A", "10.00", "USD", "VOIDED")), NO_ROWS, "0.00", THREE_DAYS_LATER,
                          "NO_SETTLEMENT_EXPECTED", None),
    "declined and absent": (credits(("1", "A", "10.00", "USD", "DECLINED")), NO_ROWS, "0.00", THREE_DAYS_LATER,
                            "NO_SETTLEMENT_EXPECTED", None),
    "the id on a debit": (credits(("1", "A", "10.00", "USD", "PENDING")), rows(("A", None, "10.00", "USD", "debit")),
                          "0.00", THREE_DAYS_LATER, "DIRECTION_MISMATCH", "10.00"),
    "matched by request id, equal": (credits(("1", "A", "10.00", "USD", "PENDING")),
                                     rows((None, "1", "10.00", "USD", "credit")), "0.00", THREE_DAYS_LATER,
                                     "MATCHED_BY_REQUEST_ID", "0.00"),
    "matched by request id, within the tolerance": (credits(("1", "A", "10.00", "USD", "PENDING")),
                                                    rows(("Z", "1", "9.00", "USD", "credit")), "1.00",
                                                    THREE_DAYS_LATER, "MATCHED_BY_REQUEST_ID", "1.00"),
    "paired by request id beyond the tolerance": (credits(("1", "A", "10.00", "USD", "PENDING")),
                                                  rows(("Z", "1", "9.00", "USD", "credit")), "0.99",
                                                  THREE_DAYS_LATER, "AMOUNT_MISMATCH", "1.00"),
    "no reconciliation id on the credit, paired by its request id": (
        credits(("1", None, "10.00", "USD", "PENDING")), rows(("A", "1", "10.00", "USD", "credit")), "0.00",
        THREE_DAYS_LATER, "MATCHED", None),
    "no reconciliation id on the credit, paired by request id, amount differs": (
        credits(("1", None, "10.00", "USD", "PENDING")), rows((None, "1", "9.00", "USD", "credit")), "0.00",
        THREE_DAYS_LATER, "AMOUNT_MISMATCH", "1.00"),
    "two credits share an id": (credits(("1", "A", "10.00", "USD", "PENDING"), ("2", "A", "4.00", "USD", "PENDING")),
                                rows(("A", None, "10.00", "USD", "credit")), "0.00", THREE_DAYS_LATER,
                                "DUPLICATE_CREDIT", "10.00"),
}


@pytest.mark.parametrize("case", list(CREDIT_CASES), ids=list(CREDIT_CASES))
def test_each_credit_outcome_and_its_amount_at_risk(case):
    given, settlement, tolerance, as_of, outcome, at_risk = CREDIT_CASES[case]
    result = reconcile(given, settlement, amount_tolerance=tolerance, grace_days=3, as_of=as_of)
    got = result.credits.set_index("credit_id").loc["1", "outcome"]
    assert got == outcome
    breaks = result.breaks
    mine = breaks[breaks["credit_id"] == "1"]
    if at_risk is None:
        assert mine.empty, "not a break"
    else:
        assert len(mine) == 1 and mine["amount_at_risk"].iloc[0] == Decimal(at_risk)


@pytest.mark.parametrize(("row", "outcome", "at_risk"), [
    (("Z", None, "4.00", "USD", "credit"), "UNEXPECTED_SETTLEMENT", "4.00"),
    (("Z", None, "4.00", "USD", "debit"), "OUT_OF_SCOPE", None),
], ids=["a credit row nobody issued", "a capture"])
def test_each_row_outcome_and_its_amount_at_risk(row, outcome, at_risk):
    result = reconcile(credits(("1", "A", "10.00", "USD", "PENDING")),
                       rows(("A", None, "10.00", "USD", "credit"), row), as_of=THREE_DAYS_LATER)
    assert list(result.settlement["outcome"]) == ["MATCHED", outcome]
    unmatched = result.breaks[result.breaks["credit_id"].isna()]
    if at_risk is None:
        assert unmatched.empty
    else:
        assert list(unmatched["amount_at_risk"]) == [Decimal(at_risk)]
