"""The sandbox's stateful core: credits in SQLite, a controllable clock and the daily batch.

Everything here is deterministic from the seed and the order of requests.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import string
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from ..cards import card_type_for, luhn_ok
from ..databases import require_database
from ..money import CURRENCIES, minor_units
from .search_query import parse_query, parse_sort, sort_records

__all__ = ["TRIGGERS", "RejectedError", "SandboxState"]

# Amount triggers (the amount's exact value, any currency). Documented in `reconkit sandbox --help`.
TRIGGERS: dict[str, tuple[str, str, str]] = {
    "2005.00": ("decline", "PROCESSOR_DECLINED", "Decline - General decline of the card."),
    "2054.00": ("decline", "EXPIRED_CARD", "Decline - Expired card."),
    "3000.00": ("invalid", "INVALID_AMOUNT", "Declined - The request amount is invalid for this credit."),
    "5020.00": ("server", "SYSTEM_ERROR", "Error - General system failure."),
    "5040.00": ("timeout", "SERVER_TIMEOUT", "Error - The request was received but there was a server timeout."),
}
"""amount -> (behaviour, reason, message). ``timeout`` creates the credit and answers 502."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS credits (
    seq               INTEGER PRIMARY KEY,
    id                TEXT UNIQUE NOT NULL,
    status            TEXT NOT NULL,
    reference_code    TEXT,
    transaction_id    TEXT,
    amount            TEXT NOT NULL,
    currency          TEXT NOT NULL,
    reconciliation_id TEXT,
    created_at        TEXT NOT NULL,
    batch_id          TEXT,
    batch_date        TEXT,
    voided_at         TEXT,
    card_type         TEXT,
    card_suffix       TEXT,
    payment_method    TEXT,
    raw_json          TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_CARD_BRANDS = {"001": "Visa", "002": "MasterCard", "003": "AmericanExpress", "004": "Discover"}


class RejectedError(Exception):
    """A request the sandbox refuses, with its HTTP status and CyberSource body."""

    def __init__(self, http_status: int, body: dict[str, Any]) -> None:
        self.http_status = http_status
        self.body = body
        super().__init__(body.get("reason"))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _void_reference_code(body: Any, now: datetime) -> str | None:
    """The void request's ``clientReferenceInformation.code``, validated before anything changes."""
    reference = body.get("clientReferenceInformation") if isinstance(body, dict) else None
    if reference is None:
        return None
    field = "clientReferenceInformation"
    if isinstance(reference, dict):
        code = reference.get("code")
        if code is None or (isinstance(code, str) and len(code) <= 59):
            return code
        field += ".code"
    raise RejectedError(400, {"submitTimeUtc": _iso(now), "status": "INVALID_REQUEST", "reason": "INVALID_DATA",
                              "message": "Declined - One or more fields in the request contains invalid data",
                              "details": [{"field": field, "reason": "INVALID_DATA"}]})


@dataclass(frozen=True)
class _Clock:
    base: datetime
    ticking: bool
    started: float


