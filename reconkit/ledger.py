"""The SQLite ledger: credits issued (intent before the POST, outcome after), the fetch cache
and reconciliation runs.

One file, safe for concurrent writers of one process (a lock around one connection) and for
other processes (WAL and a busy timeout).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DEFAULT_LEDGER_PATH", "Ledger"]

DEFAULT_LEDGER_PATH = Path("data") / "reconkit.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS credits (
    reference_code    TEXT PRIMARY KEY,
    transaction_id    TEXT NOT NULL,
    amount            TEXT NOT NULL,
    currency          TEXT NOT NULL,
    environment       TEXT NOT NULL,
    merchant_id       TEXT NOT NULL,
    intent_at         TEXT NOT NULL,
    outcome           TEXT NOT NULL,
    credit_id         TEXT,
    status            TEXT,
    reconciliation_id TEXT,
    raw_json          TEXT,
    error             TEXT,
    updated_at        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS credits_credit_id ON credits (credit_id);
CREATE TABLE IF NOT EXISTS fetch_cache (
    environment TEXT NOT NULL,
    merchant_id TEXT NOT NULL,
    credit_id   TEXT NOT NULL,
    status      TEXT,
    raw_json    TEXT NOT NULL,
    source      TEXT NOT NULL,
    fetched_at  TEXT NOT NULL,
    PRIMARY KEY (environment, merchant_id, credit_id)
);
CREATE TABLE IF NOT EXISTS runs (
    run_id      INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at  TEXT NOT NULL,
    parameters  TEXT NOT NULL,
    summary     TEXT NOT NULL
);
"""

# Outcomes of a credit POST as the ledger records them.
INTENT = "intent"
CREATED = "created"
DECLINED = "declined"
REJECTED = "rejected"
UNKNOWN = "unknown_outcome"
NOT_SENT = "not_sent"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _drop_unscoped_fetch_cache(conn: sqlite3.Connection) -> None:
    """Drop a fetch cache written before entries were keyed by environment and merchant.

    Its entries cannot be told apart by sandbox or merchant, so none of them can be trusted;
    a cache holds nothing that a fetch cannot get again.
    """
    columns = {row[1] for row in conn.execute("PRAGMA table_info(fetch_cache)")}
    if columns and "environment" not in columns:
        conn.execute("DROP TABLE fetch_cache")


