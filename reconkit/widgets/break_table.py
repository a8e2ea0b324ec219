"""The investigation's break table as a view over :class:`reconkit.investigation.Investigation`'s
:class:`~reconkit.investigation.BreakView`: outcome and currency filters, an id search, an order,
pages, and the drill-down of one break. The widgets write the view into the model; the table is
drawn from the model (only the page shown becomes a pandas frame)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as w
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..credit import Credit
from ..frames import CURATED_COLUMNS
from ..investigation import ALL, Investigation
from ..markup import format_amount
from ..outcomes import BREAKS
from ..report import LABELS
from ..result import ReconResult
from .common import App, escape, guarded, json_html, table_html

__all__ = ["CREDIT_LABELS", "SHOWN_COLUMNS", "SOURCE_WORDS", "WORK_LABELS", "BreakTable", "drill_html",
           "duplicate_lines", "pick_label", "shown_breaks"]

_STYLE = {"description_width": "150px"}
ALL_BREAKS = "(all breaks)"
BY_CURRENCY = "currency, then largest amount at risk"
SHOWN_COLUMNS = ("outcome", "amount_at_risk", "currency", "credit_id", "detail", "lines", "source_file",
                 "batch_date", "settlement_rows", "reconciliation_id")
"""The break table's columns in the app, in order (``lines``: every settlement line of the break)."""
WORK_LABELS = {"work_status": "Break status", "owner": "Owner"}
"""The break book's columns beside the reason: the *break's* status, never to be read as the credit's."""
CREDIT_LABELS = {
    "credit_id": "Credit id", "reconciliation_id": "Reconciliation id", "status": "Credit status",
    "submit_time_utc": "Submitted (UTC)", "amount": "Amount", "currency": "Currency",
    "reference_code": "Your reference", "transaction_id": "Transaction id",
    "instrument_identifier_id": "Card token (instrument id)", "card_type": "Card type",
    "card_suffix": "Card ends in", "approval_code": "Approval code", "response_code": "Processor response code",
    "payment_account_reference": "Payment account reference", "error_reason": "Error reason",
    "error_message": "Error message", "source": "Read from",
}
"""The drill-down's credit fields in analyst words (``status``: the credit's, as CyberSource has it)."""
SOURCE_WORDS = {"self_link": "the credit's own record", "create": "the credit's own record",
                "tss": "Transaction Search (the credit's own record was not available)"}
"""Where a credit was read from, in analyst words (the ``source`` column)."""


def _file_name(path: Any) -> str:
    return Path(path).name if isinstance(path, str) and path else ""


def duplicate_lines(result: ReconResult) -> dict[str, str]:
    """Every settlement line of each credit break that has more than one row ("75, 76")."""
    table = result.break_table
    several = pc.and_(pc.greater(table.column("settlement_rows"), 1), pc.is_valid(table.column("credit_id")))
    ids = set(table.filter(several).column("credit_id").to_pylist())
    if not ids:
        return {}
    rows = result.settlement[result.settlement["credit_id"].isin(ids)]
    return {str(credit_id): ", ".join(str(int(n)) for n in sorted(group["source_line"].dropna()))
            for credit_id, group in rows.groupby("credit_id", observed=True, sort=False)}


def shown_breaks(chunk: pd.DataFrame, lines: dict[str, str], workflow: pd.DataFrame) -> pd.DataFrame:
    """Break rows as the app shows them: analyst labels, amounts with thousands separators and
    their currency's decimals, integer lines, file names without folders, ISO batch dates, and the
    break book's status and owner (``workflow``) beside the reason, where the analyst reads on."""
    shown_lines = [lines.get(str(c), "" if pd.isna(n) else str(int(n)))
                   for c, n in zip(chunk["credit_id"], chunk["source_line"], strict=True)]
    shown = pd.DataFrame({
        "outcome": chunk["outcome"], "amount_at_risk": chunk["amount_at_risk"].map(format_amount),
        "currency": chunk["currency"], "credit_id": chunk["credit_id"], "detail": chunk["detail"],
        "lines": shown_lines, "source_file": chunk["source_file"].map(_file_name),
        "batch_date": chunk["batch_date"].dt.strftime("%Y-%m-%d").fillna(""),
        "settlement_rows": chunk["settlement_rows"].astype("Int64"),
        "reconciliation_id": chunk["reconciliation_id"]})
    shown = shown.rename(columns={c: LABELS.get(c, "Lines") for c in SHOWN_COLUMNS})
    return pd.concat([shown.iloc[:, :5], workflow.rename(columns=WORK_LABELS), shown.iloc[:, 5:]], axis=1)


