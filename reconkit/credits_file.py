"""Credits an analyst brings as a file, read into the credits frame fetched credits give.

Three formats, told apart by their content (never by the file name alone):

``credit_json``
    Credit responses as CyberSource sends them (``POST /pts/v2/credits``, the self link, or
    Transaction Details): one object, an array of them, or JSON Lines. ``fetch_credits`` keeps
    these responses in the ledger's cache (``Credit.raw``); saved to a file, they read back into
    exactly the frame :meth:`reconkit.FetchResult.to_frame` gives.
``credits_frame``
    A saved credits frame (CSV or Parquet) with the columns ``reconkit reconcile`` reads:
    ``credit_id``, ``reconciliation_id``, ``status``, ``amount``, ``currency``, ``submit_time_utc``.
``transaction_search_csv``
    A Business Center transaction-search export: ``Request ID``, ``Amount``, ``Currency``,
    ``Date and Time`` (and usually ``Merchant ID``, ``Merchant Reference Number``,
    ``Applications``, ...). It has no reconciliation id: these credits pair with settlement rows
    by request id only.

Every row read is a credit or a failure naming its file, line and column; amounts stay exact
(``Decimal``), ids stay text; a file that is none of the formats is refused, saying what it looks
like.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Literal, overload

import pandas as pd
import pyarrow as pa

from .credit import FIELD_PATHS, is_credit_id, leaf_text, parse_time, read_field
from .errors import CreditsFileError, CreditShapeError
from .frames import CURATED_COLUMNS, credits_to_frame
from .money import CURRENCIES, parse_amount

__all__ = ["CREDITS_FORMATS", "FAILURE_COLUMNS", "CreditsFile", "detect_credits_format", "read_credits"]

CREDITS_FORMATS = ("credit_json", "credits_frame", "transaction_search_csv")
"""The formats :func:`read_credits` reads."""
FAILURE_COLUMNS = ("source_file", "source_line", "column", "value", "reason")
"""The columns of the failures frame (the settlement readers' names)."""
FRAME_COLUMNS = ("credit_id", "reconciliation_id", "status", "amount", "currency", "submit_time_utc")
"""The columns a saved credits frame must hold (``reconkit reconcile``'s rule)."""
SEARCH_COLUMNS = ("Request ID", "Amount", "Currency", "Date and Time")
"""The columns a transaction-search export must hold."""

_TEXT = pd.StringDtype("pyarrow")
_SCIENTIFIC = re.compile(r"^[+-]?\d+(\.\d+)?[eE][+-]?\d+$")
_APPLICATION = re.compile(r"^(?P<name>.*?)\s*(\((?P<decision>[^()]*)\))?$")
_CREDIT_APPLICATIONS = {"credit card credit", "ics_credit", "ics_ecp_credit", "electronic check credit",
                        "check credit", "ics_pinless_credit", "pinless debit credit", "credit", "refund"}
_VOID_APPLICATIONS = {"void", "ics_void", "credit card void"}
_DECISION_STATUS = {"accept": "ACCEPTED", "reject": "REJECTED", "decline": "DECLINED", "error": "FAILED",
                    "review": "PENDING_REVIEW"}
_MAGIC = ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
          (b"%PDF", "a PDF document"), (b"PK\x03\x04", "an Excel workbook or ZIP archive"),
          (b"\x1f\x8b", "a gzip archive"), (b"SQLite format 3\x00", "an SQLite database"))
_SETTLEMENT_HEADERS = {"transrefno", "transactionrefnumber", "batchid", "batchdate", "icsapplications",
                       "transactiontype", "settlementdate", "batchnumber", "transactionreferencenumber"}
_SETTLEMENT_REPORTS = ("payment batch detail report", "payment submission detail report",
                       "transaction request report", "transaction detail report", "payment events report")
_SEARCH_TIMES = ("%b %d %Y %I:%M:%S %p", "%b %d %Y %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%m/%d/%Y %I:%M:%S %p",
                 "%m/%d/%Y %H:%M:%S", "%Y-%m-%d %H:%M")

Source = str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes]
"""A credits file: a path, its bytes (an upload) or an open binary file."""


