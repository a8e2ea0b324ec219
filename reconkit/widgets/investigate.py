"""``InvestigateApp``: fetch credits (or read a credits file), load settlement files, reconcile, and
work through the breaks.

The app is a view over :class:`reconkit.investigation.Investigation`, the model the command line
and the demo run too: every widget tells the model what the analyst chose, every button calls one
model method, and the screen is drawn from the model's state. A result is shown only with the
inputs that produced it; when an input changes afterwards the model says the result is stale (and
what changed), the app greys it out and removes its download links. Reconcile refuses credit ids or
settlement files chosen since the last Fetch or Load, and the break book records the files (names
and SHA-256 of the bytes read) the result was computed from. Exports carry the run id in their
file names; a filtered export's every sheet holds only the breaks its filter selects.
"""

from __future__ import annotations

import functools
import io
import re
from datetime import date
from pathlib import Path
from typing import Any

import ipywidgets as w
import pandas as pd

from ..breaks import BreakBook
from ..client import Client
from ..credits_file import CreditsFile
from ..errors import ApiError, CreditsFileError
from ..investigation import (
    FieldError,
    Investigation,
    LoadedFile,
    NotReadError,
    parse_as_of,
    parse_ids,
    parse_tolerance,
)
from ..markup import cards_html, format_amount
from ..report import LABELS
from ..result import ReconResult
from ..session import connect, data_dir, sandbox_for
from .break_table import SHOWN_COLUMNS, BreakTable
from .breaks_panel import BreaksPanel
from .common import App, ConnectionBanner, describe_error, escape, guarded, table_html
from .filtered import FilteredView, write_exports
from .record_run import RunRecorder

__all__ = ["InvestigateApp", "LoadedFile", "analyst_words", "format_amount", "parse_as_of", "parse_date",
           "parse_ids", "parse_tolerance"]

_STYLE = {"description_width": "150px"}
_WIDE = w.Layout(width="auto")
_SETTLEMENT_SUFFIXES = (".csv", ".xml", ".json", ".xlsx", ".txt")
_CREDITS_SUFFIXES = (".json", ".jsonl", ".csv", ".parquet")

def parse_date(text: str, field: str, label: str) -> date:
    """A calendar date written as ``yyyy-mm-dd``."""
    value = text.strip()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise FieldError(field, f"{label} must be a date such as 2026-11-03, not “{value}”") from None


def analyst_words(name: str) -> str:
    """An error class name as words: ``InvalidRequestError`` → ``invalid request``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name.removesuffix("Error")).lower()


def _file_name(path: Any) -> str:
    return Path(path).name if isinstance(path, str) and path else ""


def _problem(html_text: str) -> str:
    return f"<span class='reconkit-field-error' style='color:#b00020'>{html_text}</span>" if html_text else ""


# --- what the app draws from the model's state: plain functions of it -----------------------------

def failures_html(failed: pd.DataFrame) -> str:
    """The ids a fetch could not read, with CyberSource's reason, in analyst words."""
    if not len(failed):
        return ""
    shown = pd.DataFrame({
        "Credit id": failed["id"], "Problem": failed["error"].astype(str).map(analyst_words),
        "HTTP status": failed["http_status"].astype("Int64"), "CyberSource's reason": failed["reason"],
        "Message": failed["message"], "Attempts": failed["attempts"].astype("Int64")})
    return "<b>Credits that could not be fetched</b>" + table_html(shown)


def not_indexed_html(not_indexed: pd.DataFrame) -> str:
    """The credits this client created that Transaction Details has not indexed yet, with the
    state their create call answered: not failures, and not in the credits reconciled."""
    if not len(not_indexed):
        return ""
    shown = pd.DataFrame({
        "Credit id": not_indexed["id"], "Status when created": not_indexed["status"],
        "Reconciliation id": not_indexed["reconciliation_id"], "Sent at": not_indexed["created_at"],
        "Attempts": not_indexed["attempts"].astype("Int64")})
    return ("<div class='reconkit-not-indexed'><b>Credits not indexed yet</b> (created here, but CyberSource's "
            "Transaction Details does not list them yet; it can lag minutes: fetch again later. They are "
            "left out of the reconciliation.)</div>" + table_html(shown))


