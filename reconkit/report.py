"""Renderings of a :class:`reconkit.result.ReconResult`: the terminal summary, the HTML report
(a Jinja2 template), the Excel workbook, the CSV break list and the matplotlib figures.

Nothing here computes a figure: every count and amount comes from the result's tables, which
the engine filled. Amounts are shown with their currency's own decimals (JPY 0, USD 2, KWD 3).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from . import inert
from .breaks import WORK_COLUMNS
from .files import write_atomically
from .outcomes import AT_RISK, Outcome
from .result import BREAK_COLUMNS, ReconResult, amount_text, minor_digits

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["LABELS", "figure_png", "frame_html", "plot", "summary_html", "summary_text", "to_csv", "to_excel",
           "to_html"]

LABELS = {
    "outcome": "Outcome", "currency": "Currency", "amount_at_risk": "Amount at risk", "credit_id": "Credit id",
    "reconciliation_id": "Reconciliation id", "request_id": "Request id", "credit_amount": "Credit amount",
    "settled_amount": "Settled amount", "settlement_rows": "Settlement rows", "source_file": "Settlement file",
    "source_line": "Line", "batch_date": "Batch date", "detail": "Why", "status": "Credit status",
    "submit_time_utc": "Submitted (UTC)", "age_days": "Age (days)", "break_on": "Break on", "break": "Break",
    "credits": "Credits", "breaks": "Breaks", "rate": "Rate", "converted": "Converted",
    "work_status": "Break status", "owner": "Owner", "notes": "Notes",
}
"""Column names as analysts read them (HTML and Excel); the CSV keeps the snake_case names."""

_AMOUNTS = ("amount_at_risk", "credit_amount", "settled_amount")
_TEXT = ("outcome", "currency", "credit_id", "reconciliation_id", "request_id", "source_file", "detail", "status",
         "break_on", "submit_time_utc")
_EXCEL_MAX_ROWS = 1_048_575
_FORMATS = {0: "#,##0", 1: "#,##0.0", 2: "#,##0.00", 3: "#,##0.000", 4: "#,##0.0000"}


# --- text columns shared by every rendering --------------------------------------------------

def _digits(table: pa.Table, currency: str) -> np.ndarray:
    return np.asarray(minor_digits(table.column(currency)), dtype=np.int64)


_CSV_NAMES = {"status": "credit_status"}
"""CSV headers that differ from the break table's names: the credit's status is not the break's."""


def _break_columns(table: pa.Table) -> dict[str, pa.Array]:
    """The break table's shown columns (:data:`BREAK_COLUMNS`): amounts as exact decimal text,
    ids as text, times as ISO 8601, batch dates as dates, line numbers and counts as integers."""
    digits = np.asarray(table.column("minor_units").to_numpy(zero_copy_only=False), dtype=np.int64)
    settled_currency = table.column("settled_currency")
    settled_digits = np.where(pc.is_null(settled_currency).to_numpy(zero_copy_only=False), digits,
                              _digits(table, "settled_currency"))
    submitted = table.column("submit_time_utc")
    return {
        "outcome": table.column("outcome"),
        "currency": table.column("currency"),
        "amount_at_risk": amount_text(table.column("amount_at_risk_minor"), digits),
        "credit_id": table.column("credit_id"),
        "reconciliation_id": table.column("reconciliation_id"),
        "request_id": table.column("request_id"),
        "credit_amount": amount_text(table.column("credit_amount_minor"), digits),
        "settled_amount": amount_text(table.column("settled_amount_minor"), settled_digits),
        "settlement_rows": table.column("settlement_rows"),
        "source_file": pc.replace_substring_regex(table.column("source_file"), r"^.*[\\/]", ""),
        "source_line": table.column("source_line"),
        "batch_date": table.column("batch_date"),
        "detail": table.column("detail"),
        "status": table.column("status"),
        "submit_time_utc": pc.strftime(pc.cast(submitted, pa.timestamp("s", tz="UTC")), "%Y-%m-%dT%H:%M:%SZ"),
        "age_days": table.column("age_days"),
        "break_on": table.column("break_on"),
    }


