"""The reconciliation engine: every credit and every settlement row gets exactly one outcome.

The matching itself (:func:`classify`) is written once against narwhals' lazy API, with no
pandas-only calls, so the same code runs on DuckDB (the default here), Polars or PySpark. The
pandas edges (:func:`reconcile`) prepare integer minor units and render the detail sentences.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from functools import reduce
from typing import TYPE_CHECKING, Any

import duckdb
import narwhals as nw
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .errors import ReconciliationError
from .money import CURRENCIES

if TYPE_CHECKING:
    from .report import ReconResult

__all__ = ["BREAKS", "DEAD_STATUSES", "Outcome", "classify", "reconcile"]


class Outcome(StrEnum):
    """Reason codes (see DESIGN.md); every credit and settlement row gets exactly one."""

    MATCHED = "MATCHED"
    AMOUNT_MISMATCH = "AMOUNT_MISMATCH"
    CURRENCY_MISMATCH = "CURRENCY_MISMATCH"
    DUPLICATE_SETTLEMENT = "DUPLICATE_SETTLEMENT"
    DUPLICATE_CREDIT = "DUPLICATE_CREDIT"
    MISSING_PENDING = "MISSING_PENDING"
    MISSING_OVERDUE = "MISSING_OVERDUE"
    UNEXPECTED_SETTLEMENT = "UNEXPECTED_SETTLEMENT"
    VOIDED_BUT_SETTLED = "VOIDED_BUT_SETTLED"
    DIRECTION_MISMATCH = "DIRECTION_MISMATCH"
    MATCHED_BY_REQUEST_ID = "MATCHED_BY_REQUEST_ID"
    NO_SETTLEMENT_EXPECTED = "NO_SETTLEMENT_EXPECTED"
    OUT_OF_SCOPE = "OUT_OF_SCOPE"


BREAKS = frozenset(o.value for o in Outcome) - {"MATCHED", "NO_SETTLEMENT_EXPECTED", "OUT_OF_SCOPE"}
DEAD_STATUSES = frozenset({"DECLINED", "VOIDED", "FAILED", "CANCELLED", "REJECTED", "INVALID_REQUEST"})
"""Credit statuses that move no money: their absence from settlement is expected."""


def _case(branches: Sequence[tuple[Any, Any]], otherwise: Any) -> Any:
    # Nested when/otherwise: portable to every narwhals backend.
    return reduce(lambda acc, branch: nw.when(branch[0]).then(branch[1]).otherwise(acc), reversed(branches),
                  otherwise)


def classify(credits: nw.LazyFrame, settlement: nw.LazyFrame, *, as_of_epoch: int, grace_seconds: int,
             match_on: Sequence[str] = ("reconciliation_id", "request_id"),
             materialize: Any = None) -> tuple[nw.LazyFrame, nw.LazyFrame]:
    """Assign outcomes, backend-agnostically.

    Parameters
    ----------
    credits : narwhals LazyFrame
        ``_cid`` (int), ``credit_id``, ``c_rid`` (reconciliation id or null), ``dead`` (bool),
        ``submit_epoch`` (int seconds or null), ``c_currency``, ``c_amount_minor`` (int),
        ``tol_minor`` (int).
    settlement : narwhals LazyFrame
        ``_sid`` (int), ``s_rid``, ``s_qid`` (request id), ``is_credit`` (bool), ``s_currency``,
        ``s_amount_minor`` (int).
    as_of_epoch, grace_seconds : int
    match_on : sequence
        ``"reconciliation_id"`` and/or ``"request_id"``, in order of preference.
    materialize : callable, optional
        ``LazyFrame -> LazyFrame`` that computes an intermediate result once (a backend's cache
        or temporary table); without it, shared steps may be recomputed by lazy backends.

    Returns
    -------
    (credit outcomes, settlement outcomes) as lazy frames keyed by ``_cid`` / ``_sid``.
    """
    keep = materialize or (lambda frame: frame)
    col, lit = nw.col, nw.lit
    c = credits.with_columns(
        _dup=(_case([(col("c_rid").is_null(), lit(1))], nw.len().over("c_rid")) > 1) | (nw.len().over("credit_id") > 1)
    )
    pair_parts = []
    if "reconciliation_id" in match_on:
        pair_parts.append(keep(
            settlement.filter(~col("s_rid").is_null()).select("_sid", "s_rid")
            .join(c.select("_cid", "c_rid"), left_on="s_rid", right_on="c_rid", how="inner")
            .select("_sid", "_cid", _by_rid=lit(1))))
    if "request_id" in match_on:
        rest = settlement
        if pair_parts:
            rest = settlement.join(pair_parts[0].select("_sid"), on="_sid", how="anti")
        pair_parts.append(
            rest.filter(~col("s_qid").is_null()).select("_sid", "s_qid")
            .join(c.select("_cid", "credit_id"), left_on="s_qid", right_on="credit_id", how="inner")
            .select("_sid", "_cid", _by_rid=lit(0)))
    if not pair_parts:
        raise ValueError("match_on must name reconciliation_id and/or request_id")
    pairs = nw.concat(pair_parts, how="vertical") if len(pair_parts) > 1 else pair_parts[0]
    per_row = keep(pairs.join(settlement.select("_sid", "is_credit", "s_amount_minor", "s_currency"), on="_sid",
                              how="inner")
                   .with_columns(
                       _cr=col("is_credit").cast(nw.Int64),
                       _db=(~col("is_credit")).cast(nw.Int64),
                       _cr_amount=nw.when(col("is_credit")).then(col("s_amount_minor")),
                       _cr_currency=nw.when(col("is_credit")).then(col("s_currency")),
                       _n_for_sid=nw.len().over("_sid")))
    per_credit = per_row.group_by("_cid").agg(
        col("_cr").sum().alias("n_credit_rows"), col("_db").sum().alias("n_debit_rows"),
        col("_cr_amount").sum().alias("settled_minor"), col("_cr_amount").max().alias("_one_amount"),
        col("_cr_currency").max().alias("settled_currency"),
        col("_by_rid").max().alias("_any_rid"))
    co = (c.join(per_credit, on="_cid", how="left")
          .with_columns(col("n_credit_rows").fill_null(0), col("n_debit_rows").fill_null(0),
                        col("_any_rid").fill_null(0))
          .with_columns(diff_minor=col("_one_amount") - col("c_amount_minor")))
    none_found = (col("n_credit_rows") == 0) & (col("n_debit_rows") == 0)
    young = (lit(as_of_epoch) - col("submit_epoch")) <= lit(grace_seconds)
    credit_outcome = _case([
        (col("_dup"), lit(Outcome.DUPLICATE_CREDIT.value)),
        (none_found & col("dead"), lit(Outcome.NO_SETTLEMENT_EXPECTED.value)),
        (none_found & young, lit(Outcome.MISSING_PENDING.value)),
        (none_found, lit(Outcome.MISSING_OVERDUE.value)),
        (col("n_credit_rows") == 0, lit(Outcome.DIRECTION_MISMATCH.value)),
        (col("dead"), lit(Outcome.VOIDED_BUT_SETTLED.value)),
        (col("n_credit_rows") > 1, lit(Outcome.DUPLICATE_SETTLEMENT.value)),
        ((col("settled_currency") != col("c_currency")) | col("c_currency").is_null(),
         lit(Outcome.CURRENCY_MISMATCH.value)),
        (col("diff_minor").is_null() | (col("diff_minor").abs() > col("tol_minor")),
         lit(Outcome.AMOUNT_MISMATCH.value)),
        (col("_any_rid") == 0, lit(Outcome.MATCHED_BY_REQUEST_ID.value)),
    ], lit(Outcome.MATCHED.value))
    credit_out = keep(co.with_columns(outcome=credit_outcome).select(
        "_cid", "outcome", "n_credit_rows", "n_debit_rows", "settled_minor", "settled_currency", "diff_minor"))
    sid_map = per_row.group_by("_sid").agg(col("_cid").min(), col("_n_for_sid").max())
    so = (settlement.select("_sid", "is_credit")
          .join(sid_map, on="_sid", how="left")
          .join(credit_out.select("_cid", col("outcome").alias("_c_outcome")), on="_cid", how="left"))
    settlement_outcome = _case([
        (col("_cid").is_null() & col("is_credit"), lit(Outcome.UNEXPECTED_SETTLEMENT.value)),
        (col("_cid").is_null(), lit(Outcome.OUT_OF_SCOPE.value)),
        ((col("_n_for_sid") > 1) | (col("_c_outcome") == Outcome.DUPLICATE_CREDIT.value),
         lit(Outcome.DUPLICATE_CREDIT.value)),
        (~col("is_credit"), lit(Outcome.DIRECTION_MISMATCH.value)),
    ], col("_c_outcome"))
    settlement_out = so.with_columns(outcome=settlement_outcome).select("_sid", "_cid", "outcome")
    return credit_out, settlement_out


# --- the pandas edges ---------------------------------------------------------------------

def _minor_units(amounts: pa.Array, currencies: pa.Array, side: str) -> tuple[np.ndarray, np.ndarray]:
    """Exact integer minor units per row (and a mask of rows that have no amount)."""
    scaled = pc.multiply(pc.cast(amounts, pa.decimal128(20, 4)), pa.scalar(Decimal(10000), pa.decimal128(5, 0)))
    units = pc.cast(scaled, pa.int64())
    missing = np.asarray(pc.is_null(units).to_numpy(zero_copy_only=False))
    values = np.asarray(pc.fill_null(units, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
    if isinstance(currencies, pa.ChunkedArray):
        currencies = currencies.combine_chunks()
    encoded = pc.dictionary_encode(currencies)
    lookup = pa.array([CURRENCIES.get(c or "", 2) for c in encoded.dictionary.to_pylist()], pa.int64())
    digits = np.asarray(pc.take(lookup, encoded.indices).to_numpy(zero_copy_only=False), dtype=np.int64)
    divisor = 10 ** (4 - np.clip(digits, 0, 4))
    finer = np.flatnonzero(values % divisor)
    if len(finer):
        row = int(finer[0])
        raise ReconciliationError(
            f"{side} row {row}: amount {amounts[row].as_py()} has more decimal places than "
            f"{currencies[row].as_py()} allows ({int(digits[row])})")
    return values // divisor, missing


def _as_arrow(values: pd.Series, kind: pa.DataType) -> pa.Array:
    if isinstance(values.dtype, pd.ArrowDtype):
        return pa.array(values.array).cast(kind)
    return pa.array(values.astype(object).where(values.notna(), None).tolist(), kind)


def _text(series: pd.Series) -> pa.Array:
    if not isinstance(series.dtype, pd.StringDtype | pd.ArrowDtype):
        series = series.astype(pd.StringDtype("pyarrow"))
    array = pa.array(series.array)  # zero-copy for Arrow-backed strings
    if not pa.types.is_string(array.type):
        array = pc.cast(array, pa.string())
    array = pc.utf8_trim_whitespace(array)
    return pc.if_else(pc.equal(array, ""), pa.scalar(None, pa.string()), array)


def _tolerance(tolerance: str | Decimal | Mapping[str, str | Decimal], currency: str | None) -> int:
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
    currency = pc.utf8_upper(_text(frame["currency"]))
    minor, no_amount = _minor_units(_as_arrow(frame["amount"], pa.decimal128(20, 4)), currency, side)
    return currency, minor, no_amount


def _prepare_credits(credits: pd.DataFrame, tolerance: Any) -> pa.Table:
    currency, amount_minor, no_amount = _money_columns(
        credits, ("credit_id", "reconciliation_id", "status", "submit_time_utc", "amount", "currency"), "credits",
        "build it with reconkit.credits_to_frame")
    submit = pd.to_datetime(credits["submit_time_utc"], utc=True)
    epoch = ((submit - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).where(submit.notna())
    status = credits["status"].astype("string").str.strip().str.upper()
    tolerances = {c: _tolerance(tolerance, c) for c in set(currency.to_pylist())}
    return pa.table({
        "_cid": pa.array(np.arange(len(credits), dtype=np.int64)),
        "credit_id": _text(credits["credit_id"]),
        "c_rid": _text(credits["reconciliation_id"]),
        "dead": pa.array(status.isin(DEAD_STATUSES).fillna(False).to_numpy(dtype=bool)),
        "submit_epoch": pa.array(epoch.astype("Int64"), pa.int64()),
        "c_currency": currency,
        "c_amount_minor": pa.array(amount_minor, mask=no_amount),
        "tol_minor": pa.array([tolerances[c] for c in currency.to_pylist()], pa.int64()),
    })


def _prepare_settlement(settlement: pd.DataFrame) -> pa.Table:
    currency, amount_minor, no_amount = _money_columns(
        settlement, ("reconciliation_id", "request_id", "direction", "amount", "currency"), "settlement",
        "read it with reconkit.read_settlement")
    direction = settlement["direction"].astype("string").str.strip().str.lower()
    if not direction.isin(["credit", "debit"]).all():
        raise ValueError("settlement 'direction' must be 'credit' or 'debit' on every row")
    return pa.table({
        "_sid": pa.array(np.arange(len(settlement), dtype=np.int64)),
        "s_rid": _text(settlement["reconciliation_id"]),
        "s_qid": _text(settlement["request_id"]),
        "is_credit": pa.array((direction == "credit").to_numpy(dtype=bool)),
        "s_currency": currency,
        "s_amount_minor": pa.array(np.abs(amount_minor), mask=no_amount),
    })


def reconcile(credits: pd.DataFrame, settlement: pd.DataFrame, *, amount_tolerance: Any = "0.00",
              grace_days: float = 3, as_of: datetime | str | None = None,
              match_on: Sequence[str] = ("reconciliation_id", "request_id")) -> ReconResult:
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
        Keys in order of preference; a row matched by request id only is
        ``MATCHED_BY_REQUEST_ID``.

    Returns
    -------
    ReconResult

    Raises
    ------
    ReconciliationError
        If the engine would lose or duplicate a row (it checks rows in = rows out per side).
    """
    from .report import ReconResult

    moment = _as_of(as_of)
    c_table = _prepare_credits(credits, amount_tolerance)
    s_table = _prepare_settlement(settlement)
    con = duckdb.connect()
    try:
        c_lazy = nw.from_native(con.from_arrow(c_table))
        s_lazy = nw.from_native(con.from_arrow(s_table))
        def materialize(frame: nw.LazyFrame) -> nw.LazyFrame:
            return nw.from_native(con.from_arrow(frame.collect(backend="pyarrow").to_native()))

        credit_out, settlement_out = classify(c_lazy, s_lazy, as_of_epoch=int(moment.timestamp()),
                                              grace_seconds=int(grace_days * 86400), match_on=match_on,
                                              materialize=materialize)
        c_result = credit_out.collect(backend="pyarrow").to_native().sort_by("_cid")
        s_result = settlement_out.collect(backend="pyarrow").to_native().sort_by("_sid")
    finally:
        con.close()
    _check_conservation(c_result, len(credits), "_cid", "credit")
    _check_conservation(s_result, len(settlement), "_sid", "settlement row")
    parameters = {"amount_tolerance": amount_tolerance if isinstance(amount_tolerance, Mapping)
                  else str(amount_tolerance), "grace_days": grace_days, "as_of": moment.isoformat(),
                  "match_on": list(match_on)}
    return ReconResult.build(credits, settlement, c_table, s_table, c_result, s_result, parameters)


def _as_of(as_of: datetime | str | None) -> datetime:
    if as_of is None:
        return datetime.now(UTC)
    moment = datetime.fromisoformat(as_of.replace("Z", "+00:00")) if isinstance(as_of, str) else as_of
    if isinstance(moment, pd.Timestamp):
        moment = moment.to_pydatetime()
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _check_conservation(result: pa.Table, expected: int, key: str, what: str) -> None:
    # Sorted by key, the ids must be exactly 0..n-1: none lost, none doubled.
    ids = result.column(key).to_numpy()
    if result.num_rows != expected or not np.array_equal(ids, np.arange(expected)):
        raise ReconciliationError(
            f"{expected} {what}s went in but {result.num_rows} outcomes ({len(np.unique(ids))} distinct) "
            "came out; nothing was reported")
    if pc.any(pc.is_null(result.column("outcome"))).as_py():
        raise ReconciliationError(f"a {what} ended without an outcome")
