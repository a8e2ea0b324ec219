"""Notebooks 01 and 02 in a real JupyterLab, in Debian's Chromium, driven by Playwright; and the
break book worked by two analysts (two kernels, two identities) at laptop screen sizes."""

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
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from reconkit.breakbook_view import SORTS
from reconkit.breaks import BreakBook
from reconkit.outcomes import BREAKS

ROOT = Path(__file__).parents[1]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("RECONKIT_ARTIFACTS", ROOT / "test-artifacts"))
CHECKER = "reconkit-checker"
"""A kernel for a second analyst: the same Python, another identity (``RECONKIT_ANALYST``)."""
ANALYST, SECOND = "ann", "bob"
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
    # Two analysts at two desks: the server's kernels act as ann, the checker kernel as bob.
    spec = root / "jdata" / "kernels" / CHECKER
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Checker (ipykernel)", "language": "python", "env": {"RECONKIT_ANALYST": SECOND}}))
    port, token = _free_port(), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CYBERSOURCE_")}
    env |= {"RECONKIT_ANALYST": ANALYST,"JUPYTER_CONFIG_DIR": str(root / "config"), "JUPYTER_DATA_DIR": str(root / "jdata"),
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
        page.get_by_label("Outcome", exact=True).select_option("AMOUNT_MISMATCH")
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
        page.get_by_label("Outcome", exact=True).select_option("DUPLICATE_SETTLEMENT")
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


OUT_OF_VIEW = """els => {
  const out = [];
  for (const e of els) {
    if (!e.offsetParent) continue;  // not displayed (a confirmation not asked for)
    e.scrollIntoView({block: "center"});
    // Measured with every container scrolled fully left: what a reader sees without scrolling sideways.
    for (let a = e.parentElement; a; a = a.parentElement) a.scrollLeft = 0;
    const r = e.getBoundingClientRect();
    let why = r.width < 1 || r.height < 1 ? "no size" : r.left < 0 || r.right > innerWidth + 0.5 ? "past the window"
      : r.top < 0 || r.bottom > innerHeight + 0.5 ? "above or below the window" : "";
    for (let a = e.parentElement; a && a !== document.body && !why; a = a.parentElement) {
      const s = getComputedStyle(a), box = a.getBoundingClientRect();
      const by = ` by ${a.tagName}.${[...a.classList].join(".")} x ${Math.round(box.left)}-${Math.round(box.right)}`
        + ` y ${Math.round(box.top)}-${Math.round(box.bottom)}`;
      if (s.overflowX !== "visible" && (r.left < box.left - 0.5 || r.right > box.right + 0.5)) why = "cut off sideways" + by;
      if (s.overflowY !== "visible" && (r.top < box.top - 0.5 || r.bottom > box.bottom + 0.5)) why = "cut off" + by;
    }
    if (why) out.push(`${why}: ${e.tagName} ${(e.textContent || e.getAttribute("aria-label") || e.placeholder
      || e.closest(".widget-inline-hbox, .widget-checkbox")?.textContent || "").trim().slice(0, 60)} `
      + `x ${Math.round(r.left)}-${Math.round(r.right)} y ${Math.round(r.top)}-${Math.round(r.bottom)}`);
  }
  return out;
}"""
"""Visible controls that are not wholly in the window once scrolled to vertically, with no container
scrolled sideways (what "no horizontal scrolling" means to a reader)."""
CONTROLS = "button, select, input, textarea"


def _all_in_view(panel: Any) -> None:
    """Every control of the break-book panel lies in the viewport, none of its text cut short."""
    assert panel.locator(CONTROLS).count() > 20
    assert panel.locator(CONTROLS).evaluate_all(OUT_OF_VIEW) == []
    assert panel.locator(".widget-label, .widget-button, .widget-dropdown select").evaluate_all(TRUNCATED) == []


def _idle(page: Any) -> None:
    """Wait until every cell has run and the kernel is idle."""
    from playwright.sync_api import expect

    expect(page.locator(".jp-CodeCell .jp-InputPrompt").filter(has_text=re.compile(r"\[[ *]\]"))).to_have_count(
        0, timeout=180_000)
    expect(page.locator("#jp-main-statusbar")).to_contain_text(re.compile(r"\(ipykernel\) \| Idle"), timeout=60_000)


def _choose(panel: Any, label: str, value: str) -> None:
    """Choose ``value`` in the panel's list ``label`` and wait until the view says it changed."""
    from playwright.sync_api import expect

    summary = panel.locator(".reconkit-book-summary")
    before = summary.inner_text()
    panel.get_by_label(label, exact=True).select_option(value)
    expect(summary).not_to_have_text(before)


def _smallest_missing(root: Path, currency: str) -> tuple[str, str]:
    """(credit id, amount) of the smallest credit of ``currency`` the sample's generator left
    missing from settlement (still within the grace period), from its ground truth and the sandbox."""
    truth = pd.read_csv(root / "data" / "sample" / "pbdr_csv_truth.csv", dtype=str)
    missing = set(truth.loc[(truth["outcome"] == "MISSING_PENDING") & (truth["side"] == "credit"), "credit_id"])
    rows = [(Decimal(a), i) for i, a, c in _credits(root / "data" / "sample" / "sandbox.sqlite3") if i in missing and c == currency]
    amount, credit_id = min(rows)
    return credit_id, f"{amount:,}"


@pytest.mark.timeout(900)
@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 800}, {"width": 1440, "height": 900}],
                         ids=["1280x800", "1440x900"])
