"""The engine on Spark local[2] against the DuckDB path, on the same canonical Parquet data.

Each engine runs in its own process, one after the other, so each one's peak memory is its own
(the JVM included): ``duckdb`` reads the Parquet files into pandas and calls
:func:`reconkit.reconcile` (break table included); ``spark`` reads them with Spark and calls
:func:`reconkit.spark.reconcile`, writing the break table to Parquet. Peak memory is the largest
resident set of the engine's process and its children (the JVM), sampled every 50 ms from this
process, so a run that is killed still has its peak. Seconds exclude interpreter and JVM start-up.

    .venv/bin/python benchmarks/bench_spark.py --credits 500000 --rows 5000000
    .venv/bin/python benchmarks/bench_spark.py --credits 2000000 --rows 20000000 --data /work/tmp/spark20m \\
        --engines spark --driver-memory 6g

``--data`` keeps the generated Parquet in that folder (generated on the first run, reused after),
so the engines can be run in separate invocations; without it a temporary folder is used. Each
engine's progress (read, reconcile, breaks) goes to stderr with timestamps, so a failure shows
where it stopped.
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

ENGINES = ("duckdb", "spark")


class PeakMemory:
    """Largest RSS of a process plus its children, sampled in a thread."""

    def __init__(self, pid: int) -> None:
        self.peak = 0
        self._process = psutil.Process(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                tree = [self._process, *self._process.children(recursive=True)]
                total = sum(process.memory_info().rss for process in tree)
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


def progress(step: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {step}", file=sys.stderr, flush=True)


def make_data(folder: Path, credits: int, rows: int) -> None:
    """Write ``credits.parquet`` and ``settlement.parquet`` unless the folder has them for these sizes."""
    sizes = folder / "sizes.json"
    wanted = {"credits": credits, "rows": rows}
    if sizes.exists() and json.loads(sizes.read_text()) == wanted:
        return
    folder.mkdir(parents=True, exist_ok=True)
    sizes.unlink(missing_ok=True)
    credit_frame, settlement = frames(credits, rows, paired=int(credits * 0.98))
    credit_frame.to_parquet(folder / "credits.parquet")
    del credit_frame
    settlement.assign(source_file=settlement["source_file"].astype(str)).to_parquet(folder / "settlement.parquet")
    sizes.write_text(json.dumps(wanted))


def run_duckdb(folder: Path) -> dict:
    import pandas as pd
    import pyarrow.parquet as pq

    from reconkit import reconcile

    def read(name: str) -> pd.DataFrame:
        # Columns stay in Parquet's chunks (one per row group): reconcile takes them as they come.
        return pq.read_table(folder / name).to_pandas(types_mapper=pd.ArrowDtype)

    started = time.perf_counter()
    progress("duckdb: reading Parquet into pandas")
    credits, settlement = read("credits.parquet"), read("settlement.parquet")
    progress("duckdb: reconcile")
    result = reconcile(credits, settlement, as_of=AS_OF)
    progress("duckdb: done")
    return {"seconds": time.perf_counter() - started, "breaks": result.break_table.num_rows}


def run_spark(folder: Path, materialize: str, driver_memory: str, shuffle_partitions: int) -> dict:
    from reconkit.spark import local_session, read_canonical, reconcile

    spark = local_session(2, driver_memory=driver_memory, shuffle_partitions=shuffle_partitions)
    started = time.perf_counter()
    credits = spark.read.parquet(str(folder / "credits.parquet"))
    settlement = read_canonical(spark, str(folder / "settlement.parquet"))
    progress(f"spark: reconcile (materialize={materialize})")
    result = reconcile(credits, settlement, as_of=AS_OF, materialize=materialize)
    progress("spark: writing the break table")
    result.breaks.write.mode("overwrite").parquet(str(folder / "spark_breaks"))
    breaks = spark.read.parquet(str(folder / "spark_breaks")).count()
    progress("spark: done")
    return {"seconds": time.perf_counter() - started, "breaks": breaks}


def measure(engine: str, folder: Path, args: argparse.Namespace) -> dict:
    """Run one engine in a child process; its outcome, or how it failed, with the peak memory either way."""
    command = [sys.executable, __file__, "--engine", engine, "--data", str(folder), "--materialize",
               args.materialize, "--driver-memory", args.driver_memory, "--shuffle-partitions",
               str(args.shuffle_partitions)]
    started = time.perf_counter()
    stderr_lines: list[str] = []
    with (subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as child,
          PeakMemory(child.pid) as memory):
        relay = threading.Thread(target=_relay, args=(child.stderr, stderr_lines), daemon=True)
        relay.start()
        stdout = child.stdout.read()
        child.wait()
        relay.join()
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    outcome = json.loads(lines[-1]) if child.returncode == 0 and lines else {
        "error": f"exit {child.returncode}: " + " | ".join(line.strip() for line in stderr_lines[-4:]),
        "after_seconds": time.perf_counter() - started}
    outcome["peak_gb"] = memory.peak / 1e9
    return outcome


def _relay(stream: object, kept: list[str]) -> None:
    for line in stream:
        sys.stderr.write(line)
        kept.append(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--credits", type=int, default=2_000_000)
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--data", help="keep the generated Parquet here (reused when the sizes match)")
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    parser.add_argument("--materialize", default="cache")
    parser.add_argument("--driver-memory", default="3g", help="spark.driver.memory (the local JVM's heap)")
    parser.add_argument("--shuffle-partitions", type=int, default=4)
    parser.add_argument("--engine", choices=ENGINES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine:
        folder = Path(args.data)
        outcome = run_duckdb(folder) if args.engine == "duckdb" else run_spark(
            folder, args.materialize, args.driver_memory, args.shuffle_partitions)
        print(json.dumps(outcome))
        return
    with tempfile.TemporaryDirectory(prefix="reconkit-bench-spark-") as tmp:
        folder = Path(args.data or tmp)
        progress(f"data: {args.rows:,} rows x {args.credits:,} credits in {folder}")
        make_data(folder, args.credits, args.rows)
        results = {engine: measure(engine, folder, args) for engine in args.engines}
    print(f"{args.rows:,} settlement rows x {args.credits:,} credits (Spark local[2], materialize="
          f"{args.materialize}, driver memory {args.driver_memory}, {args.shuffle_partitions} shuffle partitions)")
    for engine, outcome in results.items():
        if "error" in outcome:
            print(f"  {engine:<7} failed after {outcome['after_seconds']:.1f} s, peak {outcome['peak_gb']:.2f} GB: "
                  f"{outcome['error']}")
        else:
            print(f"  {engine:<7} {outcome['seconds']:8.1f} s  peak {outcome['peak_gb']:.2f} GB  "
                  f"{outcome['breaks']:,} breaks")
    if all("seconds" in results.get(engine, {}) for engine in ENGINES):
        print(f"  spark / duckdb: {results['spark']['seconds'] / results['duckdb']['seconds']:.1f}x time, "
              f"{results['spark']['peak_gb'] / results['duckdb']['peak_gb']:.1f}x memory")
    print(json.dumps({"credits": args.credits, "rows": args.rows, **results}))


if __name__ == "__main__":
    main()
