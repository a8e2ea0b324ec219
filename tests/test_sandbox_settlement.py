"""Generated settlement files read back with plain csv / ElementTree, against the ground truth."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET

import pytest

from reconkit.sandbox.settlement import DISCREPANCY_KINDS, FORMATS

from .conftest import ALL_KINDS


@pytest.fixture(scope="module")
def populated(world):
    sb, scenario, _ = world
    return sb, scenario


def _plain_rows(path):
    data = path.read_bytes()
    if path.suffix == ".xml":
        root = ET.fromstring(data)
        return [{child.tag.split("}")[1]: (child.text or "").strip() for child in req} | dict(req.attrib)
                for req in root.iter("{https://ebc.cybersource.com/ebc/reports/dtd/pbdr.dtd}Request")]
    text = data.decode("utf-8")
    lines = text.split("\r\n")
    assert lines[-1] == "" and all("\n" not in line for line in lines)  # CRLF throughout
    if lines[0].startswith(("Payment Batch Detail Report", "Payment Submission Detail Report")):
        lines = lines[1:]
    delimiter = ";" if ";" in lines[0] else ","
    rows = list(csv.DictReader(io.StringIO("\n".join(lines)), delimiter=delimiter))
    return [r for r in rows if r.get("Settlement Date") != "TOTAL"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_parses_back_and_the_truth_adds_up(populated, tmp_path, fmt):
    sb, scenario = populated
    bundle = sb.settlement(format=fmt, discrepancies=ALL_KINDS, out_dir=tmp_path, seed=4)
    rows = _plain_rows(bundle.files[0])
    assert len(rows) == len(bundle.settlement_truth)
    assert len(bundle.credits_truth) == len(scenario.credit_ids)
    assert set(bundle.credits_truth["credit_id"]) == set(scenario.credit_ids)
    unexpected = (bundle.settlement_truth["outcome"] == "UNEXPECTED_SETTLEMENT").sum()
    assert unexpected == bundle.injected["unexpected"] == 3
    assert sum(bundle.outcome_counts().values()) == len(scenario.credit_ids) + len(rows)
    assert bundle.injected == ALL_KINDS
    declined = bundle.credits_truth.set_index("credit_id").loc[scenario.declined, "outcome"]
    assert set(declined) == {"NO_SETTLEMENT_EXPECTED"}


def test_sign_conventions_and_quoting(populated, tmp_path):
    sb, _ = populated
    legacy = sb.settlement(format="pbdr_csv", out_dir=tmp_path).files[0]
    assert legacy.read_bytes().startswith(b"Payment Batch Detail Report,1.0,")
    rows = _plain_rows(legacy)
    assert all(r["amount"].startswith("-") == (r["transaction_type"] == "ics_credit") for r in rows)
    classic = sb.settlement(format="psd_classic_csv", out_dir=tmp_path).files[0]
    header = classic.read_bytes().decode().split("\r\n")[1]
    assert header.startswith('"batch_id","merchant_id"') and '"ics_applications"' in header
    rows = _plain_rows(classic)
    assert rows and all(not r["amount"].startswith("-") for r in rows)
    assert {r["ics_applications"] for r in rows} >= {"ics_credit"}
    root = ET.fromstring(sb.settlement(format="pbdr_xml", out_dir=tmp_path).files[0].read_bytes())
    amounts = [el.text for el in root.iter("{https://ebc.cybersource.com/ebc/reports/dtd/pbdr.dtd}Amount")]
    assert amounts and all(not a.startswith("-") for a in amounts)


def test_whitespace_ids_are_written_with_whitespace(populated, tmp_path):
    sb, _ = populated
    bundle = sb.settlement(format="pbdr_csv", discrepancies={"whitespace": 4}, out_dir=tmp_path)
    raw = [r for r in _plain_rows(bundle.files[0]) if r["request_id"] != r["request_id"].strip()]
    assert len(raw) == 4


def test_unknown_discrepancy_or_format_is_refused(populated, tmp_path):
    sb, _ = populated
    with pytest.raises(ValueError, match="unknown discrepancy"):
        sb.settlement(discrepancies={"typo": 1}, out_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown settlement format"):
        sb.settlement(format="pdf", out_dir=tmp_path)
    assert set(ALL_KINDS) == set(DISCREPANCY_KINDS)


def test_rates_are_fractions_of_the_settled_credits(populated, tmp_path):
    sb, _ = populated
    bundle = sb.settlement(discrepancies={"amount": 0.1}, out_dir=tmp_path)
    settled = (bundle.credits_truth["kind"].isin(["none", "amount"])).sum()
    assert bundle.injected["amount"] == round(0.1 * settled)


def test_disagreements_see_extra_breaks_in_both_directions(world, tmp_path):
    import pandas as pd

    from reconkit import read_settlement, reconcile

    sb, _, credits = world
    bundle = sb.settlement(format="pbdr_csv", out_dir=tmp_path, seed=4)
    settlement = read_settlement(bundle.files[0])
    assert bundle.disagreements(reconcile(credits, settlement, as_of=bundle.as_of,
                                          grace_days=bundle.grace_days)).empty
    # One settlement row and one credit the generator never made: both are breaks the truth does not hold.
    matched_line = bundle.settlement_truth.loc[bundle.settlement_truth["outcome"] == "MATCHED", "source_line"].iloc[0]
    extra_row = settlement[settlement["source_line"] == matched_line].assign(source_file=str(tmp_path / "extra.csv"), source_line=2,
                                            reconciliation_id="EXTRA00000000001", request_id="9" * 22)
    extra_credit = credits.iloc[[0]].assign(credit_id="8" * 22, reconciliation_id="EXTRA00000000002")
    result = reconcile(pd.concat([credits, extra_credit], ignore_index=True),
                       pd.concat([settlement, extra_row], ignore_index=True),
                       as_of=bundle.as_of, grace_days=bundle.grace_days)
    found = bundle.disagreements(result)
    assert sorted(map(tuple, found.to_numpy().tolist())) == sorted([
        ("credit", "8" * 22, None, result.credits.set_index("credit_id").at["8" * 22, "outcome"]),
        ("settlement", ("extra.csv", 2), None, "UNEXPECTED_SETTLEMENT")])


def test_written_truth_holds_whole_line_numbers_blank_for_credits(populated, tmp_path):
    import glob
    from pathlib import Path

    sb, _ = populated
    bundle = sb.settlement(format="processor_csv", out_dir=tmp_path / "settlement", seed=4)
    written = bundle.write_truth(tmp_path / "truth.csv")
    shipped = glob.glob(str(Path(__file__).parents[1] / "data" / "sample" / "*_truth.csv"))
    assert len(shipped) == len(FORMATS)
    for path in [written, *shipped]:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        for row in rows:
            expected_blank = row["side"] == "credit"
            assert (row["source_line"] == "") == expected_blank and (expected_blank or row["source_line"].isdigit()), (
                path, row)
    with open(written, newline="", encoding="utf-8") as handle:
        lines = [int(r["source_line"]) for r in csv.DictReader(handle) if r["side"] == "settlement"]
    assert lines == bundle.settlement_truth["source_line"].tolist()
