"""The canonical settlement schema, the header alias table, and the vectorized checks that turn
a table of text columns into canonical rows plus failure cases.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import SettlementFormatError
from ..money import CURRENCIES
from .footer import Footer, footer_mismatch

__all__ = ["CANONICAL_COLUMNS", "FAILURE_COLUMNS", "REQUIRED", "Canonical", "canonicalize", "classify_type",
           "failure_table", "header_key", "map_headers", "may_hold"]

CANONICAL_COLUMNS = (
    "reconciliation_id", "request_id", "merchant_ref", "transaction_type", "direction", "amount", "currency",
    "batch_id", "batch_date", "merchant_id", "payment_method", "report_format", "source_file", "source_line",
)
FAILURE_COLUMNS = ("source_file", "source_line", "column", "value", "reason", "reconciliation_id", "request_id")
"""One row per failing cell (``column`` ``"*"`` for a whole record); the two ids are the failed record's,
trimmed, as far as they could be read (null otherwise), so a credit can be pointed at its unreadable row."""
FAILURE_SCHEMA = pa.schema([(name, pa.int64() if name == "source_line" else pa.string()) for name in FAILURE_COLUMNS])
_TEXT_FIELDS = ("reconciliation_id", "request_id", "merchant_ref", "transaction_type", "amount", "currency",
                "batch_id", "batch_date", "merchant_id", "payment_method")


REASONS = {
    "excel_id": "an id in scientific notation (Excel rounded it); the original id cannot be recovered",
    "no_id": "the row has neither a reconciliation id nor a request id",
    "not_currency": "not an ISO 4217 currency code",
    "not_amount": "not a plain decimal amount such as 12.50 or -12.50 (no exponent, no thousands separator)",
    "not_type": "unknown transaction type; expected e.g. ics_credit, ics_bill, refund, sale",
    "not_date": "not a date (YYYY-MM-DD, YYYYMMDD, M/D/YYYY or ISO date-time)",
}
"""Why a cell failed, in the words every reader (pandas and Spark) gives."""


def header_key(name: str) -> str:
    """Header names compare case-, space- and punctuation-insensitively."""
    return re.sub(r"[^a-z0-9]", "", name.strip().lstrip("\ufeff").lower())


_ALIASES: dict[str, tuple[str, ...]] = {
    "reconciliation_id": ("trans_ref_no", "transaction_ref_number", "TransactionReferenceNumber", "reconciliationId",
                          "reconciliation_id", "Reconciliation ID", "Recon ID", "Recon Ref", "credit_trans_ref_no",
                          "ccCreditReply_reconciliationID", "Transaction Reference Number"),
    "request_id": ("request_id", "RequestID", "requestId", "Request ID", "CyberSource Request ID", "PaymentRequestID"),
    "merchant_ref": ("merchant_ref_number", "MerchantReferenceNumber", "merchantReferenceNumber", "Merchant Order #",
                     "Merchant Order Number", "Merchant Ref", "Merchant Reference", "Merchant Reference Number",
                     "merchant_ref"),
    "transaction_type": ("transaction_type", "Application", "ics_applications", "Applications", "TransactionType",
                         "Transaction Type", "Txn Type", "transactionType", "event_type", "Event"),
    "amount": ("amount", "Amount", "merchant_amount", "Gross Amount", "Transaction Amount"),
    "currency": ("currency", "currency_code", "CurrencyCode", "merchant_currency_code", "currencyCode",
                 "Currency Code"),
    "batch_id": ("batch_id", "BatchID", "Batch Number", "Batch", "txn_batch_id", "cybersourceBatchId"),
    "batch_date": ("batch_date", "BatchDate", "Settlement Date", "Settle Date", "event_date", "cybersourceBatchTime",
                   "Date and Time"),
    "merchant_id": ("merchant_id", "MerchantID", "Merchant ID", "cybersourceMerchantId"),
    "payment_method": ("payment_method", "payment_type", "PaymentMethod", "Card Brand", "Card Type", "paymentMethod"),
}
ALIASES: dict[str, str] = {header_key(alias): field for field, names in _ALIASES.items() for alias in names}
"""Normalized header name -> canonical field."""

_CREDIT_TYPES = {"ics_credit", "ics_ecp_credit", "ics_ap_refund", "ics_pinless_credit", "refund", "refunds", "credit",
                 "credit card credit", "cr", "return", "returns"}
_DEBIT_TYPES = {"ics_bill", "ics_auth", "ics_ecp_debit", "ics_auth_reversal", "ics_void", "ics_sale", "sale", "sales",
                "purchase", "purchases", "capture", "debit", "dr", "payment", "credit card settlement",
                "credit card authorization"}
_EXCEL_SCI = re.compile(r"^[+-]?\d+(\.\d+)?[eE][+-]?\d+$")
_AMOUNT = r"^[+-]?(\d+(\.\d*)?|\.\d+)$"
_PRECISION = 20
"""Digits in a read amount: up to 10**18 in cents, and room for sums in decimal128(38)."""


def classify_type(value: str) -> str | None:
    """``credit`` / ``debit`` from a transaction type or an ``ics_applications`` list; None if unknown."""
    parts = [p.strip().lower() for p in re.split(r"[,;|]", value) if p.strip()]
    parts = [re.sub(r"\s*\(.*\)$", "", p) for p in parts]  # "Credit Card Credit (Accept)"
    if not parts:
        return None
    if any(p in _CREDIT_TYPES for p in parts):
        return "credit"
    if all(p in _DEBIT_TYPES for p in parts):
        return "debit"
    return None


def _parse_date(value: str) -> date | None:
    text = value.strip()
    if not text:
        return None
    for pattern in ("%Y-%m-%d", "%Y%m%d", "%m/%d/%Y", "%b %d %Y %I:%M:%S %p", "%d.%m.%Y"):
        try:
            return datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).date()
    except ValueError:
        return None


REQUIRED = ("amount", "currency", "transaction_type")


def map_headers(headers: list[str], mapping: Mapping[str, str] | None, *, file: str, line: int
                ) -> tuple[dict[str, str], list[str]]:
    """Map a file's header names to canonical fields.

    Returns ``(canonical -> header, extra headers)``. A ``mapping`` (canonical -> header) wins
    over the alias table.

    Raises
    ------
    SettlementFormatError
        When the mapping names a column the header lacks, or a required field has no column
        (amount, currency, transaction type, and a reconciliation or request id).
    """
    chosen: dict[str, str] = {}
    if mapping:
        by_key = {header_key(h): h for h in headers}
        for field, header in mapping.items():
            if field not in _TEXT_FIELDS:
                raise ValueError(f"mapping key {field!r} is not a settlement field; expected one of "
                                 f"{', '.join(_TEXT_FIELDS)}")
            if header_key(header) not in by_key:
                raise SettlementFormatError(f"the mapping names column {header!r}, which the header does not have "
                                            f"(it has: {', '.join(headers)})", file=file, line=line, column=header)
            chosen[field] = by_key[header_key(header)]
    for header in headers:
        field = ALIASES.get(header_key(header))
        if field and field not in chosen and header not in chosen.values():
            chosen[field] = header
    missing = [f for f in REQUIRED if f not in chosen]
    if "reconciliation_id" not in chosen and "request_id" not in chosen:
        missing.append("reconciliation_id or request_id")
    if missing:
        raise SettlementFormatError(
            f"no column for {', '.join(missing)}; the header has {', '.join(repr(h) for h in headers)}. "
            "Pass mapping={'amount': 'Your Amount Column', ...} to name them", file=file, line=line,
            expected="a settlement header (e.g. trans_ref_no, amount, currency, transaction_type)")
    extras = [h for h in headers if h not in chosen.values()]
    return chosen, extras


@dataclass
class Canonical:
    """The outcome of :func:`canonicalize`: good rows and failure cases, both as Arrow tables."""

    table: pa.Table
    failures: pa.Table
    footer: Footer | None = None


def failure_table(source_file: str, lines: Any, column: Any, values: Any, reason: Any,
                  reconciliation_ids: Any = None, request_ids: Any = None) -> pa.Table:
    """Failure rows with :data:`FAILURE_COLUMNS`; ``column`` and ``reason`` may be one string for all."""
    lines = pa.array(lines, pa.int64()) if not isinstance(lines, pa.Array | pa.ChunkedArray) else lines
    size = len(lines)

    def text(value: Any) -> Any:
        if value is None:
            return pa.nulls(size, pa.string())
        if isinstance(value, str):
            return pa.array([value] * size, pa.string())
        if isinstance(value, pa.Array | pa.ChunkedArray):
            return value if value.type == pa.string() else value.cast(pa.string())
        return pa.array(value, pa.string())

    return pa.table({"source_file": pa.array([source_file] * size, pa.string()), "source_line": lines,
                     "column": text(column), "value": text(values), "reason": text(reason),
                     "reconciliation_id": text(reconciliation_ids), "request_id": text(request_ids)},
                    schema=FAILURE_SCHEMA)


def _null_if_empty(array: pa.ChunkedArray) -> pa.ChunkedArray:
    empty = pc.equal(array, "")
    if not pc.any(empty).as_py():
        return array
    return pc.if_else(empty, pa.scalar(None, array.type), array)


def _clean_id(array: pa.ChunkedArray) -> tuple[pa.ChunkedArray, bool]:
    """Trimmed ids (null when empty), and whether all of them are plain letters and digits."""
    if pc.all(pc.ascii_is_alnum(array)).as_py():  # the common case: nothing to trim, guard, or empty
        return array, True
    array = pc.ascii_trim_whitespace(array)  # ids are ASCII; the ASCII kernel is ~3x faster
    # Excel guards: ="0004…" and a leading apostrophe are wrappers, not part of the id.
    if pc.any(pc.starts_with(array, "=\"")).as_py():
        array = pc.utf8_trim_whitespace(pc.replace_substring_regex(array, r'^="(.*)"$', r"\1"))
    if pc.any(pc.starts_with(array, "'")).as_py():
        array = pc.utf8_trim_whitespace(pc.replace_substring_regex(array, r"^'", ""))
    return _null_if_empty(array), False


def _optional_text(array: pa.ChunkedArray) -> pa.ChunkedArray:
    """Descriptive columns: trimmed and emptied to null only when the file needs it (a pass saved
    on each of millions of rows otherwise)."""
    if pc.min(pc.binary_length(array)).as_py() != 0 and not may_hold(array, b" "):
        return array  # no empty value and no space at all: a scan of the raw bytes says so
    if pc.any(pc.or_(pc.equal(array, ""), pc.or_(pc.starts_with(array, " "), pc.ends_with(array, " ")))).as_py():
        return _null_if_empty(pc.utf8_trim_whitespace(array))
    return array


def _map_distinct(array: pa.ChunkedArray, *fns: tuple[Any, pa.DataType]) -> list[pa.ChunkedArray]:
    """Apply Python functions once per distinct value: types, currencies and dates repeat a lot,
    so millions of rows cost a handful of calls. A text function that changes no value returns
    the column itself (no copy)."""
    # One dictionary for the whole column (a reader's blocks would each bring their own), without
    # copying the column into one chunk.
    encoded = pc.dictionary_encode(array)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.unify_dictionaries()
    chunks = encoded.chunks if isinstance(encoded, pa.ChunkedArray) else [encoded]
    if not chunks:
        return [pa.chunked_array([], kind) for _, kind in fns]
    values = chunks[0].dictionary.to_pylist()
    results = []
    for fn, kind in fns:
        if kind == pa.string() and array.type == pa.large_string():
            kind = array.type  # text comes out as wide as it went in
        mapped = [None if v is None else fn(v) for v in values]
        if mapped == values and kind == array.type:
            results.append(array)
        else:
            lookup = pa.array(mapped, kind)
            results.append(pa.chunked_array([pc.take(lookup, chunk.indices) for chunk in chunks], kind))
    return results


_YEAR_ONE = (date(1, 1, 1) - date(1970, 1, 1)).days
"""0001-01-01 in days since the epoch: Arrow reads year 0, which Python's dates (and _parse_date) do not."""


