"""The canonical settlement schema, the header alias table, and the vectorized checks that turn
a table of text columns into canonical rows plus failure cases.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ..money import CURRENCIES

__all__ = ["CANONICAL_COLUMNS", "FAILURE_COLUMNS", "Canonical", "canonicalize", "classify_type", "header_key",
           "map_headers"]

CANONICAL_COLUMNS = (
    "reconciliation_id", "request_id", "merchant_ref", "transaction_type", "direction", "amount", "currency",
    "batch_id", "batch_date", "merchant_id", "payment_method", "report_format", "source_file", "source_line",
)
FAILURE_COLUMNS = ("source_file", "source_line", "column", "value", "reason")
_TEXT_FIELDS = ("reconciliation_id", "request_id", "merchant_ref", "transaction_type", "amount", "currency",
                "batch_id", "batch_date", "merchant_id", "payment_method")


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
FOOTER = re.compile(r"^\s*\"?(grand\s+)?(total|totals|trailer|end|count)\b", re.IGNORECASE)
"""A totals/trailer line that closes a file (recognised only as its last line)."""
_EXCEL_SCI = re.compile(r"^[+-]?\d+(\.\d+)?[eE][+-]?\d+$")
_AMOUNT = r"^[+-]?(\d+(\.\d*)?|\.\d+)$"


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
    for pattern in ("%Y-%m-%d", "%Y%m%d", "%m/%d/%Y", "%b %d %Y %I:%M:%S %p", "%d.%m.%Y"):
        try:
            return datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).date()
    except ValueError:
        return None


def map_headers(headers: list[str], mapping: Mapping[str, str] | None) -> tuple[dict[str, str], list[str]]:
    """Map a file's header names to canonical fields.

    Returns ``(canonical -> header, extra headers)``. A ``mapping`` (canonical -> header) wins
    over the alias table.
    """
    chosen: dict[str, str] = {}
    if mapping:
        by_key = {header_key(h): h for h in headers}
        for field, header in mapping.items():
            if field not in _TEXT_FIELDS:
                raise ValueError(f"mapping key {field!r} is not a settlement field; expected one of "
                                 f"{', '.join(_TEXT_FIELDS)}")
            if header_key(header) not in by_key:
                raise KeyError(header)
            chosen[field] = by_key[header_key(header)]
    for header in headers:
        field = ALIASES.get(header_key(header))
        if field and field not in chosen and header not in chosen.values():
            chosen[field] = header
    extras = [h for h in headers if h not in chosen.values()]
    return chosen, extras


@dataclass
class Canonical:
    """The outcome of :func:`canonicalize`: good rows and failure cases, both as Arrow tables."""

    table: pa.Table
    failures: pa.Table
    footer: list[str] | None = None


def _null_if_empty(array: pa.ChunkedArray) -> pa.ChunkedArray:
    return pc.if_else(pc.equal(array, ""), pa.scalar(None, pa.string()), array)


def _clean_id(array: pa.ChunkedArray) -> pa.ChunkedArray:
    array = pc.utf8_trim_whitespace(array)
    # Excel guards: ="0004…" and a leading apostrophe are wrappers, not part of the id.
    if pc.any(pc.starts_with(array, "=\"")).as_py():
        array = pc.replace_substring_regex(array, r'^="(.*)"$', r"\1")
    if pc.any(pc.starts_with(array, "'")).as_py():
        array = pc.replace_substring_regex(array, r"^'", "")
    return _null_if_empty(pc.utf8_trim_whitespace(array))


def _map_distinct(array: pa.ChunkedArray, fn: Any, out_type: pa.DataType) -> pa.Array:
    """Apply a Python function once per distinct value: types and dates repeat a lot."""
    distinct = pc.unique(array)
    mapped = pa.array([None if v is None else fn(v) for v in distinct.to_pylist()], out_type)
    return pc.take(mapped, pc.index_in(array, distinct))


def canonicalize(columns: Mapping[str, pa.ChunkedArray | pa.Array], lines: pa.Array, *, source_file: str,
                 report_format: str, extras: Mapping[str, pa.ChunkedArray | pa.Array] | None = None,
                 footer_column: pa.ChunkedArray | pa.Array | None = None) -> Canonical:
    """Validate and normalize text columns (named by canonical field) into canonical rows.

    Rows that fail are left out of ``table`` and described in ``failures`` (one row per failing
    cell: file, line, column, value, reason); nothing is dropped silently.
    """
    n = len(lines)
    text = {name: pa.chunked_array([pa.array([None] * n, pa.string())]) for name in _TEXT_FIELDS}
    for name, array in columns.items():
        text[name] = array if isinstance(array, pa.ChunkedArray) else pa.chunked_array([array])
    footer = None
    keep = pa.array([True] * n) if n else pa.array([], pa.bool_())
    if footer_column is not None and n:
        first = footer_column if isinstance(footer_column, pa.ChunkedArray) else pa.chunked_array([footer_column])
        last = first[n - 1].as_py() or ""
        if FOOTER.match(last):
            footer = [str(c[n - 1].as_py() or "") for c in [*text.values()]]
            keep = pa.array([True] * (n - 1) + [False])
    problems: list[tuple[pa.Array, str, pa.ChunkedArray, str]] = []

    def fail(mask: Any, column: str, values: pa.ChunkedArray, reason: str) -> None:
        mask = pc.and_(pc.fill_null(mask, False), keep)
        if pc.any(mask).as_py():
            problems.append((mask, column, values, reason))

    recon = _clean_id(text["reconciliation_id"])
    request = _clean_id(text["request_id"])
    for name, ids in (("reconciliation_id", recon), ("request_id", request)):
        maybe = pc.match_substring(ids, "E+", ignore_case=True)
        if pc.any(pc.fill_null(maybe, False)).as_py():
            fail(pc.match_substring_regex(ids, _EXCEL_SCI.pattern), name, text[name],
                 "an id in scientific notation (Excel rounded it); the original id cannot be recovered")
    fail(pc.and_(pc.is_null(recon), pc.is_null(request)), "reconciliation_id", text["reconciliation_id"],
         "the row has neither a reconciliation id nor a request id")
    amount_text = pc.utf8_trim_whitespace(text["amount"])
    fail(pc.invert(pc.fill_null(pc.match_substring_regex(amount_text, _AMOUNT), False)), "amount", text["amount"],
         "not a decimal amount such as 12.50 or -12.50")
    currency = pc.utf8_upper(pc.utf8_trim_whitespace(text["currency"]))
    known = pc.is_in(currency, value_set=pa.array(sorted(CURRENCIES)))
    fail(pc.invert(known), "currency", text["currency"], "not an ISO 4217 currency code")
    digits = _map_distinct(currency, lambda c: CURRENCIES.get(c, 2), pa.int8())
    for places in sorted(set(pc.unique(digits).to_pylist()) - {None}):
        pattern = rf"^[+-]?\d*(\.\d{{0,{places}}}0*)?$" if places else r"^[+-]?\d*(\.0*)?$"
        too_fine = pc.and_(pc.equal(digits, places), pc.invert(pc.fill_null(
            pc.match_substring_regex(amount_text, pattern), True)))
        fail(pc.and_(too_fine, pc.fill_null(pc.match_substring_regex(amount_text, _AMOUNT), False)), "amount",
             text["amount"], f"more decimal places than the currency allows ({places})")
    ttype = pc.utf8_trim_whitespace(text["transaction_type"])
    direction = _map_distinct(ttype, classify_type, pa.string())
    fail(pc.is_null(direction), "transaction_type", text["transaction_type"],
         "unknown transaction type; expected e.g. ics_credit, ics_bill, refund, sale")
    batch_text = _null_if_empty(pc.utf8_trim_whitespace(text["batch_date"]))
    batch_date = _map_distinct(batch_text, _parse_date, pa.date32())
    fail(pc.and_(pc.is_valid(batch_text), pc.is_null(batch_date)), "batch_date", text["batch_date"],
         "not a date (YYYY-MM-DD, YYYYMMDD, M/D/YYYY or ISO date-time)")

    bad = pa.array([False] * n, pa.bool_()) if n else pa.array([], pa.bool_())
    failure_parts = []
    for mask, column, values, reason in problems:
        bad = pc.or_(bad, mask)
        index = pc.indices_nonzero(mask)
        failure_parts.append(pa.table({
            "source_file": pa.array([source_file] * len(index), pa.string()),
            "source_line": pc.take(lines, index),
            "column": pa.array([column] * len(index), pa.string()),
            "value": pc.take(values, index),
            "reason": pa.array([reason] * len(index), pa.string()),
        }))
    good = pc.and_(keep, pc.invert(bad))
    amount_clean = pc.if_else(pc.starts_with(amount_text, "+"), pc.utf8_slice_codeunits(amount_text, 1),
                              amount_text)
    amount_abs = pc.if_else(pc.starts_with(amount_clean, "-"), pc.utf8_slice_codeunits(amount_clean, 1),
                            amount_clean)
    good_amounts = pc.filter(amount_abs, good)
    scale = max([CURRENCIES.get(c, 2) for c in pc.unique(pc.filter(currency, good)).to_pylist() if c] or [2])
    table = pa.table({
        "reconciliation_id": pc.filter(recon, good),
        "request_id": pc.filter(request, good),
        "merchant_ref": pc.filter(_null_if_empty(pc.utf8_trim_whitespace(text["merchant_ref"])), good),
        "transaction_type": pc.filter(ttype, good),
        "direction": pc.filter(direction, good),
        "amount": pc.cast(good_amounts, pa.decimal128(38, scale)),
        "currency": pc.filter(currency, good),
        "batch_id": pc.filter(_null_if_empty(pc.utf8_trim_whitespace(text["batch_id"])), good),
        "batch_date": pc.filter(batch_date, good),
        "merchant_id": pc.filter(_null_if_empty(pc.utf8_trim_whitespace(text["merchant_id"])), good),
        "payment_method": pc.filter(_null_if_empty(pc.utf8_trim_whitespace(text["payment_method"])), good),
        "report_format": pa.array([report_format] * pc.sum(good).as_py() if n else [], pa.string()),
        "source_file": pa.array([source_file] * (pc.sum(good).as_py() or 0) if n else [], pa.string()),
        "source_line": pc.filter(lines, good),
    })
    for name, array in (extras or {}).items():
        if name not in table.column_names:
            table = table.append_column(name, pc.filter(array, good))
    failures = pa.concat_tables(failure_parts) if failure_parts else pa.table(
        {c: pa.array([], pa.int64() if c == "source_line" else pa.string()) for c in FAILURE_COLUMNS})
    return Canonical(table, failures.sort_by([("source_line", "ascending")]), footer)
