"""The break workflow: breaks carried from run to run, with status, owner, notes, sign-off and aging.

A break keeps one identity across runs: ``credit:<credit id>`` for a credit's break, and for a
settlement row that belongs to no credit a key that does not depend on the file it came in
(request id, else reconciliation id, then amount, currency and batch date). Every change is an
event appended to a log in the ledger's SQLite file; the current state of a break is the fold
of its events (:func:`replay`), stored beside the log in the same transaction.

Statuses::

    open ──assign──> investigating ──resolve(reason)──> resolved / written_off / timing_difference
      ^                                                          │
      └──────────────────────── reopen(why) ─────────────────────┘      sign_off: by someone else

A later run that matches a break closes it by itself (actor ``reconkit``): a
``MISSING_PENDING`` credit that settled becomes a ``timing_difference`` with reason
``SETTLED``.
"""

from __future__ import annotations

import dataclasses
import getpass
import hashlib
import io
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .breakbook_store import BreakStore, Event, RunRow
from .errors import BreakBookError, BreakConflictError
from .money import CURRENCIES
from .outcomes import BREAKS

if TYPE_CHECKING:
    from .ledger import Ledger

__all__ = ["AGE_BUCKETS", "AUTOMATIC_REASONS", "SEVERAL_DAYS", "SEVERAL_ROWS", "SYSTEM", "Break", "BreakBook",
           "BreakDiff", "Note", "Reason", "Status", "age_bucket", "current_analyst", "replay", "settlement_key",
           "settlement_keys"]

SYSTEM = "reconkit"
"""The actor of changes a run makes by itself (opening, changing and clearing breaks)."""

SEVERAL_DAYS = "several days: see the break book"
"""The status shown, in a break frame without batch dates, for an unexpected row whose request
id, amount and currency the book holds from several batch dates in different states (see
:meth:`BreakBook.workflow`)."""

SEVERAL_ROWS = "several identical rows: see the break book"
"""The status shown for an unexpected row of which the book holds identical copies (same ids,
amount, currency and batch date) in different states (see :meth:`BreakBook.workflow`)."""


class Status(StrEnum):
    """Where a break stands."""

    OPEN = "open"
    INVESTIGATING = "investigating"
    RESOLVED = "resolved"
    WRITTEN_OFF = "written_off"
    TIMING_DIFFERENCE = "timing_difference"


CLOSED = frozenset({Status.RESOLVED.value, Status.WRITTEN_OFF.value, Status.TIMING_DIFFERENCE.value})
"""Statuses that end the work on a break (until it is reopened)."""


class Reason(StrEnum):
    """Resolution reason codes; the first five are set by a run itself."""

    SETTLED = "SETTLED"
    """A missing credit appeared in settlement within the grace period."""
    SETTLED_LATE = "SETTLED_LATE"
    """A missing credit appeared in settlement after the grace period."""
    MATCHED_LATER = "MATCHED_LATER"
    """Later data matched it (a corrected amount, a credit now known)."""
    NO_SETTLEMENT_EXPECTED = "NO_SETTLEMENT_EXPECTED"
    """The credit was voided or declined: its absence is now correct."""
    CARRIED_BY_CREDIT = "CARRIED_BY_CREDIT"
    """An unexpected settlement row now belongs to a known credit, whose break carries it."""
    PROCESSOR_CORRECTED = "PROCESSOR_CORRECTED"
    REFUND_REISSUED = "REFUND_REISSUED"
    DUPLICATE_RECOVERED = "DUPLICATE_RECOVERED"
    CUSTOMER_CONFIRMED = "CUSTOMER_CONFIRMED"
    FALSE_BREAK = "FALSE_BREAK"
    """The data were wrong, no money was at risk."""
    WRITE_OFF = "WRITE_OFF"
    TIMING = "TIMING"
    OTHER = "OTHER"
    """Needs a note saying what."""


AUTOMATIC_REASONS = frozenset({Reason.SETTLED, Reason.SETTLED_LATE, Reason.MATCHED_LATER,
                               Reason.NO_SETTLEMENT_EXPECTED, Reason.CARRIED_BY_CREDIT})
"""Reasons a run sets by itself when later data clear a break."""

AGE_BUCKETS = ("0–2", "3–7", "8–30", ">30")
"""Aging buckets, in whole days: 0–2, 3–7, 8–30, over 30."""

TIMING_OUTCOMES = frozenset({"MISSING_PENDING"})
"""Outcomes that are a timing difference (still within the grace period), not yet a real break."""


def age_bucket(days: int) -> str:
    """The aging bucket of a whole number of days (negative ages count as 0)."""
    if days <= 2:
        return AGE_BUCKETS[0]
    if days <= 7:
        return AGE_BUCKETS[1]
    if days <= 30:
        return AGE_BUCKETS[2]
    return AGE_BUCKETS[3]


def current_analyst() -> str:
    """Who is at the keyboard: ``$RECONKIT_ANALYST``, else the operating-system user."""
    name = os.environ.get("RECONKIT_ANALYST", "").strip()
    if name:
        return name
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return "unknown"


# --- the state of one break and how events change it -----------------------------------------

@dataclass(frozen=True)
class Note:
    """A note on a break: who wrote what, when (UTC, ISO)."""

    at: str
    author: str
    text: str