class Ledger:
    """The project's SQLite ledger.

    Parameters
    ----------
    path : str or Path, optional
        The database file; defaults to ``$RECONKIT_LEDGER`` or ``data/reconkit.sqlite3``.
        ``":memory:"`` keeps it in memory.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        if path is None:
            path = os.environ.get("RECONKIT_LEDGER") or DEFAULT_LEDGER_PATH
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30, isolation_level=None)
        with self._lock:
            if self.path != ":memory:":
                self._conn.execute("PRAGMA journal_mode=WAL")
                # WAL + NORMAL never corrupts; a power cut may lose the last commits, not the file.
                self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA busy_timeout=30000")
            _drop_unscoped_fetch_cache(self._conn)
            self._conn.executescript(_SCHEMA)

    def __repr__(self) -> str:
        return f"Ledger({self.path!r})"

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._conn.close()

    # --- credits ---------------------------------------------------------------------
    def record_intent(self, *, reference_code: str, transaction_id: str, amount: str, currency: str,
                      environment: str, merchant_id: str) -> None:
        """Write the intent row before a credit POST is sent (a reused reference code raises)."""
        now = _now()
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO credits (reference_code, transaction_id, amount, currency, environment, merchant_id,"
                " intent_at, outcome, updated_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (reference_code, transaction_id, amount, currency, environment, merchant_id, now, INTENT, now),
            )

    def record_outcome(self, reference_code: str, outcome: str, *, credit_id: str | None = None,
                       status: str | None = None, reconciliation_id: str | None = None,
                       raw: dict[str, Any] | None = None, error: str | None = None) -> None:
        """Write what came of a credit POST (or a later void) on its intent row."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE credits SET outcome=?, credit_id=COALESCE(?, credit_id), status=COALESCE(?, status),"
                " reconciliation_id=COALESCE(?, reconciliation_id), raw_json=COALESCE(?, raw_json), error=?,"
                " updated_at=? WHERE reference_code=?",
                (outcome, credit_id, status, reconciliation_id, None if raw is None else json.dumps(raw), error,
                 _now(), reference_code),
            )

    def update_status(self, credit_id: str, status: str) -> None:
        """Record a credit's new status (after a void or a fetch)."""
        with self._tx() as conn:
            conn.execute("UPDATE credits SET status=?, updated_at=? WHERE credit_id=?", (status, _now(), credit_id))

    def credits(self) -> pd.DataFrame:
        """Every credit this ledger saw issued, newest last, ids and amounts as text."""
        import pandas as pd

        with self._lock:
            cursor = self._conn.execute("SELECT * FROM credits ORDER BY intent_at, rowid")
            columns = [c[0] for c in cursor.description]
            rows = cursor.fetchall()
        frame = pd.DataFrame(rows, columns=columns, dtype="string")
        for col in ("intent_at", "updated_at"):
            frame[col] = pd.to_datetime(frame[col], utc=True, format="ISO8601")
        return frame

    # --- fetch cache -----------------------------------------------------------------
    # Entries are scoped by environment (the base URL) and merchant: one ledger file may serve
    # clients of several sandboxes, hosts and merchants, whose credit ids can coincide.
    def cache_put(self, entries: Iterable[tuple[str, dict[str, Any], str, str | None]], *, environment: str,
                  merchant_id: str) -> None:
        """Store fetched responses ``(credit_id, raw, source, status)`` with the time fetched, in one transaction."""
        now = _now()
        rows = [(environment, merchant_id, credit_id, status, json.dumps(raw), source, now)
                for credit_id, raw, source, status in entries]
        if not rows:
            return
        with self._tx() as conn:
            conn.executemany(
                "INSERT INTO fetch_cache (environment, merchant_id, credit_id, status, raw_json, source, fetched_at)"
                " VALUES (?,?,?,?,?,?,?) ON CONFLICT(environment, merchant_id, credit_id) DO UPDATE SET"
                " status=excluded.status, raw_json=excluded.raw_json, source=excluded.source,"
                " fetched_at=excluded.fetched_at",
                rows,
            )

    def cache_get_many(self, credit_ids: Iterable[str], *, environment: str, merchant_id: str,
                       final_statuses: Iterable[str], max_age: timedelta | None = None
                       ) -> dict[str, tuple[dict[str, Any], str]]:
        """Cached ``(raw, source)`` by credit id, for this environment and merchant only.

        Without ``max_age`` only entries whose status is one of ``final_statuses`` are returned
        (whatever their age); with it, every entry fetched less than ``max_age`` ago, and no other.
        """
        ids = list(credit_ids)
        final = {str(s).upper() for s in final_statuses}
        found: dict[str, tuple[dict[str, Any], str]] = {}
        oldest = None if max_age is None else (datetime.now(UTC) - max_age).isoformat(timespec="microseconds")
        with self._lock:
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                marks = ",".join("?" * len(chunk))
                query = ("SELECT credit_id, status, raw_json, source, fetched_at FROM fetch_cache"
                         f" WHERE environment=? AND merchant_id=? AND credit_id IN ({marks})")
                for credit_id, status, raw, source, fetched_at in self._conn.execute(
                        query, [environment, merchant_id, *chunk]):
                    fresh = (str(status or "").upper() in final) if oldest is None else fetched_at >= oldest
                    if fresh:
                        found[credit_id] = (json.loads(raw), source)
        return found

    def cache_forget(self, credit_id: str, *, environment: str, merchant_id: str) -> None:
        """Drop one credit's cached response (its status is about to change, e.g. by a void)."""
        with self._tx() as conn:
            conn.execute("DELETE FROM fetch_cache WHERE environment=? AND merchant_id=? AND credit_id=?",
                         (environment, merchant_id, credit_id))

    def cache_size(self) -> int:
        """How many responses the fetch cache holds (every environment and merchant)."""
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM fetch_cache").fetchone()[0])

    # --- reconciliation runs ---------------------------------------------------------
    def record_run(self, parameters: dict[str, Any], summary: dict[str, Any]) -> int:
        """Remember one reconciliation run; returns its id."""
        with self._tx() as conn:
            cursor = conn.execute(
                "INSERT INTO runs (started_at, parameters, summary) VALUES (?,?,?)",
                (_now(), json.dumps(parameters, default=str), json.dumps(summary, default=str)),
            )
            return int(cursor.lastrowid or 0)

    def runs(self) -> pd.DataFrame:
        """Every reconciliation run recorded, oldest first, parameters and counts as JSON text."""
        import pandas as pd

        with self._lock:
            rows = self._conn.execute("SELECT run_id, started_at, parameters, summary FROM runs ORDER BY run_id")
            frame = pd.DataFrame(rows.fetchall(), columns=["run_id", "started_at", "parameters", "summary"])
        frame["started_at"] = pd.to_datetime(frame["started_at"], utc=True, format="ISO8601")
        return frame
