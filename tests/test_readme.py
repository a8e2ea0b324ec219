"""The README runs: every Python block executed in order, its shell examples of the sandbox too,
and what it promises about configuration and git is true."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import reconkit

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")

RUNNER = '''
import json, sys, traceback
blocks = json.load(open(sys.argv[1]))
scope = {"__name__": "__main__"}
for number, (line, code) in enumerate(blocks, start=1):
    try:
        exec(compile(code, f"README.md block {number} (line {line})", "exec"), scope)
    except BaseException:
        traceback.print_exc()
        sys.exit(f"README.md block {number} (line {line}) failed")
'''


def python_blocks(text: str) -> list[tuple[int, str]]:
    """Every ```python block of ``text`` with the line it starts on."""
    return [(text.count("\n", 0, m.start()) + 2, m.group(1)) for m in re.finditer(r"```python\n(.*?)```", text, re.S)]


def shell_command(text: str, start: str) -> list[str]:
    """The README's shell command beginning with ``start`` (continuation lines joined, comment dropped)."""
    match = re.search(re.escape(start) + r"(?:[^\n]*\\\n)*[^\n]*", text)
    assert match, start
    command = match.group(0).replace("\\\n", " ").split("  #")[0]
    words = shlex.split(command)
    assert words[0] == ".venv/bin/reconkit"
    return [sys.executable, "-m", "reconkit", *words[1:]]


def _start_sandbox(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[subprocess.Popen, dict[str, str]]:
    server = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    printed: dict[str, str] = {}
    for line in server.stdout:
        name, sep, value = line.strip().partition("=")
        if sep and name.startswith("CYBERSOURCE_"):
            printed[name] = value.split()[0]
        if line.startswith("Ctrl-C to stop"):
            return server, printed
    server.kill()
    raise AssertionError(f"the sandbox did not start: {server.stderr.read()}")


@pytest.mark.slow
def test_every_python_block_of_the_readme_runs_in_order(tmp_path):
    blocks = python_blocks(README)
    assert len(blocks) >= 5
    shutil.copytree(ROOT / "data" / "sample", tmp_path / "data" / "sample")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CYBERSOURCE_", "RECONKIT_"))}
    # The README begins with `make demo`: its blocks must hold in the folder the demo leaves (out/settlement/
    # with the demo's report, out/truth/ with its ground truth), not only in a clean one.
    demo = subprocess.run([sys.executable, "-m", "reconkit", "demo", "--out", "out", "--credits", "40",
                           "--no-notebook"], cwd=tmp_path, env=env | {"RECONKIT_DATA": str(tmp_path / "data")},
                          capture_output=True, text=True, timeout=600)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert list((tmp_path / "out" / "settlement").glob("*.csv")) and (tmp_path / "out" / "truth").is_dir()
    # What the README's glob read is exactly the files its sandbox wrote (checked after its blocks).
    blocks.append((0, "from pathlib import Path\n"
                      "assert set(frame['source_file'].map(lambda p: Path(p).name)) == "
                      "{Path(f).name for f in bundle.files}, set(frame['source_file'])\n"))
    # As the README says: start `reconkit sandbox` (its first example, keeping its data in out/)
    # and set the variables it prints; then run the blocks in a fresh interpreter.
    serve = shell_command(README, ".venv/bin/reconkit sandbox --port 8765")
    serve[serve.index("--port") + 1] = "0"
    serve += ["--db", "out/sandbox.sqlite3"]
    server, printed = _start_sandbox(serve, tmp_path, env)
    try:
        assert set(printed) == {"CYBERSOURCE_ENVIRONMENT", "CYBERSOURCE_MERCHANT_ID", "CYBERSOURCE_KEY_ID",
                                "CYBERSOURCE_SECRET_KEY"}
        (tmp_path / "blocks.json").write_text(__import__("json").dumps(blocks))
        run = subprocess.run([sys.executable, "-c", RUNNER, "blocks.json"], cwd=tmp_path, env=env | printed,
                             capture_output=True, text=True, timeout=600)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "secret_key='***'" in run.stdout
    assert "YW4tZXhhbXBsZS1ub3Qt" not in run.stdout  # the example secret
    for written in ("out/report.html", "out/breaks.xlsx"):
        assert (tmp_path / written).stat().st_size > 0, written
    # The README's settlement command, as written, on the database the first example kept in out/.
    settle = subprocess.run(shell_command(README, ".venv/bin/reconkit sandbox settlement"), cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert settle.returncode == 0, settle.stderr
    assert "wrote out/settlement/" in settle.stdout and "wrote out/truth/" in settle.stdout
    # The truth is not beside the settlement: the folder holds settlement files only.
    assert all(not p.name.endswith("_truth.csv") for p in (tmp_path / "out" / "settlement").iterdir())
    # Nothing the README runs leaves a database (or anything else) in the working directory's root.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocks.json", "data", "out"]


def test_without_credentials_from_env_points_to_the_sandbox():
    with pytest.raises(reconkit.ConfigError) as caught:
        reconkit.Config.from_env({}, dotenv=None)
    message = str(caught.value)
    assert "CYBERSOURCE_MERCHANT_ID" in message and "sandbox" in message
    assert "reconkit.session.connect()" in message and callable(reconkit.session.connect)


def test_the_sandbox_is_reachable_after_import_reconkit():
    run = subprocess.run([sys.executable, "-c", "import reconkit\nwith reconkit.sandbox.Sandbox() as sb:\n"
                          "    print(sb.client().create_credit('1.00', 'USD', card={'number': '4111111111111111', "
                          "'expiration_month': '12', 'expiration_year': '2031'}).status)"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "PENDING", run.stderr


@pytest.mark.parametrize(("path", "ignored"), [
    ("data/2026-11/PaymentBatchDetailReport.csv", True),
    ("data/my_settlement.csv", True),
    ("data/reconkit.sqlite3", True),
    ("data/sandbox.sqlite3", True),
    ("data/sandbox.sqlite3-wal", True),
    ("data/user/upload.xlsx", True),
    ("data/sample/pbdr_csv.csv", False),
    ("data/sample/a_new_sample.csv", False),
    ("data/sample/sandbox.sqlite3", False),
    (".env", True),
    ("out/report.html", True),
    ("reconkit/match.py", False),
])
def test_gitignore_keeps_exactly_what_the_readme_says(path, ignored):
    assert "Everything in `data/` except `data/sample/` is git-ignored" in README
    check = subprocess.run(["git", "check-ignore", "--no-index", "-q", path], cwd=ROOT, capture_output=True)
    assert check.returncode == (0 if ignored else 1), (path, check.stderr)
