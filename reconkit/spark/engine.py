"""``reconcile`` on Spark: the engine's narwhals core (:func:`reconkit.match.classify` and
:func:`reconkit.match.break_table`, with the one amount-at-risk definition of
:mod:`reconkit.outcomes`) over PySpark DataFrames, with the edges as Spark SQL expressions.

Nothing per row reaches the driver: the bad-input and conservation checks are aggregates, and
the summary is one row per outcome and currency.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import narwhals as nw
import pandas as pd

from ..errors import ReconciliationError
from ..match import DEAD_STATUSES, as_of_moment, break_table, classify, tolerance_minor
from ..money import CURRENCIES
from ..outcomes import BREAKS, Outcome

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

__all__ = ["MATERIALIZE", "SparkReconResult", "reconcile"]

MATERIALIZE = ("cache", "localCheckpoint", "table", "none")
"""How shared intermediate results are computed once: Spark's cache, a local checkpoint, tables
(``table_prefix``; for serverless compute, which allows neither), or not at all (recomputed)."""
_DEFAULT_DIGITS = 2


def _functions() -> Any:
    from pyspark.sql import functions

    return functions


@dataclass(frozen=True)
class SparkReconResult:
    """The outcome of :func:`reconcile` on Spark.

    Attributes
    ----------
    credits : pyspark.sql.DataFrame
        The input credits with ``credit_index``, ``outcome``, ``settled_amount_minor``,
        ``credit_rows``, ``debit_rows``.
    settlement : pyspark.sql.DataFrame
        The input settlement rows with ``row_index``, ``outcome`` and the paired ``credit_id``.
    breaks : pyspark.sql.DataFrame
        One row per break (:func:`reconkit.match.break_table`) with ``amount_at_risk`` as an
        exact decimal, the credit and settlement ids, ``source_file``, ``source_line`` and that
        row's ``batch_date``.
    summary : pandas.DataFrame
        Per outcome and currency: ``credits``, ``settlement_rows``, ``breaks``,
        ``amount_at_risk`` (Decimal), ``break``.
    parameters : dict
    """

    credits: DataFrame
    settlement: DataFrame
    breaks: DataFrame
    summary: pd.DataFrame
    parameters: dict[str, Any]

    def counts(self) -> dict[str, dict[str, int]]:
        """Outcome counts per side, from :attr:`summary`."""
        def tally(column: str) -> dict[str, int]:
            sums = self.summary.groupby("outcome")[column].sum()
            return {str(k): int(v) for k, v in sums.items() if v}

        return {"credits": tally("credits"), "settlement": tally("settlement_rows")}


def _map(pairs: Mapping[str, Any], value_type: str) -> Column:
    F = _functions()  # noqa: N806 - Spark's conventional alias
    return F.create_map(*[F.lit(part) for pair in pairs.items() for part in pair]).cast(f"map<string,{value_type}>")


def _text(column: Column) -> Column:
    F = _functions()  # noqa: N806
    trimmed = F.regexp_replace(column.cast("string"), r"^\s+|\s+$", "")
    return F.when(trimmed != "", trimmed)


def _minor(amount: Column, digits: Column) -> tuple[Column, Column]:
    """Exact minor units of a decimal or text amount, and whether it is a well-formed amount that
    fits its currency (no floats: the text is checked, then cast to a 4-decimal type)."""
    F = _functions()  # noqa: N806
    text = _text(amount)
    fraction = F.regexp_replace(F.regexp_extract(text, r"\.(\d*)$", 1), "0+$", "")
    ok = F.coalesce(text.rlike(r"^[+-]?(\d{1,18}(\.\d*)?|\.\d+)$") & (F.length(fraction) <= digits), F.lit(False))
    scaled = text.cast("decimal(22,4)") * F.concat(F.lit("1"), F.repeat(F.lit("0"), digits)).cast("decimal(5,0)")
    return F.when(ok, scaled.cast("bigint")), ok


def _prepare_credits(credits: DataFrame, tolerance: Any) -> tuple[DataFrame, Column]:
    F = _functions()  # noqa: N806
    col = F.col
    missing = [c for c in ("credit_id", "reconciliation_id", "status", "submit_time_utc", "amount", "currency")
               if c not in credits.columns]
    if missing:
        raise ValueError(f"the credits frame lacks {', '.join(missing)}; build it with reconkit.credits_to_frame")
    currency = F.upper(_text(col("currency")))
    digits = F.coalesce(_map({c: d for c, d in CURRENCIES.items()}, "int")[currency], F.lit(_DEFAULT_DIGITS))
    minor, ok = _minor(col("amount"), digits)
    tolerances = _map({c: tolerance_minor(tolerance, c) for c in CURRENCIES}, "bigint")
    problem = (F.when(currency.isNull(), F.lit("no currency"))
               .when(_text(col("amount")).isNull(), F.lit("no amount"))
               .when(~ok, F.concat(F.lit("amount "), col("amount").cast("string"),
                                   F.lit(" is not an amount in "), currency)))
    submit = col("submit_time_utc").cast("timestamp")
    prepared = credits.select(
        F.monotonically_increasing_id().alias("credit_index"),
        _text(col("credit_id")).alias("credit_id"),
        _text(col("reconciliation_id")).alias("credit_reconciliation_id"),
        F.coalesce(F.upper(_text(col("status"))).isin(sorted(DEAD_STATUSES)), F.lit(False)).alias("moves_no_money"),
        F.unix_timestamp(submit).alias("submit_epoch"),
        currency.alias("credit_currency"),
        minor.alias("credit_amount_minor"),
        F.coalesce(tolerances[currency], F.lit(tolerance_minor(tolerance, None))).alias("tolerance_minor"),
        problem.alias("problem"),
        F.struct(*[col(f"`{name}`") for name in credits.columns]).alias("input"),
    )
    return prepared, problem


def _prepare_settlement(settlement: DataFrame) -> DataFrame:
    F = _functions()  # noqa: N806
    col = F.col
    missing = [c for c in ("reconciliation_id", "request_id", "direction", "amount", "currency")
               if c not in settlement.columns]
    if missing:
        raise ValueError(f"the settlement frame lacks {', '.join(missing)}; read it with "
                         "reconkit.spark.read_settlement")
    currency = F.upper(_text(col("currency")))
    digits = F.coalesce(_map(dict(CURRENCIES), "int")[currency], F.lit(_DEFAULT_DIGITS))
    minor, ok = _minor(F.regexp_replace(col("amount").cast("string"), "^-", ""), digits)
    direction = F.lower(_text(col("direction")))
    problem = (F.when(~F.coalesce(direction.isin("credit", "debit"), F.lit(False)),
                      F.lit("direction must be 'credit' or 'debit'"))
               .when(~ok, F.concat(F.lit("amount "), col("amount").cast("string"), F.lit(" is not an amount in "),
                                   F.coalesce(currency, F.lit("no currency")))))
    return settlement.select(
        F.monotonically_increasing_id().alias("row_index"),
        _text(col("reconciliation_id")).alias("row_reconciliation_id"),
        _text(col("request_id")).alias("row_request_id"),
        (direction == "credit").alias("is_credit"),
        currency.alias("row_currency"),
        minor.alias("row_amount_minor"),
        problem.alias("problem"),
        F.struct(*[col(f"`{name}`") for name in settlement.columns]).alias("input"),
    )


def _persister(how: str, table_prefix: str | None) -> Any:
    if how not in MATERIALIZE:
        raise ValueError(f"materialize must be one of {', '.join(MATERIALIZE)}, not {how!r}")
    if how == "table" and not table_prefix:
        raise ValueError("materialize='table' needs table_prefix, e.g. 'main.scratch.recon_'")
    count = [0]

    def persist(frame: DataFrame) -> DataFrame:
        if how == "cache":
            return frame.cache()
        if how == "localCheckpoint":
            return frame.localCheckpoint()
        if how == "table":
            count[0] += 1
            name = f"{table_prefix}{count[0]}"
            frame.write.mode("overwrite").saveAsTable(name)
            return frame.sparkSession.table(name)
        return frame

    return persist


def _reject_bad_input(frame: DataFrame, what: str, key: str) -> None:
    """One aggregate: how many rows are bad and the first of them (by key), named."""
    F = _functions()  # noqa: N806
    row = frame.agg(F.count_if(F.col("problem").isNotNull()).alias("bad"),
                    F.min(F.when(F.col("problem").isNotNull(),
                                 F.concat_ws(": ", F.coalesce(F.col(key).cast("string"), F.lit("(no id)")),
                                             F.col("problem")))).alias("first")).first()
    if row["bad"]:
        raise ReconciliationError(f"{row['bad']} {what}(s) cannot be reconciled; the first: {what} {row['first']}")


def _check_conservation(inputs: DataFrame, outputs: DataFrame, key: str, what: str) -> None:
    """Every input id has exactly one outcome and no other id has one, as Spark aggregates (Spark's
    generated ids are unique but not 0..n-1)."""
    F = _functions()  # noqa: N806
    joined = inputs.select(key, F.lit(1).alias("went_in")).join(
        outputs.select(key, F.lit(1).alias("came_out"), "outcome"), on=key, how="full")
    row = joined.agg(F.count("*").alias("pairs"), F.count_distinct(key).alias("ids"),
                     F.count_if(F.col("came_out").isNull()).alias("lost"),
                     F.count_if(F.col("went_in").isNull()).alias("invented"),
                     F.count_if(F.col("came_out").isNotNull() & F.col("outcome").isNull()).alias("blank")).first()
    if row["lost"] or row["invented"] or row["pairs"] != row["ids"] or row["blank"]:
        raise ReconciliationError(
            f"{what}s: {row['lost']} without an outcome, {row['invented']} unknown, "
            f"{row['pairs'] - row['ids']} doubled, {row['blank']} blank; nothing was reported")


def _decimal(minor: Column, currency: Column) -> Column:
    F = _functions()  # noqa: N806
    digits = F.coalesce(_map(dict(CURRENCIES), "int")[currency], F.lit(_DEFAULT_DIGITS))
    return (minor.cast("decimal(22,0)")
            / F.concat(F.lit("1"), F.repeat(F.lit("0"), digits)).cast("decimal(5,0)")).cast("decimal(22,4)")


def _summary(credits: DataFrame, settlement: DataFrame, breaks: DataFrame) -> pd.DataFrame:
    F = _functions()  # noqa: N806
    key = ["outcome", "currency"]
    parts = [
        credits.groupBy("outcome", F.col("credit_currency").alias("currency")).agg(F.count("*").alias("credits")),
        # A row paired with a credit is counted under the credit's currency, as its break is.
        settlement.join(credits.select("credit_index", F.col("credit_currency").alias("paired_currency")),
                        "credit_index", "left")
        .groupBy("outcome", F.coalesce("paired_currency", "row_currency").alias("currency"))
        .agg(F.count("*").alias("settlement_rows")),
        breaks.groupBy(*key).agg(F.count("*").alias("breaks"),
                                 F.sum("amount_at_risk_minor").alias("amount_at_risk_minor")),
    ]
    frames = [part.toPandas() for part in parts]
    table = frames[0].merge(frames[1], on=key, how="outer").merge(frames[2], on=key, how="outer")
    for name in ("credits", "settlement_rows", "breaks", "amount_at_risk_minor"):
        table[name] = table[name].fillna(0).astype("int64")
    table["amount_at_risk"] = [Decimal(int(m)).scaleb(-CURRENCIES.get(str(c), _DEFAULT_DIGITS))
                               for m, c in zip(table["amount_at_risk_minor"], table["currency"], strict=True)]
    table["break"] = table["outcome"].isin(BREAKS)
    order = {o.value: i for i, o in enumerate(Outcome)}
    table["_order"] = table["outcome"].map(order)
    return table.sort_values(["_order", "currency"]).drop(columns="_order").reset_index(drop=True)[
        ["outcome", "currency", "break", "credits", "settlement_rows", "breaks", "amount_at_risk",
         "amount_at_risk_minor"]]


def _unreadable(failures: DataFrame) -> DataFrame:
    """One row per settlement record that failed to read (file, line), as
    :func:`reconkit.match.unreadable_records` makes it: the record's ids as far as they could be
    read (trimmed, null when empty or absent), ``record_index`` in file and line order."""
    F = _functions()  # noqa: N806
    from pyspark.sql import Window

    missing = [name for name in ("source_file", "source_line") if name not in failures.columns]
    if missing:
        raise ValueError(f"the failures frame lacks {', '.join(missing)}; pass read_settlement(...).failures")

    def ids(name: str) -> Column:
        return F.max(_text(F.col(name))) if name in failures.columns else F.lit(None).cast("string")

    records = failures.groupBy("source_file", F.col("source_line").cast("bigint").alias("source_line")).agg(
        ids("reconciliation_id").alias("failed_reconciliation_id"), ids("request_id").alias("failed_request_id"))
    # A handful of records: one ordered window over them numbers them as the pandas path does.
    order = Window.orderBy("source_file", "source_line")
    return records.withColumn("record_index", (F.row_number().over(order) - 1).cast("bigint"))


def reconcile(credits: DataFrame, settlement: DataFrame, *, amount_tolerance: Any = "0.00",
              grace_days: float = 3, as_of: datetime | str | None = None,
              match_on: Sequence[str] = ("reconciliation_id", "request_id"), failures: DataFrame | None = None,
              materialize: str = "cache", table_prefix: str | None = None) -> SparkReconResult:
    """Reconcile credits against settlement rows, in Spark.

    Parameters
    ----------
    credits : pyspark.sql.DataFrame
        The credits columns of :func:`reconkit.credits_to_frame` (``credit_id``,
        ``reconciliation_id``, ``status``, ``submit_time_utc``, ``amount`` as decimal or text,
        ``currency``).
    settlement : pyspark.sql.DataFrame
        Canonical settlement rows (:func:`reconkit.spark.read_settlement` or Parquet in that
        schema).
    amount_tolerance, grace_days, as_of, match_on
        As for :func:`reconkit.reconcile`.
    failures : pyspark.sql.DataFrame, optional
        The failures of :func:`reconkit.spark.read_settlement` (``source_file``, ``source_line``
        and the failed record's ``reconciliation_id`` / ``request_id``): a credit with no readable
        settlement row whose id is in a failed record is ``UNREADABLE_SETTLEMENT``, and its break
        names that record's file and line.
    materialize : {"cache", "localCheckpoint", "table", "none"}
        How the prepared inputs and shared steps are computed once (see :data:`MATERIALIZE`).
    table_prefix : str, optional
        With ``materialize="table"``: intermediate tables are written as ``<prefix>1``, ``<prefix>2``…

    Returns
    -------
    SparkReconResult

    Raises
    ------
    ReconciliationError
        Naming the first bad credit or settlement row (no currency, no amount, an amount finer
        than its currency), or when a row would be lost or doubled.
    """
    F = _functions()  # noqa: N806
    persist = _persister(materialize, table_prefix)
    moment = as_of_moment(as_of)
    credit_base, _ = _prepare_credits(credits, amount_tolerance)
    credit_base = persist(credit_base)
    row_base = persist(_prepare_settlement(settlement))
    _reject_bad_input(credit_base, "credit", "credit_id")
    _reject_bad_input(row_base, "settlement row", "row_index")
    credit_lazy = nw.from_native(credit_base.drop("problem", "input"))
    row_lazy = nw.from_native(row_base.drop("problem", "input"))

    def once(frame: nw.LazyFrame) -> nw.LazyFrame:
        return nw.from_native(persist(frame.to_native()))

    records = None if failures is None else persist(_unreadable(failures))
    credit_out, settlement_out = classify(credit_lazy, row_lazy, as_of_epoch=int(moment.timestamp()),
                                          grace_seconds=int(grace_days * 86400), match_on=match_on,
                                          materialize=once,
                                          unreadable=None if records is None else nw.from_native(records))
    settlement_out = once(settlement_out)
    breaks = break_table(credit_lazy, credit_out, settlement_out,
                         None if records is None else nw.from_native(records)).to_native()
    credit_native = credit_out.to_native()
    settlement_native = settlement_out.to_native().select("row_index", "credit_index", "outcome")
    _check_conservation(credit_base, credit_native, "credit_index", "credit")
    _check_conservation(row_base, settlement_native, "row_index", "settlement row")

    credit_view = credit_base.select("credit_index", "credit_currency", "input.*").join(
        credit_native, "credit_index", "left")
    ids = credit_base.select("credit_index", F.col("credit_id").alias("paired_credit_id"))
    settlement_view = row_base.select("row_index", "row_currency", "input.*").join(
        settlement_native, "row_index", "left").join(ids, "credit_index", "left")
    row_keys = [name for name in ("source_file", "source_line") if name in settlement.columns]
    # The batch date of the break's (first) settlement row; an unreadable record has none.
    batch_date = F.col("input.batch_date").cast("date") if "batch_date" in settlement.columns \
        else F.lit(None).cast("date")
    # The break's reconciliation id is its credit's, else its settlement row's (an unexpected row),
    # else its unreadable record's: the same rule as the pandas path.
    break_view = (breaks
                  .join(credit_base.select("credit_index", "credit_id", "credit_reconciliation_id"),
                        "credit_index", "left")
                  .join(row_base.select("row_index", "row_reconciliation_id",
                                        F.col("row_request_id").alias("request_id"),
                                        *(F.col(f"input.{name}").alias(name) for name in row_keys),
                                        batch_date.alias("batch_date")),
                        "row_index", "left"))
    paired_ids = ("credit_reconciliation_id", "row_reconciliation_id")
    if records is None:
        break_view = break_view.withColumn("reconciliation_id", F.coalesce(*paired_ids)).drop(*paired_ids)
    else:  # a break on an unreadable record names that record, as the pandas path does
        failed = records.select(F.col("record_index").alias("unreadable_record"),
                                *(F.col(name).alias(f"failed_{name}") for name in ("source_file", "source_line")),
                                "failed_reconciliation_id", "failed_request_id")
        break_view = break_view.join(failed, "unreadable_record", "left").select(
            *(c for c in break_view.columns if c not in ("request_id", *row_keys, *paired_ids)),
            F.coalesce(*paired_ids, "failed_reconciliation_id").alias("reconciliation_id"),
            F.coalesce("request_id", "failed_request_id").alias("request_id"),
            F.coalesce(F.col("source_file").cast("string") if "source_file" in row_keys else F.lit(None),
                       "failed_source_file").alias("source_file"),
            F.coalesce(F.col("source_line").cast("bigint") if "source_line" in row_keys else F.lit(None),
                       "failed_source_line").alias("source_line"))
    break_view = break_view.withColumn("amount_at_risk", _decimal(F.col("amount_at_risk_minor"), F.col("currency")))
    summary = _summary(credit_view, settlement_view, break_view)
    parameters = {"as_of": moment.isoformat(), "grace_days": grace_days, "match_on": list(match_on),
                  "amount_tolerance": amount_tolerance if isinstance(amount_tolerance, Mapping)
                  else str(amount_tolerance), "materialize": materialize}
    return SparkReconResult(credit_view, settlement_view, break_view, summary, parameters)