def loaded_html(files: list[LoadedFile], rows: int, verb: str) -> str:
    """What a Load or Pull read: each file with its format, rows read and unreadable, and digest."""
    unread = sum(f.unreadable for f in files)
    counts = pd.DataFrame({"File": [Path(f.file).name for f in files], "Format": [f.format for f in files],
                           "Rows read": [f.rows for f in files], "Rows unreadable": [f.unreadable for f in files],
                           "SHA-256": [f.sha256[:12] for f in files]})
    return (f"<div class='reconkit-loaded'>{verb} <b>{escape(', '.join(Path(f.file).name for f in files))}</b>, "
            f"{rows:,} row(s)" + (f", {unread:,} unreadable" if unread else "") + "</div>" + table_html(counts))


def read_errors_html(failures: pd.DataFrame | None) -> str:
    """The settlement rows that could not be read, by file and line."""
    if failures is None or not len(failures):
        return ""
    failed = failures.copy()
    failed["source_file"] = failed["source_file"].map(_file_name)
    failed["source_line"] = failed["source_line"].astype("Int64")
    failed = failed.rename(columns={"source_file": "File", "source_line": "Line", "column": "Column", "value": "Value",
                                    "reason": "Problem", "reconciliation_id": "Reconciliation id",
                                    "request_id": "Request id"})
    return "<b>Rows that could not be read</b> (reconciled as unreadable settlement breaks)" + table_html(failed)


def stale_html(run_id: str, reasons: list[str]) -> str:
    """The banner over a result its inputs no longer match, naming what changed."""
    return ("<style>.reconkit-stale-view{opacity:.45}</style>"
            "<div class='reconkit-stale' style='background:#fff3cd;border-left:4px solid #b8860b;padding:4px 8px'>"
            f"<b>Stale:</b> these results are from run {escape(run_id)}; since then "
            f"{escape(', '.join(reasons))} changed. Reconcile again to see current results.</div>")


def credits_file_html(read: CreditsFile) -> str:
    """What reading a credits file gave: its format, credits and digest."""
    words = {"credit_json": "credit JSON", "credits_frame": "a saved credits frame",
             "transaction_search_csv": "a transaction-search export (paired by request id: it has no "
                                       "reconciliation ids)"}
    return (f"<div class='reconkit-credits-file'>Read <b>{len(read.frame):,}</b> credit(s) from "
            f"<b>{escape(Path(read.file).name)}</b>, {escape(words.get(read.format, read.format))}, "
            f"SHA-256 {escape(read.sha256[:12])}. These credits replace any fetched.</div>")


def credits_file_error_html(error: CreditsFileError) -> str:
    """A credits file refused: the sentence, and every failing cell by line and column."""
    cases = error.failure_cases
    table = ""
    if cases is not None and len(cases):
        shown = cases.head(50).rename(columns={"source_file": "File", "source_line": "Line", "column": "Column",
                                               "value": "Value", "reason": "Problem"})
        shown["File"] = shown["File"].map(_file_name)
        table = table_html(shown) + (f"<i>… and {len(cases) - 50:,} more</i>" if len(cases) > 50 else "")
    return _problem(escape(str(error))) + table


