"""The break book: identity across runs, the workflow's rules, differences, aging and the audit."""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import date, datetime, timedelta
from decimal import Decimal

import openpyxl
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconkit import Ledger, read_settlement, reconcile
from reconkit.breaks import (
    AGE_BUCKETS,
    SEVERAL_DAYS,
    SEVERAL_ROWS,
    SYSTEM,
    BreakBook,
    age_bucket,
    current_analyst,
    settlement_key,
    settlement_keys,
)
from reconkit.errors import BreakBookError, BreakConflictError
from reconkit.sandbox.settlement import generate_settlement
from reconkit.sandbox.state import SandboxState

from .breaks_helpers import T0, credits_frame, days, run, settled
from .conftest import examples


@pytest.fixture
def book(tmp_path):
    with BreakBook(Ledger(tmp_path / "ledger.sqlite3"), analyst="ann") as b:
        yield b


AMOUNTS = {"c1": "10.00", "c2": "20.00", "c3": "30.00", "c4": "40.00"}


def _two_days(book):
    """Day 1: c1 matched, c2 missing (pending), c3 missing (overdue, submitted 5 days before),
    c4 settled 1.50 short, one unexpected row. Day 2: c2 and c3 settle, c4 unchanged, c5 new
    and missing, the unexpected row is no longer in the file."""
    submitted = {"c3": T0 - days(4)}
    day1 = T0 + days(1.5)
    credits = credits_frame(AMOUNTS, submitted)
    rows1 = [*settled({"c1": "10.00"}), ("r-c4", "c4", "38.50", "2026-11-03"),
             ("r-x", "7000000000000000000001", "5.25", "2026-11-03")]
    first = book.record(run(credits, rows1, day1))
    credits2 = credits_frame({**AMOUNTS, "c5": "50.00"}, {**submitted, "c5": day1})
    rows2 = [*settled({"c1": "10.00"}), ("r-c4", "c4", "38.50", "2026-11-03"),
             *settled({"c2": "20.00", "c3": "30.00"}, "2026-11-04")]
    second = book.record(run(credits2, rows2, day1 + days(1)))
    return first, second, day1


# --- identity ------------------------------------------------------------------------------------

def test_a_settlement_row_keeps_its_key_whatever_file_or_format_it_comes_in(tmp_path):
    state = SandboxState(":memory:", seed=3, start=T0)
    keys = {}
    try:
        for fmt in ("pbdr_csv", "processor_csv", "pbdr_xml"):
            bundle = generate_settlement(state, format=fmt, discrepancies={"unexpected": 4}, seed=9, captures=0,
                                         out_dir=tmp_path / fmt)
            result = reconcile(credits_frame({}), read_settlement(bundle.files), as_of=T0)
            with BreakBook(tmp_path / f"{fmt}.sqlite3", analyst="ann") as book:
                book.record(result)
                keys[fmt] = set(book.table()["key"])
            truth = bundle.settlement_truth
    finally:
        state.close()
    assert keys["pbdr_csv"] == keys["processor_csv"] == keys["pbdr_xml"]
    # request id, amount (unsigned, in cents), currency: the generator's own record of each row
    expected = {f"settlement:{q}|{Decimal(a):.2f}|{c}" for q, a, c in
                zip(truth["request_id"], truth["amount"], truth["currency"], strict=True)}
    assert {k.rsplit("|", 1)[0] for k in keys["pbdr_csv"]} == expected
    assert len(keys["pbdr_csv"]) == 4


def test_settlement_key_normalises_what_files_spell_differently():
    a = settlement_key(" 0012345678901234567890 ", None, "-12.5", "usd", "2026-11-03T08:00:00Z")
    b = settlement_key("0012345678901234567890", "rid", Decimal("12.50"), "USD", date(2026, 11, 3))
    assert a == b == "settlement:0012345678901234567890|12.50|USD|2026-11-03"
    assert settlement_key(None, "ABC123", "1000", "JPY", "20261103") == "settlement:rid:ABC123|1000|JPY|2026-11-03"


def test_two_identical_unexpected_rows_are_two_breaks(book):
    row = ("r-x", "7000000000000000000009", "5.00", "2026-11-03")
    book.record(run(credits_frame({}), [row, row], T0))
    keys = sorted(book.table()["key"])
    assert keys == ["settlement:7000000000000000000009|5.00|USD|2026-11-03",
                    "settlement:7000000000000000000009|5.00|USD|2026-11-03#2"]


