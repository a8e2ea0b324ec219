"""The breaks a generated settlement file should give, from the generator's ground truth alone.

The amount at risk is written out here on its own (Decimal arithmetic on the generator's amounts),
not taken from reconkit.outcomes, so that a test comparing an export or a screen with it can fail
when the engine's definition drifts.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import pandas as pd

BREAK_OUTCOMES = {"MISSING_PENDING", "MISSING_OVERDUE", "AMOUNT_MISMATCH", "CURRENCY_MISMATCH", "DUPLICATE_SETTLEMENT",
                  "VOIDED_BUT_SETTLED", "DIRECTION_MISMATCH", "DUPLICATE_CREDIT", "UNREADABLE_SETTLEMENT",
                  "UNEXPECTED_SETTLEMENT", "MATCHED_BY_REQUEST_ID"}


def truth_breaks(credits: pd.DataFrame, bundle) -> pd.DataFrame:
    """One row per planted break: ``outcome``, ``credit_id`` (None for a row of no credit),
    ``currency``, ``amount_at_risk`` (Decimal) and ``settlement_rows``.

    ``credits`` gives each credit's amount and currency (the input the engine was given too).
    """
    amount = dict(zip(credits["credit_id"].astype(str), (Decimal(str(a)) for a in credits["amount"]), strict=True))
    currency = dict(zip(credits["credit_id"].astype(str), credits["currency"].astype(str), strict=True))
    rows = bundle.settlement_truth
    settled: dict[str, Decimal] = defaultdict(Decimal)
    carried: dict[str, int] = defaultdict(int)
    for credit_id, kind, value in zip(rows["credit_id"], rows["transaction_type"], rows["amount"], strict=True):
        if credit_id is not None and not pd.isna(credit_id):
            carried[str(credit_id)] += 1
            if kind == "ics_credit":
                settled[str(credit_id)] += Decimal(str(value))
    found = []
    for credit_id, outcome in zip(bundle.credits_truth["credit_id"].astype(str), bundle.credits_truth["outcome"],
                                  strict=True):
        if outcome not in BREAK_OUTCOMES:
            continue
        credited, total = amount[credit_id], settled.get(credit_id, Decimal(0))
        if outcome in ("MISSING_PENDING", "MISSING_OVERDUE", "CURRENCY_MISMATCH", "DIRECTION_MISMATCH",
                       "DUPLICATE_CREDIT", "UNREADABLE_SETTLEMENT"):
            value = credited
        elif outcome in ("AMOUNT_MISMATCH", "MATCHED_BY_REQUEST_ID"):
            value = abs(total - credited)
        elif outcome == "DUPLICATE_SETTLEMENT":
            value = total - credited
        elif outcome == "VOIDED_BUT_SETTLED":
            value = total
        else:
            raise AssertionError(f"the oracle has no definition for {outcome}")
        found.append((outcome, credit_id, currency[credit_id], value, carried.get(credit_id, 0)))
    for outcome, row_currency, value in zip(rows["outcome"], rows["currency"], rows["amount"], strict=True):
        if outcome == "UNEXPECTED_SETTLEMENT":
            found.append((outcome, None, str(row_currency), Decimal(str(value)), 1))
    return pd.DataFrame(found, columns=["outcome", "credit_id", "currency", "amount_at_risk", "settlement_rows"])
