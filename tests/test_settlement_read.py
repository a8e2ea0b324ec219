"""Reading settlement files: every documented variant, bad input, fuzzing."""

from __future__ import annotations

import io
import re
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from reconkit import SettlementFormatError, read_settlement
from reconkit.settlement import CANONICAL_COLUMNS

LEGACY = (
    "Payment Batch Detail Report,1.0,2003-05-01 to 2003-05-01,,,,,,,\r\n"
    "batch_id,merchant_id,batch_date,request_id,merchant_ref_number,trans_ref_no,payment_method,currency,amount,"
    "transaction_type\r\n"
    "123456,CyberSource,2003-05-01,0004173790000167905139,5DADC3D2F4B7118,5629152830,Visa,USD,-100.00,ics_credit\r\n"
    "123456,CyberSource,2003-05-01,0004173790000167905140,5DADC3D2F4B7119,5629152831,Visa,USD,250.00,ics_bill\r\n"
)


def read(text: str | bytes, **kw):
    data = text.encode("utf-8") if isinstance(text, str) else text
    return read_settlement(data, name=kw.pop("name", "tiny.csv"), **kw)


def test_legacy_pbdr_csv_signs_ids_and_lines():
    frame = read(LEGACY)
    assert list(frame.columns[: len(CANONICAL_COLUMNS)]) == list(CANONICAL_COLUMNS)
    credit, bill = frame.iloc[0], frame.iloc[1]
    assert credit["request_id"] == "0004173790000167905139"  # leading zeros kept
    assert credit["reconciliation_id"] == "5629152830"  # all digits, still text
    assert credit["amount"] == Decimal("100.00") and credit["direction"] == "credit"
    assert bill["amount"] == Decimal("250.00") and bill["direction"] == "debit"
    assert frame["source_line"].tolist() == [3, 4] and frame["report_format"].iloc[0] == "pbdr_csv"
    assert frame["batch_date"].iloc[0] == pd.Timestamp("2003-05-01")
    assert frame["merchant_ref"].iloc[0] == "5DADC3D2F4B7118"


def test_bom_semicolon_and_unsigned_processor_file_with_footer():
    text = ("\ufeffSettlement Date;Batch Number;Merchant Order #;Reconciliation ID;Request ID;Transaction Type;"
            "Currency;Amount\n20261102;77;o-1;  AB12 ;  0001 ;REFUND;jpy;1000\n20261102;77;o-2;CD34;;SALE;USD;5.5\n"
            "TOTAL;2;;;;;;\n")
    frame = read(text)
    assert frame["reconciliation_id"].tolist() == ["AB12", "CD34"]
    assert frame["request_id"].tolist()[0] == "0001" and pd.isna(frame["request_id"].iloc[1])
    assert frame["currency"].tolist() == ["JPY", "USD"]
    assert frame["direction"].tolist() == ["credit", "debit"]
    assert frame["amount"].tolist() == [Decimal("1000"), Decimal("5.5")]
    assert len(frame) == 2  # the TOTAL footer is not a row


def test_classic_payment_submission_detail_quoted_and_applications():
    text = ('"Payment Submission Detail Report","1.0","2019-01-01 to 2019-01-01"\r\n'
            '"batch_id","merchant_id","batch_date","request_id","merchant_ref_number","trans_ref_no","payment_type",'
            '"currency","amount","ics_applications","payment_processor"\r\n'
            '"1","m","2019-01-01T08:00:00-08:00","1","r","X1","credit card","USD","10.00","ics_credit","p"\r\n'
            '"1","m","2019-01-01T08:00:00-08:00","2","r","X2","credit card","USD","10.00","ics_bill, ics_auth","p"\r\n')
    frame = read(text)
    assert frame["report_format"].iloc[0] == "psd_classic_csv"
    assert frame["direction"].tolist() == ["credit", "debit"]
    assert frame["payment_processor"].tolist() == ["p", "p"]  # extra columns are kept after the canonical ones
    assert frame["batch_date"].iloc[0] == pd.Timestamp("2019-01-01")


def test_documented_payment_submission_detail_the_pbdr_columns_and_the_processor_every_value_quoted():
    # The Reporting guide's layout: the PBDR v1.0 columns (a credit negative, its request id with
    # leading zeros, as in the guide's sample row) and a trailing payment_processor.
    text = ('Payment Submission Detail Report,1.0,2003-05-01 to 2003-05-01,,,,,,,,\r\n'
            '"batch_id","merchant_id","batch_date","request_id","merchant_ref_number","trans_ref_no",'
            '"payment_method","currency","amount","transaction_type","payment_processor"\r\n'
            '"123456","CyberSource","2003-05-01","0004173790000167905139","5DADC3D2F4B7118","5629152830","Visa",'
            '"USD","-100.00","ics_credit","smartfdc"\r\n')
    frame = read(text)
    row = frame.iloc[0]
    assert row["report_format"] == "psd_csv" and len(frame) == 1
    assert (row["request_id"], row["reconciliation_id"]) == ("0004173790000167905139", "5629152830")
    assert (row["direction"], row["amount"], row["currency"]) == ("credit", Decimal("100.00"), "USD")
    assert row["payment_processor"] == "smartfdc" and row["batch_date"] == pd.Timestamp("2003-05-01")


