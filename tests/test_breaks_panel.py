"""The break panel's callbacks, without a browser: filters, order and pages, the actions on the
selected break and on every break of a view, and a second notebook acting on the same break."""

from __future__ import annotations

import hashlib
import re

import pytest

from reconkit.breakbook_view import ANYONE, MINE
from reconkit.breaks import BreakBook
from reconkit.widgets.breaks_panel import BreaksPanel

from .breaks_helpers import T0, credits_frame, days, run, settled

AMOUNTS = {"c1": "10.00", "c2": "20.00", "c3": "30.00"}


def offered(panel: BreaksPanel) -> list[str]:
    """The keys the break picker offers."""
    return [key for _label, key in panel.pick.options]


def listed(panel: BreaksPanel) -> list[str]:
    """The keys the view's filters select, in its order (every page)."""
    return list(panel.filtered()["key"])


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
    assert offered(panel) == ["credit:c3", "credit:c2"]  # largest amount at risk first
    credits = credits_frame({**AMOUNTS, "c4": "5.00"})
    panel.record(run(credits, settled({"c1": "10.00", "c2": "20.00"}), T0 + days(2)))
    assert panel.message.value == "recorded run 2 · run 1 -&gt; run 2: 1 new, 1 cleared, " \
                                  "1 still open (0 of them changed), 0 not seen"
    panel.new_only.value = True
    assert offered(panel) == ["credit:c4"]
    panel.new_only.value = False
    panel.view.value = "timing_difference"
    assert offered(panel) == ["credit:c2"]
    panel.view.value = "open"
    panel.owner_filter.value = MINE
    assert offered(panel) == []
    assert panel.details.value == ""


def test_the_side_panel_works_the_selected_break(books):
    ann, bob = books
    ann.record(run(credits_frame(AMOUNTS), [("r-c1", "c1", "9.00", "2026-11-03")], T0 + days(1)))
    panel = BreaksPanel(ann)
    panel.pick.value = "credit:c1"
    assert panel.assign_button.description == "Assign credit:c1 · 1.00 USD"
    panel.on_assign()
    assert ann.get("c1").owner == "ann"
    assert "credit:c1 · 1.00 USD: assigned to ann (now investigating" in panel.message.value
    panel.owner_filter.value = MINE
    assert offered(panel) == ["credit:c1"]
    panel.note_text.value = "processor short-paid 1.00"
    panel.on_note()
    assert panel.note_text.value == "" and "processor short-paid 1.00" in panel.details.value
    panel.reason.value, panel.close_as.value = "PROCESSOR_CORRECTED", "resolved"
    panel.on_resolve()
    assert (ann.get("c1").status, ann.get("c1").reason) == ("resolved", "PROCESSOR_CORRECTED")
    assert listed(panel) == []  # closed: no longer among my open breaks
    # ... yet still selected, and the next action names it
    assert panel.pick.value == "credit:c1" and panel.pick.label.endswith("resolved (not in this view)")
    assert panel.sign_button.description == "Sign off credit:c1 · 1.00 USD"
    panel.owner_filter.value = ANYONE
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
        app.recorder.on_record()
        assert app.error.value == "" and app.breaks_panel.error.value == ""
        truth1 = day1.credits_truth.set_index("credit_id")["outcome"]
        expected = {f"credit:{c}" for c, o in truth1.items() if o not in ("MATCHED", "NO_SETTLEMENT_EXPECTED")}
        assert set(offered(app.breaks_panel)) == expected
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
        app.recorder.on_record()
        message = app.recorder.message.value
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


# --- working the queue: pages, order, actions bound to their break, bulk --------------------------

def priced(amounts: dict[str, tuple[str, str]]):
    """Credits ``id -> (amount, currency)``, all submitted at T0."""
    frame = credits_frame({k: a for k, (a, _c) in amounts.items()})
    frame["currency"] = [c for _a, c in amounts.values()]
    return frame


QUEUE = {"usd1": ("927.44", "USD"), "jpy1": ("27250", "JPY"), "usd2": ("10.25", "USD"), "gbp1": ("1.17", "GBP"),
         "eur1": ("0.44", "EUR")}
"""Five missing credits in four currencies (the largest number, 27,250, is yen)."""


