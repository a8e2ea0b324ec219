"""Raw credit JSON -> one typed pandas DataFrame, one row per credit.

Curated, typed columns come first; then every leaf of the JSON under its dotted path, as text,
so nothing in the response is lost (not even fields the official SDK's models drop).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .credit import AMOUNT_PATHS, CURRENCY_PATHS, TIME_PATHS, Credit, credit_application, dig
from .errors import CreditShapeError

__all__ = ["CURATED_COLUMNS", "credits_to_frame", "flatten_json", "leaf_column"]

CURATED_COLUMNS = (
    "credit_id", "reconciliation_id", "status", "submit_time_utc", "amount", "currency", "reference_code",
    "transaction_id", "instrument_identifier_id", "card_type", "card_suffix", "approval_code", "response_code",
    "payment_account_reference", "error_reason", "error_message", "source",
)
# Where each curated text column comes from, first non-empty wins; both response shapes covered.
_SOURCES: dict[str, tuple[str, ...]] = {
    "credit_id": ("id",),
    "reconciliation_id": ("reconciliationId", "processingInformation.reconciliationId"),
    "status": ("status",),
    "currency": CURRENCY_PATHS,
    "reference_code": ("clientReferenceInformation.code",),
    "transaction_id": ("clientReferenceInformation.transactionId",),
    "instrument_identifier_id": ("paymentInformation.instrumentIdentifier.id",
                                 "tokenInformation.instrumentIdentifier.id"),
    "card_type": ("paymentAccountInformation.card.type", "paymentInformation.card.type",
                  "paymentInformation.tokenizedCard.type"),
    "card_suffix": ("paymentAccountInformation.card.suffix", "paymentInformation.card.suffix"),
    "approval_code": ("processorInformation.approvalCode",),
    "response_code": ("processorInformation.responseCode",),
    "payment_account_reference": ("processorInformation.paymentAccountReferenceNumber",),
    "error_reason": ("errorInformation.reason",),
    "error_message": ("errorInformation.message",),
}
_TEXT = pd.StringDtype("pyarrow")
# A top-level leaf named like a curated column is that column when it is the column's source.
_SAME_AS_CURATED = {"status"}


def leaf_column(path: str) -> str:
    """The frame column that holds the JSON leaf at dotted ``path``.

    Leaves keep their dotted path, except one whose path is a curated column's name: ``status``
    is the curated ``status`` column, and any other such leaf is kept as ``json:<path>``.
    """
    if path in CURATED_COLUMNS and path not in _SAME_AS_CURATED:
        return f"json:{path}"
    return path


def flatten_json(obj: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Every leaf of a JSON object under its dotted path; lists become compact JSON text.

    Scalars stay Python values here (``credits_to_frame`` turns them into text). An empty
    object holds no value and so has no leaf.
    """
    out: dict[str, Any] = {}
    _walk(obj, f"{prefix}." if prefix else "", out)
    return out


def _walk(node: Mapping[str, Any], base: str, out: dict[str, Any]) -> None:
    # Exact type checks first: isinstance against the Mapping ABC dominates the run time.
    for key, value in node.items():
        path = base + key if type(key) is str else base + str(key)
        kind = type(value)
        if kind is str:
            out[path] = value
        elif kind is dict or (kind is not list and isinstance(value, Mapping)):
            _walk(value, path + ".", out)
        elif kind is list or kind is tuple:
            out[path] = _json_text(value)
        else:
            out[path] = value


def _json_text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _text(value: Any) -> Any:
    if type(value) is str or value is None:
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value) if isinstance(value, float) else str(value)


def _as_raw(item: Any, index: int) -> tuple[Mapping[str, Any], str]:
    if isinstance(item, Credit):
        return item.raw, item.source if item.source != "create" else "self_link"
    if not isinstance(item, Mapping):
        raise CreditShapeError(f"item {index} is a {type(item).__name__}, not a credit response (a dict or Credit)")
    credit_id = item.get("id")
    if not credit_id or isinstance(credit_id, bool) or not isinstance(credit_id, str | int):
        keys = ", ".join(sorted(map(str, item))[:8]) or "none"
        raise CreditShapeError(f"item {index} is not a credit response: it has no 'id' (its keys: {keys})")
    tss = "submitTimeUTC" in item or "applicationInformation" in item or "rootId" in item
    return item, "tss" if tss else "self_link"


def _python_leaves(raws: list[Mapping[str, Any]]) -> dict[str, pd.Series]:
    flats = [flatten_json(raw) for raw in raws]
    paths: dict[str, None] = {}
    for flat in flats:
        paths.update(dict.fromkeys(flat))
    return {path: pd.Series([_text(f.get(path)) for f in flats], dtype=_TEXT) for path in paths}


