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

The book is a control:

- **Checked intake.** :meth:`BreakBook.preview` says what a run would do (breaks opened and
  cleared, with their amounts at risk per currency) and checks the settlement's merchant ids,
  its batch dates and what the run changes; :meth:`BreakBook.record` refuses a run that fails a
  check (:class:`~reconkit.errors.IntakeError`) unless ``override="why"`` is given, which is
  kept with the run and in the audit.
- **Withdrawable runs.** :meth:`BreakBook.withdraw` appends events that put every break the
  run touched back as it was before the run; the latest standing run only.
- **Tamper evidence.** Every event is chained to the one before by SHA-256
  (:mod:`reconkit.breakbook_store`); :meth:`BreakBook.verify` recomputes the chain and the
  derived state and checks the log's guard triggers. Recording, every action and withdrawing
  refuse to act on a book that fails it (:class:`~reconkit.errors.BookIntegrityError`);
  reading and :meth:`BreakBook.export_audit` still work, so what is there can be exported.
- **Identities.** Names are compared as :mod:`reconkit.identity` says (NFKC, case fold, no
  invisible characters or accents, one script), and the OS login is kept beside each action.
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

from .breakbook_store import GENESIS, TRIGGERS, BreakStore, Event, RunRow, chain_hash
from .errors import BookIntegrityError, BreakBookError, BreakConflictError, IdentityError, IntakeError
from .identity import display_name, os_login, same_person
from .money import CURRENCIES
from .outcomes import BREAKS

if TYPE_CHECKING:
    from .ledger import Ledger

__all__ = ["AGE_BUCKETS", "AUTOMATIC_REASONS", "RUN_KINDS", "SEVERAL_DAYS", "SEVERAL_ROWS", "SYSTEM", "WORK_COLUMNS",
           "Break", "BreakBook", "BreakDiff", "IntakeCheck", "IntakePreview", "Note", "Reason", "Status",
           "Verification", "age_bucket", "current_analyst", "replay", "settlement_key", "settlement_keys"]

SYSTEM = "reconkit"
"""The actor of changes a run makes by itself (opening, changing and clearing breaks)."""

SEVERAL_DAYS = "several days: see the break book"
"""The status shown, in a break frame without batch dates, for an unexpected row whose request
id, amount and currency the book holds from several batch dates in different states (see
:meth:`BreakBook.workflow`)."""

SEVERAL_ROWS = "several identical rows: see the break book"
"""The status shown for an unexpected row of which the book holds identical copies (same ids,
amount, currency and batch date) in different states (see :meth:`BreakBook.workflow`)."""

WORK_COLUMNS = ("work_status", "owner", "notes")
"""What the book says of a break beside the engine's columns: its status in the book (open,
investigating, resolved, ...; not the credit's status), its owner and its notes."""


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
        # Field by field: dataclasses.asdict deep-copies every value, the larger part of recording a run.
        values = {name: getattr(self, name) for name in _BREAK_FIELDS}
        values["notes"] = tuple({"at": n.at, "author": n.author, "text": n.text} for n in self.notes)
        return values

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Break:
        """Inverse of :meth:`to_dict`."""
        values = dict(data)
        values["notes"] = tuple(Note(**n) for n in values.get("notes", ()))
        return cls(**values)


_BREAK_FIELDS = tuple(f.name for f in dataclasses.fields(Break))

_OBSERVED = ("outcome", "amount_at_risk", "currency", "detail")


def _apply(state: Break | None, event: Event) -> Break | None:
    """One event's effect on a break's state (the only place state changes); None when the
    event withdraws the run that opened the break (the break is then not in the book)."""
    data = event.data
    # Every event stamps its sequence number and time; one replace per event (it is the cost of a replay).
    stamp = {"version": event.seq, "updated_at": event.at}
    if event.kind == "withdrawn":
        # A withdrawn run's break goes back to what it was before that run, carried whole in the event.
        if data.get("state") is None:
            return None
        return Break.from_dict({**data["state"], **stamp})
    if event.kind == "opened":
        return Break(key=event.key, side=data["side"], credit_id=data.get("credit_id"), outcome=data["outcome"],
                     amount_at_risk=data.get("amount_at_risk"), currency=data.get("currency"),
                     detail=data.get("detail"), submitted_at=data.get("submitted_at"),
                     batch_date=data.get("batch_date"), first_seen=data["as_of"], first_run=event.run_id, **stamp)
    if state is None:
        raise BreakBookError(f"event {event.seq} ({event.kind}) names break {event.key!r}, which was never opened")
    # Any event but opening may carry a note; notes only ever grow (but for a withdrawal).
    notes = (*state.notes, Note(event.at, event.actor, data["note"])) if data.get("note") else state.notes
    observed = {k: data.get(k) for k in _OBSERVED}
    if event.kind == "changed":
        return dataclasses.replace(state, **observed, **stamp)
    if event.kind in ("cleared", "resolved"):
        return dataclasses.replace(state, status=data["status"], reason=data["reason"], resolved_by=event.actor,
                                   resolved_at=event.at, signed_off_by=None, signed_off_at=None, notes=notes,
                                   **(observed if event.kind == "cleared" else {}), **stamp)
    if event.kind in ("reopened", "reappeared"):
        return dataclasses.replace(
            state, status=Status.INVESTIGATING.value if state.owner else Status.OPEN.value, reason=None,
            resolved_by=None, resolved_at=None, signed_off_by=None, signed_off_at=None, notes=notes,
            **(observed if event.kind == "reappeared" else {}), **stamp)
    if event.kind == "assigned":
        status = Status.INVESTIGATING.value if state.status == Status.OPEN.value else state.status
        return dataclasses.replace(state, owner=data["owner"], status=status, **stamp)
    if event.kind in ("noted", "signed_off"):
        signed = {"signed_off_by": event.actor, "signed_off_at": event.at} if event.kind == "signed_off" else {}
        return dataclasses.replace(state, notes=notes, **signed, **stamp)
    raise BreakBookError(f"event {event.seq} has unknown kind {event.kind!r}")


