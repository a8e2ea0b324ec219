"""Notebook 02's app without a browser: set values, click, and compare what it shows and writes
with the settlement generator's ground truth (never with the app's own computation)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from reconkit.outcomes import BREAKS
from reconkit.sandbox import Sandbox
from reconkit.sandbox.scenario import populate
from reconkit.widgets import InvestigateApp
from reconkit.widgets.investigate import SHOWN_COLUMNS, format_amount, parse_ids, parse_tolerance

from .conftest import examples
from .oracle import truth_breaks

START = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
DIGITS = {"USD": 2, "EUR": 2, "GBP": 2, "JPY": 0, "KWD": 3, "CAD": 2, "AUD": 2, "CHF": 2}
"""ISO 4217 minor units of the currencies the sandbox issues (written out here, not imported)."""


def _upload(name: str, data: bytes) -> tuple[dict, ...]:
    return ({"name": name, "type": "text/csv", "size": len(data), "content": memoryview(data),
             "last_modified": START},)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("world")
    with Sandbox(start=START, seed=12) as sb:
        client = sb.client(ledger=str(folder / "ledger.sqlite3"))
        scenario = populate(sb, client, 60, seed=12, days=3, void_rate=0.08)
        bundle = sb.settlement(format="pbdr_csv", discrepancies={"missing": 2, "amount": 3, "duplicate": 2,
                                                                 "unexpected": 2, "voided_settled": 1},
                               out_dir=folder / "files", seed=12)
        yield sb, client, scenario, bundle


def _app(world, tmp_path, **options) -> InvestigateApp:
    _sb, client, _scenario, _bundle = world
    options.setdefault("data", tmp_path / "data")
    return InvestigateApp(client, out_dir=tmp_path / "out", **options)


def _reconciled(world, tmp_path, **options) -> InvestigateApp:
    _sb, _client, scenario, bundle = world
    app = _app(world, tmp_path, **options)
    app.ids.value = "\n".join(scenario.credit_ids)
    app.fetch_button.click()
    path = bundle.files[0]
    app.files_upload.value = _upload(path.name, path.read_bytes())
    app.load_button.click()
    app.as_of.value = bundle.as_of.isoformat()
    app.grace.value = bundle.grace_days
    app.reconcile_button.click()
    app.recorder.record_button.click()  # the analyst confirms the preview
    assert app.error.value == "" and app.result is not None
    return app


def _truth_breaks(bundle) -> pd.DataFrame:
    """The breaks the generator made: credits with a break outcome, plus break rows of no credit."""
    credits = bundle.credits_truth[bundle.credits_truth["outcome"].isin(BREAKS)][["outcome", "credit_id"]]
    rows = bundle.settlement_truth
    orphans = rows[rows["outcome"].isin(BREAKS) & rows["credit_id"].isna()][["outcome", "credit_id"]]
    return pd.concat([credits, orphans], ignore_index=True)


def _truth_amounts(world) -> pd.DataFrame:
    """:func:`tests.oracle.truth_breaks` of the world's settlement, given the credits as fetched."""
    _sb, client, scenario, bundle = world
    return truth_breaks(client.fetch_credits(scenario.credit_ids, progress=False).to_frame(), bundle)


def _pairs(frame: pd.DataFrame) -> list[tuple[str, str]]:
    return sorted((str(o), "" if pd.isna(c) else str(c)) for o, c in zip(frame["outcome"], frame["credit_id"],
                                                                          strict=True))


def _csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _hrefs(html_text: str) -> list[str]:
    return re.findall(r"href='([^']+)'", html_text)


# --- the whole workflow ------------------------------------------------------------------------

def test_investigate_from_uploads_to_exports_equals_the_truth(world, tmp_path):
    _sb, client, scenario, bundle = world
    runs_before = len(client.ledger.runs())
    app = InvestigateApp(client, data=tmp_path / "empty", out_dir=tmp_path / "out", page_size=5)
    ids = ("credit_id\n" + "\n".join(scenario.credit_ids) + "\nnot-an-id\n").encode()
    app.ids_upload.value = _upload("ids.csv", ids)
    app.fetch_button.click()
    assert "<b>60</b> credit(s)" in app.fetch_status.value and "malformed id" in app.failures.value
    app.files_upload.value = _upload(bundle.files[0].name, bundle.files[0].read_bytes())
    app.load_button.click()
    assert bundle.format in app.load_status.value and str(len(bundle.settlement_truth)) in app.load_status.value
    app.as_of.value = bundle.as_of.isoformat()
    app.reconcile_button.click()
    app.recorder.record_button.click()  # the analyst confirms the preview
    assert app.error.value == ""
    got = app.result.credits.set_index("credit_id")["outcome"].astype(str).to_dict()
    assert got == bundle.credits_truth.set_index("credit_id")["outcome"].astype(str).to_dict()
    assert sorted(app.result.settlement["outcome"].astype(str)) == sorted(bundle.settlement_truth["outcome"])
    assert "Breaks" in app.cards.value and "At risk" in app.cards.value
    runs = client.ledger.runs()
    assert len(runs) == runs_before + 1 and bundle.as_of.isoformat() in runs.iloc[-1]["parameters"]
    breaks = len(app.result.breaks)
    assert f"{breaks} break(s)" in app.page_label.value and app.prev_button.disabled
    app.next_button.click()
    assert app.page_box.value == 2
    app.outcome_filter.value = "AMOUNT_MISMATCH"
    mismatches = (bundle.credits_truth["outcome"] == "AMOUNT_MISMATCH").sum()
    assert f"{mismatches} break(s)" in app.page_label.value and app.page_box.value == 1
    app.outcome_filter.value = "(all breaks)"
    target = app.result.breaks.iloc[0]
    app.search.value = str(target["credit_id"])[-8:] if target["credit_id"] is not None and str(
        target["credit_id"]) != "<NA>" else str(target["reconciliation_id"])
    assert "1 break(s)" in app.page_label.value
    app.pick.value = app.pick.options[0][1]
    assert target["outcome"] in app.drill.value and "Settlement row" in app.drill.value
    app.export_all_button.click()
    for name in (f"report_{app.run_id}.html", f"breaks_{app.run_id}.xlsx", f"breaks_{app.run_id}.csv"):
        assert (tmp_path / "out" / name).exists() and f"download='{name}'" in app.export_links.value
    assert "data:" not in app.export_links.value  # links to files Jupyter serves, no payload in the page


