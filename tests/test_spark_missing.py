"""Without the spark extra (the default environment of `make demo` and `make lab`), notebook 03
and reconkit.spark say in one line how to get PySpark instead of a traceback."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from reconkit.errors import MissingExtraError, ReconkitError

ROOT = Path(__file__).parents[1]
HINT = ("MissingExtraError: pyspark is not installed: run `make spark-env` in the reconkit folder "
        "(or `pip install 'reconkit[spark]'`), then restart the kernel")

# The first code cell of notebook 03, run as JupyterLab runs it (an IPython shell), in a child
# Python where `import pyspark` fails as it does when the extra is not installed.
_SHELL = """
import sys
sys.modules["pyspark"] = None
from IPython.core.interactiveshell import InteractiveShell
outcome = InteractiveShell.instance().run_cell(sys.stdin.read())
sys.exit(0 if isinstance(outcome.error_in_exec, ImportError) else 3)
"""


def _first_code_cell(name: str) -> str:
    notebook = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text(encoding="utf-8"))
    return "".join(next(cell for cell in notebook["cells"] if cell["cell_type"] == "code")["source"])


def test_notebook_03_without_pyspark_shows_one_line_naming_the_command():
    run = subprocess.run([sys.executable, "-c", _SHELL], input=_first_code_cell("03_reconcile_at_scale"),
                         capture_output=True, text=True, timeout=120, cwd=ROOT / "notebooks")
    assert run.returncode == 0, run.stdout + run.stderr  # the cell stopped, on the missing PySpark
    shown = [line for line in (run.stdout + run.stderr).splitlines() if line.strip()]
    assert shown == [HINT]  # no traceback, no warning: the one line


def test_local_session_without_pyspark_raises_the_error_of_the_tree(monkeypatch):
    from reconkit.spark import local_session

    for module in ("pyspark", "pyspark.sql"):
        monkeypatch.setitem(sys.modules, module, None)  # as if the extra were not installed
    with pytest.raises(MissingExtraError) as raised:
        local_session()
    error = raised.value
    assert isinstance(error, ReconkitError) and isinstance(error, ImportError)
    assert (error.extra, error.module, error.make_target) == ("spark", "pyspark", "spark-env")
    assert f"{type(error).__name__}: {error}" == HINT
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.extra, copy.make_target) == (str(error), "spark", "spark-env")
