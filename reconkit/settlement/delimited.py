"""Delimited files (CSV, `;`, tab): CyberSource's CSV reports and processor files.

The header is found by content (a report-info line may come first); columns are identified by
name through the alias table, never by position. pyarrow reads the body when each record is
one line; anything unusual (quoted newlines, blank lines, ragged rows) takes the careful
Python path, which knows every row's line number.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from ..errors import SettlementFormatError
from .schema import ALIASES, FOOTER, Canonical, canonicalize, header_key, map_headers

__all__ = ["read_delimited"]

_REPORTS = {
    "payment batch detail report": "pbdr",
    "payment submission detail report": "psd",
    "transaction request report": "transaction_request_csv",
    "transaction detail report": "transaction_request_csv",
    "transaction exception detail report": "transaction_exception_csv",
    "payment events report": "payment_events_csv",
    "batch files detail report": "batch_files_csv",
}
def decode(data: bytes, name: str, encoding: str | None) -> str:
    """Bytes to text: UTF-8 (a BOM is dropped) unless told otherwise; a bad byte is located."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode(encoding or "utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise SettlementFormatError(
            f"byte 0x{data[exc.start]:02x} at offset {exc.start} is not {encoding or 'UTF-8'}; if the file is "
            "Latin-1 (Windows-1252), pass encoding='latin-1'", file=name, line=line,
            expected="UTF-8 text") from None


def _sniff_delimiter(line: str) -> str:
    counts = {d: line.count(d) for d in (",", ";", "\t", "|")}
    return max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","


def _split(line: str, delimiter: str) -> list[str]:
    # A stray carriage return inside one line would make the csv module refuse the line.
    return next(csv.reader([line.replace("\r", " ")], delimiter=delimiter), [])


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


_BREAK_PATTERN = r"\r\n|\r|\n"
"""Line breaks as the csv module and pyarrow see them: CRLF, LF, and a lone CR."""
_BREAK = re.compile(_BREAK_PATTERN.encode())


def _head_lines(data: bytes, name: str) -> list[str]:
    """The first lines, enough to find the header (decoded on their own: the body is not copied)."""
    cut = data[: 1 << 16]
    if len(data) > len(cut):
        cut = cut[: cut.rfind(b"\n") + 1] or cut
    return re.split(_BREAK_PATTERN, decode(cut, name, None))


def _offset_after(data: bytes, lines: int) -> int:
    """The byte offset where line ``lines + 1`` starts."""
    offset = 0
    for _ in range(lines):
        found = _BREAK.search(data, offset)
        if found is None:
            return len(data)
        offset = found.end()
    return offset