def _key(name: str) -> str:
    """Header names compare case-, space- and punctuation-insensitively (as settlement headers do)."""
    return re.sub(r"[^a-z0-9]", "", name.strip().lstrip("\ufeff").lower())


class _Failures:
    """The failing rows, collected in file order."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.rows: list[tuple[str, int | None, str | None, str | None, str]] = []

    def add(self, line: int | None, column: str | None, value: Any, reason: str) -> None:
        self.rows.append((self.name, line, column, None if value is None else str(value), reason))

    def frame(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.rows, columns=list(FAILURE_COLUMNS))
        frame = frame.astype({c: _TEXT for c in ("source_file", "column", "value", "reason")})
        frame["source_line"] = frame["source_line"].astype("Int64")
        return frame


# --- where the bytes come from ---------------------------------------------------------------------

def _bytes_of(source: Source, name: str | None) -> tuple[str, bytes]:
    if isinstance(source, bytes | bytearray | memoryview):
        return name or "upload", bytes(source)
    if hasattr(source, "read"):
        return name or str(getattr(source, "name", "") or "upload"), bytes(source.read())  # type: ignore[union-attr]
    path = os.fspath(source)  # type: ignore[arg-type]
    try:
        return name or path, Path(path).read_bytes()
    except IsADirectoryError:
        raise CreditsFileError("is a folder, not a file", file=name or path) from None
    except OSError as exc:
        raise CreditsFileError(f"cannot be read: {exc.strerror or exc}", file=name or path) from None


def _text(data: bytes, name: str) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise CreditsFileError(f"byte 0x{data[exc.start]:02x} at offset {exc.start} is not UTF-8 text "
                               "(save the file as UTF-8)", file=name, line=line) from None


# --- what a file is ----------------------------------------------------------------------------------

def _first_rows(text: str, count: int = 3) -> list[list[str]]:
    rows = []
    for row in csv.reader(io.StringIO(text[:65536], newline="")):
        if any(cell.strip() for cell in row):
            rows.append(row)
        if len(rows) >= count:
            break
    return rows


def detect_credits_format(data: bytes, name: str = "upload") -> str:
    """The credits format of ``data`` (one of :data:`CREDITS_FORMATS`), from its content.

    Raises
    ------
    CreditsFileError
        The file is empty or none of the formats; the message says what it looks like instead (an
        image, a settlement report, a list of credit ids, ...).
    """
    head = data[:64]
    if not data.strip():
        raise CreditsFileError("is empty: no credits to read", file=name)
    if head.startswith(b"PAR1"):
        return "credits_frame"
    for magic, what in _MAGIC:
        if head.startswith(magic):
            raise CreditsFileError(f"is {what}, not a credits file (credit JSON, a credits frame as CSV or "
                                   "Parquet, or a transaction-search export CSV)", file=name)
    if b"\x00" in data[:4096]:
        raise CreditsFileError("is binary data, not a credits file", file=name)
    text = data[:65536].decode("utf-8", errors="replace")  # enough to tell; the reader decodes it all, strictly
    stripped = text.lstrip("\ufeff").lstrip()
    if stripped.startswith(("{", "[")):
        if '"settlements"' in stripped[:4096] or '"requestDetails"' in stripped[:4096]:
            raise CreditsFileError("is a purchase and refund details report (settlement), not credits: load it as "
                                   "settlement", file=name)
        return "credit_json"
    if stripped.startswith("<"):
        what = "an XML settlement report" if "batch" in stripped[:2048].lower() else "an XML document"
        raise CreditsFileError(f"is {what}, not credits: load settlement reports as settlement", file=name, line=1)
    rows = _first_rows(text)
    if not rows:
        raise CreditsFileError("holds no rows", file=name)
    header = rows[0]
    first_line = stripped.splitlines()[0] if stripped else ""
    delimiter = max((",", ";", "\t", "|"), key=first_line.count)
    if delimiter != ",":  # credits files are comma-separated; the header of anything else, by its own delimiter
        header = next(csv.reader([first_line], delimiter=delimiter))
    keys = {_key(cell) for cell in header}
    first = header[0].strip().lower()
    if {"outcome", "kind", "side"} <= keys:
        raise CreditsFileError("is a sandbox ground-truth file, not credits", file=name, line=1)
    if first in _SETTLEMENT_REPORTS or first.endswith(" report") or keys & _SETTLEMENT_HEADERS:
        what = header[0].strip() if first.endswith("report") else "its header has settlement columns"
        raise CreditsFileError(f"is a settlement report ({what}), not credits: load it as settlement", file=name,
                               line=1)
    # Most of a format's columns: read as that format, which names any column missing.
    if delimiter == "," and "creditid" in keys and len(keys & {_key(c) for c in FRAME_COLUMNS}) >= 4:
        return "credits_frame"
    if delimiter == "," and "requestid" in keys and len(keys & {_key(c) for c in SEARCH_COLUMNS}) >= 3:
        return "transaction_search_csv"
    if len(header) == 1 and all(len(r) == 1 and is_credit_id(r[0].strip()) for r in rows[1:] or rows):
        raise CreditsFileError("is a list of credit ids, not credits: paste the ids (or upload them as ids) and "
                               "fetch them", file=name, line=1)
    shown = ", ".join(cell.strip() for cell in header[:8]) + (", ..." if len(header) > 8 else "")
    raise CreditsFileError(
        f"is not a credits file: its header ({shown}) has neither the credits frame's columns "
        f"({', '.join(FRAME_COLUMNS)}) nor a transaction-search export's ({', '.join(SEARCH_COLUMNS)})",
        file=name, line=1)


# --- checks every format shares ----------------------------------------------------------------------

def _check_id(value: str | None, line: int | None, column: str, failures: _Failures) -> str | None:
    text = (value or "").strip()
    if not text:
        failures.add(line, column, value, "no credit id")
    elif _SCIENTIFIC.match(text):
        failures.add(line, column, value, "a number in scientific notation: its digits are lost (a spreadsheet "
                                          "rewrote the id; export ids as text)")
    elif not is_credit_id(text):
        failures.add(line, column, value, "not a credit id (1-26 digits)")
    else:
        return text
    return None


def _check_money(amount: str | None, currency: str | None, line: int | None, columns: tuple[str, str],
                 failures: _Failures, *, signed: bool) -> tuple[Decimal, str] | None:
    code = (currency or "").strip().upper()
    if code not in CURRENCIES:
        failures.add(line, columns[1], currency, "not an ISO 4217 currency code" if code else "no currency")
        return None
    text = (amount or "").strip()
    if not text:
        failures.add(line, columns[0], amount, "no amount")
        return None
    if _SCIENTIFIC.match(text) or "," in text or not re.match(r"^[+-]?(\d+(\.\d*)?|\.\d+)$", text):
        failures.add(line, columns[0], amount, "not a plain decimal amount such as 12.50 (no exponent, no "
                                               "thousands separator)")
        return None
    try:
        value = parse_amount(text, code, allow_negative=True)
    except ValueError as exc:
        failures.add(line, columns[0], amount, str(exc))
        return None
    if value < 0 and not signed:
        failures.add(line, columns[0], amount, "a negative credit amount")
        return None
    return abs(value), code


def _check_duplicates(ids: list[tuple[str | None, int | None]], column: str, failures: _Failures) -> set[int]:
    """Positions of rows whose id an earlier row holds (each named with the earlier line)."""
    first: dict[str, int | None] = {}
    repeated = set()
    for position, (credit_id, line) in enumerate(ids):
        if credit_id is None:
            continue
        if credit_id in first:
            where = f"line {first[credit_id]}" if first[credit_id] is not None else "an earlier row"
            failures.add(line, column, credit_id, f"credit {credit_id} is on {where} too: each credit once")
            repeated.add(position)
        else:
            first[credit_id] = line
    return repeated


# --- credit JSON ---------------------------------------------------------------------------------------

def _json_items(text: str, name: str) -> list[tuple[Any, int]]:
    """(value, line) of every credit in a JSON document, array or JSON Lines text."""
    decoder = json.JSONDecoder()
    body = text.lstrip("\ufeff")

    def line_of(offset: int) -> int:
        return body.count("\n", 0, offset) + 1

    def skip(offset: int) -> int:
        while offset < len(body) and body[offset] in " \t\r\n":
            offset += 1
        return offset

    def decode(offset: int) -> tuple[Any, int]:
        try:
            return decoder.raw_decode(body, offset)
        except json.JSONDecodeError as exc:
            raise CreditsFileError(f"is not valid JSON: {exc.msg} (column {exc.colno})", file=name,
                                   line=exc.lineno) from None

    offset = skip(0)
    if body.startswith("[", offset):
        items, offset = [], skip(offset + 1)
        if body.startswith("]", offset):
            raise CreditsFileError("holds an empty JSON array: no credits", file=name, line=line_of(offset))
        while True:
            value, end = decode(offset)
            items.append((value, line_of(offset)))
            offset = skip(end)
            if body.startswith(",", offset):
                offset = skip(offset + 1)
            elif body.startswith("]", offset):
                break
            else:
                raise CreditsFileError("is not valid JSON: expected ',' or ']' after an item", file=name,
                                       line=line_of(offset))
        if skip(offset + 1) < len(body):
            raise CreditsFileError("has text after the JSON array", file=name, line=line_of(skip(offset + 1)))
        return items
    items = []
    while offset < len(body):  # one object, or JSON Lines: objects one after another
        value, end = decode(offset)
        items.append((value, line_of(offset)))
        offset = skip(end)
    return items


def _read_json(text: str, name: str, failures: _Failures) -> pd.DataFrame:
    items = _json_items(text, name)
    good: list[tuple[Mapping[str, Any], int]] = []
    for value, line in items:
        if not isinstance(value, dict):
            failures.add(line, None, type(value).__name__, "not a credit response (a JSON object)")
            continue
        if "id" not in value:
            keys = ", ".join(sorted(map(str, value))[:6]) or "none"
            failures.add(line, "id", None, f"not a credit response: no 'id' (its keys: {keys})")
            continue
        credit_id = _check_id(leaf_text(value.get("id")), line, "id", failures)
        amount_text = read_field(value, "amount")
        currency_text = read_field(value, "currency")
        amount_path = next((p for p in FIELD_PATHS["amount"] if _has(value, p)), FIELD_PATHS["amount"][0])
        currency_path = next((p for p in FIELD_PATHS["currency"] if _has(value, p)), FIELD_PATHS["currency"][0])
        money = _check_money(amount_text, currency_text, line, (amount_path, currency_path), failures, signed=False)
        submitted = read_field(value, "submit_time_utc")
        if submitted is not None and parse_time(submitted) is None:
            failures.add(line, "submitTimeUtc", submitted, "not an ISO time such as 2026-11-02T06:00:00Z")
            continue
        if credit_id is not None and money is not None:
            good.append((value, line))
    repeated = _check_duplicates([(leaf_text(v.get("id")), line) for v, line in good], "id", failures)
    kept = [v for position, (v, _line) in enumerate(good) if position not in repeated]
    try:
        return credits_to_frame(kept) if kept else _empty_frame()
    except CreditShapeError as exc:  # the checks above should leave nothing for it; name the file if not
        raise CreditsFileError(str(exc), file=name) from None


def _has(raw: Mapping[str, Any], path: str) -> bool:
    node: Any = raw
    for key in path.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return False
        node = node[key]
    return node is not None


# --- rows of text: a credits frame (CSV or Parquet) and the transaction-search export -------------

def _csv_rows(text: str, name: str) -> tuple[list[str], int, list[tuple[int, list[str]]]]:
    """The header, its line and every non-blank record with the line it starts on."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    header: list[str] | None = None
    header_line = 0
    rows: list[tuple[int, list[str]]] = []
    previous = 0
    try:
        for record in reader:
            start, previous = previous + 1, reader.line_num
            if not any(cell.strip() for cell in record):
                continue
            if header is None:
                header, header_line = [cell.strip() for cell in record], start
            else:
                rows.append((start, record))
    except csv.Error as exc:
        raise CreditsFileError(f"is not a readable CSV: {exc}", file=name, line=reader.line_num) from None
    if header is None:
        raise CreditsFileError("holds no rows", file=name)
    return header, header_line, rows