def test_every_break_can_be_reached_page_by_page(books):
    ann, _ = books
    amounts = {f"c{i:02d}": f"{i}.00" for i in range(1, 61)}
    ann.record(run(credits_frame(amounts), [], T0 + days(1)))
    panel = BreaksPanel(ann)
    assert offered(panel) == [f"credit:c{i:02d}" for i in range(60, 10, -1)]
    assert panel.page_label.value == "of 2 · 60 break(s)" and panel.prev_button.disabled
    panel.next_button.click()
    assert offered(panel) == [f"credit:c{i:02d}" for i in range(10, 0, -1)]
    assert panel.next_button.disabled and panel.page_box.value == 2
    panel.pick.value = "credit:c01"
    assert panel.assign_button.description == "Assign credit:c01 · 1.00 USD"
    panel.on_assign()
    assert ann.get("c01").owner == "ann" and panel.error.value == ""
    panel.page_box.value = 1
    assert offered(panel)[0] == "credit:c60"
    panel.sort_by.value = "smallest"
    assert offered(panel)[:5] == [f"credit:c{i:02d}" for i in range(1, 6)]
    panel.search.value = "c07 C13"  # any of the words, any case
    assert offered(panel) == ["credit:c07", "credit:c13"]


@pytest.mark.parametrize(("fx", "expected"), [
    # Without rates each currency stays together, largest first; the currency with most breaks first.
    (None, ["usd1", "usd2", "eur1", "gbp1", "jpy1"]),
    # With rates, by converted amount: 927.44 > 27,250 × 0.0067 = 182.58 > 10.25 > 1.49 > 0.48.
    ({"JPY": "0.0067", "EUR": "1.08", "GBP": "1.27"}, ["usd1", "jpy1", "usd2", "gbp1", "eur1"]),
    # A currency with no rate comes after the converted ones.
    ({"EUR": "1.08", "GBP": "1.27"}, ["usd1", "usd2", "gbp1", "eur1", "jpy1"]),
])
def test_largest_first_never_compares_amounts_across_currencies(books, fx, expected):
    ann, _ = books
    ann.record(run(priced(QUEUE), [], T0 + days(1)))
    panel = BreaksPanel(ann, fx=fx, base="USD")
    assert offered(panel) == [f"credit:{k}" for k in expected]
    assert "27,250 JPY" in panel.pick.options[offered(panel).index("credit:jpy1")][0]
    summary = panel.summary.value
    assert "5 break(s) in this view, at risk 0.44 EUR · 1.17 GBP · 27,250 JPY · 937.69 USD" in summary
    assert ("within each currency" in summary) == (fx is None)
    assert ("no rate for JPY" in summary) == (fx is not None and "JPY" not in fx)


def test_a_rate_that_is_not_a_number_is_refused_naming_the_currency(books):
    from reconkit.errors import ConfigError

    with pytest.raises(ConfigError, match="the rate for JPY must be a positive number"):
        BreaksPanel(books[0], fx={"JPY": "0,0067"})


def test_each_action_names_its_break_and_the_selection_stays_on_it(books):
    ann, bob = books
    ann.record(run(priced(QUEUE), [], T0 + days(1)))
    panel = BreaksPanel(ann)
    panel.pick.value = "credit:usd2"
    labels = {k: b.description for k, b in panel._buttons.items()}
    assert labels == {"assign": "Assign credit:usd2 · 10.25 USD", "note": "Add note to credit:usd2 · 10.25 USD",
                      "resolve": "Resolve credit:usd2 · 10.25 USD", "sign_off": "Sign off credit:usd2 · 10.25 USD",
                      "reopen": "Reopen credit:usd2 · 10.25 USD"}
    assert panel.sign_button.disabled and panel.reopen_button.disabled  # not closed yet
    panel.reason.value = "REFUND_REISSUED"
    panel.resolve_button.click()
    assert ann.get("usd2").status == "resolved"
    # The selection stays on the break resolved (the "open" view no longer lists it) and the
    # message and the next button name that same break, never the first open one.
    assert panel.pick.value == "credit:usd2" and "credit:usd2" not in listed(panel)
    assert panel.message.value.startswith("credit:usd2 · 10.25 USD: resolved (REFUND_REISSUED)")
    assert panel.sign_button.description == "Sign off credit:usd2 · 10.25 USD" and not panel.sign_button.disabled
    panel.sign_button.click()  # the resolver cannot sign: refused, nothing written
    assert "cannot also sign it off" in panel.error.value and ann.get("usd2").signed_off_by is None
    assert [e.key for e in ann.events() if e.kind in ("resolved", "signed_off")] == ["credit:usd2"]

    checker = BreaksPanel(bob)
    checker.view.value = "to_sign_off"
    assert offered(checker) == ["credit:usd2"]
    checker.sign_button.click()
    assert ann.get("usd2").signed_off_by == "bob" and checker.pick.value == "credit:usd2"
    assert checker.message.value.startswith("credit:usd2 · 10.25 USD: signed off by bob")


def test_an_action_bound_to_a_break_no_longer_selected_is_refused(books):
    ann, _ = books
    ann.record(run(priced(QUEUE), [], T0 + days(1)))
    panel = BreaksPanel(ann)
    panel.pick.value = "credit:gbp1"
    held = panel.model.bound("resolve")  # what the button said before the selection moved
    panel.pick.value = "credit:jpy1"
    before = len(ann.events())
    with pytest.raises(Exception, match="named credit:gbp1, which is no longer selected"):
        panel.model.run(held, reason="FALSE_BREAK")
    assert len(ann.events()) == before