def test_two_analysts_work_one_break_from_assign_to_sign_off_by_clicks(lab, viewport):
    from playwright.sync_api import expect

    _base, _token, root = lab
    currency = {1280: "USD", 1440: "EUR"}[viewport["width"]]  # another break at each size
    credit_id, amount = _smallest_missing(root, currency)
    key = f"credit:{credit_id}"
    named = f"{key} · {amount} {currency}"
    size = f"{viewport['width']}x{viewport['height']}"
    expect.set_options(timeout=30_000)  # a click is answered by the kernel: patience on a busy machine
    with _notebook(lab, "02_investigate_refund_discrepancies", viewport) as page:
        panel = page.locator(".reconkit-breakbook")
        recorded = page.locator(".reconkit-record-run .widget-html").filter(has_text="recorded run")
        expect(recorded).to_have_count(1, timeout=180_000)  # the sample cell records its run
        _idle(page)  # clicks are handled once the cells below the app have run
        expect(panel).to_contain_text(f"analyst: {ANALYST}")
        # The smallest breaks are reachable: filter and order the book, the pick follows.
        _choose(panel, "outcome", "MISSING_PENDING")
        _choose(panel, "currency", currency)
        _choose(panel, "order", f"{SORTS['smallest']}, within each currency")
        pick = panel.get_by_label("break", exact=True)
        expect(pick.locator("option").first).to_have_attribute("value", f"{named} · open")  # smallest first
        pick.select_option(f"{named} · open")
        expect(panel.get_by_role("button", name=f"Assign {named}", exact=True)).to_be_enabled()
        _all_in_view(panel)
        panel.get_by_role("button", name=f"Assign {named}", exact=True).click()
        message = panel.locator(".widget-html").filter(has_text=f"{named}: ")
        expect(message).to_contain_text(f"{named}: assigned to {ANALYST} (now investigating")
        panel.get_by_label("note", exact=True).fill("the customer's bank confirms the refund arrived")
        panel.get_by_role("button", name=f"Add note to {named}", exact=True).click()
        expect(message).to_contain_text(f"{named}: note added")
        panel.get_by_label("reason", exact=True).select_option("CUSTOMER_CONFIRMED")
        panel.get_by_role("button", name=f"Resolve {named}", exact=True).click()
        expect(message).to_contain_text(f"{named}: resolved (CUSTOMER_CONFIRMED)")
        # The selection stays on the break resolved, and the next button names that same break.
        expect(pick).to_have_value(f"{named} · resolved (not in this view)")
        sign = panel.get_by_role("button", name=f"Sign off {named}", exact=True)
        sign.click()
        expect(panel.locator(".reconkit-error")).to_contain_text(f"{ANALYST} resolved break {key} and cannot also "
                                                                 "sign it off")
        panel.get_by_role("button", name="Assign all in this view…").click()  # a confirmation, never confirmed
        expect(panel.locator(".reconkit-confirm")).to_be_visible()
        _all_in_view(panel)
        panel.screenshot(path=str(ARTIFACTS / f"breakbook_{size}.png"))
        panel.get_by_role("button", name="Cancel", exact=True).click()
        expect(panel.locator(".reconkit-confirm")).to_have_count(0)
        expect(page.get_by_text("Error displaying widget")).to_have_count(0)

    notebook = {"cells": [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": (
        "from reconkit.breaks import BreakBook\nfrom reconkit.session import data_dir\n"
        "from reconkit.widgets import BreaksPanel\n\nBreaksPanel(BreakBook(data_dir() / 'reconkit.sqlite3'))")}],
        "metadata": {"kernelspec": {"name": CHECKER, "display_name": "Checker (ipykernel)", "language": "python"}},
        "nbformat": 4, "nbformat_minor": 5}
    (root / "notebooks" / "checker.ipynb").write_text(json.dumps(notebook))
    with _notebook(lab, "checker", viewport) as page:
        panel = page.locator(".reconkit-breakbook")
        expect(panel).to_contain_text(f"analyst: {SECOND}", timeout=90_000)
        _idle(page)
        _choose(panel, "show", "closed, awaiting sign-off")
        panel.get_by_label("search", exact=True).fill(credit_id)
        pick = panel.get_by_label("break", exact=True)
        expect(pick).to_have_value(f"{named} · resolved")
        panel.get_by_role("button", name=f"Sign off {named}", exact=True).click()
        expect(panel.locator(".widget-html").filter(has_text=f"{named}: ")).to_contain_text(
            f"{named}: signed off by {SECOND}")
        _all_in_view(panel)
        panel.screenshot(path=str(ARTIFACTS / f"breakbook_checker_{size}.png"))
        expect(page.get_by_text("Error displaying widget")).to_have_count(0)

    expect.set_options(timeout=5_000)
    with BreakBook(root / "data" / "reconkit.sqlite3", analyst="auditor") as book:
        worked = [(e.kind, e.actor) for e in book.events(key) if e.actor != "reconkit"]
        state = book.get(key)
    assert worked == [("assigned", ANALYST), ("noted", ANALYST), ("resolved", ANALYST), ("signed_off", SECOND)]
    assert (state.status, state.reason, state.resolved_by, state.signed_off_by) == (
        "resolved", "CUSTOMER_CONFIRMED", ANALYST, SECOND)
