"""The SQLite ledger: credits issued (intent before the POST, outcome after), the fetch cache
and reconciliation runs.

One file, safe for concurrent writers of one process (a lock around one connection) and for
other processes (WAL and a busy timeout).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import socket
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .databases import require_database
from .errors import DuplicateReferenceError, UnresolvedVoidError

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
CREATE TABLE IF NOT EXISTS voids (
    environment    TEXT NOT NULL,
    merchant_id    TEXT NOT NULL,
    credit_id      TEXT NOT NULL,
    reference_code TEXT,
    sent_at        TEXT NOT NULL,
    outcome        TEXT NOT NULL,
    status         TEXT,
    error          TEXT,
    updated_at     TEXT NOT NULL,
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
NOT_CREATED = "not_created"
"""An unknown outcome looked up after the Transaction Details delay with no match."""
# Outcomes of a void POST (with REJECTED, UNKNOWN and NOT_SENT above).
VOIDED = "voided"
NOT_VOIDED = "not_voided"
"""An unknown void looked up after the lookup delay with the credit still not VOIDED."""

# Added to the credits table after its first release (ALTER TABLE keeps old ledger files working).
_CREDIT_COLUMNS = {"instrument_key": "TEXT", "owner": "TEXT"}
_HOST = socket.gethostname()
_PROCESS = f"{_HOST}|{os.getpid()}|{uuid.uuid4().hex}"
"""Who wrote an intent: host, pid and a token unique to this process (pids are reused)."""


def _owner_alive(owner: str | None) -> bool:
    """Whether the process that wrote an intent may still be waiting for its answer."""
    host, _, rest = (owner or "").partition("|")
    pid_text, _, token = rest.partition("|")
    if owner == _PROCESS:
        return True
    if host != _HOST or not pid_text.isdigit():
        return True  # another machine: only age tells
    if int(pid_text) == os.getpid():
        return False  # our pid, another token: an earlier process with a reused pid
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return bool(token)


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
        # A picture or a sandbox's database given as the ledger is refused before SQLite touches it.
        require_database(self.path, "ledger")
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
            # Each step that looks before it changes the schema is one transaction: two processes
            # opening a new or old ledger file at once must not both alter it.
            with self._tx() as conn:
                _drop_unscoped_fetch_cache(conn)
            self._conn.executescript(_SCHEMA)
            with self._tx():
                self._add_credit_columns()

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
    def _add_credit_columns(self) -> None:
        have = {row[1] for row in self._conn.execute("PRAGMA table_info(credits)")}
        for name, kind in _CREDIT_COLUMNS.items():
            if name not in have:
                self._conn.execute(f"ALTER TABLE credits ADD COLUMN {name} {kind}")
        self._conn.execute("CREATE TABLE IF NOT EXISTS ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._conn.execute("INSERT OR IGNORE INTO ledger_meta VALUES ('instrument_salt', ?)", (secrets.token_hex(16),))
        self._salt = bytes.fromhex(
            self._conn.execute("SELECT value FROM ledger_meta WHERE key='instrument_salt'").fetchone()[0])

    def instrument_key(self, instrument: str) -> str:
        """A keyed hash of a payment instrument (card number or token): equal instruments get equal
        keys in this ledger, and the ledger never holds the number itself."""
        return hmac.new(self._salt, instrument.encode("utf-8"), hashlib.sha256).hexdigest()[:32]

    def record_intent(self, *, reference_code: str, transaction_id: str, amount: str, currency: str,
                      environment: str, merchant_id: str, instrument: str | None = None,
                      at: datetime | None = None) -> None:
        """Write the intent row before a credit POST is sent.

        Raises
        ------
        DuplicateReferenceError
            The reference code already names a credit in this ledger (the earlier one is named).
        """
        now = _now()
        when = now if at is None else at.astimezone(UTC).isoformat(timespec="microseconds")
        key = None if instrument is None else self.instrument_key(instrument)
        with self._tx() as conn:
            earlier = conn.execute("SELECT credit_id, outcome, amount, currency FROM credits WHERE reference_code=?",
                                   (reference_code,)).fetchone()
            if earlier is None:
                conn.execute(
                    "INSERT INTO credits (reference_code, transaction_id, amount, currency, environment, merchant_id,"
                    " intent_at, outcome, updated_at, instrument_key, owner) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (reference_code, transaction_id, amount, currency, environment, merchant_id, when, INTENT, now,
                     key, _PROCESS),
                )
        if earlier is not None:
            credit_id, outcome, earlier_amount, earlier_currency = earlier
            raise DuplicateReferenceError(reference_code, credit_id=credit_id, outcome=outcome,
                                          amount=earlier_amount, currency=earlier_currency)

    def record_outcome(self, reference_code: str, outcome: str, *, credit_id: str | None = None,
                       status: str | None = None, reconciliation_id: str | None = None,
                       raw: dict[str, Any] | None = None, error: str | None = None) -> None:
        """Write what came of a credit POST (or a later void or lookup) on its intent row."""
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

    def _rows(self, where: str, values: tuple[Any, ...]) -> list[dict[str, Any]]:
        with self._lock:
            cursor = self._conn.execute(f"SELECT * FROM credits WHERE {where} ORDER BY intent_at, rowid", values)
            names = [c[0] for c in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def credit(self, reference_code: str) -> dict[str, Any] | None:
        """The ledger row of one reference code, or None."""
        rows = self._rows("reference_code=?", (reference_code,))
        return rows[0] if rows else None

    def credit_by_id(self, credit_id: str, *, environment: str, merchant_id: str) -> dict[str, Any] | None:
        """The ledger row of the credit this ledger's client created with id ``credit_id`` in one
        environment and merchant (the latest if several), or None."""
        rows = self._rows("credit_id=? AND environment=? AND merchant_id=?", (credit_id, environment, merchant_id))
        return rows[-1] if rows else None

    def unknown_outcomes(self, environment: str, merchant_id: str) -> list[dict[str, Any]]:
        """Rows of one environment and merchant whose outcome is unknown, oldest first."""
        return self._rows("outcome=? AND environment=? AND merchant_id=?", (UNKNOWN, environment, merchant_id))

    def recent_to_instrument(self, instrument: str, amount: str, currency: str, since: datetime
                             ) -> list[dict[str, Any]]:
        """Credits of ``amount currency`` to ``instrument`` whose intent is at or after ``since`` and
        that may have moved money (not rejected, declined, not sent or not created), newest first."""
        rows = self._rows(
            "instrument_key=? AND amount=? AND currency=? AND intent_at>=? AND outcome IN (?,?,?)",
            (self.instrument_key(instrument), amount, currency,
             since.astimezone(UTC).isoformat(timespec="microseconds"), INTENT, CREATED, UNKNOWN))
        return rows[::-1]

    def mark_abandoned_intents(self, *, older_than: timedelta = timedelta(hours=1)) -> list[str]:
        """Turn intents whose writer is gone into unknown outcomes; returns their reference codes.

        An intent row is written before a POST and updated when its answer comes; one still an
        intent whose process has died (same host), or older than ``older_than`` (any host), was
        sent or not: nobody knows. It must be looked up, like any unknown outcome.
        """
        oldest = (datetime.now(UTC) - older_than).isoformat(timespec="microseconds")
        stale = [row["reference_code"] for row in self._rows("outcome=?", (INTENT,))
                 if row["updated_at"] < oldest or not _owner_alive(row["owner"])]
        for reference in stale:
            with self._tx() as conn:
                conn.execute(
                    "UPDATE credits SET outcome=?, error=?, updated_at=? WHERE reference_code=? AND outcome=?",
                    (UNKNOWN, "the process that sent this credit stopped before its answer was recorded; "
                              "look it up before issuing it again", _now(), reference, INTENT))
        return stale

    def credits(self, *, environment: str | None = None, merchant_id: str | None = None) -> pd.DataFrame:
        """Every credit this ledger saw issued (of one environment and merchant when given), newest
        last, ids and amounts as text; a value not known (a status before the answer) is ``<NA>``.

        Parameters
        ----------
        environment : str, optional
            A :attr:`Config.ledger_environment <reconkit.Config.ledger_environment>`.
        merchant_id : str, optional
        """
        import pandas as pd

        where, values = [], []
        for column, value in (("environment", environment), ("merchant_id", merchant_id)):
            if value is not None:
                where.append(f"{column}=?")
                values.append(value)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        with self._lock:
            cursor = self._conn.execute(f"SELECT * FROM credits{clause} ORDER BY intent_at, rowid", values)
            columns = [c[0] for c in cursor.description]
            rows = cursor.fetchall()
        frame = pd.DataFrame(rows, columns=columns, dtype="string")
        for col in ("intent_at", "updated_at"):
            frame[col] = pd.to_datetime(frame[col], utc=True, format="ISO8601")
        return frame

    def adopt(self, environment: str, merchant_id: str, *, legacy: Callable[[str], bool],
              holds: Callable[[str | None, str | None], bool]) -> int:
        """File rows written under an older environment text of the same server under ``environment``.

        Earlier versions keyed the embedded sandbox by its address, whose port changes with every
        start; its credits and voids then vanished from every view. A credit row of
        ``merchant_id`` moves when ``legacy(its environment)`` and ``holds(credit_id,
        reference_code)`` (the server holds it: the proof that it is this server's); a void row
        when ``holds(credit_id, None)``. The fetch cache is not moved: an address proves no
        database, and an entry is better fetched again than served from another one.

        Returns
        -------
        int
            How many credit and void rows moved.
        """
        with self._lock:
            credits = self._conn.execute(
                "SELECT reference_code, credit_id, environment FROM credits WHERE merchant_id=? AND environment<>?",
                (merchant_id, environment)).fetchall()
            voids = self._conn.execute(
                "SELECT credit_id, environment FROM voids WHERE merchant_id=? AND environment<>?",
                (merchant_id, environment)).fetchall()
        moved_credits = [(reference,) for reference, credit_id, env in credits
                         if legacy(env) and holds(credit_id, reference)]
        moved_voids = [(env, credit_id) for credit_id, env in voids if legacy(env) and holds(credit_id, None)]
        if not moved_credits and not moved_voids:
            return 0
        with self._tx() as conn:
            conn.executemany("UPDATE credits SET environment=? WHERE reference_code=?",
                             [(environment, reference) for (reference,) in moved_credits])
            # A newer row of the same credit under the new key wins; the old one stays where it was.
            conn.executemany("UPDATE OR IGNORE voids SET environment=? WHERE environment=? AND merchant_id=?"
                             " AND credit_id=?", [(environment, env, merchant_id, cid) for env, cid in moved_voids])
        return len(moved_credits) + len(moved_voids)

    # --- voids ----------------------------------------------------------------------
    # One row per credit and scope: the last void sent for it and what came of it.
    def begin_void(self, credit_id: str, *, reference_code: str, sent_at: datetime, environment: str,
                   merchant_id: str) -> None:
        """Write a void of ``credit_id`` with an unknown outcome before it is sent, replacing the
        credit's earlier row; :meth:`record_void` says what came of it.

        Written first, a void whose process dies on the wire stays unknown and is never resent
        blindly; refusing and writing in one transaction keeps two senders from both sending.

        Raises
        ------
        UnresolvedVoidError
            An earlier void of ``credit_id`` still has an unknown outcome (nothing is written).
        """
        now = _now()
        with self._tx() as conn:
            earlier = conn.execute(
                "SELECT sent_at FROM voids WHERE environment=? AND merchant_id=? AND credit_id=? AND outcome=?",
                (environment, merchant_id, credit_id, UNKNOWN)).fetchone()
            if earlier is None:
                conn.execute(
                    "INSERT OR REPLACE INTO voids (environment, merchant_id, credit_id, reference_code, sent_at,"
                    " outcome, status, error, updated_at) VALUES (?,?,?,?,?,?,NULL,NULL,?)",
                    (environment, merchant_id, credit_id, reference_code,
                     sent_at.astimezone(UTC).isoformat(timespec="microseconds"), UNKNOWN, now))
        if earlier is not None:
            raise UnresolvedVoidError(credit_id, sent_at=earlier[0])

    def record_void(self, credit_id: str, outcome: str, *, environment: str, merchant_id: str,
                    status: str | None = None, error: str | None = None) -> None:
        """Write what came of the void :meth:`begin_void` wrote for ``credit_id`` (or of its lookup)."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE voids SET outcome=?, status=COALESCE(?, status), error=?, updated_at=?"
                " WHERE environment=? AND merchant_id=? AND credit_id=?",
                (outcome, status, error, _now(), environment, merchant_id, credit_id))

    def _void_rows(self, where: str, values: tuple[Any, ...]) -> list[dict[str, Any]]:
        with self._lock:
            cursor = self._conn.execute(f"SELECT * FROM voids WHERE {where} ORDER BY sent_at, rowid", values)
            names = [c[0] for c in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def void(self, credit_id: str, *, environment: str, merchant_id: str) -> dict[str, Any] | None:
        """The last void sent for ``credit_id`` in this environment and merchant, or None."""
        rows = self._void_rows("environment=? AND merchant_id=? AND credit_id=?", (environment, merchant_id, credit_id))
        return rows[0] if rows else None

    def unknown_voids(self, environment: str, merchant_id: str) -> list[dict[str, Any]]:
        """Voids of one environment and merchant whose outcome is unknown, oldest first."""
        return self._void_rows("outcome=? AND environment=? AND merchant_id=?", (UNKNOWN, environment, merchant_id))

    def refuse_unresolved_void(self, credit_id: str, *, environment: str, merchant_id: str) -> None:
        """Raise when an earlier void of ``credit_id`` still has an unknown outcome.

        Raises
        ------
        UnresolvedVoidError
            Naming the credit and when its void was sent.
        """
        row = self.void(credit_id, environment=environment, merchant_id=merchant_id)
        if row is not None and row["outcome"] == UNKNOWN:
            raise UnresolvedVoidError(credit_id, sent_at=row["sent_at"])

    # --- fetch cache -----------------------------------------------------------------
    # Entries are scoped by environment (Config.ledger_environment: the host, or a sandbox's database,
    # never a port) and merchant: one ledger file may serve clients of several sandboxes, hosts and
    # merchants, whose credit ids can coincide.
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