def _dates(array: pa.ChunkedArray) -> list[pa.ChunkedArray]:
    """Batch dates, and which values are not dates. When every value is ten characters, Arrow's own
    YYYY-MM-DD parser is tried first (it accepts nothing else, and _parse_date reads those alike)."""
    lengths = pc.min_max(pc.binary_length(array)).as_py()
    if lengths["min"] == lengths["max"] == 10:
        try:
            dates = pc.cast(array, pa.date32())
        except pa.ArrowException:
            pass
        else:
            first = pc.min(dates.cast(pa.int32())).as_py()
            if dates.null_count == array.null_count and (first is None or first >= _YEAR_ONE):
                return [dates, pa.chunked_array([pa.nulls(len(array), pa.bool_())])]
    return _map_distinct(array, (_parse_date, pa.date32()),
                         (lambda v: bool(v.strip()) and _parse_date(v) is None, pa.bool_()))


def constant(value: str, size: int) -> pa.DictionaryArray:
    """A column holding one value on every row, stored once (file names on millions of rows)."""
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(size, dtype=np.int32)), pa.array([value], pa.string()))


def may_hold(array: pa.ChunkedArray, characters: bytes) -> bool:
    """Whether any value may hold one of ``characters`` (ASCII): a byte search of the raw character
    data, far faster than a string kernel; a sliced array's unused bytes can only cause a false alarm."""
    for chunk in array.chunks:
        if not len(chunk):
            continue
        data = chunk.buffers()[2] if chunk.type in (pa.string(), pa.large_string()) else None
        if data is None:
            if pc.any(pc.match_substring_regex(chunk, f"[{re.escape(characters.decode())}]")).as_py():
                return True
            continue
        raw = data.to_pybytes()
        if any(raw.find(bytes([code])) >= 0 for code in characters):
            return True
    return False