def _summary_columns(result: ReconResult, *, words: bool = False) -> dict[str, pa.Array]:
    """The summary's shown columns (``words``: the break flag as "yes"/"no" for people)."""
    table = result.summary_table
    digits = np.asarray(table.column("minor_units").to_numpy(zero_copy_only=False), dtype=np.int64)
    flag = pc.if_else(table.column("break"), "yes", "no") if words else table.column("break")
    return {"outcome": table.column("outcome"), "currency": pc.fill_null(table.column("currency"), "unknown"),
            "break": flag,
            "credits": table.column("credits"), "settlement_rows": table.column("settlement_rows"),
            "breaks": table.column("breaks"), "amount_at_risk": _with_unknown(table, digits)}


def _with_unknown(table: pa.Table, digits: np.ndarray) -> pa.Array:
    """The summary's amounts at risk as text, saying so where some breaks' amounts are unknown (a
    record that failed to read): "unknown" when all are, "12.50 + 2 unknown" when some are."""
    known = amount_text(table.column("amount_at_risk_minor"), digits)
    unknown = table.column("unknown_at_risk")
    partly = pc.binary_join_element_wise(known, " + ", pc.cast(unknown, pa.string()), " unknown", "")
    return pc.if_else(pc.equal(unknown, 0), known,
                      pc.if_else(pc.equal(unknown, table.column("breaks")), pa.scalar("unknown"), partly))


# --- terminal --------------------------------------------------------------------------------

def summary_text(result: ReconResult) -> str:
    """The summary as a fixed-width table for a terminal."""
    columns = _summary_columns(result)
    parameters = result.parameters
    header = f"{'outcome':<24}{'currency':<9}{'credits':>8}{'rows':>7}{'breaks':>8}{'at risk':>16}"
    lines = [f"Reconciliation as of {parameters['as_of']} (grace {parameters['grace_days']} days, "
             f"tolerance {parameters['amount_tolerance']})", header, "-" * len(header)]
    for outcome, currency, is_break, credits, rows, breaks, risk in zip(
            *(c.to_pylist() for c in columns.values()), strict=True):
        mark = "*" if is_break else " "
        outcome, currency = inert.shown(outcome), inert.shown(currency)  # a currency code is read from files
        lines.append(f"{mark}{outcome:<23}{currency:<9}{credits:>8}{rows:>7}{breaks:>8}{risk:>16}")
    lines.append("-" * len(header))
    lines.append(f"{result.credit_outcomes.num_rows} credits, {result.settlement_outcomes.num_rows} settlement rows, "
                 f"{result.break_table.num_rows} breaks (* marks break outcomes)")
    return "\n".join(lines)


# --- HTML ------------------------------------------------------------------------------------

def frame_html(frame: pd.DataFrame, **options: Any) -> str:
    """A DataFrame as an HTML table with missing cells blank (nullable dtypes print ``<NA>``
    whatever ``na_rep`` says)."""
    options.setdefault("index", False)
    shown = frame.astype(object).where(frame.notna(), "").map(lambda v: inert.shown(v) if isinstance(v, str) else v)
    shown.columns = [inert.shown(c) if isinstance(c, str) else c for c in shown.columns]
    return shown.to_html(escape=True, border=0, **options)


def _rows(columns: Mapping[str, Any], numbers: tuple[str, ...]) -> dict[str, Any]:
    """Columns as the template's table: labels, rows of cells (blank for null) and which are numbers."""
    names = list(columns)
    values = [c.to_pylist() if hasattr(c, "to_pylist") else list(c) for c in columns.values()]
    cells = [["" if v is None else v for v in row] for row in zip(*values, strict=True)]
    return {"labels": [LABELS.get(n, n) for n in names], "cells": cells,
            "numbers": {i for i, n in enumerate(names) if n in numbers}}


def _parameter_rows(result: ReconResult) -> list[tuple[str, str]]:
    parameters = result.parameters
    tolerance = parameters["amount_tolerance"]
    if isinstance(tolerance, Mapping):
        tolerance = ", ".join(f"{k} {v}" for k, v in tolerance.items())
    return [("Environment", parameters.get("environment") or "not given"), ("As of", parameters["as_of"]),
            ("Amount tolerance", str(tolerance)), ("Grace period (days)", f"{parameters['grace_days']:g}"),
            ("Matched on", ", then ".join(parameters["match_on"])),
            ("Input files", "; ".join(parameters.get("input_files") or []) or "none"),
            # Credits read from a file rather than fetched: which bytes.
            *([("Credits file", str(parameters["credits_file"]))] if parameters.get("credits_file") else []),
            # A filtered view's files hold only the breaks its filter selects: say which.
            *([("Filter", str(parameters["filter"]))] if parameters.get("filter") else []),
            # Credits that could not be fetched are missing from every figure: say how many.
            *([("Credit ids not fetched", f"{parameters['unfetched_ids']} (left out of this report)"
                + (f", {parameters['not_indexed_ids']} of them not indexed yet by Transaction Details"
                   if parameters.get("not_indexed_ids") else ""))]
              if parameters.get("unfetched_ids") else []),
            ("Written", datetime.now().astimezone().isoformat(timespec="seconds"))]