def test_bulk_resolve_names_count_and_totals_and_acts_on_exactly_those_breaks(books):
    ann, bob = books
    ann.record(run(priced(QUEUE), [], T0 + days(1)))
    panel = BreaksPanel(ann)
    panel.outcome_filter.value = "MISSING_PENDING"
    panel.owner_filter.value = ANYONE
    panel.currency_filter.value = "USD"
    panel.reason.value, panel.close_as.value = "TIMING", "timing_difference"
    panel.note_text.value = "settles Monday"
    panel.bulk_resolve_button.click()
    assert panel.confirm_box.layout.display == "flex"
    assert panel.confirm_button.description == "Resolve 2 breaks (937.69 USD)"
    assert "Close as timing_difference (reason TIMING) with the note “settles Monday” 2 breaks worth 937.69 USD" \
        in panel.confirm_text.value
    bob.note("usd1", "asked the processor")  # someone else changes one of them meanwhile
    panel.confirm_button.click()
    assert panel.confirm_box.layout.display == "none"
    resolved = [e.key for e in ann.events() if e.kind == "resolved"]
    assert resolved == ["credit:usd2"]  # exactly the breaks named, less the one changed since
    assert ann.get("usd1").status == "open" and ann.get("usd2").status == "timing_difference"
    assert "Resolve: 1 of 2 breaks done, 1 changed by someone else since (not done)" in panel.message.value
    assert "<code>credit:usd1</code> changed since" in panel.message.value


def test_a_change_of_the_view_cancels_a_pending_confirmation(books):
    ann, _ = books
    ann.record(run(priced(QUEUE), [], T0 + days(1)))
    panel = BreaksPanel(ann)
    panel.owner.value = "carol"
    panel.bulk_assign_button.click()
    assert panel.confirm_button.description == "Assign 5 breaks (0.44 EUR · 1.17 GBP · 27,250 JPY · 937.69 USD)"
    shown = panel._confirming
    panel.currency_filter.value = "JPY"  # now the view holds one break, not the five counted
    assert panel.confirm_box.layout.display == "none" and panel.model.pending is None
    with pytest.raises(Exception, match="cancelled"):
        panel.model.confirm(shown)
    panel.on_confirm()
    assert "cancelled" in panel.error.value
    assert not [e for e in ann.events() if e.kind == "assigned"]
    for change in (lambda: setattr(panel.pick, "value", offered(panel)[0]), lambda: panel.next_button.click(),
                   lambda: setattr(panel.owner, "value", "dave"), lambda: setattr(panel.sort_by, "value", "key")):
        panel.currency_filter.value = "(all)"
        panel.bulk_assign_button.click()
        assert panel.model.pending is not None
        change()
        assert panel.model.pending is None and panel.confirm_box.layout.display == "none"


def test_each_step_replaces_what_it_supersedes(books):
    ann, _ = books
    ann.record(run(priced(QUEUE), [], T0 + days(1)))
    panel = BreaksPanel(ann)
    panel.on_note()  # no text: refused
    assert "type the note first" in panel.error.value
    panel.note_text.value = "called the bank"
    panel.on_note()
    assert panel.error.value == "" and "note added" in panel.message.value
    panel.pick.value = offered(panel)[1]  # another break: the message about the first goes
    assert panel.message.value == ""
    panel.owner.value = "ann"
    panel.bulk_assign_button.click()
    first = panel.confirm_text.value
    panel.note_text.value = "second thoughts"
    panel.bulk_note_button.click()  # the new confirmation replaces the old one
    assert panel.confirm_text.value != first and "second thoughts" in panel.confirm_text.value
    panel.on_reopen()  # refused, and the earlier confirmation is not left standing beside the error
    assert "say why first" in panel.error.value
    panel.record(run(priced(QUEUE), [], T0 + days(2)))
    assert panel.error.value == "" and panel.model.pending is None
    assert panel.message.value.startswith("recorded run 2")


def test_the_layout_wraps_instead_of_growing_sideways(books):
    import ipywidgets as w

    panel = BreaksPanel(books[0])

    def walk(widget):
        yield widget
        for child in getattr(widget, "children", ()):
            yield from walk(child)

    rows = [x for x in walk(panel) if isinstance(x, w.HBox)]
    assert rows and all(r.layout.flex_flow == "row wrap" for r in rows)
    assert panel.table in panel.children  # the table has a row of its own, nothing beside it
    fixed = [x for x in walk(panel) if str(x.layout.width or "").endswith("px")]
    assert all(int(str(x.layout.width)[:-2]) <= 400 for x in fixed)
