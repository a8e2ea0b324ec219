"""The engine against the generator's ground truth, plus its invariants and reports."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconkit import ReconciliationError, ReconResult, read_settlement, reconcile
from reconkit.outcomes import BREAKS, Outcome
from reconkit.sandbox.settlement import DISCREPANCY_KINDS, FORMATS

from .conftest import ALL_KINDS, examples

SNAPSHOTS = Path(__file__).parent / "snapshots"


def assert_agrees(result: ReconResult, bundle) -> None:
    got = dict(zip(result.credits["credit_id"].astype(str), result.credits["outcome"].astype(str), strict=True))
    want = dict(zip(bundle.credits_truth["credit_id"].astype(str), bundle.credits_truth["outcome"].astype(str),
                    strict=True))
    assert got == want
    names = result.settlement["source_file"].astype(str).map(lambda p: Path(p).name)
    got_rows = dict(zip(zip(names, result.settlement["source_line"].astype(int), strict=True),
                        result.settlement["outcome"].astype(str), strict=True))
    truth = bundle.settlement_truth
    want_rows = dict(zip(zip(truth["source_file"].astype(str), truth["source_line"].astype(int), strict=True),
                         truth["outcome"].astype(str), strict=True))
    assert got_rows == want_rows


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_with_every_discrepancy_equals_the_ground_truth(world, tmp_path, fmt):
    sb, _, credits = world
    bundle = sb.settlement(format=fmt, discrepancies=ALL_KINDS, out_dir=tmp_path, seed=4)
    result = reconcile(credits, read_settlement(bundle.files[0]), as_of=bundle.as_of, grace_days=bundle.grace_days)
    assert_agrees(result, bundle)
    assert bundle.disagreements(result).empty
    assert set(result.credits["outcome"]) | set(result.settlement["outcome"]) >= {
        "MATCHED", "AMOUNT_MISMATCH", "CURRENCY_MISMATCH", "DUPLICATE_SETTLEMENT", "MISSING_PENDING",
        "UNEXPECTED_SETTLEMENT", "VOIDED_BUT_SETTLED", "DIRECTION_MISMATCH", "MATCHED_BY_REQUEST_ID",
        "NO_SETTLEMENT_EXPECTED", "OUT_OF_SCOPE"}


@settings(max_examples=examples(25), deadline=None,  # each example generates and reconciles a scenario
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(mix=st.dictionaries(st.sampled_from(DISCREPANCY_KINDS), st.integers(0, 4), max_size=len(DISCREPANCY_KINDS)),
       fmt=st.sampled_from(FORMATS), seed=st.integers(0, 10_000), grace=st.integers(0, 5),
       late=st.integers(0, 96))
def test_random_discrepancy_mixes_equal_the_ground_truth(world, tmp_path_factory, mix, fmt, seed, grace, late):
    sb, _, credits = world
    as_of = sb.now() + timedelta(hours=late)
    bundle = sb.settlement(format=fmt, discrepancies=mix, out_dir=tmp_path_factory.mktemp("mix"), seed=seed,
                           as_of=as_of, grace_days=grace)
    result = reconcile(credits, read_settlement(bundle.files[0]), as_of=as_of, grace_days=grace)
    assert_agrees(result, bundle)


def _credits_frame(rows):
    return pd.DataFrame({
        "credit_id": pd.Series([r[0] for r in rows], dtype="string"),
        "reconciliation_id": pd.Series([r[1] for r in rows], dtype="string"),
        "status": pd.Series([r[2] for r in rows], dtype="string"),
        "submit_time_utc": pd.to_datetime([r[3] for r in rows], utc=True),
        "amount": pd.Series([r[4] for r in rows], dtype=object),
        "currency": pd.Series([r[5] for r in rows], dtype="string"),
    })


def _settlement_frame(rows):
    return pd.DataFrame({
        "reconciliation_id": pd.Series([r[0] for r in rows], dtype="string"),
        "request_id": pd.Series([r[1] for r in rows], dtype="string"),
        "direction": pd.Series([r[2] for r in rows], dtype="string"),
        "amount": pd.Series([r[3] for r in rows], dtype=object),
        "currency": pd.Series([r[4] for r in rows], dtype="string"),
        "transaction_type": pd.Series(["ics_credit" if r[2] == "credit" else "ics_bill" for r in rows],
                                      dtype="string"),
        "source_file": pd.Series(["f.csv"] * len(rows), dtype="string"),
        "source_line": pd.Series(range(2, len(rows) + 2), dtype="int64"),
    })


_ids = st.sampled_from(["A", "B", "C", "D", None])
_money = st.sampled_from([(Decimal("1.00"), "USD"), (Decimal("2.50"), "USD"), (Decimal("2.49"), "EUR"),
                          (Decimal("100"), "JPY"), (Decimal("101"), "JPY"), (Decimal("100"), "USD")])


@settings(max_examples=examples(200), deadline=None)  # cheap examples over many id and status mixes
@given(credit_rows=st.lists(st.tuples(st.sampled_from(["1", "2", "3", "4", "5"]), _ids,
                                      st.sampled_from(["PENDING", "VOIDED", "DECLINED", "TRANSMITTED"]),
                                      st.sampled_from(["2026-11-01T00:00:00Z", "2026-11-09T00:00:00Z", None]),
                                      _money), max_size=8),
       settlement_rows=st.lists(st.tuples(_ids, st.sampled_from(["1", "2", "9", None]),
                                          st.sampled_from(["credit", "debit"]), _money), max_size=10),
       tolerance=st.sampled_from(["0", "0.01", "1"]))
def test_every_input_row_ends_in_exactly_one_outcome(credit_rows, settlement_rows, tolerance):
    credit_rows = [(*r[:4], *r[4]) for r in credit_rows]
    settlement_rows = [(*r[:3], *r[3]) for r in settlement_rows]
    credits, settlement = _credits_frame(credit_rows), _settlement_frame(settlement_rows)
    result = reconcile(credits, settlement, as_of="2026-11-10T00:00:00Z", amount_tolerance=tolerance)
    assert len(result.credits) == len(credits) and len(result.settlement) == len(settlement)
    valid = {o.value for o in Outcome}
    assert set(result.credits["outcome"]) <= valid and set(result.settlement["outcome"]) <= valid
    assert result.credits["outcome"].notna().all() and result.settlement["outcome"].notna().all()
    assert result.credits["detail"].notna().all() and result.settlement["detail"].notna().all()
    for row in result.settlement.itertuples():
        if pd.notna(row.credit_id):  # the two sides of a pair share the outcome unless the row is a debit
            partner = result.credits.loc[result.credits["credit_id"] == row.credit_id, "outcome"]
            if row.outcome not in ("DIRECTION_MISMATCH", "DUPLICATE_CREDIT"):
                assert row.outcome in set(partner)
    if credits["reconciliation_id"].isna().all() and settlement["request_id"].isna().all():
        assert not result.settlement["credit_id"].notna().any()  # null ids never match each other
    unmatched = result.settlement["credit_id"].isna()
    assert set(result.settlement.loc[unmatched, "outcome"]) <= {"UNEXPECTED_SETTLEMENT", "OUT_OF_SCOPE"}


def test_tolerance_per_currency_and_detail_sentence():
    credits = _credits_frame([("1", "A", "PENDING", "2026-11-01T00:00:00Z", Decimal("100.00"), "USD"),
                              ("2", "B", "PENDING", "2026-11-01T00:00:00Z", Decimal("500"), "JPY")])
    settlement = _settlement_frame([("A", None, "credit", Decimal("98.00"), "USD"),
                                    ("B", None, "credit", Decimal("501"), "JPY")])
    strict = reconcile(credits, settlement, as_of="2026-11-02T00:00:00Z")
    assert strict.credits["outcome"].tolist() == ["AMOUNT_MISMATCH", "AMOUNT_MISMATCH"]
    assert strict.credits["detail"].iloc[0] == "settled 98.00 USD, credited 100.00 USD, difference \u22122.00"
    assert strict.credits["amount_at_risk"].tolist() == [Decimal("2.00"), Decimal("1")]
    loose = reconcile(credits, settlement, as_of="2026-11-02T00:00:00Z", amount_tolerance={"JPY": "1", "*": "0"})
    assert loose.credits["outcome"].tolist() == ["AMOUNT_MISMATCH", "MATCHED"]


def test_amounts_finer_than_the_currency_are_refused_by_name():
    credits = _credits_frame([("1", "A", "PENDING", "2026-11-01T00:00:00Z", Decimal("2.50"), "JPY")])
    with pytest.raises(ReconciliationError, match=r"credits row 0: amount 2\.50 has more decimal places than JPY"):
        reconcile(credits, _settlement_frame([]))


def test_duplicates_are_reported_not_paired_and_null_ids_never_match():
    credits = _credits_frame([("1", "A", "PENDING", "2026-11-01T00:00:00Z", Decimal("1.00"), "USD"),
                              ("2", "A", "PENDING", "2026-11-01T00:00:00Z", Decimal("1.00"), "USD"),
                              ("3", None, "PENDING", "2026-11-01T00:00:00Z", Decimal("1.00"), "USD")])
    settlement = _settlement_frame([("A", None, "credit", Decimal("1.00"), "USD"),
                                    (None, None, "credit", Decimal("1.00"), "USD")])
    result = reconcile(credits, settlement, as_of="2026-11-02T00:00:00Z")
    assert result.credits["outcome"].tolist() == ["DUPLICATE_CREDIT", "DUPLICATE_CREDIT", "MISSING_PENDING"]
    assert result.settlement["outcome"].tolist() == ["DUPLICATE_CREDIT", "UNEXPECTED_SETTLEMENT"]


def test_match_on_reconciliation_id_only(world, tmp_path):
    sb, _, credits = world
    bundle = sb.settlement(discrepancies={"recon_id_missing": 2}, out_dir=tmp_path)
    result = reconcile(credits, read_settlement(bundle.files[0]), as_of=bundle.as_of,
                       match_on=("reconciliation_id",))
    kinds = bundle.credits_truth.set_index("credit_id")["kind"]
    lost = kinds[kinds == "recon_id_missing"].index
    outcomes = result.credits.set_index("credit_id").loc[lost, "outcome"]
    assert set(outcomes) <= {"MISSING_PENDING", "MISSING_OVERDUE"}
    differences = bundle.disagreements(result)  # the truth assumes the request-id fallback
    assert set(differences.loc[differences["side"] == "credit", "key"]) == set(lost)
    assert set(differences["expected"]) == {"MATCHED_BY_REQUEST_ID"}


def test_reports_snapshot_excel_and_plot(world, tmp_path):
    sb, _, credits = world
    bundle = sb.settlement(format="pbdr_csv", discrepancies=ALL_KINDS, out_dir=tmp_path, seed=4,
                           filename="pbdr.csv")
    result = reconcile(credits, read_settlement(bundle.files[0]), as_of=bundle.as_of, environment="SANDBOX")
    text = result.summary_text()
    snapshot = SNAPSHOTS / "summary.txt"
    if not snapshot.exists():  # first run of a new snapshot: write it, then review it in the diff
        snapshot.write_text(text)
    assert text == snapshot.read_text()
    page = result.to_html(tmp_path / "report.html", figures=False)
    assert (tmp_path / "report.html").read_text() == page
    html_snapshot = SNAPSHOTS / "report.html"
    stable = re.sub(r"<th>Written</th><td>[^<]*</td>", "<th>Written</th><td>…</td>", page.replace(str(tmp_path), "<tmp>"))
    if not html_snapshot.exists():
        html_snapshot.write_text(stable)
    assert stable == html_snapshot.read_text()
    assert "data:image/png;base64," in result.to_html(figures=True)
    from openpyxl import load_workbook
    book = load_workbook(result.to_excel(tmp_path / "breaks.xlsx"), read_only=True)
    assert book.sheetnames == ["Breaks", "Summary", "Totals", "Parameters"]
    assert book["Breaks"].max_row == len(result.breaks) + 1
    assert result.breaks["outcome"].isin(BREAKS).all()
    for _, part in result.breaks.groupby("currency"):
        risks = [x for x in part["amount_at_risk"]]
        assert risks == sorted(risks, reverse=True)  # largest first within a currency
    assert result.to_dict()["counts"] == result.counts()
    assert len(result.breaks) == result.to_dict()["breaks"] == result.summary["breaks"].sum()


def test_cli_reconcile_writes_the_report(world, tmp_path):
    sb, _, credits = world
    bundle = sb.settlement(format="pbdr_xml", discrepancies={"amount": 2}, out_dir=tmp_path)
    saved = credits[["credit_id", "reconciliation_id", "status", "submit_time_utc", "amount", "currency"]]
    saved.to_csv(tmp_path / "credits.csv", index=False)
    out = subprocess.run([sys.executable, "-m", "reconkit", "reconcile", str(tmp_path / "credits.csv"),
                          str(bundle.files[0]), "-o", str(tmp_path / "r.html"), "--as-of", bundle.as_of.isoformat(),
                          "--excel", str(tmp_path / "r.xlsx")], capture_output=True, text=True, check=True).stdout
    assert "AMOUNT_MISMATCH" in out and (tmp_path / "r.html").exists() and (tmp_path / "r.xlsx").exists()
    bad = subprocess.run([sys.executable, "-m", "reconkit", "reconcile", str(tmp_path / "credits.csv"),
                          str(tmp_path / "missing.csv")], capture_output=True, text=True)
    assert bad.returncode == 2 and "missing.csv" in bad.stderr and "Traceback" not in bad.stderr


def test_cli_reconcile_fetches_ids_from_the_embedded_sandbox(tmp_path):
    import os
    import shutil
    data = tmp_path / "data"
    shutil.copytree(Path(__file__).parents[1] / "data" / "sample", data / "sample")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CYBERSOURCE_")} | {"RECONKIT_DATA": str(data)}
    run = subprocess.run([sys.executable, "-m", "reconkit", "reconcile", str(data / "sample" / "credit_ids.csv"),
                          str(data / "sample" / "pbdr_xml.xml"), "-o", str(tmp_path / "r.html"),
                          "--as-of", "2026-11-04T18:00:00Z"], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "from SANDBOX" in run.stdout and "120 credits, 83 settlement rows" in run.stdout


def test_a_damaged_row_in_a_real_file_makes_its_credit_unreadable_not_missing(world, tmp_path):
    """Reader and engine together: the one matched credit whose amount is damaged in the file is
    UNREADABLE_SETTLEMENT naming that file and line; every other outcome stays as the generator meant."""
    sb, _, credits = world
    bundle = sb.settlement(format="pbdr_csv", discrepancies={}, out_dir=tmp_path, seed=9)
    path = Path(bundle.files[0])
    truth = bundle.credits_truth
    victim = truth[truth["outcome"] == "MATCHED"].iloc[0]
    lines = path.read_bytes().split(b"\r\n")
    number = next(n for n, line in enumerate(lines, start=1) if victim["reconciliation_id"].encode() in line)
    lines[number - 1] = lines[number - 1].replace(b",-", b",-1O", 1)  # letter O for zero: no amount
    path.write_bytes(b"\r\n".join(lines))

    settlement, failures = read_settlement(path, errors="collect")
    assert list(failures["source_line"].unique()) == [number]
    result = reconcile(credits, settlement, as_of=bundle.as_of, grace_days=bundle.grace_days, failures=failures)

    outcomes = dict(zip(result.credits["credit_id"], result.credits["outcome"], strict=True))
    assert outcomes.pop(victim["credit_id"]) == "UNREADABLE_SETTLEMENT"
    expected = dict(zip(truth["credit_id"], truth["outcome"], strict=True))
    expected.pop(victim["credit_id"])
    assert outcomes == expected
    row = result.breaks.set_index("credit_id").loc[victim["credit_id"]]
    assert f"{path.name} line {number}" in row["detail"]
    credit_amount = credits.set_index("credit_id").loc[victim["credit_id"], "amount"]
    assert row["amount_at_risk"] == credit_amount


@settings(max_examples=examples(300), deadline=None)  # cheap examples over scales and extreme units
@given(scale=st.integers(0, 6), start=st.integers(0, 2), currency=st.sampled_from(["JPY", "USD", "KWD", None]),
       units=st.lists(st.one_of(st.none(), st.integers(-(10**14), 10**14),
                                st.sampled_from([-(2**63), 2**63 - 1, 2**64 + 5, -(2**64)])), max_size=10))
def test_minor_units_read_off_the_decimal_buffer_equal_the_exact_value(scale, start, currency, units):
    # The engine reads decimal128's unscaled integer: minor units must be exactly amount * 10**digits,
    # an amount finer than the currency or too large must raise naming its row, never round or wrap.
    import pyarrow as pa

    from reconkit.match import _minor_units
    from reconkit.money import CURRENCIES

    values = [None if u is None else Decimal(u).scaleb(-scale) for u in units]
    array = pa.array([None, *values], pa.decimal128(38, scale)).slice(1 + min(start, len(values)))
    kept = values[min(start, len(values)):]
    digits = CURRENCIES.get(currency or "", 2)
    exact = [None if v is None else v.scaleb(digits) for v in kept]
    finer = [i for i, e in enumerate(exact) if e is not None and e != e.to_integral_value()]
    huge = [i for i, e in enumerate(exact) if e is not None and not -(2**63) < e < 2**63]
    if finer or huge:
        with pytest.raises(ReconciliationError, match=r"credits row \d+: amount ") as raised:
            _minor_units(array, pa.array([currency] * len(kept), pa.string()), "credits")
        assert int(re.search(r"row (\d+)", str(raised.value)).group(1)) in finer + huge
        return
    got, missing = _minor_units(array, pa.array([currency] * len(kept), pa.string()), "credits")
    assert [None if m else int(g) for g, m in zip(got, missing, strict=True)] == [
        None if e is None else int(e) for e in exact]


def test_every_unreadable_record_is_one_break_and_counts_as_unknown_at_risk(world, tmp_path):
    """A record that failed to read is never dropped: it is its credit's UNREADABLE_SETTLEMENT, or,
    when it explains no credit's absence (an unexpected row, a second row of a settled credit), an
    UNREADABLE_SETTLEMENT of its own, named by file and line, its amount at risk unknown."""
    sb, _, credits = world
    bundle = sb.settlement(format="pbdr_csv", discrepancies={"unexpected": 2, "duplicate": 1}, out_dir=tmp_path,
                           seed=9)
    path = Path(bundle.files[0])
    rows = bundle.settlement_truth
    matched = rows[rows["outcome"] == "MATCHED"].iloc[0]
    unexpected = rows[rows["outcome"] == "UNEXPECTED_SETTLEMENT"].iloc[0]
    doubled = rows[rows["outcome"] == "DUPLICATE_SETTLEMENT"].sort_values("source_line").iloc[-1]
    damaged = {int(r["source_line"]): r for r in (matched, unexpected, doubled)}
    lines = path.read_bytes().split(b"\r\n")
    for number in damaged:
        lines[number - 1] = lines[number - 1].replace(b",-", b",-1O", 1)  # letter O for zero: no amount
    path.write_bytes(b"\r\n".join(lines))

    settlement, failures = read_settlement(path, errors="collect")
    assert set(failures["source_line"]) == set(damaged)
    result = reconcile(credits, settlement, as_of=bundle.as_of, grace_days=bundle.grace_days, failures=failures)

    failed = result.breaks[result.breaks["outcome"] == "UNREADABLE_SETTLEMENT"]
    assert sorted(failed["source_line"]) == sorted(damaged)  # each damaged line: exactly one break
    by_line = failed.set_index("source_line")
    # The matched credit's only row failed: the credit is the break, at its amount.
    assert by_line.loc[int(matched["source_line"]), "credit_id"] == matched["credit_id"]
    amount = credits.set_index("credit_id").loc[matched["credit_id"], "amount"]
    assert by_line.loc[int(matched["source_line"]), "amount_at_risk"] == amount
    # The unexpected row and the duplicate's second row explain no credit's absence: breaks of their
    # own, with the record's ids, no currency and an unknown amount.
    for row in (unexpected, doubled):
        own = by_line.loc[int(row["source_line"])]
        assert pd.isna(own["credit_id"]) and own["reconciliation_id"] == row["reconciliation_id"]
        assert pd.isna(own["amount_at_risk"]) and pd.isna(own["currency"])
        assert "could not be read (amount:" in own["detail"] and Path(own["source_file"]).name == path.name
    # The duplicated credit keeps one readable row: it settled once.
    outcome = dict(zip(result.credits["credit_id"], result.credits["outcome"], strict=True))
    assert outcome[doubled["credit_id"]] == "MATCHED"
    summary = result.summary_table.to_pandas()
    own_rows = summary[(summary["outcome"] == "UNREADABLE_SETTLEMENT") & summary["currency"].isna()]
    assert own_rows["breaks"].sum() == 2 and own_rows["unknown_at_risk"].sum() == 2
    exported = pd.read_csv(result.to_csv(tmp_path / "breaks.csv"), dtype=str)
    shown = exported[exported["outcome"] == "UNREADABLE_SETTLEMENT"]
    assert sorted(shown["source_line"].astype(int)) == sorted(damaged)
    # Totals: the two have no currency and an unknown amount, said as such, never as 0.00; a
    # conversion asks no rate for them and leaves them out.
    totals = result.totals()
    unknown = totals[totals["currency"].isna()]
    assert unknown["breaks"].tolist() == [2] and unknown["amount_at_risk"].isna().all()
    known = totals.dropna(subset=["currency"])
    converted = result.totals(dict.fromkeys(known["currency"], "1"), base="USD")
    assert converted.iloc[-1]["converted"] == sum(a.quantize(Decimal("0.01")) for a in known["amount_at_risk"])
    text = result.summary_text()
    assert re.search(r"\*UNREADABLE_SETTLEMENT +unknown +0 +0 +2 +unknown", text), text
    html = result.to_html(tmp_path / "report.html", figures=True)
    assert html.count(">unknown<") == 4  # the totals' and the summary's currency and amount
    from openpyxl import load_workbook
    book = load_workbook(result.to_excel(tmp_path / "breaks.xlsx"))
    summary_rows = [r for r in book["Summary"].iter_rows(values_only=True) if r[0] == "UNREADABLE_SETTLEMENT"]
    assert ("unknown", 2, "unknown") in [(r[1], r[5], r[6]) for r in summary_rows]
    assert ("unknown", 2, "unknown") in list(book["Totals"].iter_rows(values_only=True))