@pytest.mark.parametrize(("info", "named"), [
    ("Transaction Request Report,1.0,2022-09-29 to 2022-09-30,,,,,,,\r\n", "Transaction Request Report"),
    ("Batch Files Detail Report,1,2022-09-29 to 2022-09-30,,,,,,,\r\n", "Batch Files Detail Report"),
    ("", "Transaction Request Report")])
def test_a_batch_upload_results_report_is_refused_by_name_pointing_to_the_batch_detail_report(info, named):
    # The Batch Submission guide's layout: what a batch upload's requests did, not what settled.
    text = (info + "merchant_id,txn_batch_id,payment_processor,request_id,trans_ref_no,merchant_ref_number,ics_rflag,"
            "amount,currency,action\r\n"
            "m1,99,smartfdc,0004173790000167905139,5629152830,ref1,SOK,100.00,USD,BATCHED\r\n")
    with pytest.raises(SettlementFormatError) as raised:
        read(text, name="trr.csv")
    assert (raised.value.file, raised.value.line) == ("trr.csv", 2 if info else 1)
    assert named in str(raised.value) and "Payment Batch Detail Report" in str(raised.value)


def test_quoted_newlines_and_blank_lines_keep_exact_line_numbers():
    text = ("trans_ref_no,amount,currency,transaction_type,merchant_ref_number\n"
            'A,1.00,USD,ics_credit,"two\nlines"\n\nB,2.00,USD,ics_credit,x\n')
    frame = read(text)
    assert frame["source_line"].tolist() == [2, 5]
    assert frame["merchant_ref"].iloc[0] == "two\nlines"


def test_tab_delimited_and_latin1():
    text = "trans_ref_no\tamount\tcurrency\ttransaction_type\tmerchant_ref_number\nA\t1.00\tEUR\trefund\tCaf\xe9\n"
    with pytest.raises(SettlementFormatError, match="latin-1") as info:
        read(text.encode("latin-1"))
    assert info.value.line == 2
    frame = read(text.encode("latin-1"), encoding="latin-1")
    assert frame["merchant_ref"].iloc[0] == "Caf\xe9"


def test_excel_mangled_ids_are_reported_not_guessed():
    text = ("request_id,trans_ref_no,amount,currency,transaction_type\n"
            "4.17379E+21,,1.00,USD,ics_credit\n=\"0004173790000167905139\",R2,2.00,USD,ics_credit\n"
            "'5629152830,R3,3.00,USD,ics_credit\n")
    with pytest.raises(SettlementFormatError) as info:
        read(text)
    assert (info.value.file, info.value.line, info.value.column) == ("tiny.csv", 2, "request_id")
    assert "scientific notation" in str(info.value)
    frame, failures = read(text, errors="collect")
    assert frame["request_id"].tolist() == ["0004173790000167905139", "5629152830"]
    assert failures["source_line"].tolist() == [2]


def test_new_style_pbdr_csv_headers():
    text = ("Payment Batch Detail Report,1.0,2026-11-02 to 2026-11-02,m\n"
            "RequestID,MerchantID,BatchID,BatchDate,MerchantReferenceNumber,TransactionReferenceNumber,Application,"
            "PaymentMethod,CurrencyCode,Amount\n1,m,b,2026-11-02T23:59:59Z,r,T1,ics_credit,Visa,KWD,1.250\n")
    frame = read(text)
    assert frame["report_format"].iloc[0] == "pbdr_new_csv" and frame["amount"].iloc[0] == Decimal("1.250")


XML_V1 = """<?xml version="1.0" encoding="utf-8"?>
<Report Name="Payment Batch Detail" Version="1.0" xmlns="{ns}" MerchantID="CyberSource" ReportStartDate="2003-05-01T07:00:00-07:00" ReportEndDate="2003-05-02T07:00:00-07:00">
 <Batches>
  <Batch BatchID="123456" BatchDate="2003-05-01">
   <Requests>
    <Request RequestID="0004173790000167905139" MerchantReferenceNumber="5DADC3D2F4B7118">
     <TransactionReferenceNumber>
        5629152830
     </TransactionReferenceNumber>
     <PaymentMethod>Visa</PaymentMethod>
     <CurrencyCode>USD</CurrencyCode>
     <Amount>100.00</Amount>
     <Application>ics_credit</Application>
    </Request>
   </Requests>
  </Batch>
 </Batches>
</Report>
"""