def run_html(result: ReconResult, run_id: str, files: list[LoadedFile],
             credits_file: CreditsFile | None = None) -> tuple[str, str]:
    """The run line (its id, credits, the settlement files with their digests, the as-of) and the
    summary cards of a result."""
    summary = result.summary
    matched = int(summary.loc[summary["outcome"] == "MATCHED", "credits"].sum())
    totals = result.totals()
    read = ", ".join(f"{Path(f.file).name} (SHA-256 {f.sha256[:12]})" for f in files)
    origin = ("fetched" if credits_file is None else
              f"from {escape(Path(credits_file.file).name)} (SHA-256 {escape(credits_file.sha256[:12])})")
    label = (f"<div class='reconkit-run'>Run <b>{escape(run_id)}</b>: {result.credit_outcomes.num_rows:,} "
             f"credit(s) {origin}, settlement {escape(read)}, as of "
             f"{escape(str(result.parameters.get('as_of')))}</div>")
    cards = cards_html([("Credits", f"{result.credit_outcomes.num_rows:,}"), ("Matched", f"{matched:,}"),
                        ("Breaks", f"{result.break_table.num_rows:,}")]
                       + [(f"At risk ({c})", format_amount(v))
                          for c, v in zip(totals["currency"], totals["amount_at_risk"], strict=True)])
    return label, cards


def settlement_choices(data: Path) -> list[str]:
    """The settlement files offered in ``data`` (relative paths), not the samples' ids, manifest,
    ground truth or credits files (``credits_*``)."""
    if not data.is_dir():
        return []
    files = [p for p in sorted(data.rglob("*")) if p.suffix.lower() in _SETTLEMENT_SUFFIXES
             and p.is_file() and "truth" not in p.name and p.name not in ("credit_ids.csv", "manifest.json")
             and not p.name.startswith("credits_")]
    return [str(p.relative_to(data)) for p in files]


def _days(days: list[date]) -> str:
    return ", ".join(d.isoformat() for d in days)


def _uploaded(upload: w.FileUpload) -> list[tuple[str, bytes]]:
    return [(u["name"], bytes(u["content"])) for u in upload.value]


