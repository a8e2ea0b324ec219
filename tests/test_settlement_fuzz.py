"""The settlement readers' contract under seeded mutation, for every format and a workbook.

For every mutant of the shipped sample files (and of a workbook and a purchase-refund JSON built
here), ``read_settlement`` either refuses the file with a ``SettlementFormatError`` naming it, or
returns a frame plus failures in which every physical record appears exactly once: as a row or as
failures on its line. The records are found here independently (the csv module, a SAX parser,
``json``, openpyxl), following the contract's definition:

- a record spanning lines must close its quotes and have the header's fields; otherwise it is one
  bad record at its first line and the lines after that line are records of their own;
- a record whose cells are all blank is no record;
- the last record is a footer, not a record, when its first cell is a totals keyword and its other
  cells are one to three figures.
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
import xml.sax
from collections.abc import Callable
from decimal import Decimal
from functools import partial
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconkit import SettlementFormatError, read_settlement
from reconkit.money import CURRENCIES
from reconkit.settlement import FAILURE_COLUMNS
from reconkit.settlement.delimited import read_delimited

from .conftest import examples

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "sample"
SEED = 20261128
BAD_AMOUNTS = ["1.23457E+06", "1234567890123456789.00", "12,50", "1.005", "-", "", "١٢", "NaN", "9" * 40]

# --- the records of a file, found independently ------------------------------------------------------------------

_FOOTER_WORDS = {"total", "totals", "grand total", "trailer", "end", "count", "record count"}


def _is_footer(cells: list[str]) -> bool:
    filled = [c.strip() for c in cells if c is not None and c.strip()]
    return (bool(filled) and filled[0].lower() in _FOOTER_WORDS and 1 <= len(filled) - 1 <= 3
            and all(re.fullmatch(r"[+-]?\d+(\.\d+)?", c) for c in filled[1:]))


def _closes(lines: list[str], delimiter: str) -> bool:
    try:
        list(csv.reader([line + "\n" for line in lines], delimiter=delimiter, strict=True))
    except csv.Error:
        return False
    return True


def delimited_records(data: bytes, delimiter: str, header_line: int, fields: int) -> tuple[set[int], int | None] | None:
    """(record lines, footer line) of a delimited file whose header is on ``header_line``; None when
    the bytes are not UTF-8 text."""
    try:
        text = data.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    except UnicodeDecodeError:
        return None
    lines = re.split(r"\r\n|\r|\n", text)
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    records: list[tuple[int, list[str] | None]] = []
    i = header_line
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        reader = csv.reader((line + "\n" for line in lines[i:]), delimiter=delimiter, strict=False)
        try:
            row = next(reader)
        except csv.Error:
            records.append((i + 1, None))
            i += 1
            continue
        used = reader.line_num
        if not any(cell.strip() for cell in row):
            i += used
            continue
        tail = i + used - 1
        open_quote = (used > 1 or tail == last) and not _closes(lines[i:tail + 1], delimiter)
        if used > 1 and (open_quote or len(row) != fields):
            records.append((i + 1, None))
            i += 1
        else:
            records.append((i + 1, None if open_quote else row))
            i += used
    footer = None
    if records and records[-1][1] is not None and _is_footer(records[-1][1]):
        footer = records.pop()[0]
    return {line for line, _ in records}, footer


class _Requests(xml.sax.ContentHandler):
    def __init__(self) -> None:
        super().__init__()
        self.requests: list[int] = []
        self.payment_infos: list[int] = []
        self.batches = 0

    def startElement(self, name: str, attrs: object) -> None:  # noqa: N802 - SAX's name
        local = name.rsplit(":", 1)[-1]
        line = self._locator.getLineNumber()
        if local == "Request":
            self.requests.append(line)
        elif local == "PaymentInfo":
            self.payment_infos.append(line)
        elif local == "Batch":
            self.batches += 1


def xml_records(data: bytes) -> tuple[set[int], None] | None:
    handler = _Requests()
    try:
        xml.sax.parseString(data, handler)
    except xml.sax.SAXException:
        return None
    if handler.batches or not handler.payment_infos:
        return (set(handler.requests), None) if handler.requests else None
    return set(handler.payment_infos), None


def json_records(data: bytes) -> tuple[set[int], None] | None:
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("settlements"), list):
        return None
    if not isinstance(doc.get("requestDetails") or [], list):
        return None
    return set(range(1, len(doc["settlements"]) + 1)), None


def workbook_records(data: bytes) -> tuple[set[int], int | None] | None:
    from openpyxl import load_workbook
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        rows = [["" if v is None else str(v) for v in row] for row in book.worksheets[0].iter_rows(values_only=True)]
    except Exception:  # any damage: the reader must refuse the file
        return None
    body = [(n, row) for n, row in enumerate(rows[1:], start=2) if any(cell.strip() for cell in row)]
    footer = body.pop()[0] if body and _is_footer(body[-1][1]) else None
    return {n for n, _ in body}, footer


# --- the contract ----------------------------------------------------------------------------------------------


def check_contract(data: bytes, name: str, records: tuple[set[int], int | None] | None) -> str:
    """Assert the reader's contract for one input; ``records`` is None when the file must be refused."""
    try:
        frame, failures = read_settlement(data, name=name, errors="collect")
    except SettlementFormatError as error:
        assert error.file == name and str(error)
        assert records is None, f"refused a file with readable records: {error}"
        return "refused"
    assert records is not None, "read a file that is structurally damaged"
    expected, footer = records
    assert list(failures.columns) == list(FAILURE_COLUMNS)
    assert (failures["source_file"] == name).all() and (frame["source_file"] == name).all()
    assert failures["source_line"].notna().all() and failures["reason"].notna().all()
    assert failures["column"].notna().all()
    footer_failures = failures[failures["reason"].str.startswith("footer says")]
    assert set(footer_failures["source_line"]) <= {footer}
    failed = set(failures["source_line"]) - {footer}
    read = list(frame["source_line"])
    assert len(read) == len(set(read)) and failed.isdisjoint(read)
    assert set(read) | failed == expected  # every physical record exactly once
    assert frame["amount"].map(lambda d: isinstance(d, Decimal) and d >= 0).all()
    assert frame["direction"].isin(["credit", "debit"]).all()
    assert frame["currency"].isin(list(CURRENCIES)).all()
    return "failures" if len(failures) else "clean"


