"""Small reconciliations for the break-book tests: credits and settlement rows written by hand."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd

from reconkit import reconcile

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
"""When the hand-written credits were submitted (unless told otherwise)."""

SETTLEMENT_COLUMNS = ["reconciliation_id", "request_id", "direction", "amount", "currency", "batch_date",
                      "source_file", "source_line"]


def credits_frame(amounts: Mapping[str, str], submitted: Mapping[str, datetime] | None = None) -> pd.DataFrame:
    """Credits ``id -> amount`` (USD), reconciliation id ``r-<id>``, submitted at :data:`T0`."""
    ids = list(amounts)
    when = [(submitted or {}).get(i, T0) for i in ids]
    return pd.DataFrame({"credit_id": ids, "reconciliation_id": [f"r-{i}" for i in ids], "status": ["PENDING"] * len(ids),
                         "submit_time_utc": pd.to_datetime(when, utc=True),
                         "amount": [Decimal(amounts[i]) for i in ids], "currency": ["USD"] * len(ids)})


def settlement_frame(rows: Iterable[tuple[str | None, str | None, str, str]], *, file: str = "day.csv"
                     ) -> pd.DataFrame:
    """Settlement credit rows ``(reconciliation id, request id, amount, batch date)`` in USD."""
    data = [[rid, qid, "credit", Decimal(amount), "USD", batch, file, line]
            for line, (rid, qid, amount, batch) in enumerate(rows, start=2)]
    return pd.DataFrame(data, columns=SETTLEMENT_COLUMNS)


def settled(amounts: Mapping[str, str], batch: str = "2026-11-03") -> list[tuple[str, str, str, str]]:
    """The settlement rows that match ``amounts`` exactly."""
    return [(f"r-{i}", i, a, batch) for i, a in amounts.items()]


def run(credits: pd.DataFrame, rows: list[tuple[str | None, str | None, str, str]], as_of: datetime,
        grace_days: int = 3):
    """Reconcile hand-written credits and settlement rows as of a moment."""
    return reconcile(credits, settlement_frame(rows), as_of=as_of, grace_days=grace_days)


def days(n: float) -> timedelta:
    return timedelta(days=n)
