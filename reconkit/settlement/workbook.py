"""Excel workbooks (.xlsx), through the header alias table or a column mapping."""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa

from ..errors import SettlementFormatError
from .footer import find_footer
from .schema import ALIASES, Canonical, canonicalize, header_key, map_headers

__all__ = ["read_workbook"]


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # Integral floats below 2**53 are exact; anything else is shown as Excel would (it is damaged).
        if value.is_integer() and abs(value) < 2 ** 53:
            return str(int(value))
        return format(Decimal(repr(value)), "f") if abs(value) < 1e15 else f"{value:.6G}"
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _rows(data: bytes, name: str, sheet: str | None) -> list[list[str]]:
    """Every row of the sheet as text. openpyxl parses while rows are iterated, so damage can
    surface at any row: whatever it raises is reported with the sheet and the row reached."""
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a damaged file (zip, XML, KeyError, ...)
        raise SettlementFormatError(f"not a readable .xlsx workbook ({type(exc).__name__}: {exc})", file=name,
                                    expected="an Excel .xlsx file") from None
    title: str | None = sheet
    rows: list[list[str]] = []
    try:
        ws = book[sheet] if sheet else book.worksheets[0]
        title = ws.title
        for row in ws.iter_rows(values_only=True):
            rows.append([_cell_text(v) for v in row])
    except Exception as exc:  # damage inside the sheet: zlib, XML, type and index errors
        where = f"sheet {title!r}" if title else "the first sheet"
        raise SettlementFormatError(f"damaged workbook: {where} cannot be read past row {len(rows)} "
                                    f"({type(exc).__name__}: {exc})", file=name, line=len(rows) + 1,
                                    column=None, expected="an Excel .xlsx file") from None
    finally:
        book.close()
    return rows


def read_workbook(data: bytes, name: str, *, mapping: Mapping[str, str] | None = None,
                  sheet: str | None = None) -> Canonical:
    """Read the first sheet (or ``sheet``) of an .xlsx file; the header is the first row that
    names settlement columns, and a totals footer (by its shape) closes it."""
    rows = _rows(data, name, sheet)
    wanted = {header_key(h) for h in (mapping or {}).values()}
    header_row = next((i for i, row in enumerate(rows)
                       if sum(1 for c in row if header_key(c) in ALIASES or header_key(c) in wanted) >= 2), None)
    if header_row is None:
        raise SettlementFormatError("no header row naming settlement columns was found", file=name, line=1,
                                    expected="a row with e.g. amount, currency, transaction type, reconciliation id")
    headers = [h.strip() for h in rows[header_row]]
    chosen, extras = map_headers(headers, mapping, file=name, line=header_row + 1)
    body = [(i + 1, row) for i, row in enumerate(rows) if i > header_row and any(c.strip() for c in row)]
    footer = find_footer(body[-1][1], headers, chosen.get("amount"), body[-1][0]) if body else None
    if footer is not None:
        body.pop()

    def column(header: str) -> pa.Array:
        index = headers.index(header)
        return pa.array([row[index] if index < len(row) else "" for _, row in body], pa.string())

    return canonicalize({f: column(h) for f, h in chosen.items()}, pa.array([n for n, _ in body], pa.int64()),
                        source_file=name, report_format="excel",
                        extras={h: column(h) for h in extras if h}, footer=footer)
