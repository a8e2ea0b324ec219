"""The reconciliation engine: every credit and every settlement row gets exactly one outcome,
and every break its amount at risk.

The matching (:func:`classify`) and the break table (:func:`break_table`) are written once
against narwhals' lazy API, with no pandas-only calls, so the same code runs on DuckDB (the
default here), Polars or PySpark. The edges (:func:`reconcile`) prepare integer minor units
from the pandas frames and hand the engine's Arrow tables to :class:`reconkit.result.ReconResult`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from functools import reduce
from typing import Any

import duckdb
import narwhals as nw
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .errors import ReconciliationError
from .money import CURRENCIES
from .outcomes import BREAK_ON_CREDIT, BREAK_ON_ROW, BREAKS, Outcome, at_risk
from .result import ReconResult, build_result, decoded, minor_digits, trimmed_text

__all__ = ["BREAKS", "DEAD_STATUSES", "Outcome", "as_of_moment", "break_table", "classify", "reconcile",
           "tolerance_minor", "unreadable_records"]

DEAD_STATUSES = frozenset({"DECLINED", "VOIDED", "FAILED", "CANCELLED", "REJECTED", "INVALID_REQUEST"})
"""Credit statuses that move no money: their absence from settlement is expected."""

def _case(branches: Sequence[tuple[Any, Any]], otherwise: Any) -> Any:
    # Nested when/otherwise: portable to every narwhals backend.
    return reduce(lambda acc, branch: nw.when(branch[0]).then(branch[1]).otherwise(acc), reversed(branches),
                  otherwise)


def classify(credits: nw.LazyFrame, settlement: nw.LazyFrame, *, as_of_epoch: int, grace_seconds: int,
             match_on: Sequence[str] = ("reconciliation_id", "request_id"), unreadable: nw.LazyFrame | None = None,
             materialize: Any = None) -> tuple[nw.LazyFrame, nw.LazyFrame]:
    """Assign outcomes, backend-agnostically.

    Parameters
    ----------
    credits : narwhals LazyFrame
        ``credit_index`` (int), ``credit_id``, ``credit_reconciliation_id`` (or null),
        ``moves_no_money`` (bool: declined, voided, failed), ``submit_epoch`` (int seconds or
        null), ``credit_currency``, ``credit_amount_minor`` (int), ``tolerance_minor`` (int).
    settlement : narwhals LazyFrame
        ``row_index`` (int), ``row_reconciliation_id``, ``row_request_id``, ``is_credit``
        (bool), ``row_currency``, ``row_amount_minor`` (int, unsigned).
    as_of_epoch, grace_seconds : int
    match_on : sequence
        The keys that may pair a row: ``"reconciliation_id"`` and/or ``"request_id"``. Their
        order does not matter: a row the reconciliation id pairs is never re-paired by its
        request id (the fallback), so the reconciliation id always wins.
    unreadable : narwhals LazyFrame, optional
        Settlement records that failed to read: ``record_index`` (int), ``failed_reconciliation_id``
        and ``failed_request_id`` (the ids as far as they could be read, or null).
    materialize : callable, optional
        ``LazyFrame -> LazyFrame`` that computes an intermediate result once (a backend's cache
        or temporary table); without it, shared steps may be recomputed by lazy backends.

    Returns
    -------
    (credit outcomes, settlement outcomes) as lazy frames.
        Credits: ``credit_index``, ``outcome``, ``credit_rows``, ``debit_rows``,
        ``settled_amount_minor``, ``settled_currency``, ``first_row`` (the lowest paired
        ``row_index``), ``unreadable_record`` (the lowest matching ``record_index``).
        Settlement rows: ``row_index``, ``credit_index`` (the paired credit or null), ``outcome``,
        and the row's own ``is_credit``, ``row_currency`` and ``row_amount_minor`` (carried for
        :func:`break_table`, which then needs no join with the settlement rows).
    """
    once = materialize or (lambda frame: frame)
    col, lit = nw.col, nw.lit
    # A credit is a duplicate when another credit shares its id or its (present) reconciliation id.
    # Counted with two aggregates and joins rather than windows (a window sorts or partitions every
    # credit); computed once: lazy backends would otherwise recompute it for every use.
    shared = [credits.filter(~col(key).is_null()).group_by(key).agg(nw.len().alias("sharing"))
              .filter(col("sharing") > 1).select(key, **{flag: lit(True)})
              for key, flag in (("credit_reconciliation_id", "shared_reconciliation_id"),
                                ("credit_id", "shared_credit_id"))]
    with_duplicates = once(
        credits.join(shared[0], on="credit_reconciliation_id", how="left")
        .join(shared[1], on="credit_id", how="left")
        .with_columns(is_duplicate=~col("shared_reconciliation_id").is_null() | ~col("shared_credit_id").is_null())
        .drop("shared_reconciliation_id", "shared_credit_id"))
    pair_parts = []
    # The row's facts ride along with each pair: no second join with the settlement rows.
    row_facts = ("is_credit", "row_amount_minor", "row_currency")
    if "reconciliation_id" in match_on:
        pair_parts.append(once(
            settlement.filter(~col("row_reconciliation_id").is_null())
            .select("row_index", "row_reconciliation_id", *row_facts)
            .join(with_duplicates.select("credit_index", "credit_reconciliation_id"),
                  left_on="row_reconciliation_id", right_on="credit_reconciliation_id", how="inner")
            .select("row_index", "credit_index", *row_facts, by_reconciliation_id=lit(1))))
    if "request_id" in match_on:
        by_request_id = (
            settlement.filter(~col("row_request_id").is_null()).select("row_index", "row_request_id", *row_facts)
            .join(with_duplicates.select("credit_index", "credit_id"), left_on="row_request_id",
                  right_on="credit_id", how="inner")
            .select("row_index", "credit_index", *row_facts, by_reconciliation_id=lit(0)))
        if pair_parts:  # the fallback: only rows the reconciliation id did not pair (both sides are small)
            by_request_id = by_request_id.join(pair_parts[0].select("row_index"), on="row_index", how="anti")
        pair_parts.append(by_request_id)
    if not pair_parts:
        raise ValueError("match_on must name reconciliation_id and/or request_id")
    pairs = nw.concat(pair_parts, how="vertical") if len(pair_parts) > 1 else pair_parts[0]
    paired_rows = once(
        pairs.with_columns(credit_row=col("is_credit").cast(nw.Int64), debit_row=(~col("is_credit")).cast(nw.Int64),
                           credit_row_amount=nw.when(col("is_credit")).then(col("row_amount_minor")),
                           credit_row_currency=nw.when(col("is_credit")).then(col("row_currency"))))
    per_credit = paired_rows.group_by("credit_index").agg(
        col("credit_row").sum().alias("credit_rows"), col("debit_row").sum().alias("debit_rows"),
        col("credit_row_amount").sum().alias("settled_amount_minor"),
        col("credit_row_currency").max().alias("settled_currency"),
        col("by_reconciliation_id").max().alias("any_by_reconciliation_id"),
        col("row_index").min().alias("first_row"))
    joined = (with_duplicates.join(per_credit, on="credit_index", how="left")
              .with_columns(col("credit_rows").fill_null(0), col("debit_rows").fill_null(0),
                            col("any_by_reconciliation_id").fill_null(0)))
    if unreadable is None:
        joined = joined.with_columns(unreadable_record=lit(None, nw.Int64))
    else:
        by_id = [
            unreadable.filter(~col("failed_reconciliation_id").is_null())
            .join(with_duplicates.select("credit_index", "credit_reconciliation_id"),
                  left_on="failed_reconciliation_id", right_on="credit_reconciliation_id", how="inner")
            .select("credit_index", "record_index"),
            unreadable.filter(~col("failed_request_id").is_null())
            .join(with_duplicates.select("credit_index", "credit_id"), left_on="failed_request_id",
                  right_on="credit_id", how="inner")
            .select("credit_index", "record_index"),
        ]
        records = nw.concat(by_id, how="vertical").group_by("credit_index").agg(
            col("record_index").min().alias("unreadable_record"))
        joined = joined.join(records, on="credit_index", how="left")
    none_found = (col("credit_rows") == 0) & (col("debit_rows") == 0)
    young = (lit(as_of_epoch) - col("submit_epoch")) <= lit(grace_seconds)
    difference = col("settled_amount_minor") - col("credit_amount_minor")
    credit_outcome = _case([
        (col("is_duplicate"), lit(Outcome.DUPLICATE_CREDIT.value)),
        (none_found & ~col("unreadable_record").is_null(), lit(Outcome.UNREADABLE_SETTLEMENT.value)),
        (none_found & col("moves_no_money"), lit(Outcome.NO_SETTLEMENT_EXPECTED.value)),
        (none_found & young, lit(Outcome.MISSING_PENDING.value)),
        (none_found, lit(Outcome.MISSING_OVERDUE.value)),
        (col("credit_rows") == 0, lit(Outcome.DIRECTION_MISMATCH.value)),
        (col("moves_no_money"), lit(Outcome.VOIDED_BUT_SETTLED.value)),
        (col("credit_rows") > 1, lit(Outcome.DUPLICATE_SETTLEMENT.value)),
        ((col("settled_currency") != col("credit_currency")) | col("credit_currency").is_null(),
         lit(Outcome.CURRENCY_MISMATCH.value)),
        (difference.is_null() | (difference.abs() > col("tolerance_minor")), lit(Outcome.AMOUNT_MISMATCH.value)),
        # A credit with no reconciliation id (a transaction-search export has none) can only pair by
        # its request id: that is its match, not a missing or different reconciliation id.
        ((col("any_by_reconciliation_id") == 0) & ~col("credit_reconciliation_id").is_null(),
         lit(Outcome.MATCHED_BY_REQUEST_ID.value)),
    ], lit(Outcome.MATCHED.value))
    credit_outcomes = once(joined.with_columns(outcome=credit_outcome).select(
        "credit_index", "outcome", col("credit_rows").cast(nw.Int64), col("debit_rows").cast(nw.Int64),
        col("settled_amount_minor").cast(nw.Int64), "settled_currency", col("first_row").cast(nw.Int64),
        col("unreadable_record").cast(nw.Int64)))
    row_to_credit = paired_rows.group_by("row_index").agg(col("credit_index").min(),
                                                          nw.len().alias("credits_sharing_row"))
    rows = (settlement.select("row_index", *row_facts)
            .join(row_to_credit, on="row_index", how="left")
            .join(credit_outcomes.select("credit_index", col("outcome").alias("credit_outcome")), on="credit_index",
                  how="left"))
    row_outcome = _case([
        (col("credit_index").is_null() & col("is_credit"), lit(Outcome.UNEXPECTED_SETTLEMENT.value)),
        (col("credit_index").is_null(), lit(Outcome.OUT_OF_SCOPE.value)),
        ((col("credits_sharing_row") > 1) | (col("credit_outcome") == Outcome.DUPLICATE_CREDIT.value),
         lit(Outcome.DUPLICATE_CREDIT.value)),
        (~col("is_credit"), lit(Outcome.DIRECTION_MISMATCH.value)),
    ], col("credit_outcome"))
    settlement_outcomes = rows.with_columns(outcome=row_outcome).select("row_index", "credit_index", "outcome",
                                                                         *row_facts)
    return credit_outcomes, settlement_outcomes


def break_table(credits: nw.LazyFrame, credit_outcomes: nw.LazyFrame, settlement_outcomes: nw.LazyFrame,
                unreadable: nw.LazyFrame | None = None) -> nw.LazyFrame:
    """One row per break, with its amount at risk (:func:`reconkit.outcomes.at_risk`).

    A break is a credit whose outcome is a break, with all its settlement rows, or a settlement
    row that is a break on its own (an unexpected row, a non-credit row beside a credit that is
    not a break), or a settlement record that failed to read and is not the reason for a credit's
    ``UNREADABLE_SETTLEMENT`` (an ``UNREADABLE_SETTLEMENT`` of its own, with no currency and an
    unknown amount at risk: an unreadable record is never left out of the breaks and totals).

    Parameters
    ----------
    credits : narwhals LazyFrame
        The engine's credits, as for :func:`classify`.
    credit_outcomes, settlement_outcomes : narwhals LazyFrame
        :func:`classify`'s outputs.
    unreadable : narwhals LazyFrame, optional
        The unreadable records' ``record_index`` (:func:`unreadable_records`), as given to
        :func:`classify`.

    Returns
    -------
    narwhals LazyFrame
        ``break_on``, ``outcome``, ``credit_index`` (null for an unexpected row), ``row_index``
        (the break's first settlement row, or null), ``currency``, ``credit_amount_minor``,
        ``settled_amount_minor``, ``settled_currency``, ``settlement_rows`` (how many
        settlement rows the break holds), ``unreadable_record`` and ``amount_at_risk_minor``.
    """
    col, lit = nw.col, nw.lit
    breaks = list(BREAKS)
    on_credit = (
        credit_outcomes.filter(col("outcome").is_in(breaks))
        .join(credits.select("credit_index", "credit_currency", "credit_amount_minor"), on="credit_index",
              how="inner")
        .select(break_on=lit(BREAK_ON_CREDIT), outcome=col("outcome"), credit_index=col("credit_index"),
                row_index=col("first_row"), currency=col("credit_currency"),
                credit_amount_minor=col("credit_amount_minor"), settled_amount_minor=col("settled_amount_minor"),
                settled_currency=col("settled_currency"),
                settlement_rows=col("credit_rows") + col("debit_rows"), unreadable_record=col("unreadable_record")))
    credit_breaks = credit_outcomes.filter(col("outcome").is_in(breaks)).select(
        "credit_index", is_credit_break=lit(True))
    on_row = (
        settlement_outcomes.filter(col("outcome").is_in(breaks))
        .join(credit_breaks, on="credit_index", how="left")
        .filter(col("is_credit_break").is_null())
        .select(break_on=lit(BREAK_ON_ROW), outcome=col("outcome"), credit_index=col("credit_index"),
                row_index=col("row_index"), currency=col("row_currency"),
                credit_amount_minor=lit(None, nw.Int64),
                settled_amount_minor=nw.when(col("is_credit")).then(col("row_amount_minor")),
                settled_currency=nw.when(col("is_credit")).then(col("row_currency")),
                settlement_rows=lit(1, nw.Int64), unreadable_record=lit(None, nw.Int64)))
    schema = {"break_on": nw.String, "outcome": nw.String, "credit_index": nw.Int64, "row_index": nw.Int64,
              "currency": nw.String, "credit_amount_minor": nw.Int64, "settled_amount_minor": nw.Int64,
              "settled_currency": nw.String, "settlement_rows": nw.Int64, "unreadable_record": nw.Int64}
    parts = [on_credit, on_row]
    if unreadable is not None:
        unreadable_value = Outcome.UNREADABLE_SETTLEMENT.value
        explained = credit_outcomes.filter(col("outcome") == unreadable_value).select(
            record_index=col("unreadable_record"), explains_a_credit=lit(True))
        parts.append(
            unreadable.select("record_index").join(explained, on="record_index", how="left")
            .filter(col("explains_a_credit").is_null())
            .select(break_on=lit(BREAK_ON_ROW), outcome=lit(unreadable_value), credit_index=lit(None, nw.Int64),
                    row_index=lit(None, nw.Int64), currency=lit(None, nw.String),
                    credit_amount_minor=lit(None, nw.Int64), settled_amount_minor=lit(None, nw.Int64),
                    settled_currency=lit(None, nw.String), settlement_rows=lit(0, nw.Int64),
                    unreadable_record=col("record_index")))
    every = nw.concat([part.select(*(col(name).cast(kind) for name, kind in schema.items())) for part in parts],
                      how="vertical")
    return every.with_columns(amount_at_risk_minor=at_risk())


# --- the pandas edges ---------------------------------------------------------------------

_POWERS = 10 ** np.arange(19, dtype=np.int64)  # every power of ten an int64 holds
_DECIMAL_TEXT = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)")
"""Decimal text as an amount column may hold it: digits, one point, no exponent or separators."""


def _minor_units(amounts: pa.Array, currencies: pa.Array, side: str) -> tuple[np.ndarray, np.ndarray]:
    """Exact integer minor units per row (and a mask of rows that have no amount).

    Raises
    ------
    ReconciliationError
        Naming a row whose amount is finer than its currency allows, or too large to count.
    """
    try:
        values, scale, missing = _unscaled(amounts)
    except (pa.ArrowInvalid, OverflowError) as error:  # rare: find the row to name, one by one
        row = next((row for row, value in enumerate(amounts.to_pylist())
                    if value is not None and not _countable(pa.array([value], amounts.type))), 0)
        raise ReconciliationError(f"{side} row {row}: amount {amounts[row].as_py()} cannot be counted exactly "
                                  f"({error})") from error
    if isinstance(currencies, pa.ChunkedArray):
        currencies = currencies.combine_chunks()
    digits = minor_digits(currencies)
    # Minor units = unscaled * 10**(digits - scale); with one currency exponent (the common
    # case) the power is a scalar, and a column already at the currency's scale is used as it is.
    shift = int(digits[0]) - scale if len(digits) and digits.min() == digits.max() else digits - scale
    up, down = np.clip(shift, 0, 18), np.clip(-shift, 0, 18)
    finer = np.flatnonzero(values % _POWERS[down]) if np.any(down) else []
    if len(finer):
        row = int(finer[0])
        raise ReconciliationError(
            f"{side} row {row}: amount {amounts[row].as_py()} has more decimal places than "
            f"{currencies[row].as_py()} allows ({int(digits[row])})")
    if not np.any(up):
        return (values // _POWERS[down] if np.any(down) else values), missing
    limit = np.iinfo(np.int64).max // _POWERS[up]
    too_large = np.flatnonzero((values > limit) | (values < -limit))
    if len(too_large):
        row = int(too_large[0])
        raise ReconciliationError(f"{side} row {row}: amount {amounts[row].as_py()} is too large to count in "
                                  f"{currencies[row].as_py()} minor units")
    return values // _POWERS[down] * _POWERS[up], missing


def _countable(amount: pa.Array) -> bool:
    try:
        _unscaled(amount)
    except (pa.ArrowInvalid, OverflowError):
        return False
    return True


def _unscaled(amounts: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, int, np.ndarray]:
    """Amounts as exact integers at a scale (value = integer / 10**scale), and a mask of the rows
    that have none (0 there).

    A ``decimal128`` column is read off its buffer (the unscaled integer is the value's low 64
    bits when they hold it whole); anything else goes through Arrow's checked decimal casts to
    ten-thousandths, which raise on an amount finer than 4 places or too large.
    """
    if isinstance(amounts, pa.ChunkedArray):
        amounts = amounts.combine_chunks()
    kind = amounts.type
    if pa.types.is_decimal128(kind) and 0 <= kind.scale <= 18 and len(amounts):
        words = np.frombuffer(amounts.buffers()[1], dtype=np.int64).reshape(-1, 2)
        low, high = (words[amounts.offset:amounts.offset + len(amounts), part] for part in (0, 1))
        missing = np.asarray(amounts.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        whole = (high == (low >> 63)) & (low != np.iinfo(np.int64).min)  # no sign flip left for abs()
        if (whole | missing).all():
            return (np.where(missing, 0, low) if missing.any() else low.copy()), kind.scale, missing
    scaled = pc.multiply(pc.cast(amounts, pa.decimal128(20, 4)), pa.scalar(Decimal(10000), pa.decimal128(5, 0)))
    units = pc.cast(scaled, pa.int64())
    return (np.asarray(pc.fill_null(units, 0).to_numpy(zero_copy_only=False), dtype=np.int64), 4,
            np.asarray(pc.is_null(units).to_numpy(zero_copy_only=False), dtype=bool))


def _exact_amounts(values: pd.Series, side: str) -> pa.Array:
    """A side's amounts as an Arrow decimal column, exactly: decimal and integer columns as they
    are, ``Decimal`` objects and decimal text (``"12.50"``, as ``pd.read_csv(dtype=str)`` gives
    it) read digit for digit. Floats are refused: a binary fraction is not an amount of money.

    Raises
    ------
    ReconciliationError
        Naming the side's first row whose amount is a float or text that is not a decimal.
    """
    kind = values.dtype.pyarrow_dtype if isinstance(values.dtype, pd.ArrowDtype) else None
    if kind is not None and (pa.types.is_decimal(kind) or pa.types.is_integer(kind)):
        return pa.array(values.array).cast(kind if pa.types.is_decimal(kind) else pa.decimal128(20, 0))
    if pd.api.types.is_integer_dtype(values.dtype):
        return pa.array(values.astype("Int64").array, pa.int64()).cast(pa.decimal128(20, 0))
    objects = values.astype(object).where(values.notna(), None).tolist()
    try:  # Decimal objects (credits_to_frame's) are converted in C; anything else is looked at below
        inferred = pa.array(objects)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        inferred = None
    if inferred is not None and pa.types.is_decimal(inferred.type):
        return inferred
    if inferred is not None and (pa.types.is_integer(inferred.type) or pa.types.is_null(inferred.type)):
        return inferred.cast(pa.decimal128(20, 0))
    amounts: list[Decimal | None] = []
    for row, value in enumerate(objects):
        if value is None:
            amounts.append(None)
        elif isinstance(value, Decimal | int | np.integer) and not isinstance(value, bool):
            amounts.append(Decimal(int(value)) if not isinstance(value, Decimal) else value)
        elif isinstance(value, str) and _DECIMAL_TEXT.fullmatch(value.strip()):
            amounts.append(Decimal(value.strip()))
        else:
            raise ReconciliationError(
                f"{side} row {row}: amount {value!r} is not an exact amount; give Decimal objects or decimal "
                "text such as '12.50'" + (" (a float is a binary fraction, not money)"
                                          if isinstance(value, float | np.floating) else ""))
    return pa.array(amounts, pa.decimal128(38, max((-a.as_tuple().exponent for a in amounts if a is not None),
                                                   default=0)))


def tolerance_minor(tolerance: str | Decimal | Mapping[str, str | Decimal], currency: str | None) -> int:
    """``reconcile``'s ``amount_tolerance`` for one currency in its minor units (a mapping falls back
    on its ``"*"`` entry, then 0); both engines read the parameter through this one definition."""
    value = tolerance.get(currency or "", tolerance.get("*", "0")) if isinstance(tolerance, Mapping) else tolerance
    amount = Decimal(str(value))
    if amount < 0:
        raise ValueError(f"amount_tolerance {value!r} is negative")
    return int(amount.scaleb(CURRENCIES.get(currency or "", 2)).to_integral_value())


def _money_columns(frame: pd.DataFrame, columns: tuple[str, ...], side: str, hint: str
                   ) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """Check a side's columns; return its currencies, amounts in minor units and their null mask."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"the {side} frame lacks {', '.join(missing)}; {hint}")
    currency = pc.utf8_upper(trimmed_text(frame["currency"]))
    if isinstance(currency, pa.ChunkedArray):  # the dictionary steps need one array
        currency = currency.combine_chunks()
    minor, no_amount = _minor_units(_exact_amounts(frame["amount"], side), currency, side)
    return currency, minor, no_amount


