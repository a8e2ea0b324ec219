"""Raw credit JSON -> one typed pandas DataFrame, one row per credit.

Curated, typed columns come first; then every leaf of the JSON under its dotted path, as text,
so nothing in the response is lost (not even fields the official SDK's models drop).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .credit import FIELD_PATHS, Credit, credit_amount, dig, field_value, json_text, leaf_text, parse_time
from .errors import CreditShapeError

__all__ = ["CURATED_COLUMNS", "credits_to_frame", "flatten_json", "leaf_column"]

CURATED_COLUMNS = (*FIELD_PATHS, "source")
"""The curated columns, in order: every field of :data:`reconkit.credit.FIELD_PATHS` (the one table
:class:`~reconkit.Credit` reads through too), then ``source``."""
_TEXT = pd.StringDtype("pyarrow")


def leaf_column(path: str) -> str:
    """The frame column that holds the JSON leaf at dotted ``path``.

    Leaves keep their dotted path, except one whose path is a curated column's name (``status``,
    ``amount``, ...), kept as ``json:<path>``: the curated column is read through the field table
    (stripped, with fallbacks), the leaf exactly as sent.
    """
    return f"json:{path}" if path in CURATED_COLUMNS else path


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
            out[path] = json_text(value)
        else:
            out[path] = value


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
    return {path: pd.Series([leaf_text(f.get(path)) for f in flats], dtype=_TEXT) for path in paths}


def _arrow_leaves(raws: list[Mapping[str, Any]]) -> dict[str, pd.Series] | None:
    """The same leaves through pyarrow's C++ type inference; None when the data does not fit it
    (a path with mixed types, floats, huge integers, ...) and the Python path must run."""
    if not raws or not all(type(raw) is dict for raw in raws):
        return None
    try:
        array = pa.array(raws)
    except (pa.ArrowException, OverflowError, TypeError, ValueError):
        return None
    if not pa.types.is_struct(array.type) or _has_empty_struct(array.type) or not _plain_names(array.type) \
            or _null_beside_object(array, raws):
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
            text = pa.array([json_text(v) if isinstance(v := dig(raw, *keys), list) else None for raw in raws],
                            pa.string())
        else:
            return None
        leaves[name] = pd.Series(text.to_pandas(types_mapper=lambda _: _TEXT) if isinstance(text, pa.ChunkedArray)
                                 else pd.arrays.ArrowStringArray(text), dtype=_TEXT)
    return leaves


def _null_beside_object(array: pa.StructArray, raws: list[Any], path: tuple[str, ...] = ()) -> bool:
    """Whether some credit holds an explicit null where another holds an object: Arrow infers a
    struct and flattens it to the object's leaves only, while the null is a leaf of its own for
    the Python walk. A missing key is null in Arrow too, so only the rows where the struct is
    null are looked up, for a key that is there with None."""
    for index in range(array.type.num_fields):
        child, name = array.field(index), array.type.field(index).name
        if not pa.types.is_struct(child.type):
            continue
        if child.null_count:
            for row in np.flatnonzero(np.asarray(child.is_null().to_numpy(zero_copy_only=False))):
                parent = raws[row]
                for key in path:
                    parent = parent.get(key) if isinstance(parent, dict) else None
                if isinstance(parent, dict) and name in parent and parent[name] is None:
                    return True
        if _null_beside_object(child, raws, (*path, name)):
            return True
    return False


def _plain_names(kind: pa.DataType) -> bool:
    """Whether no key holds "." or a bracket: the flattened names are split on "." and read back
    with :func:`reconkit.credit.dig`, which gives brackets a meaning; such trees take the Python
    walk."""
    if not pa.types.is_struct(kind):
        return True
    return all(not any(c in kind.field(i).name for c in ".[]") and _plain_names(kind.field(i).type)
               for i in range(kind.num_fields))


def _has_empty_struct(kind: pa.DataType) -> bool:
    # A path holding {} in one credit and null in another infers as struct<>, which flattens to no
    # column at all, while the null is a leaf the Python walk keeps: leave such trees to it.
    if not pa.types.is_struct(kind):
        return False
    return kind.num_fields == 0 or any(_has_empty_struct(kind.field(i).type) for i in range(kind.num_fields))


# Any character str.strip() removes, at either end of a value: where none is there (and no value
# is blank), field_value leaves a column as it is and the per-value call can be skipped.
_SPACE = "".join(sorted({chr(c) for c in range(0x110000) if chr(c).isspace()}))
_EDGE_SPACE = "^[{0}]|[{0}]$".format("".join(f"\\x{{{ord(c):x}}}" for c in _SPACE))


def _field_array(name: str, texts: pa.Array) -> pa.Array:
    """:func:`reconkit.credit.field_value` over one column of leaf texts."""
    if name != "currency" and len(texts) and not pc.any(pc.or_(pc.equal(texts, ""),
                                                             pc.match_substring_regex(texts, _EDGE_SPACE))).as_py():
        return texts
    distinct = pc.unique(texts)  # one call per distinct value: codes and statuses repeat a lot
    mapped = pa.array([field_value(name, text) for text in distinct.to_pylist()], pa.string())
    return pc.take(mapped, pc.index_in(texts, distinct))


def _field(name: str, leaves: dict[str, pd.Series], raws: list[Mapping[str, Any]]) -> pa.Array:
    """Field ``name`` of every credit: :func:`reconkit.credit.read_field` over whole columns."""
    candidates = []
    for path in FIELD_PATHS[name]:
        if "[" in path:
            # A list element picked by name: only Transaction Details rows hold one, walk those.
            if leaves.get(path.partition("[")[0]) is None:
                continue
            keys = path.split(".")
            texts = pa.array([leaf_text(dig(raw, *keys)) for raw in raws], pa.string())
        else:
            column = leaves.get(path)
            if column is None:
                continue
            texts = pa.array(column.array, pa.string())
        candidates.append(_field_array(name, texts))
    if not candidates:
        return pa.nulls(len(raws), pa.string())
    return candidates[0] if len(candidates) == 1 else pc.coalesce(*candidates)


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
        if name == "source":
            data[name] = pd.Series(sources, dtype=_TEXT)
            continue
        values = _field(name, leaves, raws)
        if name == "submit_time_utc":
            texts = values.to_pylist()
            moments = {text: parse_time(text) for text in set(texts)}  # one parse per distinct time
            data[name] = pd.to_datetime(pd.Series([moments[t] for t in texts], dtype=object), utc=True)
        elif name == "amount":
            data[name] = _amounts(values.to_pylist(), raws)
        else:
            data[name] = pd.Series(pd.arrays.ArrowStringArray(values), dtype=_TEXT)
    for path in sorted(leaves):
        data[leaf_column(path)] = leaves[path]
    return pd.DataFrame(data, index=pd.RangeIndex(size))


def _amounts(values: list[str | None], raws: list[Mapping[str, Any]]) -> pd.Series:
    parsed: dict[str | None, Decimal | None] = {}
    for text in dict.fromkeys(values):  # distinct texts in order of first appearance
        try:
            parsed[text] = credit_amount(text)
        except CreditShapeError as exc:
            index = values.index(text)
            raise CreditShapeError(f"item {index} (credit {raws[index].get('id')}): {exc}") from None
    return pd.Series([parsed[text] for text in values], dtype=object)