def test_investigate_reports_read_errors_and_missing_steps(world, tmp_path):
    _sb, client, _scenario, _bundle = world
    app = InvestigateApp(client, data=tmp_path / "empty", out_dir=tmp_path / "out")
    app.reconcile_button.click()
    assert "fetch the credits first" in app.ids_error.value
    app.files_upload.value = _upload("broken.csv", b"trans_ref_no,amount,currency,transaction_type\n"
                                                   b"A,1.00,USD,ics_credit\nB,oops,USD,ics_credit\n")
    app.load_button.click()
    assert "Rows that could not be read" in app.read_errors.value and "oops" in app.read_errors.value
    app.files_upload.value = _upload("junk.bin", b"\x00\x01\x02")
    app.load_button.click()
    assert "binary" in app.error.value and "Traceback" not in app.error.value



# --- every run replaces or invalidates what it supersedes ---------------------------------

def test_each_run_replaces_every_view_and_downloads_belong_to_their_run(world, tmp_path):
    _sb, _client, _scenario, bundle = world
    app = _reconciled(world, tmp_path)
    first = app.run_id
    app.export_all_button.click()
    old_links = _hrefs(app.export_links.value)
    assert len(old_links) == 3 and all(first in link for link in old_links)
    assert _pairs(_csv(tmp_path / "out" / f"breaks_{first}.csv")) == _pairs(_truth_breaks(bundle))

    app.tolerance.value = "1000"  # every amount mismatch now within tolerance
    app.reconcile_button.click()
    app.recorder.record_button.click()  # the analyst confirms the preview
    second = app.run_id
    assert second != first and app.export_links.value == "" and app.stale.value == ""
    assert second in app.run_label.value and first not in app.run_label.value
    app.export_all_button.click()
    links = _hrefs(app.export_links.value)
    assert links and all(second in link for link in links) and not set(links) & set(old_links)
    want = _truth_breaks(bundle)
    want = want[want["outcome"] != "AMOUNT_MISMATCH"]
    assert _pairs(_csv(tmp_path / "out" / f"breaks_{second}.csv")) == _pairs(want)
    assert "AMOUNT_MISMATCH" not in app.table.value

    app.fetch_button.click()  # new credits: nothing of the old result may stay on screen
    assert app.result is None and app.export_links.value == "" and app.cards.value == ""
    assert app.table.value == "" and app.drill.value == "" and app.pick.options == ()
    assert "fetched again" in app.stale.value and app.export_all_button.disabled
    app.reconcile_button.click()
    app.recorder.record_button.click()  # the analyst confirms the preview
    third = app.run_id
    app.load_button.click()  # other settlement: the same
    assert app.result is None and app.run_id is None and "settlement was loaded" in app.stale.value
    assert third not in app.run_label.value and app.cards.value == ""


@pytest.mark.parametrize(("field", "value", "named"), [
    ("tolerance", "0.50", "amount tolerance"), ("grace", 9, "grace days"),
    ("as_of", "2026-12-01T00:00:00Z", "as of"), ("ids", "123", "credit ids"),
])
def test_results_that_no_longer_match_the_inputs_are_marked_stale(world, tmp_path, field, value, named):
    app = _reconciled(world, tmp_path)
    before = getattr(app, field).value
    app.export_all_button.click()
    assert app.export_links.value
    getattr(app, field).value = value
    assert named in app.stale.value and app.run_id in app.stale.value and app.export_links.value == ""
    assert all("reconkit-stale-view" in view._dom_classes for view in (app.cards, app.table, app.figures))
    app.export_all_button.click()
    assert "stale" in app.error.value and app.export_links.value == ""
    getattr(app, field).value = before
    assert app.stale.value == "" and "reconkit-stale-view" not in app.cards._dom_classes


def test_choosing_other_files_marks_the_result_stale(world, tmp_path):
    app = _reconciled(world, tmp_path)
    app.files_upload.value = _upload("other.csv", b"x")
    assert "settlement files" in app.stale.value


# --- a result is only ever shown for, and recorded as, what was fetched and loaded ---------------

def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _two_files(world, tmp_path) -> tuple[bytes, bytes]:
    """data/a.csv: the bundle's settlement file; data/b.csv: its header and first 5 credit rows."""
    _sb, _client, _scenario, bundle = world
    first = bundle.files[0].read_bytes()
    lines = first.decode().splitlines()
    second = ("\n".join(lines[:2] + [line for line in lines[2:] if "ics_credit" in line][:5]) + "\n").encode()
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "a.csv").write_bytes(first)
    (tmp_path / "data" / "b.csv").write_bytes(second)
    return first, second


def _last_run(app: InvestigateApp) -> pd.Series:
    return app.breaks_panel.book.runs().iloc[-1]


def _loaded_from_data(world, tmp_path, name: str) -> InvestigateApp:
    """Every credit fetched and ``data/<name>`` loaded, at the bundle's as-of time."""
    _sb, _client, scenario, bundle = world
    app = _app(world, tmp_path)
    app.ids.value = "\n".join(scenario.credit_ids)
    app.fetch_button.click()
    app.data_files.value = (name,)
    app.load_button.click()
    app.as_of.value = bundle.as_of.isoformat()
    return app


