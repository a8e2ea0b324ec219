"""Exports are inert (issue 21): no cell that came from outside data runs as a formula in a
spreadsheet (OWASP CSV injection), and control characters are shown escaped — in every CSV and
workbook the project writes, in the HTML report and on the command line.

Hostile text is planted where outside data enters: a settlement file's ids and its file name, the
credits' ids, analysts' names, owners and notes in the break book, the app's search words. Every
export is read back with the ``csv`` module and openpyxl, and each value is compared with the
rendering this file derives on its own (:func:`expected_cell`, :func:`expected_shown`).
"""

from __future__ import annotations

import csv
import html
import json
import re
from decimal import Decimal
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconkit import BreakBook, inert, read_settlement, reconcile
from reconkit.cli import main

from .conftest import examples
from .hostile import HostileServer

# --- the expectation, derived here (not from reconkit.inert) ----------------------------------

TRIGGERS = set("=+-@\t\r\n") | {"\uff1d", "\uff0b", "\uff0d", "\uff20"}
"""OWASP's first characters (= + - @ tab CR, LF in one revision) and the full-width twins."""


BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
"""Unicode's bidirectional formatting characters (UAX #9): ALM, LRM, RLM, LRE-RLO, LRI-PDI."""


def _is_control(ch: str) -> bool:
    code = ord(ch)
    return code < 0x20 or 0x7F <= code <= 0x9F or ch in "\ufffe\uffff" or ch in BIDI


def _escaped(text: str, keep: str) -> str:
    return "".join(ch if ch in keep or not _is_control(ch)
                   else (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}") for ch in text)


def expected_cell(text: str) -> str:
    """A CSV or workbook cell for outside text: controls escaped but tab and line feed, then a
    quote in front when it starts like a formula."""
    shown = _escaped(text, "\t\n")
    return "'" + shown if shown[:1] in TRIGGERS | {"'"} else shown


def expected_shown(text: str) -> str:
    """Outside text on a terminal or page: every control escaped, no quote."""
    return _escaped(text, "")


def recovered(cell: str) -> str:
    """The original text back from a cell (no backslash in the originals used here)."""
    if cell.startswith("'"):  # the quote the writer put in front
        cell = cell[1:]
    return re.sub(r"\\x([0-9a-f]{2})|\\u([0-9a-f]{4})", lambda m: chr(int(m.group(1) or m.group(2), 16)), cell)


RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ufffe\uffff" + BIDI + "]")
"""What no file cell may hold (tab and line feed are legal inside a quoted CSV field or a cell)."""


def assert_inert_text(value: str, where: str) -> None:
    assert not RAW_CONTROL.search(value), f"{where}: raw control character in {value!r}"
    if value[:1] in TRIGGERS:
        raise AssertionError(f"{where}: {value!r} starts like a formula")


# --- the cases ----------------------------------------------------------------------------------

IDS = {
    "equals": "=1+2",
    "plus": "+1+2",
    "minus": "-1+2",
    "at": "@SUM(1+1)",
    "hyperlink": '=HYPERLINK("http://x","y")',
    "dde": "=cmd|' -C calc'!A0",
    "escape": "esc\x1b[31mred",
    "bell": "bel\x07l",
    "escape first": "\x1b]0;pwned\x07",
    "full-width equals": "\uff1d1+2",
    "C1 control": "nel\x85x",
    "right-to-left override": "rec-\u202e987\u202c-1",
    "isolate": "rec-\u2067abc\u2069",
}
"""Ids planted in the credits and in a settlement file (readers strip leading and trailing
whitespace from ids, so the tab- and CR-led cases ride on file names, names and notes instead)."""

FILE_NAMES = {"tab": "\t=1+2\x07.csv", "carriage return": "\r=cmd|' -C calc'!A0.csv",
              "hyperlink": '=HYPERLINK("http:x","y")\x1b.csv'}
"""Settlement file names (a file name may hold any character but ``/``)."""

ANALYST = "=cmd|' -C calc'!A0"
OWNER = "@SUM(1+1)"
CHECKER = "+1+2"  # names cannot hold control characters (the book refuses them); notes can
NOTES = ['=HYPERLINK("http://x","y")', "-1+2 short-paid\x1b[31m", "x\t=1+2\r=1+2"]

HEADER = ["batch_id", "merchant_id", "batch_date", "request_id", "merchant_ref_number", "trans_ref_no",
          "payment_method", "currency", "amount", "transaction_type"]


