"""``make demo`` / ``reconkit demo``: the whole investigation offline against the sandbox, checked
against the generator's ground truth."""

from __future__ import annotations

import os
import sys
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from . import inert
from .investigation import Investigation
from .sandbox import Sandbox
from .sandbox.scenario import populate

__all__ = ["run_demo"]

DISCREPANCIES = {"missing": 0.03, "amount": 0.02, "currency": 0.01, "duplicate": 0.01, "unexpected": 4,
                 "voided_settled": 2, "next_day": 0.02, "debit_shared_id": 2, "whitespace": 0.02,
                 "recon_id_missing": 2}


def _say(text: str) -> None:
    print(text, flush=True)


def run_demo(out_dir: Path = Path("out"), *, credits: int = 300, seed: int = 42, execute_notebook: bool = True,
             notebooks: Path | None = None) -> int:
    """Issue credits in the sandbox, settle them with known discrepancies, fetch them back,
    reconcile, write the reports and compare every outcome with the ground truth.

    Returns 0 when every outcome agrees with the ground truth, 1 otherwise.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    notebooks = notebooks or Path(__file__).resolve().parents[1] / "notebooks"
    data = Path(os.environ.get("RECONKIT_DATA") or notebooks.parent / "data")
    before = _stamps([out_dir, data])
    start = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
    with Sandbox(start=start, seed=seed) as sandbox, tempfile.TemporaryDirectory() as scratch:
        _say(f"SANDBOX · simulated money · {sandbox.url} · merchant {sandbox.credentials.merchant_id}")
        client = sandbox.client(ledger=str(Path(scratch) / "ledger.sqlite3"))
        _say(f"issuing {credits} test credits over 3 sandbox days (declines and voids included) ...")
        scenario = populate(sandbox, client, credits, seed=seed, days=3)
        sandbox.advance(timedelta(hours=6))
        _say(f"  {len(scenario.credit_ids)} issued, {len(scenario.declined)} declined, {len(scenario.voided)} voided; "
             f"batches run: {', '.join(str(d) for d in sandbox.state.batch_dates())}")
        settlement, bundle = _pull_settlement(sandbox, client, out_dir / "settlement", seed)
        (out_dir / "truth").mkdir(exist_ok=True)  # not in settlement/: a glob over it reads exactly the report
        bundle.write_truth(out_dir / "truth" / "ground_truth.csv")
        _say(f"settlement pulled from the Reporting API into {settlement['source_file'].iloc[0]}; injected: "
             + ", ".join(f"{k} {v}" for k, v in bundle.injected.items() if v))
        # The investigation the app and the CLI run: the report's bytes read and digested, the credits
        # fetched back, reconciled at the generator's as-of.
        model = Investigation(client)
        model.load(sorted({str(f) for f in settlement["source_file"].dropna().unique()}))
        fetched = model.fetch(scenario.credit_ids, progress=sys.stderr.isatty())
        _say(f"fetched {len(fetched.credits)} credits back ({len(fetched.failed)} failed)")
        model.set_parameters(as_of=bundle.as_of, grace_days=bundle.grace_days)
        result = model.reconcile()
        credits_frame = model.credits
        assert credits_frame is not None
    _say("")
    _say(result.summary_text())
    _say("")
    # Notebook 02 runs in a kernel of its own (another process) while this one writes the reports and
    # works the break book: the demo takes as long as the longer of the two, not their sum.
    notebook = _start_notebook(out_dir, notebooks, data) if execute_notebook else None
    result.to_html(out_dir / "report.html")
    result.to_excel(out_dir / "breaks.xlsx")
    result.to_csv(out_dir / "breaks.csv")  # the one form every breaks.csv has
    result.plot().savefig(out_dir / "figures.png", dpi=100)
    # The server's text (ids, statuses, currency) is written inert: no cell runs as a formula.
    inert.frame(credits_frame.drop(columns=[c for c in credits_frame.columns if "." in c])).to_csv(
        out_dir / "credits.csv", index=False)
    total = len(bundle.credits_truth) + len(bundle.settlement_truth)
    disagree = bundle.disagreements(result)
    extra = int(disagree["expected"].isna().sum())  # credits or rows of the result the truth does not hold
    agree = total - (len(disagree) - extra)
    _say(f"ground truth: {agree} of {total} outcomes agree ({100 * agree / total:.1f}%)"
         + (f"; {extra} outcome(s) of the reconciliation are not in the truth" if extra else ""))
    if len(disagree):
        _say(disagree.to_string(index=False))
    from .demo_breaks import run_two_days

    _say("")
    run_two_days(out_dir / "breaks", seed=seed, say=_say)
    if notebook is not None:
        _say("")
        if not notebook.done():
            _say("waiting for notebook 02, still executing headless ...")
        written_page = notebook.result()  # its error, if it failed, is raised here
        if written_page is not None:
            _say(f"notebook 02 executed: {written_page}")
    written = _written_since(before, [out_dir, data])
    _say(f"files written ({len(written)}):")
    for path in written:
        _say(f"  {path}")
    return 0 if disagree.empty else 1


def _pull_settlement(sandbox: Sandbox, client: Any, folder: Path, seed: int) -> tuple[Any, Any]:
    """Download the Payment Batch Detail report over every batch date through the Reporting API,
    as an analyst would; returns the settlement frame and the ground truth behind the download."""
    dates = sandbox.state.batch_dates()
    name = "PaymentBatchDetailReport"
    report_date = sandbox.reporting.add_report(name, dates[0], dates[-1], discrepancies=DISCREPANCIES, seed=seed,
                                               captures=3)
    ready = datetime.combine(report_date, datetime.min.time(), tzinfo=UTC) + sandbox.reporting.ready_after
    sandbox.advance(max(ready - sandbox.now(), timedelta(0)))
    settlement = client.download_report(name, report_date, data_dir=folder)
    return settlement, sandbox.reporting.bundle(name, report_date)


# SQLite's side files belong to their database: a write may touch only them.
_SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def _stamps(folders: list[Path]) -> dict[Path, tuple[int, int]]:
    """Every file under ``folders`` with its modification time and size."""
    found: dict[Path, tuple[int, int]] = {}
    for folder in folders:
        for path in folder.rglob("*") if folder.is_dir() else ():
            if path.is_file():
                stat = path.stat()
                found[path] = (stat.st_mtime_ns, stat.st_size)
    return found


def _written_since(before: dict[Path, tuple[int, int]], folders: list[Path]) -> list[Path]:
    """The files under ``folders`` created or changed since ``before`` was taken, a database for its
    side files, sorted."""
    written: set[Path] = set()
    for path, stamp in _stamps(folders).items():
        if before.get(path) != stamp:
            side = next((s for s in _SQLITE_SIDE_FILES if path.name.endswith(s)), None)
            written.add(path.with_name(path.name.removesuffix(side)) if side else path)
    return sorted(p for p in written if p.is_file())


def _start_notebook(out_dir: Path, folder: Path, data: Path) -> Future[Path | None]:
    """Start executing notebook 02 on a thread (its kernel is a process of its own); the future
    gives the HTML page written, or None when the notebook is not there."""
    path = folder / "02_investigate_refund_discrepancies.ipynb"
    if not path.exists():
        _say(f"notebook {path} not found; skipped")
        done: Future[Path | None] = Future()
        done.set_result(None)
        return done
    _say(f"executing {path.name} headless in the background ...")
    runner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="notebook-02")
    try:
        return runner.submit(_run_notebook, path, out_dir, data)
    finally:
        runner.shutdown(wait=False)  # the thread ends with the notebook; the future holds its outcome


def _run_notebook(path: Path, out_dir: Path, data: Path) -> Path:
    """Execute the notebook at ``path`` with ``RECONKIT_DATA`` set to ``data`` and write it as HTML
    into ``out_dir``; returns the page."""
    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    notebook = nbformat.read(path, as_version=4)
    # The kernel gets the data folder in its own environment: this process's stays as it is, since
    # the demo goes on while the notebook runs.
    NotebookClient(notebook, timeout=300, kernel_name="python3", config=_private_kernel_transport(),
                   resources={"metadata": {"path": str(out_dir)}}).execute(
        env={**os.environ, "RECONKIT_DATA": str(data)})
    html, _ = HTMLExporter().from_notebook_node(notebook)
    target = out_dir / path.with_suffix(".html").name
    target.write_text(html, encoding="utf-8")
    return target


def _private_kernel_transport() -> Any:
    """Kernel-manager settings under which the kernel's messages are not plain TCP.

    By default jupyter_client starts the kernel on loopback TCP without encryption, and ipykernel
    warns about it on stderr ("Kernel is running over TCP without encryption"). The manager
    provisions CurveZMQ keys when libzmq has Curve (the python3 kernelspec declares support);
    otherwise the kernel talks over IPC, Unix sockets in Jupyter's private runtime folder.
    """
    import zmq
    from jupyter_client.kernelspec import KernelSpecManager
    from traitlets.config import Config

    declared = KernelSpecManager().get_kernel_spec("python3").metadata.get("supported_encryption") or ()
    config = Config()
    if zmq.has("curve") and "curve" in {str(kind).lower() for kind in declared}:
        config.KernelManager.transport_encryption = "required"
    else:
        config.KernelManager.transport = "ipc"
    return config