_ACTIONS = frozenset({"assigned", "noted", "resolved", "signed_off", "reopened"})
"""What people do to a break (the rest is what runs do)."""

RUN_KINDS = frozenset({"intake_overridden", "run_withdrawn"})
"""Events about a whole run (key ``run:<id>``), not a break: kept in the chained log and the audit,
skipped by :func:`replay`."""


def _fold(states: dict[str, Break], event: Event) -> Break | None:
    if event.kind in RUN_KINDS:
        return None
    after = _apply(states.get(event.key), event)
    if after is None:
        states.pop(event.key, None)
    else:
        states[event.key] = after
    return after


def replay(events: Iterable[Event]) -> dict[str, Break]:
    """The state of every break, folded from the log (in sequence order)."""
    states: dict[str, Break] = {}
    for event in sorted(events, key=lambda e: e.seq):
        _fold(states, event)
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
            found.append({"file": str(path["file"]), "bytes": int(path["bytes"]), "sha256": str(path["sha256"]),
                          **({"role": str(path["role"])} if path.get("role") else {})})  # e.g. the credits file
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


# --- intake: what a run would do, checked before it is recorded ----------------------------------

@dataclass(frozen=True)
class IntakeCheck:
    """One intake check of a run: its ``name``, whether it ``passed``, and a sentence saying what
    it found (also when it passed, or why it could not be made)."""

    name: str
    passed: bool
    message: str


@dataclass(frozen=True)
class IntakePreview:
    """What recording a result would do to the book, and the intake checks (see
    :meth:`BreakBook.preview`).

    Attributes
    ----------
    checks : tuple of IntakeCheck
        ``merchant``, ``batch_dates`` and ``changes``.
    opens, clears, changes : int
        Breaks the run would open (new, or back after a run had closed them), close by itself,
        and see with another outcome or amount.
    opens_at_risk, clears_at_risk : dict
        Currency -> amount at risk (``Decimal``) of the breaks opened and of the breaks cleared
        (what was at risk before the run cleared them).
    """

    checks: tuple[IntakeCheck, ...]
    opens: int
    clears: int
    changes: int
    opens_at_risk: dict[str, Decimal]
    clears_at_risk: dict[str, Decimal]

    @property
    def failed(self) -> tuple[IntakeCheck, ...]:
        """The checks that failed."""
        return tuple(c for c in self.checks if not c.passed)

    @property
    def ok(self) -> bool:
        """Whether every check passed (the run may be recorded without an override)."""
        return not self.failed

    @property
    def effect(self) -> str:
        """What recording the run would do: ``opens N breaks worth …, clears M breaks worth …``."""
        return (f"opens {self.opens} {_plural(self.opens)} worth {_worth(self.opens_at_risk)}, clears {self.clears} "
                f"{_plural(self.clears)} worth {_worth(self.clears_at_risk)}, changes {self.changes}")

    @property
    def text(self) -> str:
        """One line: :attr:`effect` and what failed."""
        line = self.effect
        failed = self.failed
        if failed:
            line += f"; fails {len(failed)} intake check(s): {', '.join(c.name for c in failed)}"
        return line


def _plural(count: int) -> str:
    return "break" if count == 1 else "breaks"


def _worth(totals: Mapping[str, Decimal]) -> str:
    if not totals:
        return "nothing"
    return " + ".join(f"{amount} {currency}" for currency, amount in sorted(totals.items()))


def _add_at_risk(totals: dict[str, Decimal], amount: str | None, currency: str | None) -> None:
    if amount is None:
        return
    code = currency or "?"
    total = totals.get(code, Decimal(0)) + Decimal(amount)
    digits = CURRENCIES.get(code)
    totals[code] = total if digits is None else total.quantize(Decimal(1).scaleb(-digits))


@dataclass(frozen=True)
class _Step:
    """One event a run would append: ``kind`` for ``key``, from ``row`` (what the run saw)."""

    kind: str
    key: str
    row: dict[str, Any]
    before: Break | None