@pytest.mark.parametrize("ns", ["https://ebc.cybersource.com/ebc/reports/dtd/pbdr.dtd",
                                "http://reports.ic3.com/reports/pbdr/1.0", ""])
def test_pbdr_xml_v1_any_namespace(ns):
    text = XML_V1.replace("{ns}", ns) if ns else XML_V1.replace(' xmlns="{ns}"', "")
    frame = read(text, name="r.xml")
    row = frame.iloc[0]
    assert row["reconciliation_id"] == "5629152830" and row["request_id"] == "0004173790000167905139"
    assert row["amount"] == Decimal("100.00") and row["direction"] == "credit"
    assert row["batch_id"] == "123456" and row["source_line"] == 6 and row["merchant_id"] == "CyberSource"


def test_pbdr_xml_prefixed_namespace_and_new_layout():
    text = """<?xml version="1.0"?>
<rpt:Report xmlns:rpt="https://api.cybersource.com/reporting/v3/xsds/BatchDetailReport" Name="x">
  <rpt:Requests>
    <rpt:Request RequestID="6760635718126158603955" MerchantReferenceNumber="RTS-Auth" MerchantID="m1">
      <rpt:ApplicationReplies><rpt:ApplicationReply Name="ics_credit"><rpt:RCode>1</rpt:RCode></rpt:ApplicationReply></rpt:ApplicationReplies>
      <rpt:PaymentData>
        <rpt:PaymentInfo><rpt:Amount>1.00</rpt:Amount><rpt:CurrencyCode>USD</rpt:CurrencyCode>
          <rpt:TransactionReferenceNumber> 69605700EDTK9EXS </rpt:TransactionReferenceNumber></rpt:PaymentInfo>
      </rpt:PaymentData>
      <rpt:BATCH><rpt:BatchID>9</rpt:BatchID><rpt:BatchDate>2023-02-11T00:00:00-08:00</rpt:BatchDate></rpt:BATCH>
    </rpt:Request>
  </rpt:Requests>
</rpt:Report>"""
    frame = read(text, name="new.xml")
    row = frame.iloc[0]
    assert row["report_format"] == "pbdr_xml_new" and row["reconciliation_id"] == "69605700EDTK9EXS"
    assert row["direction"] == "credit" and row["batch_id"] == "9" and row["source_line"] == 7


def test_purchase_refund_details_json():
    text = ('{"offset":0,"limit":2000,"requestDetails":[{"requestId":"0001","transactionReferenceNumber":"T1",'
            '"merchantReferenceNumber":"m","cybersourceMerchantId":"mid"}],"settlements":[{"requestId":"0001",'
            '"transactionType":"Refunds","amount":"-5.00","currencyCode":"GBP","cybersourceBatchTime":'
            '"2026-11-02T08:00:00Z","cybersourceBatchId":"b1"}]}')
    frame = read(text, name="prd.json")
    row = frame.iloc[0]
    assert (row["reconciliation_id"], row["request_id"], row["direction"], row["amount"]) == (
        "T1", "0001", "credit", Decimal("5.00"))


def test_excel_through_a_mapping(tmp_path):
    from openpyxl import Workbook
    book = Workbook()
    sheet = book.active
    sheet.append(["Acquirer settlement export"])
    sheet.append(["Merchant Ref", "Net Amt", "Ccy", "Kind"])
    sheet.append(["69605700EDTK9EXS", 1.5, "USD", "refund"])
    sheet.append([5629152830, 2, "EUR", "sale"])
    path = tmp_path / "acq.xlsx"
    book.save(path)
    mapping = {"reconciliation_id": "Merchant Ref", "amount": "Net Amt", "currency": "Ccy", "transaction_type": "Kind"}
    frame = read_settlement(path, mapping=mapping)
    assert frame["reconciliation_id"].tolist() == ["69605700EDTK9EXS", "5629152830"]
    assert frame["amount"].tolist() == [Decimal("1.5"), Decimal("2")]
    assert frame["source_line"].tolist() == [3, 4] and frame["report_format"].iloc[0] == "excel"


def test_mapping_for_a_csv_the_aliases_do_not_know():
    text = "Ref,Net Amt,Ccy,Kind\nA1,3.00,USD,refund\n"
    with pytest.raises(SettlementFormatError, match="mapping="):
        read(text)
    frame = read(text, mapping={"reconciliation_id": "Ref", "amount": "Net Amt", "currency": "Ccy",
                                "transaction_type": "Kind"})
    assert frame["amount"].iloc[0] == Decimal("3.00")
    with pytest.raises(SettlementFormatError, match="Nope"):
        read(text, mapping={"reconciliation_id": "Nope"})


