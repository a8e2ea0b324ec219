"""Delimited files (CSV, `;`, tab): CyberSource's CSV reports and processor files.

The header is found by content (a report-info line may come first); columns are identified by
name through the alias table, never by position. pyarrow reads the body when each record is
one line; anything unusual (quoted newlines, blank lines, ragged rows) takes the careful
Python path, which knows every row's line number.
"""

from __future__ import annotations

import csv
import mmap
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ..errors import SettlementEncodingError, SettlementFormatError
from .footer import Footer, find_footer
from .schema import ALIASES, Canonical, canonicalize, failure_table, header_key, map_headers, may_hold

__all__ = ["FIELD_LIMIT", "TOO_LONG", "Bytes", "Header", "find_header", "read_delimited", "split_cells", "to_utf8"]

Bytes = bytes | mmap.mmap
"""File contents: bytes, or a read-only map of a file on disk (not copied into memory)."""

_REPORTS = {
    "payment batch detail report": "pbdr",
    "payment submission detail report": "psd",
    "transaction request report": "transaction_request_csv",
    "transaction detail report": "transaction_request_csv",
    "transaction exception detail report": "transaction_exception_csv",
    "payment events report": "payment_events_csv",
    "batch files detail report": "batch_files_csv",
}
_BATCH_UPLOAD_COLUMNS = frozenset({"txnbatchid", "icsrflag", "action"})
"""Columns of the Transaction Request Report of CyberSource's Batch Submission guide (formerly the
Batch Files Detail Report): a batch upload's results, not settlement. The Business Center's custom
"Transaction Request" report class shares the name, not these columns."""