def read_delimited(data: bytes, name: str, *, mapping: Mapping[str, str] | None = None,
                   encoding: str | None = None, delimiter: str | None = None,
                   report_format: str | None = None) -> Canonical:
    """Read one delimited file into canonical rows and failure cases."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if encoding and encoding.lower().replace("_", "-") not in ("utf-8", "utf8", "utf-8-sig"):
        data = decode(data, name, encoding).encode("utf-8")
    lines = _head_lines(data, name)
    start = next((i for i, line in enumerate(lines) if line.strip()), None)
    if start is None:
        raise SettlementFormatError("the file is empty", file=name, line=1, expected="a header line")
    report = _info_line(_split(lines[start], delimiter or _sniff_delimiter(lines[start])))
    header_index: int | None = start
    if report is not None:
        header_index = next((i for i in range(start + 1, len(lines)) if lines[i].strip()), None)
        if header_index is None:
            raise SettlementFormatError("the report-info line is not followed by a header", file=name,
                                        line=start + 2, expected="a header line")
    delimiter = delimiter or _sniff_delimiter(lines[header_index])
    if lines[header_index].count('"') % 2:
        raise SettlementFormatError("the header line has an unbalanced double quote", file=name,
                                    line=header_index + 1, expected="column names, quoted in pairs if at all")
    headers = [h.strip() for h in _split(lines[header_index], delimiter)]
    chosen, extras = map_headers(headers, mapping, file=name, line=header_index + 1)
    fmt = report_format or _report_format(report, headers)
    offset = _offset_after(data, header_index + 1)
    table, ragged = _fast(data, offset, headers, delimiter, header_index), []
    if table is None:
        table, ragged = _careful(decode(data, name, None), headers, delimiter, header_index + 1, name)
    names = table.column_names
    columns = {field: table.column(names[headers.index(header)]) for field, header in chosen.items()}
    extra = {header: table.column(names[headers.index(header)]) for header in extras if header}
    first_column = table.column(names[0]) if table.num_rows else None
    result = canonicalize(columns, table.column("__line__").combine_chunks(), source_file=name,
                          report_format=fmt, extras=extra, footer_column=first_column)
    if ragged:
        ragged_table = pa.table({
            "source_file": pa.array([name] * len(ragged), pa.string()),
            "source_line": pa.array([r[0] for r in ragged], pa.int64()),
            "column": pa.array(["*"] * len(ragged), pa.string()),
            "value": pa.array([r[1] for r in ragged], pa.string()),
            "reason": pa.array([r[2] for r in ragged], pa.string()),
        })
        result.failures = pa.concat_tables([result.failures, ragged_table]).sort_by([("source_line", "ascending")])
    return result


def _unique(headers: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for header in headers:
        count = seen.get(header, 0)
        seen[header] = count + 1
        out.append(header if count == 0 else f"{header}.{count}")
    return out


def _fast(data: bytes, offset: int, headers: list[str], delimiter: str, header_index: int) -> pa.Table | None:
    """pyarrow's reader over the body bytes when every record is exactly one line; else None.

    Works on offsets into ``data``: a settlement file can be half a gigabyte, so nothing is copied.
    """
    end = len(data)
    while end > offset and data[end - 1] in b"\r\n":
        end -= 1
    # A blank line, a quoted newline or a ragged row makes the row count differ from the line
    # count (or is an invalid row): any of them sends the file to the careful path, so row i here
    # is always line header + 1 + i.
    if end <= offset or len(set(headers)) != len(headers):
        return None
    bad: list[object] = []

    def invalid(row: object) -> str:
        bad.append(row)
        return "skip"

    try:
        table = pacsv.read_csv(
            pa.py_buffer(memoryview(data)[offset:end]),
            read_options=pacsv.ReadOptions(column_names=headers, block_size=1 << 24),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=False,
                                             invalid_row_handler=invalid),
            convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(headers, pa.string()),
                                                 strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    if bad or table.num_rows != data.count(b"\n", offset, end) + 1:
        return None
    first = header_index + 2  # 1-based line of the first body row
    return table.append_column("__line__", pa.array(np.arange(first, first + table.num_rows, dtype=np.int64)))


def _careful(text: str, headers: list[str], delimiter: str, body_start: int, name: str
             ) -> tuple[pa.Table, list[tuple[int, str, str]]]:
    """Row by row with the csv module: exact line numbers; a ragged row is a failure, whole."""
    stream = io.StringIO(text, newline=None)  # universal newlines: a lone CR ends a line, as in the head
    for _ in range(body_start):
        stream.readline()
    reader = csv.reader(stream, delimiter=delimiter, strict=False)
    names = _unique(headers)
    values: list[list[str]] = [[] for _ in names]
    line_numbers: list[int] = []
    ragged: list[tuple[int, str, str]] = []
    previous = body_start
    try:
        for row in reader:
            line = previous + 1
            previous = body_start + reader.line_num
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != len(names):
                ragged.append((line, delimiter.join(row)[:200],
                               f"expected {len(names)} fields, found {len(row)}"))
                continue
            for index, cell in enumerate(row):
                values[index].append(cell)
            line_numbers.append(line)
    except csv.Error as exc:
        raise SettlementFormatError(f"unreadable CSV: {exc}", file=name, line=previous + 1,
                                    expected="well-formed quoted fields") from None
    if ragged and ragged[-1][0] > (line_numbers[-1] if line_numbers else 0) and FOOTER.match(ragged[-1][1]):
        ragged.pop()  # a totals/trailer line with its own shape closes the file; it is not a row
    table = pa.table({n: pa.array(v, pa.string()) for n, v in zip(names, values, strict=True)})
    return table.append_column("__line__", pa.array(line_numbers, pa.int64())), ragged