@pytest.mark.parametrize(("line", "column", "reason"), [
    ("A,abc,USD,ics_credit", "amount", "not a plain decimal"),
    ("A,1.00,XYZ,ics_credit", "currency", "ISO 4217"),
    ("A,1.001,USD,ics_credit", "amount", "more decimal places"),
    ("A,1.00,USD,ics_teleport", "transaction_type", "unknown transaction type"),
    (",1.00,USD,ics_credit", "reconciliation_id", "neither"),
    ("A,1.00,USD", "*", "expected 4 fields, found 3"),
])
def test_row_failures_name_line_column_and_reason(line, column, reason):
    text = f"trans_ref_no,amount,currency,transaction_type\nOK,1.00,USD,ics_credit\n{line}\n"
    with pytest.raises(SettlementFormatError) as info:
        read(text)
    error = info.value
    assert (error.file, error.line, error.column) == ("tiny.csv", 3, column)
    assert reason in str(error)
    cases = error.failure_cases
    assert list(cases.columns) == ["source_file", "source_line", "column", "value", "reason", "reconciliation_id",
                                   "request_id"]
    frame, failures = read(text, errors="collect")
    assert len(frame) == 1 and failures["source_line"].tolist() == [3]


@pytest.mark.parametrize(("data", "message"), [
    (b"", "empty"), (b"\x00\x01\x02binary", "binary"), (b"<Report><Batches>", "malformed XML"),
    (b"hello,world\n1,2\n", "no column for"), (b'{"not": "it"}', "settlements"),
    (b"PK\x03\x04garbage", "xlsx"),
])
def test_structural_errors_are_settlement_format_errors(data, message):
    with pytest.raises(SettlementFormatError, match=message) as info:
        read(data, name="bad.bin")
    assert info.value.file == "bad.bin"


def test_forced_format_must_fit(tmp_path):
    with pytest.raises(SettlementFormatError, match="forced"):
        read(LEGACY, format="pbdr_xml")
    path = tmp_path / "a.csv"
    path.write_text(LEGACY)
    other = LEGACY.replace("\n", "\r\n")  # the same rows in other bytes: an identical copy would be refused
    (tmp_path / "b.csv").write_bytes(other.encode())
    frame = read_settlement(str(tmp_path / "*.csv"))
    assert len(frame) == 4 and frame["source_file"].nunique() == 2
    assert len(read_settlement([path, io.BytesIO(other.encode())])) == 4


def test_exported_search_results_csv():
    text = ("Merchant ID,Date and Time,Request ID,Merchant Reference Number,Last Name,First Name,Email Address,"
            "Amount,Currency,Account Suffix,Applications\n"
            'm1,Dec 01 2006 06:26:15 PM,1650000000000000000001,o1,Doe,J,j@x,-25.00,USD,1111,'
            '"Credit Card Credit (Accept)"\n'
            'm1,Dec 01 2006 06:27:15 PM,1650000000000000000002,o2,Doe,J,j@x,30.00,USD,1111,'
            '"Credit Card Authorization (Accept),Credit Card Settlement (Accept)"\n')
    frame = read(text)
    assert frame["report_format"].iloc[0] == "exported_search_csv"
    assert frame["direction"].tolist() == ["credit", "debit"]
    assert frame["amount"].tolist() == [Decimal("25.00"), Decimal("30.00")]
    assert frame["batch_date"].iloc[0] == pd.Timestamp("2006-12-01") and frame["reconciliation_id"].isna().all()


# --- issue 11: every row accounted for, every bad value refused, control totals checked ---------------------

HEAD = "trans_ref_no,request_id,amount,currency,transaction_type\n"
ROWS = [f"R{i},{i:022d},{i}.00,USD,ics_credit\n" for i in range(1, 6)]


def collect(text: str | bytes, **kw):
    return read(text, errors="collect", **kw)


def test_failures_carry_the_records_ids_trimmed_or_null():
    text = (HEAD + " R1 , 0001 ,1.00,XYZ,ics_credit\n"  # a bad cell: ids read from the record
            + "R2,0002,1.00\n"  # ragged: ids where the header puts them
            + ",4.17379E+21,1.00,USD,ics_credit\n"  # a mangled id is not an id
            + 'R4,0004,"1.00,USD,ics_credit\nR5,0005,5.00,USD,ics_credit\n')  # quote: ids before it
    frame, failures = collect(text)
    assert list(failures.columns) == ["source_file", "source_line", "column", "value", "reason", "reconciliation_id",
                                      "request_id"]
    ids = {line: (group["reconciliation_id"].tolist(), group["request_id"].tolist())
           for line, group in failures.groupby("source_line")}
    assert ids[2] == (["R1"], ["0001"])
    assert ids[3] == (["R2"], ["0002"])
    assert ids[4] == ([pd.NA], [pd.NA])
    assert ids[5] == (["R4"], ["0004"])
    assert frame["reconciliation_id"].tolist() == ["R5"]


