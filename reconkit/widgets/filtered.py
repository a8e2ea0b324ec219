"""The investigation's filtered view as a result of its own, for "Export filtered view": the
breaks the filters select, with a summary and totals computed from exactly those breaks, and
the filter written into its parameters, so every sheet of the export agrees with its Breaks
sheet and says what was left out.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..outcomes import BREAK_ON_CREDIT, Outcome
from ..result import ReconResult
from .common import escape

__all__ = ["FilteredView", "served_href", "write_exports"]


@dataclasses.dataclass(frozen=True)
class FilteredView(ReconResult):
    """A run's breaks under a filter. Its break table, summary and totals hold only the breaks
    selected; ``parameters["filter"]`` says which. ``credit_outcomes`` and
    ``settlement_outcomes`` stay the whole run's (the figures and the HTML report describe a
    run, so the app exports the view as CSV and Excel only)."""

    @classmethod
    def of(cls, result: ReconResult, positions: np.ndarray, description: str) -> FilteredView:
        """The breaks of ``result`` at ``positions`` (in that order), filtered as ``description`` says."""
        fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(ReconResult)}
        fields["break_table"] = result.break_table.take(pa.array(positions, pa.int64()))
        fields["parameters"] = {**result.parameters, "filter": description}
        return cls(**fields)

    @cached_property
    def summary_table(self) -> pa.Table:
        """Per outcome and currency of the selected breaks: the credits they are on, the
        settlement rows they hold, their count and amount at risk (the columns of
        :attr:`ReconResult.summary_table`, every row a break outcome)."""
        table = self.break_table
        key = ["outcome", "currency"]
        on_credit = pc.fill_null(pc.equal(table.column("break_on"), BREAK_ON_CREDIT), False)
        grouped = pa.table({
            "outcome": pc.cast(table.column("outcome"), pa.string()),
            "currency": pc.cast(table.column("currency"), pa.string()),
            "on_credit": pc.cast(on_credit, pa.int64()),
            "settlement_rows": pc.cast(table.column("settlement_rows"), pa.int64()),
            "amount_at_risk_minor": table.column("amount_at_risk_minor"),
            "minor_units": table.column("minor_units"),
        }).group_by(key, use_threads=False).aggregate([
            ("on_credit", "sum"), ("settlement_rows", "sum"), ([], "count_all"), ("amount_at_risk_minor", "sum"),
            ("amount_at_risk_minor", "count", pc.CountOptions(mode="only_null")), ("minor_units", "max")])
        grouped = grouped.rename_columns([*key, "credits", "settlement_rows", "breaks", "amount_at_risk_minor",
                                          "unknown_at_risk", "minor_units"])
        columns = {name: pc.cast(pc.fill_null(grouped.column(name), 0), pa.int64())
                   for name in ("credits", "settlement_rows", "breaks", "amount_at_risk_minor", "unknown_at_risk",
                                "minor_units")}
        outcomes, currencies = grouped.column("outcome").to_pylist(), grouped.column("currency").to_pylist()
        summary = pa.table({"outcome": grouped.column("outcome"), "currency": grouped.column("currency"),
                            "break": pa.array(np.ones(grouped.num_rows, dtype=bool)), **columns})
        # The whole run's summary order: outcomes as the engine ranks them, then currency.
        rank = {o.value: i for i, o in enumerate(Outcome)}
        order = sorted(range(summary.num_rows), key=lambda i: (rank.get(outcomes[i], len(rank)), currencies[i] or ""))
        return summary.take(pa.array(order, pa.int64()))


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


def write_exports(result: ReconResult, run: str, suffix: str, out_dir: Path, links: Any,
                  work: pd.DataFrame | None = None) -> list[Path]:
    """Write ``result``'s files named with ``run`` under ``out_dir`` (``report_<run>.html`` for a
    whole run, ``breaks_<run><suffix>.csv`` and ``.xlsx``, with the book's ``work`` columns when
    given) and link them in the HTML widget ``links``, saying how far it got while writing. Jupyter
    serves the files: nothing is pushed into the page. Returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    targets = [(out_dir / f"breaks_{run}{suffix}.csv", functools.partial(result.to_csv, work=work)),
               (out_dir / f"breaks_{run}{suffix}.xlsx", functools.partial(result.to_excel, work=work))]
    if not suffix:
        targets.insert(0, (out_dir / f"report_{run}.html", result.to_html))
    for step, (path, write) in enumerate(targets, start=1):
        links.value = f"Writing {escape(path.name)} ({step} of {len(targets)}) …"
        write(path)
    anchors = [f"<a href='{escape(served_href(path))}' download='{escape(path.name)}' target='_blank' "
               f"data-run='{escape(run)}'>{escape(path.name)}</a>" for path, _ in targets]
    what = (f"the filtered view ({result.break_table.num_rows:,} break(s))" if suffix
            else f"all {result.break_table.num_rows:,} break(s)")
    links.value = (f"<div class='reconkit-exports'>Run {escape(run)}, {what}: " + " · ".join(anchors)
                   + f"<br>in <code>{escape(str(out_dir.resolve()))}</code></div>")
    return [path for path, _ in targets]
