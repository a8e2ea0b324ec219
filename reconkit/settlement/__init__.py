"""Settlement files in, one canonical DataFrame out.

``read_settlement`` detects the format from the first bytes and the header names (never
column positions), reads CyberSource's CSV and XML reports, the purchase-refund-details JSON,
processor CSVs and Excel files, and returns one row per settlement row with its file and line.

The contract, for every input: a frame plus failures in which every physical record appears
exactly once (a row, or failures on its line, naming file, line and column); nothing but
:class:`~reconkit.errors.SettlementFormatError` escapes; the pyarrow path and the careful
record-by-record path give the same result. A totals footer is recognised by its shape and its
control totals are checked against what was read.
"""

from __future__ import annotations

import glob
import hashlib
import mmap
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any, Literal, overload

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import SettlementFormatError
from .delimited import Bytes, read_delimited, to_utf8
from .json_report import read_purchase_refund_json
from .schema import CANONICAL_COLUMNS, FAILURE_COLUMNS, Canonical
from .workbook import read_workbook
from .xml_report import read_xml

__all__ = ["CANONICAL_COLUMNS", "FAILURE_COLUMNS", "FORMATS", "read_settlement", "refuse_copies"]

_CSV_FORMATS = ("pbdr_csv", "pbdr_new_csv", "psd_classic_csv", "psd_csv", "transaction_request_csv",
                "exported_search_csv", "processor_csv", "csv")
FORMATS = ("auto", *_CSV_FORMATS, "pbdr_xml", "purchase_refund_json", "excel")

Source = str | os.PathLike[str] | bytes | IO[bytes]


def _inputs(source: Source | Iterable[Source] | Mapping[str, bytes], name: str | None) -> list[tuple[str, Bytes]]:
    """Every input as (name, bytes); a file named twice (by its resolved path) is in it once."""
    seen: set[str] = set()
    items: list[tuple[str, Bytes]] = []
    for item_name, path, data in _each_input(source, name):
        if path is not None:
            resolved = os.path.realpath(path)
            if resolved in seen:
                continue
            seen.add(resolved)
            data = _read_bytes(path)
        items.append((item_name, data))
    return items


def _each_input(source: Any, name: str | None) -> Iterable[tuple[str, str | None, Bytes]]:
    """(name, path or None, bytes when there is no path) of every input, in the order given."""
    if isinstance(source, bytes | bytearray | memoryview):
        yield name or "upload", None, bytes(source)
        return
    if hasattr(source, "read"):
        yield name or getattr(source, "name", None) or "upload", None, source.read()
        return
    if isinstance(source, str | os.PathLike):
        text = os.fspath(source)
        if Path(text).is_file():  # an existing name is never a pattern: data/x[1].csv is that file
            yield text, text, b""
            return
        if any(ch in text for ch in "*?["):
            paths = sorted(glob.glob(text))
            if not paths:
                raise SettlementFormatError(f"no file matches {text!r}", file=text)
            for path in paths:
                yield path, path, b""
            return
        raise SettlementFormatError("no such file", file=text)
    if isinstance(source, Mapping):  # uploads: file name -> contents
        for key, data in source.items():
            yield str(key), None, bytes(data)
        if not source:
            raise SettlementFormatError("no settlement files were given")
        return
    count = 0
    for item in source:
        for each in _each_input(item, None):
            count += 1
            yield each
    if not count:
        raise SettlementFormatError("no settlement files were given")


def refuse_copies(items: list[tuple[str, Bytes]]) -> None:
    """Two inputs with the same bytes would count every row twice: refuse them, naming both."""
    if len(items) < 2:
        return
    first_of: dict[bytes, str] = {}
    for name, data in items:
        digest = hashlib.sha256(data).digest()
        if digest in first_of:
            error = SettlementFormatError(f"{name} is a byte-identical copy of {first_of[digest]}: the same rows "
                                          "would be counted twice (read one of them)")
            error.file = name
            raise error
        first_of[digest] = name


