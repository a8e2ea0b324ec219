"""``InvestigateApp``: fetch credits, load settlement files, reconcile, and work through the breaks."""

from __future__ import annotations

import html
import io
import os
import re
from pathlib import Path
from typing import Any

import ipywidgets as w
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..client import Client
from ..credit import Credit
from ..fetch import FetchResult
from ..frames import CURATED_COLUMNS
from ..match import reconcile
from ..outcomes import BREAKS
from ..result import ReconResult
from ..session import connect, data_dir, sandbox_for
from ..settlement import read_settlement
from .common import App, ConnectionBanner, guarded, json_html, table_html

__all__ = ["InvestigateApp"]

_STYLE = {"description_width": "120px"}
_SETTLEMENT_SUFFIXES = (".csv", ".xml", ".json", ".xlsx", ".txt")


class InvestigateApp(App):
    """The investigation of notebook 02. Every callback is a method; tests call them directly.

    Parameters
    ----------
    client : Client, optional
        Defaults to :func:`reconkit.session.connect`.
    data : path, optional
        Where settlement files are offered from (default ``data/``) .
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
        self.ids_upload = w.FileUpload(accept=".csv,.txt", multiple=False, description="Ids CSV")
        self.ledger_button = w.Button(description="Ids from ledger", icon="database")
        self.fetch_button = w.Button(description="Fetch", button_style="primary", icon="download")
        self.fetch_status = w.HTML()
        self.fetch_progress = w.Output()
        self.failures = w.HTML()
        # settlement
        self.files_upload = w.FileUpload(accept=",".join(_SETTLEMENT_SUFFIXES), multiple=True,
                                         description="Settlement files")
        self.data_files = w.SelectMultiple(options=self._data_files(), description="Files in data/",
                                           layout=w.Layout(width="600px", height="110px"), style=_STYLE)
        self.load_button = w.Button(description="Load settlement", icon="file")
        self.load_status = w.HTML()
        self.read_errors = w.HTML()
        # parameters
        self.tolerance = w.Text(value="0.00", description="Amount tolerance", style=_STYLE)
        self.grace = w.BoundedIntText(value=3, min=0, max=365, description="Grace days", style=_STYLE)
        self.as_of = w.Text(value=self._default_as_of(), placeholder="now, or 2026-11-05T00:00:00Z",
                            description="As of", style=_STYLE)
        self.reconcile_button = w.Button(description="Reconcile", button_style="success", icon="balance-scale")
        # results
        self.cards = w.HTML()
        self.figures = w.Output()
        self.outcome_filter = w.Dropdown(description="Outcome", style=_STYLE)
        self.currency_filter = w.Dropdown(description="Currency", style=_STYLE)
        self.search = w.Text(description="Search id", placeholder="credit, reconciliation or request id",
                             style=_STYLE)
        self.prev_button = w.Button(description="◀ Previous")
        self.next_button = w.Button(description="Next ▶")
        self.page_label = w.HTML()
        self.table = w.HTML()
        self.pick = w.Dropdown(description="Drill down", style=_STYLE, layout=w.Layout(width="600px"))
        self.drill = w.HTML()
        self.export_button = w.Button(description="Export", icon="save")
        self.export_links = w.HTML()

        self.credits_frame: pd.DataFrame | None = None
        self.credits_by_id: dict[str, Credit] = {}
        self.fetch_result: FetchResult | None = None
        self.settlement: pd.DataFrame | None = None
        self.read_failures: pd.DataFrame | None = None
        self.result: ReconResult | None = None
        self.page = 0

        self.ledger_button.on_click(self.on_ids_from_ledger)
        self.fetch_button.on_click(self.on_fetch)
        self.load_button.on_click(self.on_load)
        self.reconcile_button.on_click(self.on_reconcile)
        self.prev_button.on_click(self.on_prev)
        self.next_button.on_click(self.on_next)
        self.export_button.on_click(self.on_export)
        for widget in (self.outcome_filter, self.currency_filter, self.search):
            widget.observe(self._on_filter, names="value")
        self.pick.observe(self._on_pick, names="value")

        super().__init__([
            self.banner, self.error,
            w.HTML("<h3>1 · Credits</h3>"), self.ids, w.HBox([self.ids_upload, self.ledger_button, self.fetch_button]),
            self.fetch_progress, self.fetch_status, self.failures,
            w.HTML("<h3>2 · Settlement files</h3>"), w.HBox([self.files_upload]), self.data_files, self.load_button,
            self.load_status, self.read_errors,
            w.HTML("<h3>3 · Reconcile</h3>"), w.HBox([self.tolerance, self.grace, self.as_of]), self.reconcile_button,
            self.cards, self.figures,
            w.HTML("<h3>Breaks</h3>"), w.HBox([self.outcome_filter, self.currency_filter, self.search]),
            w.HBox([self.prev_button, self.page_label, self.next_button]), self.table, self.pick, self.drill,
            w.HBox([self.export_button]), self.export_links,
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

    # --- 1 · credits ------------------------------------------------------------------
    def _ids(self) -> list[str]:
        ids = [t for t in re.split(r"[\s,;]+", self.ids.value) if t]
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
        frame = frame[(frame["environment"] == self.client.config.base_url) & frame["credit_id"].notna()]
        self.ids.value = "\n".join(frame["credit_id"].tolist())

    @guarded
    def on_fetch(self, _button: Any = None, *, progress: bool = True) -> None:
        """Fetch the credits (cached in the ledger) and list any failure with its reason."""
        ids = self._ids()
        if not ids:
            raise ValueError("paste credit ids, upload a CSV of ids, or take them from the ledger first")
        self.error.value = ""
        self.fetch_button.disabled = True
        try:
            self.fetch_progress.clear_output()
            with self.fetch_progress:
                result = self.client.fetch_credits(ids, progress=progress)
        finally:
            self.fetch_button.disabled = False
        self.fetch_result = result
        self.credits_by_id = {c.id: c for c in result.credits}
        self.credits_frame = result.to_frame() if result.credits else None
        self.fetch_status.value = (f"Fetched <b>{len(result.credits)}</b> credit(s) ({result.from_cache} from the "
                                   f"cache), <b>{len(result.failed)}</b> failed.")
        self.failures.value = table_html(result.failed) if len(result.failed) else ""

    # --- 2 · settlement ---------------------------------------------------------------
    @guarded
    def on_load(self, _button: Any = None) -> None:
        """Read the uploaded and chosen files; show formats, row counts and unreadable rows."""
        sources: list[Any] = [bytes(u["content"]) for u in self.files_upload.value]
        names = [u["name"] for u in self.files_upload.value]
        frames, failures = [], []
        for data, name in zip(sources, names, strict=True):
            frame, failed = read_settlement(data, name=name, errors="collect")
            frames.append(frame)
            failures.append(failed)
        for relative in self.data_files.value:
            frame, failed = read_settlement(self.data / relative, errors="collect")
            frames.append(frame)
            failures.append(failed)
        if not frames:
            raise ValueError("upload settlement files or choose some from data/ first")
        self.settlement = pd.concat(frames, ignore_index=True)
        self.read_failures = pd.concat(failures, ignore_index=True)
        counts = self.settlement.groupby(["source_file", "report_format"], observed=True).size().reset_index(
            name="rows")
        counts["source_file"] = counts["source_file"].astype(str).map(lambda p: Path(p).name)
        self.load_status.value = table_html(counts)
        self.read_errors.value = ("<b>Rows that could not be read</b>" + table_html(self.read_failures)
                                  if len(self.read_failures) else "")

    # --- 3 · reconcile ----------------------------------------------------------------
    @guarded
    def on_reconcile(self, _button: Any = None) -> None:
        """Reconcile, then show the cards, the figures and the first page of breaks."""
        if self.credits_frame is None:
            raise ValueError("fetch the credits first (step 1)")
        if self.settlement is None:
            raise ValueError("load settlement files first (step 2)")
        self.error.value = ""
        self.result = reconcile(self.credits_frame, self.settlement, amount_tolerance=self.tolerance.value.strip(),
                                grace_days=self.grace.value, as_of=self.as_of.value.strip() or None,
                                failures=self.read_failures, environment=self.client.config.environment_name)
        # The ledger keeps every run's parameters and counts, so an investigation can be retraced.
        self.client.ledger.record_run(self.result.parameters, self.result.counts())
        self._render_result()

    def _render_result(self) -> None:
        result = self.result
        assert result is not None
        summary = result.summary
        matched = int(summary.loc[summary["outcome"] == "MATCHED", "credits"].sum())
        totals = result.totals()
        card = ("<div style='display:inline-block;border:1px solid #ccc;border-radius:6px;padding:8px 14px;"
                "margin:4px;min-width:120px'><div style='color:#666'>{}</div><div style='font-size:22px'>{}</div>"
                "</div>")
        cards = [card.format("Credits", result.credit_outcomes.num_rows), card.format("Matched", matched),
                 card.format("Breaks", result.break_table.num_rows)]
        cards += [card.format(f"At risk ({html.escape(str(c))})", html.escape(str(v)))
                  for c, v in zip(totals["currency"], totals["amount_at_risk"], strict=True)]
        self.cards.value = "<div class='reconkit-cards'>" + "".join(cards) + "</div>"
        self.figures.clear_output()
        with self.figures:
            from IPython.display import Image, display

            display(Image(result.figure_png()))
        table = result.break_table
        outcomes = sorted(set(pc.unique(table.column("outcome")).to_pylist()) & BREAKS)
        self.outcome_filter.options = ["(all breaks)", *outcomes]
        self.outcome_filter.value = "(all breaks)"
        currencies = sorted(c for c in pc.unique(table.column("currency")).to_pylist() if c is not None)
        self.currency_filter.options = ["(all)", *currencies]
        self.currency_filter.value = "(all)"
        self.page = 0
        self.render_table()

    def _filtered_positions(self) -> np.ndarray:
        """Positions in the result's break table that pass the current filters (Arrow kernels,
        so 100,000 breaks filter without building a pandas frame)."""
        if self.result is None:
            return np.array([], dtype=np.int64)
        table = self.result.break_table
        keep = pa.array(np.ones(table.num_rows, dtype=bool))
        if self.outcome_filter.value and self.outcome_filter.value != "(all breaks)":
            keep = pc.and_(keep, pc.equal(table.column("outcome"), self.outcome_filter.value))
        if self.currency_filter.value and self.currency_filter.value != "(all)":
            keep = pc.and_(keep, pc.equal(table.column("currency"), self.currency_filter.value))
        needle = self.search.value.strip()
        if needle:
            hit = pa.array(np.zeros(table.num_rows, dtype=bool))
            for column in ("credit_id", "reconciliation_id", "request_id"):
                hit = pc.or_(hit, pc.fill_null(pc.match_substring(table.column(column), needle), False))
            keep = pc.and_(keep, hit)
        return np.flatnonzero(np.asarray(pc.fill_null(keep, False).to_numpy(zero_copy_only=False)))

    def filtered_breaks(self) -> pd.DataFrame:
        """The break table under the current filters, by currency and largest amount at risk first."""
        if self.result is None:
            return pd.DataFrame()
        return self.result.breaks_frame(self.result.break_table.take(pa.array(self._filtered_positions())))

    def render_table(self) -> None:
        """Show the current page of filtered breaks (only that page becomes a pandas frame)."""
        assert self.result is not None
        positions = self._filtered_positions()
        pages = max(1, -(-len(positions) // self.page_size))
        self.page = min(max(self.page, 0), pages - 1)
        page = positions[self.page * self.page_size:(self.page + 1) * self.page_size]
        chunk = self.result.breaks_frame(self.result.break_table.take(pa.array(page, pa.int64())))
        columns = ["outcome", "amount_at_risk", "currency", "credit_id", "detail", "reconciliation_id",
                   "settlement_rows", "source_file", "source_line"]
        shown = chunk[columns].copy()
        shown["source_file"] = shown["source_file"].astype("string").map(
            lambda p: Path(p).name if isinstance(p, str) else p)
        self.table.value = table_html(shown, wrap_fifth=True) if len(shown) else "<i>no breaks match</i>"
        self.page_label.value = f"page {self.page + 1} of {pages} · {len(positions)} break(s)"
        self.prev_button.disabled = self.page == 0
        self.next_button.disabled = self.page >= pages - 1
        self.pick.options = [(f"{r.outcome} · {r.credit_id if pd.notna(r.credit_id) else 'no credit'} · "
                              f"{r.amount_at_risk} {r.currency}", int(position))
                             for position, r in zip(page, chunk.itertuples(), strict=True)]

    @guarded
    def _on_filter(self, _change: Any) -> None:
        self.page = 0
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
        and raw JSON) beside its settlement row(s)."""
        if row is None or self.result is None:
            self.drill.value = ""
            return
        item = self.result.breaks_frame(self.result.break_table.slice(row, 1)).iloc[0]
        parts = [f"<h4>{html.escape(str(item['outcome']))}</h4><p>{html.escape(str(item['detail']))}</p>"]
        credit_id = item["credit_id"]
        if pd.notna(credit_id):
            credit = self.result.credits[self.result.credits["credit_id"] == credit_id]
            curated = [c for c in CURATED_COLUMNS if c in credit]
            parts.append("<b>Credit</b>" + table_html(credit[curated].T, header=False, index=True))
            raw = self.credits_by_id.get(str(credit_id))
            if raw is not None:
                parts.append(f"<details><summary>Raw JSON</summary>{json_html(raw.raw)}</details>")
            rows = self.result.settlement[self.result.settlement["credit_id"] == credit_id]
        else:
            rows = self.result.settlement.loc[
                (self.result.settlement["source_file"].astype(str) == str(item.get("source_file")))
                & (self.result.settlement["source_line"] == item.get("source_line"))]
        if len(rows):
            columns = [c for c in ("source_file", "source_line", "reconciliation_id", "request_id",
                                   "transaction_type", "amount", "currency", "batch_date", "outcome") if c in rows]
            parts.append("<b>Settlement row(s)</b>" + table_html(rows[columns]))
        else:
            parts.append("<b>Settlement row(s)</b>: none")
        self.drill.value = "".join(parts)

    # --- export -----------------------------------------------------------------------
    @guarded
    def on_export(self, _button: Any = None) -> None:
        """Write report.html, breaks.xlsx and breaks.csv beside the notebook and link them there:
        Jupyter serves the files (nothing is pushed into the page)."""
        if self.result is None:
            raise ValueError("reconcile first")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        targets = [(self.out_dir / "report.html", self.result.to_html), (self.out_dir / "breaks.xlsx",
                                                                        self.result.to_excel),
                   (self.out_dir / "breaks.csv", self.result.to_csv)]
        for step, (path, write) in enumerate(targets, start=1):
            self.export_links.value = f"Writing {html.escape(path.name)} ({step} of {len(targets)}) …"
            write(path)
        links = []
        for path, _ in targets:
            href = Path(os.path.relpath(path.resolve(), Path.cwd())).as_posix()
            links.append(f"<a href='{html.escape(href)}' download='{html.escape(path.name)}' target='_blank'>"
                         f"{html.escape(path.name)}</a>")
        self.export_links.value = ("Written: " + " · ".join(links) +
                                   f"<br>in <code>{html.escape(str(self.out_dir.resolve()))}</code>")
        self.export_paths = [path for path, _ in targets]
