"""The break panel's callbacks, without a browser: filters, the side panel's actions, and a
second notebook acting on the same break."""

from __future__ import annotations

import hashlib
import re

import pytest

from reconkit.breaks import BreakBook
from reconkit.widgets.breaks_panel import BreaksPanel

from .breaks_helpers import T0, credits_frame, days, run, settled

AMOUNTS = {"c1": "10.00", "c2": "20.00", "c3": "30.00"}


@pytest.fixture
def books(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    with BreakBook(path, analyst="ann") as ann, BreakBook(path, analyst="bob") as bob:
        yield ann, bob


def test_recording_runs_and_the_filters(books):
    ann, _ = books
    panel = BreaksPanel(ann)
    assert "analyst:</b> ann" in panel.who.value
    assert "No breaks." in panel.table.value and "No run recorded yet" in panel.runs.value
    assert panel.record(run(credits_frame(AMOUNTS), settled({"c1": "10.00"}), T0 + days(1))) == 1
    assert panel.message.value == "recorded run 1"
    assert panel.pick.options == ("credit:c3", "credit:c2")  # largest amount at risk first
    credits = credits_frame({**AMOUNTS, "c4": "5.00"})
    panel.record(run(credits, settled({"c1": "10.00", "c2": "20.00"}), T0 + days(2)))
    assert panel.message.value == "recorded run 2 · run 1 -&gt; run 2: 1 new, 1 cleared, " \
                                  "1 still open (0 of them changed), 0 not seen"
    panel.new_only.value = True
    assert panel.pick.options == ("credit:c4",)
    panel.new_only.value = False
    panel.view.value = "timing_difference"
    assert panel.pick.options == ("credit:c2",)
    panel.view.value = "open"
    panel.mine_only.value = True
    assert panel.pick.options == ()
    assert panel.details.value == ""


def test_the_side_panel_works_the_selected_break(books):
    ann, bob = books
    ann.record(run(credits_frame(AMOUNTS), [("r-c1", "c1", "9.00", "2026-11-03")], T0 + days(1)))
    panel = BreaksPanel(ann)
    panel.pick.value = "credit:c1"
    panel.on_assign()
    assert ann.get("c1").owner == "ann"
    assert "credit:c1: assigned to ann (now investigating" in panel.message.value
    panel.mine_only.value = True
    assert panel.pick.options == ("credit:c1",)
    panel.note_text.value = "processor short-paid 1.00"
    panel.on_note()
    assert panel.note_text.value == "" and "processor short-paid 1.00" in panel.details.value
    panel.reason.value, panel.close_as.value = "PROCESSOR_CORRECTED", "resolved"
    panel.on_resolve()
    assert (ann.get("c1").status, ann.get("c1").reason) == ("resolved", "PROCESSOR_CORRECTED")
    assert panel.pick.options == ()  # closed: no longer among my open breaks
    panel.mine_only.value = False
    panel.view.value = "all"
    panel.pick.value = "credit:c1"
    panel.on_sign_off()
    assert "ann resolved break credit:c1 and cannot also sign it off" in panel.error.value
    assert ann.get("c1").signed_off_by is None

    checker = BreaksPanel(bob)
    checker.view.value = "resolved"
    checker.pick.value = "credit:c1"
    checker.on_sign_off()
    assert checker.error.value == "" and ann.get("c1").signed_off_by == "bob"
    assert "signed off by bob" in checker.message.value


def test_a_stale_panel_is_refused_and_shows_the_break_as_it_now_is(books):
    ann, bob = books
    ann.record(run(credits_frame(AMOUNTS), [], T0 + days(1)))
    mine, theirs = BreaksPanel(ann), BreaksPanel(bob)
    mine.pick.value = theirs.pick.value = "credit:c2"
    theirs.reason.value = "TIMING"
    theirs.close_as.value = "timing_difference"
    theirs.on_resolve()  # bob closes it while ann's panel still shows version 2
    assert bob.get("c2").status == "timing_difference"
    mine.owner.value = "ann"
    mine.on_assign()
    assert "changed since version 2" in mine.error.value and "last by bob" in mine.error.value
    assert ann.get("c2").owner is None  # nothing was written on the stale view
    mine.view.value = "all"
    mine.pick.value = "credit:c2"
    assert "timing_difference" in mine.details.value  # the panel now shows what bob did
    mine.why.value = "no settlement row yet"
    mine.on_reopen()
    assert ann.get("c2").status == "open" and mine.error.value == ""


def test_actions_need_a_selection(books):
    ann, _ = books
    panel = BreaksPanel(ann)
    panel.on_note()
    assert "select a break first" in panel.error.value


def test_the_investigation_app_carries_its_breaks_from_run_to_run(tmp_path):
    from datetime import UTC, datetime, timedelta

    from reconkit.sandbox import Sandbox
    from reconkit.sandbox.scenario import populate
    from reconkit.widgets import InvestigateApp

    with Sandbox(start=datetime(2026, 11, 2, 6, 0, tzinfo=UTC), seed=8) as sandbox:
        client = sandbox.client(ledger=str(tmp_path / "ledger.sqlite3"))
        scenario = populate(sandbox, client, 24, seed=8, days=2)
        day1 = sandbox.settlement(format="pbdr_csv", discrepancies={"amount": 1}, seed=8, out_dir=tmp_path / "data",
                                  filename="day1.csv")
        app = InvestigateApp(client, data=tmp_path / "data", out_dir=tmp_path / "out")
        app.ids.value = "\n".join(scenario.credit_ids)
        app.on_fetch(progress=False)
        app.data_files.value = ("day1.csv",)
        app.on_load()
        app.as_of.value = day1.as_of.isoformat()
        app.on_reconcile()
        assert app.error.value == "" and app.breaks_panel.error.value == ""
        truth1 = day1.credits_truth.set_index("credit_id")["outcome"]
        expected = {f"credit:{c}" for c, o in truth1.items() if o not in ("MATCHED", "NO_SETTLEMENT_EXPECTED")}
        assert set(app.breaks_panel.pick.options) == expected
        pending = {f"credit:{c}" for c, o in truth1.items() if o == "MISSING_PENDING"}
        assert pending
        mismatch = next(f"credit:{c}" for c, o in truth1.items() if o == "AMOUNT_MISMATCH")
        app.search.value = mismatch.split(":")[1]
        assert "<td>open</td>" in app.table.value and "ann" not in app.table.value
        app.breaks_panel.pick.value = mismatch
        app.breaks_panel.owner.value = "ann"
        app.breaks_panel.on_assign()
        # the app's break table shows the new owner at once
        assert re.search(r"<td>investigating</td>\s*<td>ann</td>", app.table.value)
        app.search.value = ""

        sandbox.advance(timedelta(days=1))  # the cut-off batches the pending credits
        day2 = sandbox.settlement((day1.as_of.date(), day1.as_of.date()), format="pbdr_csv", seed=9,
                                  out_dir=tmp_path / "data", filename="day2.csv", captures=0)
        app.data_files.options = app._data_files()
        app.data_files.value = ("day1.csv", "day2.csv")
        app.on_fetch(progress=False)
        app.on_load()
        app.as_of.value = day2.as_of.isoformat()
        app.on_reconcile()
        message = app.breaks_panel.message.value
        assert message.startswith("recorded run 2 · run 1 -&gt; run 2: 0 new, ")
        assert f"{len(pending)} cleared" in message
        book = app.breaks_panel.book
        assert {book.get(k).status for k in pending} == {"timing_difference"}
        assert (book.get(mismatch).owner, book.get(mismatch).status) == ("ann", "investigating")
        assert book.runs()["files"].tolist() == ["day1.csv", "day1.csv, day2.csv"]
        sha1, sha2 = (hashlib.sha256((tmp_path / "data" / n).read_bytes()).hexdigest()[:12] for n in ("day1.csv",
                                                                                                   "day2.csv"))
        assert book.runs()["sha256"].tolist() == [sha1, f"{sha1}, {sha2}"]


def test_the_book_table_speaks_analyst_words_with_grouped_amounts(books):
    ann, _ = books
    panel = BreaksPanel(ann)
    panel.record(run(credits_frame({"c1": "12345.60", "c2": "20.00"}), settled({"c2": "20.00"}), T0 + days(1)))
    headers = re.findall(r"<th>(.*?)</th>", panel.table.value)
    assert {"Break", "Status", "Owner", "Outcome", "Amount at risk", "Days open"} <= set(headers)
    assert not {"key", "amount_at_risk", "days_open", "open_bucket"} & set(headers)
    assert "12,345.60" in panel.table.value