def _reject_incomplete(credits: pd.DataFrame) -> None:
    """A credit without a currency or an amount cannot be compared: bad input, named (the Spark
    path, :func:`reconkit.spark.reconcile`, words it the same way)."""
    for column, words in (("currency", "no currency"), ("amount", "no amount")):
        if column not in credits or "credit_id" not in credits:
            continue  # _money_columns names the missing column
        empty = _blank(credits[column])
        if empty.any():
            first = credits["credit_id"].iloc[int(np.flatnonzero(empty)[0])]
            raise ReconciliationError(f"{int(empty.sum())} credit(s) cannot be reconciled; the first: credit "
                                      f"{first}: {words}")


def _blank(values: pd.Series) -> np.ndarray:
    """Rows with no value: missing, or text that is empty once trimmed."""
    kind = values.dtype.pyarrow_dtype if isinstance(values.dtype, pd.ArrowDtype) else None
    if pd.api.types.is_numeric_dtype(values.dtype) or (kind is not None and not (
            pa.types.is_string(kind) or pa.types.is_large_string(kind))):
        return values.isna().to_numpy(dtype=bool)  # numbers and decimals cannot be blank text
    if values.dtype == object:  # Decimals and numbers cannot be blank: only the text needs a look
        blank = values.isna().to_numpy(dtype=bool, copy=True)
        text = np.fromiter((isinstance(value, str) for value in values), dtype=bool, count=len(values))
        if text.any():
            blank[text] |= (values[text].astype("string").str.strip() == "").to_numpy(dtype=bool)
        return blank
    return np.asarray(pc.is_null(trimmed_text(values)).to_numpy(zero_copy_only=False), dtype=bool)


