"""Reconcile 1M credits against 5M settlement rows: ``reconcile`` against DuckDB doing the bare
full join plus a CASE classification in SQL, ``pandas.merge`` + ``numpy.select``, and datacompy
when it installs beside pandas 3; all in the same run. Peak RSS is reported.

    .venv/bin/python benchmarks/make_pbdr.py             # once
    .venv/bin/python benchmarks/bench_reconcile.py
"""

from __future__ import annotations

import argparse
import resource
import time

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from reconkit import read_settlement, reconcile

SQL = """
WITH c AS (SELECT * FROM credits), s AS (SELECT * FROM settlement)
SELECT c.credit_id, s.source_line,
  CASE WHEN s.source_line IS NULL THEN 'MISSING'
       WHEN c.credit_id IS NULL THEN 'UNEXPECTED'
       WHEN s.currency <> c.currency THEN 'CURRENCY_MISMATCH'
       WHEN s.amount <> c.amount THEN 'AMOUNT_MISMATCH'
       ELSE 'MATCHED' END AS outcome
FROM c FULL OUTER JOIN s ON c.reconciliation_id = s.reconciliation_id
"""


def timed(fn):
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", default="/tmp/reconkit-bench")
    args = parser.parse_args()
    credits = pd.read_pickle(f"{args.dir}/credits_1m.pkl")
    settlement = read_settlement(f"{args.dir}/pbdr_5m.csv")
    as_of = "2026-11-05T00:00:00Z"

    c_arrow = pa.table({"credit_id": credits["credit_id"].astype(str), "reconciliation_id":
                        credits["reconciliation_id"].astype(str), "currency": credits["currency"].astype(str),
                        "amount": pa.array(credits["amount"], pa.decimal128(20, 2))})
    s_arrow = pa.table({"reconciliation_id": pa.array(settlement["reconciliation_id"].array),
                        "currency": pa.array(settlement["currency"].array),
                        "amount": pa.array(settlement["amount"].array), "source_line": settlement["source_line"]})
    con = duckdb.connect()
    con.register("credits", c_arrow)
    con.register("settlement", s_arrow)
    duck, table = timed(lambda: con.sql(SQL).to_arrow_table())
    ours, result = timed(lambda: reconcile(credits, settlement, as_of=as_of))
    views, _ = timed(lambda: (result.credits, result.settlement))
    peak_reconcile = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024

    def with_pandas():
        merged = credits[["credit_id", "reconciliation_id", "currency", "amount"]].merge(
            settlement[["reconciliation_id", "currency", "amount", "source_line"]], on="reconciliation_id",
            how="outer", suffixes=("_c", "_s"), indicator=True)
        conditions = [merged["_merge"] == "left_only", merged["_merge"] == "right_only",
                      (merged["currency_c"] != merged["currency_s"]).fillna(False).to_numpy(bool),
                      (merged["amount_c"].astype(float) != merged["amount_s"].astype(float)).fillna(False)
                      .to_numpy(bool)]
        merged["outcome"] = np.select(conditions, ["MISSING", "UNEXPECTED", "CURRENCY_MISMATCH",
                                                   "AMOUNT_MISMATCH"], "MATCHED")
        return merged
    pandas_time, _ = timed(with_pandas)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    print(f"inputs: {len(credits):,} credits, {len(settlement):,} settlement rows")
    print(f"DuckDB full join + CASE (baseline):  {duck:6.2f} s  ({table.num_rows:,} rows)")
    print(f"reconcile (every outcome, conserved): {ours:6.2f} s  -> {ours / duck:.2f}x DuckDB  "
          f"({sum(result.counts()['credits'].values()):,} credit outcomes)")
    print(f"  + the per-row views (amounts, details): {views:6.2f} s  -> {(ours + views) / duck:.2f}x DuckDB in all")
    print(f"pandas.merge + numpy.select:          {pandas_time:6.2f} s  -> {pandas_time / duck:.2f}x DuckDB")
    try:
        import datacompy  # noqa: F401
        print("datacompy: installed (not run: it compares fields on a 1:1 key and has no reason codes)")
    except ImportError:
        print("datacompy: not installed beside pandas 3 (pip refuses its pandas<3 pin)")
    print(f"peak RSS up to the end of reconcile and its views: {peak_reconcile:.2f} GB; "
          f"whole run (pandas too): {peak:.2f} GB")


if __name__ == "__main__":
    main()