def _read_bytes(path: str) -> Bytes:
    """The file's contents, mapped rather than copied (pyarrow parses the map in place)."""
    try:
        with open(path, "rb") as handle:
            if os.fstat(handle.fileno()).st_size == 0:
                return b""
            return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as exc:
        raise SettlementFormatError(f"cannot read the file: {exc.strerror or exc}", file=path) from None


_BINARY = ((b"\x89PNG\r\n\x1a\n", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
           (b"%PDF-", "a PDF document"), (b"SQLite format 3\x00", "an SQLite database"),
           (b"\x1f\x8b", "a gzip archive"), (b"\xd0\xcf\x11\xe0", "an old Office (.xls/.doc) file"),
           (b"PAR1", "a Parquet file"))
"""Signatures of files people pick by mistake: named for what they are, never decoded as text (a PNG
would otherwise be refused for its first byte's encoding, with advice to change encoding)."""


def _refuse_binary(data: Bytes, name: str) -> None:
    """Refuse a file whose first bytes say it is a picture, a document, a database or an archive."""
    for magic, what in _BINARY:
        if data[:len(magic)] == magic:
            raise SettlementFormatError(f"binary content ({what}): not a settlement report", file=name, line=1,
                                        expected="CSV, XML, JSON or .xlsx")


def _detect(data: Bytes, name: str) -> str:
    head = data[:512].lstrip(b"\xef\xbb\xbf").lstrip()
    if head.startswith(b"PK\x03\x04"):
        return "excel"
    if head.startswith(b"<"):
        return "pbdr_xml"
    if head.startswith((b"{", b"[")):
        return "purchase_refund_json"
    sample = data[:4096]
    if sample.count(0) > len(sample) // 10:  # a stray NUL in a text row is that row's problem, not the file's
        raise SettlementFormatError("binary content: not a settlement report", file=name, line=1,
                                    expected="CSV, XML, JSON or .xlsx")
    return "auto_csv"


def _read_one(name: str, data: Bytes, fmt: str, mapping: Mapping[str, str] | None, encoding: str | None,
              delimiter: str | None) -> Canonical:
    converted = False
    _refuse_binary(data, name)  # before any decoding: an encoding given would make any bytes text
    if data[:4] != b"PK\x03\x04":
        data, converted = to_utf8(data, name, encoding)
    kind = _detect(data, name) if fmt == "auto" else fmt
    if fmt != "auto":
        detected = _detect(data, name)
        family = {"excel": "excel", "pbdr_xml": "pbdr_xml", "purchase_refund_json": "purchase_refund_json"}
        if family.get(detected, "csv") != family.get(fmt, "csv"):
            raise SettlementFormatError(f"format={fmt!r} was forced, but the file looks like {detected}", file=name,
                                        line=1, expected=fmt)
    if kind == "excel":
        return read_workbook(bytes(data), name, mapping=mapping)
    if kind == "pbdr_xml":
        return read_xml(bytes(data), name, utf8=converted)
    if kind == "purchase_refund_json":
        return read_purchase_refund_json(bytes(data), name)
    return read_delimited(data, name, mapping=mapping, delimiter=delimiter,
                          report_format=None if kind == "auto_csv" else kind)


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    def mapper(kind: pa.DataType) -> Any:
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            return pd.StringDtype("pyarrow")
        if pa.types.is_decimal(kind):
            return pd.ArrowDtype(kind)
        return None

    if "batch_date" in table.column_names:  # as datetime64[s]: no Python date objects on the way
        index = table.column_names.index("batch_date")
        table = table.set_column(index, "batch_date", pc.cast(table.column(index), pa.timestamp("s")))
    return table.to_pandas(types_mapper=mapper)


@overload
def read_settlement(source: Source | Iterable[Source] | Mapping[str, bytes], format: str = ..., *,
                    mapping: Mapping[str, str] | None = ..., errors: Literal["raise"] = ...,
                    encoding: str | None = ..., delimiter: str | None = ..., name: str | None = ...
                    ) -> pd.DataFrame: ...


@overload
def read_settlement(source: Source | Iterable[Source] | Mapping[str, bytes], format: str = ..., *,
                    mapping: Mapping[str, str] | None = ..., errors: Literal["collect"],
                    encoding: str | None = ..., delimiter: str | None = ..., name: str | None = ...
                    ) -> tuple[pd.DataFrame, pd.DataFrame]: ...


def read_settlement(source: Source | Iterable[Source] | Mapping[str, bytes], format: str = "auto", *,
                    mapping: Mapping[str, str] | None = None, errors: Literal["raise", "collect"] = "raise",
                    encoding: str | None = None, delimiter: str | None = None, name: str | None = None
                    ) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """Read settlement files into the canonical settlement frame.

    Parameters
    ----------
    source : path, glob, bytes, binary file, a list of them, or a dict of file name -> bytes
        ``"data/*.csv"`` reads every match (an existing file's name is never a pattern, so
        ``data/x[1].csv`` is that file); bytes need ``name``; several uploads are a dict of
        their names to their contents. A file named more than once (the same resolved path, e.g.
        by a glob and by its name) is read once. Two inputs with identical contents (SHA-256),
        such as ``pbdr.csv`` and the browser's ``pbdr (1).csv``, are refused: their rows would
        be counted twice.
    format : str
        ``"auto"`` (sniff the first bytes and the header names) or one of :data:`FORMATS`.
    mapping : dict, optional
        Canonical field -> the file's column name, for files the alias table does not know,
        e.g. ``{"reconciliation_id": "Merchant Ref", "amount": "Net Amt"}``.
    errors : {"raise", "collect"}
        ``"raise"``: any bad row raises :class:`SettlementFormatError` whose ``failure_cases``
        lists every failing row. ``"collect"``: return ``(frame, failures)`` instead.
    encoding : str, optional
        UTF-8 (with or without BOM) by default, UTF-16/32 when the file starts with their byte-order
        mark; e.g. ``"latin-1"`` or ``"utf-16"`` to say so. Not used for workbooks.
    delimiter : str, optional
        Sniffed among ``,`` ``;`` tab ``|`` by default.
    name : str, optional
        The file name to report for bytes or file objects.

    Returns
    -------
    DataFrame, or (DataFrame, DataFrame) with ``errors="collect"``
        :data:`CANONICAL_COLUMNS` first (``amount`` exact and absolute, ``direction`` from the
        transaction type), then the file's other columns. Failures have :data:`FAILURE_COLUMNS`:
        one row per failing cell (``column`` ``"*"`` for a record that could not be split into
        cells, e.g. ragged or opened by an unbalanced quote), with the record's reconciliation and
        request ids as far as they could be read; a footer whose row count or amount total differs
        from what was read is a failure on the footer's line. Amounts must be plain decimals
        (``1.23457E+06`` is refused).

    Raises
    ------
    SettlementFormatError
        Naming file, line and column: unreadable bytes, no recognisable header, or bad rows;
        or naming both files when one is a byte-identical copy of another.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
    if errors not in ("raise", "collect"):
        raise ValueError("errors must be 'raise' or 'collect'")
    inputs = _inputs(source, name)
    refuse_copies(inputs)
    results = [_read_one(n, data, format, mapping, encoding, delimiter) for n, data in inputs]
    table = pa.concat_tables([r.table for r in results], promote_options="permissive")
    failures = pa.concat_tables([r.failures for r in results])
    frame = _to_pandas(table)
    failure_frame = failures.to_pandas(types_mapper=lambda t: pd.StringDtype("pyarrow")
                                       if pa.types.is_string(t) else None)
    if errors == "collect":
        return frame, failure_frame
    if len(failure_frame):
        first = failure_frame.iloc[0]
        rows = failure_frame[["source_file", "source_line"]].drop_duplicates()
        raise SettlementFormatError(
            f"{len(rows)} line(s) could not be read or failed a check (a row, or a footer's totals); the first: "
            f"{first['reason']} (value {first['value']!r}). "
            "See .failure_cases for all of them, or pass errors='collect'",
            file=str(first["source_file"]), line=int(first["source_line"]), column=str(first["column"]),
            failure_cases=failure_frame)
    return frame
