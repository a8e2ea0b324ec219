"""Recording a run from the investigation app: the preview says what the run would do, a run that
fails an intake check is recorded only with a reason, a result replaced since its preview is never
recorded under it, and the last run can be withdrawn, putting the book back as it was."""

from __future__ import annotations

from datetime import timedelta

import pytest

from reconkit.sandbox import Sandbox
from reconkit.sandbox.scenario import populate
from reconkit.sandbox.settlement import generate_settlement
from reconkit.widgets import InvestigateApp

from .conftest import START


@pytest.fixture(scope="module")
def two_merchants(tmp_path_factory):
    """Our credits, our settlement file (data/ours.csv) and another merchant's, two weeks later
    (data/theirs.csv)."""
    folder = tmp_path_factory.mktemp("record")
    with Sandbox(start=START, seed=31) as ours, Sandbox(start=START + timedelta(days=14), seed=77,
                                                         merchant_id="another_merchant") as theirs:
        client = ours.client(ledger=str(folder / "ledger.sqlite3"))
        scenario = populate(ours, client, 30, seed=31, days=3, void_rate=0.15)
        right = generate_settlement(ours.state, discrepancies={"voided_settled": 1}, seed=3, out_dir=folder / "data",
                                    filename="ours.csv")
        other = theirs.client()
        populate(theirs, other, 12, seed=77, days=2, void_rate=0)
        other.close()
        generate_settlement(theirs.state, seed=4, out_dir=folder / "data", captures=0, filename="theirs.csv")
        yield client, scenario, right, folder


def _reconcile(app: InvestigateApp, names: tuple[str, ...]) -> None:
    app.data_files.options = app._data_files()
    app.data_files.value = names
    app.load_button.click()
    app.reconcile_button.click()
    assert app.error.value == ""


def test_a_wrong_file_is_previewed_refused_recorded_with_a_reason_and_withdrawn(two_merchants, tmp_path):
    client, scenario, right, folder = two_merchants
    app = InvestigateApp(client, data=folder / "data", out_dir=tmp_path / "out")
    recorder, book = app.recorder, app.breaks_panel.book
    app.ids.value = "\n".join(scenario.credit_ids)
    app.fetch_button.click()
    app.as_of.value = right.as_of.isoformat()
    app.grace.value = right.grace_days
    _reconcile(app, ("ours.csv",))
    truth = right.credits_truth
    breaks = int((~truth["outcome"].isin(["MATCHED", "NO_SETTLEMENT_EXPECTED"])).sum())
    assert recorder.preview.ok and recorder.preview.opens == breaks
    assert recorder.record_button.description == f"Record run (opens {breaks}, clears 0)"
    assert not recorder.record_button.disabled and len(book.runs()) == 0  # nothing recorded before the click
    recorder.record_button.click()
    assert len(book.runs()) == 1 and "recorded run 1" in recorder.message.value
    before = book.snapshot()

    _reconcile(app, ("theirs.csv",))
    preview = recorder.preview
    assert not preview.ok and {c.name for c in preview.failed} >= {"merchant"}
    assert "another_merchant" in recorder.preview_html.value and recorder.record_button.disabled
    assert recorder.record_button.description.startswith("Record anyway")
    recorder.on_record()  # a click without a reason records nothing
    assert "say why" in recorder.error.value and len(book.runs()) == 1 and book.snapshot() == before
    recorder.override.value = "the processor re-sent last month's file under our name"
    assert not recorder.record_button.disabled
    recorder.record_button.click()
    runs = book.runs()
    assert len(runs) == 2 and runs["override"].iloc[-1] == "the processor re-sent last month's file under our name"
    assert book.snapshot() != before
    assert recorder.withdraw_button.description == "Withdraw run 2" and recorder.withdraw_button.disabled
    recorder.withdraw_reason.value = "wrong merchant's file"
    recorder.withdraw_button.click()
    assert book.snapshot() == before and bool(book.runs()["withdrawn"].iloc[-1])
    audit = book.audit()
    assert {"intake_overridden", "run_withdrawn"} <= set(audit["event"])
    assert recorder.withdraw_button.description == "Withdraw run 1"


def test_a_result_replaced_since_its_preview_is_not_recorded_under_it(two_merchants, tmp_path):
    client, scenario, right, folder = two_merchants
    app = InvestigateApp(client, data=folder / "data", out_dir=tmp_path / "out")
    app.ids.value = "\n".join(scenario.credit_ids)
    app.fetch_button.click()
    app.as_of.value = right.as_of.isoformat()
    _reconcile(app, ("ours.csv",))
    runs = len(app.breaks_panel.book.runs())
    app.tolerance.value = "0.50"  # the result is stale now: the preview goes with it
    assert app.recorder.preview is None and app.recorder.record_button.disabled
    assert "Not recorded" in app.recorder.message.value
    app.recorder.on_record()
    assert "changed since its preview" in app.recorder.error.value
    assert len(app.breaks_panel.book.runs()) == runs
