"""Parity: the same generated scenarios reconciled on DuckDB (pandas edges) and on Spark local[2]
give the same outcome for every credit and settlement row and the same amount at risk on every break."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from reconkit import ReconciliationError, read_settlement, reconcile
from reconkit.spark import break_page, credits_frame, local_session, summary_cards
from reconkit.spark import read_settlement as spark_read
from reconkit.spark import reconcile as spark_reconcile

from .conftest import ALL_KINDS


@pytest.fixture(scope="module")
def spark():
    return local_session()


def _spark_credits(spark, credits: pd.DataFrame):
    return credits_frame(spark, credits)


def _name(path) -> str | None:
    return None if path is None or pd.isna(path) else Path(str(path).removeprefix("file:")).name


def _break_key(record: dict) -> tuple:
    line, day = record["source_line"], record["batch_date"]
    return (record["break_on"], record["outcome"], *(record[name] if pd.notna(record[name]) else None
                                                     for name in ("credit_id", "reconciliation_id", "request_id")),
            _name(record["source_file"]), None if line is None or pd.isna(line) else int(line),
            None if day is None or pd.isna(day) else pd.Timestamp(day).date().isoformat())


def _assert_same(pandas_result, spark_result) -> None:
    credits = spark_result.credits.select("credit_id", "outcome").toPandas()
    assert dict(zip(credits["credit_id"], credits["outcome"], strict=True)) == dict(
        zip(pandas_result.credits["credit_id"].astype(str), pandas_result.credits["outcome"].astype(str),
            strict=True))
    rows = spark_result.settlement.select("source_file", "source_line", "outcome").toPandas()
    want = pandas_result.settlement
    assert {(_name(f), int(n)): o for f, n, o in zip(rows["source_file"], rows["source_line"], rows["outcome"],
                                                     strict=True)} == \
        {(_name(f), int(n)): str(o) for f, n, o in zip(want["source_file"], want["source_line"], want["outcome"],
                                                       strict=True)}
    shown = ["break_on", "outcome", "credit_id", "reconciliation_id", "request_id", "source_file", "source_line",
             "batch_date", "amount_at_risk_minor"]
    got = spark_result.breaks.select(*shown).toPandas().to_dict("records")
    table = pandas_result.break_table.select(shown).to_pylist()
    def risk(value: object) -> int | None:  # Spark's toPandas gives NaN where Arrow gives None
        return None if pd.isna(value) else int(value)
    assert sorted((_break_key(r), risk(r["amount_at_risk_minor"])) for r in got) == \
        sorted((_break_key(r), risk(r["amount_at_risk_minor"])) for r in table)
    summary = pandas_result.summary.set_index(["outcome", "currency"])
    for record in spark_result.summary.to_dict("records"):
        row = summary.loc[(record["outcome"], record["currency"])]
        assert (record["credits"], record["settlement_rows"], record["amount_at_risk"]) == \
            (row["credits"], row["settlement_rows"], row["amount_at_risk"])


@pytest.mark.parametrize(("fmt", "seed", "late_hours", "tolerance"), [
    ("pbdr_csv", 4, 0, "0.00"),
    ("pbdr_new_csv", 11, 60, {"USD": "0.05", "JPY": "3", "*": "0"}),
])
def test_spark_and_duckdb_agree_on_every_outcome_and_amount_at_risk(spark, world, tmp_path, fmt, seed, late_hours,
                                                                     tolerance):
    sb, _, credits = world
    as_of = sb.now() + timedelta(hours=late_hours)
    bundle = sb.settlement(format=fmt, discrepancies=ALL_KINDS, out_dir=tmp_path, seed=seed, as_of=as_of)
    expected = reconcile(credits, read_settlement(bundle.files[0]), as_of=as_of, grace_days=bundle.grace_days,
                         amount_tolerance=tolerance)
    assert bundle.disagreements(expected).empty  # the DuckDB side is itself right
    got = spark_reconcile(_spark_credits(spark, credits), spark_read(spark, str(bundle.files[0])).rows,
                          as_of=as_of, grace_days=bundle.grace_days, amount_tolerance=tolerance)
    _assert_same(expected, got)


@pytest.mark.parametrize("materialize", ["localCheckpoint"])
def test_every_materialize_choice_gives_the_same_result(spark, world, tmp_path, materialize):
    sb, _, credits = world
    bundle = sb.settlement(format="psd_classic_csv", discrepancies=ALL_KINDS, out_dir=tmp_path, seed=5)
    expected = reconcile(credits, read_settlement(bundle.files[0]), as_of=bundle.as_of, grace_days=bundle.grace_days)
    got = spark_reconcile(_spark_credits(spark, credits), spark_read(spark, str(bundle.files[0])).rows,
                          as_of=bundle.as_of, grace_days=bundle.grace_days, materialize=materialize)
    _assert_same(expected, got)
    pages = [break_page(got, page, size=10) for page in range(expected.break_table.num_rows // 10 + 2)]
    assert pages[-1].empty
    seen = pd.concat(pages, ignore_index=True)
    assert len(seen) == expected.break_table.num_rows == len(seen.drop_duplicates(["break_on", "credit_id",
                                                                                    "source_line"]))
    for _, group in seen.groupby("currency", sort=False):
        assert list(group["amount_at_risk"]) == sorted(group["amount_at_risk"], reverse=True)
    assert f"Breaks</div><div style='font-size:22px'>{expected.break_table.num_rows}</div>" in summary_cards(got)


@pytest.mark.parametrize(("currency", "amount", "reason"), [
    (None, "2.50", "no currency"), ("USD", None, "no amount"), ("USD", "2.505", "not an amount in USD"),
    ("JPY", "12.5", "not an amount in JPY"), ("USD", "abc", "not an amount in USD"),
])
def test_a_bad_credit_is_named(spark, currency, amount, reason):
    credits = spark.createDataFrame(
        [("ok-1", "R1", "PENDING", "2026-11-02 09:00:00", "1.00", "USD"),
         ("bad-2", "R2", "PENDING", "2026-11-02 09:00:00", amount, currency)],
        "credit_id string, reconciliation_id string, status string, submit_time_utc string, amount string, "
        "currency string")
    settlement = spark.createDataFrame([("R1", None, "credit", "1.00", "USD")],
                                       "reconciliation_id string, request_id string, direction string, "
                                       "amount string, currency string")
    with pytest.raises(ReconciliationError, match=f"1 credit.*the first: credit bad-2: .*{reason}"):
        spark_reconcile(credits, settlement, as_of="2026-11-03T00:00:00Z")


@pytest.mark.parametrize(("currency", "amount", "reason"), [(None, "2.50", "no currency"), ("USD", None, "no amount"),
                                                          (" ", "2.50", "no currency")])
def test_the_duckdb_path_names_a_credit_without_currency_or_amount(currency, amount, reason):
    credits = pd.DataFrame({
        "credit_id": pd.Series(["ok-1", "bad-2"], dtype="string"),
        "reconciliation_id": pd.Series(["R1", "R2"], dtype="string"),
        "status": pd.Series(["PENDING", "PENDING"], dtype="string"),
        "submit_time_utc": pd.to_datetime(["2026-11-02T09:00:00Z"] * 2, utc=True),
        "amount": pd.Series([Decimal("1.00"), None if amount is None else Decimal(amount)], dtype=object),
        "currency": pd.Series(["USD", currency], dtype="string")})
    settlement = pd.DataFrame({
        "reconciliation_id": pd.Series(["R1"], dtype="string"), "request_id": pd.Series([None], dtype="string"),
        "direction": pd.Series(["credit"], dtype="string"), "amount": pd.Series([Decimal("1.00")], dtype=object),
        "currency": pd.Series(["USD"], dtype="string")})
    with pytest.raises(ReconciliationError, match=f"1 credit.*the first: credit bad-2: {reason}"):
        reconcile(credits, settlement, as_of="2026-11-03T00:00:00Z")


def test_match_on_names_keys_and_the_reconciliation_id_wins_whatever_the_order(world, tmp_path):
    sb, _, credits = world
    bundle = sb.settlement(format="pbdr_csv", discrepancies=ALL_KINDS, out_dir=tmp_path, seed=8)
    settlement = read_settlement(bundle.files[0])
    runs = [reconcile(credits, settlement, as_of=bundle.as_of, grace_days=bundle.grace_days, match_on=keys)
            for keys in (("reconciliation_id", "request_id"), ("request_id", "reconciliation_id"))]
    assert runs[0].credits["outcome"].tolist() == runs[1].credits["outcome"].tolist()
    assert bundle.disagreements(runs[1]).empty
    only_request = reconcile(credits, settlement, as_of=bundle.as_of, grace_days=bundle.grace_days,
                             match_on=("request_id",))
    assert set(only_request.credits["outcome"]) - {"MISSING_PENDING", "MISSING_OVERDUE", "NO_SETTLEMENT_EXPECTED"} \
        <= {"MATCHED_BY_REQUEST_ID", "AMOUNT_MISMATCH", "CURRENCY_MISMATCH", "DUPLICATE_SETTLEMENT",
            "VOIDED_BUT_SETTLED", "DUPLICATE_CREDIT"}


def test_materialize_must_be_a_known_choice(spark):
    frame = spark.createDataFrame([("x",)], "credit_id string")
    with pytest.raises(ValueError, match="materialize must be one of"):
        spark_reconcile(frame, frame, materialize="memory")


def _damaged(path: Path, out: Path) -> Path:
    """The generated file with some credit rows made unreadable: a bad amount, a missing field, a bad currency."""
    lines = path.read_bytes().decode().split("\r\n")
    credit_lines = [i for i, line in enumerate(lines) if line.endswith(",ics_credit")]
    for index, damage in zip(credit_lines[1:12:3], ("amount", "ragged", "currency", "amount"), strict=False):
        cells = lines[index].split(",")
        if damage == "amount":
            cells[8] = "-1.2.3"
        elif damage == "ragged":
            cells = cells[:-1]
        else:
            cells[7] = "XYZ"
        lines[index] = ",".join(cells)
    out.write_bytes("\r\n".join(lines).encode())
    return out


def test_spark_and_duckdb_agree_with_unreadable_settlement_records(spark, world, tmp_path):
    sb, _, credits = world
    bundle = sb.settlement(format="pbdr_csv", discrepancies=ALL_KINDS, out_dir=tmp_path, seed=6)
    path = _damaged(bundle.files[0], tmp_path / "damaged.csv")
    frame, failures = read_settlement(path, errors="collect")
    expected = reconcile(credits, frame, as_of=bundle.as_of, grace_days=bundle.grace_days, failures=failures)
    unreadable = expected.credits[expected.credits["outcome"] == "UNREADABLE_SETTLEMENT"]
    assert failures["source_line"].nunique() == 4 and len(unreadable) >= 3  # a credit may have another row
    read = spark_read(spark, str(path))
    got = spark_reconcile(_spark_credits(spark, credits), read.rows, failures=read.failures, as_of=bundle.as_of,
                          grace_days=bundle.grace_days)
    _assert_same(expected, got)
    lines = got.breaks.where("outcome = 'UNREADABLE_SETTLEMENT'").select("source_line").toPandas()
    # Every damaged record is one break: its credit's, or its own when it explains no credit.
    assert sorted(lines["source_line"].astype(int)) == sorted(failures["source_line"].astype(int).unique())