def _plan(seen: pd.DataFrame, current: Mapping[str, Break]) -> tuple[list[dict[str, Any]], list[_Step]]:
    """The run's break rows and the events recording it would append, in order: openings,
    reappearances and changes of the breaks it sees, then the clearing of open breaks it now
    sees as no break."""
    breaks = seen[seen["is_break"]].to_dict("records")
    others = seen[~seen["is_break"]].drop_duplicates("key").set_index("key").to_dict("index")
    steps = []
    for row in breaks:
        before = current.get(row["key"])
        if before is None:
            steps.append(_Step("opened", row["key"], row, None))
        elif before.closed and before.resolved_by == SYSTEM:
            steps.append(_Step("reappeared", row["key"], row, before))
        elif any(getattr(before, k) != row[k] for k in ("outcome", "amount_at_risk", "currency")):
            steps.append(_Step("changed", row["key"], row, before))
    break_keys = {row["key"] for row in breaks}
    for key, before in current.items():
        if before.closed or key in break_keys or key not in others:
            continue
        row = others[key]
        steps.append(_Step("cleared", key, {"outcome": str(row["outcome"]), "side": row["side"],
                                            "credit_id": _text(row["credit_id"]),
                                            **{k: _text(row[k]) for k in _OBSERVED}}, before))
    return breaks, steps


def _text_set(frame: pd.DataFrame, columns: Iterable[str]) -> set[str]:
    found: set[str] = set()
    for column in columns:
        if column in frame.columns:
            text = frame[column].dropna().astype("string").str.strip()
            found.update(t for t in text.unique() if t)
    return found


def _intake_checks(result: Any, steps: list[_Step]) -> tuple[IntakeCheck, ...]:
    """The three intake checks of a run (see :meth:`BreakBook.preview`)."""
    settlement, credits = result.settlement, result.credits
    is_credit = settlement["direction"].astype("string").str.strip().str.lower() == "credit" \
        if "direction" in settlement.columns else pd.Series(True, index=settlement.index)
    checks = []

    # Whose money: the file's merchant ids against the credits' (the TSS body's merchantId).
    theirs = _text_set(settlement, ["merchant_id"])
    declared = result.parameters.get("merchant_id")
    ours = _text_set(credits, ["merchant_id", "merchantId"]) | (
        {str(m).strip() for m in ([declared] if isinstance(declared, str) else declared or []) if str(m).strip()})
    if not theirs or not ours:
        checks.append(IntakeCheck("merchant", True, "not checked: the " + (
            "settlement" if not theirs else "credits") + " carry no merchant id"))
    else:
        folded = {m.casefold() for m in ours}
        foreign = sorted(m for m in theirs if m.casefold() not in folded)
        if foreign:
            rows = int(settlement["merchant_id"].astype("string").str.strip().isin(foreign).sum())
            checks.append(IntakeCheck("merchant", False, f"{rows} settlement row(s) belong to merchant "
                                      f"{', '.join(foreign)}, not to the credits' {', '.join(sorted(ours))}"))
        else:
            checks.append(IntakeCheck("merchant", True, f"the settlement's merchant ids are the credits' "
                                      f"({', '.join(sorted(theirs))})"))

    # When: a row of these credits' settlement is dated from the first submission day to the last
    # plus the grace period. A row paired with a credit is its own evidence (a late settlement
    # is a break the book follows); a row paired with none and dated outside is another window's.
    grace = float(result.parameters.get("grace_days", 0) or 0)
    submitted = pd.to_datetime(credits["submit_time_utc"], utc=True).dropna() \
        if "submit_time_utc" in credits.columns else pd.Series([], dtype="datetime64[ns, UTC]")
    credit_rows = settlement[is_credit.fillna(False).to_numpy()]
    unpaired = credit_rows["credit_id"].isna().to_numpy() if "credit_id" in credit_rows.columns \
        else np.ones(len(credit_rows), dtype=bool)
    dated = credit_rows["batch_date"] if "batch_date" in credit_rows.columns \
        else pd.Series([None] * len(credit_rows), dtype=object)
    batch = pd.Series([_date_text(v) for v in dated], dtype=object)
    has_date = batch.notna().to_numpy()
    if not len(submitted) or not has_date.any():
        checks.append(IntakeCheck("batch_dates", True, "not checked: " + (
            "no credit has a submission time" if not len(submitted) else "no settlement credit row has a batch date")))
    else:
        first = submitted.min().date().isoformat()
        last = (submitted.max() + pd.Timedelta(days=grace)).date().isoformat()
        # ISO dates compare as text.
        outside = has_date & unpaired & ((batch < first) | (batch > last)).to_numpy(dtype=bool, na_value=False)
        window = f"{first} to {last} (submissions plus the {grace:g}-day grace period)"
        if outside.any():
            days = sorted(set(batch[outside]))
            checks.append(IntakeCheck("batch_dates", False, f"{int(outside.sum())} of {len(batch)} settlement credit "
                                      f"row(s) pair with no credit and are dated {days[0]} to {days[-1]}, outside "
                                      f"the credits' window {window}"))
        else:
            checks.append(IntakeCheck("batch_dates", True, f"every unpaired settlement credit row is dated within "
                                      f"the credits' window {window}"))

    # What it changes: clearing breaks on a run that pairs nothing is what a wrong file does.
    clears = sum(1 for step in steps if step.kind == "cleared")
    rows = int(is_credit.fillna(False).sum())
    paired = int((is_credit.fillna(False) & settlement["credit_id"].notna()).sum()) \
        if "credit_id" in settlement.columns else 0
    if clears and not paired:
        checks.append(IntakeCheck("changes", False, f"it would clear {clears} {_plural(clears)} while none of its "
                                  f"{rows} settlement credit row(s) pairs with a credit"))
    else:
        checks.append(IntakeCheck("changes", True, f"it clears {clears} {_plural(clears)}; {paired} of {rows} "
                                  "settlement credit row(s) pair with a credit"))
    return tuple(checks)


