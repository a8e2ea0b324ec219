"""The notebooks, executed headless against a sandbox; no error outputs, no trace of the secret."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from reconkit.sandbox import Sandbox

ROOT = Path(__file__).parents[1]
NOTEBOOKS = ["00_quickstart", "01_issue_test_credits", "02_investigate_refund_discrepancies"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    folder = tmp_path_factory.mktemp("notebooks")
    shutil.copytree(ROOT / "data" / "sample", folder / "data" / "sample")
    (folder / "notebooks").mkdir()
    return folder


def _execute(name: str, folder: Path, env: dict[str, str]) -> nbformat.NotebookNode:
    notebook = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        client = NotebookClient(notebook, timeout=180, kernel_name="python3",
                                resources={"metadata": {"path": str(folder / "notebooks")}})
        client.execute()
        notebook.metadata["widget_state_dump"] = json.dumps(client.widget_state, default=str)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return notebook


def _errors(notebook: nbformat.NotebookNode) -> list[str]:
    return [f"{o.ename}: {o.evalue}" for cell in notebook.cells if cell.cell_type == "code"
            for o in cell.outputs if o.output_type == "error"]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_against_the_embedded_sandbox(workspace, name):
    env = {"RECONKIT_DATA": str(workspace / "data")}
    for key in [k for k in os.environ if k.startswith("CYBERSOURCE_")]:
        env[key] = ""
    notebook = _execute(name, workspace, env)
    assert _errors(notebook) == []
    text = json.dumps(notebook)
    assert "SANDBOX" in text  # the banner (or the client's repr) says where the money goes
    if name == "02_investigate_refund_discrepancies":
        assert "MATCHED" in text and "AMOUNT_MISMATCH" in text
        assert "no, the result is current" in text and "'sha256':" in text  # what the model read, digested


def test_no_output_holds_the_configured_secret(tmp_path):
    """Credentials configured in the environment: the notebooks use them, and never show the secret."""
    workspace = tmp_path / "ws"
    shutil.copytree(ROOT / "data" / "sample", workspace / "data" / "sample")  # a fresh ledger: no cached fetches
    (workspace / "notebooks").mkdir()
    db = tmp_path / "sandbox.sqlite3"
    shutil.copyfile(workspace / "data" / "sample" / "sandbox.sqlite3", db)
    with Sandbox(seed=42, db=str(db)) as sandbox:
        creds = sandbox.credentials
        env = {"RECONKIT_DATA": str(workspace / "data"), "CYBERSOURCE_MERCHANT_ID": creds.merchant_id,
               "CYBERSOURCE_KEY_ID": creds.key_id, "CYBERSOURCE_SECRET_KEY": creds.secret_key,
               "CYBERSOURCE_ENVIRONMENT": sandbox.url}
        texts = []
        for name in ("01_issue_test_credits", "02_investigate_refund_discrepancies"):
            notebook = _execute(name, workspace, env)
            assert _errors(notebook) == []
            texts.append(json.dumps(notebook))
        assert sandbox.count("GET", "get") > 0  # notebook 02 really fetched through the configured credentials
    blob = "\n".join(texts)
    assert creds.merchant_id in blob
    assert creds.secret_key not in blob and creds.secret_key[:12] not in blob