def _write_settlement(path: Path, ids: list[str]) -> Path:
    """A Payment Batch Detail Report that settles each id for 9.00 USD (credits are 10.00)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(["Payment Batch Detail Report", "1.0", "2026-11-03 to 2026-11-04"] + [""] * 7)
        writer.writerow(HEADER)
        for n, text in enumerate(ids, start=1):
            writer.writerow([f"26110{n:02d}001", "m1", "2026-11-03", text, f"ref-{n}", text, "Visa", "USD", "-9.00",
                             "ics_credit"])
    return path


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A reconciliation of hostile ids from three hostile file names, and a break book worked on by
    hostile names with hostile notes."""
    folder = tmp_path_factory.mktemp("hostile")
    ids = list(IDS.values())
    thirds = [ids[0::3], ids[1::3], ids[2::3]]
    files = [_write_settlement(folder / name, part) for name, part in zip(FILE_NAMES.values(), thirds, strict=True)]
    credits = pd.DataFrame({"credit_id": ids, "reconciliation_id": ids, "status": ["PENDING"] * len(ids),
                            "submit_time_utc": pd.to_datetime(["2026-11-02T10:00:00Z"] * len(ids), utc=True),
                            "amount": [Decimal("10.00")] * len(ids), "currency": ["USD"] * len(ids)})
    # An unexpected settlement row: a break with a request id and no credit.
    extra = _write_settlement(folder / "plain.csv", ["@unexpected\x1b"])
    settlement = read_settlement([str(f) for f in [*files, extra]])
    result = reconcile(credits, settlement, as_of="2026-11-04T00:00:00Z", environment="SANDBOX")
    ledger = str(folder / "ledger.sqlite3")
    book = BreakBook(ledger, analyst=ANALYST)
    book.record(result, inputs=[*files, extra])
    key = f"credit:{IDS['dde']}"
    book.assign(key, OWNER)
    book.note(key, NOTES[0], by=OWNER)
    book.note(key, NOTES[2])
    book.resolve(key, "OTHER", note=NOTES[1], by=OWNER)
    book.sign_off(key, by=CHECKER, note="=1+2 checked\x07")
    return result, book, files, folder, ledger


def test_the_reconciliation_keeps_every_planted_id(planted):
    """The cases reach the exports: every id is a break on its credit and its settlement row."""
    result, *_ = planted
    breaks = result.breaks
    assert set(breaks["credit_id"].dropna()) == set(IDS.values())
    assert set(breaks["outcome"]) == {"AMOUNT_MISMATCH", "UNEXPECTED_SETTLEMENT"}
    assert {Path(f).name for f in breaks["source_file"].dropna()} == {*FILE_NAMES.values(), "plain.csv"}


# --- readers of the exports ---------------------------------------------------------------------

def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    for number, row in enumerate(rows, start=1):
        for value in row:
            assert_inert_text(value, f"{path.name} row {number}")
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


def _workbook_rows(path: Path) -> dict[str, list[dict[str, object]]]:
    """Every sheet's rows; asserts no cell is a formula and no text cell starts like one."""
    book = openpyxl.load_workbook(path)
    sheets = {}
    for sheet in book.worksheets:
        rows = []
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", f"{path.name}!{sheet.title}!{cell.coordinate} is a formula: {cell.value!r}"
                if isinstance(cell.value, str):
                    assert_inert_text(cell.value, f"{path.name}!{sheet.title}!{cell.coordinate}")
            rows.append([c.value for c in row])
        sheets[sheet.title] = [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]
    return sheets


def _expected_column(values) -> list[str]:
    return ["" if pd.isna(v) else expected_cell(str(v)) for v in values]


# --- the report: CSV, Excel, HTML ---------------------------------------------------------------

def test_the_break_csv_is_inert_and_every_value_round_trips(planted, tmp_path):
    result, *_ = planted
    rows = _csv_rows(result.to_csv(tmp_path / "breaks.csv"))
    breaks = result.breaks
    for column in ("credit_id", "reconciliation_id", "request_id", "detail"):
        assert [r[column] for r in rows] == _expected_column(breaks[column]), column
    assert [r["source_file"] for r in rows] == _expected_column(breaks["source_file"].map(lambda f: Path(f).name))
    # Visible round trip: the original text comes back from the cell.
    assert {recovered(r["credit_id"]) for r in rows if r["credit_id"]} == set(IDS.values())
    assert {recovered(r["source_file"]) for r in rows} == {*FILE_NAMES.values(), "plain.csv"}
    # Amounts are the engine's numbers, not quoted: 10.00 credited, 9.00 settled.
    assert {r["credit_amount"] for r in rows if r["credit_id"]} == {"10.00"}
    assert {r["settled_amount"] for r in rows} == {"9.00"}