def test_a_19_digit_amount_is_a_failure_on_its_line():
    for others in ("", "R9,9,oops,USD,ics_credit\n"):
        frame, failures = collect(HEAD + ROWS[0] + "R2,2,1234567890123456789.00,USD,ics_credit\n" + others)
        row = failures[failures["source_line"] == 3].iloc[0]
        assert (row["column"], row["value"]) == ("amount", "1234567890123456789.00")
        assert "too large" in row["reason"]
        assert frame["reconciliation_id"].tolist() == ["R1"]
    frame = read(HEAD + "R1,1,999999999999999999.99,USD,ics_credit\n")  # the largest that fits
    assert frame["amount"].iloc[0] == Decimal("999999999999999999.99")


@pytest.mark.parametrize("amount", ["1.23457E+06", "1e3", "-2.5E-1"])
def test_scientific_notation_is_refused_whatever_the_other_rows_hold(amount):
    alone = collect(HEAD + ROWS[0] + f"R2,2,{amount},USD,ics_credit\n")
    with_other = collect(HEAD + ROWS[0] + f"R2,2,{amount},USD,ics_credit\nR3,3,abc,USD,ics_credit\n")
    for frame, failures in (alone, with_other):
        assert frame["reconciliation_id"].tolist() == ["R1"]
        first = failures.iloc[0]
        assert (first["source_line"], first["column"], first["value"]) == (3, "amount", amount)
        assert "plain decimal" in first["reason"]


def test_plain_amounts_are_one_rule_whatever_the_other_rows_hold():
    cases = ["1.5", "+1.50", "-0", ".5", "5.", " 7.25 ", "000012.30", "1.500000000000000000000000", "1,5", "1_0",
             "", "inf", "0x10", "1.234"]
    alone = [collect(HEAD + f"R1,1,{value},USD,ics_credit\n") for value in cases]
    together_frame, together_failures = collect(HEAD + "".join(f"R{i},{i},{value},USD,ics_credit\n"
                                                              for i, value in enumerate(cases)))
    for index, (frame, failures) in enumerate(alone):
        line = index + 2
        assert len(frame) + len(failures) == 1
        in_together = together_frame[together_frame["source_line"] == line]
        assert len(in_together) == len(frame)
        if len(frame):
            assert in_together["amount"].iloc[0] == frame["amount"].iloc[0]
        else:
            assert together_failures[together_failures["source_line"] == line]["reason"].tolist() == \
                failures["reason"].tolist()
    good = dict(zip(cases, [f["amount"].iloc[0] if len(f) else None for f, _ in alone], strict=True))
    assert good["000012.30"] == Decimal("12.30") and good["1.500000000000000000000000"] == Decimal("1.5")
    assert good["1.234"] is None and good["1,5"] is None and good["inf"] is None


@pytest.mark.parametrize("at", [0, 1, 4])
def test_a_stray_quote_reports_its_record_and_the_rows_after_it_are_read(at):
    """`"` at the start of a field: the record it opens is a failure at its own line; no row vanishes."""
    for field in range(5):
        rows = list(ROWS)
        cells = rows[at].split(",")
        cells[field] = '"' + cells[field]
        rows[at] = ",".join(cells)
        frame, failures = collect(HEAD + "".join(rows))
        assert failures["source_line"].tolist() == [at + 2]
        assert "unbalanced double quote" in failures["reason"].iloc[0]
        assert sorted(frame["source_line"].tolist()) == [n + 2 for n in range(5) if n != at]
        with pytest.raises(SettlementFormatError, match="1 line") as info:
            read(HEAD + "".join(rows))
        assert info.value.line == at + 2


def test_a_properly_quoted_newline_is_still_one_row():
    frame, failures = collect(HEAD + 'R1,1,1.00,USD,"ics_credit,\nrefund"\n' + ROWS[1])
    assert frame["source_line"].tolist() == [2, 4] and failures.empty


def test_a_column_named_like_an_internal_one_is_just_a_column():
    frame = read("__line__," + HEAD.replace("\n", ",source_line\n") + "x,R1,1,1.00,USD,ics_credit,y\n")
    assert frame["__line__"].tolist() == ["x"] and frame["source_line"].tolist() == [2]


