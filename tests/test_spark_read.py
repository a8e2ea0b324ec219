"""Spark's settlement readers against the pandas readers: same rows, same failures, from the same files."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconkit import read_settlement
from reconkit.errors import SettlementFormatError
from reconkit.spark import local_session, read_canonical
from reconkit.spark import read_settlement as spark_read

from .conftest import ALL_KINDS, examples

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


@pytest.mark.parametrize("fmt", ["pbdr_csv", "psd_csv", "psd_classic_csv", "pbdr_new_csv", "processor_csv"])
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


def _failure_list(failures: pd.DataFrame) -> list[tuple]:
    records = failures[["source_line", "column", "value", "reason", "reconciliation_id", "request_id"]]
    return sorted(tuple(None if pd.isna(v) else (int(v) if k == "source_line" else v) for k, v in record.items())
                  for record in records.to_dict("records"))


def _read_like_pandas(spark, paths: list[Path], **options) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Spark reads ``paths`` in one job; each file's rows and failures must be the pandas reader's."""
    read = spark_read(spark, [str(path) for path in paths], **options)
    rows, failures = read.rows.toPandas(), read.failures.toPandas()
    for frame in (rows, failures):
        frame["source_file"] = frame["source_file"].map(lambda p: Path(p).name)
    for path in paths:
        frame, want = read_settlement(path, errors="collect", **options)
        assert _comparable(rows[rows["source_file"] == path.name]) == _comparable(frame), path.name
        assert _failure_list(failures[failures["source_file"] == path.name]) == _failure_list(want), path.name
    return rows, failures


QUOTED = "trans_ref_no,request_id,merchant_ref,amount,currency,transaction_type\n"


def test_a_quoted_line_break_joins_its_lines_into_one_record_at_its_first_line(spark, tmp_path):
    files = {
        "lf.csv": QUOTED + 'R1,0001,"ACME\nSTORE",1.00,USD,refund\nR2,0002,x,2.00,USD,refund\n',
        "several.csv": (QUOTED + 'R1,0001,"A\n\nB\n""C""",1.00,USD,refund\nR2,0002,"x,\ny",2.00,USD,refund\n'
                        "R3,0003,z,3.00,USD,refund\nTOTAL,3,6.00,,,\n"),
    }
    files["crlf.csv"] = files["lf.csv"].replace("\n", "\r\n")
    for name, text in files.items():
        (tmp_path / name).write_bytes(text.encode())
    rows, failures = _read_like_pandas(spark, [tmp_path / name for name in files])
    assert failures.empty
    got = {(r.source_file, r.source_line, r.merchant_ref) for r in rows.itertuples()}
    assert got == {("lf.csv", 2, "ACME\nSTORE"), ("lf.csv", 4, "x"), ("crlf.csv", 2, "ACME\nSTORE"),
                   ("crlf.csv", 4, "x"), ("several.csv", 2, 'A\n\nB\n"C"'), ("several.csv", 6, "x,\ny"),
                   ("several.csv", 8, "z")}


