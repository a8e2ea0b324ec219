"""Settlement-row identities for the break book: the column version against the one-row
definition applied row by row (baseline), on a PBDR-shaped frame.

    .venv/bin/python benchmarks/bench_breaks.py --rows 1000000
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import date, timedelta
from decimal import Decimal

import pandas as pd
import pyarrow as pa

from reconkit.breaks import settlement_key, settlement_keys


def _frame(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = random.Random(seed)
    days = [date(2026, 11, 1) + timedelta(days=d) for d in range(30)]
    currencies = [rng.choice(["USD", "USD", "EUR", "GBP", "JPY"]) for _ in range(rows)]
    return pd.DataFrame({
        "request_id": [f"{rng.randrange(10**22):022d}" for _ in range(rows)],
        "reconciliation_id": [f"{rng.randrange(10**8):08d}" for _ in range(rows)],
        "currency": pd.array(currencies, dtype="string"),
        "amount": pd.array([Decimal(rng.randint(100, 99999)).scaleb(0 if c == "JPY" else -2) for c in currencies],
                           dtype=pd.ArrowDtype(pa.decimal128(20, 2))),  # as read_settlement gives it
        "batch_date": pd.to_datetime([rng.choice(days) for _ in range(rows)]),
    })


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    frame = _frame(args.rows)
    columns = (frame["request_id"], frame["reconciliation_id"], frame["amount"], frame["currency"],
               frame["batch_date"])
    start = time.perf_counter()
    baseline = [settlement_key(*row) for row in zip(*columns, strict=True)]
    row_time = time.perf_counter() - start
    start = time.perf_counter()
    keys = settlement_keys(*columns)
    column_time = time.perf_counter() - start
    assert keys.tolist() == baseline
    print(f"{args.rows} rows")
    print(f"settlement_key row by row (baseline): {row_time:.2f} s  1.00x")
    print(f"settlement_keys on columns:           {column_time:.2f} s  {column_time / row_time:.2f}x")


if __name__ == "__main__":
    main()