def _by_column(header: list[str], rows: list[tuple[int, list[str]]], failures: _Failures
               ) -> list[tuple[int, dict[str, str]]]:
    records = []
    for line, record in rows:
        if len(record) != len(header):
            failures.add(line, None, None,
                         f"the row has {len(record)} cells, the header {len(header)}")
            continue
        records.append((line, dict(zip(header, record, strict=True))))
    return records


def _parquet_rows(data: bytes, name: str, failures: _Failures) -> tuple[list[str], list[tuple[int, dict[str, Any]]]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise CreditsFileError(f"is not a readable Parquet file ({exc})", file=name) from None
    for column in ("credit_id", "reconciliation_id"):
        if column in table.column_names and not (pa.types.is_string(table.schema.field(column).type)
                                                 or pa.types.is_large_string(table.schema.field(column).type)
                                                 or pa.types.is_null(table.schema.field(column).type)):
            raise CreditsFileError(f"holds {table.schema.field(column).type} ids, not text: leading zeros and "
                                   "digits may be lost (save ids as strings)", file=name, column=column)
    if "amount" in table.column_names and pa.types.is_floating(table.schema.field("amount").type):
        raise CreditsFileError("holds binary-float amounts, which are not exact (save amounts as text or "
                               "decimal)", file=name, column="amount")
    records = []
    for row, values in enumerate(table.to_pylist(), start=1):  # Parquet has no lines: its rows count from 1
        records.append((row, {k: _cell(v) for k, v in values.items()}))
    return list(table.column_names), records


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    return str(value)


def _missing_columns(header: list[str], needed: Iterable[str], name: str, line: int, what: str) -> dict[str, str]:
    """The file's own header name of each needed column, by the loose comparison; refuses one missing."""
    have = {_key(h): h for h in header}
    found, missing = {}, []
    for column in needed:
        if _key(column) in have:
            found[column] = have[_key(column)]
        else:
            missing.append(column)
    if missing:
        raise CreditsFileError(f"{what} lacks the column(s) {', '.join(missing)}", file=name, line=line,
                               column=missing[0])
    return found


def _frame_rows(header: list[str], records: list[tuple[int, dict[str, Any]]], name: str, header_line: int,
                failures: _Failures) -> pd.DataFrame:
    names = _missing_columns(header, FRAME_COLUMNS, name, header_line, "a saved credits frame")
    kept: list[tuple[int, dict[str, Any]]] = []
    for line, row in records:
        credit_id = _check_id(row[names["credit_id"]], line, names["credit_id"], failures)
        money = _check_money(row[names["amount"]], row[names["currency"]], line,
                             (names["amount"], names["currency"]), failures, signed=False)
        moment = row[names["submit_time_utc"]]
        when = parse_time(moment) if moment not in (None, "") else None
        if moment not in (None, "") and when is None:
            failures.add(line, names["submit_time_utc"], moment, "not an ISO time such as 2026-11-02T06:00:00Z")
            continue
        if credit_id is None or money is None:
            continue
        out = {k: (None if v is None or (isinstance(v, str) and not v.strip()) else v) for k, v in row.items()}
        out[names["credit_id"]], out[names["amount"]], out[names["currency"]] = credit_id, money[0], money[1]
        out[names["submit_time_utc"]] = when
        out["__line"] = line
        kept.append((line, out))
    repeated = _check_duplicates([(r[names["credit_id"]], line) for line, r in kept], names["credit_id"], failures)
    rows = [r for position, (_line, r) in enumerate(kept) if position not in repeated]
    renamed = {names[c]: c for c in FRAME_COLUMNS}
    columns = [*CURATED_COLUMNS, *(renamed.get(h, h) for h in header if renamed.get(h, h) not in CURATED_COLUMNS)]
    return _typed([{renamed.get(k, k): v for k, v in r.items() if k != "__line"} for r in rows], columns)


def _typed(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    """The credits frame's types: ``amount`` Decimal, ``submit_time_utc`` UTC datetimes, the rest text."""
    data: dict[str, Any] = {}
    for column in columns:
        values = [r.get(column) for r in rows]
        if column == "amount":
            data[column] = pd.Series(values, dtype=object)
        elif column == "submit_time_utc":
            data[column] = pd.to_datetime(pd.Series(values, dtype=object), utc=True)
        else:
            data[column] = pd.Series([None if v is None else str(v).strip() for v in values], dtype=_TEXT)
    return pd.DataFrame(data, index=pd.RangeIndex(len(rows)))


def _empty_frame() -> pd.DataFrame:
    return _typed([], list(CURATED_COLUMNS))


def _search_time(text: str) -> datetime | None:
    value = re.sub(r"\s+(GMT|UTC|Z)$", "", text.strip())
    for pattern in _SEARCH_TIMES:
        try:
            return datetime.strptime(value, pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
    return parse_time(value)


def _status(applications: str) -> tuple[str | None, str | None]:
    """The credit's status from an ``Applications`` cell, or (None, why it is not a credit)."""
    parts = [m.groupdict() for p in next(csv.reader([applications]), []) if p.strip()
             for m in [_APPLICATION.match(p.strip())] if m]
    names = [(p["name"].strip().lower(), (p["decision"] or "").strip().lower()) for p in parts]
    credit = next(((n, d) for n, d in names if n in _CREDIT_APPLICATIONS), None)
    if credit is None:
        return None, (f"not a credit (its applications: {applications.strip() or 'none'}); export a search of "
                      "credits only")
    if any(n in _VOID_APPLICATIONS and d in ("", "accept") for n, d in names):
        return "VOIDED", None
    return _DECISION_STATUS.get(credit[1], credit[1].upper() or None), None


def _search_rows(header: list[str], records: list[tuple[int, dict[str, str]]], name: str, header_line: int,
                 failures: _Failures) -> pd.DataFrame:
    names = _missing_columns(header, SEARCH_COLUMNS, name, header_line, "a transaction-search export")
    have = {_key(h): h for h in header}
    applications = have.get("applications")
    kept = []
    for line, row in records:
        credit_id = _check_id(row[names["Request ID"]], line, names["Request ID"], failures)
        money = _check_money(row[names["Amount"]], row[names["Currency"]], line, (names["Amount"], names["Currency"]),
                             failures, signed=True)
        moment = row[names["Date and Time"]]
        when = _search_time(moment) if moment.strip() else None
        if when is None:
            failures.add(line, names["Date and Time"], moment, "not a date and time such as "
                                                               "Nov 02 2026 06:12:00 PM or 2026-11-02T18:12:00Z")
            continue
        status = None
        if applications is not None:
            status, why = _status(row[applications])
            if why is not None:
                failures.add(line, applications, row[applications], why)
                continue
        if credit_id is None or money is None:
            continue
        kept.append((line, {"credit_id": credit_id, "reconciliation_id": None, "status": status,
                            "submit_time_utc": when, "amount": money[0], "currency": money[1],
                            "reference_code": _blank(row.get(have.get("merchantreferencenumber", ""))),
                            "card_suffix": _blank(row.get(have.get("accountsuffix", ""))),
                            "source": "transaction_search_export",
                            **{(f"export:{h}" if h in CURATED_COLUMNS else h): _blank(v) for h, v in row.items()},
                            **({"merchant_id": _blank(row[have["merchantid"]])} if "merchantid" in have else {})}))
    repeated = _check_duplicates([(r["credit_id"], line) for line, r in kept], names["Request ID"], failures)
    rows = [r for position, (_line, r) in enumerate(kept) if position not in repeated]
    extra = [f"export:{h}" if h in CURATED_COLUMNS else h for h in header]
    columns = [*CURATED_COLUMNS, *(["merchant_id"] if "merchantid" in have else []), *extra]
    return _typed(rows, list(dict.fromkeys(columns)))


def _blank(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


# --- the public entry points ---------------------------------------------------------------------------

def _read(name: str, data: bytes) -> tuple[pd.DataFrame, pd.DataFrame, str, int]:
    """(frame, failures, format, rows read) of one file's bytes."""
    fmt = detect_credits_format(data, name)
    failures = _Failures(name)
    if fmt == "credit_json":
        frame = _read_json(_text(data, name), name, failures)
        return frame, failures.frame(), fmt, len(frame) + len({r[1] for r in failures.rows})
    if data[:4] == b"PAR1":
        header, records = _parquet_rows(data, name, failures)
        frame = _frame_rows(header, records, name, 0, failures)
        return frame, failures.frame(), fmt, len(records)
    header, header_line, raw_rows = _csv_rows(_text(data, name), name)
    if not raw_rows:
        raise CreditsFileError("has a header but no rows", file=name, line=header_line)
    records = _by_column(header, raw_rows, failures)
    reader = _frame_rows if fmt == "credits_frame" else _search_rows
    frame = reader(header, records, name, header_line, failures)
    return frame, failures.frame(), fmt, len(raw_rows)


def _raise_first(failures: pd.DataFrame, name: str) -> None:
    first = failures.iloc[0]
    more = f" ({len(failures) - 1} more failing cell(s) in failure_cases)" if len(failures) > 1 else ""
    line = None if pd.isna(first["source_line"]) else int(first["source_line"])
    value = "" if pd.isna(first["value"]) else f"{first['value']!r}: "
    raise CreditsFileError(f"{value}{first['reason']}{more}", file=name, line=line,
                           column=None if pd.isna(first["column"]) else str(first["column"]), failure_cases=failures)


@overload
def read_credits(source: Source, *, name: str | None = ..., errors: Literal["raise"] = ...) -> pd.DataFrame: ...
@overload
def read_credits(source: Source, *, name: str | None = ...,
                 errors: Literal["collect"]) -> tuple[pd.DataFrame, pd.DataFrame]: ...


def read_credits(source: Source, *, name: str | None = None,
                 errors: Literal["raise", "collect"] = "raise") -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """Read a credits file into the credits frame (:func:`reconkit.credits_to_frame`'s columns).

    Parameters
    ----------
    source : path, bytes or binary file
        Credit JSON, a saved credits frame (CSV or Parquet) or a Business Center transaction-search
        export (CSV); the format is detected from the content.
    name : str, optional
        The name errors give the file (default: its path, or ``upload``).
    errors : {"raise", "collect"}
        ``"raise"``: any failing row refuses the file, naming file, line (Parquet: row) and column
        of the first and listing all in ``failure_cases``. ``"collect"``: return the failures too;
        every row read is a credit or has at least one failure.

    Returns
    -------
    DataFrame, or (DataFrame, DataFrame) with ``errors="collect"``
        One row per credit: ``amount`` exact ``Decimal`` (a transaction-search export's negative
        credit amounts as their magnitude), ``submit_time_utc`` UTC, ids and everything else
        text. A transaction-search export has no ``reconciliation_id`` (null): its credits pair
        with settlement by request id.

    Raises
    ------
    CreditsFileError
        The file is empty, unreadable or none of the formats (said in words), a needed column is
        missing, or (``errors="raise"``) a row fails.
    """
    if errors not in ("raise", "collect"):
        raise ValueError(f"errors={errors!r}: expected 'raise' or 'collect'")
    file, data = _bytes_of(source, name)
    frame, failures, _fmt, _rows = _read(file, data)
    if errors == "collect":
        return frame, failures
    if len(failures):
        _raise_first(failures, file)
    return frame


@dataclasses.dataclass(frozen=True)
class CreditsFile:
    """A credits file as it was read: its name, size, the SHA-256 of the very bytes read, its
    format and the credits frame (a run records the digest, as it does a settlement file's).

    Attributes
    ----------
    file : str
    size : int
    sha256 : str
    format : str
        One of :data:`CREDITS_FORMATS`.
    rows : int
        Rows (or JSON items) read; every one is a credit of ``frame``.
    frame : DataFrame
    """

    file: str
    size: int
    sha256: str
    format: str
    rows: int
    frame: pd.DataFrame = dataclasses.field(repr=False, compare=False)

    @classmethod
    def read(cls, source: Source, *, name: str | None = None) -> CreditsFile:
        """Read and digest ``source``; refuses a file with any failing row (see :func:`read_credits`).

        Raises
        ------
        CreditsFileError
        """
        import hashlib

        file, data = _bytes_of(source, name)
        frame, failures, fmt, rows = _read(file, data)
        if len(failures):
            _raise_first(failures, file)
        return cls(file, len(data), hashlib.sha256(data).hexdigest(), fmt, rows, frame)

    def as_input(self) -> dict[str, Any]:
        """What a recorded run keeps of it (as of a settlement file, with its role)."""
        return {"file": self.file, "bytes": self.size, "sha256": self.sha256, "role": "credits"}