def test_reconcile_refuses_files_chosen_but_not_loaded_and_the_stale_banner_stays(world, tmp_path):
    first, second = _two_files(world, tmp_path)
    app = _loaded_from_data(world, tmp_path, "a.csv")
    app.reconcile_button.click()
    app.recorder.record_button.click()  # the analyst confirms the preview
    run, shown, runs = app.run_id, app.result, len(app.breaks_panel.book.runs())
    app.data_files.value = ("b.csv",)  # chosen, not loaded
    assert "settlement files" in app.stale.value and "b.csv" in app.chosen.value
    app.reconcile_button.click()
    assert app.result is shown and app.run_id == run  # nothing was reconciled, nothing recorded
    assert len(app.breaks_panel.book.runs()) == runs
    assert "settlement files" in app.stale.value and "Stale" in app.stale.value
    assert "b.csv" in app.files_error.value and "a.csv" in app.files_error.value
    assert "Load settlement" in app.files_error.value and "Not reconciled" in app.error.value
    app.data_files.value = ("a.csv",)  # back to what the result was computed from: current again
    assert app.stale.value == ""
    app.data_files.value = ("b.csv",)
    app.load_button.click()
    app.reconcile_button.click()
    app.recorder.record_button.click()  # the analyst confirms the preview
    assert app.error.value == "" and app.stale.value == "" and app.run_id != run
    assert [Path(f).name for f in app.result.parameters["input_files"]] == ["b.csv"]
    assert len(app.result.settlement) == 5 and "b.csv" in app.run_label.value and "a.csv" not in app.run_label.value
    last = _last_run(app)
    assert (last["files"], last["sha256"]) == ("b.csv", _sha(second)[:12])
    assert _sha(second)[:12] in app.run_label.value and _sha(first)[:12] not in app.run_label.value


def test_reconcile_refuses_ids_typed_but_not_fetched(world, tmp_path):
    _sb, _client, scenario, _bundle = world
    app = _reconciled(world, tmp_path)
    run = app.run_id
    assert "<div style='font-size:22px'>60</div>" in app.cards.value
    app.ids.value = "\n".join(scenario.credit_ids[:5])
    app.reconcile_button.click()
    assert app.run_id == run and app.result.credit_outcomes.num_rows == 60
    assert "credit ids" in app.stale.value and "Fetch" in app.ids_error.value and "Not reconciled" in app.error.value
    app.fetch_button.click()  # the credits fetched are now the 5 typed: the old result goes
    assert app.result is None and app.cards.value == ""
    app.load_button.click()  # the upload the result was loaded from is still chosen
    app.reconcile_button.click()
    assert app.error.value == "" and app.stale.value == ""
    assert sorted(app.result.credits["credit_id"]) == sorted(scenario.credit_ids[:5])
    assert "<div style='font-size:22px'>5</div>" in app.cards.value


def test_the_book_records_the_bytes_loaded_not_the_file_as_it_is_later(world, tmp_path):
    _sb, _client, _scenario, bundle = world
    first, second = _two_files(world, tmp_path)
    app = _loaded_from_data(world, tmp_path, "a.csv")
    (tmp_path / "data" / "a.csv").write_bytes(second)  # the file changes on disk after Load
    app.reconcile_button.click()
    app.recorder.record_button.click()  # the analyst confirms the preview
    assert len(app.result.settlement) == len(bundle.settlement_truth)
    last = _last_run(app)
    assert (last["files"], last["sha256"]) == ("a.csv", _sha(first)[:12])


def test_an_uploaded_file_is_recorded_with_its_name_and_sha256(world, tmp_path):
    _sb, _client, _scenario, bundle = world
    app = _reconciled(world, tmp_path)
    last = _last_run(app)
    data = bundle.files[0].read_bytes()
    assert (last["files"], last["sha256"]) == (bundle.files[0].name, _sha(data)[:12])
    # The same name uploaded again with other bytes is another input: stale, and refused until loaded.
    app.files_upload.value = _upload(bundle.files[0].name, data.replace(b"\n", b"\r\n"))
    assert "settlement files" in app.stale.value
    app.reconcile_button.click()
    app.recorder.record_button.click()  # the analyst confirms the preview
    assert "Load settlement" in app.files_error.value and len(app.breaks_panel.book.runs()) == last["run_id"]


# --- what is loaded is chosen explicitly -----------------------------------------------------

def test_an_upload_replaces_the_sample_choice_and_says_what_was_loaded(world, tmp_path):
    _sb, _client, _scenario, bundle = world
    sample = tmp_path / "data" / "sample"
    sample.mkdir(parents=True)
    (sample / "pbdr_csv.csv").write_bytes(bundle.files[0].read_bytes())
    app = _app(world, tmp_path)
    app.data_files.value = ("sample/pbdr_csv.csv",)
    assert "sample/pbdr_csv.csv" in app.chosen.value
    lines = bundle.files[0].read_text().splitlines()
    mine = "\n".join(lines[:2] + [line for line in lines[2:] if "ics_credit" in line][:3]) + "\n"
    app.files_upload.value = _upload("my_settlement.csv", mine.encode())
    assert app.data_files.value == () and "my_settlement.csv" in app.chosen.value
    assert "pbdr_csv.csv" not in app.chosen.value
    app.load_button.click()
    assert "Loaded <b>my_settlement.csv</b>, 3 row(s)" in app.load_status.value
    assert len(app.model.settlement) == 3 and set(app.model.settlement["source_file"].astype(str)) == {"my_settlement.csv"}
    app.data_files.value = ("sample/pbdr_csv.csv",)  # and the other way round
    assert app.files_upload.value == () and "my_settlement.csv" not in app.chosen.value


# --- errors beside their fields, in words ----------------------------------------------------

def test_errors_appear_beside_their_field_in_words(world, tmp_path):
    app = _reconciled(world, tmp_path)
    app.tolerance.value = "0,05"
    assert "0.05" in app.tolerance_error.value and "0,05" in app.tolerance_error.value
    assert "<class" not in app.tolerance_error.value and "Conversion" not in app.tolerance_error.value
    app.as_of.value = "yesterday"
    assert "“yesterday” is not a date" in app.as_of_error.value and "isoformat" not in app.as_of_error.value
    run = app.run_id
    app.reconcile_button.click()
    assert app.result is None and "fix the fields marked" in app.error.value and run is not None
    assert app.tolerance_error.value and app.as_of_error.value  # both still beside their fields
    app.tolerance.value = "0.05"
    assert app.tolerance_error.value == ""
    app.as_of.value = "2026-11-06"
    app.reconcile_button.click()
    assert app.result is not None and app.error.value == "" and app.as_of_error.value == ""


