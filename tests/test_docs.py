"""The README and docs/ run: every Python block is executed, alone or after the block it says it
continues, in a folder where `make demo` has already written its outputs, which no block may
change; the sandbox commands of docs/sandbox.md run as written; what the README promises about
configuration and git is true.

A block runs alone in a fresh interpreter unless its first lines say ``# continues: NAME``, where
``NAME`` is given by an earlier block's ``# block: NAME``; a block and every block continuing it
(directly or not) run in one interpreter, in reading order (README first, then docs/ in the order of the README's "Where to read more").
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import reconkit

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
PAGES = [ROOT / "README.md", *(ROOT / name for name in dict.fromkeys(re.findall(r"\]\((docs/[\w-]+\.md)\)", README.partition("## Where to read more")[2])))]
"""The README, then docs/ in the order of the README's "Where to read more"."""

RUNNER = '''
import json, sys, traceback
blocks = json.load(open(sys.argv[1]))
scope = {"__name__": "__main__"}
for where, code in blocks:
    try:
        exec(compile(code, where, "exec"), scope)
    except BaseException:
        traceback.print_exc()
        sys.exit(f"{where} failed")
'''

SERVED = {"connect-example"}
"""Chains run by the sandbox-command test, with the variables `reconkit sandbox` prints."""


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    code: str

    @property
    def where(self) -> str:
        return f"{self.page} line {self.line}"

    def _marker(self, word: str) -> str | None:
        found = re.search(rf"^# {word}: (\S+)$", self.code, re.M)
        return found.group(1) if found else None

    @property
    def name(self) -> str | None:
        return self._marker("block")

    @property
    def continues(self) -> str | None:
        return self._marker("continues")


def blocks() -> list[Block]:
    """Every ```python block of the README and docs/, in reading order."""
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in re.finditer(r"```python\n(.*?)```", text, re.S):
            found.append(Block(str(page.relative_to(ROOT)), text.count("\n", 0, match.start()) + 2, match.group(1)))
    return found


def chains() -> dict[str, list[Block]]:
    """Each block that runs alone, by its place, with every block that continues it."""
    roots: dict[str, list[Block]] = {}
    chain_of: dict[str, list[Block]] = {}
    for block in blocks():
        chain = chain_of[block.continues] if block.continues else roots.setdefault(block.name or block.where, [])
        chain.append(block)
        if block.name:
            chain_of[block.name] = chain
    return roots


def test_every_block_continues_a_block_named_before_it():
    named: list[str] = []
    for block in blocks():
        assert block.continues is None or block.continues in named, f"{block.where} continues an unknown block"
        if block.name:
            assert block.name not in named, f"{block.where}: the name {block.name} is taken"
            named.append(block.name)
    assert len(blocks()) >= 6 and any(b.page == "README.md" for b in blocks())


def test_the_readme_is_an_analysts_page():
    assert len(README.splitlines()) <= 160
    assert set(PAGES[1:]) == set((ROOT / "docs").glob("*.md")), "every page of docs/ is linked from the README"


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A folder as a user has it after `make demo`: the samples in data/, the demo's outputs in out/."""
    folder = tmp_path_factory.mktemp("docs")
    shutil.copytree(ROOT / "data" / "sample", folder / "data" / "sample")
    env = _clean_env()
    demo = subprocess.run([sys.executable, "-m", "reconkit", "demo", "--out", "out", "--credits", "40",
                           "--no-notebook"], cwd=folder, env=env | {"RECONKIT_DATA": str(folder / "data")},
                          capture_output=True, text=True, timeout=600)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    DEMO_OUTPUTS.update(_digests(folder / "out"))
    return folder


DEMO_OUTPUTS: dict[str, str] = {}
"""What `make demo` wrote into the workspace's out/, by path, with its SHA-256."""


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("CYBERSOURCE_", "RECONKIT_"))}


