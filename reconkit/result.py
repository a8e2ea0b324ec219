"""``ReconResult``: what :func:`reconkit.reconcile` found, as plain Arrow-backed data.

One table holds every break (a credit with all its settlement rows, or one settlement row on
its own) with its amount at risk as the engine computed it (:func:`reconkit.outcomes.at_risk`);
the summary is aggregated from that same table, so the two cannot disagree. Amounts stay integer
minor units until they are shown; the pandas views are built on first use. Rendering (HTML,
Excel, CSV, figures) lives in :mod:`reconkit.report`.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .money import CURRENCIES
from .outcomes import BREAK_ON_CREDIT, BREAKS, Outcome

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["BREAK_COLUMNS", "ReconResult", "amount_decimals", "amount_text", "build_result", "decoded",
           "minor_digits", "trimmed_text"]

BREAK_COLUMNS = ("outcome", "currency", "amount_at_risk", "credit_id", "reconciliation_id", "request_id",
                 "credit_amount", "settled_amount", "settlement_rows", "source_file", "source_line", "batch_date",
                 "detail", "status", "submit_time_utc", "age_days", "break_on")
"""The break table's columns as the views and exports show them, in order."""

_ORDER = {o.value: i for i, o in enumerate(Outcome)}


# --- Arrow helpers shared with the engine's edge and the renderers --------------------------

def trimmed_text(series: pd.Series) -> pa.Array | pa.ChunkedArray:
    """A pandas column as an Arrow string array, whitespace trimmed and empty strings null.

    A column in chunks (as the readers and Parquet give them) stays in chunks: joining 5M ids
    into one buffer costs more than everything else done to them here.
    """
    if not isinstance(series.dtype, pd.StringDtype | pd.ArrowDtype):
        series = series.astype(pd.StringDtype("pyarrow"))
    array = pa.array(series.array)  # zero-copy for Arrow-backed strings
    if not pa.types.is_string(array.type):
        array = pc.cast(array, pa.string())
    chunks = array.chunks if isinstance(array, pa.ChunkedArray) else [array]
    if not any(_may_need_trim(chunk) for chunk in chunks):
        return array
    array = pc.utf8_trim_whitespace(array)
    return pc.if_else(pc.equal(array, ""), pa.scalar(None, pa.string()), array)