@pytest.mark.parametrize("first_cell", ["Total Wine & More", "END-1", "Count Basie", "TOTAL"])
def test_a_last_row_is_data_unless_it_has_a_footers_shape(first_cell):
    text = HEAD + ROWS[0] + f"{first_cell},7,3.00,USD,ics_credit\n"
    frame = read(text)
    assert frame["reconciliation_id"].tolist() == ["R1", first_cell]


@pytest.mark.parametrize(("footer", "reason"), [
    ("TOTAL,2,,,", None),
    ("Grand Total:,2,3.00,,", None),
    ("Trailer,,3.00,,", None),
    ("TOTAL,3,,,", "footer says 3 rows; the file has 2"),
    ("TOTAL,84,1234.56,,", "footer says 84 rows / 1,234.56; the file has 2 / 3.00"),
    ("Record Count,2,2.50,,", "footer says 2 rows / 2.50; the file has 2 / 3.00"),
])
def test_footer_control_totals_are_checked(footer, reason):
    text = HEAD + "R1,1,-1.00,USD,ics_bill\nR2,2,4.00,USD,ics_credit\n" + footer + "\n"
    frame, failures = collect(text)
    assert frame["reconciliation_id"].tolist() == ["R1", "R2"]  # the footer is never a row
    if reason is None:
        assert failures.empty
    else:
        assert failures["reason"].tolist() == [reason] and failures["source_line"].tolist() == [4]
        assert failures["reconciliation_id"].isna().all()


def test_footer_count_includes_rows_that_failed_and_a_ragged_footer_is_still_a_footer():
    text = HEAD + "R1,1,1.00,USD,ics_credit\nR2,2,oops,USD,ics_credit\nTOTAL,2\n"
    frame, failures = collect(text)
    assert len(frame) == 1 and failures["source_line"].tolist() == [3]
    assert collect(text.replace("TOTAL,2", "TOTAL,2,1.00"))[1]["source_line"].tolist() == [3]
    frame, failures = collect(text.replace("TOTAL,2", "TOTAL,2,2.00"))
    assert failures["source_line"].tolist() == [3, 4]
    assert failures["reason"].iloc[1] == ("footer says 2 rows / 2.00; the file has 2 / 1.00 (1 unreadable row(s) "
                                          "are not in the sum)")


def test_the_sandbox_processor_files_footer_agrees_with_its_rows(world, tmp_path):
    from .conftest import ALL_KINDS
    sb, _, _ = world
    path = sb.settlement(format="processor_csv", discrepancies=ALL_KINDS, out_dir=tmp_path, seed=3).files[0]
    last = path.read_bytes().decode().split("\r\n")[-2].split(";")
    assert last[0] == "TOTAL"
    frame, failures = read_settlement(path, errors="collect")
    assert failures.empty and len(frame) == int(last[1])
    wrong = path.read_bytes().replace(f"TOTAL;{last[1]};".encode(), f"TOTAL;{int(last[1]) + 1};".encode())
    frame, failures = read_settlement(wrong, name="p.csv", errors="collect")
    assert failures["reason"].tolist() == [f"footer says {int(last[1]) + 1} rows; the file has {last[1]}"]


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "cp1252"])
def test_encoding_is_honoured_and_a_utf16_bom_is_detected(codec):
    text = HEAD.replace("\n", ",merchant_ref_number\n") + "R1,1,1.00,EUR,refund,Café\n"
    data = text.encode(codec)
    frame = read(data, encoding=codec)
    assert frame["merchant_ref"].tolist() == ["Café"] and frame["source_line"].tolist() == [2]
    if codec in ("utf-16", "utf-32"):  # these write a byte-order mark
        assert read(data)["merchant_ref"].tolist() == ["Café"]


def test_utf16_xml_and_json_are_read_too():
    xml = XML_V1.replace(' xmlns="{ns}"', "").replace('encoding="utf-8"', 'encoding="utf-16"')
    assert read(xml.encode("utf-16"), name="r.xml")["reconciliation_id"].tolist() == ["5629152830"]
    doc = '{"settlements":[{"requestId":"1","transactionType":"refund","amount":"1.00","currencyCode":"USD"}]}'
    assert read(doc.encode("utf-16"), name="r.json")["request_id"].tolist() == ["1"]


def test_an_existing_file_name_is_never_a_pattern(tmp_path):
    (tmp_path / "x[1].csv").write_text(LEGACY)
    (tmp_path / "x1.csv").write_text(HEAD + ROWS[0])  # what the pattern x[1].csv would match
    frame = read_settlement(str(tmp_path / "x[1].csv"))
    assert frame["source_file"].unique().tolist() == [str(tmp_path / "x[1].csv")] and len(frame) == 2
    assert len(read_settlement(str(tmp_path / "x[0-9].csv"))) == 1  # a real pattern still globs