def _run_chain(chain: list[Block], folder: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = folder / "blocks.json"
    script.write_text(json.dumps([(block.where, block.code) for block in chain]))
    try:
        run = subprocess.run([sys.executable, "-c", RUNNER, str(script)], cwd=folder, env=env, capture_output=True,
                             text=True, timeout=600)
    finally:
        script.unlink()
    assert run.returncode == 0, run.stdout + run.stderr
    after = _digests(folder / "out")
    assert DEMO_OUTPUTS and {k: after.get(k) for k in DEMO_OUTPUTS} == DEMO_OUTPUTS, \
        "a block wrote over make demo's outputs"
    assert {p.name for p in folder.iterdir()} <= {"data", "out"}, "a block left a file in the working directory"
    return run


@pytest.mark.slow
@pytest.mark.timeout(1200)  # the chain through docs/spark.md starts a local Spark session
@pytest.mark.parametrize("root", [name for name in chains() if name not in SERVED])
def test_every_block_runs(root, workspace):
    _run_chain(chains()[root], workspace, _clean_env())


def shell_command(text: str, start: str) -> list[str]:
    """The shell command beginning with ``start`` (continuation lines joined, comment dropped)."""
    match = re.search(re.escape(start) + r"(?:[^\n]*\\\n)*[^\n]*", text)
    assert match, start
    words = shlex.split(match.group(0).replace("\\\n", " ").split("  #")[0])
    assert words[0] == ".venv/bin/reconkit"
    return [sys.executable, "-m", "reconkit", *words[1:]]


@pytest.mark.slow
def test_the_sandbox_commands_run_as_docs_sandbox_md_says(workspace):
    """Start `reconkit sandbox` as written (on a free port), set the variables it prints, run the
    configuration block against it, then write its settlement with the command as written."""
    page = (ROOT / "docs" / "sandbox.md").read_text(encoding="utf-8")
    serve = [*shell_command(page, ".venv/bin/reconkit sandbox --fault"), "--port", "0"]
    env = _clean_env()
    server = subprocess.Popen(serve, cwd=workspace, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        printed: dict[str, str] = {}
        for line in server.stdout:
            name, sep, value = line.strip().partition("=")
            if sep and name.startswith("CYBERSOURCE_"):
                printed[name] = value.split()[0]
            if line.startswith("Ctrl-C to stop"):
                break
        assert set(printed) == {"CYBERSOURCE_ENVIRONMENT", "CYBERSOURCE_MERCHANT_ID", "CYBERSOURCE_KEY_ID",
                                "CYBERSOURCE_SECRET_KEY"}, server.stderr.read() if server.poll() else printed
        for root in SERVED:
            run = _run_chain(chains()[root], workspace, env | printed)
            assert printed["CYBERSOURCE_ENVIRONMENT"] in run.stdout  # the client says where it points
            assert printed["CYBERSOURCE_SECRET_KEY"] not in run.stdout
    finally:
        server.terminate()
        server.wait(timeout=30)
        server.stdout.close()  # else the pipes are left for the garbage collector, which warns
        server.stderr.close()
    settle = subprocess.run(shell_command(page, ".venv/bin/reconkit sandbox settlement"), cwd=workspace, env=env,
                            capture_output=True, text=True, timeout=300)
    assert settle.returncode == 0, settle.stderr
    assert "wrote out/example/cli/settlement/" in settle.stdout and "wrote out/example/cli/truth/" in settle.stdout
    assert all(not p.name.endswith("_truth.csv") for p in (workspace / "out/example/cli/settlement").iterdir())


def test_the_sdk_block_never_prints_the_secret():
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    block = next(b for b in blocks() if b.page == "docs/configuration.md" and "from_sdk_dict" in b.code)
    run = subprocess.run([sys.executable, "-c", block.code], capture_output=True, text=True, timeout=120,
                         env=_clean_env())
    assert run.returncode == 0, run.stderr
    assert "secret_key='***'" in run.stdout and "YW4tZXhhbXBsZS1ub3Qt" not in run.stdout
    assert "YW4tZXhhbXBsZS1ub3Qt" in page  # the example secret is in the block, and not printed


def test_without_credentials_from_env_points_to_the_sandbox():
    with pytest.raises(reconkit.ConfigError) as caught:
        reconkit.Config.from_env({}, dotenv=None)
    message = str(caught.value)
    assert "CYBERSOURCE_MERCHANT_ID" in message and "sandbox" in message
    assert "reconkit.session.connect()" in message and callable(reconkit.session.connect)


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