def pick_label(row: Any, lines: dict[str, str]) -> str:
    """A break in the drill-down picker: outcome, credit, amount, file and line(s)."""
    who = row.credit_id if pd.notna(row.credit_id) else "no credit"
    several = lines.get(str(row.credit_id)) if pd.notna(row.credit_id) else None
    where = (f"lines {several}" if several else f"line {int(row.source_line)}" if pd.notna(row.source_line)
             else "no settlement line")
    return (f"{row.outcome} · {who} · {format_amount(row.amount_at_risk)} {row.currency} · "
            f"{_file_name(row.source_file) or '-'} {where}")


def drill_html(result: ReconResult, row: int, credits_by_id: dict[str, Credit]) -> str:
    """A break (``row``: its position in the break table) with its credit (curated fields and raw
    JSON) beside its settlement row(s), each row numbered with its file and line."""
    item = result.breaks_frame(result.break_table.slice(row, 1)).iloc[0]
    parts = [f"<h4>{escape(str(item['outcome']))}</h4><p>{escape(str(item['detail']))}</p>"]
    credit_id = item["credit_id"]
    settlement = result.settlement
    if pd.notna(credit_id):
        credit = result.credits[result.credits["credit_id"] == credit_id]
        curated = credit[[c for c in CURATED_COLUMNS if c in credit]].copy()
        if "source" in curated:
            curated["source"] = curated["source"].map(lambda s: SOURCE_WORDS.get(str(s), s))
        if "amount" in curated:
            curated["amount"] = curated["amount"].map(format_amount)
        parts.append("<b>Credit</b>" + table_html(curated.rename(columns=CREDIT_LABELS).T, header=False, index=True))
        raw = credits_by_id.get(str(credit_id))
        if raw is not None:
            parts.append(f"<details><summary>Credit as CyberSource sent it (JSON)</summary>{json_html(raw.raw)}"
                         "</details>")
        rows = settlement[settlement["credit_id"] == credit_id]
    else:
        rows = settlement.loc[(settlement["source_file"].astype(str) == str(item.get("source_file")))
                              & (settlement["source_line"] == item.get("source_line"))]
    if len(rows):
        columns = [c for c in ("source_file", "source_line", "reconciliation_id", "request_id", "transaction_type",
                               "amount", "currency", "batch_date", "outcome") if c in rows]
        shown = rows[columns].copy()
        shown.insert(0, "Row", [f"{i} of {len(rows)}" for i in range(1, len(rows) + 1)])
        shown["source_file"] = shown["source_file"].map(_file_name)
        shown["source_line"] = shown["source_line"].astype("Int64")
        if "amount" in shown:
            shown["amount"] = shown["amount"].map(format_amount)
        shown = shown.rename(columns={**LABELS, "transaction_type": "Transaction type", "amount": "Amount",
                                      "batch_date": "Batch date"})
        parts.append("<b>Settlement row(s)</b>" + table_html(shown))
    elif item["outcome"] == "UNREADABLE_SETTLEMENT":
        parts.append(f"<b>Settlement row</b>: could not be read, {escape(_file_name(item['source_file']))} "
                     f"line {int(item['source_line'])}")
    else:
        parts.append("<b>Settlement row(s)</b>: none")
    return "".join(parts)