def _prepare_credits(credits: pd.DataFrame, tolerance: Any) -> pa.Table:
    _reject_incomplete(credits)
    currency, amount_minor, no_amount = _money_columns(
        credits, ("credit_id", "reconciliation_id", "status", "submit_time_utc", "amount", "currency"), "credits",
        "build it with reconkit.credits_to_frame")
    submit = pd.to_datetime(credits["submit_time_utc"], utc=True)
    epoch = ((submit - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).where(submit.notna())
    status = pc.utf8_upper(trimmed_text(credits["status"]))
    tolerances = {c: tolerance_minor(tolerance, c) for c in pc.unique(currency).to_pylist()}
    encoded = pc.dictionary_encode(currency)
    tolerance_of = pa.array([tolerances[c] for c in encoded.dictionary.to_pylist()], pa.int64())
    return pa.table({
        "credit_index": pa.array(np.arange(len(credits), dtype=np.int64)),
        "credit_id": trimmed_text(credits["credit_id"]),
        "credit_reconciliation_id": trimmed_text(credits["reconciliation_id"]),
        "moves_no_money": pc.fill_null(pc.is_in(status, pa.array(sorted(DEAD_STATUSES))), False),
        "submit_epoch": pa.array(epoch.astype("Int64"), pa.int64()),
        "credit_currency": currency,
        "credit_amount_minor": pa.array(amount_minor, mask=no_amount),
        "tolerance_minor": pc.take(tolerance_of, encoded.indices),
    })


def _prepare_settlement(settlement: pd.DataFrame) -> pa.Table:
    columns = ("reconciliation_id", "request_id", "direction", "amount", "currency")
    ids = ("reconciliation_id", "request_id")
    with ThreadPoolExecutor(max_workers=len(ids)) as pool:  # the ids are trimmed while the money is read
        trimming = [pool.submit(trimmed_text, settlement[name]) for name in ids if name in settlement]
        currency, amount_minor, no_amount = _money_columns(settlement, columns, "settlement",
                                                           "read it with reconkit.read_settlement")
        direction = pc.utf8_lower(trimmed_text(settlement["direction"]))
        is_credit = pc.equal(direction, "credit")
        if pc.any(pc.invert(pc.is_in(direction, pa.array(["credit", "debit"])))).as_py():
            raise ValueError("settlement 'direction' must be 'credit' or 'debit' on every row")
        reconciliation_id, request_id = (job.result() for job in trimming)
    return pa.table({
        "row_index": pa.array(np.arange(len(settlement), dtype=np.int64)),
        "row_reconciliation_id": reconciliation_id,
        "row_request_id": request_id,
        "is_credit": is_credit,
        "row_currency": currency,
        "row_amount_minor": pa.array(np.abs(amount_minor), mask=no_amount),
    })


def unreadable_records(failures: pd.DataFrame | None) -> pa.Table:
    """One row per settlement record that failed to read, from the readers' failures frame.

    Several failure rows may name one record (file, line); the record's ids are the trimmed
    ``reconciliation_id`` / ``request_id`` the reader could still make out (null when the frame
    lacks those columns or the id was unreadable too).

    Returns
    -------
    pyarrow.Table
        ``record_index``, ``source_file``, ``source_line``, ``column``, ``value``, ``reason``
        (of the record's first failure), ``failed_reconciliation_id``, ``failed_request_id``.
    """
    names = ("source_file", "source_line", "column", "value", "reason", "reconciliation_id", "request_id")
    if failures is None or len(failures) == 0:
        frame = pd.DataFrame({n: pd.Series([], dtype="Int64" if n == "source_line" else "string") for n in names})
    else:
        frame = failures.reset_index(drop=True)
    columns = {}
    for name in names:
        if name not in frame.columns:
            columns[name] = pa.nulls(len(frame), pa.int64() if name == "source_line" else pa.string())
        elif name == "source_line":
            columns[name] = pa.array(frame[name].astype("Int64"), pa.int64())
        else:
            columns[name] = trimmed_text(frame[name])
    table = pa.table(columns)
    # The first failure of each (file, line) stands for the record; the ids come from any of them.
    grouped = table.append_column("order", pa.array(np.arange(len(frame), dtype=np.int64))).group_by(
        ["source_file", "source_line"], use_threads=False).aggregate(
        [("order", "min"), ("reconciliation_id", "max"), ("request_id", "max")])
    first = table.take(grouped.column("order_min")).select(["source_file", "source_line", "column", "value",
                                                            "reason"])
    ordered = first.append_column("failed_reconciliation_id", grouped.column("reconciliation_id_max")) \
        .append_column("failed_request_id", grouped.column("request_id_max")) \
        .sort_by([("source_file", "ascending"), ("source_line", "ascending")])
    return ordered.add_column(0, "record_index", pa.array(np.arange(ordered.num_rows, dtype=np.int64)))


def reconcile(credits: pd.DataFrame, settlement: pd.DataFrame, *, amount_tolerance: Any = "0.00",
              grace_days: float = 3, as_of: datetime | str | None = None,
              match_on: Sequence[str] = ("reconciliation_id", "request_id"), failures: pd.DataFrame | None = None,
              environment: str | None = None) -> ReconResult:
    """Reconcile credits against settlement rows.

    Parameters
    ----------
    credits : DataFrame
        The credits frame of :func:`reconkit.credits_to_frame`.
    settlement : DataFrame
        The canonical frame of :func:`reconkit.read_settlement`.
    amount_tolerance : str, Decimal or dict
        Largest difference still ``MATCHED``, in major units; a dict gives it per currency
        (``{"USD": "0.01", "JPY": "1", "*": "0"}``).
    grace_days : float
        A credit missing from settlement is ``MISSING_PENDING`` while younger than this.
    as_of : datetime or ISO string, optional
        The moment ages are measured at (default: now).
    match_on : sequence
        The keys that may pair rows (order does not matter): the reconciliation id always
        wins, the request id pairs only rows it left; a row paired by request id only is
        ``MATCHED_BY_REQUEST_ID``.
    failures : DataFrame, optional
        The failures frame of ``read_settlement(..., errors="collect")``: a credit with no
        readable settlement row whose id is in a failed record is ``UNREADABLE_SETTLEMENT``.
    environment : str, optional
        Where the credits came from (``SANDBOX``, ``TEST``, ``PRODUCTION``), for the reports.

    Returns
    -------
    ReconResult

    Raises
    ------
    ReconciliationError
        If the engine would lose or duplicate a row (it checks rows in = rows out per side).
    """
    col = nw.col
    moment = as_of_moment(as_of)
    credit_table = _prepare_credits(credits, amount_tolerance)
    row_table = _prepare_settlement(settlement)
    records = unreadable_records(failures)
    connection = duckdb.connect()
    try:
        def lazy(table: pa.Table) -> nw.LazyFrame:
            return nw.from_native(connection.from_arrow(table))

        computed: dict[int, tuple[nw.LazyFrame, pa.Table]] = {}  # the frame is kept so its id stays unique

        def collect(frame: nw.LazyFrame) -> pa.Table:
            if id(frame) in computed:  # materialized already: no second round trip
                return computed[id(frame)][1]
            # One chunk per column: later takes on DuckDB's many small chunks would cost far more.
            return frame.collect(backend="pyarrow").to_native().combine_chunks()

        def materialize(frame: nw.LazyFrame) -> nw.LazyFrame:
            table = collect(frame)
            result = lazy(table)
            computed[id(result)] = (result, table)
            return result

        credit_lazy, row_lazy = lazy(credit_table), lazy(row_table)
        unreadable = lazy(records.select(["record_index", "failed_reconciliation_id", "failed_request_id"])) \
            if records.num_rows else None
        credit_out, settlement_out = classify(
            credit_lazy, row_lazy, as_of_epoch=int(moment.timestamp()), grace_seconds=int(grace_days * 86400),
            match_on=match_on, materialize=materialize, unreadable=unreadable)
        # Word columns come out as codes (Enum): reordering millions of codes costs a fraction of
        # reordering the strings; they are decoded once, in order.
        outcome_codes = col("outcome").cast(nw.Enum([o.value for o in Outcome]))
        row_result = collect(settlement_out.with_columns(outcome_codes))
        credit_result = collect(credit_out)
        breaks = collect(break_table(credit_lazy, lazy(credit_result), lazy(row_result), unreadable).with_columns(
            outcome_codes, col("break_on").cast(nw.Enum([BREAK_ON_CREDIT, BREAK_ON_ROW]))))
        credit_result = _in_input_order(credit_result, "credit_index")
        row_result = _in_input_order(row_result.select(["row_index", "credit_index", "outcome"]), "row_index")
    finally:
        connection.close()
    row_result = row_result.set_column(2, "outcome", decoded(row_result.column("outcome")))
    _check_conservation(credit_result, len(credits), "credit_index", "credit")
    _check_conservation(row_result, len(settlement), "row_index", "settlement row")
    parameters = {"environment": environment or "", "as_of": moment.isoformat(),
                  "amount_tolerance": amount_tolerance if isinstance(amount_tolerance, Mapping)
                  else str(amount_tolerance), "grace_days": grace_days, "match_on": list(match_on)}
    return build_result(credits, settlement, credit_table, row_table, credit_result, row_result, breaks, records,
                        parameters)


def as_of_moment(as_of: datetime | str | None) -> datetime:
    """``reconcile``'s ``as_of`` as an aware time: now when None, UTC when it names no zone."""
    if as_of is None:
        return datetime.now(UTC)
    moment = datetime.fromisoformat(as_of.replace("Z", "+00:00")) if isinstance(as_of, str) else as_of
    if isinstance(moment, pd.Timestamp):
        moment = moment.to_pydatetime()
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _in_input_order(result: pa.Table, key: str) -> pa.Table:
    """Put outcomes back in input order by scattering on their index (no sort of 1M rows).

    An index that is not a permutation of 0..n-1 is left as it came, for
    ``_check_conservation`` to report.
    """
    ids = result.column(key).to_numpy(zero_copy_only=False)
    count = len(ids)
    if count == 0 or result.column(key).null_count or ids.min() < 0 or ids.max() >= count:
        return result
    positions = np.full(count, -1, dtype=np.int64)
    positions[ids] = np.arange(count, dtype=np.int64)
    if (positions < 0).any():
        return result
    return result.take(positions)


def _check_conservation(result: pa.Table, expected: int, key: str, what: str) -> None:
    # Sorted by key, the ids must be exactly 0..n-1: none lost, none doubled.
    ids = result.column(key).to_numpy()
    if result.num_rows != expected or not np.array_equal(ids, np.arange(expected)):
        raise ReconciliationError(
            f"{expected} {what}s went in but {result.num_rows} outcomes ({len(np.unique(ids))} distinct) "
            "came out; nothing was reported")
    if pc.any(pc.is_null(result.column("outcome"))).as_py():
        raise ReconciliationError(f"a {what} ended without an outcome")