def test_a_newer_settlement_file_links_todays_breaks_to_yesterdays(book):
    credits = credits_frame({"c4": "40.00"})
    unexpected = ("r-x", "7000000000000000000001", "5.25", "2026-11-03")
    book.record(run(credits, [("r-c4", "c4", "38.50", "2026-11-03"), unexpected], T0 + days(1)))
    book.assign("c4", "ann")
    book.record(run(credits, [("r-c4", "c4", "38.50", "2026-11-03"), unexpected,
                              ("r-y", "7000000000000000000002", "1.00", "2026-11-04")], T0 + days(2)))
    diff = book.diff()
    assert dict(zip(diff.frame["key"], diff.frame["change"], strict=True)) == {
        "credit:c4": "unchanged",
        "settlement:7000000000000000000001|5.25|USD|2026-11-03": "unchanged",
        "settlement:7000000000000000000002|1.00|USD|2026-11-04": "new"}
    assert book.get("c4").owner == "ann"
    assert len(book.events("c4")) == 2  # opened once, assigned; the second run changed nothing


# --- runs, differences ---------------------------------------------------------------------------

def test_diff_sorts_each_break_by_what_the_later_run_says(book):
    first, second, _ = _two_days(book)
    diff = book.diff(first, second)
    by_key = diff.frame.set_index("key")
    assert by_key["change"].to_dict() == {
        "credit:c2": "cleared", "credit:c3": "cleared", "credit:c4": "unchanged", "credit:c5": "new",
        "settlement:7000000000000000000001|5.25|USD|2026-11-03": "not_seen"}
    # c2 was within the grace period on day 1: a timing difference that settled
    assert (book.get("c2").status, book.get("c2").reason, book.get("c2").resolved_by) == (
        "timing_difference", "SETTLED", SYSTEM)
    assert (book.get("c3").status, book.get("c3").reason) == ("resolved", "SETTLED_LATE")
    assert by_key.loc["credit:c2", "outcome_a"] == "MISSING_PENDING"
    assert by_key.loc["credit:c2", "outcome_b"] == "MATCHED"
    assert by_key.loc["credit:c3", "outcome_a"] == "MISSING_OVERDUE"
    assert by_key.loc["credit:c4", "amount_b"] == "1.50"
    assert diff.counts() == {"new": 1, "cleared": 2, "changed": 0, "unchanged": 1, "not_seen": 1, "still_open": 1,
                             "changed_open": 0}
    # age at run 2: first seen at day 1, one day before
    assert list(diff.still_open["key"]) == ["credit:c4"]
    assert diff.still_open["age_days"].tolist() == [1]
    default = book.diff()  # the last two runs
    assert (default.run_a, default.run_b) == (first, second)
    pd.testing.assert_frame_equal(default.frame, diff.frame)


def test_a_changed_amount_or_outcome_is_a_change(book):
    credits = credits_frame({"c1": "10.00"})
    book.record(run(credits, [], T0 + days(1)))  # pending
    book.record(run(credits, [], T0 + days(4)))  # overdue: the outcome moved
    book.record(run(credits, [("r-c1", "c1", "9.00", "2026-11-06")], T0 + days(5)))
    assert book.diff(1, 2).frame["change"].tolist() == ["changed"]
    # The summary's parts do not overlap: the changed break is one of those still open.
    assert "0 new, 0 cleared, 1 still open (1 of them changed), 0 not seen" in book.diff(1, 2).summary_text()
    assert book.diff(2, 3).frame[["outcome_a", "outcome_b", "amount_b"]].values.tolist() == [
        ["MISSING_OVERDUE", "AMOUNT_MISMATCH", "1.00"]]
    assert [e.kind for e in book.events("c1")] == ["opened", "changed", "changed"]


def test_a_break_the_run_cleared_comes_back_when_seen_again(book):
    credits = credits_frame({"c1": "10.00"})
    book.record(run(credits, [], T0 + days(1)))
    book.record(run(credits, settled({"c1": "10.00"}), T0 + days(2)))
    assert book.get("c1").status == "timing_difference"
    book.record(run(credits, [("r-c1", "c1", "11.00", "2026-11-03")], T0 + days(3)))
    again = book.get("c1")
    assert (again.status, again.outcome, again.reason) == ("open", "AMOUNT_MISMATCH", None)
    assert [e.kind for e in book.events("c1")] == ["opened", "cleared", "reappeared"]


