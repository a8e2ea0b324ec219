"""Read a legacy PBDR CSV: ``read_settlement`` against a bare ``pyarrow.csv.read_csv`` of the same
file (all columns as text), in the same run.

    .venv/bin/python benchmarks/make_pbdr.py --rows 1000000 --credits 200000   # once: pbdr_1m.csv
    .venv/bin/python benchmarks/make_pbdr.py                                    # once: pbdr_5m.csv
    .venv/bin/python benchmarks/bench_read.py --file /tmp/reconkit-bench/pbdr_1m.csv --repeat 7
    .venv/bin/python benchmarks/bench_read.py --repeat 3 --rss   # 5M rows; peak RSS of each in a fresh process

The two are timed alternately, so a busy machine slows both alike; the ratio of the best times
and the median of the per-round ratios are printed (wall clock), and the same for CPU time.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from reconkit import read_settlement

NAMES = ["batch_id", "merchant_id", "batch_date", "request_id", "merchant_ref_number", "trans_ref_no",
         "payment_method", "currency", "amount", "transaction_type"]


def bare(path: str) -> pa.Table:
    return pacsv.read_csv(path, read_options=pacsv.ReadOptions(skip_rows=1),
                          convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(NAMES, pa.string())))


def ours(path: str) -> pd.DataFrame:
    return read_settlement(path)


def timed(fn: Callable[[], object]) -> tuple[float, float, int]:
    """Wall and CPU seconds, and the rows read; the result is dropped before the next run, so
    neither side pays for memory the other still holds."""
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    elapsed = time.perf_counter() - wall, time.process_time() - cpu
    return *elapsed, (result.num_rows if isinstance(result, pa.Table) else len(result))  # type: ignore[arg-type]


def peak_rss(which: str, path: str) -> float:
    """Peak resident memory (GB) of a fresh process doing only ``which``."""
    code = (f"import resource, sys; sys.path.insert(0, {sys.path[0]!r}); import bench_read as b; "
            f"b.{which}({path!r}); print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return int(out.split()[-1]) / 1e6  # ru_maxrss is in KB on Linux


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--file", default="/tmp/reconkit-bench/pbdr_5m.csv")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rss", action="store_true", help="also measure peak RSS of each in a fresh process")
    args = parser.parse_args()
    rounds = []
    for _ in range(args.repeat):
        base = timed(lambda: bare(args.file))
        mine = timed(lambda: ours(args.file))
        assert mine[2] == base[2]
        rounds.append((base, mine))
    rows = rounds[0][0][2]
    report = {"file": args.file, "rows": rows}
    for index, clock in ((0, "wall"), (1, "cpu")):
        base_best = min(r[0][index] for r in rounds)
        mine_best = min(r[1][index] for r in rounds)
        median = statistics.median(r[1][index] / r[0][index] for r in rounds)
        report[clock] = {"baseline_s": round(base_best, 3), "read_settlement_s": round(mine_best, 3),
                         "ratio_of_best": round(mine_best / base_best, 2), "median_ratio": round(median, 2)}
        print(f"{clock:4}  pyarrow.csv.read_csv, all text (baseline) {base_best:6.2f} s | read_settlement "
              f"{mine_best:6.2f} s | {mine_best / base_best:.2f}x baseline (median of rounds {median:.2f}x)")
    if args.rss:
        report["peak_rss_gb"] = {"baseline": round(peak_rss("bare", args.file), 2),
                                 "read_settlement": round(peak_rss("ours", args.file), 2)}
        print(f"peak RSS  baseline {report['peak_rss_gb']['baseline']:.2f} GB | read_settlement "
              f"{report['peak_rss_gb']['read_settlement']:.2f} GB")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