@pytest.mark.parametrize("document", [
    b'{"requestDetails": 5, "settlements": []}',
    b"[" * 100_000,
    b'{"settlements": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
])
def test_json_of_the_wrong_shape_is_a_settlement_format_error(document):
    with pytest.raises(SettlementFormatError) as info:
        read(document, name="prd.json")
    assert info.value.file == "prd.json"


def test_json_numbers_are_judged_as_written_and_odd_entries_are_failures():
    doc = ('{"settlements": [{"requestId": 7, "transactionType": "refund", "amount": 1.23457E+06, '
           '"currencyCode": "USD"}, 5, {"requestId": "8", "transactionType": {"a": 1}, "amount": "1.00", '
           '"currencyCode": "USD"}, {"requestId": "9", "transactionType": "refund", "amount": 2.50, '
           '"currencyCode": "USD"}]}')
    frame, failures = collect(doc, name="prd.json")
    assert frame["request_id"].tolist() == ["9"] and frame["amount"].tolist() == [Decimal("2.50")]
    assert sorted(set(failures["source_line"])) == [1, 2, 3]
    first = failures[failures["source_line"] == 1].iloc[0]
    assert (first["value"], first["request_id"]) == ("1.23457E+06", "7")


def _workbook(rows) -> bytes:
    from openpyxl import Workbook
    book = Workbook()
    sheet = book.active
    sheet.title = "Settled"
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _with_sheet(data: bytes, edit) -> bytes:
    import zipfile
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.namelist():
            content = source.read(item)
            target.writestr(item, edit(content.decode()) if item == "xl/worksheets/sheet1.xml" else content)
    return out.getvalue()


_BOOK_ROWS = [["trans_ref_no", "amount", "currency", "transaction_type"], ["A", "1.00", "USD", "ics_credit"],
              ["B", 2.5, "USD", "ics_bill"]]


def _flip_sheet_bytes(data: bytes) -> bytes:
    import zipfile
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo("xl/worksheets/sheet1.xml")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + 5
    return data[:start] + bytes(b ^ 0xFF for b in data[start:start + 20]) + data[start + 20:]


