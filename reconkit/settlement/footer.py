"""Totals footers and trailers: recognised by their shape, and their control totals checked.

A last row is a footer only when its first non-empty cell is a totals keyword on its own
(``TOTAL``, ``Grand Total:``, ``Trailer``, ``Record Count``) *and* every other non-empty cell is a
count or an amount, at most three of them. ``Total Wine & More`` or ``END-1`` as a last row is
data. What a footer states is compared with what was read; a difference is a failure.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

__all__ = ["Footer", "find_footer", "footer_mismatch"]

_KEYWORD = re.compile(r"^(grand\s+)?(totals?|trailer|(record|row|transaction)?\s*count|end|eof)\s*:?$",
                      re.IGNORECASE)
_NUMBER = re.compile(r"^[+-]?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?$")
_MAX_FIGURES = 3


@dataclass(frozen=True)
class Footer:
    """A footer row and the control totals it states (either may be absent)."""

    line: int
    text: str
    count: int | None = None
    count_column: str | None = None
    total: Decimal | None = None
    total_column: str | None = None


def find_footer(cells: Sequence[str], headers: Sequence[str], amount_header: str | None, line: int,
                delimiter: str = ",") -> Footer | None:
    """The footer a last row states, or None when the row does not have a footer's shape.

    Parameters
    ----------
    cells : the row's cells, as text
    headers : the file's column names (a figure is named after the column it stands in)
    amount_header : the column holding amounts: a figure there is the amount total
    line : the row's 1-based line
    delimiter : used to show the row as it stands in the file
    """
    filled = [(index, cell.strip()) for index, cell in enumerate(cells) if cell.strip()]
    if not filled or not _KEYWORD.match(filled[0][1]):
        return None
    figures = filled[1:]
    if not 1 <= len(figures) <= _MAX_FIGURES or not all(_NUMBER.match(cell) for _, cell in figures):
        return None
    count = total = None
    count_column = total_column = None
    for index, cell in figures:
        column = headers[index] if index < len(headers) else f"column {index + 1}"
        value = Decimal(cell.replace(",", ""))
        if total is None and (column == amount_header or "." in cell):
            total, total_column = value, column
        elif count is None and "." not in cell:
            count, count_column = int(value), column
    return Footer(line, delimiter.join(cells).rstrip(delimiter), count, count_column, total, total_column)


def _figure(value: Decimal) -> str:
    return f"{value:,}"


def footer_mismatch(footer: Footer, records: int, unreadable: int, total: Decimal) -> tuple[str, str] | None:
    """``(column, reason)`` when the footer's totals differ from what was read, else None.

    Parameters
    ----------
    records : physical records in the file (rows read plus records that failed)
    unreadable : how many of them failed (their amounts are not in ``total``)
    total : the signed sum of the amounts read, as written in the file
    """
    count_off = footer.count is not None and footer.count != records
    total_off = footer.total is not None and footer.total != total
    if not (count_off or total_off):
        return None
    said = [f"{footer.count:,} rows" if footer.count is not None else "",
            _figure(footer.total) if footer.total is not None else ""]
    has = [f"{records:,}" if footer.count is not None else "", _figure(total) if footer.total is not None else ""]
    reason = (f"footer says {' / '.join(s for s in said if s)}; the file has {' / '.join(h for h in has if h)}")
    if total_off and unreadable:
        reason += f" ({unreadable} unreadable row(s) are not in the sum)"
    column = footer.count_column if count_off else footer.total_column
    return column or "*", reason
