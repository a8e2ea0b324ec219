"""The renderings: Excel number formats per currency (snapshot), CSV text and ISO dates, HTML
labels, and the figures' axes."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from reconkit import reconcile

SNAPSHOTS = Path(__file__).parent / "snapshots"


@pytest.fixture(scope="module")
def result():
    """Breaks in three currencies with 0, 2 and 3 decimals, ids with leading zeros."""
    credits = pd.DataFrame({
        "credit_id": pd.Series(["0001234567890123456789", "0002", "0003", "0004", "0005", "0006"], dtype="string"),
        "reconciliation_id": pd.Series(["00042", "B", "C", "D", "E", "F"], dtype="string"),
        "status": pd.Series(["PENDING", "PENDING", "VOIDED", "PENDING", "PENDING", "PENDING"], dtype="string"),
        "submit_time_utc": pd.to_datetime(["2026-11-01T08:30:00Z"] * 6, utc=True),
        "amount": pd.Series([Decimal("100.00"), Decimal("1500"), Decimal("5.125"), Decimal("12.00"),
                             Decimal("3"), Decimal("0.500")], dtype=object),
        "currency": pd.Series(["USD", "JPY", "KWD", "USD", "JPY", "KWD"], dtype="string"),
    })
    settlement = pd.DataFrame({
        "reconciliation_id": pd.Series(["00042", "B", "C", "X", "E", "E"], dtype="string"),
        "request_id": pd.Series([None, None, None, "0000000000000000000099", None, None], dtype="string"),
        "direction": pd.Series(["credit"] * 6, dtype="string"),
        "amount": pd.Series([Decimal("98.50"), Decimal("1499"), Decimal("5.125"), Decimal("7.000"), Decimal("3"),
                             Decimal("3")], dtype=object),
        "currency": pd.Series(["USD", "JPY", "KWD", "KWD", "JPY", "JPY"], dtype="string"),
        "transaction_type": pd.Series(["ics_credit"] * 6, dtype="string"),
        "source_file": pd.Series(["/in/pbdr_20261102.csv"] * 6, dtype="string"),
        "source_line": pd.Series([3, 4, 5, 6, 7, 8], dtype="int64"),
        # E settles twice, first on 1 November: its break names that first row's day.
        "batch_date": pd.to_datetime(["2026-11-01", "2026-11-01", "2026-11-01", "2026-11-02", "2026-11-01",
                                      "2026-11-02"]).astype("datetime64[s]"),
    })
    return reconcile(credits, settlement, as_of="2026-11-02T00:00:00Z", environment="SANDBOX",
                     amount_tolerance={"JPY": "0", "*": "0.00"})


def _cells(sheet) -> list[list[str]]:
    return [[f"{cell.coordinate}|{type(cell.value).__name__}|{cell.value}|{cell.number_format}" for cell in row
             if cell.value is not None] for row in sheet.iter_rows()]


def test_excel_number_formats_per_currency_snapshot(result, tmp_path):
    from openpyxl import load_workbook

    book = load_workbook(result.to_excel(tmp_path / "breaks.xlsx", fx={"JPY": "0.0067", "KWD": "3.25"},
                                         base="USD"))
    assert book.sheetnames == ["Breaks", "Summary", "Totals", "Parameters"]
    breaks = book["Breaks"]
    header = [c.value for c in breaks[1]]
    assert header[:4] == ["Outcome", "Currency", "Amount at risk", "Credit id"]
    expected = {"JPY": "#,##0", "USD": "#,##0.00", "KWD": "#,##0.000"}
    at_risk, credit_id, line = header.index("Amount at risk"), header.index("Credit id"), header.index("Line")
    day, request_id = header.index("Batch date"), header.index("Request id")
    for row in breaks.iter_rows(min_row=2):
        currency = row[1].value
        assert row[at_risk].number_format == expected[currency]
        assert row[credit_id].value is None or (row[credit_id].data_type == "s" and row[credit_id].number_format == "@")
        assert row[line].value is None or type(row[line].value) is int
        assert row[day].value is None or (type(row[day].value) is datetime and row[day].number_format == "yyyy-mm-dd")
    ids = [row[credit_id].value for row in breaks.iter_rows(min_row=2)]
    assert "0001234567890123456789" in ids  # 22 digits, leading zeros kept: text, not a number
    days = {row[credit_id].value or row[request_id].value: row[day].value for row in breaks.iter_rows(min_row=2)}
    assert days == {"0005": datetime(2026, 11, 1), "0002": datetime(2026, 11, 1), "0001234567890123456789":
                    datetime(2026, 11, 1), "0003": datetime(2026, 11, 1), "0000000000000000000099": datetime(2026, 11, 2),
                    "0004": None, "0006": None}
    assert breaks.freeze_panes == "A2" and breaks.auto_filter.ref == f"A1:Q{breaks.max_row}"
    for name in ("Summary", "Totals", "Parameters"):
        assert book[name].freeze_panes == "A2" and book[name].auto_filter.ref
    parameters = {row[0].value: row[1].value for row in book["Parameters"].iter_rows(min_row=2)}
    assert parameters["Environment"] == "SANDBOX" and parameters["As of"] == "2026-11-02T00:00:00+00:00"
    assert parameters["Amount tolerance"] == "JPY 0, * 0.00" and parameters["Input file"] == "/in/pbdr_20261102.csv"
    totals = [[c.value for c in row] for row in book["Totals"].iter_rows(min_row=2)]
    assert totals[-1][0] == "USD (converted)"
    snapshot = {name: _cells(book[name]) for name in ("Breaks", "Summary", "Totals")}
    path = SNAPSHOTS / "excel_formats.json"
    if not path.exists():  # first run of a new snapshot: write it, then review it in the diff
        path.write_text(json.dumps(snapshot, indent=1, ensure_ascii=False))
    assert snapshot == json.loads(path.read_text())


def test_csv_keeps_ids_as_text_iso_times_and_integer_lines(result, tmp_path):
    with open(result.to_csv(tmp_path / "breaks.csv"), newline="") as handle:
        text = handle.read()
    rows = list(csv.DictReader(text.splitlines()))
    assert list(rows[0]) == ["outcome", "currency", "amount_at_risk", "credit_id", "reconciliation_id", "request_id",
                             "credit_amount", "settled_amount", "settlement_rows", "source_file", "source_line",
                             "batch_date", "detail", "credit_status", "submit_time_utc", "age_days", "break_on"]
    assert '"0001234567890123456789"' in text and '"00042"' in text  # quoted: text
    by_id = {r["credit_id"]: r for r in rows}
    assert by_id["0001234567890123456789"]["submit_time_utc"] == "2026-11-01T08:30:00Z"
    assert by_id["0001234567890123456789"]["amount_at_risk"] == "1.50"
    assert by_id["0002"]["amount_at_risk"] == "1" and by_id["0005"]["amount_at_risk"] == "3"
    assert by_id["0006"]["amount_at_risk"] == "0.500"
    assert all(r["source_line"] == "" or r["source_line"].isdigit() for r in rows)
    assert by_id["0005"]["settlement_rows"] == "2" and by_id["0005"]["source_file"] == "pbdr_20261102.csv"
    # ISO dates: the first of 0005's two rows; the unexpected row's own; none for a credit with no row.
    assert by_id["0005"]["batch_date"] == "2026-11-01" and by_id["0004"]["batch_date"] == ""
    assert {r["request_id"]: r["batch_date"] for r in rows}["0000000000000000000099"] == "2026-11-02"


def test_html_uses_analyst_labels_and_each_currency_decimals(result):
    page = result.to_html(figures=False)
    for label in ("Amount at risk", "Credit id", "Settlement rows", "Settlement file", "Why", "Environment",
                  "How the amount at risk is defined"):
        assert label in page
    assert "amount_at_risk" not in page and "credit_id" not in page
    assert '<td class="number">5.125</td>' in page and '<td class="number">1</td>' in page
    assert "2026-11-01T08:30:00Z" in page
    assert "<th>Batch date</th>" in page and "<td>2026-11-02</td>" in page  # the unexpected row's day, ISO


def test_figures_one_linear_panel_per_currency_integer_counts_and_clear_legend(result):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figure = result.plot()
    visible = [ax for ax in figure.axes if ax.get_visible()]
    titles = [ax.get_title() for ax in visible]
    assert titles == ["Breaks by outcome", "Amount at risk in JPY", "Amount at risk in KWD",
                      "Amount at risk in USD", "Age of missing credits"]
    summary = result.summary
    for ax in visible[1:4]:
        currency = ax.get_title().rsplit(" ", 1)[1]
        assert ax.get_xscale() == "linear"
        want = set(summary.loc[(summary["currency"] == currency) & (summary["breaks"] > 0), "outcome"])
        assert {t.get_text() for t in ax.get_yticklabels()} == want  # no empty categories
        bars = {t.get_text(): p.get_width() for t, p in zip(ax.get_yticklabels(), ax.patches, strict=True)}
        risk = summary[(summary["currency"] == currency) & (summary["breaks"] > 0)]
        assert bars == {o: float(a) for o, a in zip(risk["outcome"], risk["amount_at_risk"], strict=True)}
    counts = visible[0]
    assert all(float(t).is_integer() for t in counts.get_xticks())
    assert {t.get_text() for t in counts.get_yticklabels()} == set(summary.loc[summary["breaks"] > 0, "outcome"])
    FigureCanvasAgg(figure).draw()
    ages = visible[-1]
    legend = ages.get_legend().get_window_extent()
    for patch in ages.patches:
        assert not legend.overlaps(patch.get_window_extent())
    assert legend.y1 <= ages.get_window_extent().y0  # below the axes


def test_totals_in_a_base_currency_are_labelled_converted(result):
    totals = result.totals({"JPY": "0.0067", "KWD": "3.25"}, base="USD")
    row = totals.iloc[-1]
    assert row["currency"] == "USD (converted)"
    assert row["converted"] == sum(totals["converted"].iloc[:-1], Decimal(0))
    page = result.to_html(figures=False, fx={"JPY": "0.0067", "KWD": "3.25"}, base="USD")
    assert "USD (converted)" in page and "<th>Converted</th>" in page


def test_parameters_name_the_moment_of_writing(result, tmp_path):
    from openpyxl import load_workbook

    book = load_workbook(result.to_excel(tmp_path / "b.xlsx"), read_only=True)
    written = {r[0]: r[1] for r in book["Parameters"].iter_rows(min_row=2, values_only=True)}["Written"]
    assert datetime.fromisoformat(written).tzinfo is not None