def test_the_workbook_has_no_formula_and_every_value_round_trips(planted, tmp_path):
    result, _book, files, *_ = planted
    sheets = _workbook_rows(result.to_excel(tmp_path / "breaks.xlsx"))
    breaks = result.breaks
    shown = sheets["Breaks"]
    for column, label in (("credit_id", "Credit id"), ("reconciliation_id", "Reconciliation id"),
                          ("request_id", "Request id"), ("detail", "Why")):
        assert [r[label] or "" for r in shown] == _expected_column(breaks[column]), label
    assert [r["Settlement file"] for r in shown] == _expected_column(breaks["source_file"].map(lambda f: Path(f).name))
    # Amounts stay numbers (the at-risk 1.00 of each mismatch, the 9.00 each row settled).
    assert {type(r["Settled amount"]) for r in shown} == {float}
    assert {r["Settled amount"] for r in shown} == {9.0}
    inputs = [r["Value"] for r in sheets["Parameters"] if r["Parameter"] == "Input file"]
    assert sorted(inputs) == sorted(expected_cell(str(f)) for f in [*files, files[0].with_name("plain.csv")])


def test_the_html_report_shows_control_characters_escaped(planted):
    result, *_ = planted
    page = result.to_html(figures=False)
    assert not RAW_CONTROL.search(page.replace("\n", ""))
    assert "\t" not in page
    shown = html.unescape(page)
    for text in [*IDS.values(), *FILE_NAMES.values()]:
        assert expected_shown(text) in shown, repr(text)
    summary = result._repr_html_()
    assert not RAW_CONTROL.search(summary)


@pytest.mark.parametrize("search", ["=1+2", "@SUM(1+1)", "\x1b[31m"])
def test_a_filtered_export_quotes_the_filter_it_names(planted, tmp_path, search):
    """The app's filtered export writes the analyst's search words into its Parameters sheet."""
    from reconkit.widgets.filtered import FilteredView

    result, *_ = planted
    description = f"outcome = (all breaks); search = {search}; 1 of {len(result.breaks)} break(s)"
    view = FilteredView.of(result, np.array([0]), description)
    rows = _csv_rows(view.to_csv(tmp_path / "filtered.csv"))
    assert len(rows) == 1
    sheets = _workbook_rows(view.to_excel(tmp_path / "filtered.xlsx"))
    parameters = {r["Parameter"]: r["Value"] for r in sheets["Parameters"]}
    assert parameters["Filter"] == expected_cell(description)
    description_first = _workbook_rows(FilteredView.of(result, np.array([0]), search).to_excel(tmp_path / "f2.xlsx"))
    assert {r["Parameter"]: r["Value"] for r in description_first["Parameters"]}["Filter"] == expected_cell(search)


# --- the break book's audit ---------------------------------------------------------------------

def _check_audit(rows: list[dict[str, object]], book: BreakBook) -> None:
    audit = book.audit()
    assert [r["who"] for r in rows] == _expected_column(audit["who"])
    assert [r["break_key"] for r in rows] == _expected_column(audit["break_key"])
    assert [r["note"] or "" for r in rows] == _expected_column(audit["note"])
    assert [r["owner_after"] or "" for r in rows] == _expected_column(audit["owner_after"])
    assert [r["details"] or "" for r in rows] == _expected_column(audit["details"])
    who = {recovered(str(r["who"])) for r in rows}
    assert {ANALYST, OWNER, CHECKER} <= who
    notes = {recovered(str(r["note"])) for r in rows if r["note"]}
    assert set(NOTES) | {"=1+2 checked\x07"} <= notes


def test_the_audit_csv_is_inert_and_round_trips(planted, tmp_path):
    _result, book, *_ = planted
    rows = _csv_rows(book.export_audit(tmp_path / "audit.csv"))
    _check_audit(rows, book)


def test_the_audit_workbook_has_no_formula_and_round_trips(planted, tmp_path):
    """An ESC in an id crashed this export (openpyxl's IllegalCharacterError); names and notes were
    stored as live formulas."""
    _result, book, files, *_ = planted
    sheets = _workbook_rows(book.export_audit(tmp_path / "audit.xlsx"))
    _check_audit(sheets["Audit"], book)
    table = book.table()
    assert [r["key"] for r in sheets["Breaks"]] == _expected_column(table["key"])
    assert [r["owner"] or "" for r in sheets["Breaks"]] == _expected_column(table["owner"])
    # Amounts at risk are numbers in the workbook, not text.
    assert {type(r["amount_at_risk"]) for r in sheets["Breaks"]} <= {int, float}
    runs = sheets["Runs"]
    assert runs[0]["analyst"] == expected_cell(ANALYST)
    assert runs[0]["files"] == expected_cell(", ".join(f.name for f in [*files, files[0].with_name("plain.csv")]))
    assert recovered(runs[0]["files"]).startswith(FILE_NAMES["tab"])