def _totals_columns(result: ReconResult, fx: Mapping[str, Any] | None, base: str | None) -> dict[str, Any]:
    totals = result.totals(fx, base)
    columns: dict[str, Any] = {"currency": [_currency_shown(c) for c in totals["currency"]],
                               "breaks": totals["breaks"].tolist(),
                               "amount_at_risk": ["unknown" if pd.isna(c) else None if pd.isna(v) else str(v)
                                                  for c, v in zip(totals["currency"], totals["amount_at_risk"],
                                                                  strict=True)]}
    if fx is not None:
        columns["rate"] = [None if pd.isna(v) else str(v) for v in totals["rate"]]
        columns["converted"] = [None if pd.isna(v) else str(v) for v in totals["converted"]]
    return columns


def _currency_shown(code: str | None) -> str:
    """A totals row's currency for people: the breaks of unreadable records have none."""
    return "unknown" if pd.isna(code) else code


def summary_html(result: ReconResult) -> str:
    """The summary as an HTML table (a notebook shows a result with it)."""
    from jinja2 import Environment

    template = Environment(autoescape=True, finalize=_visible).from_string(
        "<h4>Reconciliation: {{ breaks }} breaks</h4>"
        "<table><tr>{% for l in t.labels %}<th>{{ l }}</th>{% endfor %}</tr>"
        "{% for r in t.cells %}<tr>{% for v in r %}<td>{{ v }}</td>{% endfor %}</tr>{% endfor %}</table>")
    return template.render(breaks=result.break_table.num_rows,
                           t=_rows(_summary_columns(result, words=True), ("credits", "settlement_rows", "breaks",
                                                              "amount_at_risk")))


def _visible(value: Any) -> Any:
    """Every value a template prints: control characters shown as escapes (a page shows an ESC as
    nothing and a tab as a space), then HTML-escaped by the template's autoescape."""
    from markupsafe import Markup

    # A macro's output (a table the template built from escaped values) is Markup: left as it is.
    return inert.shown(value) if isinstance(value, str) and not isinstance(value, Markup) else value


def _template() -> Any:
    from jinja2 import Environment, PackageLoader, select_autoescape

    environment = Environment(loader=PackageLoader("reconkit", "templates"), autoescape=select_autoescape(["j2"]),
                              trim_blocks=False, finalize=_visible)
    return environment.get_template("report.html.j2")


def to_html(result: ReconResult, path: str | Path | None = None, *, figures: bool = True, max_breaks: int = 5000,
            fx: Mapping[str, Any] | None = None, base: str | None = None) -> str:
    """A self-contained HTML report: parameters, totals per currency, summary, the definition of
    the amount at risk, figures and the break table (the first ``max_breaks`` rows).

    Parameters
    ----------
    result : ReconResult
    path : path, optional
        Also write the page there (atomically).
    figures : bool
        Embed :func:`plot` as a PNG.
    max_breaks : int
        Break rows shown; the Excel and CSV exports hold all.
    fx, base : optional
        Rates to one base currency (see :meth:`ReconResult.totals`) for a converted total.

    Returns
    -------
    str
    """
    breaks = result.break_table
    shown = breaks.slice(0, max_breaks)
    document = _template().render(
        environment=result.parameters.get("environment") or "", as_of=result.parameters["as_of"],
        credits=result.credit_outcomes.num_rows, settlement_rows=result.settlement_outcomes.num_rows,
        breaks=breaks.num_rows, shown=shown.num_rows, parameters=_parameter_rows(result),
        totals=_rows(_totals_columns(result, fx, base), ("breaks", "amount_at_risk", "rate", "converted")),
        summary=_rows(_summary_columns(result, words=True), ("credits", "settlement_rows", "breaks", "amount_at_risk")),
        definitions=[(str(o), text) for o, text in AT_RISK.items()],
        figure=base64.b64encode(figure_png(result)).decode("ascii") if figures else "",
        break_rows=_rows(_break_columns(shown), (*_AMOUNTS, "settlement_rows", "source_line", "age_days")))
    if path is not None:
        write_atomically(Path(path), document.encode("utf-8"))
    return document