def _preview(checks: tuple[IntakeCheck, ...], steps: list[_Step]) -> IntakePreview:
    opens_at_risk: dict[str, Decimal] = {}
    clears_at_risk: dict[str, Decimal] = {}
    counts = dict.fromkeys(("opened", "reappeared", "changed", "cleared"), 0)
    for step in steps:
        counts[step.kind] += 1
        if step.kind in ("opened", "reappeared"):
            _add_at_risk(opens_at_risk, step.row["amount_at_risk"], step.row["currency"])
        elif step.kind == "cleared" and step.before is not None:
            _add_at_risk(clears_at_risk, step.before.amount_at_risk, step.before.currency)
    return IntakePreview(checks, counts["opened"] + counts["reappeared"], counts["cleared"], counts["changed"],
                         opens_at_risk, clears_at_risk)


def _state_problem(stored: tuple[str, str, str | None, int, dict[str, Any]] | None, replayed: Break | None
                   ) -> str | None:
    """Why a stored state row is not the replay of the log (None when it is)."""
    if stored is None:
        return None if replayed is None else "its events say it exists, but break_state has no row for it"
    if replayed is None:
        return "break_state holds it, but no event in the log leaves it in the book"
    _, status, owner, version, state = stored
    try:
        kept = Break.from_dict(state)
    except TypeError:
        return "its stored state is not a break's"
    if kept != replayed:
        fields = [f.name for f in dataclasses.fields(Break) if getattr(kept, f.name) != getattr(replayed, f.name)]
        return f"its stored {', '.join(fields)} differ from the replay of its events"
    if (status, owner, version) != (replayed.status, replayed.owner, replayed.version):
        return (f"break_state says status {status!r}, owner {owner!r}, version {version} where its events say "
                f"{replayed.status!r}, {replayed.owner!r}, {replayed.version}")
    return None