# --- mutations -------------------------------------------------------------------------------------------------


def mutate(rng: random.Random, data: bytes, start: int, delimiter: bytes) -> bytes:
    """One to three damages at random places after byte ``start``."""
    raw = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        at = rng.randint(start, max(start, len(raw) - 1))
        kind = rng.choice(["quote", "field_quote", "delete", "junk", "truncate", "dup_line", "blank", "delimiter",
                           "newline", "amount", "last_cell", "digit"])
        if kind == "quote":
            raw[at:at] = b'"'
        elif kind == "field_quote":  # at the start of a field: the case that used to swallow rows
            found = raw.find(delimiter, at)
            raw[found + 1:found + 1] = b'"' if found >= 0 else b""
        elif kind == "delete":
            del raw[at:at + rng.randint(1, 12)]
        elif kind == "junk":
            raw[at:at] = bytes(rng.choice(b'\x00\xff\r\n";,|\t\xc3\xa9 ab9') for _ in range(rng.randint(1, 6)))
        elif kind == "truncate":
            del raw[at:]
        elif kind == "dup_line":
            line_start = raw.rfind(b"\n", start, at) + 1 or start
            line_end = raw.find(b"\n", at) + 1 or len(raw)
            raw[line_end:line_end] = raw[line_start:line_end]
        elif kind == "blank":
            raw[at:at] = b"\r\n\r\n"
        elif kind == "delimiter":
            raw[at:at] = delimiter
        elif kind == "newline":
            raw[at:at] = rng.choice([b"\n", b"\r"])
        elif kind == "amount":
            match = re.compile(rb"\d+\.\d\d").search(bytes(raw), at)
            if match:
                raw[match.start():match.end()] = rng.choice(BAD_AMOUNTS).encode()
        elif kind == "last_cell":  # the last record's first cell: footers are recognised by shape
            line_start = bytes(raw).rstrip(b"\r\n").rfind(b"\n") + 1
            cell_end = raw.find(delimiter, line_start)
            if line_start > start and cell_end > 0:
                raw[line_start:cell_end] = rng.choice([b"Total Wine & More", b"END-1", b"TOTAL", b"Count"])
        else:
            digits = [i for i in range(at, min(len(raw), at + 40)) if 48 <= raw[i] <= 57]
            if digits:
                raw[digits[0]] = rng.choice(b"0123456789")
    return bytes(raw)


def _body_start(data: bytes, header_line: int) -> int:
    offset = 0
    for _ in range(header_line):
        offset = data.index(b"\n", offset) + 1
    return offset


