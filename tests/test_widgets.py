"""The widget apps without a browser: set values, click, and look at what the sandbox received."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconkit import Client, Config
from reconkit.widgets import IssueCreditApp

from .conftest import SEED_SECRET


@pytest.fixture
def app(sandbox, tmp_path):
    return IssueCreditApp(sandbox.client(ledger=str(tmp_path / "ledger.sqlite3")))


def test_banner_names_the_sandbox_and_never_the_secret(app, sandbox):
    assert "SANDBOX" in app.banner.value and sandbox.credentials.merchant_id in app.banner.value
    assert sandbox.credentials.secret_key not in app.banner.value


def test_fill_confirm_and_exactly_one_credit(app, sandbox):
    app.amount.value = "42.10"
    app.currency.value = "EUR"
    app.issue_button.click()
    assert app.confirm_box.layout.display == "flex"
    assert "42.10 EUR" in app.confirm_text.value and "SANDBOX" in app.confirm_text.value
    assert sandbox.count("POST", "create") == 0  # nothing before confirmation
    app.confirm_button.click()
    assert sandbox.count("POST", "create") == 1
    credit = sandbox.credits()[0]
    assert (credit["amount"], credit["currency"]) == ("42.10", "EUR")
    assert "PENDING" in app.result.value and credit["id"] in app.result.value
    assert credit["reconciliation_id"] in app.result.value and credit["id"] in app.raw.value
    assert credit["id"] in app.issued.value and app.credit_picker.value == credit["id"]


def test_twenty_rapid_clicks_issue_one_credit(app, sandbox):
    app.issue_button.click()
    for _ in range(20):
        app.confirm_button.click()
    assert sandbox.count("POST", "create") == 1
    for _ in range(20):  # the issue button only ever opens the confirmation; confirm sends once per opening
        app.issue_button.click()
    app.confirm_button.click()
    app.confirm_button.click()
    assert sandbox.count("POST", "create") == 2


def test_an_invalid_form_never_sends(app, sandbox):
    app.amount.value = "12.345"
    assert app.issue_button.disabled and "decimal places" in app.messages["amount"].value
    app.source.value = "4111111111111112"
    assert "card number" in app.messages["source"].value
    app.exp_year.value = "31"
    assert "four-digit" in app.messages["exp_year"].value
    app.on_issue()
    app.on_confirm()
    assert sandbox.count("POST", "create") == 0
    app.amount.value, app.source.value, app.exp_year.value = "1.00", "4111111111111111", "2031"
    assert not app.issue_button.disabled and all(m.value == "" for m in app.messages.values())


def test_editing_during_confirmation_cancels_it(app, sandbox):
    app.issue_button.click()
    app.amount.value = "99.00"
    assert app.confirm_box.layout.display == "none"
    app.confirm_button.click()
    assert sandbox.count("POST", "create") == 0


def test_production_is_refused_outright(tmp_path):
    config = Config("m", "k", SEED_SECRET, "production")
    app = IssueCreditApp(Client(config, ledger=str(tmp_path / "l.sqlite3")))
    assert "PRODUCTION" in app.banner.value and "Refused" in app.error.value
    assert app.issue_button.disabled and app.confirm_button.disabled and app.batch_button.disabled
    app.on_issue()
    app.on_confirm()
    assert app.client.ledger.credits().empty


def test_decline_and_api_error_are_shown_readably(app, sandbox):
    app.amount.value = "2005.00"
    app.issue_button.click()
    app.confirm_button.click()
    assert "DECLINED" in app.result.value and "PROCESSOR_DECLINED" in app.result.value
    app.amount.value = "3000.00"
    app.issue_button.click()
    app.confirm_button.click()
    assert "INVALID_AMOUNT" in app.error.value and "Traceback" not in app.error.value
    assert "correlation id" in app.error.value


def test_ambiguous_outcome_offers_the_lookup(app, sandbox):
    app.amount.value = "5040.00"
    reference = app.reference.value
    app.issue_button.click()
    app.confirm_button.click()
    assert "Outcome unknown" in app.result.value and "not</b> resent" in app.result.value
    assert reference in app.result.value and app.lookup_button.layout.display == "flex"
    app.lookup_button.click()
    assert "it was created" in app.result.value and sandbox.credits()[0]["id"] in app.result.value
    assert sandbox.count("POST", "create") == 1


def test_fetch_again_and_void_with_confirmation(app, sandbox):
    app.issue_button.click()
    app.confirm_button.click()
    credit_id = sandbox.credits()[0]["id"]
    app.fetch_button.click()
    assert "self_link" in app.result.value
    app.void_button.click()
    assert sandbox.count("POST", "void") == 0 and app.void_confirm.layout.display == "flex"
    app.void_confirm.click()
    assert sandbox.count("POST", "void") == 1 and "VOIDED" in app.result.value
    assert sandbox.credits()[0]["status"] == "VOIDED" and credit_id in app.issued.value


def _upload(name: str, data: bytes) -> tuple[dict, ...]:
    return ({"name": name, "type": "text/csv", "size": len(data), "content": memoryview(data),
             "last_modified": datetime(2026, 11, 2, tzinfo=UTC)},)


def test_callback_errors_are_shown_not_swallowed(app):
    app.batch_button.click()  # no file chosen
    assert "choose a CSV file" in app.error.value


def test_connect_reads_the_project_env_file_from_the_notebooks_folder(tmp_path, monkeypatch):
    import reconkit.session as session
    (tmp_path / "data" / "sample").mkdir(parents=True)
    (tmp_path / "notebooks").mkdir()
    (tmp_path / ".env").write_text(f"CYBERSOURCE_MERCHANT_ID=from_env_file\nCYBERSOURCE_KEY_ID=k\n"
                                   f"CYBERSOURCE_SECRET_KEY={SEED_SECRET}\n")
    for name in [n for n in __import__("os").environ if n.startswith(("CYBERSOURCE_", "RECONKIT_"))]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path / "notebooks")
    client = session.connect()
    assert client.config.merchant_id == "from_env_file" and client.config.environment_name == "TEST"
    assert Path(client.ledger.path) == tmp_path / "data" / "reconkit.sqlite3"
