"""The sample data shipped in ``data/sample/``: a sandbox database of test credits and their
settlement files in every format, each with its ground truth, all from one fixed seed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from .scenario import populate
from .server import Sandbox
from .settlement import FORMATS

__all__ = ["SAMPLE_DISCREPANCIES", "TRANSACTION_SEARCH", "make_samples", "read_manifest"]

SAMPLE_DISCREPANCIES = {"missing": 3, "amount": 3, "currency": 2, "duplicate": 2, "unexpected": 3,
                        "voided_settled": 1, "next_day": 2, "debit_shared_id": 2, "whitespace": 3,
                        "recon_id_missing": 2}
TRANSACTION_SEARCH = "credits_transaction_search.csv"
"""The sample credits as a Business Center transaction-search export (a credits file, not settlement)."""
_START = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)


def make_samples(folder: str | Path, *, seed: int = 42, credits: int = 120) -> dict[str, Any]:
    """(Re)write the sample folder; returns its manifest (also written as ``manifest.json``).

    Each settlement file describes the same credits in a different format: load one at a time.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "sandbox.sqlite3"
    db.unlink(missing_ok=True)
    with Sandbox(start=_START, seed=seed, db=str(db)) as sb:
        scenario = populate(sb, sb.client(), credits, seed=seed, days=3, void_rate=0.06)
        files = []
        for fmt in FORMATS:
            bundle = sb.settlement(format=fmt, discrepancies=SAMPLE_DISCREPANCIES, seed=seed, out_dir=folder,
                                   filename=f"{fmt}.{'xml' if fmt == 'pbdr_xml' else 'csv'}")
            bundle.write_truth(folder / f"{fmt}_truth.csv")
            files.append({"file": bundle.files[0].name, "format": fmt, "truth": f"{fmt}_truth.csv",
                          "outcomes": bundle.outcome_counts()})
        as_of = bundle.as_of
        # The same credits as the analyst's own file would bring them: a Business Center search export.
        sb.transaction_search_export(folder / TRANSACTION_SEARCH)
    pd.DataFrame({"credit_id": scenario.credit_ids}).to_csv(folder / "credit_ids.csv", index=False)
    manifest = {"seed": seed, "credits": credits, "as_of": as_of.isoformat(), "grace_days": 3,
                "discrepancies": SAMPLE_DISCREPANCIES, "files": files, "credits_export": TRANSACTION_SEARCH,
                "note": "Every settlement file describes the same credits in another format: load one at a time."}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest of a sample folder."""
    return json.loads((Path(folder) / "manifest.json").read_text())