DELIMITED = [("pbdr_csv.csv", b",", 1, 10), ("pbdr_new_csv.csv", b",", 1, 13), ("psd_classic_csv.csv", b",", 1, 11),
             ("processor_csv.csv", b";", 0, 9)]


def _processor_rows() -> list[list[object]]:
    with (SAMPLES / "processor_csv.csv").open(newline="") as handle:
        return [list(row) for row in csv.reader(handle, delimiter=";")]


def _purchase_refund_json() -> bytes:
    """A purchase-refund-details response holding the processor sample's rows."""
    header, *rows, _ = _processor_rows()
    at = {name: header.index(name) for name in header}
    details = [{"requestId": r[at["Request ID"]], "transactionReferenceNumber": r[at["Reconciliation ID"]],
                "merchantReferenceNumber": r[at["Merchant Order #"]]} for r in rows]
    settlements = [{"requestId": r[at["Request ID"]], "transactionType": r[at["Transaction Type"]].title(),
                    "amount": r[at["Amount"]], "currencyCode": r[at["Currency"]],
                    "cybersourceBatchId": r[at["Batch Number"]]} for r in rows]
    return json.dumps({"requestDetails": details, "settlements": settlements}, indent=1).encode()


def _json_mutant(rng: random.Random, document: bytes) -> bytes:
    """Damage to the structure: entries and values of the wrong JSON type, missing keys, odd numbers."""
    doc = json.loads(document)
    for _ in range(rng.randint(1, 3)):
        entries = doc["settlements"]
        index = rng.randrange(len(entries))
        kind = rng.choice(["value", "value", "entry", "drop_key", "details", "number"])
        if kind == "value" and isinstance(entries[index], dict):
            key = rng.choice(["requestId", "transactionType", "amount", "currencyCode", "cybersourceBatchId"])
            entries[index][key] = rng.choice([5, {"a": 1}, [1], None, True, "", *BAD_AMOUNTS])
        elif kind == "entry":
            entries[index] = rng.choice([5, "x", None, [], {}])
        elif kind == "drop_key" and isinstance(entries[index], dict) and entries[index]:
            del entries[index][rng.choice(sorted(entries[index]))]
        elif kind == "details":
            doc["requestDetails"][index] = rng.choice([5, None, {"requestId": [1]}])
        elif isinstance(entries[index], dict):
            entries[index]["amount"] = rng.choice([1.5, 12, 1e21, -0.0])
    return json.dumps(doc).encode()


def _workbook(rows: list[list[object]]) -> bytes:
    from openpyxl import Workbook
    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _workbook_mutant(rng: random.Random, rows: list[list[object]]) -> list[list[object]]:
    rows = [list(row) for row in rows]
    for _ in range(rng.randint(1, 3)):
        index = rng.randrange(1, len(rows))
        kind = rng.choice(["cell", "delete", "duplicate", "footer", "blank"])
        if kind == "cell":
            cell = rng.randrange(len(rows[index]))
            rows[index][cell] = rng.choice([*BAD_AMOUNTS, None, 12.5, 1.5e20, 83, 10**25, "Total Wine & More", "END-1",
                                            "TOTAL", "  ", '"'])
        elif kind == "delete":
            del rows[index]
        elif kind == "duplicate":
            rows.insert(index, list(rows[index]))
        elif kind == "footer":
            rows[-1][1] = rng.choice([None, 0, 82, 83, 84, "83.00"])
        else:
            rows.insert(index, [None] * len(rows[0]))
    return rows


def _mutants() -> list[tuple[str, bytes, Callable[[bytes], tuple[set[int], int | None] | None]]]:
    rng = random.Random(SEED)
    cases = []
    for file, delimiter, header_line, fields in DELIMITED:
        data = (SAMPLES / file).read_bytes()
        start = _body_start(data, header_line + 1)

        records = partial(delimited_records, delimiter=delimiter.decode(), header_line=header_line + 1, fields=fields)
        cases += [(file, mutate(rng, data, start, delimiter), records) for _ in range(170)]
    xml_data = (SAMPLES / "pbdr_xml.xml").read_bytes()
    cases += [("pbdr_xml.xml", mutate(rng, xml_data, 0, b" "), xml_records) for _ in range(150)]
    json_data = _purchase_refund_json()
    cases += [("prd.json", mutate(rng, json_data, 0, b","), json_records) for _ in range(70)]
    cases += [("prd.json", _json_mutant(rng, json_data), json_records) for _ in range(80)]
    rows = [*_processor_rows()[:-1], ["TOTAL", 83]]
    cases += [("book.xlsx", _workbook(_workbook_mutant(rng, rows)), workbook_records) for _ in range(80)]
    book = _workbook(rows)
    cases += [("book.xlsx", mutate(rng, book, 0, b"<"), workbook_records) for _ in range(40)]
    return cases