@given(st.decimals(min_value=0, max_value=10**6, places=4, allow_nan=False))
def test_any_non_negative_amount_is_a_tolerance(amount):
    assert parse_tolerance(f" {amount} ") == amount


def test_format_amount_uses_separators_and_keeps_the_currency_decimals():
    assert format_amount(Decimal("1234567.50")) == "1,234,567.50"
    assert format_amount(Decimal("120000")) == "120,000"
    assert format_amount(Decimal("1234.567")) == "1,234.567"
    assert format_amount(None) == ""


# --- search, sort, pages, export --------------------------------------------------------------

def test_search_ignores_case_and_takes_a_pasted_list(world, tmp_path):
    app = _reconciled(world, tmp_path)
    breaks = app.result.breaks
    with_letters = breaks[breaks["reconciliation_id"].fillna("").str.contains("[A-Z]")]
    targets = with_letters["reconciliation_id"].head(3).tolist()
    assert len(targets) == 3
    app.search.value = "\n".join(t.lower() for t in targets[:2]) + ", " + targets[2].lower()
    got = app.model.filtered_breaks()
    assert sorted(got["reconciliation_id"]) == sorted(targets)
    assert f"{len(targets)} break(s)" in app.page_label.value


def _expected_order(breaks: pd.DataFrame, column: str, descending: bool) -> list[int]:
    def key(i: int):
        row = breaks.iloc[i]
        if column == "amount_at_risk":
            return None if pd.isna(row["amount_at_risk"]) else Decimal(row["amount_at_risk"])
        if column == "lines":
            return None if pd.isna(row["source_line"]) else int(row["source_line"])
        if column == "source_file":
            return None if pd.isna(row["source_file"]) else Path(row["source_file"]).name
        value = row[column]
        return None if pd.isna(value) else value
    rows = list(range(len(breaks)))
    known = [i for i in rows if key(i) is not None]
    blank = [i for i in rows if key(i) is None]
    return sorted(known, key=key, reverse=descending) + blank


@pytest.fixture(scope="module")
def sorting_app(world, tmp_path_factory) -> InvestigateApp:
    """One reconciled app for the sorting tests (a reconciliation each cost seconds): each sets both the
    column and the direction it checks, so what the one before it chose does not matter."""
    return _reconciled(world, tmp_path_factory.mktemp("sorting"))


@pytest.mark.parametrize("column", SHOWN_COLUMNS)
@pytest.mark.parametrize("descending", [False, True])
def test_every_column_sorts(sorting_app, column, descending):
    app = sorting_app
    breaks = app.result.breaks.reset_index(drop=True)
    app.sort_by.value = column
    app.descending.value = descending
    got = app.model.filtered_breaks()
    want = breaks.iloc[_expected_order(breaks, column, descending)]
    assert got["credit_id"].fillna("").tolist() == want["credit_id"].fillna("").tolist()
    assert got["outcome"].tolist() == want["outcome"].tolist()