def test_an_unbalanced_quote_is_a_failure_at_its_first_line_and_the_lines_after_it_are_read_on_their_own(
        spark, tmp_path):
    body = QUOTED + 'R1,0001,x,1.00,USD,refund\nR2,0002,"open,2.00,USD,refund\nR3,0003,z,3.00,USD,refund'
    files = {"end.csv": body + "\n", "end_no_break.csv": body,
             "middle.csv": QUOTED + 'R1,0001,"bad,1.00,USD,refund\nR2,0002,x,2.00,USD,refund\n'
                                    'R3,0003,"q",3.00,USD,refund\nR4,0004,y,4.00,USD,refund\n',
             "last_line.csv": QUOTED + 'R1,0001,x,1.00,USD,refund\nR2,0002,"a"b,2.00,USD,refund\n'}
    for name, text in files.items():
        (tmp_path / name).write_bytes(text.encode())
    rows, failures = _read_like_pandas(spark, [tmp_path / name for name in files])
    got = {(r.source_file, r.source_line, r.reconciliation_id) for r in failures.itertuples()}
    assert got == {("end.csv", 3, "R2"), ("end_no_break.csv", 3, "R2"), ("middle.csv", 2, "R1"),
                   ("last_line.csv", 3, "R2")}
    reasons = dict(zip(failures["source_file"], failures["reason"], strict=True))
    # The pandas reader counts the empty line after a final line break.
    assert "runs to line 5 leaving 3 fields instead of 6" in reasons["end.csv"]
    assert "runs to line 4 leaving 3 fields instead of 6" in reasons["end_no_break.csv"]
    # R3's opening quote closes R1's: six fields, but a quote followed by text is no close.
    assert "runs to line 4 and never closes" in reasons["middle.csv"]
    assert "runs to line 3 and never closes" in reasons["last_line.csv"]
    # Nothing is lost: every record is a row or a failure.
    assert sorted(zip(rows["source_file"], rows["source_line"], strict=True)) == [
        ("end.csv", 2), ("end.csv", 4), ("end_no_break.csv", 2), ("end_no_break.csv", 4), ("last_line.csv", 2),
        ("middle.csv", 3), ("middle.csv", 4), ("middle.csv", 5)]


def test_cells_are_split_as_the_csv_module_splits_them(spark, tmp_path):
    path = tmp_path / "cells.csv"
    path.write_text(QUOTED + 'R1,0001,"a ""b"", c"d,1.00,USD,refund\nR2,0002,12" TV,2.00,USD,refund\n'
                    'R3,0003,"a,""b""",3.00,USD\n"R4",x""",""y,4.00,USD,refund,extra\nR5,0005,z,5.00,USD,refund\n')
    rows, failures = _read_like_pandas(spark, [path])
    assert dict(zip(rows["reconciliation_id"], rows["merchant_ref"], strict=True)) == {
        "R1": 'a "b", cd', "R2": '12" TV', "R5": "z"}
    assert sorted(zip(failures["source_line"], failures["value"], failures["reconciliation_id"], strict=True)) == [
        (4, 'R3,0003,a,"b",3.00,USD', "R3"), (5, 'R4,x""",y,4.00,USD,refund,extra', "R4")]


WINDOWS = (QUOTED.encode() + b"R1,0001,Caf\xe9 \xa3 \x80,1.00,EUR,refund\n"
           b"R2,0002,\x93quoted\x94 \xe9,2.00,EUR,refund\n")


@pytest.mark.parametrize("encoding", ["latin-1", "cp1252"])
def test_latin1_and_windows_1252_files_are_decoded_byte_for_byte(spark, tmp_path, encoding):
    (tmp_path / "plain.csv").write_bytes(WINDOWS)
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbf" + WINDOWS)
    rows, failures = _read_like_pandas(spark, [tmp_path / "plain.csv", tmp_path / "bom.csv"], encoding=encoding)
    assert failures.empty
    want = [line.split(b",")[2].decode(encoding) for line in WINDOWS.splitlines()[1:]]
    assert want[0] == ("Café £ €" if encoding == "cp1252" else "Café £ \x80")
    for name in ("plain.csv", "bom.csv"):
        assert rows[rows["source_file"] == name].sort_values("source_line")["merchant_ref"].tolist() == want


def test_a_byte_windows_1252_does_not_define_is_a_failure_at_its_line(spark, tmp_path):
    path = tmp_path / "undefined.csv"
    path.write_bytes(WINDOWS + b"R3,0003,\x81,3.00,EUR,refund\n")
    read = spark_read(spark, str(path), encoding="cp1252")
    failures = read.failures.toPandas()
    assert failures[["source_line", "request_id"]].values.tolist() == [[4, "0003"]]
    assert "0x81" in failures["reason"].iloc[0] and read.rows.count() == 2
    with pytest.raises(SettlementFormatError, match="0x81"):  # the pandas reader refuses the file
        read_settlement(path, encoding="cp1252")