# --- the command line -----------------------------------------------------------------------------

def test_breaks_list_and_show_print_no_raw_control_character(planted, capsys):
    _result, _book, _files, _folder, ledger = planted
    for action in (["list", "--all"], ["list"], ["show", IDS["escape"]], ["show", IDS["dde"]], ["runs"],
                   ["note", IDS["bell"], "seen\x1b[2J"]):
        assert main(["breaks", "--ledger", ledger, "--as", "@ann", *action]) == 0, action
        out = capsys.readouterr().out
        assert not RAW_CONTROL.search(out.replace("\n", "")) and "\t" not in out, (action, out)
    assert main(["breaks", "--ledger", ledger, "list", "--all"]) == 0
    out = capsys.readouterr().out
    for text in IDS.values():
        assert expected_shown(f"credit:{text}") in out, text
    assert main(["breaks", "--ledger", ledger, "show", IDS["dde"]]) == 0
    out = capsys.readouterr().out
    for text in (OWNER, CHECKER, *NOTES):
        assert expected_shown(text) in out, text
    # Refusals quote what was typed: a bad key, a reason that is not a reason code.
    for refused in (["show", "no such\x1b[2J"], ["resolve", IDS["bell"], "--reason", "=1+2\x1b]0;x\x07"],
                    ["--as", "ann\x1b[8m", "note", IDS["bell"], "seen"]):
        assert main(["breaks", "--ledger", ledger, *refused]) == 2
        err = capsys.readouterr().err
        assert err.strip() and not RAW_CONTROL.search(err.replace("\n", "")), err


SERVER_REASON = "=cmd|' -C calc'!A0"
SERVER_MESSAGE = "@SUM(1+1)\x1b[2J\x07"
"""What the hostile server answers every request with: a 400 built to run in a spreadsheet."""


@pytest.fixture
def hostile_server():
    body = json.dumps({"status": "INVALID_REQUEST", "reason": SERVER_REASON, "message": SERVER_MESSAGE}).encode()
    with HostileServer(lambda *_request: (400, {"Content-Type": "application/json"}, body)) as server:
        yield server.url


