"""The widget apps without a browser: set values, click, and look at what the sandbox received."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconkit import Client, Config
from reconkit.sandbox import Sandbox
from reconkit.sandbox.scenario import populate
from reconkit.widgets import InvestigateApp, IssueCreditApp

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


START = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)


@pytest.fixture
def world(tmp_path):
    with Sandbox(start=START, seed=8) as sb:
        client = sb.client(ledger=str(tmp_path / "ledger.sqlite3"))
        scenario = populate(sb, client, 60, seed=8, days=3, void_rate=0.08)
        bundle = sb.settlement(format="pbdr_xml", discrepancies={"missing": 2, "amount": 2, "duplicate": 1,
                                                                 "unexpected": 2, "voided_settled": 1},
                               out_dir=tmp_path / "files", seed=8)
        yield sb, client, scenario, bundle


def test_investigate_from_uploads_to_exports_equals_the_truth(world, tmp_path):
    _sb, client, scenario, bundle = world
    app = InvestigateApp(client, data=tmp_path / "empty", out_dir=tmp_path / "out", page_size=5)
    ids = ("credit_id\n" + "\n".join(scenario.credit_ids) + "\nnot-an-id\n").encode()
    app.ids_upload.value = _upload("ids.csv", ids)
    app.fetch_button.click()
    assert "<b>60</b> credit(s)" in app.fetch_status.value and "MalformedId" in app.failures.value
    app.files_upload.value = _upload(bundle.files[0].name, bundle.files[0].read_bytes())
    app.load_button.click()
    assert "pbdr_xml" in app.load_status.value and str(len(bundle.settlement_truth)) in app.load_status.value
    app.as_of.value = bundle.as_of.isoformat()
    app.reconcile_button.click()
    assert app.error.value == ""
    got = app.result.credits.set_index("credit_id")["outcome"].astype(str).to_dict()
    assert got == bundle.credits_truth.set_index("credit_id")["outcome"].astype(str).to_dict()
    assert sorted(app.result.settlement["outcome"].astype(str)) == sorted(bundle.settlement_truth["outcome"])
    assert "Breaks" in app.cards.value and "At risk" in app.cards.value
    runs = client.ledger.runs()
    assert len(runs) == 1 and bundle.as_of.isoformat() in runs.loc[0, "parameters"]
    breaks = len(app.result.breaks)
    assert f"{breaks} break(s)" in app.page_label.value and app.prev_button.disabled
    app.next_button.click()
    assert "page 2" in app.page_label.value
    app.outcome_filter.value = "AMOUNT_MISMATCH"
    assert "2 break(s)" in app.page_label.value and "page 1" in app.page_label.value
    app.outcome_filter.value = "(all breaks)"
    target = app.result.breaks.iloc[0]
    app.search.value = str(target["credit_id"])[-8:] if target["credit_id"] is not None and str(
        target["credit_id"]) != "<NA>" else str(target["reconciliation_id"])
    assert "1 break(s)" in app.page_label.value
    app.pick.value = app.pick.options[0][1]
    assert target["outcome"] in app.drill.value and "Settlement row" in app.drill.value
    app.export_button.click()
    for name in ("report.html", "breaks.xlsx", "breaks.csv"):
        assert (tmp_path / "out" / name).exists() and f"download='{name}'" in app.export_links.value
    assert "data:" not in app.export_links.value  # links to files Jupyter serves, no payload in the page


def test_investigate_reports_read_errors_and_missing_steps(world, tmp_path):
    _sb, client, _scenario, _bundle = world
    app = InvestigateApp(client, data=tmp_path / "empty", out_dir=tmp_path / "out")
    app.reconcile_button.click()
    assert "fetch the credits first" in app.error.value
    app.files_upload.value = _upload("broken.csv", b"trans_ref_no,amount,currency,transaction_type\n"
                                                   b"A,1.00,USD,ics_credit\nB,oops,USD,ics_credit\n")
    app.load_button.click()
    assert "Rows that could not be read" in app.read_errors.value and "oops" in app.read_errors.value
    app.files_upload.value = _upload("junk.bin", b"\x00\x01\x02")
    app.load_button.click()
    assert "binary" in app.error.value and "Traceback" not in app.error.value


def test_investigate_sample_in_the_shipped_data(tmp_path, monkeypatch):
    import shutil

    import reconkit.session as session
    data = tmp_path / "data"
    shutil.copytree(Path(__file__).parents[1] / "data" / "sample", data / "sample")
    monkeypatch.setenv("RECONKIT_DATA", str(data))
    monkeypatch.setattr(session, "_sandbox", None)
    for name in [n for n in list(__import__("os").environ) if n.startswith("CYBERSOURCE_")]:
        monkeypatch.delenv(name)
    try:
        app = InvestigateApp(out_dir=tmp_path / "out")
        assert "SANDBOX" in app.banner.value
        result = app.load_sample("processor_csv", progress=False)
        truth = __import__("pandas").read_csv(data / "sample" / "processor_csv_truth.csv", dtype=str)
        want = truth[truth["side"] == "credit"].set_index("credit_id")["outcome"].to_dict()
        assert result.credits.set_index("credit_id")["outcome"].astype(str).to_dict() == want
    finally:
        if session._sandbox is not None:
            session._sandbox.stop()
        monkeypatch.setattr(session, "_sandbox", None)


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