def test_an_analysts_resolution_is_not_undone_by_the_next_run(book):
    credits = credits_frame({"c1": "10.00"})
    book.record(run(credits, [("r-c1", "c1", "11.00", "2026-11-03")], T0 + days(1)))
    book.resolve("c1", "WRITE_OFF", status="written_off", note="under threshold")
    book.record(run(credits, [("r-c1", "c1", "11.00", "2026-11-03")], T0 + days(2)))
    assert book.get("c1").status == "written_off"


def test_each_run_keeps_its_inputs(book, tmp_path):
    file = tmp_path / "settle.csv"
    file.write_bytes(b"anything the reader read\r\n")
    run_id = book.record(run(credits_frame(AMOUNTS), [], T0), inputs=[file], parameters={"note": "day 1"})
    runs = book.runs()
    assert runs.loc[0, "run_id"] == run_id
    assert runs.loc[0, "credits"] == 4 and runs.loc[0, "breaks"] == 4
    assert runs.loc[0, "sha256"] == hashlib.sha256(file.read_bytes()).hexdigest()[:12]
    assert runs.loc[0, "as_of"] == pd.Timestamp(T0)
    assert runs.loc[0, "analyst"] == "ann"


def test_diff_needs_two_runs(book):
    with pytest.raises(BreakBookError, match="no run recorded"):
        book.diff()
    book.record(run(credits_frame(AMOUNTS), [], T0))
    with pytest.raises(BreakBookError, match="only 1 run"):
        book.diff()
    with pytest.raises(BreakBookError, match="no run 7"):
        book.diff(1, 7)


# --- the workflow's rules ------------------------------------------------------------------------

@pytest.fixture
def one_break(book):
    book.record(run(credits_frame({"c1": "10.00"}), [("r-c1", "c1", "12.00", "2026-11-03")], T0 + days(1)))
    return book


def test_assigning_starts_the_investigation_and_notes_only_grow(one_break):
    book = one_break
    assert book.get("c1").status == "open"
    book.assign("c1", "bob")
    book.note("c1", "asked the processor", by="bob")
    state = book.note("credit:c1", "they will re-send", by="bob")
    assert (state.status, state.owner) == ("investigating", "bob")
    assert [(n.author, n.text) for n in state.notes] == [("bob", "asked the processor"), ("bob", "they will re-send")]
    assert book.mine().empty and list(book.open(owner="bob")["key"]) == ["credit:c1"]


def test_resolving_needs_a_reason_code(one_break):
    with pytest.raises(BreakBookError, match="'FIXED' is not a reason code"):
        one_break.resolve("c1", "FIXED")
    with pytest.raises(BreakBookError, match="OTHER needs a note"):
        one_break.resolve("c1", "OTHER")
    with pytest.raises(BreakBookError, match="does not close"):
        one_break.resolve("c1", "TIMING", status="investigating")
    assert one_break.get("c1").status == "open"
    assert [e.kind for e in one_break.events("c1")] == ["opened"]


def test_sign_off_needs_a_second_person(one_break):
    book = one_break
    with pytest.raises(BreakBookError, match="only a closed break"):
        book.sign_off("c1", by="bob")
    book.resolve("c1", "PROCESSOR_CORRECTED")
    with pytest.raises(BreakBookError, match="ann resolved break credit:c1 and cannot also sign it off"):
        book.sign_off("c1")
    with pytest.raises(BreakBookError, match="already resolved"):
        book.resolve("c1", "TIMING", by="bob")
    state = book.sign_off("c1", by="bob")
    assert (state.signed_off_by, state.resolved_by, state.reason) == ("bob", "ann", "PROCESSOR_CORRECTED")
    with pytest.raises(BreakBookError, match="already signed off by bob"):
        book.sign_off("c1", by="carol")


