"""Which kind of reconkit database a file is, found without writing to it.

The ledger (:class:`reconkit.ledger.Ledger`, which holds the break book too) and a sandbox's
database (:class:`reconkit.sandbox.state.SandboxState`) are both SQLite files; opening one as the
other, or opening a picture as either, used to end in ``sqlite3.DatabaseError`` or in the wrong
schema being added to someone's file. :func:`require_database` refuses such a file first, naming it
and saying what it is.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from .errors import DatabaseKindError

__all__ = ["Kind", "database_kind", "has_break_book", "require_database", "row_count"]

Kind = Literal["missing", "new", "ledger", "sandbox", "not sqlite", "other"]

_MAGIC = b"SQLite format 3\x00"
_LEDGER_TABLES = frozenset({"ledger_meta", "fetch_cache", "voids", "runs", "break_events", "break_state"})
_SANDBOX_TABLES = frozenset({"meta", "credits"})
_BREAK_TABLES = frozenset({"break_events", "break_state"})
_FOUND = {"not sqlite": "not an SQLite database", "ledger": "a reconkit ledger",
          "sandbox": "a reconkit sandbox database"}


def _read_only(path: Path, *, immutable: bool | None = None) -> sqlite3.Connection:
    """A connection that writes nothing and sees what a writer open elsewhere has committed.

    A WAL database without a ``-wal`` beside it is open nowhere, and in WAL mode a writer changes
    the main file only while a ``-wal`` exists: it is read as it is (``immutable``), so that a mere
    look creates no ``-shm``. Any other database is read under SQLite's locks."""
    if immutable is None:
        with path.open("rb") as handle:
            header = handle.read(100)
        wal_mode = len(header) > 18 and header[18] == 2  # the file format's write version: 2 is WAL
        immutable = wal_mode and not Path(f"{path}-wal").exists()
    uri = f"file:{quote(str(path.resolve()))}?mode=ro" + ("&immutable=1" if immutable else "")
    return sqlite3.connect(uri, uri=True, timeout=30)


def _tables(path: Path) -> dict[str, set[str]]:
    """Each table's columns."""
    for immutable in (None, True):  # a -wal left by a killed writer may not open read-only: read the file
        conn = _read_only(path, immutable=immutable)
        try:
            names = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            return {name: {row[1] for row in conn.execute(f'PRAGMA table_info("{name}")')} for name in names}
        except sqlite3.DatabaseError:
            if immutable:
                raise
        finally:
            conn.close()
    raise AssertionError("unreachable")


def database_kind(path: str | os.PathLike[str]) -> tuple[Kind, set[str]]:
    """What ``path`` is, and the tables it holds.

    Returns
    -------
    kind : {"missing", "new", "ledger", "sandbox", "not sqlite", "other"}
        ``"new"``: an empty file or an SQLite database without tables (either kind may start there);
        ``"other"``: an SQLite database with tables of neither kind.
    tables : set of str
    """
    path = Path(path)
    if not path.exists():
        return "missing", set()
    if path.is_dir():
        return "not sqlite", set()
    with path.open("rb") as handle:
        head = handle.read(len(_MAGIC))
    # Empty, or its first page still being written by the process creating it.
    if len(head) < len(_MAGIC) and _MAGIC.startswith(head):
        return "new", set()
    if head != _MAGIC:
        return "not sqlite", set()
    try:
        tables = _tables(path)
    except sqlite3.DatabaseError:  # the header but a damaged or encrypted body
        return "not sqlite", set()
    names = set(tables)
    if not names:
        return "new", names
    # A ledger of the first release held only its credits table, known by its intent_at column.
    if names & _LEDGER_TABLES or "intent_at" in tables.get("credits", set()):
        return "ledger", names
    if names >= _SANDBOX_TABLES:
        return "sandbox", names
    return "other", names


def require_database(path: str | os.PathLike[str], expected: Literal["ledger", "sandbox"]) -> Kind:
    """Refuse ``path`` unless it is a database of the ``expected`` kind, a new (empty) one, or missing.

    ``":memory:"`` and ``file:`` URIs are not files here and pass. Returns the kind found.

    Raises
    ------
    reconkit.errors.DatabaseKindError
        Naming the file and what it is instead.
    """
    text = os.fspath(path)
    if text == ":memory:" or text.startswith("file:"):
        return "new"
    kind, tables = database_kind(text)
    if kind in ("missing", "new", expected):
        return kind
    if Path(text).is_dir():
        found = "a folder"
    elif kind == "other":
        shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        found = f"an SQLite database of another application (tables {shown})"
    else:
        found = _FOUND[kind]
    raise DatabaseKindError(text, expected, found)


def has_break_book(path: str | os.PathLike[str]) -> bool:
    """Whether the ledger at ``path`` holds a break book (a run was ever recorded into it)."""
    kind, tables = database_kind(path)
    return kind == "ledger" and bool(tables & _BREAK_TABLES)


def row_count(path: str | os.PathLike[str], table: str) -> int:
    """How many rows ``table`` of the database at ``path`` holds (0 without the table), read without
    writing (opening a sandbox's state may note its instance in it)."""
    if table not in _tables(Path(path)):
        return 0
    conn = _read_only(Path(path))
    try:
        return int(conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])
    finally:
        conn.close()