@pytest.mark.parametrize(("damage", "where"), [
    (lambda d: d[: len(d) // 2], None),  # BadZipFile
    (_flip_sheet_bytes, None),  # zlib.error
    (lambda d: _with_sheet(d, lambda x: x.replace("</sheetData>", "<row>")), "sheet 'Settled'"),  # ParseError
    (lambda d: _with_sheet(d, lambda x: x.replace('r="B3"', 'r="3B"')), "past row 2"),  # ValueError
    (lambda d: _with_sheet(d, lambda x: x.replace('<c r="A2" t="inlineStr"><is><t>A</t></is></c>',
                                                  '<c r="A2" t="s"><v>5</v></c>')), "past row 1"),  # IndexError
])
def test_a_damaged_workbook_is_a_settlement_format_error_naming_where(damage, where):
    data = damage(_workbook(_BOOK_ROWS))
    with pytest.raises(SettlementFormatError) as info:
        read(data, name="book.xlsx")
    assert info.value.file == "book.xlsx"
    if where:
        assert where in str(info.value)


def test_a_workbook_footer_is_checked_like_a_csv_one():
    rows = [*_BOOK_ROWS, ["Total", 3.5, 2, None]]
    frame, failures = collect(_workbook(rows), name="book.xlsx")
    assert len(frame) == 2 and failures.empty
    frame, failures = collect(_workbook([*_BOOK_ROWS, ["Total", None, 3, None]]), name="book.xlsx")
    assert failures["reason"].tolist() == ["footer says 3 rows; the file has 2"]
    assert failures["source_line"].tolist() == [4]


def test_an_xml_request_outside_any_batch_is_still_a_row():
    request = ('<Request RequestID="{n}"><TransactionReferenceNumber> T{n} </TransactionReferenceNumber>'
               "<CurrencyCode>USD</CurrencyCode><Amount>{amount}</Amount><Application>ics_credit</Application></Request>")
    text = ('<Report><Batches><Batch BatchID="1" BatchDate="2026-01-01"><Requests>\n'
            + request.format(n=1, amount="1.00") + "\n</Requests></Batch>\n"
            + request.format(n=2, amount="2.00") + "\n" + request.format(n=3, amount="1e3") + "\n</Batches></Report>")
    frame, failures = collect(text, name="r.xml")
    assert frame["reconciliation_id"].tolist() == ["T1", "T2"] and frame["batch_id"].tolist() == ["1", pd.NA]
    assert failures[["source_line", "reconciliation_id", "request_id"]].values.tolist() == [[5, "T3", "3"]]


@pytest.mark.parametrize("batch_date", ["0000-01-01", "2026-02-30", "2026-1-02 ", "2026/11/02"])
def test_a_bad_batch_date_is_a_failure_however_the_other_dates_look(batch_date):
    head = "trans_ref_no,amount,currency,transaction_type,batch_date\n"
    frame, failures = collect(head + "R1,1.00,USD,refund,2026-11-02\n" + f"R2,1.00,USD,refund,{batch_date}\n")
    if batch_date == "2026-1-02 ":  # strptime reads it, so it is a date
        assert frame["batch_date"].tolist() == [pd.Timestamp("2026-11-02"), pd.Timestamp("2026-01-02")]
    else:
        assert failures[["source_line", "column"]].values.tolist() == [[3, "batch_date"]]


def _sample_rows(path) -> int:
    """Data rows of a shipped pbdr_csv sample, counted from its bytes: lines after the header that hold a request id."""
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    header_at = next(n for n, line in enumerate(lines) if "request_id" in line.lower())
    return len(lines) - header_at - 1


def test_a_file_named_twice_is_read_once(tmp_path):
    from pathlib import Path

    sample = Path(__file__).parents[1] / "data" / "sample" / "pbdr_csv.csv"
    once = read_settlement(sample)
    assert len(once) == _sample_rows(sample)
    for twice in ([sample, sample], [sample, str(sample.parent / "." / sample.name)],
                  [str(sample.parent / "pbdr_csv.*"), sample]):
        frame = read_settlement(twice)
        assert len(frame) == len(once)
        assert frame["source_line"].is_unique


@pytest.mark.parametrize("copy_name", ["pbdr_csv (1).csv", "copy.csv"])
def test_a_byte_identical_copy_is_refused_naming_both_files(tmp_path, copy_name):
    from pathlib import Path

    sample = Path(__file__).parents[1] / "data" / "sample" / "pbdr_csv.csv"
    original, copy = tmp_path / "pbdr_csv.csv", tmp_path / copy_name
    original.write_bytes(sample.read_bytes())
    copy.write_bytes(sample.read_bytes())
    in_glob_order = sorted([str(original), str(copy)])
    for source, (first, second) in (([original, copy], (original, copy)),
                                    (str(tmp_path / "*.csv"), in_glob_order)):
        with pytest.raises(SettlementFormatError) as caught:
            read_settlement(source)
        assert str(caught.value).startswith(f"{second} is a byte-identical copy of {first}: the same rows would be "
                                            "counted twice")
        assert caught.value.file == str(second)
    uploads = {"pbdr_csv.csv": sample.read_bytes(), copy_name: sample.read_bytes()}
    with pytest.raises(SettlementFormatError, match=rf"{re.escape(copy_name)} is a byte-identical copy of pbdr_csv.csv"):
        read_settlement(uploads)
    # A different file of the same report is not a copy: a changed byte is read with the original.
    copy.write_bytes(sample.read_bytes().replace(b"\r\n", b"\n"))
    assert len(read_settlement([original, copy])) == 2 * _sample_rows(sample)


def test_uploads_as_a_dict_of_names_to_contents():
    from pathlib import Path

    folder = Path(__file__).parents[1] / "data" / "sample"
    uploads = {name: (folder / name).read_bytes() for name in ("pbdr_csv.csv", "processor_csv.csv")}
    frame = read_settlement(uploads)
    expected = pd.concat([read_settlement(data, name=name) for name, data in uploads.items()], ignore_index=True)
    assert sorted(frame["source_file"].unique()) == sorted(uploads)
    assert len(frame) == len(expected)


@pytest.mark.parametrize("truth", sorted(p.name for p in (Path(__file__).parents[1] / "data" / "sample").glob(
    "*_truth.csv")))
def test_a_ground_truth_file_is_refused_as_settlement_naming_it(truth):
    # The samples' ground truth sits beside them: a glob or the notebook's chooser can pick it up,
    # and read as a generic CSV it made false duplicate settlements.
    path = Path(__file__).parents[1] / "data" / "sample" / truth
    with pytest.raises(SettlementFormatError, match=rf"{re.escape(truth)}, line 1: this is a reconciliation's "
                                                     "ground truth"):
        read_settlement(path)
    _rows, failures = read_settlement([path.with_name(truth.replace("_truth.csv", ".csv")).with_suffix(
        ".xml" if truth.startswith("pbdr_xml") else ".csv")], errors="collect")
    assert failures.empty  # its settlement file beside it reads as before