def test_reopening_is_recorded_and_withdraws_the_sign_off(one_break):
    book = one_break
    with pytest.raises(BreakBookError, match="not closed"):
        book.reopen("c1", "why not")
    book.assign("c1", "ann")
    book.resolve("c1", "FALSE_BREAK")
    book.sign_off("c1", by="bob")
    with pytest.raises(BreakBookError, match="needs a reason"):
        book.reopen("c1", " ")
    state = book.reopen("c1", "the customer says no money arrived", by="bob")
    assert (state.status, state.reason, state.signed_off_by, state.owner) == ("investigating", None, None, "ann")
    assert state.notes[-1].text == "the customer says no money arrived"
    assert [e.kind for e in book.events("c1")] == ["opened", "assigned", "resolved", "signed_off", "reopened"]


def test_acting_on_a_stale_version_is_refused(one_break):
    book = one_break
    seen = book.get("c1").version
    book.assign("c1", "bob", by="bob")
    with pytest.raises(BreakConflictError, match="changed since version"):
        book.resolve("c1", "TIMING", expected_version=seen)
    assert book.get("c1").status == "investigating"
    book.resolve("c1", "TIMING", expected_version=book.get("c1").version)


def test_unknown_or_ambiguous_breaks_are_named(book):
    book.record(run(credits_frame({"c10": "1.00", "c11": "2.00"}), [], T0))
    with pytest.raises(BreakBookError, match="no break 'zz'"):
        book.note("zz", "x")
    with pytest.raises(BreakBookError, match="'credit:c1' names 2 breaks"):
        book.get("credit:c1")
    assert book.find("c10") == "credit:c10"


def test_the_analyst_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("RECONKIT_ANALYST", " dana ")
    assert current_analyst() == "dana"
    with BreakBook(tmp_path / "l.sqlite3") as book:
        book.record(run(credits_frame({"c1": "1.00"}), [], T0))
        assert book.analyst == "dana"
        assert book.note("c1", "hello").notes[-1].author == "dana"
    # Blank or unset, the operating-system user (getpass reads $LOGNAME first).
    monkeypatch.setenv("LOGNAME", "erin")
    monkeypatch.setenv("RECONKIT_ANALYST", "  ")
    assert current_analyst() == "erin"
    monkeypatch.delenv("RECONKIT_ANALYST")
    assert current_analyst() == "erin"


def test_the_event_log_refuses_updates_and_deletes(one_break, tmp_path):
    one_break.note("c1", "kept forever")
    conn = sqlite3.connect(tmp_path / "ledger.sqlite3")
    try:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("UPDATE break_events SET actor='mallory'")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("DELETE FROM break_events")
    finally:
        conn.close()
    assert [e.actor for e in one_break.events()] == [SYSTEM, "ann"]