def _arrow_leaves(raws: list[Mapping[str, Any]]) -> dict[str, pd.Series] | None:
    """The same leaves through pyarrow's C++ type inference; None when the data does not fit it
    (a path with mixed types, floats, huge integers, ...) and the Python path must run."""
    if not raws or not all(type(raw) is dict for raw in raws):
        return None
    try:
        array = pa.array(raws)
    except (pa.ArrowException, OverflowError, TypeError, ValueError):
        return None
    if not pa.types.is_struct(array.type):
        return None
    table = pa.Table.from_batches([pa.RecordBatch.from_struct_array(array)])
    while any(pa.types.is_struct(field.type) for field in table.schema):
        table = table.flatten()
    leaves: dict[str, pd.Series] = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        kind = column.type
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            text = column
        elif pa.types.is_null(kind):
            text = pa.nulls(len(raws), pa.string())
        elif pa.types.is_integer(kind) or pa.types.is_boolean(kind):
            text = pc.cast(column, pa.string())
        elif pa.types.is_list(kind) or pa.types.is_large_list(kind):
            keys = name.split(".")
            text = pa.array([_json_text(v) if isinstance(v := dig(raw, *keys), list) else None for raw in raws],
                            pa.string())
        else:
            return None
        leaves[name] = pd.Series(text.to_pandas(types_mapper=lambda _: _TEXT) if isinstance(text, pa.ChunkedArray)
                                 else pd.arrays.ArrowStringArray(text), dtype=_TEXT)
    return leaves


def _coalesce(leaves: dict[str, pd.Series], paths: tuple[str, ...], size: int, *, keep_empty: bool = False
              ) -> pd.Series:
    result = pd.Series(pd.NA, index=pd.RangeIndex(size), dtype=_TEXT)
    for path in reversed(paths):
        column = leaves.get(path)
        if column is None:
            continue
        present = column.notna() if keep_empty else column.notna() & (column != "")
        result = column.where(present, result)
    return result


def credits_to_frame(credits: Iterable[Credit | Mapping[str, Any]], *, engine: str = "auto") -> pd.DataFrame:
    """Flatten credits (``Credit`` objects or raw dicts of either response shape) into one frame.

    Parameters
    ----------
    credits : iterable of Credit or dict
        Credit responses (``POST /pts/v2/credits``, the self link) or Transaction Details
        responses; mixed shapes are fine.
    engine : {"auto", "python"}
        ``"auto"`` lets pyarrow infer and flatten the tree when the data allows, falling back to
        the pure-Python walk (same result) when it does not.

    Returns
    -------
    DataFrame
        One row per credit: the :data:`CURATED_COLUMNS` first (``submit_time_utc`` as
        datetime64 UTC, ``amount`` as exact ``Decimal`` objects, everything else text), then
        every JSON leaf under its dotted path as text (see :func:`leaf_column`).

    Raises
    ------
    CreditShapeError
        Naming the first item that is not a credit response.
    """
    raws, sources = [], []
    for index, item in enumerate(credits):
        raw, source = _as_raw(item, index)
        raws.append(raw)
        sources.append(source)
    size = len(raws)
    leaves = (_arrow_leaves(raws) if engine == "auto" else None) or _python_leaves(raws)
    data: dict[str, Any] = {}
    for name in CURATED_COLUMNS:
        if name == "submit_time_utc":
            times = _coalesce(leaves, TIME_PATHS, size)
            data[name] = pd.to_datetime(times, utc=True, format="ISO8601", errors="coerce")
        elif name == "amount":
            data[name] = _amounts(_coalesce(leaves, AMOUNT_PATHS, size), raws)
        elif name == "source":
            data[name] = pd.Series(sources, dtype=_TEXT)
        else:
            data[name] = _coalesce(leaves, _SOURCES[name], size, keep_empty=name in _SAME_AS_CURATED)
    for index in (i for i, source in enumerate(sources) if source == "tss"):
        app = credit_application(raws[index])
        if app is not None:
            for name, key in (("reconciliation_id", "reconciliationId"), ("status", "status")):
                if pd.isna(data[name].iat[index]) and app.get(key):
                    data[name].iat[index] = str(app[key])
    for path in sorted(leaves):
        column = leaf_column(path)
        if column != "status":
            data[column] = leaves[path]
    return pd.DataFrame(data, index=pd.RangeIndex(size))


def _amounts(text: pd.Series, raws: list[Mapping[str, Any]]) -> pd.Series:
    out: list[Decimal | None] = []
    for index, value in enumerate(text.tolist()):
        try:
            out.append(None if value is None or value is pd.NA else Decimal(value.strip()))
        except InvalidOperation:
            raise CreditShapeError(
                f"item {index} (credit {raws[index].get('id')}): amount {value!r} is not a decimal") from None
    return pd.Series(out, dtype=object)
