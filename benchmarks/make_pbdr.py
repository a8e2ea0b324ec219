"""Write a large legacy PBDR CSV (and a matching credits frame) for the read and reconcile benchmarks.

    .venv/bin/python benchmarks/make_pbdr.py --rows 5000000 --credits 1000000 --out /tmp/reconkit-bench
    .venv/bin/python benchmarks/make_pbdr.py --rows 1000000 --credits 200000 --out /tmp/reconkit-bench  # pbdr_1m.csv
"""

from __future__ import annotations

import argparse
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--credits", type=int, default=1_000_000)
    parser.add_argument("--out", default="/tmp/reconkit-bench")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    n = args.rows
    cents = rng.integers(100, 500_000, n)
    is_credit = np.arange(n) < int(args.credits * 0.98)  # most credits settle; the rest of the file is captures
    rng.shuffle(is_credit)
    request = pc.utf8_lpad(pa.array(np.arange(n, dtype=np.int64) * 7919 + 10**17).cast(pa.string()), 22, "0")
    recon = pc.binary_join_element_wise(pa.array((np.arange(n) % 10**8).astype(str)), pa.array(
        np.char.mod("%08X", np.arange(n) + 0xA0000000)), "")
    amount = pa.array(np.char.mod("%d", cents // 100)).cast(pa.string())
    amount = pc.binary_join_element_wise(amount, pa.array(np.char.mod("%02d", cents % 100)), ".")
    amount = pc.if_else(pa.array(is_credit), pc.binary_join_element_wise(pa.scalar("-"), amount, ""), amount)
    table = pa.table({
        "batch_id": pa.array(np.char.mod("%d", 100000 + (np.arange(n) // 50000))),
        "merchant_id": pa.array(["reconkit_bench"] * n),
        "batch_date": pa.array(np.where(np.arange(n) % 2, "2026-11-02", "2026-11-03")),
        "request_id": request,
        "merchant_ref_number": pa.array(np.char.mod("order-%d", np.arange(n))),
        "trans_ref_no": recon,
        "payment_method": pa.array(["Visa"] * n),
        "currency": pa.array(rng.choice(["USD", "EUR", "GBP"], n)),
        "amount": amount,
        "transaction_type": pa.array(np.where(is_credit, "ics_credit", "ics_bill")),
    })
    path = out / (f"pbdr_{n // 1_000_000}m.csv" if n % 1_000_000 == 0 else f"pbdr_{n}.csv")
    with path.open("wb") as handle:
        handle.write(b"Payment Batch Detail Report,1.0,2026-11-02 to 2026-11-03,,,,,,,\r\n")
        pacsv.write_csv(table, handle, pacsv.WriteOptions(quoting_style="none"))
    credit_rows = np.flatnonzero(is_credit)
    extra = args.credits - len(credit_rows)  # credits with no settlement row at all
    pick = credit_rows
    credits = pd.DataFrame({
        "credit_id": pd.Series(pc.take(request, pa.array(pick)).to_pylist() + [f"{i:022d}" for i in range(extra)],
                               dtype="string"),
        "reconciliation_id": pd.Series(pc.take(recon, pa.array(pick)).to_pylist()
                                       + [f"MISS{i:012d}" for i in range(extra)], dtype="string"),
        "status": pd.Series(["TRANSMITTED"] * args.credits, dtype="string"),
        "submit_time_utc": pd.Timestamp("2026-11-02T10:00:00Z"),
        "amount": [Decimal(int(c)).scaleb(-2) for c in cents[pick]] + [Decimal("1.00")] * extra,
        "currency": pd.Series(np.concatenate([np.asarray(table.column("currency").to_numpy(zero_copy_only=False))[pick],
                                              np.array(["USD"] * extra)]), dtype="string"),
    })
    credits.to_pickle(out / "credits_1m.pkl")
    print(f"wrote {path} ({path.stat().st_size / 1e6:.0f} MB, {n} rows) and {out / 'credits_1m.pkl'} "
          f"({len(credits)} credits)")


if __name__ == "__main__":
    main()
