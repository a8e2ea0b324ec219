"""The break book's SQLite tables, kept in the ledger's database file.

``break_events`` is the append-only log (triggers refuse UPDATE and DELETE); ``break_state``
holds the state derived from it, written in the same transaction as each event so readers
never see one without the other. ``break_runs`` and ``break_observations`` record each
reconciliation run and the breaks it saw. Every write is one ``BEGIN IMMEDIATE`` transaction:
two processes (two notebooks) serialize on SQLite's write lock instead of overwriting each
other's changes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .ledger import Ledger

__all__ = ["BreakStore", "Event", "RunRow"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS break_runs (
    run_id       INTEGER PRIMARY KEY AUTOINCREMENT,
    recorded_at  TEXT NOT NULL,
    analyst      TEXT NOT NULL,
    as_of        TEXT NOT NULL,
    parameters   TEXT NOT NULL,
    inputs       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS break_observations (
    run_id          INTEGER NOT NULL REFERENCES break_runs (run_id),
    break_key       TEXT NOT NULL,
    is_break        INTEGER NOT NULL,
    outcome         TEXT NOT NULL,
    amount_at_risk  TEXT,
    currency        TEXT,
    PRIMARY KEY (run_id, break_key)
);
CREATE TABLE IF NOT EXISTS break_events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    break_key  TEXT NOT NULL,
    kind       TEXT NOT NULL,
    at         TEXT NOT NULL,
    actor      TEXT NOT NULL,
    run_id     INTEGER,
    data       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS break_events_key ON break_events (break_key, seq);
CREATE TRIGGER IF NOT EXISTS break_events_no_update BEFORE UPDATE ON break_events
BEGIN SELECT RAISE(ABORT, 'break_events is append-only'); END;
CREATE TRIGGER IF NOT EXISTS break_events_no_delete BEFORE DELETE ON break_events
BEGIN SELECT RAISE(ABORT, 'break_events is append-only'); END;
CREATE TABLE IF NOT EXISTS break_state (
    break_key  TEXT PRIMARY KEY,
    status     TEXT NOT NULL,
    owner      TEXT,
    version    INTEGER NOT NULL,
    state      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS break_state_status ON break_state (status);
"""


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
    seq, key, kind, at, actor, run_id, data = row
    return Event(int(seq), key, kind, at, actor, run_id, json.loads(data))


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
        with self._lock:
            self._conn.executescript(_SCHEMA)

    def __repr__(self) -> str:
        return f"BreakStore({self.path!r})"

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``): SQLite's write lock is held from its first
        statement, so what is read inside it cannot change before it commits."""
        return self._tx()

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
        """Append one event (inside the caller's transaction) and return it with its sequence number."""
        at = now_text()
        payload = json.dumps(data, sort_keys=True, default=str)
        cursor = self._conn.execute(
            "INSERT INTO break_events (break_key, kind, at, actor, run_id, data) VALUES (?,?,?,?,?,?)",
            (key, kind, at, actor, run_id, payload))
        return Event(int(cursor.lastrowid or 0), key, kind, at, actor, run_id, json.loads(payload))

    def events(self, key: str | None = None) -> list[Event]:
        """The log, in order (one break's when ``key`` is given)."""
        query = "SELECT seq, break_key, kind, at, actor, run_id, data FROM break_events"
        with self._lock:
            if key is None:
                rows = self._conn.execute(query + " ORDER BY seq").fetchall()
            else:
                rows = self._conn.execute(query + " WHERE break_key=? ORDER BY seq", (key,)).fetchall()
        return [_event(r) for r in rows]

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
