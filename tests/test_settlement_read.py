"""Reading settlement files: every documented variant, bad input, fuzzing."""

from __future__ import annotations

import io
from decimal import Decimal

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
    (tmp_path / "b.csv").write_text(LEGACY)
    frame = read_settlement(str(tmp_path / "*.csv"))
    assert len(frame) == 4 and frame["source_file"].nunique() == 2
    assert len(read_settlement([path, io.BytesIO(LEGACY.encode())])) == 4


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