# --- CSV -------------------------------------------------------------------------------------

def _work_columns(result: ReconResult, work: pd.DataFrame | None) -> dict[str, pa.Array]:
    """The book's columns (:data:`reconkit.breaks.WORK_COLUMNS`) of ``work``, one row per break in
    the break table's order, as Arrow text; none without ``work``."""
    if work is None:
        return {}
    if len(work) != result.break_table.num_rows:
        raise ValueError(f"the break book's columns have {len(work)} rows for {result.break_table.num_rows} breaks")
    return {name: pa.array(work[name].astype(object).where(work[name].notna(), None).tolist(), pa.string())
            for name in WORK_COLUMNS}


def to_csv(result: ReconResult, path: str | Path, *, work: pd.DataFrame | None = None) -> Path:
    """The break table as CSV (snake_case header, ids and amounts as quoted text, ISO times and
    dates, integer line numbers), written atomically.

    The credit's status is ``credit_status``; ``work`` (:meth:`reconkit.BreakBook.workflow` of
    ``result.breaks``) adds the break's ``work_status``, ``owner`` and ``notes`` in the book.
    Text from outside data is inert (:func:`reconkit.inert.cell`): a cell that would start a
    formula gets a single quote in front, control characters show as escapes. Amounts are
    numbers the engine formatted and stay as they are (a negative amount is ``-12.50``)."""
    columns = _break_columns(result.break_table)
    table = pa.table({_CSV_NAMES.get(name, name): inert.arrow(columns[name]) if name in _TEXT
                      else pc.cast(columns[name], pa.string()) if name in _AMOUNTS
                      else columns[name] for name in BREAK_COLUMNS}
                     | {name: inert.arrow(values) for name, values in _work_columns(result, work).items()})
    buffer = io.BytesIO()
    pacsv.write_csv(table, buffer, pacsv.WriteOptions(include_header=True, quoting_style="needed"))
    target = Path(path)
    write_atomically(target, buffer.getvalue())
    return target


# --- Excel -----------------------------------------------------------------------------------

def to_excel(result: ReconResult, path: str | Path, *, fx: Mapping[str, Any] | None = None,
             base: str | None = None, work: pd.DataFrame | None = None) -> Path:
    """An Excel workbook: Breaks, Summary, Totals and Parameters sheets (atomically).

    Amounts are numbers formatted with their currency's decimals (JPY ``#,##0``, USD
    ``#,##0.00``, KWD ``#,##0.000``); ids are text; times and batch dates are Excel dates; every sheet has a
    frozen header row and an autofilter. ``work`` (:meth:`reconkit.BreakBook.workflow` of
    ``result.breaks``) adds the break's status, owner and notes in the book to the Breaks sheet.
    """
    extra = _work_columns(result, work)
    import xlsxwriter

    breaks = result.break_table
    if breaks.num_rows > _EXCEL_MAX_ROWS:
        raise ValueError(f"the Breaks sheet would have {breaks.num_rows} rows, more than Excel holds; "
                         "export it with to_csv instead")
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True, "strings_to_numbers": False,
                                        "strings_to_formulas": False, "strings_to_urls": False})
    try:
        styles = _Styles(book)
        names = [*BREAK_COLUMNS, *extra]
        sheet = _start_sheet(book, styles, "Breaks", [LABELS[n] for n in names],
                             _BREAK_WIDTHS + [_WORK_WIDTHS[n] for n in extra], breaks.num_rows)
        for column, (_, style) in enumerate(_break_cell_kinds(styles, extra).values()):
            # A styled blank per format gives each its index in styles.xml; the rows replace it.
            sheet.write_blank(1, column, None, style if not isinstance(style, dict) else style[2])
        for style in styles.money.values():
            sheet.write_blank(1, len(names), None, style)
        _summary_sheet(book, styles, result)
        _totals_sheet(book, styles, result, fx, base)
        _parameters_sheet(book, styles, result)
    finally:
        book.close()
    rows = _breaks_rows_xml(breaks, styles, extra)
    data = _replace_sheet_rows(buffer.getvalue(), "xl/worksheets/sheet1.xml", rows,
                               f"A1:{_letter(len(names) - 1)}{breaks.num_rows + 1}")
    target = Path(path)
    write_atomically(target, data)
    return target


