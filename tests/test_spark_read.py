"""Spark's settlement readers against the pandas readers: same rows, same failures, from the same files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from reconkit import read_settlement
from reconkit.errors import SettlementFormatError
from reconkit.spark import local_session, read_canonical
from reconkit.spark import read_settlement as spark_read

from .conftest import ALL_KINDS

COLUMNS = ["source_line", "reconciliation_id", "request_id", "merchant_ref", "transaction_type", "direction",
           "amount", "currency", "batch_id", "batch_date", "merchant_id", "payment_method", "report_format"]


@pytest.fixture(scope="module")
def spark():
    return local_session()


def _comparable(frame: pd.DataFrame) -> list[tuple]:
    frame = frame.sort_values("source_line")
    rows = []
    for record in frame[COLUMNS].to_dict("records"):
        record["amount"] = record["amount"].normalize() if record["amount"] is not None else None
        record["batch_date"] = pd.Timestamp(record["batch_date"]).date() if pd.notna(record["batch_date"]) else None
        rows.append(tuple(None if not isinstance(v, list) and pd.isna(v) else v for v in record.values()))
    return rows


@pytest.mark.parametrize("fmt", ["pbdr_csv", "psd_classic_csv", "pbdr_new_csv", "processor_csv"])
def test_generated_reports_read_as_the_pandas_reader_reads_them(spark, world, tmp_path, fmt):
    sb, _, _ = world
    bundle = sb.settlement(format=fmt, discrepancies=ALL_KINDS, out_dir=tmp_path, seed=4)
    path = bundle.files[0]
    read = spark_read(spark, str(path))
    rows = read.rows.toPandas()
    assert read.failures.count() == 0
    assert set(rows["source_file"].map(lambda p: Path(p).name)) == {path.name}
    assert _comparable(rows) == _comparable(read_settlement(path))


BAD = ("Payment Batch Detail Report,1.0,2026-11-02 to 2026-11-02,,,,\n"
       "trans_ref_no,request_id,amount,currency,transaction_type,batch_date\n"
       "OK1,0001,-1.00,USD,ics_credit,2026-11-02\n"
       "\n"
       "A2,0002,abc,USD,ics_credit,2026-11-02\n"
       "A3,0003,1.00,XYZ,ics_credit,2026-11-02\n"
       "A4,0004,1.5,JPY,ics_credit,2026-11-02\n"
       "A5,0005,1.00,USD,ics_teleport,2026-11-02\n"
       ",,1.00,USD,ics_credit,2026-11-02\n"
       "A7,0007,1.00,USD\n"
       "A8,0008,1.00,USD,ics_credit,someday\n"
       "4.17379E+21,0009,1.00,USD,ics_credit,2026-11-02\n"
       ' ="A10" ,\t0010 ,"2,000.00",USD,"ics_bill, ics_auth",20261102\n'
       "A11,0011,2.000,KWD,refund,11/02/2026\n"
       "TOTAL,11,,,,\n")


def test_bad_rows_are_failures_with_file_line_column_and_reason_like_the_pandas_reader(spark, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(BAD)
    read = spark_read(spark, str(path))
    got = sorted((r["source_line"], r["column"], r["reason"]) for r in read.failures.collect())
    frame, failures = read_settlement(path, errors="collect")
    want = sorted(zip(failures["source_line"].astype(int), failures["column"], failures["reason"], strict=True))
    assert got == want
    assert {line for line, _, _ in got} == {5, 6, 7, 8, 9, 10, 11, 12, 13}
    assert _comparable(read.rows.toPandas()) == _comparable(frame)
    assert read.rows.count() + len({line for line, _, _ in got}) == 15 - 3 - 1  # info, header, blank, footer: 11


def test_lines_are_exact_across_file_splits_and_many_files(spark, tmp_path):
    header = "trans_ref_no,amount,currency,transaction_type\n"
    for index in range(3):
        body = "".join(f"F{index}R{n},{n}.00,USD,refund\n" for n in range(1, 20_001))
        (tmp_path / f"part{index}.csv").write_text(header + body)
    spark.conf.set("spark.sql.files.maxPartitionBytes", str(64 * 1024))  # many splits per file
    try:
        read = spark_read(spark, str(tmp_path / "part*.csv"))
        # try_cast: Spark may evaluate this filter before the reader's own ones (on the header line).
        bad = read.rows.where("coalesce(try_cast(substring_index(reconciliation_id, 'R', -1) as int) + 1 "
                              "!= source_line, true)")
        assert bad.count() == 0
        assert read.rows.count() == 60_000 and read.failures.count() == 0
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")


def test_a_file_without_a_known_header_names_the_file(spark, tmp_path):
    path = tmp_path / "nope.csv"
    path.write_text("hello,world\n1,2\n")
    with pytest.raises(SettlementFormatError, match="no column for") as info:
        spark_read(spark, str(path))
    assert info.value.file.endswith("nope.csv") and info.value.line == 1


def test_parquet_in_the_canonical_schema(spark, world, tmp_path):
    sb, _, _ = world
    bundle = sb.settlement(format="pbdr_csv", out_dir=tmp_path, seed=1)
    spark_read(spark, str(bundle.files[0])).rows.write.parquet(str(tmp_path / "canonical"))
    frame = read_canonical(spark, str(tmp_path / "canonical"))
    assert frame.count() == len(read_settlement(bundle.files[0]))
    spark.createDataFrame([("x",)], "amount string").write.parquet(str(tmp_path / "other"))
    with pytest.raises(SettlementFormatError, match="lacks reconciliation_id"):
        read_canonical(spark, str(tmp_path / "other"))


FOOTED = ("trans_ref_no,request_id,amount,currency,transaction_type\n"
          "R1,0001,-1.00,USD,ics_bill\n"
          "R2,0002,4.00,USD,ics_credit\n"
          "R3,0003,oops,USD,ics_credit\n")


@pytest.mark.parametrize("footer", [
    "TOTAL,3,,,", "Grand Total:,3,3.00,,", "Trailer,,3.00,,", "TOTAL,2,,,", "TOTAL,84,1234.56,,",
    "Record Count,3,2.50,,", "TOTAL,3",
])
def test_footer_control_totals_are_checked_like_the_pandas_reader(spark, tmp_path, footer):
    path = tmp_path / "footed.csv"
    path.write_text(FOOTED + footer + "\n")
    read = spark_read(spark, str(path))
    frame, failures = read_settlement(path, errors="collect")
    want = sorted(zip(failures["source_line"].astype(int), failures["column"], failures["value"],
                      failures["reason"], strict=True))
    got = sorted((r["source_line"], r["column"], r["value"], r["reason"]) for r in read.failures.collect())
    assert got == want
    # The mismatching cases are known from the file: 3 records (one unreadable), signed sum 3.00.
    expected_at_footer = footer.split(",")[1:3] not in (["3", ""], ["3", "3.00"], ["", "3.00"], ["3"])
    assert any(line == 5 for line, *_ in got) == expected_at_footer
    assert _comparable(read.rows.toPandas()) == _comparable(frame)


def test_a_line_that_is_not_utf8_is_a_failure_naming_its_line_not_a_row(spark, tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(FOOTED.replace("oops", "2.00").encode() + b"R\xe94,0004,1.00,USD,ics_credit\n")  # é in Latin-1
    read = spark_read(spark, str(path))
    failures = read.failures.toPandas()
    assert failures[["source_line", "column"]].values.tolist() == [[5, "*"]]
    assert "not UTF-8" in failures["reason"].iloc[0] and failures["request_id"].iloc[0] == "0004"
    assert sorted(read.rows.toPandas()["reconciliation_id"]) == ["R1", "R2", "R3"]
    with pytest.raises(SettlementFormatError, match="latin-1"):  # the pandas reader refuses the file
        read_settlement(path)