class BreakTable(App):
    """The break table of an :class:`~reconkit.investigation.Investigation`'s result.

    Parameters
    ----------
    model : Investigation
    workflow : callable
        The break book's status and owner of a frame of breaks (:meth:`BreakBook.workflow`).
    error : HTML
        Where a failing control says what went wrong (the host app's error line).
    """

    def __init__(self, model: Investigation, workflow: Callable[[pd.DataFrame], pd.DataFrame], error: w.HTML) -> None:
        self.model, self.workflow, self.error = model, workflow, error
        self.outcome_filter = w.Dropdown(description="Outcome", style=_STYLE, layout=w.Layout(width="420px"))
        self.currency_filter = w.Dropdown(description="Currency", style=_STYLE)
        self.search = w.Textarea(description="Search ids", placeholder="credit, reconciliation or request ids "
                                 "(any case; paste a list)", style=_STYLE, layout=w.Layout(width="450px"))
        self.sort_by = w.Dropdown(options=[(BY_CURRENCY, ""), *((LABELS.get(c, "Lines"), c) for c in SHOWN_COLUMNS)],
                                  value="", description="Sort by", style=_STYLE, layout=w.Layout(width="480px"))
        self.descending = w.Checkbox(value=False, description="descending", indent=False)
        self.prev_button, self.next_button = w.Button(description="◀ Previous"), w.Button(description="Next ▶")
        self.page_box = w.BoundedIntText(value=1, min=1, max=1, description="Page", style={"description_width": "40px"},
                                         layout=w.Layout(width="130px"))
        self.page_label, self.table, self.drill = w.HTML(), w.HTML(), w.HTML()
        self.pick = w.Dropdown(description="Drill down", style=_STYLE, layout=w.Layout(width="700px"))
        self._lines: dict[str, str] = {}
        self._syncing = False  # the model's state being written into the widgets
        self.prev_button.on_click(self.on_prev)
        self.next_button.on_click(self.on_next)
        for widget in (self.outcome_filter, self.currency_filter, self.search, self.sort_by, self.descending):
            widget.observe(self._on_filter, names="value")
        self.page_box.observe(self._on_page_box, names="value")
        self.pick.observe(self._on_pick, names="value")
        super().__init__([w.HBox([self.outcome_filter, self.currency_filter]), self.search,
                          w.HBox([self.sort_by, self.descending]),
                          w.HBox([self.prev_button, self.page_box, self.page_label, self.next_button]), self.table,
                          self.pick, self.drill])
        self.show(None)

    @property
    def controls(self) -> tuple[w.Widget, ...]:
        """The controls that act on a result."""
        return (self.outcome_filter, self.currency_filter, self.search, self.sort_by, self.descending,
                self.prev_button, self.next_button, self.page_box, self.pick)

    def show(self, result: ReconResult | None) -> None:
        """Show a new result whole (the model's fresh view: no filter, no search, its own order), or
        nothing."""
        self.drill.value = ""
        for widget in self.controls:
            widget.disabled = result is None
        if result is None:
            self.table.value = self.page_label.value = ""
            self.pick.options = []
            return
        self._lines = duplicate_lines(result)
        table = result.break_table
        outcomes = sorted(set(pc.unique(table.column("outcome")).to_pylist()) & BREAKS)
        currencies = sorted(c for c in pc.unique(table.column("currency")).to_pylist() if c is not None)
        self._syncing = True
        try:
            self.outcome_filter.options, self.outcome_filter.value = [ALL_BREAKS, *outcomes], ALL_BREAKS
            self.currency_filter.options, self.currency_filter.value = [ALL, *currencies], ALL
            self.search.value, self.sort_by.value, self.descending.value = "", "", False
        finally:
            self._syncing = False
        self.render()

    def render(self) -> None:
        """Show the view's page of filtered breaks (only that page becomes a pandas frame)."""
        result = self.model.result
        assert result is not None
        page = self.model.page_positions()
        chunk = result.breaks_frame(result.break_table.take(pa.array(page, pa.int64())))
        workflow = self.workflow(chunk)
        self.table.value = (table_html(shown_breaks(chunk, self._lines, workflow), wrap_fifth=True) if len(chunk)
                            else "<i>no breaks match</i>")
        pages, at = self.model.pages, self.model.view.page
        self.page_label.value = f"of {pages} · {len(self.model.positions()):,} break(s)"
        self._syncing = True
        try:
            self.page_box.max, self.page_box.value = pages, at + 1
            self.descending.disabled = not self.model.view.sort_by
        finally:
            self._syncing = False
        self.prev_button.disabled, self.next_button.disabled = at == 0, at >= pages - 1
        self.pick.options = [(pick_label(r, self._lines), int(p)) for p, r in zip(page, chunk.itertuples(),
                                                                                   strict=True)]

    @guarded
    def _on_filter(self, _change: Any) -> None:
        if self._syncing or self.model.result is None:
            return
        outcome = self.outcome_filter.value
        self.model.set_view(outcome=ALL if outcome in (None, ALL_BREAKS) else outcome,
                            currency=self.currency_filter.value or ALL, search=self.search.value,
                            sort_by=self.sort_by.value, descending=self.descending.value)
        self.render()

    @guarded
    def _on_page_box(self, change: dict[str, Any]) -> None:
        if not self._syncing and self.model.result is not None:
            self._go(int(change["new"]) - 1)

    @guarded
    def on_prev(self, _button: Any = None) -> None:
        """Previous page of breaks."""
        self._go(self.model.view.page - 1)

    @guarded
    def on_next(self, _button: Any = None) -> None:
        """Next page of breaks."""
        self._go(self.model.view.page + 1)

    def _go(self, page: int) -> None:
        self.model.set_view(page=page)
        self.render()

    @guarded
    def _on_pick(self, change: dict[str, Any]) -> None:
        self.drill_down(change["new"])

    def drill_down(self, row: int | None) -> None:
        """Show a break (``row``: its position in the break table) with its credit and settlement rows."""
        result = self.model.result
        self.drill.value = "" if row is None or result is None else drill_html(result, row, self.model.credits_by_id)
