"""``InvestigateApp``: fetch credits, load settlement files, reconcile, and work through the breaks.

Every run (fetch, load, pull, reconcile) replaces or clears what it supersedes: a result is shown
only with the inputs that produced it, and when an input changes afterwards the result is marked
stale and its download links are removed. Reconcile reads nothing itself: it refuses credit ids
or settlement files chosen since the last Fetch or Load, and the break book records the files
(names and SHA-256 of the bytes read) the result was computed from. Exports carry the run id in
their file names; a filtered export's every sheet holds only the breaks its filter selects.
"""

from __future__ import annotations

import dataclasses
import hashlib
import html
import io
import os
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import quote

import ipywidgets as w
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..breaks import BreakBook
from ..client import Client
from ..credit import Credit
from ..errors import ApiError
from ..fetch import FetchResult
from ..frames import CURATED_COLUMNS
from ..match import reconcile
from ..outcomes import BREAKS
from ..report import LABELS
from ..reporting import NoReportDataError, ReportNotReadyError
from ..result import ReconResult
from ..session import connect, data_dir, sandbox_for
from ..settlement import read_settlement, refuse_copies
from .breaks_panel import BreaksPanel
from .common import App, ConnectionBanner, cards_html, describe_error, format_amount, guarded, json_html, table_html
from .filtered import FilteredView

__all__ = ["InvestigateApp", "LoadedFile", "analyst_words", "format_amount", "parse_as_of", "parse_date",
           "parse_ids", "parse_tolerance"]

_STYLE = {"description_width": "150px"}
_WIDE = w.Layout(width="auto")
_SETTLEMENT_SUFFIXES = (".csv", ".xml", ".json", ".xlsx", ".txt")
_ALL_BREAKS, _ALL_CURRENCIES = "(all breaks)", "(all)"
_BY_CURRENCY = "currency, then largest amount at risk"
PBDR_REPORT = "PaymentBatchDetailReport_Daily"
"""The Reporting API report "Pull settlement" downloads, one per day."""

SHOWN_COLUMNS = ("outcome", "amount_at_risk", "currency", "credit_id", "detail", "lines", "source_file",
                 "batch_date", "settlement_rows", "reconciliation_id")
"""The break table's columns in the app, in order (``lines``: every settlement line of the break)."""
_SORT_KEYS = {"amount_at_risk": "amount_sort", "lines": "source_line"}

CREDIT_LABELS = {
    "credit_id": "Credit id", "reconciliation_id": "Reconciliation id", "status": "Status",
    "submit_time_utc": "Submitted (UTC)", "amount": "Amount", "currency": "Currency",
    "reference_code": "Your reference", "transaction_id": "Transaction id",
    "instrument_identifier_id": "Card token (instrument id)", "card_type": "Card type",
    "card_suffix": "Card ends in", "approval_code": "Approval code", "response_code": "Processor response code",
    "payment_account_reference": "Payment account reference", "error_reason": "Error reason",
    "error_message": "Error message", "source": "Read from",
}
"""The drill-down's credit fields in analyst words."""
SOURCE_WORDS = {"self_link": "the credit's own record", "create": "the credit's own record",
                "tss": "Transaction Search (the credit's own record was not available)"}
"""Where a credit was read from, in analyst words (the ``source`` column)."""


# --- inputs: parsed in one place, each error naming its field ------------------------------

