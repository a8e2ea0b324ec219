"""Read a 5M-row legacy PBDR CSV: ``read_settlement`` against a bare ``pyarrow.csv.read_csv`` of the
same file (all columns as text), in the same run.

    .venv/bin/python benchmarks/make_pbdr.py            # once: writes /tmp/reconkit-bench/pbdr_5m.csv
    .venv/bin/python benchmarks/bench_read.py [--file /tmp/reconkit-bench/pbdr_5m.csv]
"""

from __future__ import annotations

import argparse
import time

import pyarrow as pa
import pyarrow.csv as pacsv

from reconkit import read_settlement


def bare(path: str) -> pa.Table:
    names = ["batch_id", "merchant_id", "batch_date", "request_id", "merchant_ref_number", "trans_ref_no",
             "payment_method", "currency", "amount", "transaction_type"]
    return pacsv.read_csv(path, read_options=pacsv.ReadOptions(skip_rows=1),
                          convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string())))


def best(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--file", default="/tmp/reconkit-bench/pbdr_5m.csv")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    base, table = best(lambda: bare(args.file), args.repeat)
    ours, frame = best(lambda: read_settlement(args.file), args.repeat)
    assert len(frame) == table.num_rows  # type: ignore[arg-type,union-attr]
    print(f"pyarrow.csv.read_csv, all text (baseline): {base:6.2f} s")
    print(f"read_settlement -> canonical pandas frame:  {ours:6.2f} s  -> {ours / base:.2f}x baseline")


if __name__ == "__main__":
    main()
