"""Each make target installs what it needs and only what is missing: `make demo` and `make lab` the
library without PySpark or the test tools; `make test` adds both and the SDK's venv. Read from
what `make -n` would run, in a folder holding the project's Makefile and pyproject.toml."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
BASE, DEV, SPARK, SDK = ".venv/.installed", ".venv/.installed-dev", ".venv/.installed-spark", ".venv-sdk/.installed"

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def _would_run(folder: Path, target: str, stamps: tuple[str, ...]) -> str:
    """What ``make -n target`` prints in ``folder`` when exactly ``stamps`` are there (newer than
    pyproject.toml)."""
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, folder / name)
    os.utime(folder / "pyproject.toml", (1_000_000_000, 1_000_000_000))
    for stale in (".venv", ".venv-sdk"):
        shutil.rmtree(folder / stale, ignore_errors=True)
    for when, stamp in enumerate(stamps, start=1):  # each made after the one it depends on, as make leaves them
        (folder / stamp).parent.mkdir(exist_ok=True)
        (folder / stamp).touch()
        os.utime(folder / stamp, (1_000_000_000 + when, 1_000_000_000 + when))
    return subprocess.run(["make", "-n", target], cwd=folder, capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("target", ["demo", "lab"])
def test_demo_and_lab_on_a_fresh_clone_install_the_library_only(tmp_path, target):
    plan = _would_run(tmp_path, target, ())
    assert "-m venv .venv" in plan
    installs = [line for line in plan.splitlines() if "pip install" in line and "--upgrade pip" not in line]
    assert len(installs) == 1 and installs[0].endswith("-e .")  # no [dev], no [spark]


@pytest.mark.parametrize("target", ["demo", "lab"])
def test_demo_and_lab_install_nothing_once_the_library_is_there(tmp_path, target):
    assert "pip" not in _would_run(tmp_path, target, (BASE,))


def test_test_fast_adds_the_test_tools_only(tmp_path):
    plan = _would_run(tmp_path, "test-fast", (BASE,))
    assert "-e '.[dev]'" in plan and "[spark]" not in plan and "-m venv" not in plan


def test_test_adds_what_is_missing_and_nothing_twice(tmp_path):
    plan = _would_run(tmp_path, "test", (BASE, DEV))
    assert "-e '.[spark]'" in plan and "[dev]" not in plan and "venv-sdk" in plan
    everything = _would_run(tmp_path, "test", (BASE, DEV, SPARK, SDK))
    assert "pip" not in everything and "pytest" in everything


def test_spark_env_adds_pyspark_on_top_of_the_library(tmp_path):
    assert "-e '.[spark]'" in _would_run(tmp_path, "spark-env", (BASE,))
    assert "pip" not in _would_run(tmp_path, "spark-env", (BASE, SPARK))


def test_a_changed_pyproject_reinstalls_the_library_and_its_extras(tmp_path):
    _would_run(tmp_path, "test", (BASE, DEV, SPARK, SDK))
    os.utime(tmp_path / "pyproject.toml")  # edited now, after every stamp
    plan = subprocess.run(["make", "-n", "test"], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert "-e .\n" in plan and "-e '.[dev]'" in plan and "-e '.[spark]'" in plan