def _amounts(raw: pa.ChunkedArray, places: pa.ChunkedArray, fail: Any) -> pa.ChunkedArray:
    """Exact signed amounts in plain decimal notation; anything else, values too large, and values
    finer than their currency are failures. One rule, whatever the other rows of the file hold."""
    scale = max([p for p in pc.unique(places).to_pylist() if p is not None] or [2])
    kind = pa.decimal128(_PRECISION, scale)  # leaves room for sums in decimal128(38)
    text, valid, amounts = raw, None, None
    # Arrow's cast also takes exponents (1.23457E+06), which this rule refuses: such a file is checked
    # value by value, like a file with any other bad amount.
    if not may_hold(raw, b"eE"):
        try:
            amounts = pc.cast(raw, kind)  # the common case: one vectorized pass, no copies
        except pa.ArrowException:
            amounts = None
    if amounts is None:
        text = pc.utf8_trim_whitespace(raw)
        well_formed = pc.fill_null(pc.match_substring_regex(text, _AMOUNT), False)
        fail(pc.invert(well_formed), "amount", text,
             REASONS["not_amount"])
        # Leading zeros and trailing fractional zeros carry no value: drop them, then count digits.
        plain = pc.replace_substring_regex(pc.replace_substring_regex(text, r"^([+-]?)0+(\d)", r"\1\2"),
                                           rf"(\.\d{{0,{scale}}})0*$", r"\1")
        integer_digits = pc.utf8_length(pc.replace_substring_regex(plain, r"^[+-]?|\..*$", ""))
        too_large = pc.and_(well_formed, pc.greater(integer_digits, _PRECISION - scale))
        fail(too_large, "amount", text, f"too large: more than {_PRECISION - scale} digits before the decimal point")
        fits = pc.fill_null(pc.match_substring_regex(plain, rf"^[+-]?\d*(\.\d{{0,{scale}}})?$"), False)
        for digits in sorted(set(pc.unique(places).to_pylist()) - {None}):
            fail(pc.and_(pc.and_(well_formed, pc.invert(fits)), pc.equal(places, digits)), "amount", text,
                 f"more decimal places than the currency allows ({digits})")
        valid = pc.and_(pc.and_(well_formed, pc.invert(too_large)), fits)
        amounts = pc.cast(pc.if_else(valid, plain, "0"), kind)
    for digits in sorted(set(pc.unique(places).to_pylist()) - {None, scale}):
        rows = pc.equal(places, digits)
        too_fine = pc.and_(rows, pc.not_equal(pc.round(amounts, ndigits=digits), amounts))
        if valid is not None:
            too_fine = pc.and_(too_fine, valid)
        fail(too_fine, "amount", text, f"more decimal places than the currency allows ({digits})")
    return amounts


