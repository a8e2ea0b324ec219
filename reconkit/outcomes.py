"""The reason codes of a match, which of them are breaks, and the amount at risk of each.

The amount at risk is defined here once, as a narwhals expression over integer minor units, and
every table, total, figure and export takes its figures from the column that expression fills.
The expression uses no backend-specific call, so it runs wherever narwhals runs (DuckDB here,
PySpark for a settlement history that outgrows one machine).

========================  ===============================================================
outcome                   amount at risk
========================  ===============================================================
MISSING_PENDING           the credit amount
MISSING_OVERDUE           the credit amount
AMOUNT_MISMATCH           |settled − credited|
CURRENCY_MISMATCH         the credit amount
DUPLICATE_SETTLEMENT      settled total − credit amount
VOIDED_BUT_SETTLED        the settled amount
DIRECTION_MISMATCH        the credit amount (0 for a non-credit row beside a credit that settled)
DUPLICATE_CREDIT          the credit amount
UNREADABLE_SETTLEMENT     the credit amount (unknown for a record that explains no credit: no currency, no amount)
UNEXPECTED_SETTLEMENT     the row's amount
MATCHED_BY_REQUEST_ID     |settled − credited| (0 when equal)
any other outcome         0 (not a break)
========================  ===============================================================
"""

from __future__ import annotations

from enum import StrEnum

import narwhals as nw

__all__ = ["AT_RISK", "BREAKS", "BREAK_ON_CREDIT", "BREAK_ON_ROW", "Outcome", "at_risk"]


class Outcome(StrEnum):
    """Reason codes (the table in docs/reconciling.md); every credit and settlement row gets exactly one."""

    MATCHED = "MATCHED"
    AMOUNT_MISMATCH = "AMOUNT_MISMATCH"
    CURRENCY_MISMATCH = "CURRENCY_MISMATCH"
    DUPLICATE_SETTLEMENT = "DUPLICATE_SETTLEMENT"
    DUPLICATE_CREDIT = "DUPLICATE_CREDIT"
    MISSING_PENDING = "MISSING_PENDING"
    MISSING_OVERDUE = "MISSING_OVERDUE"
    UNREADABLE_SETTLEMENT = "UNREADABLE_SETTLEMENT"
    UNEXPECTED_SETTLEMENT = "UNEXPECTED_SETTLEMENT"
    VOIDED_BUT_SETTLED = "VOIDED_BUT_SETTLED"
    DIRECTION_MISMATCH = "DIRECTION_MISMATCH"
    MATCHED_BY_REQUEST_ID = "MATCHED_BY_REQUEST_ID"
    NO_SETTLEMENT_EXPECTED = "NO_SETTLEMENT_EXPECTED"
    OUT_OF_SCOPE = "OUT_OF_SCOPE"


BREAKS = frozenset(o.value for o in Outcome) - {"MATCHED", "NO_SETTLEMENT_EXPECTED", "OUT_OF_SCOPE"}
"""Outcomes an analyst must look at."""

BREAK_ON_CREDIT = "credit"
BREAK_ON_ROW = "settlement row"
"""Values of the break table's ``break_on`` column: a break is a credit (with all its settlement
rows) or a settlement row on its own (an unexpected row, a stray non-credit row)."""

AT_RISK: dict[str, str] = {
    Outcome.MISSING_PENDING: "the credit amount",
    Outcome.MISSING_OVERDUE: "the credit amount",
    Outcome.AMOUNT_MISMATCH: "|settled − credited|",
    Outcome.CURRENCY_MISMATCH: "the credit amount",
    Outcome.DUPLICATE_SETTLEMENT: "settled total − credit amount",
    Outcome.VOIDED_BUT_SETTLED: "the settled amount",
    Outcome.DIRECTION_MISMATCH: "the credit amount (0 for a non-credit row beside a credit that settled)",
    Outcome.DUPLICATE_CREDIT: "the credit amount",
    Outcome.UNREADABLE_SETTLEMENT: "the credit amount (unknown for a record that explains no credit: "
                                   "no currency, no amount)",
    Outcome.UNEXPECTED_SETTLEMENT: "the row's amount",
    Outcome.MATCHED_BY_REQUEST_ID: "|settled − credited| (0 when equal)",
}
"""The definition in words, per break outcome (shown in the report's legend and the README)."""

_CREDIT_AMOUNT = (Outcome.MISSING_PENDING, Outcome.MISSING_OVERDUE, Outcome.CURRENCY_MISMATCH,
                  Outcome.DUPLICATE_CREDIT, Outcome.UNREADABLE_SETTLEMENT)
_SETTLED_AMOUNT = (Outcome.VOIDED_BUT_SETTLED, Outcome.UNEXPECTED_SETTLEMENT)
_DIFFERENCE = (Outcome.AMOUNT_MISMATCH, Outcome.MATCHED_BY_REQUEST_ID)


def at_risk(outcome: str = "outcome", credit_amount: str = "credit_amount_minor",
            settled_amount: str = "settled_amount_minor", break_on: str = "break_on") -> nw.Expr:
    """The amount at risk of a break, in integer minor units of its currency.

    Parameters
    ----------
    outcome : str
        Column holding the break's :class:`Outcome` value.
    credit_amount : str
        Column holding the credit's amount in minor units (null on a break that has no credit).
    settled_amount : str
        Column holding the settled amount in minor units: the total of the settlement credit
        rows paired with the credit, or the row's own amount on a break that is one row.
    break_on : str
        Column saying whether the break is a credit (:data:`BREAK_ON_CREDIT`) or a settlement
        row on its own (:data:`BREAK_ON_ROW`).

    Returns
    -------
    narwhals.Expr
        Integer minor units, never negative for the engine's outcomes; null only where an amount
        the definition needs is unknown (a credit without an amount). Outcomes that are not
        breaks risk 0.

    Notes
    -----
    Backend-agnostic: ``nw.when``/``is_in``/``abs`` only, so the expression runs on any narwhals
    backend (DuckDB, Polars, PySpark, pandas).
    """
    kind, credit, settled = nw.col(outcome), nw.col(credit_amount), nw.col(settled_amount)
    difference = settled - credit
    stray_row = (kind == Outcome.DIRECTION_MISMATCH.value) & (nw.col(break_on) == BREAK_ON_ROW)
    values = [o.value for o in _CREDIT_AMOUNT]
    return (
        nw.when(stray_row).then(nw.lit(0, nw.Int64))
        .otherwise(
            nw.when(kind.is_in([*values, Outcome.DIRECTION_MISMATCH.value])).then(credit)
            .otherwise(
                nw.when(kind.is_in([o.value for o in _DIFFERENCE])).then(difference.abs())
                .otherwise(
                    nw.when(kind == Outcome.DUPLICATE_SETTLEMENT.value).then(difference)
                    .otherwise(
                        nw.when(kind.is_in([o.value for o in _SETTLED_AMOUNT])).then(settled)
                        .otherwise(nw.lit(0, nw.Int64))))))
        .cast(nw.Int64)
    )
