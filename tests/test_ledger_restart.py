"""Kernel restarts: the embedded sandbox comes up on a new port each time, and the ledger views must
still show every credit, every unknown outcome and its lookup. Each kernel is a separate Python
process over one data folder (one ledger file, one sandbox database), as Restart & Run All makes it.
The truth is read from the two SQLite files directly."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconkit import Client, DuplicateReferenceError
from reconkit.ledger import Ledger
from reconkit.sandbox import Sandbox
from reconkit.session import adopt_port_keyed_rows

from .conftest import CARD, START
from .test_issue_app import table

ROOT = Path(__file__).parents[1]
AMOUNTS = ["10.00", "20.00", "5040.00", "30.00"]  # 5040.00: the sandbox creates it and loses the answer

FIRST_KERNEL = """
import json, os
from reconkit.widgets import IssueCreditApp
app = IssueCreditApp()
for amount in json.loads(os.environ["AMOUNTS"]):
    app.amount.value = amount
    app.issue_button.click()
    app.confirm_button.click()
    assert app.error.value == "", app.error.value
print(json.dumps({"url": app.client.config.base_url, "identity": app.client.config.ledger_environment}))
"""

SECOND_KERNEL = """
import json
from reconkit.widgets import IssueCreditApp
from reconkit.widgets.investigate import InvestigateApp
app = IssueCreditApp()
seen = {"url": app.client.config.base_url, "error": app.error.value, "issued": app.issued.value,
        "lookup": [app.lookup_button.layout.display, app.lookup_button.description],
        "picker": [value for _label, value in app.credit_picker.options]}