def canonicalize(columns: Mapping[str, pa.ChunkedArray | pa.Array], lines: pa.Array, *, source_file: str,
                 report_format: str, extras: Mapping[str, pa.ChunkedArray | pa.Array] | None = None,
                 footer: Footer | None = None, unread_records: int = 0) -> Canonical:
    """Validate and normalize text columns (named by canonical field) into canonical rows.

    Rows that fail are left out of ``table`` and described in ``failures`` (one row per failing
    cell: file, line, column, value, reason, and the record's ids); nothing is dropped silently.
    A ``footer``'s control totals are checked against the ``len(lines)`` records given plus the
    ``unread_records`` the reader could not split into cells.
    """
    n = len(lines)

    def chunked(array: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray:
        return array if isinstance(array, pa.ChunkedArray) else pa.chunked_array([array], pa.string())

    text = {name: chunked(columns[name]) if name in columns else pa.chunked_array([pa.nulls(n, pa.string())])
            for name in _TEXT_FIELDS}
    problems: list[tuple[Any, str, pa.ChunkedArray, str]] = []

    def fail(mask: Any, column: str, values: pa.ChunkedArray, reason: str) -> None:
        mask = pc.fill_null(mask, False)
        if pc.any(mask).as_py():
            problems.append((mask, column, values, reason))

    # Arrow kernels release the GIL: the independent column passes run on both cores.
    with ThreadPoolExecutor(max_workers=2) as pool:
        jobs = {
            "recon": pool.submit(_clean_id, text["reconciliation_id"]),
            "request": pool.submit(_clean_id, text["request_id"]),
            "currency": pool.submit(_map_distinct, text["currency"], (lambda c: c.strip().upper(), pa.string()),
                                    (lambda c: CURRENCIES.get(c.strip().upper()), pa.int8())),
            "type": pool.submit(_map_distinct, text["transaction_type"], (str.strip, pa.string()),
                                (classify_type, pa.string())),
            "date": pool.submit(_dates, text["batch_date"]),
            **{name: pool.submit(_optional_text, text[name])
               for name in ("merchant_ref", "batch_id", "merchant_id", "payment_method")},
        }

        def amounts() -> tuple[pa.ChunkedArray, pa.ChunkedArray, list[Any]]:
            # Queued after the currency job, so waiting for it here cannot hold up the pool.
            found: list[Any] = []
            signed = _amounts(text["amount"], jobs["currency"].result()[1], lambda *problem: found.append(problem))
            return signed, pc.abs(signed), found

        jobs["amount"] = pool.submit(amounts)
        done = {name: job.result() for name, job in jobs.items()}
    (recon, recon_plain), (request, request_plain) = done["recon"], done["request"]
    currency, places = done["currency"]
    ttype, direction = done["type"]
    batch_date, bad_date = done["date"]
    readable_ids = {}
    for name, ids, plain in (("reconciliation_id", recon, recon_plain), ("request_id", request, request_plain)):
        readable_ids[name] = ids
        # Alphanumeric ids cannot be Excel's 4.17379E+21; only look closer when some are not.
        if not plain:
            mangled = pc.fill_null(pc.match_substring_regex(ids, _EXCEL_SCI.pattern), False)
            fail(mangled, name, text[name],
                 REASONS["excel_id"])
            readable_ids[name] = pc.if_else(mangled, pa.scalar(None, ids.type), ids)
    fail(pc.and_(pc.is_null(recon), pc.is_null(request)), "reconciliation_id", text["reconciliation_id"],
         REASONS["no_id"])
    fail(pc.is_null(places), "currency", text["currency"], REASONS["not_currency"])
    signed, absolute, amount_problems = done["amount"]
    for problem in amount_problems:
        fail(*problem)
    fail(pc.is_null(direction), "transaction_type", text["transaction_type"],
         REASONS["not_type"])
    fail(bad_date, "batch_date", text["batch_date"], REASONS["not_date"])

    good = None
    failure_parts = []
    for mask, column, values, reason in problems:
        good = pc.invert(mask) if good is None else pc.and_(good, pc.invert(mask))
        index = pc.indices_nonzero(mask)
        failure_parts.append(failure_table(
            source_file, pc.take(lines, index), column, pc.take(values, index), reason,
            pc.take(readable_ids["reconciliation_id"], index), pc.take(readable_ids["request_id"], index)))

    def rows(array: Any) -> Any:
        return array if good is None else pc.filter(array, good)

    size = n if good is None else pc.sum(good).as_py() or 0
    if footer is not None:
        failed = n - size
        total = pc.sum(rows(signed)).as_py() or Decimal(0)
        mismatch = footer_mismatch(footer, n + unread_records, failed + unread_records, total)
        if mismatch is not None:
            failure_parts.append(failure_table(source_file, [footer.line], mismatch[0], [footer.text], mismatch[1]))
    table = pa.table({
        "reconciliation_id": rows(recon),
        "request_id": rows(request),
        "merchant_ref": rows(done["merchant_ref"]),
        "transaction_type": rows(ttype),
        "direction": rows(direction),
        "amount": rows(absolute),
        "currency": rows(currency),
        "batch_id": rows(done["batch_id"]),
        "batch_date": rows(batch_date),
        "merchant_id": rows(done["merchant_id"]),
        "payment_method": rows(done["payment_method"]),
        "report_format": constant(report_format, size),
        "source_file": constant(source_file, size),
        "source_line": rows(lines),
    })
    for name, array in (extras or {}).items():
        if name not in table.column_names:
            table = table.append_column(name, rows(chunked(array)))
    failures = pa.concat_tables(failure_parts) if failure_parts else FAILURE_SCHEMA.empty_table()
    return Canonical(table, failures.sort_by([("source_line", "ascending")]), footer)
