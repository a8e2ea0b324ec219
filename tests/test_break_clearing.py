"""The break book closes breaks by itself only as the later data says: a credit voided since its
break opened is closed as NO_SETTLEMENT_EXPECTED, and a settlement row that was unexpected until its
credit came is closed as carried by that credit (whose own break then tells the story)."""

from __future__ import annotations

from reconkit.breaks import BreakBook

from .breaks_helpers import T0, credits_frame, days, run, settled


def test_a_credit_voided_since_its_break_opened_closes_as_no_settlement_expected(tmp_path):
    credits = credits_frame({"c1": "10.00", "c2": "20.00"})
    rows = settled({"c2": "20.00"})
    with BreakBook(tmp_path / "book.sqlite3", analyst="ann") as book:
        book.record(run(credits, rows, T0 + days(1)))
        assert book.get("credit:c1").status == "open" and book.get("credit:c1").outcome == "MISSING_PENDING"
        voided = credits.assign(status=["VOIDED", "PENDING"])
        book.record(run(voided, rows, T0 + days(2)))
        closed = book.get("credit:c1")
        assert (closed.status, closed.reason) == ("resolved", "NO_SETTLEMENT_EXPECTED")
        assert closed.resolved_by == "reconkit" and book.open().empty


def test_an_unexpected_row_later_carried_by_its_credit_closes_as_carried_by_credit(tmp_path):
    known = credits_frame({"c2": "20.00"})
    rows = [*settled({"c2": "20.00"}), ("r-c9", "c9", "5.00", "2026-11-03")]
    with BreakBook(tmp_path / "book.sqlite3", analyst="ann") as book:
        book.record(run(known, rows, T0 + days(1)))
        [row_key] = book.open()["key"]
        assert row_key.startswith("settlement:") and book.get(row_key).outcome == "UNEXPECTED_SETTLEMENT"
        # The credit the row belongs to is fetched now: it was 5.50, the row settled 5.00.
        later = credits_frame({"c2": "20.00", "c9": "5.50"})
        book.record(run(later, rows, T0 + days(2)))
        row_break = book.get(row_key)
        assert (row_break.status, row_break.reason) == ("resolved", "CARRIED_BY_CREDIT")
        credit_break = book.get("credit:c9")
        assert (credit_break.status, credit_break.outcome, credit_break.amount_at_risk) == (
            "open", "AMOUNT_MISMATCH", "0.50")