def test_a_page_can_be_jumped_to(world, tmp_path):
    app = _reconciled(world, tmp_path, page_size=3)
    everything = app.model.filtered_breaks()
    pages = -(-len(everything) // 3)
    assert pages >= 3 and f"of {pages}" in app.page_label.value
    app.page_box.value = 3
    assert app.model.view.page == 2 and not app.prev_button.disabled
    shown = [app.result.breaks_frame(app.result.break_table.slice(p, 1)).iloc[0]["credit_id"]
             for _, p in app.pick.options]
    assert [str(c) for c in shown] == [str(c) for c in everything["credit_id"].iloc[6:9]]
    app.page_box.value = pages
    assert app.next_button.disabled and len(app.pick.options) == len(everything) - 3 * (pages - 1)


def test_export_offers_the_filtered_view_and_everything(world, tmp_path):
    _sb, _client, _scenario, bundle = world
    app = _reconciled(world, tmp_path)
    app.outcome_filter.value = "AMOUNT_MISMATCH"
    app.export_filtered_button.click()
    filtered = tmp_path / "out" / f"breaks_{app.run_id}_filtered.csv"
    assert filtered.name in app.export_links.value and "report_" not in app.export_links.value
    truth = _truth_breaks(bundle)
    assert _pairs(_csv(filtered)) == _pairs(truth[truth["outcome"] == "AMOUNT_MISMATCH"])
    app.export_all_button.click()
    assert filtered.name not in app.export_links.value  # the earlier export's links are replaced
    everything = _csv(tmp_path / "out" / f"breaks_{app.run_id}.csv")
    assert _pairs(everything) == _pairs(truth)
    # Amount for amount, as the ground truth gives them.
    want = _truth_amounts(world)
    assert sorted(zip(everything["outcome"], everything["credit_id"], everything["currency"],
                      everything["amount_at_risk"].map(Decimal), strict=True)) == sorted(
        zip(want["outcome"], want["credit_id"].fillna(""), want["currency"], want["amount_at_risk"], strict=True))


def _sheet(book, name: str) -> list[dict]:
    rows = list(book[name].iter_rows(values_only=True))
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


def _filtered_workbook_agrees(path: Path, want: pd.DataFrame, filter_words: list[str]) -> None:
    """Every sheet of a filtered export against ``want``, the breaks the filter selects."""
    import openpyxl

    book = openpyxl.load_workbook(path)
    breaks = _sheet(book, "Breaks")
    assert sorted((r["Outcome"], r["Credit id"] or "", r["Currency"]) for r in breaks) == sorted(
        (o, "" if pd.isna(c) else c, cur) for o, c, cur in zip(want["outcome"], want["credit_id"], want["currency"],
                                                                 strict=True))
    # A record that failed to read has no currency and an unknown amount: the sheets say "unknown".
    want = want.assign(currency=want["currency"].fillna("unknown"))

    def agrees(cell, part: pd.DataFrame) -> bool:
        known = part["amount_at_risk"].dropna()
        if known.empty:
            return cell == "unknown"
        total = sum((Decimal(str(a)) for a in known), Decimal(0))
        return Decimal(str(cell)).quantize(total) == total

    groups = want.groupby(["outcome", "currency"])
    summary = {(r["Outcome"], r["Currency"]): r for r in _sheet(book, "Summary")}
    assert set(summary) == set(groups.groups)  # no outcome or currency the filter left out
    for (outcome, currency), part in groups:
        row = summary[(outcome, currency)]
        assert row["Break"] is True and row["Breaks"] == len(part)
        assert row["Credits"] == part["credit_id"].notna().sum()  # the credits these breaks are on
        assert row["Settlement rows"] == part["settlement_rows"].sum()
        assert agrees(row["Amount at risk"], part)
    totals = {r["Currency"]: r for r in _sheet(book, "Totals")}
    assert set(totals) == set(want["currency"])
    for currency, part in want.groupby("currency"):
        assert totals[currency]["Breaks"] == len(part) and agrees(totals[currency]["Amount at risk"], part)
    parameters = {r["Parameter"]: r["Value"] for r in _sheet(book, "Parameters")}
    for words in filter_words:
        assert words in parameters["Filter"]
    assert f"{len(want)} of " in parameters["Filter"]


@pytest.mark.parametrize("how", ["currency", "outcome and search"])
def test_a_filtered_export_agrees_sheet_by_sheet_and_names_its_filter(world, tmp_path, how):
    app = _reconciled(world, tmp_path)
    breaks = _truth_amounts(world)
    if how == "currency":
        app.currency_filter.value = "EUR"
        want = breaks[breaks["currency"] == "EUR"]
        words = ["currency = EUR", "outcome = (all breaks)", "search = (none)"]
    else:
        app.outcome_filter.value = "MISSING_PENDING"
        pending = breaks[breaks["outcome"] == "MISSING_PENDING"]
        needles = [str(c)[-10:].lower() for c in pending["credit_id"].head(3)]
        app.search.value = "\n".join(needles)
        want = pending[pending["credit_id"].str.lower().map(lambda c: any(n in c for n in needles))]
        words = ["outcome = MISSING_PENDING", "currency = (all)", f"search = {', '.join(needles)}"]
    assert 0 < len(want) < len(breaks) and want["currency"].nunique() >= 1
    app.export_filtered_button.click()
    assert app.error.value == ""
    _filtered_workbook_agrees(tmp_path / "out" / f"breaks_{app.run_id}_filtered.xlsx", want, words)
    assert len(_csv(tmp_path / "out" / f"breaks_{app.run_id}_filtered.csv")) == len(want)
    app.export_all_button.click()  # the whole run's workbook says it is not filtered
    import openpyxl

    parameters = {r["Parameter"] for r in _sheet(openpyxl.load_workbook(
        tmp_path / "out" / f"breaks_{app.run_id}.xlsx"), "Parameters")}
    assert "Filter" not in parameters


# --- analyst words, labels, amounts, lines, duplicates ------------------------------------

def test_table_shows_labels_amounts_lines_and_tells_duplicate_rows_apart(world, tmp_path):
    _sb, _client, _scenario, bundle = world
    app = _reconciled(world, tmp_path, page_size=200)
    for label in ("Outcome", "Amount at risk", "Credit id", "Why", "Settlement file", "Lines", "Batch date"):
        assert f"<th>{label}</th>" in app.table.value
    for word in ("amount_at_risk", "source_file", "settlement_rows"):
        assert word not in app.table.value
    headers = re.findall(r"<th>(.*?)</th>", app.table.value)
    lines_at = headers.index("Lines")
    cells = re.findall(r"<tr>\s*(.*?)</tr>", app.table.value, flags=re.S)
    rows = [re.findall(r"<td>(.*?)</td>", c, flags=re.S) for c in cells]
    breaks = app.result.breaks
    assert len(rows) == len(breaks)
    for row in rows:
        amount, currency = row[1], row[2]
        if amount:
            decimals = len(amount.split(".")[1]) if "." in amount else 0
            assert decimals == DIGITS[currency]
            assert re.fullmatch(r"\d{1,3}(,\d{3})*(\.\d+)?", amount)
        assert re.fullmatch(r"(\d+(, \d+)*)?", row[lines_at])
    shown = sorted((r[0], r[2], r[3], Decimal(r[1].replace(",", "")) if r[1] else None) for r in rows)
    want = sorted((o, c, "" if pd.isna(i) else i, None if pd.isna(a) else a) for o, c, i, a in zip(
        breaks["outcome"], breaks["currency"], breaks["credit_id"], breaks["amount_at_risk"], strict=True))
    assert shown == want
    truth = bundle.settlement_truth
    # Each break's batch date is its first settlement line's, as the generator wrote it.
    files_at, dates_at = headers.index("Settlement file"), headers.index("Batch date")
    written = {(f, int(n)): d for f, n, d in zip(truth["source_file"], truth["source_line"], truth["batch_date"],
                                                  strict=True)}
    assert [r[dates_at] for r in rows] == [written[(r[files_at], int(r[lines_at].split(",")[0]))]
                                            if r[lines_at] else "" for r in rows]
    assert any(r[dates_at] for r in rows)
    duplicates = truth[truth["outcome"] == "DUPLICATE_SETTLEMENT"]
    assert duplicates["credit_id"].nunique() == 2
    for credit_id, group in duplicates.groupby("credit_id"):
        want = ", ".join(str(int(float(n))) for n in sorted(group["source_line"].astype(float)))
        assert [r[lines_at] for r in rows if r[3] == credit_id] == [want]
        label, position = next((lab, p) for lab, p in app.pick.options if credit_id in lab)
        assert f"lines {want}" in label
        app.pick.value = position
        assert "1 of 2" in app.drill.value and "2 of 2" in app.drill.value
        for line in want.split(", "):
            assert f"<td>{line}</td>" in app.drill.value


def test_internal_words_become_analyst_words(world, tmp_path):
    _sb, _client, scenario, _bundle = world
    app = _reconciled(world, tmp_path)
    app.pick.value = next(p for lab, p in app.pick.options if "no credit" not in lab)
    assert "Read from" in app.drill.value and "the credit's own record" in app.drill.value
    assert "self_link" not in app.drill.value and ">tss<" not in app.drill.value
    assert "Card ends in" in app.drill.value and "card_suffix" not in app.drill.value
    app.ids.value = scenario.credit_ids[0] + "\nnot-an-id"
    app.fetch_button.click()
    assert "malformed id" in app.failures.value and "MalformedId" not in app.failures.value
    app.pull_from.value, app.pull_to.value, app.pull_source.value = "2020-01-01", "2020-01-01", "details"
    app.pull_button.click()
    assert "CyberSource answered “no report data” (HTTP 404)" in app.error.value
    assert "NoReportDataError" not in app.error.value and "InvalidRequestError" not in app.error.value


# --- unreadable settlement rows ---------------------------------------------------------------

def test_unreadable_settlement_breaks_name_file_and_line(world, tmp_path):
    _sb, _client, scenario, bundle = world
    truth = bundle.settlement_truth
    victim = truth[(truth["outcome"] == "MATCHED") & truth["credit_id"].notna()].iloc[0]
    line = int(float(victim["source_line"]))
    lines = bundle.files[0].read_text().splitlines(keepends=True)
    fields = lines[line - 1].split(",")
    fields[8] = "oops"  # the amount column
    lines[line - 1] = ",".join(fields)
    app = _app(world, tmp_path)
    app.ids.value = "\n".join(scenario.credit_ids)
    app.fetch_button.click()
    app.files_upload.value = _upload("broken.csv", "".join(lines).encode())
    app.load_button.click()
    assert "1 unreadable" in app.load_status.value and "Rows that could not be read" in app.read_errors.value
    assert f"<td>{line}</td>" in app.read_errors.value and "<td>oops</td>" in app.read_errors.value
    app.as_of.value = bundle.as_of.isoformat()
    app.grace.value = bundle.grace_days
    app.reconcile_button.click()
    app.recorder.record_button.click()  # the analyst confirms the preview
    breaks = app.result.breaks
    unreadable = breaks[breaks["outcome"] == "UNREADABLE_SETTLEMENT"]
    assert unreadable["credit_id"].tolist() == [victim["credit_id"]]
    assert Path(unreadable.iloc[0]["source_file"]).name == "broken.csv"
    assert int(unreadable.iloc[0]["source_line"]) == line
    app.outcome_filter.value = "UNREADABLE_SETTLEMENT"
    assert "broken.csv" in app.table.value and f"<td>{line}</td>" in app.table.value
    app.pick.value = app.pick.options[0][1]
    assert f"line {line}" in app.pick.options[0][0]
    app.export_filtered_button.click()
    _filtered_workbook_agrees(tmp_path / "out" / f"breaks_{app.run_id}_filtered.xlsx", unreadable,
                              ["outcome = UNREADABLE_SETTLEMENT"])


# --- pull settlement from CyberSource --------------------------------------------------------

def _batched(sb: Sandbox, first: date, last: date) -> set[str]:
    """Credits a daily report of these days holds: submitted and created on one of the days."""
    start = datetime.combine(first, datetime.min.time(), tzinfo=UTC)
    end = datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    return {c["id"] for c in sb.credits() if c["status"] not in ("DECLINED", "VOIDED")
            and start <= datetime.fromisoformat(c["created_at"]) < end}


@pytest.mark.parametrize("source", ["report", "details"])
def test_pull_settlement_from_cybersource_for_the_credits_dates(world, tmp_path, source):
    sb, _client, scenario, _bundle = world
    app = _app(world, tmp_path)
    app.ids.value = "\n".join(scenario.credit_ids)
    app.fetch_button.click()
    submitted = pd.to_datetime(pd.Series([c["created_at"] for c in sb.credits()]), utc=True)
    assert app.pull_from.value == submitted.min().date().isoformat()
    assert app.pull_to.value == submitted.max().date().isoformat()
    before = sb.count("GET", "report_download")
    app.pull_source.value = source
    app.pull_button.click()
    assert app.error.value == "" and "Pulled from CyberSource" in app.load_status.value
    days = (date.fromisoformat(app.pull_to.value) - date.fromisoformat(app.pull_from.value)).days + 1
    if source == "report":
        assert sb.count("GET", "report_download") - before == days
        assert f"not ready yet: {app.pull_to.value}" in app.load_status.value
    files = {Path(str(f)).parent for f in app.model.settlement["source_file"]}
    assert files == {tmp_path / "data" / "reports"}
    app.as_of.value = sb.now().isoformat()
    app.reconcile_button.click()
    app.recorder.record_button.click()  # the analyst confirms the preview
    # The break book records each file pulled (as kept in data/reports) with its SHA-256, and the
    # chooser says those files are what is loaded.
    pulled = sorted((tmp_path / "data" / "reports").iterdir())
    last = _last_run(app)
    assert sorted(zip(last["files"].split(", "), last["sha256"].split(", "), strict=True)) == \
        [(p.name, _sha(p.read_bytes())[:12]) for p in pulled]
    assert sorted(app.data_files.value) == [f"reports/{p.name}" for p in pulled]
    outcomes = app.result.credits.set_index("credit_id")["outcome"].astype(str)
    # Only days whose 00:00 UTC cut-off has passed are settled; later days' reports are not ready.
    last_settled = min(date.fromisoformat(app.pull_to.value), sb.now().date() - timedelta(days=1))
    settled = _batched(sb, date.fromisoformat(app.pull_from.value), last_settled)
    assert set(outcomes[outcomes == "MATCHED"].index) == settled
    app.pull_to.value = "3 Nov"
    app.pull_button.click()
    assert "“to” must be a date such as 2026-11-03" in app.pull_error.value


@pytest.fixture
def embedded(tmp_path, monkeypatch):
    """A copy of the shipped ``data/`` and no credentials: the app starts the embedded sandbox."""
    import shutil

    import reconkit.session as session
    data = tmp_path / "data"
    shutil.copytree(Path(__file__).parents[1] / "data" / "sample", data / "sample")
    monkeypatch.setenv("RECONKIT_DATA", str(data))
    monkeypatch.setattr(session, "_sandbox", None)
    for name in [n for n in os.environ if n.startswith("CYBERSOURCE_")]:
        monkeypatch.delenv(name)
    try:
        yield data
    finally:
        if session._sandbox is not None:
            session._sandbox.stop()
        monkeypatch.setattr(session, "_sandbox", None)


def test_investigate_sample_in_the_shipped_data(embedded, tmp_path):
    app = InvestigateApp(out_dir=tmp_path / "out")
    assert "SANDBOX" in app.banner.value
    result = app.load_sample("processor_csv", progress=False)
    truth = pd.read_csv(embedded / "sample" / "processor_csv_truth.csv", dtype=str)
    want = truth[truth["side"] == "credit"].set_index("credit_id")["outcome"].to_dict()
    assert result.credits.set_index("credit_id")["outcome"].astype(str).to_dict() == want


def test_pull_works_offline_against_the_embedded_sandbox(embedded, tmp_path):
    import reconkit.session as session

    app = InvestigateApp(out_dir=tmp_path / "out")
    app.load_sample("pbdr_csv", progress=False)
    sb = session._sandbox
    assert app.pull_from.value and app.pull_to.value
    app.pull_button.click()
    assert app.error.value == "" and app.pull_error.value == ""
    assert "Pulled from CyberSource" in app.load_status.value and app.result is None
    assert {Path(str(f)).parent for f in app.model.settlement["source_file"]} == {embedded / "reports"}
    app.reconcile_button.click()
    app.recorder.record_button.click()  # the analyst confirms the preview
    outcomes = app.result.credits.set_index("credit_id")["outcome"].astype(str)
    last = min(date.fromisoformat(app.pull_to.value), sb.now().date() - timedelta(days=1))
    settled = _batched(sb, date.fromisoformat(app.pull_from.value), last) & set(outcomes.index)
    assert len(settled) > 50 and set(outcomes[outcomes == "MATCHED"].index) == settled


# --- a state machine over the inputs, Fetch, Load, Reconcile and exports ----------------------

class InvestigateMachine(RuleBasedStateMachine):
    """Whatever the order of typing ids, choosing or uploading files, fetching, loading,
    reconciling and exporting: a result shown without a stale banner is of exactly the ids and
    files the screen shows; the break book's last run records the files (names, SHA-256) the
    shown result was computed from; a refused Reconcile changes nothing; a filtered export agrees
    sheet by sheet with the breaks its filter selects."""

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="investigate-sm-"))
        self.sandbox = Sandbox(start=START, seed=5).start()
        client = self.sandbox.client(ledger=str(self.folder / "ledger.sqlite3"))
        self.ids = populate(self.sandbox, client, 10, seed=5, days=2).credit_ids
        bundle = self.sandbox.settlement(format="pbdr_csv", discrepancies={"amount": 1, "unexpected": 1},
                                         out_dir=self.folder / "data", seed=5, filename="a.csv")
        self.as_of = bundle.as_of.isoformat()
        lines = bundle.files[0].read_text().splitlines()
        small = "\n".join(lines[:2] + [line for line in lines[2:] if "ics_credit" in line][:3]) + "\n"
        (self.folder / "data" / "b.csv").write_text(small)
        self.files = {name: (self.folder / "data" / name).read_bytes() for name in ("a.csv", "b.csv")}
        self.app = InvestigateApp(client, data=self.folder / "data", out_dir=self.folder / "out")
        self.app.as_of.value = self.as_of
        self.fetched: tuple[str, ...] | None = None  # the ids of the last successful Fetch
        self.loaded: dict[str, bytes] | None = None  # name -> bytes of the last successful Load
        self.chosen: tuple[str, tuple[str, ...]] = ("data/", ())
        self.shown: dict | None = None  # what the shown result was computed from

    def teardown(self) -> None:
        self.app.client.close()
        self.sandbox.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    @initialize()
    def a_first_result(self):
        """Start from a reconciled run, as an analyst coming back to change an input would."""
        self.type_ids("all")
        self.choose_in_data(("a.csv",))
        self.fetch_load_and_reconcile()

    @rule()
    def fetch_load_and_reconcile(self):
        self.fetch()
        self.load()
        self.reconcile()

    @rule(which=st.sampled_from(["all", "first half", "last three"]))
    def type_ids(self, which):
        ids = {"all": self.ids, "first half": self.ids[:5], "last three": self.ids[-3:]}[which]
        self.app.ids.value = "\n".join(ids)

    @rule(names=st.sampled_from([("a.csv",), ("b.csv",), ("a.csv", "b.csv")]))
    def choose_in_data(self, names):
        self.app.data_files.value = names
        self.chosen = ("data/", names)

    @rule(name=st.sampled_from(["a.csv", "b.csv"]))
    def upload(self, name):
        self.app.files_upload.value = _upload(f"uploaded_{name}", self.files[name])
        self.chosen = ("uploaded", (name,))

    @rule(tolerance=st.sampled_from(["0.00", "1000"]))
    def type_tolerance(self, tolerance):
        self.app.tolerance.value = tolerance

    @rule()
    def fetch(self):
        self.app.fetch_button.click()
        self.fetched = tuple(parse_ids(self.app.ids.value))
        self.shown = None

    @rule()
    def load(self):
        self.app.load_button.click()
        kind, names = self.chosen
        self.loaded = ({(f"uploaded_{n}" if kind == "uploaded" else n): self.files[n] for n in names}
                       if names else None)
        self.shown = None

    @rule()
    def reconcile(self):
        run, book_runs = self.app.run_id, len(self.app.breaks_panel.book.runs())
        self.app.reconcile_button.click()
        preview = self.app.recorder.preview
        if preview is not None and not preview.ok:  # a subset of the ids: the intake asks why
            self.app.recorder.override.value = "a subset of the credits, on purpose"
        self.app.recorder.record_button.click()  # refused, and recording nothing, when nothing new is current
        ready = (self.fetched is not None and self.loaded is not None
                 and tuple(parse_ids(self.app.ids.value)) == self.fetched
                 and self._chosen_names() == set(self.loaded))
        if not ready:  # refused or impossible: nothing new shown or recorded
            assert len(self.app.breaks_panel.book.runs()) == book_runs
            if self.app.result is not None:
                assert self.app.run_id == run and self.app.stale.value
            event("reconcile refused")
            return
        assert self.app.error.value == "" and self.app.run_id != run
        assert len(self.app.breaks_panel.book.runs()) == book_runs + 1
        self.shown = {"ids": self.fetched, "files": dict(self.loaded), "chosen": self.chosen,
                      "tolerance": self.app.tolerance.value}
        event("reconciled")

    @rule(currency=st.sampled_from(["(all)", "USD", "EUR"]))
    def export_filtered(self, currency):
        if self.app.result is None or self.app.stale.value or currency not in self.app.currency_filter.options:
            return
        self.app.currency_filter.value = currency
        self.app.export_filtered_button.click()
        breaks = self.app.result.breaks
        want = breaks if currency == "(all)" else breaks[breaks["currency"] == currency]
        _filtered_workbook_agrees(self.folder / "out" / f"breaks_{self.app.run_id}_filtered.xlsx", want,
                                  [f"currency = {currency}"])
        event("filtered export checked")

    def _chosen_names(self) -> set[str]:
        kind, names = self.chosen
        return {f"uploaded_{n}" for n in names} if kind == "uploaded" else set(names)

    @invariant()
    def a_result_without_a_stale_banner_is_of_what_the_screen_shows(self):
        if self.app.result is None or self.shown is None:
            return
        current = (tuple(parse_ids(self.app.ids.value)) == self.shown["ids"] and self.chosen == self.shown["chosen"]
                   and self.app.tolerance.value == self.shown["tolerance"])
        if not current:
            assert "Stale" in self.app.stale.value
        if self.app.stale.value == "":
            assert set(self.app.result.credits["credit_id"]) == set(parse_ids(self.app.ids.value))
            used = {Path(f).name for f in self.app.result.parameters["input_files"]}
            assert used == self._chosen_names()

    @invariant()
    def the_book_records_the_files_the_shown_result_was_computed_from(self):
        if self.app.result is None or self.shown is None:
            return
        last = self.app.breaks_panel.book.runs().iloc[-1]
        recorded = dict(zip(last["files"].split(", "), last["sha256"].split(", "), strict=True))
        assert recorded == {name: _sha(data)[:12] for name, data in self.shown["files"].items()}
        assert {Path(f).name for f in self.app.result.parameters["input_files"]} == set(self.shown["files"])


