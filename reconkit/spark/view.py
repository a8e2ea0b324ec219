"""What the analyst sees of a Spark result: pandas pieces small enough for a notebook.

Credits come in from pandas (:func:`credits_frame`); the break table goes out one page at a
time, sorted and sliced in Spark, so a history of millions of breaks never reaches the driver.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

import pandas as pd

from ..markup import cards_html, format_amount
from ..money import CURRENCIES

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from .engine import SparkReconResult

__all__ = ["BREAK_PAGE_COLUMNS", "break_page", "credits_frame", "summary_cards"]

CREDIT_COLUMNS = ("credit_id", "reconciliation_id", "status", "submit_time_utc", "amount", "currency")
BREAK_PAGE_COLUMNS = ("outcome", "currency", "amount_at_risk", "credit_id", "reconciliation_id", "request_id",
                      "settlement_rows", "source_file", "source_line", "batch_date", "break_on")


def credits_frame(spark: SparkSession, credits: pd.DataFrame) -> DataFrame:
    """The credits frame of :func:`reconkit.credits_to_frame` as a Spark DataFrame: amounts and
    submit times as text (exact; Spark parses them in :func:`reconkit.spark.reconcile`)."""
    frame = credits[list(CREDIT_COLUMNS)].astype(object)
    frame["submit_time_utc"] = pd.to_datetime(credits["submit_time_utc"], utc=True).map(
        lambda t: None if pd.isna(t) else t.isoformat())
    records = [{k: None if v is None or v is pd.NA or (isinstance(v, float) and v != v) else str(v)
                for k, v in row.items()} for row in frame.to_dict("records")]
    return spark.createDataFrame(records, ", ".join(f"{name} string" for name in CREDIT_COLUMNS))


def break_page(result: SparkReconResult, page: int = 0, size: int = 25) -> pd.DataFrame:
    """One page of breaks, by currency and largest amount at risk first (sorted and cut in Spark)."""
    ordered = result.breaks.orderBy("currency", result.breaks["amount_at_risk_minor"].desc(), "credit_id",
                                    "source_line")
    frame = ordered.select(*BREAK_PAGE_COLUMNS).offset(page * size).limit(size).toPandas()
    # Each currency shows its own minor units (JPY 0, USD 2, KWD 3).
    frame["amount_at_risk"] = [None if v is None else v.quantize(Decimal(1).scaleb(-CURRENCIES.get(str(c), 2)))
                               for v, c in zip(frame["amount_at_risk"], frame["currency"], strict=True)]
    return frame


def summary_cards(result: SparkReconResult) -> str:
    """The investigation app's summary cards (credits, matched, breaks, at risk per currency) as HTML."""
    summary = result.summary
    at_risk = summary[summary["break"]].groupby("currency")["amount_at_risk"].sum()
    return cards_html([("Credits", f"{int(summary['credits'].sum()):,}"),
                       ("Matched", f"{int(summary.loc[summary['outcome'] == 'MATCHED', 'credits'].sum()):,}"),
                       ("Breaks", f"{int(summary['breaks'].sum()):,}")]
                      + [(f"At risk ({c})", format_amount(v)) for c, v in at_risk.items()])