def _may_need_trim(array: pa.Array) -> bool:
    """Whether a string array may hold an empty value or one with whitespace at either end.

    A look at each value's first and last byte: whitespace is an ASCII byte up to the space or,
    in UTF-8, a character whose bytes are all 0x80 or above; ids read from files almost never
    have either, and then the trim (a copy of every string) is skipped.
    """
    _, offsets_buffer, data_buffer = array.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int32)[array.offset:array.offset + len(array) + 1]
    valid = np.asarray(array.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    starts, ends = offsets[:-1][valid], offsets[1:][valid]
    if (ends == starts).any():
        return True
    if not len(starts):
        return False
    data = np.frombuffer(data_buffer, dtype=np.uint8)
    first, last = data[starts], data[ends - 1]
    return bool(((first <= 0x20) | (first >= 0x80) | (last <= 0x20) | (last >= 0x80)).any())


def _plain(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


def minor_digits(currency: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Minor-unit digits per row (JPY 0, USD 2, KWD 3; 2 for an unknown or missing code)."""
    encoded = pc.dictionary_encode(_plain(currency))
    return _currency_digits(encoded.dictionary, _codes(encoded))


def _decimal_array(minor: pa.Array, scale: int) -> pa.Array:
    """Integer minor units read as ``decimal128(38, scale)`` without arithmetic: the unscaled value
    of a decimal is the minor-unit integer itself."""
    values = np.asarray(pc.fill_null(minor, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
    wide = np.empty((len(values), 2), dtype=np.int64)
    wide[:, 0] = values
    wide[:, 1] = values >> 63  # sign extension into the high 64 bits
    array = pa.Array.from_buffers(pa.decimal128(38, scale), len(values), [None, pa.py_buffer(wide)])
    if minor.null_count:
        array = pc.if_else(pc.is_valid(minor), array, pa.scalar(None, array.type))
    return array


def amount_text(minor: pa.Array | pa.ChunkedArray, digits: np.ndarray) -> pa.Array:
    """Minor units as decimal text with each row's own number of decimals (``"12.34"``,
    ``"1500"``, ``"1.250"``); null stays null."""
    minor = pc.cast(_plain(minor), pa.int64())
    text = pa.nulls(len(minor), pa.string())
    for scale in np.unique(digits):
        rows = pa.array(digits == scale)
        text = pc.if_else(rows, pc.cast(_decimal_array(minor, int(scale)), pa.string()), text)
    return text


def amount_decimals(minor: pa.Array | pa.ChunkedArray, digits: np.ndarray) -> np.ndarray:
    """Minor units as ``Decimal`` objects with each row's own number of decimals (None for null)."""
    minor = pc.cast(_plain(minor), pa.int64())
    out = np.full(len(minor), None, dtype=object)
    for scale in np.unique(digits):
        rows = digits == scale
        out[rows] = _decimal_array(minor, int(scale)).to_numpy(zero_copy_only=False)[rows]
    return out


def _join(*parts: Any) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def _assemble(size: int, pieces: list[tuple[np.ndarray, pa.Array]]) -> pa.Array:
    """Scatter per-outcome sentence arrays back into row order (every row in exactly one piece)."""
    if not pieces:
        return pa.array([], pa.string())
    order = np.concatenate([rows for rows, _ in pieces])
    values = pa.concat_arrays([pc.cast(_plain(v), pa.string()) for _, v in pieces])
    position = np.empty(size, dtype=np.int64)
    position[order] = np.arange(len(order))
    return values.take(pa.array(position))


def _sentences(outcome: pa.Array, builders: dict[str, Any], fallback: Any) -> pa.Array:
    """One sentence per row: ``builders[outcome](rows)`` for each outcome present, else ``fallback(rows)``."""
    encoded = outcome if pa.types.is_dictionary(outcome.type) else pc.dictionary_encode(outcome)
    codes = _codes(encoded)
    pieces = []
    for code, word in enumerate(encoded.dictionary.to_pylist()):
        rows = np.flatnonzero(codes == code)
        if len(rows):
            pieces.append((rows, builders.get(word, fallback)(pa.array(rows))))
    rest = np.flatnonzero(codes < 0)
    if len(rest):
        pieces.append((rest, fallback(pa.array(rest))))
    return _assemble(len(outcome), pieces)


# --- the result ----------------------------------------------------------------------------

@dataclass(frozen=True)
class _Inputs:
    """What the engine was given, kept for the per-row views."""

    credits: pd.DataFrame
    settlement: pd.DataFrame
    credit_table: pa.Table
    row_table: pa.Table


@dataclass(frozen=True)
class ReconResult:
    """The outcome of :func:`reconkit.reconcile`, as plain data.

    Attributes
    ----------
    parameters : dict
        ``environment``, ``as_of``, ``amount_tolerance``, ``grace_days``, ``match_on``,
        ``input_files``.
    break_table : pyarrow.Table
        One row per break, sorted by currency and, within a currency, by amount at risk (largest
        first): ``outcome``, ``break_on``, ``currency``, ``minor_units``, ``amount_at_risk_minor``,
        ``credit_amount_minor``, ``settled_amount_minor``, ``settled_currency``, ids, first
        ``source_file`` / ``source_line`` and that row's ``batch_date`` (``date32``),
        ``settlement_rows``, credit ``status``,
        ``submit_time_utc``, ``age_days`` and ``detail``.
    credit_outcomes : pyarrow.Table
        One row per input credit, in input order: ``outcome``, ``detail``,
        ``amount_at_risk_minor`` and the engine's per-credit figures.
    settlement_outcomes : pyarrow.Table
        One row per input settlement row, in input order: ``credit_index`` (the paired credit),
        ``outcome``, ``amount_at_risk_minor``.
    unreadable : pyarrow.Table
        The settlement records that failed to read (one row per file and line).
    """

    parameters: dict[str, Any]
    break_table: pa.Table
    credit_outcomes: pa.Table
    settlement_outcomes: pa.Table
    unreadable: pa.Table
    _inputs: _Inputs = field(repr=False, compare=False)

    # --- plain data ------------------------------------------------------------------------
    @cached_property
    def summary_table(self) -> pa.Table:
        """Per outcome and currency: ``credits``, ``settlement_rows``, ``breaks`` and
        ``amount_at_risk_minor``; the last two aggregated from :attr:`break_table`. A settlement
        row paired with a credit is counted under the credit's currency, as its break is (a
        CURRENCY_MISMATCH's USD row beside its EUR credit counts as EUR)."""
        credit_currency = self._inputs.credit_table.column("credit_currency")
        row_currency = pc.coalesce(pc.take(credit_currency, self.settlement_outcomes.column("credit_index")),
                                   self._inputs.row_table.column("row_currency"))
        key = ["outcome", "currency"]
        credits = pa.table({"outcome": self.credit_outcomes.column("outcome"), "currency": credit_currency}) \
            .group_by(key, use_threads=False).aggregate([([], "count_all")]).rename_columns([*key, "credits"])
        rows = pa.table({"outcome": self.settlement_outcomes.column("outcome"), "currency": row_currency}) \
            .group_by(key, use_threads=False).aggregate([([], "count_all")]).rename_columns(
            [*key, "settlement_rows"])
        breaks = self.break_table.select([*key, "amount_at_risk_minor", "minor_units"]) \
            .group_by(key, use_threads=False).aggregate(
            [([], "count_all"), ("amount_at_risk_minor", "sum"),
             ("amount_at_risk_minor", "count", pc.CountOptions(mode="only_null")), ("minor_units", "max")]) \
            .rename_columns([*key, "breaks", "amount_at_risk_minor", "unknown_at_risk", "minor_units"])
        table = credits.join(rows, key, join_type="full outer").join(breaks, key, join_type="full outer")
        filled = {name: pc.fill_null(table.column(name), 0) for name in ("credits", "settlement_rows", "breaks",
                                                                         "amount_at_risk_minor", "unknown_at_risk")}
        for name, column in filled.items():
            table = table.set_column(table.schema.get_field_index(name), name, pc.cast(column, pa.int64()))
        digits = minor_digits(table.column("currency"))
        table = table.set_column(table.schema.get_field_index("minor_units"), "minor_units", pa.array(digits))
        is_break = pc.is_in(table.column("outcome"), pa.array(sorted(BREAKS)))
        order = np.array([_ORDER.get(o, len(_ORDER)) for o in table.column("outcome").to_pylist()], dtype=np.int64)
        table = table.append_column("break", is_break).append_column("outcome_order", pa.array(order))
        table = table.sort_by([("outcome_order", "ascending"), ("currency", "ascending")]).drop_columns(
            "outcome_order")
        return table.select(["outcome", "currency", "break", "credits", "settlement_rows", "breaks",
                             "amount_at_risk_minor", "unknown_at_risk", "minor_units"])

    def counts(self) -> dict[str, dict[str, int]]:
        """Outcome counts per side: ``{"credits": {...}, "settlement": {...}}``."""
        def tally(table: pa.Table) -> dict[str, int]:
            counts = pc.value_counts(table.column("outcome")).to_pylist()
            return {str(item["values"]): int(item["counts"]) for item in sorted(counts, key=lambda i: i["values"])}

        return {"credits": tally(self.credit_outcomes), "settlement": tally(self.settlement_outcomes)}

    def totals(self, fx: dict[str, str | Decimal] | None = None, base: str | None = None) -> pd.DataFrame:
        """Amount at risk and break count per currency; with ``fx`` (units of the base currency per
        unit of each currency, e.g. ``{"EUR": "1.08"}``) a converted total in the base currency too.

        Parameters
        ----------
        fx : dict, optional
            A rate for every currency with a break; the base currency itself needs none.
        base : str, optional
            The base currency's code, for the label (default ``"base"``).

        Returns
        -------
        DataFrame
            ``currency``, ``breaks``, ``amount_at_risk``; with ``fx`` also ``rate`` and
            ``converted`` per currency, and a last row ``currency = "<base> (converted)"``.
            Breaks of settlement records that failed to read have no currency and no known
            amount: their row has ``currency`` None, ``amount_at_risk`` None, and is not
            converted.

        Raises
        ------
        ValueError
            If ``fx`` lacks a rate for a currency that has breaks.
        """
        table = self.break_table.group_by("currency", use_threads=False).aggregate(
            [([], "count_all"), ("amount_at_risk_minor", "sum"), ("minor_units", "max")]).sort_by(
            [("currency", "ascending", "at_end")])
        digits = np.asarray(table.column("minor_units_max").to_numpy(zero_copy_only=False), dtype=np.int64)
        frame = pd.DataFrame({"currency": table.column("currency").to_pylist(),
                              "breaks": table.column("count_all").to_numpy(zero_copy_only=False),
                              "amount_at_risk": amount_decimals(
                                  pc.fill_null(table.column("amount_at_risk_minor_sum"), 0), digits)})
        frame.loc[frame["currency"].isna(), "amount_at_risk"] = None  # records that failed to read
        if fx is None:
            return frame
        rates = {str(code).upper(): Decimal(str(rate)) for code, rate in fx.items()}
        label = (base or "base").upper()
        rates.setdefault(label, Decimal(1))
        missing = sorted(set(frame["currency"].dropna()) - set(rates))
        if missing:
            raise ValueError(f"fx has no rate for {', '.join(map(str, missing))}; give one per currency with breaks")
        frame["rate"] = [rates.get(c) for c in frame["currency"]]
        frame["converted"] = [None if r is None else (a * r).quantize(Decimal("0.01"))
                              for a, r in zip(frame["amount_at_risk"], frame["rate"], strict=True)]
        total = pd.DataFrame({"currency": [f"{label} (converted)"], "breaks": [int(frame["breaks"].sum())],
                              "amount_at_risk": [None], "rate": [None],
                              "converted": [sum(frame["converted"].dropna(), Decimal(0))]})
        return pd.concat([frame, total], ignore_index=True)

    # --- pandas views (built on first use) --------------------------------------------------
    def breaks_frame(self, table: pa.Table | None = None) -> pd.DataFrame:
        """Break rows as a pandas frame with :data:`BREAK_COLUMNS` (amounts as ``Decimal``).

        Parameters
        ----------
        table : pyarrow.Table, optional
            A slice or filter of :attr:`break_table` (a page of it); default the whole table.
        """
        table = self.break_table if table is None else table
        digits = np.asarray(table.column("minor_units").to_numpy(zero_copy_only=False), dtype=np.int64)
        settled_digits = np.where(pc.is_null(table.column("settled_currency")).to_numpy(zero_copy_only=False),
                                  digits, minor_digits(table.column("settled_currency")))
        frame = pd.DataFrame({
            "outcome": _strings(table.column("outcome")),
            "currency": _strings(table.column("currency")),
            "amount_at_risk": amount_decimals(table.column("amount_at_risk_minor"), digits),
            "credit_id": _strings(table.column("credit_id")),
            "reconciliation_id": _strings(table.column("reconciliation_id")),
            "request_id": _strings(table.column("request_id")),
            "credit_amount": amount_decimals(table.column("credit_amount_minor"), digits),
            "settled_amount": amount_decimals(table.column("settled_amount_minor"), settled_digits),
            "settlement_rows": table.column("settlement_rows").to_numpy(zero_copy_only=False),
            "source_file": _strings(table.column("source_file")),
            "source_line": pd.array(table.column("source_line").to_pylist(), dtype="Int64"),
            "batch_date": pc.cast(table.column("batch_date"), pa.timestamp("s")).to_pandas(),
            "detail": _strings(table.column("detail")),
            "status": _strings(table.column("status")),
            "submit_time_utc": table.column("submit_time_utc").to_pandas(),
            "age_days": table.column("age_days").to_numpy(zero_copy_only=False),
            "break_on": _strings(table.column("break_on")),
        })
        return frame[list(BREAK_COLUMNS)]

    @cached_property
    def breaks(self) -> pd.DataFrame:
        """Every break, one row each, by currency and largest amount at risk first."""
        return self.breaks_frame()

    @cached_property
    def summary(self) -> pd.DataFrame:
        """Counts (credits, settlement rows, breaks) and amount at risk per outcome and currency."""
        table = self.summary_table
        digits = np.asarray(table.column("minor_units").to_numpy(zero_copy_only=False), dtype=np.int64)
        return pd.DataFrame({
            "outcome": table.column("outcome").to_pylist(),
            "currency": table.column("currency").to_pylist(),
            "break": table.column("break").to_numpy(zero_copy_only=False),
            "credits": table.column("credits").to_numpy(zero_copy_only=False),
            "settlement_rows": table.column("settlement_rows").to_numpy(zero_copy_only=False),
            "breaks": table.column("breaks").to_numpy(zero_copy_only=False),
            "amount_at_risk": amount_decimals(table.column("amount_at_risk_minor"), digits),
        })

    @cached_property
    def credits(self) -> pd.DataFrame:
        """One row per input credit: its columns, then ``outcome``, ``detail``, ``settled_amount``,
        ``difference``, ``amount_at_risk``, ``age_days``, ``settlement_rows``."""
        inputs, out = self._inputs, self.credit_outcomes
        view = inputs.credits.reset_index(drop=True).copy()
        currency = inputs.credit_table.column("credit_currency")
        digits = minor_digits(currency)
        settled_digits = np.where(pc.is_null(out.column("settled_currency")).to_numpy(zero_copy_only=False),
                                  digits, minor_digits(out.column("settled_currency")))
        credited = inputs.credit_table.column("credit_amount_minor")
        settled = out.column("settled_amount_minor")
        single = pc.equal(out.column("credit_rows"), 1)
        difference = pc.if_else(single, pc.subtract(settled, credited), pa.scalar(None, pa.int64()))
        view["outcome"] = _strings(out.column("outcome"))
        view["settled_amount"] = amount_decimals(settled, settled_digits)
        view["difference"] = amount_decimals(difference, digits)
        view["age_days"] = out.column("age_days").to_numpy(zero_copy_only=False)
        view["settlement_rows"] = pc.add(out.column("credit_rows"), out.column("debit_rows")).to_numpy()
        view["amount_at_risk"] = amount_decimals(out.column("amount_at_risk_minor"), digits)
        view["detail"] = _strings(out.column("detail"))
        return view

    @cached_property
    def settlement(self) -> pd.DataFrame:
        """One row per input settlement row: its columns, then ``outcome``, ``detail``,
        ``credit_id``, ``amount_at_risk``."""
        inputs, out = self._inputs, self.settlement_outcomes
        view = inputs.settlement.reset_index(drop=True).copy()
        digits = minor_digits(inputs.row_table.column("row_currency"))
        credit_index = out.column("credit_index")
        view["outcome"] = _strings(out.column("outcome"))
        view["credit_id"] = _strings(pc.take(inputs.credit_table.column("credit_id"), credit_index))
        view["amount_at_risk"] = amount_decimals(out.column("amount_at_risk_minor"), digits)
        view["detail"] = _strings(_row_details(inputs, out, self.credit_outcomes.column("detail")))
        return view

    def to_frame(self) -> pd.DataFrame:
        """The break table (same as :attr:`breaks`)."""
        return self.breaks

    def to_dict(self) -> dict[str, Any]:
        """Parameters, counts and the summary, JSON-ready (amounts as decimal strings)."""
        summary = self.summary.copy()
        summary["amount_at_risk"] = summary["amount_at_risk"].map(str)
        return {
            "parameters": self.parameters,
            "counts": self.counts(),
            "breaks": self.break_table.num_rows,
            "credits": self.credit_outcomes.num_rows,
            "settlement_rows": self.settlement_outcomes.num_rows,
            "summary": summary.astype(object).where(summary.notna(), None).to_dict(orient="records"),
        }

    # --- rendering, delegated to reconkit.report ---------------------------------------------
    def summary_text(self) -> str:
        """The summary as a fixed-width table for a terminal."""
        from .report import summary_text

        return summary_text(self)

    def __str__(self) -> str:
        return self.summary_text()

    def __repr__(self) -> str:
        return (f"ReconResult(credits={self.credit_outcomes.num_rows}, "
                f"settlement_rows={self.settlement_outcomes.num_rows}, breaks={self.break_table.num_rows})")

    def _repr_html_(self) -> str:
        from .report import summary_html

        return summary_html(self)

    def plot(self) -> Figure:
        """Breaks by outcome, amount at risk per currency and the age of missing credits."""
        from .report import plot

        return plot(self)

    def figure_png(self) -> bytes:
        """:meth:`plot` rendered as PNG bytes."""
        from .report import figure_png

        return figure_png(self)

    def to_html(self, path: str | Path | None = None, **options: Any) -> str:
        """The HTML report (see :func:`reconkit.report.to_html`)."""
        from .report import to_html

        return to_html(self, path, **options)

    def to_excel(self, path: str | Path, **options: Any) -> Path:
        """The Excel workbook (see :func:`reconkit.report.to_excel`)."""
        from .report import to_excel

        return to_excel(self, path, **options)

    def to_csv(self, path: str | Path, **options: Any) -> Path:
        """The break table as CSV (see :func:`reconkit.report.to_csv`)."""
        from .report import to_csv

        return to_csv(self, path, **options)


def _strings(array: pa.Array | pa.ChunkedArray) -> pd.Series:
    return pd.Series(pd.arrays.ArrowStringArray(pc.cast(_plain(array), pa.large_string()))).astype(
        pd.StringDtype("pyarrow"))


# --- building a result from the engine's tables ---------------------------------------------

def build_result(credits: pd.DataFrame, settlement: pd.DataFrame, credit_table: pa.Table, row_table: pa.Table,
                 credit_result: pa.Table, row_result: pa.Table, breaks: pa.Table, unreadable: pa.Table,
                 parameters: dict[str, Any]) -> ReconResult:
    """Assemble a :class:`ReconResult` from the engine's Arrow tables (input order, no loops per row).

    ``credit_result`` / ``row_result`` are :func:`reconkit.match.classify`'s outputs sorted by
    index, ``breaks`` is :func:`reconkit.match.break_table`'s; this adds ids, locations, ages and
    detail sentences, spreads each break's amount at risk back onto its credit or row, and names
    the input files in ``parameters``.
    """
    inputs = _Inputs(credits, settlement, credit_table, row_table)
    risk = _plain(breaks.column("amount_at_risk_minor"))
    credit_index, row_index, record = (_positions(breaks.column(name))
                                       for name in ("credit_index", "row_index", "unreadable_record"))
    currency = pc.dictionary_encode(_plain(breaks.column("currency")))
    currency_codes = _codes(currency)
    order = _break_order(currency, currency_codes, risk, credit_index, row_index)
    currency_codes, credit_index, row_index, record = (
        currency_codes[order], credit_index[order], row_index[order], record[order])
    has_credit, has_row = credit_index >= 0, row_index >= 0
    rows = pa.array(order)
    risk = risk.take(rows)
    on_credit = np.asarray(pc.equal(breaks.column("break_on"), BREAK_ON_CREDIT).to_numpy(zero_copy_only=False))[order]
    outcome = pc.take(breaks.column("outcome"), rows)

    as_of = pd.Timestamp(parameters["as_of"])
    submit = pd.to_datetime(credits["submit_time_utc"], utc=True).reset_index(drop=True)
    age = ((as_of - submit).dt.total_seconds() / 86400).round(2).to_numpy(dtype=float, na_value=np.nan)
    credit_result = credit_result.append_column("age_days", pa.array(age, mask=np.isnan(age)))
    status = trimmed_text(credits["status"])

    risk_values = np.asarray(pc.fill_null(risk, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
    risk_known = np.asarray(pc.is_valid(risk).to_numpy(zero_copy_only=False))
    credit_risk = np.zeros(credit_table.num_rows, dtype=np.int64)
    credit_risk_known = np.ones(credit_table.num_rows, dtype=bool)
    row_risk = np.zeros(row_table.num_rows, dtype=np.int64)
    row_risk_known = np.ones(row_table.num_rows, dtype=bool)
    credit_risk[credit_index[on_credit]] = risk_values[on_credit]
    credit_risk_known[credit_index[on_credit]] = risk_known[on_credit]
    on_a_row = ~on_credit & has_row  # an unreadable record's break has no row to carry its risk
    row_risk[row_index[on_a_row]] = risk_values[on_a_row]
    row_risk_known[row_index[on_a_row]] = risk_known[on_a_row]

    by_credit = pa.array(credit_index, mask=~has_credit)
    files, file_codes = _source_file_codes(settlement)
    used = np.flatnonzero(np.bincount(file_codes[file_codes >= 0], minlength=len(files)))
    parameters = {**parameters, "input_files": [files[int(i)].as_py() for i in used]}
    row_file = np.full(len(row_index), -1, dtype=np.int64)
    row_file[has_row] = file_codes[row_index[has_row]]
    lines = pa.array(settlement["source_line"].astype("Int64"), pa.int64()) \
        if "source_line" in settlement else pa.nulls(len(settlement), pa.int64())
    batch_dates = settlement.get("batch_date")
    # The gathers run on a thread per core (Arrow and numpy release the GIL in them) while this
    # thread writes the detail sentences: together they are most of a break table's assembly.
    with ThreadPoolExecutor(max_workers=pa.cpu_count()) as pool:
        gathering = {name: pool.submit(gather) for name, gather in {
            "outcome": lambda: decoded(outcome),
            "break_on": lambda: decoded(pc.take(breaks.column("break_on"), rows)),
            "currency": lambda: currency.dictionary.take(pa.array(currency_codes, mask=currency_codes < 0)),
            "minor_units": lambda: pa.array(_currency_digits(currency.dictionary, currency_codes)),
            "amount_at_risk_minor": lambda: risk,
            "credit_amount_minor": lambda: pc.take(breaks.column("credit_amount_minor"), rows),
            "settled_amount_minor": lambda: pc.take(breaks.column("settled_amount_minor"), rows),
            "settled_currency": lambda: pc.take(breaks.column("settled_currency"), rows),
            "credit_id": lambda: pc.take(credit_table.column("credit_id"), by_credit),
            "reconciliation_id": lambda: _first_present(
                (credit_table.column("credit_reconciliation_id"), credit_index),
                (row_table.column("row_reconciliation_id"), row_index),
                (unreadable.column("failed_reconciliation_id"), record)),
            "request_id": lambda: _first_present((row_table.column("row_request_id"), row_index),
                                                 (unreadable.column("failed_request_id"), record)),
            "settlement_rows": lambda: pc.take(breaks.column("settlement_rows"), rows),
            "source_file": lambda: _first_present((files, row_file), (unreadable.column("source_file"), record)),
            "source_line": lambda: _first_present((lines, row_index), (unreadable.column("source_line"), record)),
            "batch_date": lambda: _dates_at(batch_dates, row_index, has_row),
            "status": lambda: pc.take(status, by_credit),
            "submit_time_utc": lambda: pc.take(pa.array(submit, pa.timestamp("us", tz="UTC")), by_credit),
            "age_days": lambda: _numbers_at(age, credit_index, has_credit),
        }.items()}
        credit_detail = _credit_details(credit_table, credit_result, status, unreadable, parameters,
                                        _SettlementLines(row_result.column("credit_index"), lines, files, file_codes))
        credit_result = credit_result.append_column("amount_at_risk_minor", pa.array(
            credit_risk, mask=~credit_risk_known)).append_column("detail", credit_detail)
        row_result = row_result.append_column("amount_at_risk_minor", pa.array(row_risk, mask=~row_risk_known))

        on_row = pa.array(~on_credit)
        row_part = pa.table({"row_index": pa.array(row_index[~on_credit], mask=~has_row[~on_credit]),
                             "credit_index": pa.array(credit_index[~on_credit], mask=~has_credit[~on_credit]),
                             "outcome": pc.filter(outcome, on_row),
                             "unreadable_record": pa.array(record[~on_credit], mask=record[~on_credit] < 0)})
        row_detail = _row_details(inputs, row_part, credit_detail, unreadable)
        # One dictionary column: a credit's break points at its credit's sentence, a row's break at its own.
        detail_indices = credit_index.copy()
        detail_indices[~on_credit] = np.asarray(row_detail.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
        detail = pa.DictionaryArray.from_arrays(pa.array(detail_indices), row_detail.dictionary)

    enriched = pa.table({name: job.result() for name, job in gathering.items()} | {
        "detail": detail, "credit_index": by_credit, "row_index": pa.array(row_index, mask=~has_row)})
    return ReconResult(parameters, enriched, credit_result, row_result, unreadable, inputs)


def _dates_at(column: pd.Series | None, positions: np.ndarray, present: np.ndarray) -> pa.Array:
    """``column``'s dates at ``positions`` where present, as ``date32`` (null where absent or
    without a date): one gather, and only the gathered values are read as dates.

    Text and date objects count by their first ten characters, as the break book reads a row's
    batch date into its key (:func:`reconkit.breaks.settlement_key`); zoned times by their own
    day there.

    Raises
    ------
    ValueError
        Naming the settlement row whose ``batch_date`` is not a date.
    """
    if column is None:
        return pa.nulls(len(positions), pa.date32())
    picked = column.take(positions[present])
    if isinstance(picked.dtype, pd.DatetimeTZDtype):
        picked = picked.dt.tz_localize(None)
    if not pd.api.types.is_datetime64_dtype(picked.dtype):
        text = picked.astype("string").str.strip().str[:10]
        stamps = pd.to_datetime(text, format="mixed", errors="coerce")
        bad = np.flatnonzero((stamps.isna() & text.fillna("").ne("")).to_numpy(dtype=bool))
        if len(bad):
            raise ValueError(f"settlement row {int(positions[present][bad[0]])}: batch_date "
                             f"{picked.iloc[bad[0]]!r} is not a date")
        picked = stamps
    out = np.zeros(len(positions), dtype="datetime64[D]")
    out[present] = picked.to_numpy(dtype="datetime64[s]").astype("datetime64[D]")
    return pa.array(out, mask=~present | np.isnat(out))


def _numbers_at(values: np.ndarray, positions: np.ndarray, present: np.ndarray) -> pa.Array:
    """``values[positions]`` where present, else null (NaN is null too): a numpy gather, which
    Arrow's take of mostly-null indices is several times slower than."""
    out = np.zeros(len(positions), dtype=values.dtype)
    out[present] = values[positions[present]]
    missing = ~present | (np.isnan(out) if np.issubdtype(out.dtype, np.floating) else False)
    return pa.array(out, mask=missing)


def decoded(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Words coded as a dictionary (the engine's outcome codes) back as plain strings."""
    column = _plain(column)
    return column.cast(pa.string()) if pa.types.is_dictionary(column.type) else column


def _positions(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """An index column as int64 positions, -1 where null."""
    return np.asarray(pc.fill_null(_plain(column), -1).to_numpy(zero_copy_only=False), dtype=np.int64)


def _codes(encoded: pa.DictionaryArray) -> np.ndarray:
    """A dictionary column's codes as signed integers, -1 where null."""
    indices = encoded.indices
    if not indices.null_count:
        return np.asarray(indices.to_numpy(zero_copy_only=False)).astype(np.int32, copy=False)
    codes = np.asarray(pc.fill_null(indices, 0).to_numpy(zero_copy_only=False)).astype(np.int32)
    codes[np.asarray(indices.is_null().to_numpy(zero_copy_only=False), dtype=bool)] = -1
    return codes


def _currency_digits(codes: pa.Array, at: np.ndarray) -> np.ndarray:
    """Minor-unit digits per row, given the distinct currency codes and each row's position in
    them (-1: none); 2 for an unknown or missing code."""
    lookup = np.array([CURRENCIES.get(c or "", 2) for c in codes.to_pylist()] + [2], dtype=np.int64)
    return lookup[at]


def _break_order(currency: pa.DictionaryArray, currency_codes: np.ndarray, risk: pa.Array,
                 credit_index: np.ndarray, row_index: np.ndarray) -> np.ndarray:
    """The break table's row order: by currency, then largest amount at risk first (unknown
    last), then by credit and by row (none last), so that ties have one order.

    When currency rank, amount, credit and row fit in one 63-bit integer together (amounts
    spanning under about a billion minor units, at 1M rows), one sort of that unique key gives
    the order. Otherwise rank and amount are packed, sorted, and only the rows that tie on them are
    sorted again by credit and row; amounts too far apart for even that take the four-key sort.
    Either is a fraction of the time of a four-key table sort.
    """
    names = currency.dictionary.to_pylist()
    rank_of = np.empty(len(names) + 1, dtype=np.int64)
    rank_of[np.argsort(np.array(names, dtype=object), kind="stable")] = np.arange(len(names))
    rank_of[-1] = len(names)  # code -1 (no currency) sorts last
    ranks = rank_of[currency_codes]
    values = np.asarray(pc.fill_null(risk, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
    known = np.asarray(pc.is_valid(risk).to_numpy(zero_copy_only=False), dtype=bool)
    credit_key = np.where(credit_index < 0, credit_index.max(initial=0) + 1, credit_index)
    row_key = np.where(row_index < 0, row_index.max(initial=0) + 1, row_index)
    high = int(values[known].max()) if known.any() else 0
    low = int(values[known].min()) if known.any() else 0
    shift = 62 - max(1, len(names).bit_length())
    row_span = int(row_key.max(initial=0)) + 1
    if high - low + 1 >= 1 << shift or (int(credit_key.max(initial=0)) + 1) * row_span >= 1 << 62:
        return np.lexsort((row_key, credit_key, ~values, ~known, ranks))  # ~x: descending, never overflows
    offset = np.where(known, high - values, high - low + 1)  # largest first, unknown last
    credit_span = int(credit_key.max(initial=0)) + 1
    if (len(names) + 1) * (high - low + 2) * credit_span * row_span < 1 << 62:
        return np.argsort(((ranks * (high - low + 2) + offset) * credit_span + credit_key) * row_span + row_key)
    key = (ranks << shift) | offset
    order = np.argsort(key)
    ordered = key[order]
    tied = np.zeros(len(key), dtype=bool)
    same = ordered[1:] == ordered[:-1]
    tied[1:] |= same
    tied[:-1] |= same
    at = np.flatnonzero(tied)
    if len(at):  # tied runs keep their places; within each, by credit then row (one packed key again)
        rows = order[at]
        run = np.concatenate(([0], np.cumsum(ordered[at][1:] != ordered[at][:-1])))
        tie = credit_key[rows] * row_span + row_key[rows]
        tie_rank = np.empty(len(rows), dtype=np.int64)
        tie_rank[np.argsort(tie)] = np.arange(len(rows))
        order[at] = rows[np.argsort(run * len(rows) + tie_rank)]
    return order


def _first_present(*sources: tuple[pa.Array | pa.ChunkedArray, np.ndarray]) -> pa.Array:
    """Per row, the value of the first source that has one.

    Each source is ``(values, positions)``: ``positions[i]`` indexes ``values`` for row ``i``
    (-1: none). One take over the sources' chunks laid end to end, not a take per source and a
    coalesce, and no copy of a chunked source into one buffer.
    """
    chosen = np.full(len(sources[0][1]), -1, dtype=np.int64)
    offset = 0
    chunks: list[pa.Array] = []
    kind = sources[0][0].type
    for values, positions in sources:
        values = values.cast(kind) if values.type != kind else values
        open_ = (chosen < 0) & (positions >= 0)
        if len(values) and open_.any():
            valid = np.asarray(pc.is_valid(values).to_numpy(zero_copy_only=False), dtype=bool)
            picked = np.flatnonzero(open_)
            picked = picked[valid[positions[picked]]]
            chosen[picked] = positions[picked] + offset
        offset += len(values)
        chunks.extend(values.chunks if isinstance(values, pa.ChunkedArray) else [values])
    chunks = [chunk for chunk in chunks if len(chunk)]
    values = chunks[0] if len(chunks) == 1 else pa.chunked_array(chunks, kind)
    return _plain(values.take(pa.array(chosen, mask=chosen < 0)))


def _source_file_codes(settlement: pd.DataFrame) -> tuple[pa.Array, np.ndarray]:
    """The rows' file names as (distinct names, a code per row into them; -1 for none): a
    categorical column (the readers') is already that."""
    if "source_file" not in settlement:
        return pa.array([], pa.string()), np.full(len(settlement), -1, dtype=np.int64)
    column = settlement["source_file"]
    if not isinstance(column.dtype, pd.CategoricalDtype):
        column = column.astype("string").astype("category")
    return (pa.array(column.cat.categories.astype(str), pa.string()),
            np.asarray(column.cat.codes.to_numpy(), dtype=np.int64))


@dataclass(frozen=True)
class _SettlementLines:
    """Where each settlement row is (its file and line) and which credit it is paired with."""

    credit_index: pa.Array | pa.ChunkedArray
    lines: pa.Array
    files: pa.Array
    file_codes: np.ndarray

    @cached_property
    def _paired(self) -> np.ndarray:
        """Each settlement row's credit position, -1 for none."""
        return np.asarray(pc.fill_null(_plain(self.credit_index), -1).to_numpy(zero_copy_only=False))

    @cached_property
    def _names(self) -> np.ndarray:
        """The files' names without folders, then None for a row without a file (code -1)."""
        return pd.Series([*self.files.to_pylist(), None], dtype=object).str.replace(
            r"^.*[\\/]", "", regex=True).to_numpy()

    def of(self, credits: pa.Array) -> pa.Array:
        """Every settlement line of each credit in ``credits`` as text ("lines 54, 55"; the file named
        after its lines when a credit's rows are in several files); built for the few credits
        with more than one row, so a sentence can name all their lines."""
        paired = self._paired
        rows = np.flatnonzero(np.isin(paired, credits.to_numpy(zero_copy_only=False)))
        frame = pd.DataFrame({"credit": paired[rows], "file": self._names[self.file_codes[rows]],
                              "line": pd.array(pc.take(self.lines, pa.array(rows)).to_pylist(), dtype="Int64")})
        frame = frame.sort_values(["credit", "file", "line"], na_position="last")
        text = {}
        for credit, group in frame.groupby("credit", sort=False):
            by_file = [(file, ", ".join("?" if pd.isna(n) else str(n) for n in part["line"]))
                       for file, part in group.groupby("file", sort=False, dropna=False)]
            listed = by_file[0][1] if len(by_file) == 1 else "; ".join(f"{n} ({f or '?'})" for f, n in by_file)
            text[credit] = ("line " if len(group) == 1 else "lines ") + listed
        return pa.array([text.get(c, "lines ?") for c in credits.to_pylist()], pa.string())


def _credit_details(credit_table: pa.Table, out: pa.Table, status: pa.Array, unreadable: pa.Table,
                    parameters: dict[str, Any], settlement_lines: _SettlementLines) -> pa.Array:
    """Why each credit got its outcome, in words (one sentence per credit, built per outcome;
    a credit with several settlement rows names all their lines)."""
    currency = _plain(credit_table.column("credit_currency"))
    digits = minor_digits(currency)
    settled_currency = _plain(out.column("settled_currency"))
    settled_digits = np.where(pc.is_null(settled_currency).to_numpy(zero_copy_only=False), digits,
                              minor_digits(settled_currency))
    credited_minor, settled_minor = credit_table.column("credit_amount_minor"), out.column("settled_amount_minor")
    difference = pc.subtract(settled_minor, credited_minor)
    currency_text = pc.fill_null(currency, "?")
    settled_currency_text = pc.fill_null(settled_currency, "?")
    status_text = pc.fill_null(status, "?")

    # Amounts are written out only for the rows whose sentence shows them (a few kinds of break),
    # not for every credit.
    def credited_text(r: pa.Array) -> pa.Array:
        amount = amount_text(pc.take(credited_minor, r), digits[r.to_numpy()])
        return _join(pc.fill_null(amount, "?"), " ", pc.take(currency_text, r))

    def settled(r: pa.Array) -> pa.Array:
        return pc.fill_null(amount_text(pc.take(settled_minor, r), settled_digits[r.to_numpy()]), "?")

    def settled_text(r: pa.Array) -> pa.Array:
        return _join(settled(r), " ", pc.take(currency_text, r))

    def difference_text(r: pa.Array) -> pa.Array:
        value = pc.take(difference, r)
        sign = pc.if_else(pc.greater(value, 0), "+", pc.if_else(pc.less(value, 0), "\u2212", ""))
        return _join(sign, amount_text(pc.abs(value), digits[r.to_numpy()]))

    rows = _plain(out.column("credit_rows"))
    debit_rows = _plain(out.column("debit_rows"))
    age = _plain(out.column("age_days"))
    grace = float(parameters["grace_days"])

    def take(array: pa.Array) -> Any:
        return lambda rows_: pc.take(array, rows_)

    def missing(side: str) -> Any:
        def build(rows_: pa.Array) -> pa.Array:
            ages = pc.take(age, rows_).to_numpy(zero_copy_only=False)
            known = np.nan_to_num(ages)
            grace_words = f": {side} the {grace:g}-day grace period"
            # A credit submitted after the as-of has no age yet: it is not yet due, whatever the grace
            # (signbit: an age rounded to -0.0 is still after the as-of).
            when = np.where(np.isnan(ages), "unknown age" + grace_words,
                            np.where(np.signbit(known),
                                     np.char.add(np.char.add("submitted ", np.char.mod("%.1f", -known)),
                                                 " days after the as-of, so not yet due"),
                                     np.char.add(np.char.mod("%.1f", known), " days after submission" + grace_words)))
            return _join("not in settlement, ", pa.array(when))
        return build

    record = _plain(out.column("unreadable_record"))
    failed_file = pc.take(pc.fill_null(unreadable.column("source_file"), "?"), pc.fill_null(record, 0)) \
        if unreadable.num_rows else pa.nulls(len(record), pa.string())
    failed_name = pa.array(pd.Series(failed_file.to_pandas(), dtype="string").str.replace(
        r"^.*[\\/]", "", regex=True).fillna("?").array, pa.string()) if unreadable.num_rows else failed_file
    failed_line = pc.cast(pc.take(unreadable.column("source_line"), pc.fill_null(record, 0)), pa.string()) \
        if unreadable.num_rows else failed_file
    failed_reason = _join(pc.fill_null(pc.take(unreadable.column("column"), pc.fill_null(record, 0)), "?"), ": ",
                          pc.fill_null(pc.take(unreadable.column("reason"), pc.fill_null(record, 0)), "?")) \
        if unreadable.num_rows else failed_file

    builders = {
        "MATCHED": lambda r: _join("settled ", credited_text(r), " once, as credited"),
        "MATCHED_BY_REQUEST_ID": lambda r: _join(
            "settled ", settled_text(r), " for a credit of ", credited_text(r),
            "; matched on the request id, the settlement row's reconciliation id was missing or different"),
        "AMOUNT_MISMATCH": lambda r: pc.if_else(
            pc.is_null(pc.take(difference, r)),
            _join("settled ", settled_text(r), "; the credited amount is unknown"),
            _join("settled ", settled_text(r), ", credited ", credited_text(r), ", difference ", difference_text(r))),
        "CURRENCY_MISMATCH": lambda r: _join("settled ", settled(r), " ", pc.take(settled_currency_text, r),
                                             ", credited ", credited_text(r)),
        "DUPLICATE_SETTLEMENT": lambda r: _join("settled ", pc.cast(pc.take(rows, r), pa.string()), " times (",
                                                settlement_lines.of(r), "), ", settled_text(r),
                                                " in all, for one credit of ", credited_text(r)),
        "MISSING_PENDING": missing("within"),
        "MISSING_OVERDUE": missing("past"),
        "VOIDED_BUT_SETTLED": lambda r: _join("the credit is ", pc.take(status_text, r), " yet settled ",
                                              settled_text(r)),
        "DIRECTION_MISMATCH": lambda r: _join("its id matches ", pc.cast(pc.take(debit_rows, r), pa.string()),
                                              " settlement row(s) that are not credits (",
                                              settlement_lines.of(r), "), and no credit row"),
        "DUPLICATE_CREDIT": lambda r: _join(
            "more than one credit carries this credit's id or reconciliation id (",
            pc.take(pc.fill_null(credit_table.column("credit_reconciliation_id"), "none"), r),
            "); they cannot be told apart"),
        "UNREADABLE_SETTLEMENT": lambda r: _join(
            "no readable settlement row; ", pc.take(failed_name, r), " line ", pc.take(failed_line, r),
            " carries its id but could not be read (", pc.take(failed_reason, r), ")"),
        "NO_SETTLEMENT_EXPECTED": lambda r: _join(pc.take(status_text, r), ": no settlement expected and none found"),
    }
    return _sentences(_plain(out.column("outcome")), builders, take(_plain(out.column("outcome"))))


def _row_details(inputs: _Inputs, out: pa.Table, credit_detail: pa.Array,
                 unreadable: pa.Table | None = None) -> pa.DictionaryArray:
    """Why each settlement row in ``out`` got its outcome, as a dictionary column over the credits'
    sentences: a paired row points at its credit's sentence, an unexpected row at one shared
    sentence (its amount and currency are columns of their own), an out-of-scope row at one
    sentence per transaction type; millions of rows cost a few distinct strings. A break on an
    unreadable record (``out``'s ``unreadable_record``, into ``unreadable``) says why it failed."""
    outcome = _plain(out.column("outcome"))
    credit_index = _plain(out.column("credit_index"))
    indices = np.array(pc.fill_null(credit_index, -1).to_numpy(zero_copy_only=False), dtype=np.int64)  # writable
    parts = [pc.cast(_plain(credit_detail), pa.string())]
    offset = len(parts[0])
    settlement = inputs.settlement
    kinds = pa.array(settlement["transaction_type"].astype("string").array, pa.string()) \
        if "transaction_type" in settlement else pa.nulls(len(settlement), pa.string())

    encoded = outcome if pa.types.is_dictionary(outcome.type) else pc.dictionary_encode(outcome)
    codes = _codes(encoded)
    words = encoded.dictionary.to_pylist()

    def rows_of(name: str) -> np.ndarray:
        return np.flatnonzero(np.isin(codes, [code for code, word in enumerate(words) if word == name]))

    unexpected = rows_of(Outcome.UNEXPECTED_SETTLEMENT.value)
    if len(unexpected):
        parts.append(pa.array(["a settlement credit that matches no known credit"]))
        indices[unexpected] = offset
        offset += 1
    out_of_scope = rows_of(Outcome.OUT_OF_SCOPE.value)
    if len(out_of_scope):
        kind = pc.fill_null(pc.take(kinds, pc.take(out.column("row_index"), pa.array(out_of_scope))), "?")
        encoded = pc.dictionary_encode(_plain(kind))
        parts.append(_join("a ", encoded.dictionary,
                           " row sharing no id with a known credit (not a credit, not a break)"))
        indices[out_of_scope] = offset + np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
        offset += len(encoded.dictionary)
    direction = rows_of(Outcome.DIRECTION_MISMATCH.value)
    if len(direction):
        picked = pa.array(direction)
        kind = pc.fill_null(pc.take(kinds, pc.take(out.column("row_index"), picked)), "?")
        linked = pc.fill_null(pc.take(inputs.credit_table.column("credit_id"), pc.take(credit_index, picked)), "?")
        parts.append(_join("a ", kind, " row (not a credit) sharing the id of credit ", linked))
        indices[direction] = offset + np.arange(len(direction))
        offset += len(direction)
    failed = rows_of(Outcome.UNREADABLE_SETTLEMENT.value)
    if len(failed) and unreadable is not None:
        record = pc.take(out.column("unreadable_record"), pa.array(failed))
        parts.append(_join("a settlement record that could not be read (",
                           pc.fill_null(pc.take(unreadable.column("column"), record), "?"), ": ",
                           pc.fill_null(pc.take(unreadable.column("reason"), record), "?"),
                           "); its amount and currency are unknown"))
        indices[failed] = offset + np.arange(len(failed))
        offset += len(failed)
    leftover = np.flatnonzero(indices < 0)
    if len(leftover):  # cannot happen for the engine's outcomes; keeps the column total anyway
        parts.append(pc.cast(pc.take(outcome, pa.array(leftover)), pa.string()))
        indices[leftover] = offset + np.arange(len(leftover))
    return pa.DictionaryArray.from_arrays(pa.array(indices), pa.concat_arrays([_plain(p) for p in parts]))