class SandboxState:
    """Credits, clock and batches of one sandbox merchant.

    Parameters
    ----------
    db : str
        ``":memory:"`` or a file path (a restarted sandbox keeps its credits and clock).
    seed : int
    start : datetime, optional
        The clock's starting point. Given: the clock stands still until :meth:`advance`.
        Not given: it starts at the real time and ticks.
    merchant_id : str
    cutoff : datetime.time
        The daily batch cut-off, UTC.
    tss_delay : timedelta
        How long Transaction Details answers 404 after a credit's creation (sandbox time).
    search_lag : timedelta
        How long after its creation a credit stays out of transaction search results (sandbox
        time); 0, the default, finds it at once.
    id_salt : str
        Mixed into the id generator: processes sharing one database file pass different salts
        so that they never mint the same id (deterministic runs leave it empty).

    Attributes
    ----------
    instance : str
        This database's id (hex): stable across restarts of the same file, new for a copy or a
        database in memory. Clients key their ledger rows by it rather than by the port.
    """

    def __init__(self, db: str = ":memory:", *, seed: int = 0, start: datetime | None = None,
                 merchant_id: str = "reconkit_sandbox", cutoff: time = time(0, 0),
                 tss_delay: timedelta = timedelta(minutes=5), id_salt: str = "",
                 search_lag: timedelta = timedelta(0)) -> None:
        import time as _time

        self.seed = seed
        self.merchant_id = merchant_id
        self.cutoff = cutoff
        self.tss_delay = tss_delay
        self.search_lag = search_lag
        self._lock = threading.RLock()
        require_database(db, "sandbox")  # not a picture, not the ledger: refused before SQLite writes to it
        self._conn = sqlite3.connect(db, check_same_thread=False, isolation_level=None, timeout=30)
        self._conn.executescript(_SCHEMA)
        stored = dict(self._conn.execute("SELECT key, value FROM meta").fetchall())
        if "clock" in stored:
            base = datetime.fromisoformat(stored["clock"])
            ticking = stored.get("ticking") == "1"
        else:
            ticking = start is None
            base = (start or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
            self._save_clock(base, ticking)
        self._clock = _Clock(base, ticking, _time.monotonic())
        self._random = random.Random(f"{seed}:{self._count()}" + (f":{id_salt}" if id_salt else ""))
        self.instance = self._instance(db)

    def _instance(self, db: str) -> str:
        """A random id of this database, kept in it: the same file after a restart keeps it; a copy
        of a file that still exists elsewhere (a fresh copy of the sample) gets its own; a database
        in memory has a new one each time."""
        if db == ":memory:" or db.startswith("file::memory:"):
            return uuid.uuid4().hex
        here = os.path.realpath(db)
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                stored = dict(self._conn.execute(
                    "SELECT key, value FROM meta WHERE key IN ('instance', 'instance_path')").fetchall())
                instance, path = stored.get("instance"), stored.get("instance_path")
                copied = path is not None and path != here and os.path.exists(path)
                if instance is None or copied:
                    instance = uuid.uuid4().hex
                if (instance, here) != (stored.get("instance"), path):  # new, copied or moved
                    self._conn.execute("INSERT OR REPLACE INTO meta VALUES ('instance', ?)", (instance,))
                    self._conn.execute("INSERT OR REPLACE INTO meta VALUES ('instance_path', ?)", (here,))
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        return instance

    # --- clock -----------------------------------------------------------------------
    def _save_clock(self, base: datetime, ticking: bool) -> None:
        self._conn.execute("INSERT OR REPLACE INTO meta VALUES ('clock', ?)", (base.isoformat(),))
        self._conn.execute("INSERT OR REPLACE INTO meta VALUES ('ticking', ?)", ("1" if ticking else "0",))

    def now(self) -> datetime:
        """The sandbox's current time (UTC)."""
        import time as _time

        clock = self._clock
        if clock.ticking:
            return clock.base + timedelta(seconds=int(_time.monotonic() - clock.started))
        return clock.base

    def advance(self, delta: timedelta) -> list[str]:
        """Move the clock forward and run every batch cut-off passed; returns the batch ids run."""
        import time as _time

        if delta < timedelta(0):
            raise ValueError("the sandbox clock only moves forward")
        with self._lock:
            before = self.now()
            after = before + delta
            self._clock = _Clock(after, self._clock.ticking, _time.monotonic())
            self._save_clock(after, self._clock.ticking)
            return self._run_batches(before, after)

    def resume_real_time(self) -> list[str]:
        """Catch the clock up with the wall clock (running the cut-offs passed) and let it tick.

        For a sandbox kept in a file for people rather than tests: credits issued today get
        today's time. Returns the batch ids run while catching up.
        """
        import time as _time

        with self._lock:
            lag = datetime.now(UTC).replace(microsecond=0) - self.now()
            batches = self.advance(lag) if lag > timedelta(0) else []
            self._clock = _Clock(self.now(), True, _time.monotonic())
            self._save_clock(self._clock.base, True)
            return batches

    def _run_batches(self, before: datetime, after: datetime) -> list[str]:
        batches = []
        day = before.date()
        while True:
            cut = datetime.combine(day, self.cutoff, tzinfo=UTC)
            if cut > after:
                break
            if cut > before:
                batches.append(self._batch(cut))
            day += timedelta(days=1)
        return [b for b in batches if b]

    def _batch(self, cut: datetime) -> str:
        batch_date = (cut - timedelta(seconds=1)).date()
        batch_id = f"{batch_date:%y%m%d}{self.seed % 100:02d}01"
        with self._lock:
            cursor = self._conn.execute(
                "UPDATE credits SET batch_id=?, batch_date=?, status='TRANSMITTED' "
                "WHERE status='PENDING' AND batch_id IS NULL AND created_at < ?",
                (batch_id, batch_date.isoformat(), cut.isoformat()))
        return batch_id if cursor.rowcount else ""

    # --- credits ---------------------------------------------------------------------
    def _count(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM credits").fetchone()[0])

    def _new_ids(self, moment: datetime) -> tuple[str, str]:
        epoch = f"{moment.timestamp():.1f}".replace(".", "")
        prefix = epoch[1:11] if len(epoch) > 10 else epoch.zfill(10)
        rng = self._random
        request_id = prefix + "".join(rng.choice(string.digits) for _ in range(22 - len(prefix)))
        recon = "".join(rng.choice(string.digits) for _ in range(8)) + "".join(
            rng.choice(string.ascii_uppercase + string.digits) for _ in range(8))
        return request_id, recon

    def create_credit(self, body: dict[str, Any]) -> tuple[int, dict[str, Any], str | None]:
        """Validate and process a credit request.

        Returns ``(http_status, response_body, trigger)``; raises :class:`RejectedError` for a 400.
        """
        details: list[dict[str, str]] = []

        def get(*path: str) -> Any:
            node: Any = body
            for key in path:
                node = node.get(key) if isinstance(node, dict) else None
            return node

        amount_text = get("orderInformation", "amountDetails", "totalAmount")
        currency = get("orderInformation", "amountDetails", "currency")
        if amount_text in (None, ""):
            details.append({"field": "orderInformation.amountDetails.totalAmount", "reason": "MISSING_FIELD"})
        if currency in (None, ""):
            details.append({"field": "orderInformation.amountDetails.currency", "reason": "MISSING_FIELD"})
        elif not isinstance(currency, str) or currency.upper() not in CURRENCIES:
            details.append({"field": "orderInformation.amountDetails.currency", "reason": "INVALID_DATA"})
        amount: Decimal | None = None
        if amount_text not in (None, ""):
            try:
                amount = Decimal(str(amount_text))
                if not amount.is_finite() or amount <= 0 or amount >= Decimal("1000000000"):
                    raise InvalidOperation
                if isinstance(currency, str) and currency.upper() in CURRENCIES:
                    digits = minor_units(currency)
                    if amount != amount.quantize(Decimal(1).scaleb(-digits)):
                        raise InvalidOperation
            except (InvalidOperation, ValueError):
                details.append({"field": "orderInformation.amountDetails.totalAmount", "reason": "INVALID_DATA"})
        payment = get("paymentInformation") or {}
        for name in ("orderInformation", "paymentInformation", "clientReferenceInformation"):
            if name in body and not isinstance(body[name], dict):
                details.append({"field": name, "reason": "INVALID_DATA"})
        if not isinstance(payment, dict):
            payment = {}
        number = str(get("paymentInformation", "card", "number") or "")
        tokens = [name for name in ("instrumentIdentifier", "paymentInstrument", "customer")
                  if isinstance(payment.get(name), dict) and payment[name].get("id")]
        reason = "INVALID_DATA"
        if not number and not tokens:
            details.append({"field": "paymentInformation.card.number", "reason": "MISSING_FIELD"})
        if number:
            if not (number.isdigit() and 12 <= len(number) <= 19 and luhn_ok(number)):
                details.append({"field": "paymentInformation.card.number", "reason": "INVALID_DATA"})
                reason = "INVALID_CARD"
            for part in ("expirationMonth", "expirationYear"):
                if not get("paymentInformation", "card", part):
                    details.append({"field": f"paymentInformation.card.{part}", "reason": "MISSING_FIELD"})
        code = get("clientReferenceInformation", "code")
        if code is not None and (not isinstance(code, str) or len(code) > 59):
            details.append({"field": "clientReferenceInformation.code", "reason": "INVALID_DATA"})
        transaction_id = get("clientReferenceInformation", "transactionId")
        if transaction_id is not None and (not isinstance(transaction_id, str) or len(transaction_id) > 30):
            details.append({"field": "clientReferenceInformation.transactionId", "reason": "INVALID_DATA"})
        now = self.now()
        if details:
            if any(d["reason"] == "MISSING_FIELD" for d in details) and reason != "INVALID_CARD":
                reason = "MISSING_FIELD"
            raise RejectedError(400, {"submitTimeUtc": _iso(now), "status": "INVALID_REQUEST", "reason": reason,
                                  "message": "Declined - The request is missing one or more fields"
                                  if reason == "MISSING_FIELD" else "Declined - One or more fields in the request "
                                  "contains invalid data", "details": details})
        assert amount is not None and isinstance(currency, str)
        currency = currency.upper()
        amount_key = f"{amount:.2f}"
        trigger = TRIGGERS.get(amount_key)
        if trigger and trigger[0] == "invalid":
            raise RejectedError(400, {"submitTimeUtc": _iso(now), "status": "INVALID_REQUEST", "reason": trigger[1],
                                  "message": trigger[2], "details": [
                                      {"field": "orderInformation.amountDetails.totalAmount",
                                       "reason": "INVALID_DATA"}]})
        if trigger and trigger[0] == "server":
            return 502, {"submitTimeUtc": _iso(now), "status": "SERVER_ERROR", "reason": trigger[1],
                         "message": trigger[2]}, "server"
        with self._lock:
            if transaction_id:
                since = (now - timedelta(minutes=15)).isoformat()
                dup = self._conn.execute("SELECT id FROM credits WHERE transaction_id=? AND created_at>=?",
                                         (transaction_id, since)).fetchone()
                if dup:
                    raise RejectedError(400, {"submitTimeUtc": _iso(now), "status": "INVALID_REQUEST",
                                          "reason": "DUPLICATE_REQUEST",
                                          "message": "Declined - The merchant reference code or transaction id "
                                                     "was used in the last 15 minutes"})
            request_id, recon = self._new_ids(now)
            card_type = str(get("paymentInformation", "card", "type") or (card_type_for(number) if number else "001"))
            suffix = number[-4:] if number else None
            response: dict[str, Any] = {
                "_links": {"void": {"method": "POST", "href": f"/pts/v2/credits/{request_id}/voids"},
                           "self": {"method": "GET", "href": f"/pts/v2/credits/{request_id}"}},
                "clientReferenceInformation": {"code": code} if code else {},
                "creditAmountDetails": {"currency": currency, "creditAmount": str(amount_text)},
                "id": request_id,
                "orderInformation": {"amountDetails": {"currency": currency}},
                "paymentAccountInformation": {"card": {"type": card_type, **({"suffix": suffix} if suffix else {})}},
                "paymentInformation": {"card": {"type": card_type}},
                "processorInformation": {"paymentAccountReferenceNumber": "V001" + request_id[:25].ljust(25, "0"),
                                         "approvalCode": "888888", "responseCode": "100"},
                "reconciliationId": recon,
                "status": "PENDING",
                "submitTimeUtc": _iso(now),
            }
            if not response["clientReferenceInformation"]:
                del response["clientReferenceInformation"]
            if tokens:
                for name in tokens:
                    response["paymentInformation"][name] = {"id": payment[name]["id"]}
                if "instrumentIdentifier" in tokens:
                    response["paymentInformation"]["instrumentIdentifier"]["state"] = "ACTIVE"
                    response["paymentInformation"]["tokenizedCard"] = {"type": card_type}
            status = "PENDING"
            if trigger and trigger[0] == "decline":
                status = "DECLINED"
                response["status"] = "DECLINED"
                response["errorInformation"] = {"reason": trigger[1], "message": trigger[2]}
                response["processorInformation"] = {"responseCode": "203"}
                del response["_links"]["void"]
            self._conn.execute(
                "INSERT INTO credits (id, status, reference_code, transaction_id, amount, currency, "
                "reconciliation_id, created_at, card_type, card_suffix, payment_method, raw_json) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (request_id, status, code, transaction_id, str(amount_text), currency, recon, now.isoformat(),
                 card_type, suffix, _CARD_BRANDS.get(card_type, "Visa"), json.dumps(response)))
        if trigger and trigger[0] == "timeout":
            return 502, {"id": request_id, "submitTimeUtc": _iso(now), "status": "SERVER_ERROR",
                         "reason": trigger[1], "message": trigger[2]}, "timeout"
        return 201, response, None

    def _row(self, credit_id: str) -> dict[str, Any] | None:
        cursor = self._conn.execute("SELECT * FROM credits WHERE id=?", (credit_id,))
        row = cursor.fetchone()
        if row is None:
            return None
        return dict(zip([c[0] for c in cursor.description], row, strict=True))

    def get_credit(self, credit_id: str) -> dict[str, Any] | None:
        """The credit's resource as the self link shows it (current status)."""
        with self._lock:
            row = self._row(credit_id)
        if row is None:
            return None
        raw = json.loads(row["raw_json"])
        raw["status"] = "VOIDED" if row["status"] == "VOIDED" else raw["status"]
        if row["status"] == "VOIDED":
            raw["_links"].pop("void", None)
        return raw

    def transaction_details(self, credit_id: str) -> dict[str, Any] | None:
        """The Transaction Details (TSS) shape, or None while the credit is unknown or too young."""
        with self._lock:
            row = self._row(credit_id)
        if row is None or datetime.fromisoformat(row["created_at"]) + self.tss_delay > self.now():
            return None
        return self._tss_shape(row)

    def _tss_shape(self, row: dict[str, Any]) -> dict[str, Any]:
        raw = json.loads(row["raw_json"])
        declined = row["status"] == "DECLINED"
        app_status = {"PENDING": "PENDING", "TRANSMITTED": "TRANSMITTED", "VOIDED": "VOIDED",
                      "DECLINED": "DECLINED"}[row["status"]]
        application = {"name": "ics_credit", "reasonCode": "233" if declined else "100",
                       "rCode": "0" if declined else "1", "rFlag": "DCARDREFUSED" if declined else "SOK",
                       "reconciliationId": row["reconciliation_id"], "status": app_status,
                       "rMessage": raw.get("errorInformation", {}).get("message",
                                                                       "Request was processed successfully.")}
        applications = [application]
        if row["status"] == "VOIDED":
            applications.append({"name": "ics_void", "reasonCode": "100", "rCode": "1", "rFlag": "SOK",
                                 "rMessage": "Request was processed successfully."})
        body: dict[str, Any] = {
            "id": row["id"],
            "rootId": row["id"],
            "reconciliationId": row["reconciliation_id"],
            "merchantId": self.merchant_id,
            "submitTimeUTC": raw["submitTimeUtc"],
            "applicationInformation": {"status": app_status, "reasonCode": application["reasonCode"],
                                       "rCode": application["rCode"], "rFlag": application["rFlag"],
                                       "applications": applications},
            "orderInformation": {"amountDetails": {"totalAmount": row["amount"], "currency": row["currency"]}},
            "paymentInformation": {"paymentType": {"name": "smartpay", "type": "credit card", "method": "VI"},
                                   "card": {"type": row["card_type"],
                                            **({"suffix": row["card_suffix"]} if row["card_suffix"] else {})}},
            "processorInformation": {"processor": {"name": "smartfdc"},
                                     **{k: v for k, v in raw.get("processorInformation", {}).items()
                                        if k in ("approvalCode", "responseCode")}},
            "_links": {"self": {"href": f"/tss/v2/transactions/{row['id']}", "method": "GET"}},
        }
        if row["reference_code"]:
            body["clientReferenceInformation"] = {"code": row["reference_code"]}
        for name in ("instrumentIdentifier", "paymentInstrument", "customer"):
            if name in raw.get("paymentInformation", {}):
                body["paymentInformation"][name] = {"id": raw["paymentInformation"][name]["id"]}
        if "errorInformation" in raw:
            body["errorInformation"] = raw["errorInformation"]
        return body

    def void_credit(self, credit_id: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """Void a PENDING credit; None if unknown; raises :class:`RejectedError` if not voidable."""
        now = self.now()
        code = _void_reference_code(body, now)
        with self._lock:
            row = self._row(credit_id)
            if row is None:
                return None
            if row["status"] != "PENDING":
                raise RejectedError(400, {"submitTimeUtc": _iso(now), "status": "INVALID_REQUEST",
                                      "reason": "NOT_VOIDABLE",
                                      "message": f"Declined - The credit is {row['status'].lower()} and can no "
                                                 "longer be voided"})
            self._conn.execute("UPDATE credits SET status='VOIDED', voided_at=? WHERE id=?",
                               (now.isoformat(), credit_id))
            void_id, _ = self._new_ids(now)
        return {
            "_links": {"self": {"method": "GET", "href": f"/pts/v2/voids/{void_id}"}},
            **({"clientReferenceInformation": {"code": code}} if code else {}),
            "id": void_id,
            "status": "VOIDED",
            "submitTimeUtc": _iso(now),
            "voidAmountDetails": {"currency": row["currency"], "voidAmount": row["amount"],
                                  "originalTransactionAmount": row["amount"]},
        }

    def search(self, query: str, *, limit: int = 20, offset: int = 0, sort: str | None = None,
               zone: tzinfo = UTC) -> tuple[int, list[dict[str, Any]]]:
        """Transaction Search: the documented query syntax (see :mod:`.search_query`), sorted and paged.

        Returns
        -------
        tuple of (int, list of dict)
            The number of matches in all (``totalCount``) and the page's transaction summaries.

        Raises
        ------
        FieldError
            ``query`` or ``sort`` cannot be parsed (the message names the position).
        """
        matches = parse_query(query, self.now(), zone)
        keys = parse_sort(sort) if sort and sort.strip() else [("submitTimeUtc", True)]
        with self._lock:
            cursor = self._conn.execute("SELECT * FROM credits ORDER BY seq DESC")
            names = [c[0] for c in cursor.description]
            rows = [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
        records = []
        indexed_by = self.now() - self.search_lag
        for row in rows:
            if datetime.fromisoformat(row["created_at"]) > indexed_by:
                continue  # not indexed yet: the search lags creation as Transaction Details does
            raw = json.loads(row["raw_json"])
            record = {"id": row["id"], "reconciliationId": row["reconciliation_id"],
                      "clientReferenceInformation.code": row["reference_code"], "merchantId": self.merchant_id,
                      "submitTimeUtc": datetime.strptime(raw["submitTimeUtc"], "%Y-%m-%dT%H:%M:%SZ").replace(
                          tzinfo=UTC),
                      "orderInformation.amountDetails.totalAmount": Decimal(row["amount"]),
                      "orderInformation.amountDetails.currency": row["currency"],
                      "paymentInformation.card.suffix": row["card_suffix"], "_row": row}
            if matches(record):
                records.append(record)
        page = sort_records(records, keys)[offset:offset + limit]
        summaries = []
        for record in page:
            row = record["_row"]
            tss = self._tss_shape(row)
            summaries.append({
                "id": row["id"], "submitTimeUtc": tss["submitTimeUTC"], "merchantId": self.merchant_id,
                "applicationInformation": tss["applicationInformation"],
                "clientReferenceInformation": tss.get("clientReferenceInformation", {}),
                "orderInformation": tss["orderInformation"], "paymentInformation": tss["paymentInformation"],
                "processorInformation": tss["processorInformation"],
                "_links": {"transactionDetail": {"href": f"/tss/v2/transactions/{row['id']}", "method": "GET"}},
            })
        return len(records), summaries

    def credits(self) -> list[dict[str, Any]]:
        """Every credit with its lifecycle columns (status, batch, void), oldest first."""
        with self._lock:
            cursor = self._conn.execute("SELECT * FROM credits ORDER BY seq")
            names = [c[0] for c in cursor.description]
            return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]

    def batch_dates(self) -> list[date]:
        """The dates that have a batch."""
        with self._lock:
            rows = self._conn.execute("SELECT DISTINCT batch_date FROM credits WHERE batch_date IS NOT NULL")
            return sorted(date.fromisoformat(r[0]) for r in rows)

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._conn.close()