class InvestigateApp(App):
    """The investigation of notebook 02: a view over :class:`reconkit.investigation.Investigation`
    (``self.model``). Every callback is a method; tests call them directly.

    Parameters
    ----------
    client : Client, optional
        Defaults to :func:`reconkit.session.connect`.
    data : path, optional
        Where settlement files are offered from (default ``data/``); pulled reports are kept in
        its ``reports/`` folder.
    out_dir : path, optional
        Where exports are written (default ``out/`` beside the notebook).
    page_size : int
        Break-table rows per page.
    """

    def __init__(self, client: Client | None = None, *, data: str | Path | None = None,
                 out_dir: str | Path = "out", page_size: int = 25) -> None:
        self.client = client or connect()
        self.data = Path(data) if data is not None else data_dir()
        self.out_dir = Path(out_dir)
        self.model = Investigation(self.client, page_size=page_size)
        self.export_paths: list[Path] = []
        self._shown: ReconResult | None = None  # the result the result views were drawn for
        self._build_widgets()
        self.breaks_panel = BreaksPanel(BreakBook(self.client.ledger))  # carries breaks from run to run
        self.breaks = BreakTable(self.model, self.breaks_panel.book.workflow, self.error)
        self.breaks_panel.on_change = lambda: self.breaks.render() if self.result is not None else None
        self.recorder = RunRecorder(self.model, self.breaks_panel.book, on_change=self._on_recorded)
        # The break table's controls, by the names the app has always given them.
        (self.outcome_filter, self.currency_filter, self.search, self.sort_by, self.descending, self.prev_button,
         self.next_button, self.page_box, self.pick) = self.breaks.controls
        self.page_label, self.table, self.drill = self.breaks.page_label, self.breaks.table, self.breaks.drill
        self._bind()
        self.model.set_parameters(tolerance=self.tolerance.value, grace_days=self.grace.value,
                                  as_of=self.as_of.value)
        self._show_choice()
        self._show_result()
        super().__init__(self._layout())

    # --- the model's state, as earlier versions of the app named it ---------------------------
    result = property(lambda self: self.model.result, doc="The result shown (stale or current).")
    run_id = property(lambda self: self.model.run_id, doc="The shown result's name; exports carry it.")

    # --- 1 · credits ------------------------------------------------------------------
    def _ids(self) -> list[str]:
        ids = parse_ids(self.ids.value)
        if self.ids_upload.value:
            upload = self.ids_upload.value[0]
            frame = pd.read_csv(io.BytesIO(bytes(upload["content"])), dtype=str, keep_default_na=False)
            column = next((c for c in ("credit_id", "id", "request_id") if c in frame.columns), frame.columns[0])
            ids += frame[column].tolist()
        return ids

    @guarded
    def _on_ids(self, _change: Any) -> None:
        self.ids_error.value = ""
        self.model.choose_ids(self._ids())
        self._show_stale()

    @guarded
    def on_credits_file(self, change: dict[str, Any] | None = None) -> None:
        """Read the credits file uploaded (credit JSON, a saved credits frame, or a Business Center
        transaction-search export) in place of any credits fetched; the result built on other
        credits is cleared. A file refused is named with its line and column, and no credits stay."""
        if not self.credits_upload.value:  # cleared (by a fetch): nothing to read
            return
        self._clear_messages()
        self.fetch_status.value = self.failures.value = ""
        upload = self.credits_upload.value[0]
        try:
            read = self.model.use_credits_file(bytes(upload["content"]), name=upload["name"])
        except CreditsFileError as exc:
            self.credits_file_error.value = credits_file_error_html(exc)
            return
        finally:
            self._show_result()
        self.fetch_status.value = credits_file_html(read)
        days = self.model.submission_days()
        if days is not None and not (self.pull_from.value or self.pull_to.value):
            self.pull_from.value, self.pull_to.value = (day.isoformat() for day in days)

    @guarded
    def on_ids_from_ledger(self, _button: Any = None) -> None:
        """Fill the ids box with every credit the ledger holds for this environment."""
        self._clear_messages()
        config = self.client.config  # this sandbox or host, and this merchant: never another's credits
        frame = self.client.ledger.credits(environment=config.ledger_environment, merchant_id=config.merchant_id)
        self.ids.value = "\n".join(frame["credit_id"].dropna().tolist())

    @guarded
    def on_fetch(self, _button: Any = None, *, progress: bool = True) -> None:
        """Fetch the credits (cached in the ledger) and list any failure with its reason; the
        previous fetch's credits and every result built on them are cleared first."""
        self._clear_messages()
        self.fetch_status.value = self.failures.value = ""
        self.fetch_progress.clear_output()
        self.fetch_button.disabled = True
        self.credits_upload.value = ()  # fetched credits replace a credits file read before
        try:
            with self.fetch_progress:
                result = self.model.fetch(self._ids(), progress=progress)
        finally:
            self.fetch_button.disabled = False
            self._show_result()
        waiting = f"<b>{len(result.not_indexed)}</b> not indexed yet, " if len(result.not_indexed) else ""
        self.fetch_status.value = (f"Fetched <b>{len(result.credits)}</b> credit(s) ({result.from_cache} from the "
                                   f"cache), {waiting}<b>{len(result.failed)}</b> failed.")
        self.failures.value = not_indexed_html(result.not_indexed) + failures_html(result.failed)
        days = self.model.submission_days()
        if days is not None and not (self.pull_from.value or self.pull_to.value):  # the days to pull settlement for
            self.pull_from.value, self.pull_to.value = (day.isoformat() for day in days)

    # --- 2 · settlement ---------------------------------------------------------------
    def _sources(self) -> list[Any]:
        """The chosen settlement: the uploads (name, bytes), else the files chosen in data/."""
        if self.files_upload.value:
            return _uploaded(self.files_upload)
        return [self.data / relative for relative in self.data_files.value]

    def _show_choice(self) -> None:
        names = [u["name"] for u in self.files_upload.value] or list(self.data_files.value)
        where = "uploaded" if self.files_upload.value else "from data/"
        self.chosen.value = (f"Will load ({where}): <b>{escape(', '.join(names))}</b>" if names
                             else "<i>No settlement file chosen: upload files or choose them in data/.</i>")

    @guarded
    def _on_upload(self, change: dict[str, Any]) -> None:
        # An upload replaces the choice in data/ (and a choice in data/ the upload): the two
        # never load together by accident.
        self._one_choice(change, self.data_files)

    @guarded
    def _on_data_files(self, change: dict[str, Any]) -> None:
        self._one_choice(change, self.files_upload)

    def _one_choice(self, change: dict[str, Any], other: w.ValueWidget) -> None:
        if change["new"] and other.value:
            other.value = ()
        self.files_error.value = ""
        self._show_choice()
        self.model.choose_settlement(self._sources())
        self._show_stale()

    @guarded
    def on_load(self, _button: Any = None) -> None:
        """Read exactly the chosen files (the uploads, or else the files chosen in data/), and say
        which were loaded with their formats, row counts and unreadable rows."""
        self._start_settlement()
        try:
            self.model.load(self._sources())
        finally:
            self._show_result()
        self._show_settlement("Loaded")

    def _start_settlement(self) -> None:
        self._clear_messages()
        self.load_status.value = self.read_errors.value = ""

    def _show_settlement(self, verb: str) -> None:
        settlement = self.model.settlement
        assert settlement is not None
        self.load_status.value = loaded_html(self.model.files, len(settlement), verb)
        self.read_errors.value = read_errors_html(self.model.read_failures)

    @guarded
    def on_pull(self, _button: Any = None) -> None:
        """Pull settlement from CyberSource's Reporting API for the days ``from`` to ``to``
        (inclusive) and load the files kept in ``data/reports/``, in place of whatever was loaded."""
        self._start_settlement()
        try:
            first = parse_date(self.pull_from.value, "pull_from", "“from”")
            last = parse_date(self.pull_to.value or self.pull_from.value, "pull_to", "“to”")
            pulled = self.model.pull(first, last, self.data / "reports", source=self.pull_source.value)
        finally:
            self.data_files.options = self._data_files()
            self._show_result()
        self._show_settlement("Pulled from CyberSource")
        # The chooser shows what is loaded: the files pulled (an earlier choice no longer applies).
        self.data_files.value = tuple(p.resolve().relative_to(self.data.resolve()).as_posix() for p in pulled.files)
        if pulled.empty:
            self.load_status.value += f"<div>No settlement on {escape(_days(pulled.empty))}.</div>"
        if pulled.waiting:
            self.load_status.value += (f"<div style='color:#b8860b'><b>CyberSource's report is not ready yet: "
                                       f"{escape(_days(pulled.waiting))}</b> (pull again later).</div>")

    # --- 3 · parameters and reconcile -------------------------------------------------------
    @guarded
    def _on_parameter(self, field: str, change: dict[str, Any]) -> None:
        """A parameter typed: the model parses it (a refusal shows beside its field) and says if stale."""
        errors = {"tolerance": self.tolerance_error, "as_of": self.as_of_error}
        if field in errors:
            errors[field].value = ""
        try:
            self.model.set_parameters(**{field: change["new"]})
        finally:
            self._show_stale()

    @guarded
    def on_reconcile(self, _button: Any = None) -> None:
        """Reconcile, then show the cards, the figures and the first page of breaks, all under a new
        run id, and what recording the run in the break book would do; every view of the previous run
        is cleared first."""
        self._clear_messages()
        try:
            self.model.reconcile()
        except NotReadError as refused:  # nothing on screen changes: a stale result keeps its banner
            for error in refused.fields:
                step = "Fetch" if error.field == "ids" else "Load settlement"
                self.show_error(FieldError(error.field, f"{error}: click {step} first"))
            earlier = " The results shown are still those of the earlier run." if self.result else ""
            raise ValueError(f"Not reconciled: the inputs chosen were not read yet. Click {refused.steps}, then "
                             f"Reconcile.{earlier}") from None
        except FieldError:
            for error in self.model.parameter_errors.values():
                self.show_error(error)
            if self.model.parameter_errors:
                raise ValueError("fix the fields marked in red, then reconcile again") from None
            raise
        finally:
            self._show_result()
        self.recorder.prepare()  # the run is recorded when the analyst confirms its preview

    def _on_recorded(self) -> None:
        """A run was recorded or withdrawn: the book and the table's work status are read again."""
        self.breaks_panel.refresh()
        if self.result is not None:
            self.breaks.render()

    # --- showing the model's state ------------------------------------------------------
    def _show_result(self) -> None:
        """Draw the result views from the model: the new result, or nothing once it is cleared."""
        result = self.model.result
        if result is not self._shown:
            self._shown = result
            self._drop_exports()
            self.figures.clear_output()
            self.export_filtered_button.disabled = self.export_all_button.disabled = result is None
            if result is None:
                self.run_label.value = self.cards.value = ""
            else:
                self._draw_result(result)
            self.breaks.show(result)
        self._show_stale()

    def _show_stale(self) -> None:
        reasons = self.model.stale_reasons
        if reasons or self.model.result is None:
            self.recorder.invalidate(f"{', '.join(reasons)} changed since the reconciliation" if reasons
                                     else "the result was cleared")
        for widget in (self.run_label, self.cards, self.figures, self.table, self.drill):
            (widget.add_class if reasons else widget.remove_class)("reconkit-stale-view")
        if reasons:
            self.stale.value = stale_html(self.run_id or "", reasons)
            self._drop_exports()
        elif self.result is None and self.model.cleared:
            self.stale.value = f"<i>{escape(self.model.cleared)}: reconcile to see results.</i>"
        else:
            self.stale.value = ""

    def _draw_result(self, result: ReconResult) -> None:
        self.run_label.value, self.cards.value = run_html(result, self.run_id or "", self.model.result_files,
                                                          self.model.credits_file)
        with self.figures:
            from IPython.display import Image, display

            display(Image(result.figure_png()))

    # --- export -----------------------------------------------------------------------
    @guarded
    def on_export(self, _button: Any = None) -> None:
        """Write this run's report.html, breaks.xlsx and breaks.csv (every break) and link them."""
        self._export(self.result, "")

    @guarded
    def on_export_filtered(self, _button: Any = None) -> None:
        """Write the filtered view (current filters and order) as CSV and Excel and link them."""
        if self.result is None:
            raise ValueError("reconcile first")
        description = self.model.filter_description({c: LABELS.get(c, "Lines") for c in SHOWN_COLUMNS})
        self._export(FilteredView.of(self.result, self.model.positions(), description), "_filtered")

    def _export(self, result: ReconResult | None, suffix: str) -> None:
        """Write ``result``'s files named with the run id under ``out_dir`` and link them."""
        if result is None or self.run_id is None:
            raise ValueError("reconcile first")
        if self.model.stale:
            raise ValueError("the results are stale: reconcile again before exporting")
        self.error.value = ""
        work = self.breaks_panel.book.workflow(result.breaks)  # each break's status, owner and notes in the book
        self.export_paths = write_exports(result, self.run_id, suffix, self.out_dir, self.export_links, work)

    def _drop_exports(self) -> None:
        self.export_links.value = ""
        self.export_paths = []

    # --- errors -----------------------------------------------------------------------
    def show_error(self, exc: BaseException) -> None:
        """Show an error in words: beside its field when it names one, else above the app."""
        fields = self._field_errors()
        if isinstance(exc, FieldError) and exc.field in fields:
            fields[exc.field].value = _problem(escape(str(exc)))
            self.error.value = ""
        elif isinstance(exc, ApiError):
            words = f"CyberSource answered “{analyst_words(type(exc).__name__)}” (HTTP {exc.http_status})"
            self.error.value = describe_error(exc).replace(
                f"<b>{escape(type(exc).__name__)}</b> (HTTP {exc.http_status})", escape(words))
        else:
            self.error.value = describe_error(exc)

    def _field_errors(self) -> dict[str, w.HTML]:
        return {"ids": self.ids_error, "credits_file": self.credits_file_error, "files": self.files_error,
                "tolerance": self.tolerance_error,
                "as_of": self.as_of_error, "pull_from": self.pull_error, "pull_to": self.pull_error}

    def _clear_messages(self) -> None:
        """Every action starts clean: no message of an earlier action (the app's or the book's) stays."""
        self.error.value = self.breaks_panel.error.value = self.recorder.error.value = ""
        for widget in self._field_errors().values():
            widget.value = ""
        for error in self.model.parameter_errors.values():  # a value still refused stays marked
            self.show_error(error)

    # --- building the screen ------------------------------------------------------------
    def _build_widgets(self) -> None:
        self.banner = ConnectionBanner(self.client.config)
        self.error = w.HTML()
        # 1 · credits
        self.ids = w.Textarea(placeholder="credit ids, one per line (or commas/spaces)", description="Credit ids",
                              layout=w.Layout(width="600px", height="90px"), style=_STYLE)
        self.ids_upload = w.FileUpload(accept=".csv,.txt", multiple=False, description="Ids CSV", layout=_WIDE)
        self.ledger_button = w.Button(description="Ids from ledger", icon="database", layout=_WIDE)
        self.credits_upload = w.FileUpload(accept=",".join(_CREDITS_SUFFIXES), multiple=False,
                                           description="or a credits file", layout=_WIDE)
        self.credits_file_error = w.HTML()
        self.fetch_button = w.Button(description="Fetch", button_style="primary", icon="download")
        self.ids_error, self.fetch_status, self.failures = w.HTML(), w.HTML(), w.HTML()
        self.fetch_progress = w.Output()
        # 2 · settlement
        self.files_upload = w.FileUpload(accept=",".join(_SETTLEMENT_SUFFIXES), multiple=True,
                                         description="Upload settlement files", layout=_WIDE)
        self.data_files = w.SelectMultiple(options=self._data_files(), description="or files in data/",
                                           layout=w.Layout(width="600px", height="110px"), style=_STYLE)
        self.chosen, self.files_error = w.HTML(), w.HTML()
        self.load_button = w.Button(description="Load settlement", icon="file", layout=_WIDE)
        self.pull_from = w.Text(description="Pull from CyberSource: from", placeholder="2026-11-02",
                                style={"description_width": "200px"}, layout=w.Layout(width="330px"))
        self.pull_to = w.Text(description="to", placeholder="2026-11-03", style={"description_width": "30px"},
                              layout=w.Layout(width="160px"))
        self.pull_source = w.Dropdown(options=[("Payment Batch Detail report (daily)", "report"),
                                               ("Purchase and refund details", "details")],
                                      layout=w.Layout(width="280px"))
        self.pull_button = w.Button(description="Pull settlement for these dates", icon="cloud-download",
                                    layout=_WIDE)
        self.pull_error, self.load_status, self.read_errors = w.HTML(), w.HTML(), w.HTML()
        # 3 · parameters
        self.tolerance = w.Text(value="0.00", description="Amount tolerance", style=_STYLE)
        self.grace = w.BoundedIntText(value=3, min=0, max=365, description="Grace days", style=_STYLE)
        self.as_of = w.Text(value=self._default_as_of(), placeholder="now, or 2026-11-05T00:00:00Z",
                            description="As of", style=_STYLE, layout=w.Layout(width="450px"))
        self.tolerance_error, self.as_of_error = w.HTML(), w.HTML()
        self.reconcile_button = w.Button(description="Reconcile", button_style="success", icon="balance-scale")
        # results
        self.run_label, self.stale, self.cards = w.HTML(), w.HTML(), w.HTML()
        self.figures = w.Output()
        self.export_filtered_button = w.Button(description="Export filtered view", icon="filter", layout=_WIDE)
        self.export_all_button = w.Button(description="Export all breaks", icon="save", layout=_WIDE)
        self.export_links = w.HTML()

    def _bind(self) -> None:
        for button, action in ((self.ledger_button, self.on_ids_from_ledger), (self.fetch_button, self.on_fetch),
                               (self.load_button, self.on_load), (self.pull_button, self.on_pull),
                               (self.reconcile_button, self.on_reconcile),
                               (self.export_filtered_button, self.on_export_filtered),
                               (self.export_all_button, self.on_export)):
            button.on_click(action)
        for widget, observer in ((self.files_upload, self._on_upload), (self.data_files, self._on_data_files),
                                 (self.tolerance, functools.partial(self._on_parameter, "tolerance")),
                                 (self.as_of, functools.partial(self._on_parameter, "as_of")),
                                 (self.grace, functools.partial(self._on_parameter, "grace_days")),
                                 (self.ids, self._on_ids), (self.ids_upload, self._on_ids),
                                 (self.credits_upload, self.on_credits_file)):
            widget.observe(observer, names="value")

    def _layout(self) -> list[w.Widget]:
        return [
            self.banner, self.error,
            w.HTML("<h3>1 · Credits</h3>"), self.ids, w.HBox([self.ids_upload, self.ledger_button, self.fetch_button]),
            self.ids_error, w.HBox([self.credits_upload, w.HTML(
                "<i>credit JSON, a saved credits frame (CSV/Parquet) or a Business Center transaction-search "
                "export</i>")]), self.credits_file_error, self.fetch_progress, self.fetch_status, self.failures,
            w.HTML("<h3>2 · Settlement</h3>"), w.HBox([self.files_upload]), self.data_files, self.chosen,
            w.HBox([self.load_button, self.files_error]),
            w.HBox([self.pull_from, self.pull_to, self.pull_source, self.pull_button]), self.pull_error,
            self.load_status, self.read_errors,
            w.HTML("<h3>3 · Reconcile</h3>"), w.HBox([self.tolerance, self.tolerance_error]),
            self.grace, w.HBox([self.as_of, self.as_of_error]), self.reconcile_button,
            self.run_label, self.stale, self.cards, self.figures,
            w.HTML("<h3>Breaks</h3>"), self.breaks,
            w.HBox([self.export_filtered_button, self.export_all_button]), self.export_links,
            w.HTML("<h3>4 · Break book</h3>"), self.recorder, self.breaks_panel,
        ]

    def _default_as_of(self) -> str:
        # Against the embedded sandbox, ages are measured on the sandbox's own clock.
        sandbox = sandbox_for(self.client.config)
        return sandbox.now().isoformat() if sandbox is not None else ""

    def _data_files(self) -> list[str]:
        return settlement_choices(self.data)

    def load_sample(self, fmt: str = "pbdr_csv", *, progress: bool = True) -> ReconResult | None:
        """Run the whole investigation on the shipped sample: its credit ids, one settlement file
        (``fmt``), at the sample's as-of time. Returns the result (also shown in the app)."""
        from ..sandbox.samples import read_manifest

        folder = self.data / "sample"
        manifest = read_manifest(folder)
        entry = next(f for f in manifest["files"] if f["format"] == fmt)
        self.ids.value = "\n".join(pd.read_csv(folder / "credit_ids.csv", dtype=str)["credit_id"])
        self.data_files.options = self._data_files()
        self.data_files.value = (str(Path("sample") / entry["file"]),)
        self.as_of.value = manifest["as_of"]
        self.grace.value = manifest["grace_days"]
        self.on_fetch(progress=progress)
        self.on_load()
        self.on_reconcile()
        if self.recorder.preview is not None and self.recorder.preview.ok:  # the sample is the book's example
            self.recorder.on_record()
        return self.result