InvestigateMachine.TestCase.settings = settings(max_examples=examples(10), stateful_step_count=10,  # each step reconciles
                                                 deadline=None)
TestInvestigateApp = InvestigateMachine.TestCase


def test_a_file_uploaded_twice_under_two_names_is_refused_naming_both(world, tmp_path):
    # A browser names a second download "pbdr (1).csv": the same rows would be counted twice.
    _sb, _client, _scenario, bundle = world
    app = _app(world, tmp_path)
    data = bundle.files[0].read_bytes()
    app.files_upload.value = _upload("pbdr.csv", data) + _upload("pbdr (1).csv", data)
    app.load_button.click()
    assert "pbdr (1).csv is a byte-identical copy of pbdr.csv" in app.error.value
    assert not app.model.files and "Loaded" not in app.load_status.value


# --- no message outlives the action it answered -------------------------------------------------

def test_later_actions_clear_the_book_conflict_and_the_missing_step_messages(world, tmp_path):
    from reconkit.breaks import BreakBook

    _sb, client, _scenario, _bundle = world
    app = _app(world, tmp_path)
    app.reconcile_button.click()
    app.recorder.record_button.click()  # the analyst confirms the preview
    assert "fetch the credits first" in app.ids_error.value
    app.ledger_button.click()  # the ids are there now: the old advice goes
    assert app.ids.value and app.ids_error.value == "" and app.error.value == ""

    app = _reconciled(world, tmp_path)
    panel = app.breaks_panel
    other = BreakBook(client.ledger, analyst="bob")
    for button in (app.reconcile_button, app.pull_button, app.load_button, app.fetch_button):
        key = panel.pick.value
        other.note(key, "bob was here")  # the break changes behind the panel's back
        panel.note_text.value = "mine"
        panel.on_note()
        assert "changed since version" in panel.error.value
        button.click()
        assert panel.error.value == "", button.description


def test_after_a_new_reconcile_the_cards_and_the_table_count_the_same_breaks(world, tmp_path):
    app = _reconciled(world, tmp_path, page_size=500)
    target = app.result.breaks.dropna(subset=["credit_id"]).iloc[0]
    app.search.value = str(target["credit_id"])
    app.sort_by.value = "currency"
    assert "of 1 · 1 break(s)" in app.page_label.value
    app.tolerance.value = "1000"  # the next day's run, as it were
    app.reconcile_button.click()
    app.recorder.record_button.click()  # the analyst confirms the preview
    breaks = app.result.break_table.num_rows
    assert breaks > 1 and f"<div style='color:#666'>Breaks</div><div style='font-size:22px'>{breaks:,}</div>" \
        in app.cards.value
    assert f"{breaks:,} break(s)" in app.page_label.value and app.table.value.count("<tr>") == breaks
    assert app.search.value == "" and app.sort_by.value == "" and app.model.view.search == ()