@dataclass(frozen=True)
class Break:
    """The current state of one break, as the fold of its events.

    Attributes
    ----------
    key : str
        ``credit:<id>`` or ``settlement:<request or reconciliation id>|<amount>|<currency>|<batch date>``.
    side : str
        ``credit`` or ``settlement``.
    outcome, amount_at_risk, currency, detail : the latest run's view of it (amount as text).
    status, owner, reason : the workflow.
    first_seen : str
        The ``as_of`` of the run that first saw it; ``first_run`` that run's id.
    notes : tuple of Note
    version : int
        The sequence number of its last event; pass it as ``expected_version`` to act only if
        nobody changed the break since.
    """

    key: str
    side: str
    credit_id: str | None
    outcome: str
    amount_at_risk: str | None
    currency: str | None
    detail: str | None
    submitted_at: str | None
    batch_date: str | None
    first_seen: str
    first_run: int | None
    status: str = Status.OPEN.value
    owner: str | None = None
    reason: str | None = None
    resolved_by: str | None = None
    resolved_at: str | None = None
    signed_off_by: str | None = None
    signed_off_at: str | None = None
    notes: tuple[Note, ...] = ()
    version: int = 0
    updated_at: str = ""

    @property
    def closed(self) -> bool:
        """Resolved, written off or a timing difference."""
        return self.status in CLOSED

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (notes as dicts)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Break:
        """Inverse of :meth:`to_dict`."""
        values = dict(data)
        values["notes"] = tuple(Note(**n) for n in values.get("notes", ()))
        return cls(**values)


_OBSERVED = ("outcome", "amount_at_risk", "currency", "detail")


def _apply(state: Break | None, event: Event) -> Break:
    """One event's effect on a break's state (the only place state changes)."""
    data = event.data
    if event.kind == "opened":
        state = Break(key=event.key, side=data["side"], credit_id=data.get("credit_id"), outcome=data["outcome"],
                      amount_at_risk=data.get("amount_at_risk"), currency=data.get("currency"),
                      detail=data.get("detail"), submitted_at=data.get("submitted_at"),
                      batch_date=data.get("batch_date"), first_seen=data["as_of"], first_run=event.run_id)
    elif state is None:
        raise BreakBookError(f"event {event.seq} ({event.kind}) names break {event.key!r}, which was never opened")
    else:
        # Any event but opening may carry a note; notes only ever grow.
        notes = (*state.notes, Note(event.at, event.actor, data["note"])) if data.get("note") else state.notes
        observed = {k: data.get(k) for k in _OBSERVED}
        if event.kind == "changed":
            state = dataclasses.replace(state, **observed)
        elif event.kind in ("cleared", "resolved"):
            state = dataclasses.replace(state, status=data["status"], reason=data["reason"], resolved_by=event.actor,
                                        resolved_at=event.at, signed_off_by=None, signed_off_at=None, notes=notes,
                                        **(observed if event.kind == "cleared" else {}))
        elif event.kind in ("reopened", "reappeared"):
            state = dataclasses.replace(
                state, status=Status.INVESTIGATING.value if state.owner else Status.OPEN.value, reason=None,
                resolved_by=None, resolved_at=None, signed_off_by=None, signed_off_at=None, notes=notes,
                **(observed if event.kind == "reappeared" else {}))
        elif event.kind == "assigned":
            status = Status.INVESTIGATING.value if state.status == Status.OPEN.value else state.status
            state = dataclasses.replace(state, owner=data["owner"], status=status)
        elif event.kind in ("noted", "signed_off"):
            signed = {"signed_off_by": event.actor, "signed_off_at": event.at} if event.kind == "signed_off" else {}
            state = dataclasses.replace(state, notes=notes, **signed)
        else:
            raise BreakBookError(f"event {event.seq} has unknown kind {event.kind!r}")
    return dataclasses.replace(state, version=event.seq, updated_at=event.at)


def replay(events: Iterable[Event]) -> dict[str, Break]:
    """The state of every break, folded from the log (in sequence order)."""
    states: dict[str, Break] = {}
    for event in sorted(events, key=lambda e: e.seq):
        states[event.key] = _apply(states.get(event.key), event)
    return states


# --- identity: what a reconciliation result says, one row per break key -------------------------

def _amount_text(value: Any, currency: Any) -> str | None:
    if _missing(value) or (isinstance(value, Decimal) and value.is_nan()):
        return None
    try:
        amount = abs(Decimal(str(value).strip()))
    except InvalidOperation:
        return None
    digits = None if _missing(currency) else CURRENCIES.get(str(currency).strip().upper())
    return str(amount.quantize(Decimal(1).scaleb(-digits)) if digits is not None else amount.normalize())


def _missing(value: Any) -> bool:
    return value is None or (not isinstance(value, str | Decimal) and bool(pd.isna(value)))


def _text(value: Any) -> str | None:
    if _missing(value):
        return None
    text = str(value).strip()
    return text or None


def _date_text(value: Any) -> str | None:
    if _text(value) is None:
        return None
    return pd.Timestamp(str(value).strip()[:10] if isinstance(value, str) else value).date().isoformat()


def settlement_key(request_id: Any, reconciliation_id: Any, amount: Any, currency: Any, batch_date: Any) -> str:
    """The identity of a settlement row that belongs to no credit, independent of its file.

    Request id when there is one, else reconciliation id; the absolute amount in the
    currency's minor units; the currency; the batch date (``YYYY-MM-DD``).
    """
    ident = _text(request_id) or (f"rid:{_text(reconciliation_id)}" if _text(reconciliation_id) else "?")
    code = (_text(currency) or "?").upper()
    return f"settlement:{ident}|{_amount_text(amount, code) or '?'}|{code}|{_date_text(batch_date) or '?'}"


