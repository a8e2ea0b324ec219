"""``ReconResult`` and its renderings: summary tables, the break list, HTML and Excel exports
and matplotlib figures. Computing happens in :mod:`reconkit.match`; this module only presents.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .match import BREAKS, Outcome
from .money import CURRENCIES, format_amount

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["ReconResult", "frame_html"]

_ORDER = [o.value for o in Outcome]
_EXCEL_MAX_ROWS = 1_048_575


def _money(minor: Any, currency: Any) -> str:
    if minor is None or (isinstance(minor, float) and np.isnan(minor)) or currency not in CURRENCIES:
        return "?"
    return format_amount(int(minor), str(currency), minor=True)


def _signed(minor: int, currency: str) -> str:
    text = _money(abs(minor), currency)
    return f"+{text}" if minor > 0 else (f"\u2212{text}" if minor < 0 else text)


def _decimal(minor: Any, currency: Any) -> Decimal | None:
    if minor is None or pd.isna(minor):
        return None
    return Decimal(int(minor)).scaleb(-CURRENCIES.get(str(currency), 2))


@dataclass(frozen=True)
class _EngineOutput:
    """What the engine handed over: the inputs and its outcome tables."""

    credits: pd.DataFrame
    settlement: pd.DataFrame
    c_table: pa.Table
    s_table: pa.Table
    c_result: pa.Table
    s_result: pa.Table


@dataclass(frozen=True)
class ReconResult:
    """The outcome of :func:`reconkit.reconcile`.

    Computing is done when it is built (every outcome is known and conserved); the per-row
    views with amounts and detail sentences are rendered the first time they are asked for.

    Attributes
    ----------
    parameters : dict
        ``amount_tolerance``, ``grace_days``, ``as_of``, ``match_on``.
    credits, settlement, rows, breaks, summary : DataFrame
        The views (see each property).
    """

    parameters: dict[str, Any]
    _engine: _EngineOutput = field(repr=False, compare=False)

    # --- construction (from the engine's output) -------------------------------------------
    @classmethod
    def build(cls, credits: pd.DataFrame, settlement: pd.DataFrame, c_table: pa.Table, s_table: pa.Table,
              c_result: pa.Table, s_result: pa.Table, parameters: dict[str, Any]) -> ReconResult:
        """Wrap the engine's output; the per-row views are built when first asked for."""
        return cls(parameters, _EngineOutput(credits, settlement, c_table, s_table, c_result, s_result))

    @cached_property
    def credits(self) -> pd.DataFrame:
        """One row per input credit: its columns, then ``outcome``, ``detail``, ``settled_amount``,
        ``difference``, ``amount_at_risk``, ``age_days``, ``settlement_rows``."""
        engine = self._engine
        credits, c_table, c_result, parameters = engine.credits, engine.c_table, engine.c_result, self.parameters
        ints = {pa.int64(): pd.Int64Dtype()}.get
        c_out = c_result.to_pandas(types_mapper=ints)
        n = len(credits)
        view = credits.reset_index(drop=True).copy()
        outcome = c_out["outcome"].to_numpy(dtype=object)
        currency = np.asarray(c_table.column("c_currency").to_pylist(), dtype=object)
        amount = view["amount"].to_numpy(dtype=object)
        zero = {c: Decimal(0).scaleb(-CURRENCIES.get(c, 2)) if c in CURRENCIES else Decimal(0)
                for c in set(currency.tolist())}
        zeros = np.array([zero[c] for c in currency], dtype=object) if n else np.array([], dtype=object)
        settled_minor = c_out["settled_minor"]
        diff_minor = c_out["diff_minor"]
        rows_cr = c_out["n_credit_rows"].to_numpy(dtype=np.int64)
        exact = (diff_minor.fillna(1).to_numpy(dtype=np.int64) == 0) & (rows_cr == 1)
        settled = np.full(n, None, dtype=object)
        settled[exact] = amount[exact]
        other = np.flatnonzero(settled_minor.notna().to_numpy() & ~exact)
        settled[other] = [_decimal(settled_minor.iat[i], currency[i]) for i in other]
        difference = np.full(n, None, dtype=object)
        difference[exact] = zeros[exact]
        for i in np.flatnonzero(diff_minor.notna().to_numpy() & ~exact):
            difference[i] = _decimal(diff_minor.iat[i], currency[i])
        is_break = np.isin(outcome, list(BREAKS))
        risk = zeros.copy()
        amount_minor = c_table.column("c_amount_minor").to_pandas(types_mapper=ints)
        for i in np.flatnonzero(is_break):
            risk[i] = _decimal(_credit_risk(outcome[i], amount_minor.iat[i], settled_minor.iat[i],
                                            diff_minor.iat[i]), currency[i])
        as_of = pd.Timestamp(parameters["as_of"])
        view["outcome"] = pd.Series(outcome, dtype="string")
        view["settled_amount"] = settled
        view["difference"] = difference
        view["age_days"] = ((as_of - pd.to_datetime(view["submit_time_utc"], utc=True)).dt.total_seconds()
                            / 86400).round(2)
        view["settlement_rows"] = rows_cr + c_out["n_debit_rows"].to_numpy(dtype=np.int64)
        view["amount_at_risk"] = risk
        view["detail"] = pd.Series(_credit_details(view, c_out, currency, amount_minor, parameters["grace_days"]),
                                   dtype="string")

        return view

    @cached_property
    def settlement(self) -> pd.DataFrame:
        """One row per input settlement row: its columns, then ``outcome``, ``detail``,
        ``credit_id``, ``amount_at_risk``."""
        engine = self._engine
        settlement, s_table, s_result, view = engine.settlement, engine.s_table, engine.s_result, self.credits
        s_view = settlement.reset_index(drop=True).copy()
        s_outcome = s_result.column("outcome").combine_chunks()
        s_view["outcome"] = _arrow_text(s_outcome)
        cid = s_result.column("_cid").combine_chunks()
        credit_id = pa.array(view["credit_id"].astype(pd.StringDtype("pyarrow")).array)
        linked = pc.take(credit_id, cid)
        s_view["credit_id"] = _arrow_text(linked)
        amount = _arrow_amounts(s_view["amount"])
        unexpected = pc.equal(s_outcome, Outcome.UNEXPECTED_SETTLEMENT.value)
        s_view["amount_at_risk"] = pd.Series(pd.arrays.ArrowExtensionArray(
            pc.if_else(unexpected, amount, pa.scalar(Decimal(0), amount.type))))
        s_view["detail"] = pd.Series(_settlement_details(
            s_view, s_outcome, cid, linked, pa.array(view["detail"].array), amount,
            s_table.column("s_currency").combine_chunks()).to_pandas())
        return s_view

    def counts(self) -> dict[str, dict[str, int]]:
        """Outcome counts per side: ``{"credits": {...}, "settlement": {...}}`` (no view is built)."""
        def tally(table: pa.Table) -> dict[str, int]:
            counts = pc.value_counts(table.column("outcome")).to_pylist()
            return {str(item["values"]): int(item["counts"]) for item in sorted(counts, key=lambda i: i["values"])}

        return {"credits": tally(self._engine.c_result), "settlement": tally(self._engine.s_result)}

    # --- views -------------------------------------------------------------------------
    @cached_property
    def rows(self) -> pd.DataFrame:
        """Credits and settlement rows side by side, one line per pair (unpaired rows alone)."""
        credit_cols = [c for c in ("credit_id", "reconciliation_id", "status", "submit_time_utc", "amount",
                                   "currency", "reference_code", "age_days") if c in self.credits]
        c = self.credits[[*credit_cols, "outcome", "detail", "amount_at_risk"]].copy()
        c.columns = [f"credit_{n}" if n not in ("credit_id", "outcome", "detail", "amount_at_risk") else n
                     for n in c.columns]
        settle_cols = [col for col in ("reconciliation_id", "request_id", "transaction_type", "direction", "amount",
                                       "currency", "batch_date", "source_file", "source_line")
                       if col in self.settlement]
        s = self.settlement[[*settle_cols, "credit_id", "outcome", "detail", "amount_at_risk"]].copy()
        s.columns = [f"settlement_{n}" if n in settle_cols else n for n in s.columns]
        paired = s[s["credit_id"].notna()]
        lonely_credits = c[~c["credit_id"].isin(paired["credit_id"])]
        pairs = paired.merge(c.drop(columns=["outcome", "detail", "amount_at_risk"]), on="credit_id", how="left")
        lonely_rows = s[s["credit_id"].isna()]
        rows = pd.concat([pairs, lonely_credits, lonely_rows], ignore_index=True)
        rows["currency"] = rows["credit_currency"].fillna(rows["settlement_currency"]).astype("string")
        lead = ["outcome", "amount_at_risk", "currency", "credit_id", "detail"]
        return rows[lead + [c for c in rows.columns if c not in lead]]

    @cached_property
    def breaks(self) -> pd.DataFrame:
        """Every row but ``MATCHED``, ``NO_SETTLEMENT_EXPECTED`` and ``OUT_OF_SCOPE``, largest risk first."""
        rows = self.rows
        out = rows[rows["outcome"].isin(BREAKS)].copy()
        key = out["amount_at_risk"].map(lambda d: float(d) if d is not None else 0.0)
        return out.assign(_k=key).sort_values("_k", ascending=False, kind="stable").drop(columns="_k") \
            .reset_index(drop=True)

    @cached_property
    def summary(self) -> pd.DataFrame:
        """Counts and amounts per outcome and currency (credits and settlement rows counted apart)."""
        c = self.credits.assign(currency=self.credits["currency"].astype("string"))
        s = self.settlement.assign(currency=self.settlement["currency"].astype("string"))
        parts = [
            c.groupby(["outcome", "currency"], dropna=False).agg(
                credits=("outcome", "size"), credit_amount=("amount", _dsum),
                amount_at_risk=("amount_at_risk", _dsum)),
            s.groupby(["outcome", "currency"], dropna=False).agg(
                settlement_rows=("outcome", "size"), settlement_amount=("amount", _dsum),
                unexpected_amount=("amount_at_risk", _dsum)),
        ]
        table = parts[0].join(parts[1], how="outer").reset_index()
        for column in ("credits", "settlement_rows"):
            table[column] = table[column].fillna(0).astype("int64")
        for column in ("credit_amount", "settlement_amount", "amount_at_risk", "unexpected_amount"):
            table[column] = table[column].map(lambda v: Decimal(0) if v is None or v is pd.NA or (
                isinstance(v, float) and np.isnan(v)) else v)
        table["amount_at_risk"] = table["amount_at_risk"] + table["unexpected_amount"]
        for column in ("credit_amount", "settlement_amount", "amount_at_risk"):
            # Each currency shows its own minor units (JPY 0, USD 2, KWD 3), whatever the file's scale.
            table[column] = [Decimal(v).quantize(Decimal(1).scaleb(-CURRENCIES[c])) if c in CURRENCIES else v
                             for v, c in zip(table[column], table["currency"], strict=True)]
        table = table.drop(columns="unexpected_amount")
        table["break"] = table["outcome"].isin(BREAKS)
        table["_o"] = table["outcome"].map({o: i for i, o in enumerate(_ORDER)})
        return table.sort_values(["_o", "currency"]).drop(columns="_o").reset_index(drop=True)

    def to_frame(self) -> pd.DataFrame:
        """All rows side by side (same as :attr:`rows`)."""
        return self.rows

    def to_dict(self) -> dict[str, Any]:
        """Parameters, counts and the summary, JSON-ready (amounts as decimal strings)."""
        summary = self.summary.copy()
        for column in ("credit_amount", "settlement_amount", "amount_at_risk"):
            summary[column] = summary[column].map(str)
        return {
            "parameters": self.parameters,
            "counts": self.counts(),
            "breaks": len(self.breaks),
            "credits": self._engine.c_result.num_rows,
            "settlement_rows": self._engine.s_result.num_rows,
            "summary": summary.astype(object).where(summary.notna(), None).to_dict(orient="records"),
        }

    # --- rendering ---------------------------------------------------------------------
    def summary_text(self) -> str:
        """The summary as a fixed-width table for a terminal."""
        table = self.summary
        header = f"{'outcome':<24}{'currency':<9}{'credits':>8}{'rows':>7}{'at risk':>16}"
        lines = [f"Reconciliation as of {self.parameters['as_of']} (grace {self.parameters['grace_days']} days, "
                 f"tolerance {self.parameters['amount_tolerance']})", header, "-" * len(header)]
        for row in table.to_dict("records"):
            mark = "*" if row["break"] else " "
            lines.append(f"{mark}{row['outcome']:<23}{row['currency']!s:<9}{row['credits']:>8}"
                         f"{row['settlement_rows']:>7}{row['amount_at_risk']!s:>16}")
        lines.append("-" * len(header))
        lines.append(f"{len(self.credits)} credits, {len(self.settlement)} settlement rows, "
                     f"{len(self.breaks)} breaks (* marks break outcomes)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary_text()

    def __repr__(self) -> str:
        counts = self.counts()
        breaks = sum(n for side in counts.values() for o, n in side.items() if o in BREAKS)
        return f"ReconResult(credits={self._engine.c_result.num_rows}, " \
               f"settlement_rows={self._engine.s_result.num_rows}, break_rows={breaks})"

    def _repr_html_(self) -> str:
        return _table_html(self.summary, "Summary")

    def plot(self) -> Figure:
        """Breaks by outcome, amount at risk by outcome and currency, and the age of missing credits
        against the grace period, as one matplotlib figure."""
        from matplotlib.figure import Figure

        _show_figures_as_png()
        figure = Figure(figsize=(13, 4), layout="constrained")
        counts, amounts, ages = figure.subplots(1, 3)
        breaks = self.summary[self.summary["break"]]
        by_outcome = breaks.groupby("outcome")[["credits", "settlement_rows"]].sum()
        by_outcome = by_outcome.assign(n=by_outcome.max(axis=1)).sort_values("n")
        counts.barh(by_outcome.index, by_outcome["n"], color="#c0392b")
        counts.set_title("Breaks by outcome")
        counts.set_xlabel("rows")
        risk = breaks.pivot_table(index="outcome", columns="currency", values="amount_at_risk",
                                  aggfunc=lambda v: float(sum(v, Decimal(0))), fill_value=0.0)
        # Grouped bars on a log scale: currencies are not converted, so a JPY total would
        # otherwise flatten every USD bar next to it.
        height = 0.8 / max(len(risk.columns), 1)
        positions = np.arange(len(risk))
        for index, currency in enumerate(risk.columns):
            values = risk[currency].to_numpy()
            shown = values > 0
            amounts.barh(positions[shown] + index * height, values[shown], height=height, label=str(currency))
        amounts.set_yticks(positions + height * (len(risk.columns) - 1) / 2, risk.index)
        if (risk.to_numpy() > 0).any():
            amounts.set_xscale("log")
        amounts.set_title("Amount at risk by outcome")
        amounts.set_xlabel("amount at risk (log scale, each currency in its own units)")
        if len(risk.columns):
            amounts.legend(fontsize=8)
        missing = self.credits[self.credits["outcome"].isin(["MISSING_PENDING", "MISSING_OVERDUE"])]
        grace = float(self.parameters["grace_days"])
        if len(missing):
            ages.hist(missing["age_days"].astype(float), bins=20, color="#2980b9")
        ages.axvline(grace, color="#c0392b", linestyle="--", label=f"grace period ({grace:g} days)")
        ages.set_title("Age of missing credits")
        ages.set_xlabel("days since submission")
        ages.legend(fontsize=8)
        return figure

    def figure_png(self) -> bytes:
        """:meth:`plot` rendered as PNG bytes."""
        buffer = io.BytesIO()
        self.plot().savefig(buffer, format="png", dpi=90)
        return buffer.getvalue()

    def to_html(self, path: str | Path | None = None, *, figures: bool = True, max_breaks: int = 5000) -> str:
        """A self-contained HTML report: parameters, summary, figures and the break table.

        Returns the HTML; also writes it to ``path`` when given (atomically).
        """
        breaks = self.breaks
        shown = breaks.head(max_breaks)
        note = "" if len(breaks) <= max_breaks else (
            f"<p>The {max_breaks} largest of {len(breaks)} breaks are shown; the Excel and CSV exports hold all.</p>")
        image = ""
        if figures:
            encoded = base64.b64encode(self.figure_png()).decode("ascii")
            image = f'<img alt="reconciliation figures" src="data:image/png;base64,{encoded}">'
        params = "".join(f"<li>{html.escape(k)}: {html.escape(str(v))}</li>" for k, v in self.parameters.items())
        document = (
            "<!DOCTYPE html><html><head><meta charset='utf-8'><title>reconkit reconciliation</title><style>"
            "body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse;font-size:13px}"
            "td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}th{background:#f3f3f3}"
            "img{max-width:100%}</style></head><body><h1>Refund reconciliation</h1>"
            f"<p>{len(self.credits)} credits, {len(self.settlement)} settlement rows, {len(breaks)} breaks.</p>"
            f"<ul>{params}</ul>{_table_html(self.summary, 'Summary')}{image}"
            f"{note}{_table_html(shown, 'Breaks')}</body></html>")
        if path is not None:
            _atomic_write(Path(path), document.encode("utf-8"))
        return document

    def to_excel(self, path: str | Path) -> Path:
        """An Excel workbook: Summary, Breaks, Credits, Settlement and Parameters sheets (atomically)."""
        sheets = {"Summary": self.summary, "Breaks": self.breaks, "Credits": self.credits,
                  "Settlement": self.settlement,
                  "Parameters": pd.DataFrame({"parameter": list(self.parameters),
                                              "value": [str(v) for v in self.parameters.values()]})}
        for name, frame in sheets.items():
            if len(frame) > _EXCEL_MAX_ROWS:
                raise ValueError(f"the {name} sheet would have {len(frame)} rows, more than Excel holds; "
                                 "export it with .to_csv instead")
        buffer = io.BytesIO()
        with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
            for name, frame in sheets.items():
                _excel_ready(frame).to_excel(writer, sheet_name=name, index=False)
        target = Path(path)
        _atomic_write(target, buffer.getvalue())
        return target


def _show_figures_as_png() -> None:
    """In IPython, display a bare (pyplot-free) Figure as a picture, as the inline backend would.

    The figures are not created through pyplot, so nothing else registers them, and nothing is
    kept in pyplot's global list.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    from matplotlib.figure import Figure

    def png(figure: Figure) -> bytes:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=90)
        return buffer.getvalue()

    shell.display_formatter.formatters["image/png"].for_type(Figure, png)


def _dsum(values: pd.Series) -> Decimal:
    return sum((v for v in values if v is not None and v is not pd.NA and not (isinstance(v, float) and np.isnan(v))),
               Decimal(0))


def _credit_risk(outcome: str, amount: Any, settled: Any, diff: Any) -> Any:
    """Minor units at risk on a credit's break."""
    if outcome in ("MISSING_PENDING", "MISSING_OVERDUE", "CURRENCY_MISMATCH", "DIRECTION_MISMATCH",
                   "DUPLICATE_CREDIT"):
        return amount
    if outcome == "AMOUNT_MISMATCH":
        return abs(diff) if pd.notna(diff) else amount
    if outcome == "DUPLICATE_SETTLEMENT":
        return settled - amount if pd.notna(settled) and pd.notna(amount) else None
    if outcome == "VOIDED_BUT_SETTLED":
        return settled
    return 0


def _credit_details(view: pd.DataFrame, c_out: pd.DataFrame, currency: np.ndarray, amount_minor: pd.Series,
                    grace: float) -> np.ndarray:
    outcome = c_out["outcome"].to_numpy(dtype=object)
    details = np.full(len(view), None, dtype=object)
    matched = np.flatnonzero(outcome == Outcome.MATCHED.value)
    if len(matched):
        # The bulk: one vectorized concatenation instead of a million f-strings.
        amounts = view["amount"].iloc[matched].astype("string")
        details[matched] = ("settled " + amounts + " " + pd.Series(currency[matched], index=amounts.index,
                                                                   dtype="string") + " once, as credited").to_numpy()
    status = view["status"].to_numpy(dtype=object)
    rid = view["reconciliation_id"].to_numpy(dtype=object)
    age = view["age_days"].to_numpy(dtype=float)
    settled, currency_s = c_out["settled_minor"], c_out["settled_currency"].to_numpy(dtype=object)
    diff, n_cr, n_db = c_out["diff_minor"], c_out["n_credit_rows"], c_out["n_debit_rows"]
    for i in np.flatnonzero(outcome != Outcome.MATCHED.value):
        o, cur = outcome[i], currency[i]
        credited = f"{_money(amount_minor.iat[i], cur)} {cur}"
        if o == "MATCHED_BY_REQUEST_ID":
            text = f"settled {credited}; matched on the request id, the settlement row's reconciliation id " \
                   "was missing or different"
        elif o == "AMOUNT_MISMATCH":
            text = (f"settled {_money(settled.iat[i], cur)} {cur}, credited {credited}, difference "
                    f"{_signed(int(diff.iat[i]), cur)}") if pd.notna(diff.iat[i]) else \
                f"settled {_money(settled.iat[i], cur)} {cur}; the credited amount is unknown"
        elif o == "CURRENCY_MISMATCH":
            text = f"settled {_money(settled.iat[i], currency_s[i])} {currency_s[i]}, credited {credited}"
        elif o == "DUPLICATE_SETTLEMENT":
            text = f"settled {int(n_cr.iat[i])} times, {_money(settled.iat[i], cur)} {cur} in all, for one credit " \
                   f"of {credited}"
        elif o in ("MISSING_PENDING", "MISSING_OVERDUE"):
            when = "unknown age" if np.isnan(age[i]) else f"{age[i]:.1f} days after submission"
            side = "within" if o == "MISSING_PENDING" else "past"
            text = f"not in settlement, {when}: {side} the {grace:g}-day grace period"
        elif o == "VOIDED_BUT_SETTLED":
            text = f"the credit is {status[i]} yet settled {_money(settled.iat[i], cur)} {cur}"
        elif o == "DIRECTION_MISMATCH":
            text = f"its id matches {int(n_db.iat[i])} settlement row(s) that are not credits, and no credit row"
        elif o == "DUPLICATE_CREDIT":
            text = f"more than one credit carries reconciliation id {rid[i]}; they cannot be told apart"
        elif o == "NO_SETTLEMENT_EXPECTED":
            text = f"{status[i]}: no settlement expected and none found"
        else:
            text = str(o)
        details[i] = text
    return details


def _arrow_text(array: pa.Array) -> pd.Series:
    return pd.Series(pd.arrays.ArrowStringArray(pc.cast(array, pa.large_string()))).astype(
        pd.StringDtype("pyarrow"))


def _arrow_amounts(series: pd.Series) -> pa.Array:
    if isinstance(series.dtype, pd.ArrowDtype):
        return pa.array(series.array)
    return pa.array([None if v is None or v is pd.NA else Decimal(str(v)) for v in series], pa.decimal128(20, 4))


def _settlement_details(view: pd.DataFrame, outcome: pa.Array, cid: pa.Array, linked: pa.Array,
                        credit_detail: pa.Array, amount: pa.Array, currency: pa.Array) -> pa.DictionaryArray:
    """Every settlement row's sentence, as a dictionary array: a paired row points at its credit's
    sentence and an out-of-scope row at one sentence per transaction type, so millions of rows
    cost a few distinct strings instead of millions of copies."""
    ttype = pa.array(view["transaction_type"].astype(pd.StringDtype("pyarrow")).array) \
        if "transaction_type" in view else pa.nulls(len(view), pa.string())
    ttype = pc.cast(pc.fill_null(ttype, "?"), pa.string())
    if isinstance(ttype, pa.ChunkedArray):
        ttype = ttype.combine_chunks()
    join = pc.binary_join_element_wise
    names = np.asarray(outcome.to_numpy(zero_copy_only=False), dtype=object)
    indices = np.array(pc.fill_null(cid, -1).to_numpy(zero_copy_only=False), dtype=np.int64)  # writable copy
    parts = [pc.cast(credit_detail, pa.string())]
    offset = len(credit_detail)
    scope = names == "OUT_OF_SCOPE"
    if scope.any():
        encoded = pc.dictionary_encode(pc.filter(ttype, pa.array(scope)))
        parts.append(join("a ", encoded.dictionary, " row sharing no id with a known credit (not a credit, "
                          "not a break)", ""))
        indices[scope] = offset + np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
        offset += len(encoded.dictionary)
    for name, build in (
        ("UNEXPECTED_SETTLEMENT", lambda m: join("a settlement credit of ", pc.cast(pc.filter(amount, m), pa.string()),
                                                 " ", pc.filter(currency, m), " that matches no known credit", "")),
        ("DIRECTION_MISMATCH", lambda m: join("a ", pc.filter(ttype, m), " row (not a credit) sharing the id of "
                                              "credit ", pc.cast(pc.fill_null(pc.filter(linked, m), "?"), pa.string()),
                                              "")),
    ):
        mask = names == name
        if mask.any():
            sentences = build(pa.array(mask))
            parts.append(sentences)
            indices[mask] = offset + np.arange(len(sentences))
            offset += len(sentences)
    leftover = indices < 0
    if leftover.any():  # cannot happen for engine output; keeps the column total anyway
        parts.append(pa.array([str(n) for n in names[leftover]], pa.string()))
        indices[leftover] = offset + np.arange(int(leftover.sum()))
    # pandas wants unique categories: fold repeated sentences (many credits read alike) together.
    unique = pc.dictionary_encode(pa.concat_arrays(parts))
    return pa.DictionaryArray.from_arrays(pc.take(unique.indices, pa.array(indices)), unique.dictionary)


def frame_html(frame: pd.DataFrame, **options: Any) -> str:
    """A DataFrame as an HTML table with missing cells blank (nullable dtypes print ``<NA>``
    whatever ``na_rep`` says)."""
    options.setdefault("index", False)
    return frame.astype(object).where(frame.notna(), "").to_html(escape=True, border=0, **options)


def _table_html(frame: pd.DataFrame, title: str) -> str:
    return f"<h2>{html.escape(title)}</h2>" + frame_html(frame)


def _excel_ready(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for column in out.columns:
        dtype = out[column].dtype
        if isinstance(dtype, pd.DatetimeTZDtype):
            out[column] = out[column].dt.tz_convert("UTC").dt.tz_localize(None)
        elif isinstance(dtype, pd.ArrowDtype) or str(dtype) in ("string", "str"):
            out[column] = out[column].astype(object).where(out[column].notna(), None)
    return out


def _atomic_write(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename: a failed export never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    temporary.replace(path)
