"""Making outside text inert before it leaves the project: in a CSV or workbook cell, in a
terminal, in an HTML page.

Ids, file names, analysts' names, notes, reasons and details come from settlement files,
servers and people. Two things in them act when shown:

* a cell that starts like a formula runs as one when a spreadsheet opens the file (OWASP
  "CSV Injection": ``=``, ``+``, ``-``, ``@``, tab, carriage return, and in one revision line
  feed). Such a cell is written with a single quote in front, the mitigation OWASP names;
  the quote shows, so the original text stays readable and recoverable. The full-width twins
  (``＝ ＋ － ＠``) are quoted too: OWASP does not list them, but a quote costs nothing and
  whether every spreadsheet locale leaves them alone could not be checked here. Text that
  already starts with a quote gets one more, so a leading quote always means "added here" and
  the original text is the cell less its first quote.
* a control character (ESC, BEL, the other C0 and C1 codes, DEL) rewrites a terminal, is
  illegal in a workbook's XML and invisible in a page. Each is shown as its escape, ``\\x1b``;
  tab and line feed stay where the format carries them (CSV and workbook cells), and are
  escaped too on one-line displays. A backslash is left as it is, so text that already reads
  ``\\x1b`` looks like an escaped ESC; doubling every backslash would mangle Windows paths.
* a bidirectional control (U+202A–U+202E, U+2066–U+2069, the marks U+200E, U+200F, U+061C)
  reorders what is shown after it, so an id or a file name can be made to look like another
  ("Trojan Source", CVE-2021-42574). Each is shown as its escape, ``\\u202e``, as a control
  character is.

Every writer calls one of :func:`cell` (a cell value), :func:`frame` (a DataFrame before
``to_csv``/``to_excel``), :func:`arrow` (an Arrow string column) or :func:`shown` (terminal and
HTML text). Numbers, dates and booleans the project writes as such are left as they are: a
genuine negative amount stays a number; only text is neutralised.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: the command line imports this module to print
    import pandas as pd
    import pyarrow as pa

__all__ = ["BIDI_CONTROLS", "FORMULA_TRIGGERS", "arrow", "cell", "escape_controls", "frame", "shown"]

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")
"""First characters that make a spreadsheet read a cell as a formula (OWASP), with the
full-width twins."""

BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
"""The characters that reorder displayed text (Unicode's bidirectional formatting characters)."""


def _pattern(keep: str) -> re.Pattern[str]:
    """The control characters to escape (C0, DEL, C1, the bidirectional controls and the two
    non-characters XML 1.0 refuses), less those in ``keep``."""
    c0 = "".join(chr(c) for c in range(0x20) if chr(c) not in keep)
    return re.compile("[" + re.escape(c0) + "\x7f-\x9f" + BIDI_CONTROLS + "\ufffe\uffff]")


_CONTROLS = {"": _pattern(""), "\t\n": _pattern("\t\n")}
# The same set, tab and LF kept, for Arrow's RE2.
_RE2_CONTROLS = (r"[\x00-\x08\x0B-\x1F\x7F-\x9F\x{061C}\x{200E}\x{200F}\x{202A}-\x{202E}\x{2066}-\x{2069}"
                 r"\x{FFFE}\x{FFFF}]")
_RE2_TRIGGER = "^['=+\\-@\t\r\n\uff1d\uff0b\uff0d\uff20]"


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str, keep: str = "\t\n") -> str:
    """``text`` with each control character (C0, DEL, C1, bidirectional, U+FFFE/U+FFFF) shown as its escape
    (``\\x1b``, ``\\ufffe``), except those in ``keep`` (``""`` or ``"\\t\\n"``)."""
    return _CONTROLS[keep].sub(_escape, text)


def cell(value: Any) -> Any:
    """A value ready for a CSV or workbook cell: text has its control characters escaped
    (tab and line feed kept) and, when it then starts with a formula trigger (or a quote), a
    single quote in front; anything that is not text (numbers, dates, None) is returned unchanged."""
    if not isinstance(value, str):
        return value
    text = escape_controls(value)
    return "'" + text if text.startswith((*FORMULA_TRIGGERS, "'")) else text


def shown(value: Any) -> str:
    """Text for a one-line display (terminal, HTML): every control character escaped, tab and
    line feed too. No quote: a terminal or page runs no formula."""
    return escape_controls(value if isinstance(value, str) else str(value), keep="")


def frame(data: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``data`` whose text cells are :func:`cell` (the header too); numbers, Decimals,
    times and booleans stay what they are, so a spreadsheet still reads them as such."""
    import pandas as pd

    out = data.copy()
    out.columns = [cell(c) if isinstance(c, str) else c for c in out.columns]
    for position in range(out.shape[1]):
        column = out.iloc[:, position]
        if pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype) \
                or pd.api.types.is_datetime64_any_dtype(column.dtype):
            continue
        converted = column.astype(object).map(cell)
        out.isetitem(position, converted.astype(column.dtype) if isinstance(column.dtype, pd.StringDtype)
                     else converted)
    return out


def arrow(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """:func:`cell` over an Arrow string column, vectorised: only the rows that need it (rare)
    go through Python."""
    import pyarrow as pa
    import pyarrow.compute as pc

    text = pc.cast(values, pa.string())
    needs = pc.or_(pc.match_substring_regex(text, _RE2_CONTROLS), pc.match_substring_regex(text, _RE2_TRIGGER))
    needs = pc.fill_null(needs, False)
    if not pc.any(needs).as_py():
        return text
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
        needs = needs.combine_chunks() if isinstance(needs, pa.ChunkedArray) else needs
    fixed = [cell(v) for v in pc.filter(text, needs).to_pylist()]
    return pc.replace_with_mask(text, needs, pa.array(fixed, pa.string()))
