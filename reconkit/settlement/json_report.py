"""The ``purchase-refund-details`` JSON of CyberSource's Reporting API: parallel arrays keyed by
``requestId``, joined here into one row per ``settlements[]`` entry."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from ..errors import SettlementFormatError
from .schema import Canonical, canonicalize

__all__ = ["read_purchase_refund_json"]


def _text(value: Any) -> str | None:
    """A JSON value as the text it was written as (numbers were kept as text); an object or array
    is named, not shown, and fails the field's check."""
    if value is None:
        return None
    if isinstance(value, dict | list):
        return "(a JSON object)" if isinstance(value, dict) else "(a JSON array)"
    text = str(value)
    # "\ud800" is valid JSON but no valid text: keep it visible as the escape it was written as.
    return text.encode("utf-8", "backslashreplace").decode("utf-8") if not text.isascii() else text


def read_purchase_refund_json(data: bytes, name: str) -> Canonical:
    """Read a purchase-refund-details response.

    ``source_line`` is the 1-based position of the entry in ``settlements`` (JSON has no rows).
    """
    try:
        # Numbers stay text: an amount is judged as written (1.23457E+06 is refused, not rounded).
        doc: Any = json.loads(data.decode("utf-8-sig"), parse_float=str, parse_int=str, parse_constant=str)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        line = getattr(exc, "lineno", None)
        raise SettlementFormatError(f"not valid JSON: {exc}", file=name, line=line, expected="JSON") from None
    except RecursionError:
        raise SettlementFormatError("not readable JSON: nested too deeply", file=name, line=1,
                                    expected="a purchase-refund-details response") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("settlements"), list):
        raise SettlementFormatError("no 'settlements' array: not a purchase-refund-details response", file=name,
                                    expected="{'requestDetails': [...], 'settlements': [...]}")
    if not isinstance(doc.get("requestDetails") or [], list):
        raise SettlementFormatError("'requestDetails' is not an array", file=name, column="requestDetails",
                                    expected="{'requestDetails': [...], 'settlements': [...]}")
    details = {_text(d.get("requestId")): d for d in doc.get("requestDetails") or [] if isinstance(d, dict)}
    keys = ("reconciliation_id", "request_id", "merchant_ref", "transaction_type", "amount", "currency", "batch_id",
            "batch_date", "merchant_id", "payment_method")
    rows: dict[str, list[Any]] = {k: [] for k in keys}
    for entry in doc["settlements"]:
        entry = entry if isinstance(entry, dict) else {}
        request_id = _text(entry.get("requestId")) or ""
        detail = details.get(request_id, {})
        values = {
            "reconciliation_id": detail.get("transactionReferenceNumber") or "",
            "request_id": request_id,
            "merchant_ref": detail.get("merchantReferenceNumber"),
            "transaction_type": entry.get("transactionType") or "",
            "amount": _text(entry.get("amount")) or "",
            "currency": entry.get("currencyCode") or "",
            "batch_id": entry.get("cybersourceBatchId"),
            "batch_date": entry.get("cybersourceBatchTime"),
            "merchant_id": detail.get("cybersourceMerchantId"),
            "payment_method": entry.get("paymentMethod"),
        }
        for key in keys:
            rows[key].append(_text(values[key]))
    columns = {k: pa.array(v, pa.string()) for k, v in rows.items()}
    lines = pa.array(range(1, len(doc["settlements"]) + 1), pa.int64())
    return canonicalize(columns, lines, source_file=name, report_format="purchase_refund_json")
