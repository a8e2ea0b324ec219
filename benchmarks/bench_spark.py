"""The engine on Spark local[2] against the DuckDB path, on the same canonical Parquet data.

Each engine runs in its own process (so each one's peak memory is its own, the JVM included):
``duckdb`` reads the Parquet files into pandas and calls :func:`reconkit.reconcile` (break table
included); ``spark`` reads them with Spark and calls :func:`reconkit.spark.reconcile`, writing the
break table to Parquet. Peak memory is the largest resident set of the process and its children
(the JVM), sampled every 50 ms.

    .venv/bin/python benchmarks/bench_spark.py --credits 2000000 --rows 20000000
    .venv/bin/python benchmarks/bench_spark.py --credits 200000 --rows 2000000   # what fits here
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).parent))
from bench_reconcile import AS_OF, frames


class PeakMemory:
    """Largest RSS of this process plus its children, sampled in a thread."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            try:
                total = me.memory_info().rss + sum(c.memory_info().rss for c in me.children(recursive=True))
            except psutil.Error:
                total = 0
            self.peak = max(self.peak, total)
            self._stop.wait(0.05)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def make_data(folder: Path, credits: int, rows: int) -> None:
    credit_frame, settlement = frames(credits, rows, paired=int(credits * 0.98))
    credit_frame.to_parquet(folder / "credits.parquet")
    settlement.assign(source_file=settlement["source_file"].astype(str)).to_parquet(folder / "settlement.parquet")


def run_duckdb(folder: Path) -> dict:
    import pandas as pd
    import pyarrow.parquet as pq

    from reconkit import reconcile

    def read(name: str) -> pd.DataFrame:
        # One chunk per column: the pandas edges of reconcile do not take chunked Arrow columns yet.
        return pq.read_table(folder / name).combine_chunks().to_pandas(types_mapper=pd.ArrowDtype)

    started = time.perf_counter()
    credits, settlement = read("credits.parquet"), read("settlement.parquet")
    result = reconcile(credits, settlement, as_of=AS_OF)
    return {"seconds": time.perf_counter() - started, "breaks": result.break_table.num_rows}


def run_spark(folder: Path, materialize: str) -> dict:
    from reconkit.spark import local_session, read_canonical, reconcile

    spark = local_session(2, driver_memory="3g")
    started = time.perf_counter()
    credits = spark.read.parquet(str(folder / "credits.parquet"))
    settlement = read_canonical(spark, str(folder / "settlement.parquet"))
    result = reconcile(credits, settlement, as_of=AS_OF, materialize=materialize)
    result.breaks.write.mode("overwrite").parquet(str(folder / "spark_breaks"))
    breaks = spark.read.parquet(str(folder / "spark_breaks")).count()
    return {"seconds": time.perf_counter() - started, "breaks": breaks}


def child(engine: str, folder: Path, materialize: str) -> None:
    with PeakMemory() as memory:
        outcome = run_duckdb(folder) if engine == "duckdb" else run_spark(folder, materialize)
    outcome["peak_gb"] = memory.peak / 1e9
    print(json.dumps(outcome))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--credits", type=int, default=2_000_000)
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--materialize", default="cache")
    parser.add_argument("--engine", choices=["duckdb", "spark"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine:
        child(args.engine, Path(args.folder), args.materialize)
        return
    with tempfile.TemporaryDirectory(prefix="reconkit-bench-spark-") as tmp:
        folder = Path(tmp)
        make_data(folder, args.credits, args.rows)
        results = {}
        for engine in ("duckdb", "spark"):
            done = subprocess.run([sys.executable, __file__, "--engine", engine, "--folder", str(folder),
                                   "--materialize", args.materialize], capture_output=True, text=True)
            lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
            results[engine] = json.loads(lines[-1]) if lines else {"error": done.stderr.strip()[-300:]}
        print(f"{args.rows:,} settlement rows x {args.credits:,} credits (Spark local[2], materialize="
              f"{args.materialize})")
        for engine, outcome in results.items():
            if "error" in outcome:
                print(f"  {engine:<7} failed: {outcome['error']}")
            else:
                print(f"  {engine:<7} {outcome['seconds']:8.1f} s  peak {outcome['peak_gb']:.2f} GB  "
                      f"{outcome['breaks']:,} breaks")
        if all("seconds" in o for o in results.values()):
            print(f"  spark / duckdb: {results['spark']['seconds'] / results['duckdb']['seconds']:.1f}x time, "
                  f"{results['spark']['peak_gb'] / results['duckdb']['peak_gb']:.1f}x memory")


if __name__ == "__main__":
    main()
