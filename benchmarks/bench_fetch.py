"""Bulk fetch: 2,000 credits from the sandbox (its own process) at 20 ms latency, 16 workers.

Compared in the same run with the ideal (N x latency / workers) and with a plain sequential
``requests`` loop doing the same signed GETs (on a sample, scaled to N).

    .venv/bin/python benchmarks/bench_fetch.py [--n 2000] [--latency-ms 20] [--workers 16]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import socket
import subprocess
import sys
import tempfile
import time

import requests

from reconkit import Client, Config
from reconkit.auth import CyberSourceAuth

CARD = {"number": "4111111111111111", "expiration_month": "12", "expiration_year": "2031", "type": "001"}


def _start_sandbox(latency_ms: float) -> tuple[subprocess.Popen[str], Config]:
    """The sandbox in its own process, as a remote server would be: no GIL shared with the client."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "reconkit", "sandbox", "--port", str(port), "--latency-ms",
                             str(latency_ms), "--start", "2026-11-02T00:00:00Z"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    lines = [proc.stdout.readline() for _ in range(5)]
    env = dict(line.strip().split("   ")[0].split("=", 1) for line in lines[1:])
    return proc, Config.from_env(env, dotenv=None)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--sequential-sample", type=int, default=300)
    args = parser.parse_args()
    proc, config = _start_sandbox(args.latency_ms)
    try:
        issuer = Client(config, ledger=":memory:", pool_size=args.workers)
        with concurrent.futures.ThreadPoolExecutor(args.workers) as pool:
            ids = [c.id for c in pool.map(lambda _: issuer.create_credit("1.00", "USD", card=CARD), range(args.n))]

        client = Client(config, ledger=":memory:", pool_size=args.workers)
        started = time.perf_counter()
        result = client.fetch_credits(ids, workers=args.workers, progress=False, cache=False)
        fetched = time.perf_counter() - started
        assert len(result.credits) == args.n, result

        with tempfile.TemporaryDirectory() as tmp:
            cached = Client(config, ledger=f"{tmp}/ledger.sqlite3", pool_size=args.workers)
            started = time.perf_counter()
            cached.fetch_credits(ids, workers=args.workers, progress=False, cache=True)
            with_cache = time.perf_counter() - started

        session = requests.Session()
        session.auth = CyberSourceAuth(config)
        sample = ids[: args.sequential_sample]
        started = time.perf_counter()
        for credit_id in sample:
            session.get(f"{config.base_url}/pts/v2/credits/{credit_id}", timeout=10).json()
        sequential = (time.perf_counter() - started) * args.n / len(sample)
    finally:
        proc.terminate()
        proc.wait(10)

    ideal = args.n * args.latency_ms / 1000 / args.workers
    print(f"ideal N*latency/workers (baseline):          {ideal:6.2f} s")
    print(f"fetch_credits, cache off:                    {fetched:6.2f} s  -> {fetched / ideal:.2f}x ideal")
    print(f"fetch_credits, cache on (SQLite, batched): {with_cache:6.2f} s  -> {with_cache / ideal:.2f}x ideal")
    print(f"sequential requests loop (from {len(sample)} GETs):    {sequential:6.2f} s  -> "
          f"{sequential / fetched:.1f}x slower than fetch_credits")


if __name__ == "__main__":
    main()