def decode(data: bytes, name: str, encoding: str | None) -> str:
    """Bytes to text: UTF-8 (a BOM is dropped) unless told otherwise; a bad byte is located."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode(encoding or "utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise SettlementEncodingError(
            f"byte 0x{data[exc.start]:02x} at offset {exc.start} is not {encoding or 'UTF-8'}", file=name,
            line=line, encoding=encoding or "UTF-8") from None


_UTF8_NAMES = {"utf-8", "utf8", "utf-8-sig", "u8"}
_BOMS = ((b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"), (b"\xff\xfe", "utf-16"),
         (b"\xfe\xff", "utf-16"))


def to_utf8(data: Bytes, name: str, encoding: str | None) -> tuple[Bytes, bool]:
    """Text in any encoding as UTF-8 bytes, and whether it was converted.

    ``encoding`` wins; without it a UTF-16 or UTF-32 byte-order mark names the encoding.
    """
    if encoding is None:
        encoding = next((codec for bom, codec in _BOMS if data[:4].startswith(bom)), None)
    elif encoding.lower().replace("_", "-") in _UTF8_NAMES:
        encoding = None
    if encoding is None:
        return data, False
    try:
        "".encode(encoding)
    except LookupError:
        raise ValueError(f"unknown encoding {encoding!r}") from None
    return decode(bytes(data), name, encoding).lstrip("\ufeff").encode("utf-8"), True


def _sniff_delimiter(line: str) -> str:
    counts = {d: line.count(d) for d in (",", ";", "\t", "|")}
    return max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","


FIELD_LIMIT = csv.field_size_limit()
"""The longest field a record may hold (the csv module's limit, 128 KiB): a longer one is a failure on
its record in both paths (most often an unbalanced double quote that swallowed the lines after it)."""


def split_cells(line: str, delimiter: str) -> list[str]:
    """One line's cells; a line holding a field beyond :data:`FIELD_LIMIT` is cut at the delimiters
    (its record is reported as a failure; the cells only name its ids)."""
    # A stray carriage return inside one line would make the csv module refuse the line.
    try:
        return next(csv.reader([line.replace("\r", " ")], delimiter=delimiter), [])
    except csv.Error:
        return [cell.strip('"') for cell in line.split(delimiter)]


TOO_LONG = (f"a field is longer than {FIELD_LIMIT} characters, the most a settlement field may hold "
            "(an unbalanced double quote, or not a settlement file?)")
"""The failure reason of a record holding a field beyond :data:`FIELD_LIMIT`, in both readers."""


def _unreadable(exc: csv.Error) -> str:
    """A failure reason for a record the csv module refused, in words rather than its own."""
    if "field larger than field limit" in str(exc):
        return TOO_LONG
    return f"unreadable record: {exc}"


def _info_line(cells: list[str]) -> str | None:
    """The report name when a line is a report-info line rather than the header."""
    first = cells[0].strip().lower() if cells else ""
    known = sum(1 for c in cells if header_key(c) in ALIASES)
    if known >= 2:
        return None
    if first in _REPORTS or first.endswith("report"):
        return first
    return None


def _report_format(report: str | None, headers: list[str]) -> str:
    keys = {header_key(h) for h in headers}
    kind = _REPORTS.get(report or "")
    if kind == "pbdr":
        return "pbdr_csv" if "transrefno" in keys else "pbdr_new_csv"
    if kind == "psd":
        return "psd_classic_csv" if "icsapplications" in keys else "psd_csv"
    if kind:
        return kind
    if {"applications", "dateandtime", "requestid"} <= keys:
        return "exported_search_csv"
    return "csv"


_TRUTH_COLUMNS = frozenset({"outcome", "kind", "side"})
"""Columns of the sandbox generator's ground truth (``SettlementBundle.write_truth``), which no
settlement report has together."""

_BREAK_PATTERN = r"\r\n|\r|\n"
"""Line breaks as the csv module and pyarrow see them: CRLF, LF, and a lone CR."""
_BREAK = re.compile(_BREAK_PATTERN.encode())


def _head_lines(data: Bytes, start: int, name: str) -> list[str]:
    """The first lines, enough to find the header (decoded on their own: the body is not copied)."""
    cut = data[start:start + (1 << 16)]
    if len(data) > start + len(cut):
        cut = cut[: cut.rfind(b"\n") + 1] or cut
    return re.split(_BREAK_PATTERN, decode(cut, name, None))


def _offset_after(data: Bytes, offset: int, lines: int) -> int:
    """The byte offset where line ``lines + 1`` starts, counting from ``offset``."""
    for _ in range(lines):
        found = _BREAK.search(data, offset)
        if found is None:
            return len(data)
        offset = found.end()
    return offset


@dataclass
class _Body:
    """The records below the header: well-formed ones as text columns, the others as failures."""

    table: pa.Table
    lines: pa.Array
    bad: list[_Bad] = field(default_factory=list)


@dataclass
class _Bad:
    """A record that could not be split into the header's columns."""

    line: int
    text: str
    reason: str
    cells: list[str]


@dataclass(frozen=True)
class Header:
    """A delimited file's header, found by :func:`find_header`."""

    line: int
    """1-based line of the header."""
    delimiter: str
    names: tuple[str, ...]
    """The column names, trimmed, in file order."""
    chosen: tuple[tuple[str, str], ...]
    """(canonical field, column name) pairs, sorted by field."""
    extras: tuple[str, ...]
    """The other column names."""
    report_format: str


def find_header(lines: Sequence[str], name: str, *, mapping: Mapping[str, str] | None = None,
                delimiter: str | None = None, report_format: str | None = None) -> Header:
    """The header of a delimited file, found by content in its first ``lines`` (every reader's rule).

    A report-info line (``Payment Batch Detail Report,1.0,…``) may come before it; the delimiter
    is sniffed from the header unless given; the columns are mapped by :func:`map_headers`.

    Raises
    ------
    SettlementFormatError
        Naming ``name`` and the line: no non-blank line, a report-info line with no header after
        it, a header with an unbalanced double quote, or a header without the required columns.
    """
    start = next((i for i, line in enumerate(lines) if line.strip()), None)
    if start is None:
        raise SettlementFormatError("the file is empty", file=name, line=1, expected="a header line")
    report = _info_line(split_cells(lines[start], delimiter or _sniff_delimiter(lines[start])))
    index: int | None = start
    if report is not None:
        index = next((i for i in range(start + 1, len(lines)) if lines[i].strip()), None)
        if index is None:
            raise SettlementFormatError("the report-info line is not followed by a header", file=name,
                                        line=start + 2, expected="a header line")
    delimiter = delimiter or _sniff_delimiter(lines[index])
    if lines[index].count('"') % 2:
        raise SettlementFormatError("the header line has an unbalanced double quote", file=name, line=index + 1,
                                    expected="column names, quoted in pairs if at all")
    names = [h.strip() for h in split_cells(lines[index], delimiter)]
    if {n.lower() for n in names} >= _TRUTH_COLUMNS:  # beside the samples, a glob or a chooser finds it
        raise SettlementFormatError("this is a reconciliation's ground truth (the sandbox's generator writes it), "
                                    "not a settlement file", file=name, line=index + 1,
                                    expected="a settlement report's header")
    if {header_key(n) for n in names} >= _BATCH_UPLOAD_COLUMNS:
        what = {"batch files detail report": "a Batch Files Detail Report"}.get(report or "",
                                                                              "a Transaction Request Report")
        raise SettlementFormatError(
            f"this is {what} (the results of a batch upload: each request's reply flag and batch status such as "
            "BATCHED or FAILED, which say what was submitted, not what the processor settled)", file=name,
            line=index + 1, expected="a Payment Batch Detail Report (or Payment Submission Detail, or a processor's "
                                     "settlement file): what settled, by batch")
    chosen, extras = map_headers(names, mapping, file=name, line=index + 1)
    return Header(index + 1, delimiter, tuple(names), tuple(sorted(chosen.items())), tuple(extras),
                  report_format or _report_format(report, names))


def read_delimited(data: Bytes, name: str, *, mapping: Mapping[str, str] | None = None,
                   delimiter: str | None = None, report_format: str | None = None,
                   careful: bool = False) -> Canonical:
    """Read one UTF-8 delimited file into canonical rows and failure cases.

    ``careful=True`` skips the pyarrow path (both paths give the same result; tests compare them).
    """
    bom = 3 if data[:3] == b"\xef\xbb\xbf" else 0
    header = find_header(_head_lines(data, bom, name), name, mapping=mapping, delimiter=delimiter,
                         report_format=report_format)
    header_index, delimiter, headers = header.line - 1, header.delimiter, list(header.names)
    chosen, extras, fmt = dict(header.chosen), header.extras, header.report_format
    body = None if careful else _fast(data, _offset_after(data, bom, header_index + 1), headers, delimiter,
                                      header_index)
    if body is None:
        body = _careful(decode(bytes(data), name, None), headers, delimiter, header_index + 1)
    footer = _take_footer(body, headers, chosen.get("amount"), delimiter)
    names = body.table.column_names
    columns = {canonical: body.table.column(names[headers.index(header)]) for canonical, header in chosen.items()}
    extra = {header: body.table.column(names[headers.index(header)]) for header in extras if header}
    result = canonicalize(columns, body.lines, source_file=name, report_format=fmt, extras=extra, footer=footer,
                          unread_records=len(body.bad))
    if body.bad:
        def cell(record: _Bad, header: str | None) -> str | None:
            index = headers.index(header) if header else len(record.cells)
            return (record.cells[index].strip() or None) if index < len(record.cells) else None

        bad = failure_table(name, [b.line for b in body.bad], "*", [b.text for b in body.bad],
                            [b.reason for b in body.bad],
                            [cell(b, chosen.get("reconciliation_id")) for b in body.bad],
                            [cell(b, chosen.get("request_id")) for b in body.bad])
        result.failures = pa.concat_tables([result.failures, bad]).sort_by([("source_line", "ascending")])
    return result


def _take_footer(body: _Body, headers: list[str], amount_header: str | None, delimiter: str) -> Footer | None:
    """Remove the last record from ``body`` when it is a totals footer, and return it."""
    last_row = body.lines[-1].as_py() if len(body.lines) else 0
    if body.bad and body.bad[-1].line > last_row:
        record = body.bad[-1]
        footer = find_footer(record.cells, headers, amount_header, record.line, delimiter)
        if footer is not None:
            body.bad.pop()
        return footer
    if not last_row:
        return None
    cells = [str(column[-1].as_py() or "") for column in body.table.columns]
    footer = find_footer(cells, headers, amount_header, last_row, delimiter)
    if footer is not None:
        body.table = body.table.slice(0, body.table.num_rows - 1)
        body.lines = body.lines.slice(0, len(body.lines) - 1)
    return footer


def _unique(headers: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for header in headers:
        count = seen.get(header, 0)
        seen[header] = count + 1
        out.append(header if count == 0 else f"{header}.{count}")
    return out


def _count(data: Bytes, needle: bytes, start: int, end: int) -> int:
    return data.count(needle, start, end) if isinstance(data, bytes) else bytes(data[start:end]).count(needle)


def _fast(data: Bytes, offset: int, headers: list[str], delimiter: str, header_index: int) -> _Body | None:
    """pyarrow's reader over the body bytes when every record is exactly one line; else None.

    Works on offsets into ``data``: a settlement file can be half a gigabyte, so nothing is copied.
    """
    end = len(data)
    while end > offset and data[end - 1] in b"\r\n":
        end -= 1
    if end <= offset or len(set(headers)) != len(headers):
        return None
    bad: list[object] = []

    def invalid(row: object) -> str:
        bad.append(row)
        return "skip"

    quoted = data.find(b'"', offset, end) >= 0
    try:
        table = pacsv.read_csv(
            pa.py_buffer(memoryview(data)[offset:end]),
            read_options=pacsv.ReadOptions(column_names=headers, block_size=1 << 20),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, quote_char='"' if quoted else False,
                                             newlines_in_values=False, ignore_empty_lines=False,
                                             invalid_row_handler=invalid),
            # large_string: what pandas' Arrow-backed strings hold, so the frame needs no copy of them.
            convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(headers, pa.large_string()),
                                                 strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    # A blank or ragged line is an invalid row here (empty lines are kept): the careful path reads those.
    if bad:
        return None
    # Without a double quote every line break ends a row and row i is line header + 1 + i. With
    # quotes, a quoted line break would join lines: the rows must then match the line count, and
    # a lone CR (a line break to us, text inside quotes to pyarrow) must not occur.
    if quoted:
        if table.num_rows != _count(data, b"\n", offset, end) + 1:
            return None
        returns = _count(data, b"\r", offset, end)
        if returns and _count(data, b"\r\n", offset, end) != returns:
            return None
        final = bytes(data[data.rfind(b"\n", offset, end) + 1:end])
        if b'"' in final and not _closed([final.decode("utf-8", "replace")], delimiter):
            return None  # the file ends inside a quoted field: the careful path reports that record
    # A field the csv module would refuse is a failure there: the careful path reports it the same way.
    if any(pc.max(pc.binary_length(column)).as_py() > FIELD_LIMIT for column in table.columns):
        return None
    # A record of blank cells is no record; its first cell is blank, so only then look closer.
    first = table.column(0)
    if pc.min(pc.binary_length(first)).as_py() == 0 or may_hold(first, b" \t"):
        return None
    line = header_index + 2  # 1-based line of the first body row
    return _Body(table, pa.array(np.arange(line, line + table.num_rows, dtype=np.int64)))


def _closed(lines: list[str], delimiter: str) -> bool:
    """Whether a record spanning ``lines`` closes every quote it opens (the lenient reader does not
    say when the file ends inside a quoted field; the strict one does)."""
    try:
        next(csv.reader([line + "\n" for line in lines], delimiter=delimiter, strict=True), None)
    except csv.Error:
        return False
    return True


def _careful(text: str, headers: list[str], delimiter: str, body_start: int) -> _Body:
    """Record by record with the csv module: exact line numbers; a ragged record is a failure, whole.

    A record may span lines only through a quoted field; one that spans lines and still does not
    have the header's fields was opened by an unbalanced quote. It is reported at the line where
    it starts, and reading resumes on the next line, so the lines it swallowed are read on their own.
    """
    physical = re.split(_BREAK_PATTERN, text)
    names = _unique(headers)
    values: list[list[str]] = [[] for _ in names]
    line_numbers: list[int] = []
    bad: list[_Bad] = []
    final = next((i for i in range(len(physical) - 1, -1, -1) if physical[i].strip()), -1)
    start: int | None = body_start
    while start is not None:
        first_line, start = start, None
        reader = csv.reader((physical[i] + "\n" for i in range(first_line, len(physical))), delimiter=delimiter,
                            strict=False)
        while True:
            first = first_line + reader.line_num  # 0-based index of the record's first line
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                bad.append(_Bad(first + 1, physical[first][:200], _unreadable(exc),
                                split_cells(physical[first], delimiter)[:-1]))
                start = first + 1
                break
            last = first_line + reader.line_num - 1
            if not row or all(not cell.strip() for cell in row):
                continue
            # A record closes its quotes; only one that spans lines or ends the file can fail to.
            spans = last > first or (last == final and '"' in physical[last])
            if len(row) == len(names) and not (spans and not _closed(physical[first:last + 1], delimiter)):
                for index, cell in enumerate(row):
                    values[index].append(cell)
                line_numbers.append(first + 1)
            elif spans:
                ends = ("and never closes" if len(row) == len(names)
                        else f"leaving {len(row)} fields instead of {len(names)}")
                bad.append(_Bad(first + 1, physical[first][:200],
                                f"an unbalanced double quote: a quoted field opened on this line runs to line "
                                f"{last + 1} {ends}; the lines after this one are read on their own",
                                split_cells(physical[first], delimiter)[:-1]))
                start = first + 1
                break
            else:
                bad.append(_Bad(first + 1, delimiter.join(row)[:200],
                                f"expected {len(names)} fields, found {len(row)}", row))
    table = pa.table({n: pa.array(v, pa.large_string()) for n, v in zip(names, values, strict=True)})
    return _Body(table, pa.array(line_numbers, pa.int64()), bad)