def test_the_unfetched_ids_csv_is_inert(hostile_server, tmp_path, monkeypatch, capsys):
    """``reconkit reconcile`` lists the ids it could not fetch with the server's reason and message:
    a server's words are outside data too."""
    sample = Path(__file__).parents[1] / "data" / "sample"
    monkeypatch.setenv("RECONKIT_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("CYBERSOURCE_ENVIRONMENT", hostile_server)
    monkeypatch.setenv("CYBERSOURCE_MERCHANT_ID", "m1")
    monkeypatch.setenv("CYBERSOURCE_KEY_ID", "k1")
    monkeypatch.setenv("CYBERSOURCE_SECRET_KEY", "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0")
    monkeypatch.chdir(tmp_path)
    ids = ["0001234567890123456789", "7001234567890123456780"]
    pd.DataFrame({"credit_id": ids}).to_csv(tmp_path / "ids.csv", index=False)
    assert main(["reconcile", "ids.csv", str(sample / "pbdr_csv.csv"), "-o", "r.html"]) == 2
    captured = capsys.readouterr()
    assert "2 of 2 credit id(s) could not be fetched" in captured.err
    rows = _csv_rows(tmp_path / "r_unfetched.csv")
    assert sorted(r["id"] for r in rows) == ids
    assert {r["reason"] for r in rows} == {expected_cell(SERVER_REASON)}
    assert {r["message"] for r in rows} == {expected_cell(SERVER_MESSAGE)}
    assert {recovered(r["message"]) for r in rows} == {SERVER_MESSAGE}


# --- the rule itself ------------------------------------------------------------------------------

CELLS = {
    "equals": ("=1+2", "'=1+2"),
    "plus": ("+1+2", "'+1+2"),
    "minus": ("-1+2", "'-1+2"),
    "at": ("@SUM(1+1)", "'@SUM(1+1)"),
    "hyperlink": ('=HYPERLINK("http://x","y")', "'=HYPERLINK(\"http://x\",\"y\")"),
    "tab then equals": ("\t=1+2", "'\t=1+2"),
    "CR then equals": ("\r=1+2", "\\x0d=1+2"),
    "LF then equals": ("\n=1+2", "'\n=1+2"),
    "dde": ("=cmd|' -C calc'!A0", "'=cmd|' -C calc'!A0"),
    "ESC": ("a\x1b[31mb", "a\\x1b[31mb"),
    "BEL": ("\x07", "\\x07"),
    "NUL": ("a\x00", "a\\x00"),
    "DEL": ("a\x7f", "a\\x7f"),
    "C1": ("\x9b31m", "\\x9b31m"),
    "XML non-character": ("a\ufffe", "a\\ufffe"),
    "full-width equals": ("\uff1d1+2", "'\uff1d1+2"),
    "full-width plus": ("\uff0b1", "'\uff0b1"),
    "full-width minus": ("\uff0d1", "'\uff0d1"),
    "full-width at": ("\uff20A1", "'\uff20A1"),
    "plain": ("0001234567890123456789", "0001234567890123456789"),
    "quote already": ("'=1", "''=1"),
    "quote then text": ("'a", "''a"),
    "empty": ("", ""),
    "inner equals": ("a=1+2", "a=1+2"),
}


@pytest.mark.parametrize("case", CELLS)
def test_a_cell_is_quoted_or_escaped_as_the_table_says(case):
    raw, cell = CELLS[case]
    assert inert.cell(raw) == cell == expected_cell(raw)
    assert recovered(cell) == raw
    frame = inert.frame(pd.DataFrame({"text": [raw]}))
    assert frame["text"].tolist() == [cell]


def test_numbers_stay_numbers_and_an_outside_amount_as_text_is_quoted():
    frame = pd.DataFrame({"amount": [Decimal("-12.50"), Decimal("3.00")], "float": [-1.5, 2.0],
                          "count": [-3, 4], "text_amount": ["-12.50", "3.00"]})
    out = inert.frame(frame)
    assert out["amount"].tolist() == [Decimal("-12.50"), Decimal("3.00")]
    assert out["float"].tolist() == [-1.5, 2.0] and out["count"].tolist() == [-3, 4]
    assert out["text_amount"].tolist() == ["'-12.50", "3.00"]  # an amount read as text from outside
    assert inert.cell(-5) == -5 and inert.cell(None) is None


def test_the_audit_keeps_a_negative_amount_a_number(tmp_path):
    """A genuine negative number the project writes as a number stays a number in both formats."""
    book_frame = pd.DataFrame({"who": ["=1+2"], "amount": [Decimal("-12.50")], "count": [-3]})
    path = tmp_path / "n.xlsx"
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        inert.frame(book_frame).to_excel(writer, index=False)
    sheet = openpyxl.load_workbook(path).active
    assert [c.data_type for c in sheet[2]] == ["s", "n", "n"]
    assert [c.value for c in sheet[2]] == ["'=1+2", -12.5, -3]


@settings(max_examples=examples(200), deadline=None)  # cheap examples over any text
@given(st.text(st.characters(blacklist_characters="\\"), max_size=12))
def test_any_text_becomes_an_inert_cell_that_gives_the_text_back(text):
    cell = inert.cell(text)
    if cell[:1] != "'":
        assert_inert_text(cell, "cell")
    assert not RAW_CONTROL.search(cell)
    assert cell == expected_cell(text) and recovered(cell) == text
    assert not RAW_CONTROL.search(inert.shown(text)) and "\t" not in inert.shown(text) \
        and "\n" not in inert.shown(text)


@settings(deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=8)), max_size=20))
def test_the_vectorised_rule_is_the_cell_rule(values):
    import pyarrow as pa

    assert inert.arrow(pa.array(values, pa.string())).to_pylist() == [None if v is None else inert.cell(v)
                                                                     for v in values]


def test_the_apps_show_control_characters_escaped(planted):
    """The break-book panel draws the planted keys, names and notes with no raw control character."""
    from reconkit.widgets.breaks_panel import BreaksPanel

    _result, book, _files, _folder, _ledger = planted
    panel = BreaksPanel(book)
    panel.model.status = "all"
    seen = []
    for key in book.table()["key"]:
        panel.pick.value = key
        seen += [panel.table.value, panel.details.value, panel.message.value, panel.summary.value]
    assert seen and not any(RAW_CONTROL.search(text) for text in seen)
    assert any("\\x1b" in text for text in seen)  # shown, as its escape
