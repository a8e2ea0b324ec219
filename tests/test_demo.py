"""The demo's entry point, as `make demo` runs it, agrees with the ground truth."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_demo_agrees_with_the_ground_truth_and_writes_the_report(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(ROOT / "data" / "sample", data / "sample")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CYBERSOURCE_")} | {"RECONKIT_DATA": str(data)}
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "reconkit", "demo", "--out", str(out), "--credits", "150"],
                         capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SANDBOX · simulated money" in run.stdout
    assert "(100.0%)" in run.stdout and "MATCHED" in run.stdout
    assert "timing differences, reason SETTLED" in run.stdout and "signed off by bob" in run.stdout
    for name in ("report.html", "breaks.xlsx", "breaks.csv", "figures.png", "truth/ground_truth.csv",
                 "02_investigate_refund_discrepancies.html", "breaks/break_audit.xlsx", "breaks/ledger.sqlite3"):
        assert (out / name).stat().st_size > 0, name
    # breaks.csv has the one form result.to_csv gives every breaks.csv: quoted header, file names, ISO times.
    import csv

    from reconkit.report import BREAK_COLUMNS

    text = (out / "breaks.csv").read_text(encoding="utf-8")
    header = ["credit_status" if name == "status" else name for name in BREAK_COLUMNS]  # the credit's, not the break's
    assert text.splitlines()[0] == ",".join(f'"{name}"' for name in header)
    rows = list(csv.DictReader(text.splitlines()))
    assert rows and all("/" not in row["source_file"] for row in rows)
    assert all(row["submit_time_utc"] == "" or "+00:00" not in row["submit_time_utc"] for row in rows)
    page = (out / "02_investigate_refund_discrepancies.html").read_text()
    assert "AMOUNT_MISMATCH" in page and "Traceback" not in page
    # No warnings: not the kernel's about unencrypted TCP, not Python's, not anyone's.
    assert [line for line in (run.stdout + run.stderr).splitlines() if "warn" in line.lower()] == []
    # It lists every file it wrote, and nothing it did not write.
    listed = run.stdout.split("files written (", 1)[1].splitlines()
    count, listed = int(listed[0].rstrip("):")), [Path(line.strip()) for line in listed[1:] if line.startswith("  ")]
    assert len(listed) == count
    in_out = {p for p in out.rglob("*") if p.is_file()}
    assert {p for p in listed if out in p.parents} == in_out
    assert all(p.is_file() for p in listed)
    assert set(listed) - in_out == {data / "reconkit.sqlite3", data / "sandbox.sqlite3"}  # notebook 02's


def test_the_package_metadata_has_no_deprecated_license_table():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert isinstance(project["project"]["license"], str)  # an SPDX expression, as setuptools >= 77 wants
    assert project["build-system"]["requires"] == ["setuptools>=77"]