investigate = InvestigateApp(app.client, out_dir="out")
investigate.ledger_button.click()
seen["ids_from_ledger"] = investigate.ids.value.split()
app.lookup_button.click()
seen["looked_up"] = app.lookup_result.value
seen["issued_after"] = app.issued.value
print(json.dumps(seen))
"""


def _kernel(script: str, data: Path) -> dict:
    """Run ``script`` in a fresh Python as a notebook kernel would: no credentials, the data folder given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CYBERSOURCE_")}
    env |= {"RECONKIT_DATA": str(data), "PYTHONPATH": str(ROOT), "AMOUNTS": json.dumps(AMOUNTS)}
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=data.parent, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _rows(path: Path, query: str) -> list[dict]:
    with sqlite3.connect(path) as conn:
        cursor = conn.execute(query)
        names = [c[0] for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@pytest.mark.parametrize("written_by", ["this version", "an earlier version (port-keyed)"])
def test_a_restarted_kernel_shows_every_credit_and_the_unknown_outcome(tmp_path, written_by):
    data = tmp_path / "data"
    data.mkdir()
    first = _kernel(FIRST_KERNEL, data)
    ledger_file, sandbox_file = data / "reconkit.sqlite3", data / "sandbox.sqlite3"
    if written_by != "this version":
        # What the earlier version wrote: the first kernel's address as the environment.
        with sqlite3.connect(ledger_file) as conn:
            conn.execute("UPDATE credits SET environment=?", (first["url"],))
    credits = _rows(ledger_file, "SELECT * FROM credits")
    held = {row["id"]: row for row in _rows(sandbox_file, "SELECT id, status, reference_code FROM credits")}
    assert len(credits) == len(AMOUNTS) == len(held)
    [unknown] = [row for row in credits if row["outcome"] == "unknown_outcome"]

    second = _kernel(SECOND_KERNEL, data)
    assert second["url"] != first["url"], "the second kernel's sandbox came up on the first one's port"
    assert second["error"] == ""
    shown = {row["Credit id"]: row for row in table(second["issued"])}
    assert set(shown) == set(held) == set(second["picker"]) == set(second["ids_from_ledger"])
    assert {i: r["Status"] for i, r in shown.items()} == {
        i: ("Outcome unknown" if i == unknown["credit_id"] else row["status"]) for i, row in held.items()}
    assert second["lookup"] == ["flex", "Look it up"]
    [looked_up] = table(second["looked_up"])
    assert (looked_up["Reference"], looked_up["Now"], looked_up["Credit id"]) == (
        unknown["reference_code"], "created", unknown["credit_id"])
    after = {row["Credit id"]: (row["Status"], row["Outcome"]) for row in table(second["issued_after"])}
    assert after == {i: (row["status"], "created") for i, row in held.items()}
    # Every row now carries the sandbox database's identity, whichever version wrote it.
    assert {row["environment"] for row in _rows(ledger_file, "SELECT environment FROM credits")} == {
        first["identity"]}


# --- the fetch cache and the duplicate check across restarts -----------------------------------
def _sandbox(db: Path, **kwargs) -> Sandbox:
    return Sandbox(db=str(db), start=START, seed=7, **kwargs).start()


def _fetch(sandbox: Sandbox, ledger: Path, credit_id: str) -> tuple[str, int, int]:
    """(status, served from the cache, GETs the sandbox answered) of one fetch through a new client."""
    before = sandbox.count("GET", "get") + sandbox.count("GET", "tss")
    with Client(sandbox.config, ledger=str(ledger)) as client:
        result = client.fetch_credits([credit_id], progress=False)
    [credit] = result.credits
    return credit.status, result.from_cache, sandbox.count("GET", "get") + sandbox.count("GET", "tss") - before


def test_the_fetch_cache_follows_the_database_not_the_port(tmp_path):
    ledger, a, b = tmp_path / "ledger.sqlite3", tmp_path / "a.sqlite3", tmp_path / "b.sqlite3"
    first = _sandbox(a)
    with Client(first.config, ledger=str(ledger)) as client:
        credit_id = client.create_credit("10.00", "USD", card=CARD, reference_code="cached-1").id
    port = first.port
    first.stop()
    shutil.copyfile(a, b)  # b: another database holding the same credit, still PENDING

    again = _sandbox(a, port=port)
    with Client(again.config, ledger=str(ledger)) as client:
        client.void_credit(credit_id)
    assert _fetch(again, ledger, credit_id) == ("VOIDED", 0, 1)  # VOIDED is final: cached from now on
    again.stop()

    other = _sandbox(b, port=port)  # the copy, on the very same address
    assert other.identity != again.identity
    assert _fetch(other, ledger, credit_id) == ("PENDING", 0, 1)  # never the other database's VOIDED
    other.stop()

    merchant = _sandbox(a, merchant_id="another_merchant")  # the same database, another merchant
    assert _fetch(merchant, ledger, credit_id) == ("VOIDED", 0, 1)
    merchant.stop()

    restarted = _sandbox(a)  # the same database on a new port: its cache entry is its own
    assert restarted.port != port and restarted.identity == again.identity
    assert _fetch(restarted, ledger, credit_id) == ("VOIDED", 1, 0)
    # A reference code still names one credit, whatever the port it was issued through.
    with (Client(restarted.config, ledger=str(ledger)) as client,
          pytest.raises(DuplicateReferenceError, match="cached-1")):
        client.create_credit("10.00", "USD", card=CARD, reference_code="cached-1")
    assert restarted.count("POST", "create") == 0
    restarted.stop()


def test_only_rows_the_sandbox_holds_are_adopted_and_the_cache_stays_behind(tmp_path):
    db, path = tmp_path / "sandbox.sqlite3", tmp_path / "ledger.sqlite3"
    sandbox = _sandbox(db)
    with sandbox.client(ledger=str(path)) as client:
        mine = client.create_credit("10.00", "USD", card=CARD, reference_code="mine").id
        client.fetch_credits([mine], progress=False)
    ledger = Ledger(path)
    old = "http://127.0.0.1:51234"
    # An earlier version's rows: this sandbox's credit and another sandbox's, both under a port, and a cache entry.
    ledger.record_intent(reference_code="elsewhere", transaction_id="t", amount="1.00", currency="USD",
                         environment=old, merchant_id=sandbox.config.merchant_id,
                         at=datetime(2026, 11, 2, tzinfo=UTC))
    ledger.record_outcome("elsewhere", "created", credit_id="9" * 22, status="PENDING")
    ledger.record_intent(reference_code="remote", transaction_id="t2", amount="1.00", currency="USD",
                         environment="https://apitest.cybersource.com", merchant_id=sandbox.config.merchant_id)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE credits SET environment=? WHERE reference_code='mine'", (old,))
        conn.execute("UPDATE fetch_cache SET environment=?", (old,))
    assert adopt_port_keyed_rows(ledger, sandbox) == 1
    environments = {r["reference_code"]: r["environment"] for r in _rows(path, "SELECT * FROM credits")}
    assert environments == {"mine": sandbox.identity, "elsewhere": old, "remote": "https://apitest.cybersource.com"}
    assert {r["environment"] for r in _rows(path, "SELECT environment FROM fetch_cache")} == {old}
    assert adopt_port_keyed_rows(ledger, sandbox) == 0  # once is enough
    ledger.close()
    sandbox.stop()
