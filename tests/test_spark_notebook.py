"""Notebook 03 executed headless on local Spark against the sandbox; its figures are the DuckDB path's."""

from __future__ import annotations

import json
import os

from reconkit.widgets import InvestigateApp

from .test_notebooks import _errors, _execute, workspace  # noqa: F401 - the shared module fixture


def test_reconcile_at_scale_notebook_shows_the_duckdb_paths_breaks(workspace):  # noqa: F811
    env = {"RECONKIT_DATA": str(workspace / "data")}
    for key in [k for k in os.environ if k.startswith("CYBERSOURCE_")]:
        env[key] = ""
    notebook = _execute("03_reconcile_at_scale", workspace, env)
    assert _errors(notebook) == []
    text = json.dumps(notebook)
    expected = InvestigateApp(data=workspace / "data", out_dir=workspace / "out").load_sample("pbdr_csv",
                                                                                              progress=False)
    breaks = expected.break_table.num_rows
    assert "SANDBOX" in text
    shown = json.dumps([cell.get("outputs", []) for cell in notebook.cells])
    assert "FutureWarning" not in shown  # the results are not buried under PySpark's pandas-3 notices
    assert f"Breaks</div><div style='font-size:22px'>{breaks}</div>" in text
    assert f"{breaks} breaks written to out/spark/breaks" in text
    assert (workspace / "notebooks" / "out" / "spark" / "breaks").is_dir()