def test_the_unmutated_inputs_read_clean():
    for file, _, _, _ in DELIMITED:
        frame, failures = read_settlement(SAMPLES / file, errors="collect")
        assert failures.empty and len(frame) == 83
    for data, name in ((_purchase_refund_json(), "prd.json"), (_workbook([*_processor_rows()[:-1], ["TOTAL", 83]]),
                                                                "book.xlsx")):
        frame, failures = read_settlement(data, name=name, errors="collect")
        assert failures.empty and len(frame) == 83


def test_a_thousand_mutants_keep_the_contract():
    """Seeded, so a failure names a mutant that can be rebuilt; every format and a workbook."""
    cases = _mutants()
    assert len(cases) >= 1000
    outcomes: dict[str, dict[str, int]] = {}
    for number, (name, data, records) in enumerate(cases):
        try:
            outcome = check_contract(data, name, records(data))
        except AssertionError as error:
            raise AssertionError(f"mutant {number} of {name}: {error}\n{data[:3000]!r}") from None
        counts = outcomes.setdefault(name, {})
        counts[outcome] = counts.get(outcome, 0) + 1
    # The mutants exercise every branch of the contract for every input, not only refusals.
    for name, counts in outcomes.items():
        assert counts.get("failures", 0) >= 10, (name, counts)
        if not name.endswith((".xlsx", ".xml")):
            assert counts.get("clean", 0) + counts.get("failures", 0) >= 50, (name, counts)


# --- the fast and the careful path agree ----------------------------------------------------------------------

_CELLS = {
    "trans_ref_no": st.sampled_from(["R1", " R2 ", "", "4.17379E+21", "00123", '="0004"', "A B", 'x"y', '"q"']),
    "request_id": st.sampled_from(["0004173790000167905139", "", " 7 ", "'5629152830", "1"]),
    "amount": st.sampled_from(["1.00", "-2.50", "1.23457E+06", "12,50", "0.001", "1234567890123456789", "+.5", "5.",
                               "abc", "", " 3.10 ", "100", "1.5e2", '"7.25"']),
    "currency": st.sampled_from(["USD", "jpy", "KWD", "XYZ", "", " EUR "]),
    "transaction_type": st.sampled_from(["ics_credit", "ics_bill", "refund", "SALE", "ics_teleport", "",
                                         '"ics_bill, ics_auth"']),
    "batch_date": st.sampled_from(["2026-11-02", "20261102", "11/02/2026", "yesterday", ""]),
    "merchant_ref_number": st.text(alphabet="ab |\t'", max_size=4),
}


@st.composite
def _one_line_files(draw: st.DrawFn) -> bytes:
    names = list(_CELLS)
    rows = draw(st.lists(st.fixed_dictionaries(_CELLS), min_size=1, max_size=12))
    delimiter = draw(st.sampled_from([",", ";"]))
    lines = [delimiter.join(names)]
    lines += [delimiter.join(row[name] for name in names) for row in rows]
    if draw(st.booleans()):
        lines.append(delimiter.join(["TOTAL", str(draw(st.integers(0, 14))), draw(st.sampled_from(["", "3.00"]))]
                                    + [""] * (len(names) - 3)))
    return ("\r\n" if draw(st.booleans()) else "\n").join(lines).encode() + b"\n"


@settings(max_examples=examples(200), deadline=None,  # cheap examples over any quoting of one line
          suppress_health_check=[HealthCheck.too_slow])
@given(data=_one_line_files())
def test_the_fast_and_the_careful_path_agree(data):
    fast = read_delimited(data, "f.csv")
    careful = read_delimited(data, "f.csv", careful=True)
    assert fast.table.equals(careful.table)
    assert fast.failures.equals(careful.failures)
    assert fast.footer == careful.footer


@pytest.mark.parametrize("file", [d[0] for d in DELIMITED])
def test_both_paths_agree_on_the_samples(file):
    data = (SAMPLES / file).read_bytes()
    fast, careful = read_delimited(data, file), read_delimited(data, file, careful=True)
    assert fast.table.equals(careful.table) and fast.failures.equals(careful.failures)