@pytest.mark.parametrize("encoding", ["utf-16", "no-such-codec"])
def test_an_encoding_the_spark_reader_cannot_decode_line_by_line_is_refused(spark, tmp_path, encoding):
    path = tmp_path / "any.csv"
    path.write_bytes(WINDOWS)
    with pytest.raises(ValueError, match=repr(encoding)):
        spark_read(spark, str(path), encoding=encoding)


# A line break at either end of a value is left out: the pandas reader trims a column's values
# only when one of them starts or ends with a space, so whether it keeps one depends on the others.
_QUOTED_CELL = (st.text(alphabet='a ,"\né', max_size=8).filter(lambda text: text == text.strip("\n"))
                .map(lambda text: '"' + text.replace('"', '""') + '"'))
_RAW_CELL = st.text(alphabet='a ,"é', max_size=6)  # stray quotes and delimiters: ragged or unbalanced records
_ROW = st.tuples(st.one_of(_QUOTED_CELL, _RAW_CELL), st.sampled_from(["", ",extra", "-"]))
_FILE = st.tuples(st.lists(_ROW, min_size=1, max_size=6), st.sampled_from(["\n", "\r\n"]), st.booleans())


@settings(max_examples=examples(5), deadline=None,  # each example is a Spark job (seconds)
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.lists(_FILE, min_size=1, max_size=3))
def test_any_quoting_reads_as_the_pandas_reader_reads_it(spark, files):
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for index, (rows, newline, final_break) in enumerate(files):
            lines = [QUOTED.rstrip("\n")]
            for number, (descriptor, tail) in enumerate(rows, 1):
                end = ",USD" if tail == "-" else f",USD,refund{tail}"  # one field short, or one too many
                lines.append(f"R{number},{number:04},{descriptor},{number}.00{end}")
            paths.append(Path(folder) / f"f{index}.csv")
            paths[-1].write_bytes((newline.join(lines) + (newline if final_break else "")).encode())
        rows, failures = _read_like_pandas(spark, paths)
        # Nothing lost: each file's records are its rows and the records that failed.
        for path in paths:
            frame, want = read_settlement(path, errors="collect")
            read = len(rows[rows["source_file"] == path.name])
            failed = failures[failures["source_file"] == path.name]["source_line"].nunique()
            assert read + failed == len(frame) + want["source_line"].nunique()


@pytest.mark.parametrize("big", ["unquoted", "quoted", "after a blank line", "the last record, quoted"])
def test_a_field_beyond_the_csv_limit_is_a_failure_at_its_line_like_the_pandas_reader(spark, tmp_path, big):
    from reconkit.settlement.delimited import FIELD_LIMIT

    header = "request_id,merchant_ref_number,amount,currency,transaction_type\n"
    good = "1234567890123456789012,R1,10.00,USD,ics_credit\n"
    long = "x" * (FIELD_LIMIT + 1)
    body = {"unquoted": f"1234567890123456789013,{long},10.00,USD,ics_credit\n" + good,
            "quoted": f'1234567890123456789013,"{long}",10.00,USD,ics_credit\n' + good,
            "after a blank line": f"\n1234567890123456789013,{long},10.00,USD,ics_credit\n" + good,
            "the last record, quoted": f'1234567890123456789013,R2,10.00,USD,"{long}"\n'}[big]
    path = tmp_path / "long.csv"
    path.write_text(header + good + body)
    read = spark_read(spark, str(path))
    frame, failures = read_settlement(path, errors="collect")
    got = sorted((r["source_line"], r["column"], r["reason"], r["request_id"]) for r in read.failures.collect())
    assert got == sorted(zip(failures["source_line"].astype(int), failures["column"], failures["reason"],
                             failures["request_id"], strict=True))
    assert len(got) == 1 and f"longer than {FIELD_LIMIT} characters" in got[0][2]
    assert _comparable(read.rows.toPandas()) == _comparable(frame)