_BREAK_WIDTHS = [22, 9, 15, 24, 20, 24, 15, 15, 10, 24, 7, 11, 70, 12, 20, 10, 14]
_WORK_WIDTHS = {"work_status": 16, "owner": 14, "notes": 60}


class _Styles:
    def __init__(self, book: Any) -> None:
        self.header = book.add_format({"bold": True, "bg_color": "#F3F3F3", "border": 1})
        self.text = book.add_format({"num_format": "@"})
        self.plain = book.add_format({})
        self.integer = book.add_format({"num_format": "0"})
        self.days = book.add_format({"num_format": "0.00"})
        self.time = book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
        self.day = book.add_format({"num_format": "yyyy-mm-dd"})
        self.money = {digits: book.add_format({"num_format": pattern}) for digits, pattern in _FORMATS.items()}


def _break_cell_kinds(styles: _Styles, extra: Mapping[str, Any] = {}) -> dict[str, tuple[str, Any]]:
    """Per shown column (``extra``: the book's, after the engine's): how its cells are written
    (text, number, date) and their style (a dict by minor-unit digits for amounts)."""
    kinds: dict[str, tuple[str, Any]] = {}
    for name in [*BREAK_COLUMNS, *extra]:
        if name in _AMOUNTS:
            kinds[name] = ("number", styles.money)
        elif name in ("settlement_rows", "source_line"):
            kinds[name] = ("number", styles.integer)
        elif name == "age_days":
            kinds[name] = ("number", styles.days)
        elif name == "submit_time_utc":
            kinds[name] = ("date", styles.time)
        elif name == "batch_date":
            kinds[name] = ("date", styles.day)
        elif name in ("credit_id", "reconciliation_id", "request_id"):
            kinds[name] = ("text", styles.text)
        else:
            kinds[name] = ("text", styles.plain)
    return kinds


def _letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters


def _xml_text(values: pa.Array) -> pa.Array:
    """Inert cell text (:func:`reconkit.inert.arrow`: no formula, control characters as escapes,
    which also keeps the XML well-formed), XML-escaped."""
    text = inert.arrow(values)
    for raw, escaped in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;")):
        text = pc.replace_substring(text, raw, escaped)
    return text


def _breaks_rows_xml(table: pa.Table, styles: _Styles, extra: Mapping[str, pa.Array] = {}) -> bytes:
    """The Breaks sheet's data rows as SpreadsheetML, built column by column with Arrow kernels:
    one string operation per column instead of one writer call per cell (100k breaks × 16
    columns would be 1.6M calls)."""
    size = table.num_rows
    if size == 0:
        return b""
    join = pc.binary_join_element_wise
    numbers = pa.array(np.arange(2, size + 2).astype(str))
    shown = _break_columns(table) | dict(extra)
    digits = np.asarray(table.column("minor_units").to_numpy(zero_copy_only=False), dtype=np.int64)
    settled_currency = table.column("settled_currency")
    settled_digits = np.where(pc.is_null(settled_currency).to_numpy(zero_copy_only=False), digits,
                              _digits(table, "settled_currency"))
    index_of = {d: style.xf_index for d, style in styles.money.items()}
    amount_style = pa.array(np.vectorize(index_of.get)(digits).astype(str)) if size else pa.array([], pa.string())
    settled_style = pa.array(np.vectorize(index_of.get)(settled_digits).astype(str))
    cells = []
    for column, (name, (kind, style)) in enumerate(_break_cell_kinds(styles, extra).items()):
        reference = join(_letter(column), numbers, "")
        if name == "settled_amount":
            style_text: Any = settled_style
        elif isinstance(style, dict):
            style_text = amount_style
        else:
            style_text = str(style.xf_index)
        if kind == "text":
            value = _xml_text(shown[name])
            cell = join('<c r="', reference, '" s="', style_text, '" t="inlineStr"><is><t xml:space="preserve">',
                        value, "</t></is></c>", "")
        else:
            value = pc.cast(_excel_serial(table.column(name)) if kind == "date" else shown[name], pa.string())
            cell = join('<c r="', reference, '" s="', style_text, '"><v>', value, "</v></c>", "")
        cells.append(pc.fill_null(cell, ""))
    rows = join('<row r="', numbers, '">', *cells, "</row>", "")
    return "".join(rows.to_pylist()).encode("utf-8")