@dataclass(frozen=True)
class Verification:
    """What :meth:`BreakBook.verify` proved: ``events`` chained from the first to ``head`` (the
    last event's hash: write it down to prove later that nothing before it changed), ``breaks``
    whose stored state is the replay of the log, and the guard triggers in place."""

    events: int
    breaks: int
    head: str


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
        self._verified: tuple[int, str] | None = None  # the last event this object proved, (seq, hash)

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
    def preview(self, result: Any, *, inputs: Iterable[str | os.PathLike[str] | Mapping[str, Any]] = ()
                ) -> IntakePreview:
        """What recording ``result`` would do, and whether it passes the intake checks; nothing
        is written.

        Checks
        ------
        ``merchant``
            The settlement's merchant ids (``merchant_id``) are among the credits' (a
            ``merchant_id`` or ``merchantId`` column of the credits, as the Transaction Details
            body carries it, or ``result.parameters["merchant_id"]``); not checked when either
            side carries none.
        ``batch_dates``
            Every settlement credit row's batch date lies between the day the first credit was
            submitted and the day the last one was, plus the result's ``grace_days``.
        ``changes``
            The run would not clear breaks while none of its settlement credit rows pairs with
            a credit (a wrong file matches nothing and "clears" what it does not mention).

        Parameters
        ----------
        result : ReconResult
        inputs : paths or mappings, optional
            As for :meth:`record` (accepted so a caller previews and records the same call).
        """
        del inputs  # the checks read the result; the inputs are digested when recorded
        seen = _observe(result)
        current = {s["key"]: Break.from_dict(s) for s in self._store.states()}
        _, steps = _plan(seen, current)
        return _preview(_intake_checks(result, steps), steps)

    def record(self, result: Any, *, inputs: Iterable[str | os.PathLike[str] | Mapping[str, Any]] = (),
               parameters: Mapping[str, Any] | None = None, override: str | None = None) -> int:
        """Record one reconciliation run and carry its breaks into the book.

        New break keys are opened; known ones whose outcome or amount moved get a ``changed``
        event; open breaks the run now matches are closed by the run (``SETTLED``, ...);
        breaks a run had closed by itself and that come back are reopened. All in one
        transaction, after the intake checks of :meth:`preview` and :meth:`verify`.

        Parameters
        ----------
        result : ReconResult
        inputs : paths, or mappings with ``file``, ``bytes`` and ``sha256``
            The settlement files read; their size and SHA-256 are recorded with the run. A
            mapping is recorded as given: the digest of the bytes a caller actually read (an
            upload has no path; a file may change on disk after it was read).
        parameters : mapping, optional
            Anything else to remember with the run (the result's own parameters are kept).
        override : str, optional
            Why the run is recorded although it fails an intake check: kept with the run
            (``parameters["intake"]``) and in the audit (an ``intake_overridden`` event).

        Returns
        -------
        int
            The run's id.

        Raises
        ------
        IntakeError
            If a check fails and no ``override`` is given (nothing is written).
        BookIntegrityError
            If the book fails :meth:`verify`.
        """
        if override is not None and not str(override).strip():
            raise BreakBookError("an override needs a reason in words")
        seen = _observe(result)
        as_of = pd.Timestamp(result.parameters["as_of"]).isoformat()
        files = _file_inputs(inputs)
        run_inputs = {"files": files, "credits": int((seen["side"] == "credit").sum()),
                      "settlement_rows": len(result.settlement), "login": os_login()}
        store = self._store
        with store.transaction():
            self._guard()
            current = {s["key"]: Break.from_dict(s) for s in store.states()}
            breaks, steps = _plan(seen, current)
            checks = _intake_checks(result, steps)
            failed = [c for c in checks if not c.passed]
            if failed and override is None:
                raise IntakeError(tuple(failed))
            intake = {"checks": [dataclasses.asdict(c) for c in checks],
                      **({"override": str(override).strip(), "login": os_login()} if override is not None else {})}
            run_parameters = {**result.parameters, **(parameters or {}), "intake": intake}
            run_id = store.add_run(self.analyst, as_of, run_parameters, run_inputs)
            if failed:
                store.append(f"run:{run_id}", "intake_overridden", self._actor(None),
                             {"note": str(override).strip(), "login": os_login(),
                              "failed": "; ".join(f"{c.name}: {c.message}" for c in failed)}, run_id)
            cleared = []
            for step in steps:
                row, before = step.row, step.before
                observed = {k: row[k] for k in _OBSERVED}
                if step.kind == "opened":
                    data = {**observed, "side": row["side"], "as_of": as_of, "credit_id": row["credit_id"],
                            "submitted_at": row["submitted_at"], "batch_date": row["batch_date"]}
                elif step.kind == "reappeared":
                    data = {**observed, "note": f"seen again as {row['outcome']} in run {run_id}"}
                elif step.kind == "changed":
                    data = observed
                else:
                    assert before is not None
                    status, reason = _auto_reason(before.outcome, row["outcome"],
                                                  row["side"] == "settlement" and row["credit_id"] is not None)
                    data = {**observed, "status": status, "reason": reason,
                            "note": f"{before.outcome} -> {row['outcome']} in run {run_id}"}
                    cleared.append((step.key, False, row["outcome"], observed["amount_at_risk"],
                                    observed["currency"]))
                self._append(step.key, step.kind, SYSTEM, data, run_id, before)
            store.add_observations(run_id, [
                *((r["key"], True, r["outcome"], r["amount_at_risk"], r["currency"]) for r in breaks), *cleared])
        self._verified = store.committed_head or self._verified
        return run_id

    def withdraw(self, run_id: int, reason: str, *, by: str | None = None) -> list[str]:
        """Withdraw a recorded run by appending events: every break it opened, changed, cleared
        or brought back returns to its state before that run.

        The book's state (:meth:`snapshot`: every break's fields but ``version`` and
        ``updated_at``, which count events) is afterwards what it was before the run, but for
        breaks the run did not touch, which keep what was done to them since. What people did
        since to a break the run touched (an assignment of a break the wrong file opened) is
        undone with it; the withdrawal's note counts those actions, and the audit keeps both
        them and the run. Only the latest run not yet withdrawn can be withdrawn: later runs
        were computed on top of it, so they are withdrawn first, latest first.

        Parameters
        ----------
        run_id : int
        reason : str
            Why, in words (kept in the audit).
        by : str, optional
            Who withdraws (default the book's analyst); the OS login is kept beside it.

        Returns
        -------
        list of str
            The keys of the breaks put back.

        Raises
        ------
        BreakBookError
            If there is no such run, it was withdrawn already, or a later run is still in force.
        """
        why = (reason or "").strip()
        if not why:
            raise BreakBookError("withdrawing a run needs a reason in words")
        actor = self._actor(by)
        store = self._store
        with store.transaction():
            self._guard()
            runs = store.runs()
            withdrawn = self._withdrawn()
            if run_id not in {r.run_id for r in runs}:
                raise BreakBookError(f"no run {run_id}; runs recorded: {', '.join(str(r.run_id) for r in runs)}")
            if run_id in withdrawn:
                raise BreakBookError(f"run {run_id} was withdrawn already")
            later = [r.run_id for r in runs if r.run_id > run_id and r.run_id not in withdrawn]
            if later:
                raise BreakBookError(f"run {run_id} cannot be withdrawn while run(s) {', '.join(map(str, later))} "
                                     f"recorded after it stand: withdraw run {later[-1]} first")
            own = {e.key: e for e in store.run_events(run_id) if e.kind not in RUN_KINDS}
            history: dict[str, list[Event]] = {}
            for event in store.events():
                if event.key in own:
                    history.setdefault(event.key, []).append(event)
            since = 0
            restored = []
            for key in sorted(own):
                states: dict[str, Break] = {}
                for event in history[key]:
                    if event.seq >= own[key].seq:
                        since += event.kind in _ACTIONS
                        continue
                    _fold(states, event)
                before = states.get(key)
                stored = store.state(key)
                current = None if stored is None else Break.from_dict(stored)
                self._append(key, "withdrawn", actor,
                             {"run": run_id, "state": None if before is None else before.to_dict(),
                              "note": f"run {run_id} withdrawn: {why}", "login": os_login()}, None, current)
                restored.append(key)
            note = f"{why} ({len(restored)} {_plural(len(restored))} put back"
            note += f"; {since} later action(s) on them undone)" if since else ")"
            store.append(f"run:{run_id}", "run_withdrawn", actor, {"note": note, "login": os_login()}, run_id)
        self._verified = store.committed_head or self._verified
        return restored

    def _withdrawn(self) -> set[int]:
        return {e.run_id for e in self._store.events_of_kind("run_withdrawn") if e.run_id is not None}

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """The book's state as :meth:`withdraw` restores it: every break's fields (status, owner,
        outcome, amounts, reason, resolver, sign-off, notes, first run) by key, without
        ``version`` and ``updated_at``, which only count events."""
        return {s["key"]: {k: v for k, v in s.items() if k not in ("version", "updated_at")}
                for s in self._store.states()}

    # --- proving the log ---------------------------------------------------------------
    def verify(self) -> Verification:
        """Recompute the hash chain and the derived state, and check the log's guards.

        Every event's ``hash`` must be ``SHA-256(previous hash, canonical encoding)`` (see
        :func:`reconkit.breakbook_store.canonical`), no event may be missing at the end, every
        stored break state (its JSON and its ``status``/``owner``/``version`` columns) must be
        the replay of the log, and the guard triggers must exist with their expected SQL.

        :meth:`record`, every action and :meth:`withdraw` check the same before they write: in
        full the first time a ``BreakBook`` object acts, then the guards, the chain from the
        last event it proved and the state of the break acted on. The cost of the full check
        grows with the log (about 4 s for 50,000 events on a loaded 2-core machine); reading
        (:meth:`table`, :meth:`audit`, :meth:`export_audit`) does not check, so a book that
        fails can still be read and exported. The chain proves the log consistent with itself;
        to prove later that nothing before a point changed, keep the returned ``head``
        somewhere else.

        Returns
        -------
        Verification

        Raises
        ------
        BookIntegrityError
            Naming the first event (``event_id``) or break (``key``) that disagrees, or the
            guard that is missing.
        """
        with self._store.reading():
            return self._verify_all()

    def _verify_all(self) -> Verification:
        store = self._store
        if not store.has_hash_column():
            raise BookIntegrityError("the log's hash column was removed, so no event can be proved")
        head, count, last = GENESIS, 0, 0
        states: dict[str, Break] = {}
        for event in store.events_from(0):
            if event.hash != chain_hash(head, event):
                raise BookIntegrityError(
                    f"event {event.seq} ({event.kind} of {event.key} by {event.actor}) does not chain to the event "
                    "before it: it, or one before it, was rewritten, inserted or removed", event_id=event.seq)
            try:
                _fold(states, event)
            except (BreakBookError, KeyError, TypeError) as error:
                raise BookIntegrityError(f"event {event.seq} cannot be replayed ({error})",
                                         event_id=event.seq) from None
            head, count, last = event.hash, count + 1, event.seq
        issued = store.last_issued_seq()
        if issued > last:
            raise BookIntegrityError(f"event(s) {last + 1} to {issued} were issued and are gone from the log",
                                     event_id=last + 1)
        stored = {row[0]: row for row in store.state_rows()}
        for key in sorted(set(stored) | set(states)):
            problem = _state_problem(stored.get(key), states.get(key))
            if problem:
                raise BookIntegrityError(f"break {key}: {problem}", key=key)
        self._check_guards()
        self._verified = (last, head)
        return Verification(count, len(states), head)

    def _check_guards(self) -> None:
        store = self._store
        if not store.has_hash_column():
            raise BookIntegrityError("the log's hash column was removed, so no event can be proved")
        found = store.trigger_sql()
        for name, sql in TRIGGERS.items():
            if name not in found:
                raise BookIntegrityError(f"the guard trigger {name} on break_events was dropped")
            if " ".join(found[name].split()) != " ".join(sql.split()):
                raise BookIntegrityError(f"the guard trigger {name} on break_events was altered")
        extra = sorted(set(found) - set(TRIGGERS))
        if extra:
            raise BookIntegrityError(f"break_events has trigger(s) the book did not create: {', '.join(extra)}")

    def _guard(self, key: str | None = None) -> None:
        """Refuse to act on a book that fails :meth:`verify`: in full the first time this object
        acts, then the guards, the chain from the last event proved on, and the state of the
        break acted on (a full :meth:`verify` per action would cost the whole log each time)."""
        if self._verified is None:
            self._verify_all()
            return
        store = self._store
        self._check_guards()
        seq, head = self._verified
        last = (seq, head)
        for event in store.events_from(seq):
            if event.seq == seq:
                if event.hash != head:
                    raise BookIntegrityError(f"event {seq} changed since it was proved", event_id=seq)
                continue
            if event.hash != chain_hash(last[1], event):
                raise BookIntegrityError(f"event {event.seq} ({event.kind} of {event.key} by {event.actor}) does not "
                                         "chain to the event before it", event_id=event.seq)
            last = (event.seq, event.hash or "")
        if store.last_issued_seq() > last[0]:
            raise BookIntegrityError(f"event(s) after {last[0]} were issued and are gone from the log",
                                     event_id=last[0] + 1)
        if key is not None:
            stored = next((row for row in store.state_rows(key)), None)
            problem = _state_problem(stored, replay(store.events(key)).get(key))
            if problem:
                raise BookIntegrityError(f"break {key}: {problem}", key=key)
        self._verified = last

    def runs(self) -> pd.DataFrame:
        """Every run recorded: id, when, by whom, ``as_of``, the input files and counts, the
        ``override`` reason it was recorded under (if any) and whether it was ``withdrawn``."""
        withdrawn = self._withdrawn()
        rows = [{"run_id": r.run_id, "recorded_at": pd.Timestamp(r.recorded_at), "analyst": r.analyst,
                 "as_of": pd.Timestamp(r.as_of), "credits": r.inputs.get("credits"),
                 "settlement_rows": r.inputs.get("settlement_rows"),
                 "files": ", ".join(Path(f["file"]).name for f in r.inputs.get("files", [])),
                 "sha256": ", ".join(f["sha256"][:12] for f in r.inputs.get("files", [])),
                 "breaks": sum(1 for o in self._store.observations(r.run_id) if o[1]),
                 "override": (r.parameters.get("intake") or {}).get("override"),
                 "withdrawn": r.run_id in withdrawn}
                for r in self._store.runs()]
        return pd.DataFrame(rows, columns=["run_id", "recorded_at", "analyst", "as_of", "credits", "settlement_rows",
                                           "files", "sha256", "breaks", "override", "withdrawn"])

    def _standing_runs(self) -> list[RunRow]:
        withdrawn = self._withdrawn()
        return [r for r in self._store.runs() if r.run_id not in withdrawn]

    def _run(self, run_id: int | None, offset: int = -1) -> RunRow:
        runs = self._store.runs() if run_id is not None else self._standing_runs()
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
            states = [s for s in states if same_person(s.owner, owner)]
        standing = self._standing_runs() if states else []
        moment = pd.Timestamp(as_of) if as_of is not None else (pd.Timestamp(standing[-1].as_of) if standing else None)
        latest = standing[-1].run_id if standing else None
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
        """Status, owner and notes (``author: text``, oldest first, ``" | "`` between) in the book
        of each row of a result's break frame (``credit_id``,
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
        by_credit: dict[str, tuple[str, str | None, str | None]] = {}
        by_row: dict[str, tuple[str, str | None, str | None]] = {}
        for state in self._store.states():
            notes = " | ".join(f"{n['author']}: {n['text']}" for n in state.get("notes") or ()) or None
            if state["side"] == "credit":
                by_credit[state["credit_id"]] = (state["status"], state["owner"], notes)
                continue
            head, _, day = state["key"].rpartition("|")
            # The key's last part is the batch date, then "#n" on the n-th identical copy.
            found_by = f"{head}|{day.split('#')[0]}" if dated else head
            facts = (state["status"], state["owner"], notes)
            if by_row.setdefault(found_by, facts) != facts:
                by_row[found_by] = (SEVERAL_ROWS if dated else SEVERAL_DAYS, None, None)
        days = breaks["batch_date"] if dated else [None] * len(breaks)
        found = []
        for credit, request, recon, amount, currency, day in zip(
                breaks["credit_id"], breaks["request_id"], breaks["reconciliation_id"], breaks["amount_at_risk"],
                breaks["currency"], days, strict=True):
            if _text(credit) is not None:
                found.append(by_credit.get(str(credit).strip(), (None, None, None)))
            else:
                key = settlement_key(request, recon, amount, currency, day)
                found.append(by_row.get(key if dated else key.rpartition("|")[0], (None, None, None)))
        return pd.DataFrame(found, columns=list(WORK_COLUMNS), index=breaks.index, dtype=object)

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
                before: Break | None) -> Break | None:
        event = self._store.append(key, kind, actor, data, run_id)
        after = _apply(before, event)
        if after is None:
            self._store.delete_state(key)
        else:
            self._store.put_state(key, after.status, after.owner, after.version, after.to_dict())
        return after

    def _actor(self, by: str | None) -> str:
        """Who acts, as kept in the book (see :mod:`reconkit.identity`); the book's own name is
        not for people."""
        given = by if by is not None else self.analyst
        if not str(given).strip():
            raise BreakBookError("who acts is empty: set RECONKIT_ANALYST or pass by=")
        actor = display_name(given, what="name given with by=" if by is not None else "analyst")
        if same_person(actor, SYSTEM):
            raise IdentityError(f"{actor!r} is the name of the book's own runs; act under your own name")
        return actor

    def _change(self, key: str, kind: str, data: dict[str, Any], by: str | None, expected_version: int | None,
                check: Any = None) -> Break:
        actor = self._actor(by)
        store = self._store
        with store.transaction():
            key = self.find(key)
            self._guard(key)
            before = Break.from_dict(store.state(key) or {})
            if expected_version is not None and before.version != expected_version:
                raise BreakConflictError(
                    f"break {key} changed since version {expected_version} (now {before.version}, last by "
                    f"{store.events(key)[-1].actor}); look again before acting")
            if check is not None:
                check(before, actor)
            after = self._append(key, kind, actor, {**data, "login": os_login()}, None, before)
        self._verified = store.committed_head or self._verified
        assert after is not None
        return after

    def assign(self, key: str, owner: str, *, by: str | None = None, expected_version: int | None = None) -> Break:
        """Give a break an owner (an open break becomes ``investigating``)."""
        if not str(owner).strip():
            raise BreakBookError("assign needs an owner's name")
        return self._change(key, "assigned", {"owner": display_name(owner, what="owner")}, by, expected_version)

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
        """Sign off a closed break: the checker must not be the one who resolved it, compared as
        :func:`reconkit.identity.same_person` does (case, width, invisible characters and accents
        do not make another person; a name mixing scripts is refused)."""
        def check(before: Break, actor: str) -> None:
            if not before.closed:
                raise BreakBookError(f"break {before.key} is {before.status}: only a closed break can be signed off")
            if before.signed_off_by:
                raise BreakBookError(f"break {before.key} was already signed off by {before.signed_off_by}")
            if same_person(actor, before.resolved_by):
                raise BreakBookError(f"{actor} resolved break {before.key} and cannot also sign it off "
                                     "(maker/checker: a second person signs)")

        return self._change(key, "signed_off", {"note": (note or "").strip() or None}, by, expected_version, check)

    # --- comparing and aging -----------------------------------------------------------
    def diff(self, run_a: int | None = None, run_b: int | None = None) -> BreakDiff:
        """What changed between two runs (default: the last two not withdrawn; what a withdrawn
        run between them cleared does not count)."""
        b = self._run(run_b)
        a = self._run(run_a, offset=-2) if run_a is not None or run_b is None else self._previous(b)
        if a.run_id >= b.run_id:
            raise BreakBookError(f"run {a.run_id} is not before run {b.run_id}")
        obs_a = {o[0]: o for o in self._store.observations(a.run_id) if o[1]}
        obs_b = {o[0]: o for o in self._store.observations(b.run_id)}
        withdrawn = self._withdrawn()
        cleared_between = {e.key: e for e in self._store.events() if e.kind == "cleared" and e.run_id is not None
                           and a.run_id < e.run_id <= b.run_id and e.run_id not in withdrawn}
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
        earlier = [r for r in self._standing_runs() if r.run_id < run.run_id]
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
        """Every change ever made, in order: when, who, which break, what, and the status after.

        ``login`` is the operating-system login of the process that wrote an action (beside
        ``who``, the name it was taken under) and ``hash`` the event's link in the chain.
        Events about a whole run (``intake_overridden``, ``run_withdrawn``) name ``run:<id>``
        as their ``break_key`` and have no status after.
        """
        states: dict[str, Break] = {}
        rows = []
        for event in self._store.events():
            after = _fold(states, event)
            details = {k: v for k, v in event.data.items() if v is not None and k not in ("as_of", "login", "state")}
            rows.append({"seq": event.seq, "at": pd.Timestamp(event.at), "who": event.actor, "break_key": event.key,
                         "event": event.kind, "run_id": event.run_id if event.run_id is not None
                         else event.data.get("run"),
                         "status_after": None if after is None else after.status,
                         "owner_after": None if after is None else after.owner, "outcome": event.data.get("outcome"),
                         "reason": event.data.get("reason"), "note": event.data.get("note"),
                         "details": "; ".join(f"{k}={v}" for k, v in sorted(details.items())
                                              if k not in ("outcome", "reason", "note", "run")),
                         "login": event.data.get("login"), "hash": event.hash})
        frame = pd.DataFrame(rows, columns=["seq", "at", "who", "break_key", "event", "run_id", "status_after",
                                            "owner_after", "outcome", "reason", "note", "details", "login", "hash"])
        frame["run_id"] = frame["run_id"].astype("Int64")
        return frame

    def export_audit(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`audit` as ``.csv``, or as ``.xlsx`` with the breaks (their ages and
        buckets), the aging and the runs on sheets beside it (atomically); return the path.

        Every text cell is inert (:func:`reconkit.inert.cell`): names, notes, keys and file
        names that would start a formula get a single quote in front, control characters show as
        escapes; numbers, amounts and times stay numbers and times."""
        from . import inert
        from .files import write_atomically

        target = Path(path)
        frame = inert.frame(_naive_times(self.audit()))
        if target.suffix.lower() == ".csv":
            write_atomically(target, frame.to_csv(index=False).encode("utf-8"))
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
            write_atomically(target, buffer.getvalue())
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
