"""Notebooks 01 and 02 in a real JupyterLab, in Debian's Chromium, driven by Playwright."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from reconkit.outcomes import BREAKS

ROOT = Path(__file__).parents[1]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("RECONKIT_ARTIFACTS", ROOT / "test-artifacts"))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI: `make test` installs it with apt-get")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    root = tmp_path_factory.mktemp("lab")
    shutil.copytree(ROOT / "notebooks", root / "notebooks")
    shutil.copytree(ROOT / "data" / "sample", root / "data" / "sample")
    settings = root / "config" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false",
                                                                          "checkForUpdates": False}))
    port, token = _free_port(), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CYBERSOURCE_")}
    env |= {"JUPYTER_CONFIG_DIR": str(root / "config"), "JUPYTER_DATA_DIR": str(root / "jdata"),
            "JUPYTER_RUNTIME_DIR": str(root / "runtime"), "RECONKIT_DATA": str(root / "data")}
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}", "--port-retries=0",
         "--allow-root", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root / 'notebooks'}",
         "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail("JupyterLab did not start")
            time.sleep(0.3)
    yield base, token, root
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)


def _credits(db: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT id, amount, currency FROM credits").fetchall()


def test_issue_a_credit_by_clicking_in_jupyterlab(lab):
    from playwright.sync_api import expect, sync_playwright

    base, token, root = lab
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_context(viewport={"width": 1400, "height": 2200}).new_page()
        try:
            page.goto(f"{base}/lab/tree/01_issue_test_credits.ipynb?token={token}&reset")
            status = page.locator("#jp-main-statusbar")
            expect(status).to_contain_text(re.compile(r"\(ipykernel\) \| Idle"), timeout=90_000)
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.locator('.lm-Menu li[data-command="runmenu:run-all"]').click()
            issue = page.get_by_role("button", name="Issue credit")
            expect(issue).to_be_visible(timeout=90_000)
            expect(page.locator(".reconkit-banner")).to_contain_text("SANDBOX")
            db = root / "data" / "sandbox.sqlite3"
            before = _credits(db)
            page.get_by_label("Amount", exact=True).fill("12.34")
            page.get_by_label("Currency").select_option("EUR")
            expect(issue).to_be_enabled()
            issue.click()
            # The confirmation names exactly what it will issue, on the button itself.
            confirm = page.get_by_role("button", name="Issue 12.34 EUR", exact=True)
            expect(confirm).to_be_visible()
            expect(page.get_by_text("Issue a credit of 12.34 EUR")).to_be_visible()
            confirm.click()
            result = page.locator(".reconkit-result")
            expect(result).to_contain_text("PENDING", timeout=30_000)
            credit_id = result.locator("code").first.inner_text().strip()
            assert re.fullmatch(r"\d{22}", credit_id)
            expect(page.get_by_text("Error displaying widget")).to_have_count(0)
            page.screenshot(path=str(ARTIFACTS / "notebook01_issued_credit.png"))
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "notebook01_failure.png"))
            raise
        finally:
            browser.close()
    after = _credits(db)
    new = [row for row in after if row not in before]
    assert new == [(credit_id, "12.34", "EUR")]


TRUNCATED = """els => {
  const pen = document.createElement("canvas").getContext("2d");
  const wide = e => {  // a <select> never overflows: measure its chosen text against its box
    if (e.tagName !== "SELECT") return e.scrollWidth > e.clientWidth + 1;
    pen.font = getComputedStyle(e).font;
    const text = e.selectedIndex >= 0 ? e.options[e.selectedIndex].text : "";
    return pen.measureText(text).width > e.clientWidth - 24;
  };
  return els.filter(e => e.offsetParent && wide(e)).map(e => e.tagName === "SELECT" ? e.options[e.selectedIndex].text : e.textContent.trim());
}"""
"""Visible widgets whose text does not fit (what JupyterLab would cut off with an ellipsis)."""


def _get(url: str, token: str) -> bytes:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        return response.read()


def _truth_breaks(truth: pd.DataFrame) -> list[tuple[str, str]]:
    """(outcome, credit id) of every break the sample's generator made."""
    breaks = truth[truth["outcome"].isin(BREAKS)]
    pairs = {(o, c) for o, c, side in zip(breaks["outcome"], breaks["credit_id"], breaks["side"], strict=True)
             if side == "credit"}
    orphans = [(o, "") for o, c, side in zip(breaks["outcome"], breaks["credit_id"], breaks["side"], strict=True)
               if side == "settlement" and pd.isna(c)]
    return sorted([*pairs, *orphans])