def _excel_serial(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Times (UTC) and dates as Excel serial numbers: days since 1899-12-30, whole for a date."""
    if pa.types.is_date(values.type):
        return pc.add(pc.cast(pc.cast(values, pa.int32()), pa.int64()), 25569)
    seconds = pc.cast(pc.cast(values, pa.timestamp("s", tz="UTC")), pa.int64())
    return pc.add(pc.divide(pc.cast(seconds, pa.float64()), 86400.0), 25569.0)


def _replace_sheet_rows(package: bytes, member: str, rows: bytes, dimension: str) -> bytes:
    """Put ``rows`` after the header row of a worksheet in an xlsx package (the header, column
    widths, frozen pane and autofilter stay as the writer made them)."""
    import re
    import zipfile

    source = zipfile.ZipFile(io.BytesIO(package))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == member:
                start = data.index(b"</row>") + len(b"</row>")
                end = data.index(b"</sheetData>")
                data = data[:start] + rows + data[end:]
                data = re.sub(rb'<dimension ref="[^"]*"/>', f'<dimension ref="{dimension}"/>'.encode(), data, count=1)
            target.writestr(item, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=1)
    return out.getvalue()


def _start_sheet(book: Any, styles: _Styles, name: str, labels: list[str], widths: list[int], rows: int) -> Any:
    sheet = book.add_worksheet(name)
    for index, (label, width) in enumerate(zip(labels, widths, strict=True)):
        sheet.set_column(index, index, width)
        sheet.write_string(0, index, label, styles.header)
    sheet.freeze_panes(1, 0)
    sheet.autofilter(0, 0, max(rows, 1), len(labels) - 1)
    return sheet


def _summary_sheet(book: Any, styles: _Styles, result: ReconResult) -> None:
    table = result.summary_table
    names = ["outcome", "currency", "break", "credits", "settlement_rows", "breaks", "amount_at_risk"]
    sheet = _start_sheet(book, styles, "Summary", [LABELS[n] for n in names], [24, 9, 7, 9, 15, 8, 16],
                         table.num_rows)
    digits = table.column("minor_units").to_pylist()
    risk = table.column("amount_at_risk_minor").to_pylist()
    unknown = table.column("unknown_at_risk").to_pylist()
    for row, record in enumerate(table.select(names[:-1]).to_pylist(), start=1):
        sheet.write_string(row, 0, inert.cell(record["outcome"]))
        sheet.write_string(row, 1, inert.cell(_currency_shown(record["currency"])))
        sheet.write_boolean(row, 2, bool(record["break"]))
        for column, name in enumerate(("credits", "settlement_rows", "breaks"), start=3):
            sheet.write_number(row, column, record[name], styles.integer)
        scale = digits[row - 1]
        if unknown[row - 1] and unknown[row - 1] == record["breaks"]:  # records that failed to read
            sheet.write_string(row, 6, "unknown")
        else:
            sheet.write_number(row, 6, risk[row - 1] / 10 ** scale, styles.money.get(scale, styles.money[2]))


def _totals_sheet(book: Any, styles: _Styles, result: ReconResult, fx: Mapping[str, Any] | None,
                  base: str | None) -> None:
    totals = result.totals(fx, base)
    names = list(totals.columns)
    sheet = _start_sheet(book, styles, "Totals", [LABELS[n] for n in names], [22, 8, 16, 10, 18][:len(names)],
                         len(totals))
    converted = styles.money[2]
    for row, record in enumerate(totals.to_dict("records"), start=1):
        sheet.write_string(row, 0, inert.cell(_currency_shown(record["currency"])))
        sheet.write_number(row, 1, int(record["breaks"]), styles.integer)
        amount = record["amount_at_risk"]
        if not pd.isna(amount):
            scale = max(-amount.as_tuple().exponent, 0)
            sheet.write_number(row, 2, float(amount), styles.money.get(scale, styles.money[2]))
        elif pd.isna(record["currency"]):
            sheet.write_string(row, 2, "unknown")
        if fx is not None:
            if not pd.isna(record["rate"]):
                sheet.write_number(row, 3, float(record["rate"]))
            if not pd.isna(record["converted"]):
                sheet.write_number(row, 4, float(record["converted"]), converted)


def _parameters_sheet(book: Any, styles: _Styles, result: ReconResult) -> None:
    rows = _parameter_rows(result)
    files = result.parameters.get("input_files") or []
    rows = [r for r in rows if r[0] != "Input files"] + [("Input file", f) for f in files]
    sheet = _start_sheet(book, styles, "Parameters", ["Parameter", "Value"], [22, 80], len(rows))
    for row, (label, value) in enumerate(rows, start=1):
        sheet.write_string(row, 0, label)
        sheet.write_string(row, 1, inert.cell(str(value)), styles.text)  # file names, the filter typed


# --- figures ---------------------------------------------------------------------------------

def plot(result: ReconResult) -> Figure:
    """Breaks by outcome, amount at risk by outcome with one panel per currency (linear axes,
    each in its own currency), and the age of missing credits against the grace period."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    _show_figures_as_png()
    summary = result.summary_table
    breaks = summary.filter(pc.greater(summary.column("breaks"), 0))
    currencies = sorted({c for c in breaks.column("currency").to_pylist() if c is not None})
    panels = 2 + len(currencies)
    columns = min(panels, 3)
    rows = -(-panels // columns)
    figure = Figure(figsize=(4.6 * columns, 3.4 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    order = {o.value: i for i, o in enumerate(Outcome)}

    counts_axis = axes[0]
    per_outcome: dict[str, int] = {}
    for outcome, count in zip(breaks.column("outcome").to_pylist(), breaks.column("breaks").to_pylist(), strict=True):
        per_outcome[outcome] = per_outcome.get(outcome, 0) + count
    names = sorted(per_outcome, key=lambda o: order.get(o, 99), reverse=True)
    counts_axis.barh(names, [per_outcome[n] for n in names], color="#c0392b")
    counts_axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    counts_axis.set_title("Breaks by outcome")
    counts_axis.set_xlabel("breaks")

    digits = dict(zip(breaks.column("currency").to_pylist(), breaks.column("minor_units").to_pylist(), strict=True))
    for axis, currency in zip(axes[1:], currencies, strict=False):
        part = breaks.filter(pc.equal(breaks.column("currency"), currency))
        pairs = sorted(zip(part.column("outcome").to_pylist(), part.column("amount_at_risk_minor").to_pylist(),
                           strict=True), key=lambda p: order.get(p[0], 99), reverse=True)
        scale = 10 ** (digits[currency] or 0)
        axis.barh([p[0] for p in pairs], [p[1] / scale for p in pairs], color="#2c7fb8")
        axis.set_title(f"Amount at risk in {currency}")
        axis.set_xlabel(f"{currency} (linear scale)")
        axis.ticklabel_format(axis="x", style="plain", useOffset=False)

    ages_axis = axes[1 + len(currencies)]
    outcome = result.credit_outcomes.column("outcome")
    missing = pc.is_in(outcome, pa.array(["MISSING_PENDING", "MISSING_OVERDUE"]))
    ages = pc.filter(result.credit_outcomes.column("age_days"), missing).to_numpy(zero_copy_only=False)
    ages = ages[~np.isnan(ages.astype(float))] if len(ages) else ages
    grace = float(result.parameters["grace_days"])
    if len(ages):
        # One bar per whole day of age (0–1, 1–2, ...): automatic bins cut days in halves and read as
        # far fewer credits per day than there are.
        days = ages.astype(float)
        edges = np.arange(np.floor(min(days.min(), 0.0)), np.floor(days.max()) + 2)
        ages_axis.hist(days, bins=edges, color="#2980b9", edgecolor="white", label="missing credits")
        if len(edges) <= 16:  # a tick at every day edge while they stay legible
            ages_axis.set_xticks(edges)
    ages_axis.axvline(grace, color="#c0392b", linestyle="--", label=f"grace period ({grace:g} days)")
    ages_axis.yaxis.set_major_locator(MaxNLocator(integer=True))
    ages_axis.set_title("Age of missing credits")
    ages_axis.set_xlabel("days since submission (one bar per day)")
    ages_axis.set_ylabel("credits")
    # Below the axes, so the legend never sits on the bars.
    ages_axis.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.25), ncols=2, frameon=False)
    for axis in axes[2 + len(currencies):]:
        axis.set_visible(False)
    return figure


def figure_png(result: ReconResult) -> bytes:
    """:func:`plot` rendered as PNG bytes."""
    buffer = io.BytesIO()
    plot(result).savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


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