class FieldError(ValueError):
    """A field's value cannot be used; ``field`` names it, the message says why in words."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def parse_ids(text: str) -> list[str]:
    """Ids pasted one per line or separated by commas, semicolons or spaces."""
    return [t for t in re.split(r"[\s,;]+", text) if t]


def parse_tolerance(text: str) -> Decimal:
    """The amount tolerance: a non-negative number written with a dot (``0.05``)."""
    value = text.strip()
    if "," in value:
        raise FieldError("tolerance", f"write the tolerance with a dot for decimals, such as "
                                      f"{value.replace(',', '.')!s} (not {value})")
    try:
        amount = Decimal(value or "0")
    except InvalidOperation:
        raise FieldError("tolerance", f"the tolerance must be an amount such as 0.05, not “{value}”") from None
    if not amount.is_finite() or amount < 0:
        raise FieldError("tolerance", f"the tolerance must be zero or a positive amount such as 0.05, not “{value}”")
    return amount


def parse_as_of(text: str) -> datetime | None:
    """The as-of moment (None for now): a date, or a date and time (UTC unless an offset is given)."""
    value = text.strip()
    if value.lower() in ("", "now"):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise FieldError("as_of", f"“{value}” is not a date: write a date and time such as 2026-11-05T00:00:00Z "
                                  "or 2026-11-05, or leave it empty for now") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


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


def served_href(path: Path) -> str:
    """The URL the Jupyter server running this kernel serves ``path`` at: ``<base_url>files/<path
    under its root>``. A link relative to the page would resolve under ``/lab/tree/``, which
    opens JupyterLab instead of the file. Outside Jupyter, the path relative to the working
    directory."""
    target = path.resolve()
    try:
        from jupyter_server.serverapp import list_running_servers

        servers = [s for s in list_running_servers() if target.is_relative_to(Path(s["root_dir"]).resolve())]
    except (ImportError, OSError, KeyError, ValueError):
        servers = []
    if not servers:
        return Path(os.path.relpath(target, Path.cwd())).as_posix()
    # The server that started this kernel is its parent process; else the one rooted nearest the file.
    server = max(servers, key=lambda s: (s.get("pid") == os.getppid(), len(Path(s["root_dir"]).resolve().parts)))
    under = target.relative_to(Path(server["root_dir"]).resolve()).as_posix()
    return f"{server.get('base_url', '/').rstrip('/')}/files/{quote(under)}"


def _file_name(path: Any) -> str:
    return Path(path).name if isinstance(path, str) and path else ""


def _problem(html_text: str) -> str:
    return f"<span class='reconkit-field-error' style='color:#b00020'>{html_text}</span>" if html_text else ""


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _uploads_key(upload: w.FileUpload) -> tuple[tuple[str, str], ...]:
    """Uploaded files by name and content: the same name uploaded again with other bytes differs."""
    return tuple((u["name"], _digest(bytes(u["content"]))) for u in upload.value)


@dataclasses.dataclass(frozen=True)
class LoadedFile:
    """A settlement file as it was read: its name (its path, for a file on disk), its size and
    the SHA-256 of the very bytes read."""

    file: str
    size: int
    sha256: str

    @classmethod
    def read(cls, name: str, data: bytes) -> LoadedFile:
        """The record of ``data`` read under ``name``."""
        return cls(name, len(data), _digest(data))

    def as_input(self) -> dict[str, Any]:
        """What :meth:`reconkit.breaks.BreakBook.record` keeps of it."""
        return {"file": self.file, "bytes": self.size, "sha256": self.sha256}


class InvestigateApp(App):
    """The investigation of notebook 02. Every callback is a method; tests call them directly.

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
        self.page_size = page_size
        self.banner = ConnectionBanner(self.client.config)
        self.error = w.HTML()
        # credits
        self.ids = w.Textarea(placeholder="credit ids, one per line (or commas/spaces)", description="Credit ids",
                              layout=w.Layout(width="600px", height="90px"), style=_STYLE)
        self.ids_upload = w.FileUpload(accept=".csv,.txt", multiple=False, description="Ids CSV", layout=_WIDE)
        self.ledger_button = w.Button(description="Ids from ledger", icon="database", layout=_WIDE)
        self.fetch_button = w.Button(description="Fetch", button_style="primary", icon="download")
        self.ids_error = w.HTML()
        self.fetch_status = w.HTML()
        self.fetch_progress = w.Output()
        self.failures = w.HTML()
        # settlement
        self.files_upload = w.FileUpload(accept=",".join(_SETTLEMENT_SUFFIXES), multiple=True,
                                         description="Upload settlement files", layout=_WIDE)
        self.data_files = w.SelectMultiple(options=self._data_files(), description="or files in data/",
                                           layout=w.Layout(width="600px", height="110px"), style=_STYLE)
        self.chosen = w.HTML()
        self.load_button = w.Button(description="Load settlement", icon="file", layout=_WIDE)
        self.files_error = w.HTML()
        self.pull_from = w.Text(description="Pull from CyberSource: from", placeholder="2026-11-02",
                                style={"description_width": "200px"}, layout=w.Layout(width="330px"))
        self.pull_to = w.Text(description="to", placeholder="2026-11-03", style={"description_width": "30px"},
                              layout=w.Layout(width="160px"))
        self.pull_source = w.Dropdown(options=[("Payment Batch Detail report (daily)", "report"),
                                               ("Purchase and refund details", "details")],
                                      layout=w.Layout(width="280px"))
        self.pull_button = w.Button(description="Pull settlement for these dates", icon="cloud-download",
                                    layout=_WIDE)
        self.pull_error = w.HTML()
        self.load_status = w.HTML()
        self.read_errors = w.HTML()
        # parameters
        self.tolerance = w.Text(value="0.00", description="Amount tolerance", style=_STYLE)
        self.tolerance_error = w.HTML()
        self.grace = w.BoundedIntText(value=3, min=0, max=365, description="Grace days", style=_STYLE)
        self.as_of = w.Text(value=self._default_as_of(), placeholder="now, or 2026-11-05T00:00:00Z",
                            description="As of", style=_STYLE, layout=w.Layout(width="450px"))
        self.as_of_error = w.HTML()
        self.reconcile_button = w.Button(description="Reconcile", button_style="success", icon="balance-scale")
        # results
        self.run_label = w.HTML()
        self.stale = w.HTML()
        self.cards = w.HTML()
        self.figures = w.Output()
        self.outcome_filter = w.Dropdown(description="Outcome", style=_STYLE, layout=w.Layout(width="420px"))
        self.currency_filter = w.Dropdown(description="Currency", style=_STYLE)
        self.search = w.Textarea(description="Search ids", placeholder="credit, reconciliation or request ids "
                                 "(any case; paste a list)", style=_STYLE, layout=w.Layout(width="450px"))
        self.sort_by = w.Dropdown(options=[(_BY_CURRENCY, ""), *((LABELS.get(c, "Lines"), c) for c in SHOWN_COLUMNS)],
                                  value="", description="Sort by", style=_STYLE, layout=w.Layout(width="480px"))
        self.descending = w.Checkbox(value=False, description="descending", indent=False)
        self.prev_button = w.Button(description="◀ Previous")
        self.next_button = w.Button(description="Next ▶")
        self.page_box = w.BoundedIntText(value=1, min=1, max=1, description="Page", style={"description_width": "40px"},
                                         layout=w.Layout(width="130px"))
        self.page_label = w.HTML()
        self.table = w.HTML()
        self.pick = w.Dropdown(description="Drill down", style=_STYLE, layout=w.Layout(width="700px"))
        self.drill = w.HTML()
        self.export_filtered_button = w.Button(description="Export filtered view", icon="filter", layout=_WIDE)
        self.export_all_button = w.Button(description="Export all breaks", icon="save", layout=_WIDE)
        self.export_links = w.HTML()
        self.breaks_panel = BreaksPanel(BreakBook(self.client.ledger))  # carries breaks from run to run
        self.breaks_panel.on_change = lambda: self.render_table() if self.result is not None else None

        self.credits_frame: pd.DataFrame | None = None
        self.credits_by_id: dict[str, Credit] = {}
        self.fetch_result: FetchResult | None = None
        self.settlement: pd.DataFrame | None = None
        self.loaded_files: list[LoadedFile] = []
        """The settlement files loaded (uploaded, chosen in data/ or pulled), as read."""
        self.result_files: list[LoadedFile] = []
        """The settlement files the shown result was computed from."""
        self.read_failures: pd.DataFrame | None = None
        self.result: ReconResult | None = None
        self.run_id: str | None = None
        self.export_paths: list[Path] = []
        self.page = 0
        self._runs = 0
        self._generation = {"credits": 0, "settlement": 0}
        self._result_inputs: dict[str, Any] | None = None
        # What Fetch and Load read, to refuse a Reconcile of inputs chosen since but never read.
        self._fetched_ids: tuple[str, ...] | None = None
        self._loaded_choice: tuple[Any, ...] | None = None
        self._lines: dict[str, str] = {}
        self._setting_page = False

        self.ledger_button.on_click(self.on_ids_from_ledger)
        self.fetch_button.on_click(self.on_fetch)
        self.load_button.on_click(self.on_load)
        self.pull_button.on_click(self.on_pull)
        self.reconcile_button.on_click(self.on_reconcile)
        self.prev_button.on_click(self.on_prev)
        self.next_button.on_click(self.on_next)
        self.export_filtered_button.on_click(self.on_export_filtered)
        self.export_all_button.on_click(self.on_export)
        for widget in (self.outcome_filter, self.currency_filter, self.search, self.sort_by, self.descending):
            widget.observe(self._on_filter, names="value")
        self.page_box.observe(self._on_page_box, names="value")
        self.pick.observe(self._on_pick, names="value")
        self.files_upload.observe(self._on_upload, names="value")
        self.data_files.observe(self._on_data_files, names="value")
        self.tolerance.observe(self._on_tolerance, names="value")
        self.as_of.observe(self._on_as_of, names="value")
        for widget in (self.ids, self.ids_upload, self.grace):
            widget.observe(self._on_input, names="value")
        self._show_choice()
        self._set_result_controls(False)

        super().__init__([
            self.banner, self.error,
            w.HTML("<h3>1 · Credits</h3>"), self.ids, w.HBox([self.ids_upload, self.ledger_button, self.fetch_button]),
            self.ids_error, self.fetch_progress, self.fetch_status, self.failures,
            w.HTML("<h3>2 · Settlement</h3>"), w.HBox([self.files_upload]), self.data_files, self.chosen,
            w.HBox([self.load_button, self.files_error]),
            w.HBox([self.pull_from, self.pull_to, self.pull_source, self.pull_button]), self.pull_error,
            self.load_status, self.read_errors,
            w.HTML("<h3>3 · Reconcile</h3>"), w.HBox([self.tolerance, self.tolerance_error]),
            self.grace, w.HBox([self.as_of, self.as_of_error]), self.reconcile_button,
            self.run_label, self.stale, self.cards, self.figures,
            w.HTML("<h3>Breaks</h3>"), w.HBox([self.outcome_filter, self.currency_filter]), self.search,
            w.HBox([self.sort_by, self.descending]),
            w.HBox([self.prev_button, self.page_box, self.page_label, self.next_button]), self.table, self.pick,
            self.drill, w.HBox([self.export_filtered_button, self.export_all_button]), self.export_links,
            w.HTML("<h3>4 · Break book</h3>"), self.breaks_panel,
        ])

    def _default_as_of(self) -> str:
        # Against the embedded sandbox, ages are measured on the sandbox's own clock.
        sandbox = sandbox_for(self.client.config)
        return sandbox.now().isoformat() if sandbox is not None else ""

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
        return self.result

    def _data_files(self) -> list[str]:
        if not self.data.is_dir():
            return []
        files = [p for p in sorted(self.data.rglob("*")) if p.suffix.lower() in _SETTLEMENT_SUFFIXES
                 and p.is_file() and "truth" not in p.name and p.name not in ("credit_ids.csv", "manifest.json")]
        return [str(p.relative_to(self.data)) for p in files]

    def show_error(self, exc: BaseException) -> None:
        """Show an error in words: beside its field when it names one, else above the app."""
        if isinstance(exc, FieldError):
            self._field_errors()[exc.field].value = _problem(html.escape(str(exc)))
            self.error.value = ""
        elif isinstance(exc, ApiError):
            words = f"CyberSource answered “{analyst_words(type(exc).__name__)}” (HTTP {exc.http_status})"
            self.error.value = describe_error(exc).replace(
                f"<b>{html.escape(type(exc).__name__)}</b> (HTTP {exc.http_status})", html.escape(words))
        else:
            self.error.value = describe_error(exc)

    def _field_errors(self) -> dict[str, w.HTML]:
        return {"ids": self.ids_error, "files": self.files_error, "tolerance": self.tolerance_error,
                "as_of": self.as_of_error, "pull_from": self.pull_error, "pull_to": self.pull_error}

    def _clear_messages(self) -> None:
        self.error.value = ""
        for widget in self._field_errors().values():
            widget.value = ""

    # --- what the result was computed from, and when it goes stale ----------------------------
    def _inputs(self) -> dict[str, Any]:
        return {"credits fetched": self._generation["credits"], "settlement loaded": self._generation["settlement"],
                "credit ids": (self.ids.value, _uploads_key(self.ids_upload)),
                "settlement files": self._choice_key(),
                "amount tolerance": self.tolerance.value.strip(), "grace days": self.grace.value,
                "as of": self.as_of.value.strip()}

    def _check_stale(self) -> None:
        """Mark the shown result stale (and remove its downloads) once an input differs from its run's."""
        if self.result is None or self._result_inputs is None:
            return
        now = self._inputs()
        changed = [name for name, value in self._result_inputs.items() if now[name] != value]
        self._grey_out(bool(changed))
        if not changed:
            self.stale.value = ""
            return
        self.stale.value = (
            "<style>.reconkit-stale-view{opacity:.45}</style>"
            "<div class='reconkit-stale' style='background:#fff3cd;border-left:4px solid #b8860b;padding:4px 8px'>"
            f"<b>Stale:</b> these results are from run {html.escape(self.run_id or '')}; since then "
            f"{html.escape(', '.join(changed))} changed. Reconcile again to see current results.</div>")
        self._drop_exports()

    def _grey_out(self, stale: bool) -> None:
        for widget in (self.run_label, self.cards, self.figures, self.table, self.drill):
            (widget.add_class if stale else widget.remove_class)("reconkit-stale-view")

    def _drop_exports(self) -> None:
        self.export_links.value = ""
        self.export_paths = []

    def _clear_results(self, why: str) -> None:
        """Remove every view of the previous result: cards, figures, table, drill-down and downloads."""
        if self.result is not None:
            self.stale.value = f"<i>{html.escape(why)}: reconcile to see results.</i>"
        self.result = None
        self._result_inputs = None
        self.run_id = None
        self.run_label.value = ""
        self.cards.value = ""
        self.figures.clear_output()
        self.table.value = ""
        self.page_label.value = ""
        self.pick.options = []
        self.drill.value = ""
        self._drop_exports()
        self._grey_out(False)
        self._set_result_controls(False)

    def _set_result_controls(self, enabled: bool) -> None:
        for widget in (self.outcome_filter, self.currency_filter, self.search, self.sort_by, self.descending,
                       self.prev_button, self.next_button, self.page_box, self.pick, self.export_filtered_button,
                       self.export_all_button):
            widget.disabled = not enabled

    @guarded
    def _on_input(self, _change: Any) -> None:
        self._check_stale()

    @guarded
    def _on_tolerance(self, _change: Any) -> None:
        self.tolerance_error.value = ""
        self._check_stale()
        parse_tolerance(self.tolerance.value)

    @guarded
    def _on_as_of(self, _change: Any) -> None:
        self.as_of_error.value = ""
        self._check_stale()
        parse_as_of(self.as_of.value)

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
    def on_ids_from_ledger(self, _button: Any = None) -> None:
        """Fill the ids box with every credit the ledger holds for this environment."""
        frame = self.client.ledger.credits()
        frame = frame[(frame["environment"] == self.client.config.ledger_environment) & frame["credit_id"].notna()]
        self.ids.value = "\n".join(frame["credit_id"].tolist())

    @guarded
    def on_fetch(self, _button: Any = None, *, progress: bool = True) -> None:
        """Fetch the credits (cached in the ledger) and list any failure with its reason; the
        previous fetch's credits and every result built on them are cleared first."""
        self._clear_messages()
        self.fetch_status.value = self.failures.value = ""
        self.fetch_progress.clear_output()
        self.credits_frame, self.credits_by_id, self.fetch_result = None, {}, None
        self._fetched_ids = None
        self._generation["credits"] += 1
        self._clear_results("the credits were fetched again")
        ids = self._ids()
        if not ids:
            raise FieldError("ids", "paste credit ids, upload a CSV of ids, or take them from the ledger first")
        self._fetched_ids = tuple(ids)
        self.fetch_button.disabled = True
        try:
            with self.fetch_progress:
                result = self.client.fetch_credits(ids, progress=progress)
        finally:
            self.fetch_button.disabled = False
        self.fetch_result = result
        self.credits_by_id = {c.id: c for c in result.credits}
        self.credits_frame = result.to_frame() if result.credits else None
        self.fetch_status.value = (f"Fetched <b>{len(result.credits)}</b> credit(s) ({result.from_cache} from the "
                                   f"cache), <b>{len(result.failed)}</b> failed.")
        if len(result.failed):
            failed = pd.DataFrame({
                "Credit id": result.failed["id"],
                "Problem": result.failed["error"].astype(str).map(analyst_words),
                "HTTP status": result.failed["http_status"].astype("Int64"),
                "CyberSource's reason": result.failed["reason"], "Message": result.failed["message"],
                "Attempts": result.failed["attempts"].astype("Int64")})
            self.failures.value = "<b>Credits that could not be fetched</b>" + table_html(failed)
        self._default_pull_dates()

    def _default_pull_dates(self) -> None:
        """Offer the fetched credits' submission days as the dates to pull settlement for."""
        if self.credits_frame is None or self.pull_from.value or self.pull_to.value:
            return
        submitted = pd.to_datetime(self.credits_frame["submit_time_utc"], utc=True).dropna()
        if len(submitted):
            self.pull_from.value = submitted.min().date().isoformat()
            self.pull_to.value = submitted.max().date().isoformat()

    # --- 2 · settlement ---------------------------------------------------------------
    def _choice(self) -> list[str]:
        uploads = [u["name"] for u in self.files_upload.value]
        return uploads if uploads else list(self.data_files.value)

    def _choice_key(self) -> tuple[Any, ...]:
        """The chosen settlement files: uploads by name and content, or the files chosen in data/."""
        if self.files_upload.value:
            return ("uploaded", _uploads_key(self.files_upload))
        return ("data/", tuple(self.data_files.value))

    def _show_choice(self) -> None:
        names = self._choice()
        where = "uploaded" if self.files_upload.value else "from data/"
        self.chosen.value = (f"Will load ({where}): <b>{html.escape(', '.join(names))}</b>" if names
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
        self._check_stale()

    def _replace_settlement(self, why: str) -> None:
        self._clear_messages()
        self.load_status.value = self.read_errors.value = ""
        self.settlement, self.read_failures, self.loaded_files = None, None, []
        self._loaded_choice = None
        self._generation["settlement"] += 1
        self._clear_results(why)

    @guarded
    def on_load(self, _button: Any = None) -> None:
        """Read exactly the chosen files (the uploads, or else the files chosen in data/), and say
        which were loaded with their formats, row counts and unreadable rows."""
        self._replace_settlement("other settlement was loaded")
        choice = self._choice_key()
        if self.files_upload.value:
            sources = [(u["name"], bytes(u["content"])) for u in self.files_upload.value]
        else:
            sources = [(str(self.data / relative), (self.data / relative).read_bytes())
                       for relative in self.data_files.value]
        if not sources:
            raise FieldError("files", "upload settlement files or choose some in data/ first")
        refuse_copies(sources)  # a file uploaded twice, under any name, would count its rows twice
        frames, failures = [], []
        for name, data in sources:  # read from the bytes digested: the record is of what was read
            frame, failed = read_settlement(data, name=name, errors="collect")
            frames.append(frame)
            failures.append(failed)
        self._show_settlement(frames, failures, [LoadedFile.read(name, data) for name, data in sources], "Loaded")
        self._loaded_choice = choice

    def _show_settlement(self, frames: list[pd.DataFrame], failures: list[pd.DataFrame], files: list[LoadedFile],
                         verb: str) -> None:
        self.settlement = pd.concat(frames, ignore_index=True)
        self.read_failures = pd.concat(failures, ignore_index=True) if failures else None
        self.loaded_files = files
        names = [f.file for f in files]
        unread = 0 if self.read_failures is None else len(self.read_failures)
        counts = pd.DataFrame({"File": [Path(n).name for n in names],
                               "Format": [str(f["report_format"].iloc[0]) if len(f) else "" for f in frames],
                               "Rows read": [len(f) for f in frames],
                               "Rows unreadable": [len(f) for f in failures] if failures else 0,
                               "SHA-256": [f.sha256[:12] for f in files]})
        self.load_status.value = (
            f"<div class='reconkit-loaded'>{verb} <b>{html.escape(', '.join(Path(n).name for n in names))}</b>, "
            f"{len(self.settlement):,} row(s)" + (f", {unread:,} unreadable" if unread else "") + "</div>"
            + table_html(counts))
        if unread:
            failed = self.read_failures.copy()
            failed["source_file"] = failed["source_file"].map(_file_name)
            failed["source_line"] = failed["source_line"].astype("Int64")
            failed = failed.rename(columns={"source_file": "File", "source_line": "Line", "column": "Column",
                                            "value": "Value", "reason": "Problem",
                                            "reconciliation_id": "Reconciliation id", "request_id": "Request id"})
            self.read_errors.value = ("<b>Rows that could not be read</b> (reconciled as unreadable "
                                      "settlement breaks)" + table_html(failed))

    @guarded
    def on_pull(self, _button: Any = None) -> None:
        """Pull settlement from CyberSource's Reporting API for the days ``from`` to ``to``
        (inclusive) and load it, in place of whatever was loaded. The files are kept in
        ``data/reports/``."""
        self._replace_settlement("settlement was pulled from CyberSource")
        first = parse_date(self.pull_from.value, "pull_from", "“from”")
        last = parse_date(self.pull_to.value or self.pull_from.value, "pull_to", "“to”")
        if last < first:
            raise FieldError("pull_to", f"“to” ({last}) is before “from” ({first})")
        folder = self.data / "reports"
        frames, empty, waiting = [], [], []
        if self.pull_source.value == "report":
            day = first
            while day <= last:
                # A daily report is dated the day after the day it covers (its end date).
                try:
                    frames.append(self.client.download_report(PBDR_REPORT, day + timedelta(days=1), "csv",
                                                              data_dir=folder))
                except NoReportDataError:
                    empty.append(day.isoformat())
                except ReportNotReadyError:
                    waiting.append(day.isoformat())
                day += timedelta(days=1)
        else:
            start = datetime.combine(first, datetime.min.time(), tzinfo=UTC)
            frames.append(self.client.purchase_refund_details(start, start + timedelta(days=(last - first).days + 1),
                                                              data_dir=folder))
        self.data_files.options = self._data_files()
        if not frames:
            why = "its reports are not ready yet" if waiting else "it has none"
            raise FieldError("pull_from", f"CyberSource has no settlement for {first} to {last}: {why}")
        # One frame per file kept (a details pull pages over several), each recorded as saved.
        per_file = [part for frame in frames for _, part in frame.groupby("source_file", sort=False, observed=True)]
        paths = [Path(str(part["source_file"].iloc[0])) for part in per_file]
        self._show_settlement(per_file, [], [LoadedFile.read(str(p), p.read_bytes()) for p in paths],
                              "Pulled from CyberSource")
        # The chooser shows what is loaded: the files pulled (an earlier choice no longer applies).
        self.data_files.value = tuple(p.resolve().relative_to(self.data.resolve()).as_posix() for p in paths)
        self._loaded_choice = self._choice_key()
        if empty:
            self.load_status.value += f"<div>No settlement on {html.escape(', '.join(empty))}.</div>"
        if waiting:
            self.load_status.value += (f"<div style='color:#b8860b'><b>CyberSource's report is not ready yet: "
                                       f"{html.escape(', '.join(waiting))}</b> (pull again later).</div>")

    # --- 3 · reconcile ----------------------------------------------------------------
    @guarded
    def on_reconcile(self, _button: Any = None) -> None:
        """Reconcile, then show the cards, the figures and the first page of breaks, all under a
        new run id; every view of the previous run is cleared first."""
        self._clear_messages()
        self._refuse_unread_inputs()
        self._clear_results("a new reconciliation was started")
        self.stale.value = ""
        problems = []
        for parse in (lambda: parse_tolerance(self.tolerance.value), lambda: parse_as_of(self.as_of.value)):
            try:
                parse()
            except FieldError as exc:
                self.show_error(exc)
                problems.append(exc.field)
        if problems:
            raise ValueError("fix the fields marked in red, then reconcile again")
        if self.credits_frame is None:
            raise FieldError("ids", "fetch the credits first (step 1)")
        if self.settlement is None:
            raise FieldError("files", "load settlement files first (step 2)")
        inputs = self._inputs()
        result = reconcile(self.credits_frame, self.settlement, amount_tolerance=parse_tolerance(self.tolerance.value),
                           grace_days=self.grace.value, as_of=parse_as_of(self.as_of.value),
                           failures=self.read_failures, environment=self.client.config.environment_name)
        # The ledger keeps every run's parameters and counts, so an investigation can be retraced.
        self.client.ledger.record_run(result.parameters, result.counts())
        self._runs += 1
        self.result, self._result_inputs, self.result_files = result, inputs, list(self.loaded_files)
        self.run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{self._runs}"
        self.breaks_panel.record(result, [f.as_input() for f in self.result_files])
        self._render_result()

    def _refuse_unread_inputs(self) -> None:
        """Refuse to reconcile when the credit ids or settlement files chosen are not the ones
        fetched and loaded: a result is only ever shown for what it was computed from. Nothing on
        screen changes, so a stale result keeps its banner."""
        refusals = []
        if self._fetched_ids is not None and tuple(self._ids()) != self._fetched_ids:
            refusals.append(FieldError("ids", f"these credit ids were not fetched (the last Fetch read "
                                              f"{len(self._fetched_ids):,} id(s)): click Fetch first"))
        if self._loaded_choice is not None and self._choice_key() != self._loaded_choice:
            chosen = ", ".join(Path(n).name for n in self._choice()) or "none"
            loaded = ", ".join(Path(f.file).name for f in self.loaded_files)
            refusals.append(FieldError("files", f"the files chosen ({chosen}) are not the ones loaded ({loaded}): "
                                                "click Load settlement first"))
        if not refusals:
            return
        for refusal in refusals:
            self.show_error(refusal)
        steps = " and ".join(("Fetch" if r.field == "ids" else "Load settlement") for r in refusals)
        raise ValueError(f"Not reconciled: the inputs chosen were not read yet. Click {steps}, then Reconcile."
                         + (" The results shown are still those of the earlier run." if self.result else ""))

    def _render_result(self) -> None:
        result = self.result
        assert result is not None
        summary = result.summary
        matched = int(summary.loc[summary["outcome"] == "MATCHED", "credits"].sum())
        totals = result.totals()
        files = ", ".join(f"{Path(f.file).name} (SHA-256 {f.sha256[:12]})" for f in self.result_files)
        self.run_label.value = (f"<div class='reconkit-run'>Run <b>{html.escape(self.run_id or '')}</b>: "
                                f"{result.credit_outcomes.num_rows:,} credit(s) fetched, settlement "
                                f"{html.escape(files)}, as of {html.escape(str(result.parameters.get('as_of')))}"
                                "</div>")
        self.cards.value = cards_html(
            [("Credits", f"{result.credit_outcomes.num_rows:,}"), ("Matched", f"{matched:,}"),
             ("Breaks", f"{result.break_table.num_rows:,}")]
            + [(f"At risk ({c})", format_amount(v))
               for c, v in zip(totals["currency"], totals["amount_at_risk"], strict=True)])
        self.figures.clear_output()
        with self.figures:
            from IPython.display import Image, display

            display(Image(result.figure_png()))
        table = result.break_table
        self._lines = self._duplicate_lines(result)
        self._set_result_controls(True)
        outcomes = sorted(set(pc.unique(table.column("outcome")).to_pylist()) & BREAKS)
        self.outcome_filter.options = [_ALL_BREAKS, *outcomes]
        self.outcome_filter.value = _ALL_BREAKS
        currencies = sorted(c for c in pc.unique(table.column("currency")).to_pylist() if c is not None)
        self.currency_filter.options = [_ALL_CURRENCIES, *currencies]
        self.currency_filter.value = _ALL_CURRENCIES
        self.page = 0
        self.render_table()

    @staticmethod
    def _duplicate_lines(result: ReconResult) -> dict[str, str]:
        """Every settlement line of each credit break that has more than one row ("75, 76")."""
        table = result.break_table
        several = pc.and_(pc.greater(table.column("settlement_rows"), 1), pc.is_valid(table.column("credit_id")))
        ids = set(table.filter(several).column("credit_id").to_pylist())
        if not ids:
            return {}
        rows = result.settlement[result.settlement["credit_id"].isin(ids)]
        lines: dict[str, str] = {}
        for credit_id, group in rows.groupby("credit_id", observed=True, sort=False):
            lines[str(credit_id)] = ", ".join(str(int(n)) for n in sorted(group["source_line"].dropna()))
        return lines

    # --- the break table: filter, search, sort, page ------------------------------------
    def _filtered_positions(self) -> np.ndarray:
        """Positions in the result's break table that pass the current filters, in the chosen
        order (Arrow kernels, so 100,000 breaks filter without building a pandas frame)."""
        if self.result is None:
            return np.array([], dtype=np.int64)
        table = self.result.break_table
        keep = pa.array(np.ones(table.num_rows, dtype=bool))
        if self.outcome_filter.value and self.outcome_filter.value != _ALL_BREAKS:
            keep = pc.and_(keep, pc.equal(table.column("outcome"), self.outcome_filter.value))
        if self.currency_filter.value and self.currency_filter.value != _ALL_CURRENCIES:
            keep = pc.and_(keep, pc.equal(table.column("currency"), self.currency_filter.value))
        needles = parse_ids(self.search.value)
        if needles:
            hit = pa.array(np.zeros(table.num_rows, dtype=bool))
            for needle in needles:
                for column in ("credit_id", "reconciliation_id", "request_id"):
                    found = pc.match_substring(table.column(column), needle, ignore_case=True)
                    hit = pc.or_(hit, pc.fill_null(found, False))
            keep = pc.and_(keep, hit)
        positions = np.flatnonzero(np.asarray(pc.fill_null(keep, False).to_numpy(zero_copy_only=False)))
        return positions[self._order(table.take(pa.array(positions, pa.int64())))]

    def _order(self, table: pa.Table) -> np.ndarray:
        """The chosen sort of ``table``'s rows (amounts compared across currencies in major units;
        blanks last)."""
        if not self.sort_by.value:  # the break table's own order
            return np.arange(table.num_rows, dtype=np.int64)
        column = _SORT_KEYS.get(self.sort_by.value, self.sort_by.value)
        if column == "amount_sort":
            digits = np.asarray(table.column("minor_units").to_numpy(zero_copy_only=False), dtype=np.float64)
            key = pc.divide(pc.cast(table.column("amount_at_risk_minor"), pa.float64()), pa.array(10.0 ** digits))
        else:
            key = table.column(column)
        if pa.types.is_dictionary(key.type):  # sentences are stored once per distinct text
            key = pc.cast(key, key.type.value_type)
        if self.sort_by.value == "source_file":
            key = pc.replace_substring_regex(key, r"^.*[\\/]", "")
        order = "descending" if self.descending.value else "ascending"
        keyed = pa.table({"key": key, "row": pa.array(np.arange(table.num_rows, dtype=np.int64))})
        return np.asarray(pc.sort_indices(keyed, sort_keys=[("key", order, "at_end"),
                                                            ("row", "ascending", "at_end")]))

    def filtered_breaks(self) -> pd.DataFrame:
        """The break table under the current filters, in the chosen order."""
        if self.result is None:
            return pd.DataFrame()
        return self.result.breaks_frame(self.result.break_table.take(pa.array(self._filtered_positions(), pa.int64())))

    def shown_frame(self, chunk: pd.DataFrame) -> pd.DataFrame:
        """Break rows as the app shows them: analyst labels, amounts with thousands separators and
        their currency's decimals, integer lines, file names without folders, ISO batch dates."""
        lines = [self._lines.get(str(c), "" if pd.isna(n) else str(int(n)))
                 for c, n in zip(chunk["credit_id"], chunk["source_line"], strict=True)]
        shown = pd.DataFrame({
            "outcome": chunk["outcome"], "amount_at_risk": chunk["amount_at_risk"].map(format_amount),
            "currency": chunk["currency"], "credit_id": chunk["credit_id"], "detail": chunk["detail"],
            "lines": lines, "source_file": chunk["source_file"].map(_file_name),
            "batch_date": chunk["batch_date"].dt.strftime("%Y-%m-%d").fillna(""),
            "settlement_rows": chunk["settlement_rows"].astype("Int64"),
            "reconciliation_id": chunk["reconciliation_id"]})
        shown = shown.rename(columns={c: LABELS.get(c, "Lines") for c in SHOWN_COLUMNS})
        # The break book's status and owner sit beside the reason, where the analyst reads on.
        workflow = self.breaks_panel.book.workflow(chunk).rename(columns={"work_status": "Status", "owner": "Owner"})
        return pd.concat([shown.iloc[:, :5], workflow, shown.iloc[:, 5:]], axis=1)

    def render_table(self) -> None:
        """Show the current page of filtered breaks (only that page becomes a pandas frame)."""
        assert self.result is not None
        positions = self._filtered_positions()
        pages = max(1, -(-len(positions) // self.page_size))
        self.page = min(max(self.page, 0), pages - 1)
        page = positions[self.page * self.page_size:(self.page + 1) * self.page_size]
        chunk = self.result.breaks_frame(self.result.break_table.take(pa.array(page, pa.int64())))
        self.table.value = (table_html(self.shown_frame(chunk), wrap_fifth=True) if len(chunk)
                            else "<i>no breaks match</i>")
        self.page_label.value = f"of {pages} · {len(positions):,} break(s)"
        self._setting_page = True
        try:
            self.page_box.max = pages
            self.page_box.value = self.page + 1
        finally:
            self._setting_page = False
        self.prev_button.disabled = self.page == 0
        self.next_button.disabled = self.page >= pages - 1
        self.pick.options = [(self._pick_label(r), int(position))
                             for position, r in zip(page, chunk.itertuples(), strict=True)]

    def _pick_label(self, row: Any) -> str:
        who = row.credit_id if pd.notna(row.credit_id) else "no credit"
        lines = self._lines.get(str(row.credit_id)) if pd.notna(row.credit_id) else None
        where = (f"lines {lines}" if lines else f"line {int(row.source_line)}" if pd.notna(row.source_line)
                 else "no settlement line")
        return (f"{row.outcome} · {who} · {format_amount(row.amount_at_risk)} {row.currency} · "
                f"{_file_name(row.source_file) or '-'} {where}")

    @guarded
    def _on_filter(self, _change: Any) -> None:
        if self.result is None:
            return
        self.descending.disabled = not self.sort_by.value
        self.page = 0
        self.render_table()

    @guarded
    def _on_page_box(self, change: dict[str, Any]) -> None:
        if self._setting_page or self.result is None:
            return
        self.page = int(change["new"]) - 1
        self.render_table()

    @guarded
    def on_prev(self, _button: Any = None) -> None:
        """Previous page of breaks."""
        self.page -= 1
        self.render_table()

    @guarded
    def on_next(self, _button: Any = None) -> None:
        """Next page of breaks."""
        self.page += 1
        self.render_table()

    @guarded
    def _on_pick(self, change: dict[str, Any]) -> None:
        self.drill_down(change["new"])

    def drill_down(self, row: int | None) -> None:
        """Show a break (``row``: its position in the break table) with its credit (curated fields
        and raw JSON) beside its settlement row(s), each row numbered with its file and line."""
        if row is None or self.result is None:
            self.drill.value = ""
            return
        item = self.result.breaks_frame(self.result.break_table.slice(row, 1)).iloc[0]
        parts = [f"<h4>{html.escape(str(item['outcome']))}</h4><p>{html.escape(str(item['detail']))}</p>"]
        credit_id = item["credit_id"]
        settlement = self.result.settlement
        if pd.notna(credit_id):
            credit = self.result.credits[self.result.credits["credit_id"] == credit_id]
            curated = credit[[c for c in CURATED_COLUMNS if c in credit]].copy()
            if "source" in curated:
                curated["source"] = curated["source"].map(lambda s: SOURCE_WORDS.get(str(s), s))
            if "amount" in curated:
                curated["amount"] = curated["amount"].map(format_amount)
            curated = curated.rename(columns=CREDIT_LABELS)
            parts.append("<b>Credit</b>" + table_html(curated.T, header=False, index=True))
            raw = self.credits_by_id.get(str(credit_id))
            if raw is not None:
                parts.append(f"<details><summary>Credit as CyberSource sent it (JSON)</summary>"
                             f"{json_html(raw.raw)}</details>")
            rows = settlement[settlement["credit_id"] == credit_id]
        else:
            rows = settlement.loc[(settlement["source_file"].astype(str) == str(item.get("source_file")))
                                  & (settlement["source_line"] == item.get("source_line"))]
        if len(rows):
            columns = [c for c in ("source_file", "source_line", "reconciliation_id", "request_id",
                                   "transaction_type", "amount", "currency", "batch_date", "outcome") if c in rows]
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
            parts.append(f"<b>Settlement row</b>: could not be read, {html.escape(_file_name(item['source_file']))} "
                         f"line {int(item['source_line'])}")
        else:
            parts.append("<b>Settlement row(s)</b>: none")
        self.drill.value = "".join(parts)

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
        positions = self._filtered_positions()
        self._export(FilteredView.of(self.result, positions, self.filter_description(len(positions))), "_filtered")

    def filter_description(self, shown: int) -> str:
        """The filters and order in words, for a filtered export's parameters (``shown``: the breaks
        they select)."""
        needles = parse_ids(self.search.value)
        order = (f"{LABELS.get(self.sort_by.value, 'Lines')}, {'descending' if self.descending.value else 'ascending'}"
                 if self.sort_by.value else _BY_CURRENCY)
        assert self.result is not None
        return (f"outcome = {self.outcome_filter.value}; currency = {self.currency_filter.value}; "
                f"search = {', '.join(needles) if needles else '(none)'}; order = {order}; "
                f"{shown:,} of {self.result.break_table.num_rows:,} break(s)")

    def _export(self, result: ReconResult | None, suffix: str) -> None:
        """Write ``result``'s files named with the run id under ``out_dir`` and link them: Jupyter
        serves the files (nothing is pushed into the page). Links of earlier exports are replaced."""
        if result is None or self.run_id is None:
            raise ValueError("reconcile first")
        if self.stale.value:
            raise ValueError("the results are stale: reconcile again before exporting")
        self.error.value = ""
        self._drop_exports()
        run = self.run_id
        self.out_dir.mkdir(parents=True, exist_ok=True)
        targets = [(self.out_dir / f"breaks_{run}{suffix}.csv", result.to_csv),
                   (self.out_dir / f"breaks_{run}{suffix}.xlsx", result.to_excel)]
        if not suffix:
            targets.insert(0, (self.out_dir / f"report_{run}.html", result.to_html))
        for step, (path, write) in enumerate(targets, start=1):
            self.export_links.value = f"Writing {html.escape(path.name)} ({step} of {len(targets)}) …"
            write(path)
        links = []
        for path, _ in targets:
            href = served_href(path)
            links.append(f"<a href='{html.escape(href)}' download='{html.escape(path.name)}' target='_blank' "
                         f"data-run='{html.escape(run)}'>{html.escape(path.name)}</a>")
        what = (f"the filtered view ({result.break_table.num_rows:,} break(s))" if suffix
                else f"all {result.break_table.num_rows:,} break(s)")
        self.export_links.value = (f"<div class='reconkit-exports'>Run {html.escape(run)}, {what}: "
                                   + " · ".join(links) + f"<br>in <code>{html.escape(str(self.out_dir.resolve()))}"
                                   "</code></div>")
        self.export_paths = [path for path, _ in targets]