def _pairs(frame: pd.DataFrame) -> list[tuple[str, str]]:
    return sorted(zip(frame["outcome"], frame["credit_id"], strict=True))


@contextlib.contextmanager
def _notebook(lab, name: str, viewport: dict[str, int]) -> Iterator[Any]:
    """A page of ``name`` with every cell run, its kernel idle; a screenshot if the test fails."""
    from playwright.sync_api import expect, sync_playwright

    base, token, _root = lab
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_context(viewport=viewport).new_page()
        try:
            page.goto(f"{base}/lab/tree/{name}.ipynb?token={token}&reset")
            expect(page.locator("#jp-main-statusbar")).to_contain_text(re.compile(r"\(ipykernel\) \| Idle"),
                                                                       timeout=90_000)
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.locator('.lm-Menu li[data-command="runmenu:run-all"]').click()
            yield page
        except Exception:
            page.screenshot(path=str(ARTIFACTS / f"{name}_failure.png"))
            raise
        finally:
            browser.close()


def test_investigate_the_sample_and_download_this_runs_breaks(lab):
    from playwright.sync_api import expect

    _base, token, root = lab
    truth = pd.read_csv(root / "data" / "sample" / "pbdr_csv_truth.csv", dtype=str)
    with _notebook(lab, "02_investigate_refund_discrepancies", {"width": 1500, "height": 3400}) as page:
        run = page.locator(".reconkit-run")
        expect(run).to_contain_text("Run", timeout=180_000)  # the sample cell loaded and reconciled
        expect(page.locator(".reconkit-loaded")).to_contain_text("Loaded pbdr_csv.csv")
        first = run.locator("b").inner_text()
        reconcile = page.get_by_role("button", name="Reconcile")
        reconcile.click()  # a new run replaces the sample cell's
        expect(run.locator("b")).not_to_have_text(first, timeout=60_000)
        current = run.locator("b").inner_text()
        page.get_by_label("Outcome").select_option("AMOUNT_MISMATCH")
        expect(page.locator(".jp-OutputArea").get_by_text(re.compile(r"of 1 · \d+ break"))).to_be_visible()
        page.get_by_role("button", name="Export filtered view").click()
        link = page.locator(".reconkit-exports a", has_text=".csv")
        expect(link).to_have_count(1, timeout=60_000)
        href = link.evaluate("a => a.href")  # as the browser resolves it
        assert current in href and href.endswith("_filtered.csv")
        filtered = pd.read_csv(io.BytesIO(_get(href, token)), dtype=str, keep_default_na=False)
        want = [pair for pair in _truth_breaks(truth) if pair[0] == "AMOUNT_MISMATCH"]
        assert want and _pairs(filtered) == want
        page.get_by_role("button", name="Export all breaks").click()
        expect(page.locator(".reconkit-exports")).to_contain_text("all ", timeout=60_000)
        link = page.locator(".reconkit-exports a", has_text=".csv")
        everything = pd.read_csv(io.BytesIO(_get(link.evaluate("a => a.href"), token)), dtype=str,
                                 keep_default_na=False)
        assert _pairs(everything) == _truth_breaks(truth)
        expect(page.get_by_text("Error displaying widget")).to_have_count(0)
        page.get_by_label("Outcome").select_option("DUPLICATE_SETTLEMENT")
        # No label, button or choice is cut short: each shows all of its text.
        cut = page.locator(".widget-label, .widget-upload, .widget-button, .widget-dropdown select").evaluate_all(
            TRUNCATED)
        assert cut == []
        app = page.locator(".widget-vbox").filter(has=page.locator(".reconkit-run")).first
        app.screenshot(path=str(ARTIFACTS / "notebook02_breaks.png"))
        page.get_by_label("Amount tolerance").fill("0,05")
        expect(page.locator(".reconkit-field-error")).to_contain_text("0.05")
        expect(page.locator(".reconkit-stale")).to_contain_text("amount tolerance")
        expect(page.locator(".reconkit-exports")).to_have_count(0)
        app.screenshot(path=str(ARTIFACTS / "notebook02_stale.png"))
