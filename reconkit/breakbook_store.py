"""The break book's SQLite tables, kept in the ledger's database file.

``break_events`` is the append-only log: triggers refuse UPDATE, DELETE and any insert that
names an existing sequence number (``REPLACE INTO``, ``INSERT OR REPLACE``, upserts), and each
event carries ``hash``, chained to the event before it (:func:`chain_hash` over
:func:`canonical`; the first event chains to :data:`GENESIS`). The guards are created with a new
book, or once when a book from before the chain is opened (its events are chained then and
``break_meta`` says when and how many); they are never recreated afterwards, so a dropped guard
stays visible to ``BreakBook.verify``. ``break_state`` holds the state derived from the log,
written in the same transaction as each event so readers never see one without the other.
``break_runs`` and ``break_observations`` record each reconciliation run and the breaks it saw.
Every write is one ``BEGIN IMMEDIATE`` transaction: two processes (two notebooks) serialize on
SQLite's write lock instead of overwriting each other's changes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .ledger import Ledger

__all__ = ["GENESIS", "TRIGGERS", "BreakStore", "Event", "RunRow", "canonical", "chain_hash"]

_TABLES = (
    """CREATE TABLE IF NOT EXISTS break_runs (
    run_id       INTEGER PRIMARY KEY AUTOINCREMENT,
    recorded_at  TEXT NOT NULL,
    analyst      TEXT NOT NULL,
    as_of        TEXT NOT NULL,
    parameters   TEXT NOT NULL,
    inputs       TEXT NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS break_observations (
    run_id          INTEGER NOT NULL REFERENCES break_runs (run_id),
    break_key       TEXT NOT NULL,
    is_break        INTEGER NOT NULL,
    outcome         TEXT NOT NULL,
    amount_at_risk  TEXT,
    currency        TEXT,
    PRIMARY KEY (run_id, break_key)
)""",
    """CREATE TABLE IF NOT EXISTS break_state (
    break_key  TEXT PRIMARY KEY,
    status     TEXT NOT NULL,
    owner      TEXT,
    version    INTEGER NOT NULL,
    state      TEXT NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS break_state_status ON break_state (status)",
    "CREATE TABLE IF NOT EXISTS break_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)

_EVENTS = """CREATE TABLE break_events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    break_key  TEXT NOT NULL,
    kind       TEXT NOT NULL,
    at         TEXT NOT NULL,
    actor      TEXT NOT NULL,
    run_id     INTEGER,
    data       TEXT NOT NULL,
    hash       TEXT
)"""

TRIGGERS = {
    "break_events_no_update": "CREATE TRIGGER break_events_no_update BEFORE UPDATE ON break_events "
                              "BEGIN SELECT RAISE(ABORT, 'break_events is append-only'); END",
    "break_events_no_delete": "CREATE TRIGGER break_events_no_delete BEFORE DELETE ON break_events "
                              "BEGIN SELECT RAISE(ABORT, 'break_events is append-only'); END",
    # REPLACE deletes the row it conflicts with without firing delete triggers (unless recursive
    # triggers are on), and ON CONFLICT DO NOTHING would hide the attempt: refuse any insert that
    # names an existing sequence number.
    "break_events_no_replace": "CREATE TRIGGER break_events_no_replace BEFORE INSERT ON break_events "
                               "WHEN EXISTS (SELECT 1 FROM break_events WHERE seq = NEW.seq) "
                               "BEGIN SELECT RAISE(ABORT, 'break_events is append-only: an event is never "
                               "replaced'); END",
}
"""The guards of the log, by name, with the exact SQL :meth:`BreakStore.trigger_sql` must find."""

GENESIS = "0" * 64
"""The hash the first event chains to."""


def canonical(event: Event) -> bytes:
    """The canonical encoding of an event that its hash covers: the JSON array
    ``[seq, break_key, kind, at, actor, run_id, data]`` with keys sorted, no white space
    (``separators=(",", ":")``), non-ASCII kept as UTF-8 (``ensure_ascii=False``)."""
    return json.dumps([event.seq, event.key, event.kind, event.at, event.actor, event.run_id, event.data],
                      sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def chain_hash(previous: str, event: Event) -> str:
    """``SHA-256(previous hash as 64 lowercase hex digits, a newline, canonical(event))`` as hex."""
    return hashlib.sha256(previous.encode("ascii") + b"\n" + canonical(event)).hexdigest()


def now_text() -> str:
    """The wall clock, UTC, as stored in the book."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class Event:
    """One entry of the log: ``kind`` happened to ``key``, by ``actor`` at ``at``."""

    seq: int
    key: str
    kind: str
    at: str
    actor: str
    run_id: int | None
    data: dict[str, Any]
    hash: str | None = None


@dataclass(frozen=True)
class RunRow:
    """One recorded reconciliation run."""

    run_id: int
    recorded_at: str
    analyst: str
    as_of: str
    parameters: dict[str, Any]
    inputs: dict[str, Any]


def _event(row: tuple[Any, ...]) -> Event:
    seq, key, kind, at, actor, run_id, data, digest = row
    return Event(int(seq), key, kind, at, actor, run_id, json.loads(data), digest)


_EVENT_COLUMNS = "seq, break_key, kind, at, actor, run_id, data, hash"


class BreakStore(Ledger):
    """The SQL side of :class:`reconkit.breaks.BreakBook`: a connection to the ledger's file
    (opened as the ledger opens it: WAL, busy timeout) that also knows the break tables.

    Parameters
    ----------
    path : str
        The ledger's database file, or ``":memory:"`` (then the book lives as long as this
        object and is not shared).
    """

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self._head: tuple[int, str] | None = None  # the chain's last (seq, hash) inside a transaction
        self.committed_head: tuple[int, str] | None = None  # the last event the last transaction appended
        with self._tx() as conn:
            for statement in _TABLES:
                conn.execute(statement)
            self._install_log(conn)

    def _install_log(self, conn: sqlite3.Connection) -> None:
        """Create the log and its guards in a new book; chain the events of a book written before
        the chain existed, once, and note it in ``break_meta``. A chained book is never touched
        here: a guard dropped since is reported by :meth:`reconkit.breaks.BreakBook.verify`, not
        silently recreated."""
        columns = {row[1] for row in conn.execute("PRAGMA table_info(break_events)")}
        if not columns:
            conn.execute(_EVENTS)
            conn.execute("CREATE INDEX IF NOT EXISTS break_events_key ON break_events (break_key, seq)")
            for sql in TRIGGERS.values():
                conn.execute(sql)
            self._put_meta(conn, "chain", {"since": now_text(), "chained_on_open": 0, "head": GENESIS})
            return
        if "hash" in columns or self._meta(conn, "chain") is not None:
            return  # chained already (or its hash column was removed since: verify says so)
        # A book from before the chain: its old guards refused UPDATE, so they are replaced in the
        # same transaction that writes the hashes (two processes opening it serialize here).
        conn.execute("ALTER TABLE break_events ADD COLUMN hash TEXT")
        for name in TRIGGERS:
            conn.execute(f"DROP TRIGGER IF EXISTS {name}")
        head, count = GENESIS, 0
        rows = conn.execute(f"SELECT {_EVENT_COLUMNS} FROM break_events ORDER BY seq").fetchall()
        for row in rows:
            head = chain_hash(head, _event(row))
            conn.execute("UPDATE break_events SET hash=? WHERE seq=?", (head, row[0]))
            count += 1
        for sql in TRIGGERS.values():
            conn.execute(sql)
        self._put_meta(conn, "chain", {"since": now_text(), "chained_on_open": count, "head": head})

    @staticmethod
    def _meta(conn: sqlite3.Connection, key: str) -> Any:
        row = conn.execute("SELECT value FROM break_meta WHERE key=?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    @staticmethod
    def _put_meta(conn: sqlite3.Connection, key: str, value: Any) -> None:
        conn.execute("INSERT INTO break_meta (key, value) VALUES (?, ?)", (key, json.dumps(value, sort_keys=True)))

    def meta(self, key: str) -> Any:
        """A value of ``break_meta`` (``chain``: when the chain began and how many older events it
        chained on open), or None."""
        with self._lock:
            return self._meta(self._conn, key)

    def __repr__(self) -> str:
        return f"BreakStore({self.path!r})"

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``): SQLite's write lock is held from its first
        statement, so what is read inside it cannot change before it commits."""
        with self._tx() as conn:
            self._head = None
            self.committed_head = None
            try:
                yield conn
                appended = self._head
            finally:
                self._head = None
        self.committed_head = appended

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """One read transaction: every read inside it sees the same snapshot of the file."""
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                yield self._conn
            finally:
                self._conn.execute("COMMIT")

    # --- runs ------------------------------------------------------------------------
    def add_run(self, analyst: str, as_of: str, parameters: dict[str, Any], inputs: dict[str, Any]) -> int:
        """Insert a run row (inside the caller's transaction); returns its id."""
        cursor = self._conn.execute(
            "INSERT INTO break_runs (recorded_at, analyst, as_of, parameters, inputs) VALUES (?,?,?,?,?)",
            (now_text(), analyst, as_of, json.dumps(parameters, default=str), json.dumps(inputs, default=str)))
        return int(cursor.lastrowid or 0)

    def add_observations(self, run_id: int, rows: Iterable[tuple[str, bool, str, str | None, str | None]]) -> None:
        """Insert ``(key, is_break, outcome, amount_at_risk, currency)`` rows of one run."""
        self._conn.executemany(
            "INSERT INTO break_observations (run_id, break_key, is_break, outcome, amount_at_risk, currency)"
            " VALUES (?,?,?,?,?,?)",
            ((run_id, key, int(flag), outcome, amount, currency) for key, flag, outcome, amount, currency in rows))

    def runs(self) -> list[RunRow]:
        """Every run, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT run_id, recorded_at, analyst, as_of, parameters, inputs FROM break_runs ORDER BY run_id"
            ).fetchall()
        return [RunRow(int(r[0]), r[1], r[2], r[3], json.loads(r[4]), json.loads(r[5])) for r in rows]

    def observations(self, run_id: int) -> list[tuple[str, bool, str, str | None, str | None]]:
        """``(key, is_break, outcome, amount_at_risk, currency)`` of one run."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT break_key, is_break, outcome, amount_at_risk, currency FROM break_observations"
                " WHERE run_id=? ORDER BY break_key", (run_id,)).fetchall()
        return [(k, bool(b), o, a, c) for k, b, o, a, c in rows]

    # --- events and state --------------------------------------------------------------
    def append(self, key: str, kind: str, actor: str, data: dict[str, Any], run_id: int | None = None) -> Event:
        """Append one event, chained to the last (inside the caller's transaction), and return it
        with its sequence number and hash."""
        at = now_text()
        payload = json.dumps(data, sort_keys=True, default=str)
        if self._head is None:
            last = self._conn.execute("SELECT seq, hash FROM break_events ORDER BY seq DESC LIMIT 1").fetchone()
            self._head = (0, GENESIS) if last is None else (int(last[0]), last[1] or "")
        seq = self._head[0] + 1
        event = Event(seq, key, kind, at, actor, run_id, json.loads(payload))
        digest = chain_hash(self._head[1], event)
        self._conn.execute(
            "INSERT INTO break_events (seq, break_key, kind, at, actor, run_id, data, hash) VALUES (?,?,?,?,?,?,?,?)",
            (seq, key, kind, at, actor, run_id, payload, digest))
        self._head = (seq, digest)
        return dataclasses.replace(event, hash=digest)

    def events(self, key: str | None = None) -> list[Event]:
        """The log, in order (one break's when ``key`` is given)."""
        query = f"SELECT {_EVENT_COLUMNS} FROM break_events"
        with self._lock:
            if key is None:
                rows = self._conn.execute(query + " ORDER BY seq").fetchall()
            else:
                rows = self._conn.execute(query + " WHERE break_key=? ORDER BY seq", (key,)).fetchall()
        return [_event(r) for r in rows]

    def events_from(self, seq: int) -> Iterator[Event]:
        """The log from sequence number ``seq`` on, read lazily in order."""
        with self._lock:
            cursor = self._conn.execute(f"SELECT {_EVENT_COLUMNS} FROM break_events WHERE seq >= ? ORDER BY seq",
                                        (seq,))
            rows = cursor.fetchmany(10_000)
        while rows:
            yield from (_event(r) for r in rows)
            with self._lock:
                rows = cursor.fetchmany(10_000)

    def run_events(self, run_id: int) -> list[Event]:
        """The events a run wrote itself (its openings, changes, clearings), in order."""
        with self._lock:
            rows = self._conn.execute(f"SELECT {_EVENT_COLUMNS} FROM break_events WHERE run_id=? ORDER BY seq",
                                      (run_id,)).fetchall()
        return [_event(r) for r in rows]

    def events_of_kind(self, kind: str) -> list[Event]:
        """Every event of one kind, in order."""
        with self._lock:
            rows = self._conn.execute(f"SELECT {_EVENT_COLUMNS} FROM break_events WHERE kind=? ORDER BY seq",
                                      (kind,)).fetchall()
        return [_event(r) for r in rows]

    def last_issued_seq(self) -> int:
        """The highest sequence number the log ever issued (SQLite's AUTOINCREMENT counter)."""
        with self._lock:
            row = self._conn.execute("SELECT seq FROM sqlite_sequence WHERE name='break_events'").fetchone()
        return 0 if row is None else int(row[0])

    def has_hash_column(self) -> bool:
        """Whether the log still has its ``hash`` column."""
        with self._lock:
            return any(row[1] == "hash" for row in self._conn.execute("PRAGMA table_info(break_events)"))

    def trigger_sql(self) -> dict[str, str]:
        """The SQL of every trigger on ``break_events``, by name, as SQLite keeps it."""
        with self._lock:
            rows = self._conn.execute("SELECT name, sql FROM sqlite_master WHERE type='trigger' "
                                      "AND tbl_name='break_events'").fetchall()
        return {name: sql for name, sql in rows}

    def state_rows(self, key: str | None = None) -> list[tuple[str, str, str | None, int, dict[str, Any]]]:
        """Every stored state row (or ``key``'s) as ``(key, status, owner, version, state)``."""
        query = "SELECT break_key, status, owner, version, state FROM break_state"
        with self._lock:
            rows = self._conn.execute(query + " ORDER BY break_key").fetchall() if key is None else \
                self._conn.execute(query + " WHERE break_key=?", (key,)).fetchall()
        return [(k, s, o, v, json.loads(d)) for k, s, o, v, d in rows]

    def delete_state(self, key: str) -> None:
        """Remove a break's derived state (its run was withdrawn before it existed)."""
        self._conn.execute("DELETE FROM break_state WHERE break_key=?", (key,))

    def put_state(self, key: str, status: str, owner: str | None, version: int, state: dict[str, Any]) -> None:
        """Write a break's derived state (inside the caller's transaction)."""
        self._conn.execute(
            "INSERT INTO break_state (break_key, status, owner, version, state) VALUES (?,?,?,?,?)"
            " ON CONFLICT(break_key) DO UPDATE SET status=excluded.status, owner=excluded.owner,"
            " version=excluded.version, state=excluded.state",
            (key, status, owner, version, json.dumps(state, sort_keys=True)))

    def state(self, key: str) -> dict[str, Any] | None:
        """One break's stored state, or None."""
        with self._lock:
            row = self._conn.execute("SELECT state FROM break_state WHERE break_key=?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def states(self, statuses: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Every stored state (only those with one of ``statuses`` when given), by key."""
        with self._lock:
            if statuses is None:
                rows = self._conn.execute("SELECT state FROM break_state ORDER BY break_key").fetchall()
            else:
                wanted = list(statuses)
                marks = ",".join("?" * len(wanted))
                rows = self._conn.execute(
                    f"SELECT state FROM break_state WHERE status IN ({marks}) ORDER BY break_key", wanted).fetchall()
        return [json.loads(r[0]) for r in rows]

    def keys_like(self, pattern: str) -> list[str]:
        """Keys matching a SQL LIKE pattern."""
        with self._lock:
            rows = self._conn.execute("SELECT break_key FROM break_state WHERE break_key LIKE ? ORDER BY break_key",
                                      (pattern,)).fetchall()
        return [r[0] for r in rows]