def test_the_book_shares_the_ledgers_file(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    with BreakBook(ledger, analyst="ann") as book:
        book.record(run(credits_frame({"c1": "1.00"}), [], T0))
    with BreakBook(str(tmp_path / "ledger.sqlite3"), analyst="bob") as again:
        assert list(again.open()["key"]) == ["credit:c1"]
    assert ledger.credits().empty  # the ledger's own tables are untouched
    ledger.close()


# --- aging ---------------------------------------------------------------------------------------

def test_age_buckets_have_the_documented_edges():
    assert [age_bucket(d) for d in (0, 2, 3, 7, 8, 30, 31, 400)] == [
        "0–2", "0–2", "3–7", "3–7", "8–30", "8–30", ">30", ">30"]
    assert AGE_BUCKETS == ("0–2", "3–7", "8–30", ">30")


def test_aging_counts_open_breaks_since_first_seen_and_since_submission(book):
    as_of1 = datetime.fromisoformat("2026-11-10T12:00:00+00:00")
    submitted = {"young": datetime.fromisoformat("2026-11-09T09:00:00+00:00"),   # 1 day: pending (grace 3)
                 "week": datetime.fromisoformat("2026-11-04T12:00:00+00:00"),    # 6 days
                 "month": datetime.fromisoformat("2026-10-20T12:00:00+00:00"),   # 21 days
                 "old": datetime.fromisoformat("2026-09-01T00:00:00+00:00")}     # 70 days
    amounts = {"young": "1.00", "week": "2.00", "month": "3.00", "old": "4.00"}
    credits = credits_frame(amounts, submitted)
    book.record(run(credits, [], as_of1))
    as_of2 = datetime.fromisoformat("2026-11-14T12:00:00+00:00")
    book.record(run(credits_frame({**amounts, "late": "5.00"}, {**submitted, "late": as_of2 - days(1)}), [], as_of2))
    # young was pending at run 1 but is overdue at run 2 (5 days > grace 3); late is pending
    table = book.open().set_index("key")
    expected_open = {"young": 4, "week": 4, "month": 4, "old": 4, "late": 0}   # days since 10 Nov / 14 Nov
    expected_submission = {"young": 5, "week": 10, "month": 25, "old": 74, "late": 1}
    for credit, n in expected_open.items():
        assert table.loc[f"credit:{credit}", "days_open"] == n
        assert table.loc[f"credit:{credit}", "days_since_submission"] == expected_submission[credit]
    assert table.loc["credit:late", "category"] == "timing difference"
    aging = book.aging()
    shown = aging[aging["breaks"] > 0].set_index(["basis", "category", "bucket"])
    assert shown["breaks"].to_dict() == {
        ("first seen", "break", "3–7"): 4, ("first seen", "timing difference", "0–2"): 1,
        ("submission", "break", "3–7"): 1, ("submission", "break", "8–30"): 2, ("submission", "break", ">30"): 1,
        ("submission", "timing difference", "0–2"): 1}
    assert shown.loc[("submission", "break", "8–30"), "amount_at_risk"] == Decimal("5.00")  # week 2.00 + month 3.00
    assert set(aging["bucket"]) == set(AGE_BUCKETS)
    # a closed break leaves the aging
    book.resolve("old", "WRITE_OFF", status="written_off")
    assert book.aging().query("bucket == '>30' and basis == 'submission'")["breaks"].sum() == 0


# --- audit ---------------------------------------------------------------------------------------

def test_the_audit_lists_every_change_with_who_and_when(book, tmp_path):
    _two_days(book)
    book.assign("c4", "ann")
    book.note("c4", "short by 1.50", by="ann")
    book.resolve("c4", "PROCESSOR_CORRECTED", by="ann")
    book.sign_off("c4", by="bob", note="checked the statement")
    audit = book.audit()
    events = book.events()
    assert len(audit) == len(events) and audit["seq"].tolist() == [e.seq for e in events]
    c4 = audit[audit["break_key"] == "credit:c4"]
    assert c4[["event", "who", "status_after"]].values.tolist() == [
        ["opened", SYSTEM, "open"], ["assigned", "ann", "investigating"], ["noted", "ann", "investigating"],
        ["resolved", "ann", "resolved"], ["signed_off", "bob", "resolved"]]
    assert audit["at"].is_monotonic_increasing and str(audit["at"].dt.tz) == "UTC"

    csv = pd.read_csv(book.export_audit(tmp_path / "audit.csv"), dtype=str)
    assert csv["who"].tolist() == audit["who"].tolist()
    assert csv["event"].tolist() == audit["event"].tolist()
    sheet = openpyxl.load_workbook(book.export_audit(tmp_path / "audit.xlsx"))["Audit"]
    header = [c.value for c in sheet[1]]
    assert header == list(audit.columns)
    assert sheet.max_row == len(audit) + 1
    at = sheet.cell(row=2, column=header.index("at") + 1)
    assert isinstance(at.value, datetime) and at.number_format == "yyyy-mm-dd hh:mm:ss.000"
    written = audit["at"].iloc[0].tz_convert("UTC").tz_localize(None).to_pydatetime()
    assert abs(at.value - written) < timedelta(milliseconds=1)  # Excel keeps milliseconds
    last = [c.value for c in sheet[sheet.max_row]]
    assert (last[header.index("who")], last[header.index("event")], last[header.index("note")]) == (
        "bob", "signed_off", "checked the statement")
    workbook = openpyxl.load_workbook(tmp_path / "audit.xlsx")
    assert workbook.sheetnames == ["Audit", "Breaks", "Aging", "Runs"]
    breaks = pd.read_excel(tmp_path / "audit.xlsx", sheet_name="Breaks", dtype={"key": str})
    assert breaks["key"].tolist() == book.table()["key"].tolist()
    assert breaks.set_index("key").loc["credit:c4", "open_bucket"] == "0–2"
    aging = pd.read_excel(tmp_path / "audit.xlsx", sheet_name="Aging")
    assert aging["breaks"].sum() == book.aging()["breaks"].sum()
    with pytest.raises(BreakBookError, match=r"\.csv or \.xlsx"):
        book.export_audit(tmp_path / "audit.txt")


_texts = st.one_of(st.none(), st.just(""), st.just("  "), st.text("0123456789AB ", min_size=1, max_size=6))


@settings(max_examples=examples(60), deadline=None)  # each example writes and reads a break book on disk
@given(st.lists(st.tuples(_texts, _texts,
                          st.one_of(st.none(), st.decimals(-10**6, 10**6, places=3, allow_nan=False)),
                          st.sampled_from(["USD", " usd", "JPY", "KWD", "XXX", None]),
                          st.one_of(st.none(), st.dates(date(2020, 1, 1), date(2030, 1, 1)))), max_size=12))
def test_the_column_keys_are_the_row_keys(rows):
    frame = pd.DataFrame(rows, columns=["q", "r", "amount", "currency", "day"])
    frame["day"] = pd.to_datetime(frame["day"])
    got = settlement_keys(frame["q"], frame["r"], frame["amount"], frame["currency"], frame["day"])
    assert got.tolist() == [settlement_key(*row) for row in frame.itertuples(index=False)]


def test_a_results_break_rows_find_their_status_and_owner(book):
    credits = credits_frame({"c4": "40.00"})
    result = run(credits, [("r-c4", "c4", "38.50", "2026-11-03"),
                           ("r-x", "7000000000000000000001", "5.25", "2026-11-03")], T0 + days(1))
    book.record(result)
    book.assign("c4", "ann")
    book.note("c4", "asked the processor", by="ann")
    book.resolve("settlement:7000000000000000000001", "FALSE_BREAK")
    frame = result.breaks
    work = book.workflow(frame)
    by_id = dict(zip(frame["credit_id"].fillna(frame["request_id"]), work.itertuples(index=False), strict=True))
    assert tuple(by_id["c4"]) == ("investigating", "ann", "ann: asked the processor")
    assert tuple(by_id["7000000000000000000001"]) == ("resolved", None, None)
    other = run(credits_frame({"c9": "1.00"}), [], T0)
    assert book.workflow(other.breaks).values.tolist() == [[None, None, None]]


def test_an_unexpected_row_seen_on_two_days_in_different_states_shows_its_own_status(book):
    # The two rows share request id, amount and currency; only their batch dates tell them apart.
    rows = [("r-x", "7000000000000000000001", "5.25", "2026-11-03"),
            ("r-x", "7000000000000000000001", "5.25", "2026-11-04")]
    result = run(credits_frame({}), rows, T0 + days(3))
    book.record(result)
    book.resolve("settlement:7000000000000000000001|5.25|USD|2026-11-03", "FALSE_BREAK")
    book.assign("settlement:7000000000000000000001|5.25|USD|2026-11-04", "bob")
    frame = result.breaks
    work = book.workflow(frame)
    by_day = {day.date().isoformat(): tuple(w) for day, w in zip(frame["batch_date"], work.itertuples(index=False),
                                                                 strict=True)}
    assert by_day == {"2026-11-03": ("resolved", None, None), "2026-11-04": ("investigating", "bob", None)}
    # A frame built before the break table carried the batch date cannot tell the days apart.
    assert book.workflow(frame.drop(columns="batch_date")).values.tolist() == [[SEVERAL_DAYS, None, None]] * 2


def test_identical_unexpected_rows_in_different_states_show_no_ones_status(book):
    # Same ids, amount and day: the book numbers the copies in reading order, which a page does not keep.
    row = ("r-x", "7000000000000000000001", "5.25", "2026-11-03")
    result = run(credits_frame({}), [row, row], T0 + days(3))
    book.record(result)
    book.resolve("settlement:7000000000000000000001|5.25|USD|2026-11-03#2", "FALSE_BREAK")
    assert book.workflow(result.breaks).values.tolist() == [[SEVERAL_ROWS, None, None]] * 2
    book.resolve("settlement:7000000000000000000001|5.25|USD|2026-11-03", "FALSE_BREAK")
    assert book.workflow(result.breaks).values.tolist() == [["resolved", None, None]] * 2