def _amount_texts(amount: pd.Series, code: pd.Series) -> pd.Series:
    """:func:`_amount_text` for a column: Arrow decimals in a known currency are formatted with
    integer arithmetic; anything else (finer than the currency, unknown codes, other dtypes)
    row by row."""
    out = pd.Series([None] * len(amount), dtype="string")
    done = np.zeros(len(amount), dtype=bool)
    values = pa.array(amount.array) if isinstance(amount.dtype, pd.ArrowDtype) else None
    if values is not None and pa.types.is_decimal(values.type) and values.type.scale <= 4 \
            and values.type.precision - values.type.scale <= 29:
        wide = pa.decimal128(values.type.precision - values.type.scale + 4, 4)
        scaled = pc.multiply(pc.cast(pc.abs(values), wide),
                             pa.scalar(Decimal(10000), pa.decimal128(5, 0)))
        units = np.asarray(pc.fill_null(pc.cast(scaled, pa.int64()), -1).to_numpy(zero_copy_only=False))
        digits = code.map(CURRENCIES).astype("Int64").fillna(-1).to_numpy(dtype=np.int64)
        for d in np.unique(digits[digits >= 0]):
            step = 10 ** (4 - int(d))
            rows = (digits == d) & (units >= 0) & (units % step == 0)
            minor = units[rows] // step
            text = pd.Series(minor // 10 ** int(d)).astype(str)
            if d:
                text = text + "." + pd.Series(minor % 10 ** int(d)).astype(str).str.zfill(int(d))
            out[rows] = text.to_numpy()
            done |= rows
    rest = np.flatnonzero(~done)
    if len(rest):
        out.iloc[rest] = [_amount_text(a, c) or "?" for a, c in
                          zip(amount.iloc[rest], code.iloc[rest], strict=True)]
    return out


def settlement_keys(request_id: pd.Series, reconciliation_id: pd.Series, amount: pd.Series, currency: pd.Series,
                    batch_date: pd.Series) -> pd.Series:
    """:func:`settlement_key` for whole columns: text work is vectorised, and amounts and dates
    are formatted once per distinct value (a day's file repeats few of either)."""
    def trimmed(column: pd.Series) -> pd.Series:
        text = column.astype("string").str.strip()
        return text.where(text != "", pd.NA)

    index = request_id.index
    ident = trimmed(request_id).fillna("rid:" + trimmed(reconciliation_id)).fillna("?")
    code = trimmed(currency).str.upper().fillna("?")
    amount_part = _amount_texts(amount, code).set_axis(index)
    dates, distinct_dates = pd.factorize(batch_date, use_na_sentinel=False)
    date_text = pd.Series([_date_text(d) or "?" for d in distinct_dates], dtype="string")
    date_part = date_text.take(dates).reset_index(drop=True).set_axis(index)
    return "settlement:" + ident + "|" + amount_part + "|" + code + "|" + date_part


def _observe(result: Any) -> pd.DataFrame:
    """Adapter from a reconciliation result to one row per break key (the one place that knows
    the result's shape): ``key, side, credit_id, is_break, outcome, amount_at_risk, currency,
    detail, submitted_at, batch_date``.

    Credits give ``credit:<id>``. Credit-direction settlement rows give a settlement key; a
    row linked to a credit is a break of its own only when it is not (its credit carries it),
    so for such rows ``is_break`` is False, which lets a run clear an earlier unexpected row.
    """
    credits = result.credits
    missing_id = credits["credit_id"].isna()
    if missing_id.any():
        raise BreakBookError(f"credit row {int(missing_id.to_numpy().nonzero()[0][0])} has no credit_id: a break "
                             "needs one to be followed from run to run")
    currency = credits["currency"].astype("string").str.strip().str.upper()
    submitted = pd.to_datetime(credits["submit_time_utc"], utc=True)
    credit_rows = pd.DataFrame({
        "key": "credit:" + credits["credit_id"].astype("string").str.strip(),
        "side": "credit",
        "credit_id": credits["credit_id"].astype("string").str.strip(),
        "is_break": credits["outcome"].isin(BREAKS).to_numpy(),
        "outcome": credits["outcome"].astype("string"),
        "amount_at_risk": [_amount_text(a, c) for a, c in zip(credits["amount_at_risk"], currency, strict=True)],
        "currency": currency,
        "detail": credits["detail"].astype("string"),
        "submitted_at": [None if pd.isna(t) else t.isoformat() for t in submitted],
        "batch_date": None,
    })
    rows = result.settlement
    rows = rows[rows["direction"].astype("string").str.strip().str.lower() == "credit"]
    s_currency = rows["currency"].astype("string").str.strip().str.upper()
    keys = settlement_keys(rows["request_id"], rows["reconciliation_id"], rows["amount"], s_currency,
                           rows["batch_date"])
    # Two identical rows (same ids, amount, date) are two breaks: number the repeats.
    repeat = keys.groupby(keys, sort=False).cumcount().to_numpy() + 1
    keys = keys.where(repeat == 1, keys + "#" + pd.Series(repeat, index=keys.index).astype(str)).tolist()
    linked = rows["credit_id"].notna().to_numpy()
    settlement_rows = pd.DataFrame({
        "key": keys,
        "side": "settlement",
        "credit_id": rows["credit_id"].astype("string").to_numpy(),
        "is_break": rows["outcome"].isin(BREAKS).to_numpy() & ~linked,
        "outcome": rows["outcome"].astype("string").to_numpy(),
        "amount_at_risk": [_amount_text(a, c) for a, c in zip(rows["amount_at_risk"], s_currency, strict=True)],
        "currency": s_currency.to_numpy(),
        "detail": rows["detail"].astype("string").to_numpy(),
        "submitted_at": None,
        "batch_date": [_date_text(d) for d in rows["batch_date"]],
    })
    return pd.concat([credit_rows, settlement_rows], ignore_index=True)


def _auto_reason(before: str, after: str, linked: bool) -> tuple[str, str]:
    """(status, reason) for a break a later run no longer sees as one."""
    if after == "NO_SETTLEMENT_EXPECTED":
        return Status.RESOLVED.value, Reason.NO_SETTLEMENT_EXPECTED.value
    if linked and after != "MATCHED":
        return Status.RESOLVED.value, Reason.CARRIED_BY_CREDIT.value
    if before in TIMING_OUTCOMES:
        return Status.TIMING_DIFFERENCE.value, Reason.SETTLED.value
    if before == "MISSING_OVERDUE":
        return Status.RESOLVED.value, Reason.SETTLED_LATE.value
    return Status.RESOLVED.value, Reason.MATCHED_LATER.value


def _file_inputs(inputs: Iterable[str | os.PathLike[str] | Mapping[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for path in inputs:
        if isinstance(path, Mapping):  # digested by the caller from the very bytes it read
            found.append({"file": str(path["file"]), "bytes": int(path["bytes"]), "sha256": str(path["sha256"])})
            continue
        target = Path(path)
        digest = hashlib.sha256()
        with target.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        found.append({"file": str(target), "bytes": target.stat().st_size, "sha256": digest.hexdigest()})
    return found


def _days(later: str | pd.Timestamp, earlier: str | None) -> int | None:
    if earlier is None:
        return None
    return max(0, int((pd.Timestamp(later) - pd.Timestamp(earlier)) // pd.Timedelta(days=1)))


# --- differences between two runs ---------------------------------------------------------------

@dataclass(frozen=True)
class BreakDiff:
    """What changed between two runs.

    ``frame`` has one row per break key seen in either run, with ``change``:
    ``new`` (only in the later run), ``cleared`` (closed by the later data), ``changed``
    (outcome or amount differs), ``unchanged``, or ``not_seen`` (a break of the earlier run
    that the later run's inputs did not cover); then the outcome and amount in each run, the
    current status, owner and reason, and the age in days at the later run.
    """

    run_a: int
    run_b: int
    frame: pd.DataFrame = field(repr=False, compare=False)

    def _of(self, *changes: str) -> pd.DataFrame:
        return self.frame[self.frame["change"].isin(changes)].reset_index(drop=True)

    @property
    def new(self) -> pd.DataFrame:
        """Breaks the later run saw first."""
        return self._of("new")

    @property
    def cleared(self) -> pd.DataFrame:
        """Breaks the later run's data matched (closed by the run itself)."""
        return self._of("cleared")

    @property
    def changed(self) -> pd.DataFrame:
        """Breaks seen in both runs with another outcome or amount."""
        return self._of("changed")

    @property
    def still_open(self) -> pd.DataFrame:
        """Breaks in both runs that are not closed, with their age."""
        both = self._of("changed", "unchanged")
        return both[~both["status"].isin(CLOSED)].reset_index(drop=True)

    def counts(self) -> dict[str, int]:
        """How many breaks of each kind of change, ``still_open`` and, of those, ``changed_open``."""
        counts = {c: int((self.frame["change"] == c).sum()) for c in ("new", "cleared", "changed", "unchanged",
                                                                          "not_seen")}
        still_open = self.still_open
        counts["still_open"] = len(still_open)
        counts["changed_open"] = int((still_open["change"] == "changed").sum())
        return counts

    def summary_text(self) -> str:
        """One line for a terminal, whose parts do not overlap: the changed breaks still open are
        counted within ``still open``, not beside it."""
        counts = self.counts()
        return (f"run {self.run_a} -> run {self.run_b}: {counts['new']} new, {counts['cleared']} cleared, "
                f"{counts['still_open']} still open ({counts['changed_open']} of them changed), "
                f"{counts['not_seen']} not seen")


# --- the book -----------------------------------------------------------------------------------

class BreakBook:
    """Breaks carried from run to run, in the ledger's SQLite file.

    Parameters
    ----------
    ledger : Ledger, str or Path, optional
        The ledger (or its database file); default the ledger's default file.
    analyst : str, optional
        Who acts; default :func:`current_analyst`. Each change takes ``by=`` to act as
        someone else (a checker signing off at the same desk).

    Examples
    --------
    >>> book = BreakBook(ledger)                                 # doctest: +SKIP
    >>> run = book.record(result, inputs=["PaymentBatchDetailReport.csv"])
    >>> book.assign("credit:7001234567890123456789", "ann")
    >>> book.resolve("credit:7001234567890123456789", "PROCESSOR_CORRECTED", note="re-sent 3 Nov")
    >>> book.sign_off("credit:7001234567890123456789", by="bob")
    """

    def __init__(self, ledger: Ledger | str | os.PathLike[str] | None = None, *, analyst: str | None = None) -> None:
        if ledger is None:
            from .ledger import Ledger

            ledger = Ledger()
        path = ledger.path if hasattr(ledger, "path") and not isinstance(ledger, str | os.PathLike) else str(ledger)
        self._store = BreakStore(str(path))
        self.analyst = analyst or current_analyst()

    def __repr__(self) -> str:
        return f"BreakBook({self._store.path!r}, analyst={self.analyst!r})"

    def close(self) -> None:
        """Close the database connection."""
        self._store.close()

    def __enter__(self) -> BreakBook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- runs --------------------------------------------------------------------------
    def record(self, result: Any, *, inputs: Iterable[str | os.PathLike[str] | Mapping[str, Any]] = (),
               parameters: Mapping[str, Any] | None = None) -> int:
        """Record one reconciliation run and carry its breaks into the book.

        New break keys are opened; known ones whose outcome or amount moved get a ``changed``
        event; open breaks the run now matches are closed by the run (``SETTLED``, ...);
        breaks a run had closed by itself and that come back are reopened. All in one
        transaction.

        Parameters
        ----------
        result : ReconResult
        inputs : paths, or mappings with ``file``, ``bytes`` and ``sha256``
            The settlement files read; their size and SHA-256 are recorded with the run. A
            mapping is recorded as given: the digest of the bytes a caller actually read (an
            upload has no path; a file may change on disk after it was read).
        parameters : mapping, optional
            Anything else to remember with the run (the result's own parameters are kept).

        Returns
        -------
        int
            The run's id.
        """
        seen = _observe(result)
        as_of = pd.Timestamp(result.parameters["as_of"]).isoformat()
        files = _file_inputs(inputs)
        run_inputs = {"files": files, "credits": int((seen["side"] == "credit").sum()),
                      "settlement_rows": len(result.settlement)}
        run_parameters = {**result.parameters, **(parameters or {})}
        breaks = seen[seen["is_break"]]
        others = seen[~seen["is_break"]].drop_duplicates("key").set_index("key")
        store = self._store
        with store.transaction():
            run_id = store.add_run(self.analyst, as_of, run_parameters, run_inputs)
            current = {s["key"]: Break.from_dict(s) for s in store.states()}
            for row in breaks.to_dict("records"):
                key = row["key"]
                observed = {k: row[k] for k in _OBSERVED}
                before = current.get(key)
                if before is None:
                    self._append(key, "opened", SYSTEM, {**observed, "side": row["side"], "as_of": as_of,
                                                         "credit_id": row["credit_id"],
                                                         "submitted_at": row["submitted_at"],
                                                         "batch_date": row["batch_date"]}, run_id, before)
                elif before.closed and before.resolved_by == SYSTEM:
                    self._append(key, "reappeared", SYSTEM,
                                 {**observed, "note": f"seen again as {row['outcome']} in run {run_id}"},
                                 run_id, before)
                elif any(getattr(before, k) != observed[k] for k in ("outcome", "amount_at_risk", "currency")):
                    self._append(key, "changed", SYSTEM, observed, run_id, before)
            cleared = []
            break_keys = set(breaks["key"])
            for key, before in current.items():
                if before.closed or key in break_keys or key not in others.index:
                    continue
                row = others.loc[key]
                status, reason = _auto_reason(before.outcome, str(row["outcome"]),
                                              row["side"] == "settlement" and _text(row["credit_id"]) is not None)
                observed = {k: _text(row[k]) for k in _OBSERVED}
                self._append(key, "cleared", SYSTEM, {**observed, "status": status, "reason": reason,
                                                      "note": f"{before.outcome} -> {row['outcome']} in run {run_id}"},
                             run_id, before)
                cleared.append((key, False, str(row["outcome"]), observed["amount_at_risk"], observed["currency"]))
            store.add_observations(run_id, [
                *((r["key"], True, r["outcome"], r["amount_at_risk"], r["currency"])
                  for r in breaks.to_dict("records")), *cleared])
        return run_id

    def runs(self) -> pd.DataFrame:
        """Every run recorded: id, when, by whom, ``as_of``, the input files and counts."""
        rows = [{"run_id": r.run_id, "recorded_at": pd.Timestamp(r.recorded_at), "analyst": r.analyst,
                 "as_of": pd.Timestamp(r.as_of), "credits": r.inputs.get("credits"),
                 "settlement_rows": r.inputs.get("settlement_rows"),
                 "files": ", ".join(Path(f["file"]).name for f in r.inputs.get("files", [])),
                 "sha256": ", ".join(f["sha256"][:12] for f in r.inputs.get("files", [])),
                 "breaks": sum(1 for o in self._store.observations(r.run_id) if o[1])}
                for r in self._store.runs()]
        return pd.DataFrame(rows, columns=["run_id", "recorded_at", "analyst", "as_of", "credits", "settlement_rows",
                                           "files", "sha256", "breaks"])

    def _run(self, run_id: int | None, offset: int = -1) -> RunRow:
        runs = self._store.runs()
        if not runs:
            raise BreakBookError("no run recorded yet: record a reconciliation first")
        if run_id is None:
            if len(runs) < -offset:
                raise BreakBookError(f"only {len(runs)} run(s) recorded")
            return runs[offset]
        for run in runs:
            if run.run_id == run_id:
                return run
        raise BreakBookError(f"no run {run_id}; runs recorded: {', '.join(str(r.run_id) for r in runs)}")

    # --- reading -----------------------------------------------------------------------
    def get(self, key: str) -> Break:
        """One break by key (a bare credit id is taken as ``credit:<id>``)."""
        key = self.find(key)
        state = self._store.state(key)
        assert state is not None
        return Break.from_dict(state)

    def find(self, text: str) -> str:
        """The key that ``text`` names: a key, a credit id, or an unambiguous start of a key."""
        text = text.strip()
        for candidate in (text, f"credit:{text}"):
            if self._store.state(candidate) is not None:
                return candidate
        matches = self._store.keys_like(text.replace("%", r"\%").replace("_", r"\_") + "%") if text else []
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise BreakBookError(f"{text!r} names {len(matches)} breaks ({', '.join(matches[:3])}, ...); be precise")
        raise BreakBookError(f"no break {text!r} in the book")

    def table(self, *, statuses: Iterable[str] | None = None, owner: str | None = None,
              as_of: str | datetime | None = None) -> pd.DataFrame:
        """Breaks as a frame, largest amount at risk first, with their ages and aging buckets.

        Parameters
        ----------
        statuses : iterable of str, optional
            Only these statuses (default all).
        owner : str, optional
            Only this owner's breaks.
        as_of : optional
            The moment ages are measured at (default the latest run's ``as_of``).
        """
        states = [Break.from_dict(s) for s in self._store.states(None if statuses is None else list(statuses))]
        if owner is not None:
            states = [s for s in states if s.owner == owner]
        moment = pd.Timestamp(as_of) if as_of is not None else (
            pd.Timestamp(self._store.runs()[-1].as_of) if states else None)
        latest = self._store.runs()[-1].run_id if states else None
        rows = []
        for s in states:
            days_open = _days(moment, s.first_seen)
            days_submitted = _days(moment, s.submitted_at)
            rows.append({
                "key": s.key, "status": s.status, "owner": s.owner, "outcome": s.outcome,
                "amount_at_risk": None if s.amount_at_risk is None else Decimal(s.amount_at_risk),
                "currency": s.currency, "credit_id": s.credit_id, "side": s.side,
                "category": "timing difference" if s.outcome in TIMING_OUTCOMES else "break",
                "new": s.first_run == latest, "first_seen": pd.Timestamp(s.first_seen),
                "days_open": days_open, "open_bucket": age_bucket(days_open or 0),
                "days_since_submission": days_submitted,
                "submission_bucket": None if days_submitted is None else age_bucket(days_submitted),
                "reason": s.reason, "resolved_by": s.resolved_by, "signed_off_by": s.signed_off_by,
                "notes": len(s.notes), "detail": s.detail, "version": s.version})
        columns = ["key", "status", "owner", "outcome", "amount_at_risk", "currency", "credit_id", "side", "category",
                   "new", "first_seen", "days_open", "open_bucket", "days_since_submission", "submission_bucket",
                   "reason", "resolved_by", "signed_off_by", "notes", "detail", "version"]
        frame = pd.DataFrame(rows, columns=columns)
        if len(frame):
            order = frame["amount_at_risk"].map(lambda d: float(d) if d is not None else 0.0)
            frame = frame.assign(_k=order).sort_values(["_k", "key"], ascending=[False, True], kind="stable") \
                .drop(columns="_k").reset_index(drop=True)
        for column in ("days_open", "days_since_submission"):
            frame[column] = frame[column].astype("Int64")
        return frame

    def open(self, *, owner: str | None = None, new: bool = False) -> pd.DataFrame:
        """Breaks not closed (open or investigating); ``owner=`` for one person's, ``new=True``
        for those the latest run saw first."""
        frame = self.table(statuses=[Status.OPEN.value, Status.INVESTIGATING.value], owner=owner)
        return frame[frame["new"]].reset_index(drop=True) if new else frame

    def workflow(self, breaks: pd.DataFrame) -> pd.DataFrame:
        """Status and owner in the book of each row of a result's break frame (``credit_id``,
        ``request_id``, ``reconciliation_id``, ``amount_at_risk``, ``currency``), index kept;
        blank for breaks the book has not recorded.

        A settlement row with no credit is found by its key (:func:`settlement_key`: its amount at
        risk is the row's amount, and ``batch_date`` the row's batch date). Identical copies of a
        row are told apart in the book only by the order they were read in, which a page or a
        sorted frame does not keep: when the book holds copies that differ in status or owner,
        each copy's status is :data:`SEVERAL_ROWS`. A frame without ``batch_date`` (one built
        before the break table carried it) finds the row by its key without the date; when the
        book holds such rows from several days that differ, the status is :data:`SEVERAL_DAYS`.
        Either way a status is never shown for another break.
        """
        dated = "batch_date" in breaks.columns
        by_credit: dict[str, tuple[str, str | None]] = {}
        by_row: dict[str, tuple[str, str | None]] = {}
        for state in self._store.states():
            if state["side"] == "credit":
                by_credit[state["credit_id"]] = (state["status"], state["owner"])
                continue
            head, _, day = state["key"].rpartition("|")
            # The key's last part is the batch date, then "#n" on the n-th identical copy.
            found_by, facts = f"{head}|{day.split('#')[0]}" if dated else head, (state["status"], state["owner"])
            if by_row.setdefault(found_by, facts) != facts:
                by_row[found_by] = (SEVERAL_ROWS if dated else SEVERAL_DAYS, None)
        days = breaks["batch_date"] if dated else [None] * len(breaks)
        found = []
        for credit, request, recon, amount, currency, day in zip(
                breaks["credit_id"], breaks["request_id"], breaks["reconciliation_id"], breaks["amount_at_risk"],
                breaks["currency"], days, strict=True):
            if _text(credit) is not None:
                found.append(by_credit.get(str(credit).strip(), (None, None)))
            else:
                key = settlement_key(request, recon, amount, currency, day)
                found.append(by_row.get(key if dated else key.rpartition("|")[0], (None, None)))
        return pd.DataFrame(found, columns=["work_status", "owner"], index=breaks.index, dtype=object)

    def mine(self) -> pd.DataFrame:
        """The open breaks owned by this book's analyst."""
        return self.open(owner=self.analyst)

    def events(self, key: str | None = None) -> list[Event]:
        """The log (one break's when ``key`` is given)."""
        return self._store.events(None if key is None else self.find(key))

    def replay(self) -> dict[str, Break]:
        """Every break's state folded afresh from the log."""
        return replay(self._store.events())

    def stored_states(self) -> dict[str, Break]:
        """Every break's state as stored beside the log."""
        return {s["key"]: Break.from_dict(s) for s in self._store.states()}

    # --- changing ----------------------------------------------------------------------
    def _append(self, key: str, kind: str, actor: str, data: dict[str, Any], run_id: int | None,
                before: Break | None) -> Break:
        event = self._store.append(key, kind, actor, data, run_id)
        after = _apply(before, event)
        self._store.put_state(key, after.status, after.owner, after.version, after.to_dict())
        return after

    def _change(self, key: str, kind: str, data: dict[str, Any], by: str | None, expected_version: int | None,
                check: Any = None) -> Break:
        actor = (by or self.analyst).strip()
        if not actor:
            raise BreakBookError("who acts is empty: set RECONKIT_ANALYST or pass by=")
        with self._store.transaction():
            key = self.find(key)
            before = Break.from_dict(self._store.state(key) or {})
            if expected_version is not None and before.version != expected_version:
                raise BreakConflictError(
                    f"break {key} changed since version {expected_version} (now {before.version}, last by "
                    f"{self._store.events(key)[-1].actor}); look again before acting")
            if check is not None:
                check(before, actor)
            return self._append(key, kind, actor, data, None, before)

    def assign(self, key: str, owner: str, *, by: str | None = None, expected_version: int | None = None) -> Break:
        """Give a break an owner (an open break becomes ``investigating``)."""
        owner = owner.strip()
        if not owner:
            raise BreakBookError("assign needs an owner's name")
        return self._change(key, "assigned", {"owner": owner}, by, expected_version)

    def note(self, key: str, text: str, *, by: str | None = None, expected_version: int | None = None) -> Break:
        """Add a note (notes are never edited or removed)."""
        if not text.strip():
            raise BreakBookError("a note needs text")
        return self._change(key, "noted", {"note": text.strip()}, by, expected_version)

    def resolve(self, key: str, reason: str, *, status: str = Status.RESOLVED.value, note: str | None = None,
                by: str | None = None, expected_version: int | None = None) -> Break:
        """Close a break with a reason code.

        Parameters
        ----------
        reason : str
            One of :class:`Reason` (``OTHER`` needs a ``note``).
        status : str
            ``resolved``, ``written_off`` or ``timing_difference``.
        """
        try:
            reason = Reason(str(reason).strip().upper()).value
        except ValueError:
            raise BreakBookError(f"reason {reason!r} is not a reason code; use one of "
                                 f"{', '.join(r.value for r in Reason)}") from None
        if status not in CLOSED:
            raise BreakBookError(f"status {status!r} does not close a break; use one of {', '.join(sorted(CLOSED))}")
        text = (note or "").strip()
        if reason == Reason.OTHER and not text:
            raise BreakBookError("reason OTHER needs a note saying what was found")

        def check(before: Break, actor: str) -> None:
            if before.closed:
                raise BreakBookError(f"break {before.key} is already {before.status} ({before.reason}, by "
                                     f"{before.resolved_by}); reopen it first")

        return self._change(key, "resolved", {"status": status, "reason": reason, "note": text or None}, by,
                            expected_version, check)

    def reopen(self, key: str, why: str, *, by: str | None = None, expected_version: int | None = None) -> Break:
        """Reopen a closed break, saying why (its sign-off is withdrawn)."""
        if not why.strip():
            raise BreakBookError("reopening needs a reason in words")

        def check(before: Break, actor: str) -> None:
            if not before.closed:
                raise BreakBookError(f"break {before.key} is {before.status}, not closed; nothing to reopen")

        return self._change(key, "reopened", {"note": why.strip()}, by, expected_version, check)

    def sign_off(self, key: str, *, by: str | None = None, note: str | None = None,
                 expected_version: int | None = None) -> Break:
        """Sign off a closed break: the checker must not be the one who resolved it."""
        def check(before: Break, actor: str) -> None:
            if not before.closed:
                raise BreakBookError(f"break {before.key} is {before.status}: only a closed break can be signed off")
            if before.signed_off_by:
                raise BreakBookError(f"break {before.key} was already signed off by {before.signed_off_by}")
            if actor == before.resolved_by:
                raise BreakBookError(f"{actor} resolved break {before.key} and cannot also sign it off "
                                     "(maker/checker: a second person signs)")

        return self._change(key, "signed_off", {"note": (note or "").strip() or None}, by, expected_version, check)

    # --- comparing and aging -----------------------------------------------------------
    def diff(self, run_a: int | None = None, run_b: int | None = None) -> BreakDiff:
        """What changed between two runs (default: the last two)."""
        b = self._run(run_b)
        a = self._run(run_a, offset=-2) if run_a is not None or run_b is None else self._previous(b)
        if a.run_id >= b.run_id:
            raise BreakBookError(f"run {a.run_id} is not before run {b.run_id}")
        obs_a = {o[0]: o for o in self._store.observations(a.run_id) if o[1]}
        obs_b = {o[0]: o for o in self._store.observations(b.run_id)}
        cleared_between = {e.key: e for e in self._store.events() if e.kind == "cleared"
                           and e.run_id is not None and a.run_id < e.run_id <= b.run_id}
        states = self.stored_states()
        rows = []
        for key in sorted(set(obs_a) | {k for k, o in obs_b.items() if o[1]}):
            in_a, in_b = obs_a.get(key), obs_b.get(key)
            state = states[key]
            if in_a is None:
                change = "new"
            elif in_b is not None and in_b[1]:
                change = "changed" if (in_a[2], in_a[3], in_a[4]) != (in_b[2], in_b[3], in_b[4]) else "unchanged"
            elif key in cleared_between:
                change = "cleared"
            else:
                change = "not_seen"
            reason = cleared_between[key].data["reason"] if change == "cleared" else state.reason
            rows.append({"key": key, "change": change, "outcome_a": in_a[2] if in_a else None,
                         "outcome_b": in_b[2] if in_b else None, "amount_a": in_a[3] if in_a else None,
                         "amount_b": in_b[3] if in_b else None, "currency": state.currency,
                         "status": state.status, "owner": state.owner, "reason": reason,
                         "age_days": _days(b.as_of, state.first_seen)})
        frame = pd.DataFrame(rows, columns=["key", "change", "outcome_a", "outcome_b", "amount_a", "amount_b",
                                            "currency", "status", "owner", "reason", "age_days"])
        frame["age_days"] = frame["age_days"].astype("Int64")
        return BreakDiff(a.run_id, b.run_id, frame)

    def _previous(self, run: RunRow) -> RunRow:
        earlier = [r for r in self._store.runs() if r.run_id < run.run_id]
        if not earlier:
            raise BreakBookError(f"run {run.run_id} is the first run; nothing to compare it with")
        return earlier[-1]

    def aging(self, as_of: str | datetime | None = None) -> pd.DataFrame:
        """Open breaks by age bucket: since first seen and since the credit's submission.

        Timing differences (``MISSING_PENDING``: still within the grace period) are counted
        apart from real breaks. One row per ``basis`` (``first seen`` / ``submission``),
        ``category``, ``bucket`` and ``currency`` with the number of ``breaks`` and their
        ``amount_at_risk``; every bucket is listed for each basis, category and currency.
        Settlement rows with no credit have no submission and count only since first seen.
        """
        frame = self.open() if as_of is None else self.table(
            statuses=[Status.OPEN.value, Status.INVESTIGATING.value], as_of=as_of)
        rows = []
        currencies = sorted(frame["currency"].dropna().unique()) if len(frame) else []
        for basis, column in (("first seen", "open_bucket"), ("submission", "submission_bucket")):
            for category in ("break", "timing difference"):
                for bucket in AGE_BUCKETS:
                    for currency in currencies:
                        part = frame[(frame[column] == bucket) & (frame["category"] == category)
                                     & (frame["currency"] == currency)]
                        total = sum((a for a in part["amount_at_risk"] if a is not None), Decimal(0))
                        digits = CURRENCIES.get(currency)
                        rows.append({"basis": basis, "category": category, "bucket": bucket, "currency": currency,
                                     "breaks": len(part), "amount_at_risk": total if digits is None
                                     else total.quantize(Decimal(1).scaleb(-digits))})
        return pd.DataFrame(rows, columns=["basis", "category", "bucket", "currency", "breaks", "amount_at_risk"])

    # --- audit -------------------------------------------------------------------------
    def audit(self) -> pd.DataFrame:
        """Every change ever made, in order: when, who, which break, what, and the status after."""
        states: dict[str, Break] = {}
        rows = []
        for event in self._store.events():
            states[event.key] = _apply(states.get(event.key), event)
            after = states[event.key]
            details = {k: v for k, v in event.data.items() if v is not None and k not in ("as_of",)}
            rows.append({"seq": event.seq, "at": pd.Timestamp(event.at), "who": event.actor, "break_key": event.key,
                         "event": event.kind, "run_id": event.run_id, "status_after": after.status,
                         "owner_after": after.owner, "outcome": event.data.get("outcome"),
                         "reason": event.data.get("reason"), "note": event.data.get("note"),
                         "details": "; ".join(f"{k}={v}" for k, v in sorted(details.items())
                                              if k not in ("outcome", "reason", "note"))})
        frame = pd.DataFrame(rows, columns=["seq", "at", "who", "break_key", "event", "run_id", "status_after",
                                            "owner_after", "outcome", "reason", "note", "details"])
        frame["run_id"] = frame["run_id"].astype("Int64")
        return frame

    def export_audit(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`audit` as ``.csv``, or as ``.xlsx`` with the breaks (their ages and
        buckets), the aging and the runs on sheets beside it (atomically); return the path.

        Every text cell is inert (:func:`reconkit.inert.cell`): names, notes, keys and file
        names that would start a formula get a single quote in front, control characters show as
        escapes; numbers, amounts and times stay numbers and times."""
        from . import inert
        from .report import _atomic_write

        target = Path(path)
        frame = inert.frame(_naive_times(self.audit()))
        if target.suffix.lower() == ".csv":
            _atomic_write(target, frame.to_csv(index=False).encode("utf-8"))
        elif target.suffix.lower() == ".xlsx":
            sheets = {"Audit": frame, "Breaks": inert.frame(_naive_times(self.table())),
                      "Aging": inert.frame(self.aging()), "Runs": inert.frame(_naive_times(self.runs()))}
            buffer = io.BytesIO()
            with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
                for name, sheet_frame in sheets.items():
                    plain = sheet_frame.astype(object)
                    plain.where(plain.notna(), None).to_excel(writer, sheet_name=name, index=False)
                    sheet = writer.sheets[name]
                    sheet.freeze_panes = "A2"
                    for column in sheet.iter_cols(min_row=2):
                        for cell in column:
                            if isinstance(cell.value, datetime):
                                cell.number_format = "yyyy-mm-dd hh:mm:ss.000"
                audit = writer.sheets["Audit"]
                for letter, width in zip("ABCDEFGHIJKL", (6, 24, 12, 40, 12, 7, 18, 12, 22, 22, 40, 60), strict=True):
                    audit.column_dimensions[letter].width = width
            _atomic_write(target, buffer.getvalue())
        else:
            raise BreakBookError(f"{target}: the audit is exported as .csv or .xlsx")
        return target


def _naive_times(frame: pd.DataFrame) -> pd.DataFrame:
    """Time-zone-aware columns as naive UTC (what Excel and a plain CSV reader expect)."""
    out = frame.copy()
    for column in out.columns:
        if isinstance(out[column].dtype, pd.DatetimeTZDtype):
            out[column] = out[column].dt.tz_convert("UTC").dt.tz_localize(None)
    return out
