"""Sandbox throughput: signed GETs of the self link per second at 0 ms latency.

Baseline, measured in the same run: the same client threads against a bare stdlib
ThreadingHTTPServer that answers a fixed JSON body (no auth, no state). The ratio says what
signature verification, SQLite and routing cost on top of Python's HTTP server.

    .venv/bin/python benchmarks/bench_sandbox.py [--requests 4000] [--workers 16]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests
from requests.adapters import HTTPAdapter

from reconkit import Client
from reconkit.sandbox import Sandbox

CARD = {"number": "4111111111111111", "expiration_month": "12", "expiration_year": "2031", "type": "001"}


class _Bare(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    body = json.dumps({"id": "1" * 22, "status": "PENDING"}).encode()

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        return


def _rate(call, n: int, workers: int) -> float:
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda _: call(), range(n)))
    return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args()

    bare = ThreadingHTTPServer(("127.0.0.1", 0), _Bare)
    bare.daemon_threads = True
    threading.Thread(target=bare.serve_forever, daemon=True).start()
    session = requests.Session()
    session.mount("http://", HTTPAdapter(pool_maxsize=args.workers))
    url = f"http://127.0.0.1:{bare.server_address[1]}/pts/v2/credits/1"
    _rate(lambda: session.get(url).json(), 200, args.workers)
    baseline = _rate(lambda: session.get(url).json(), args.requests, args.workers)
    bare.shutdown()

    with Sandbox(start=datetime(2026, 11, 2, tzinfo=UTC)) as sb:
        client = Client(sb.config, ledger=":memory:", pool_size=args.workers)
        credit = client.create_credit("1.00", "USD", card=CARD)
        _rate(lambda: client.get_credit(credit), 200, args.workers)
        sandbox = _rate(lambda: client.get_credit(credit), args.requests, args.workers)
        create = _rate(lambda: client.create_credit("1.00", "USD", card=CARD), args.requests // 4, args.workers)

    print(f"bare stdlib server (baseline): {baseline:8.0f} GET/s")
    print(f"sandbox, signed self-link GET: {sandbox:8.0f} GET/s  ratio {sandbox / baseline:.2f}x of baseline")
    print(f"sandbox, signed credit POST:   {create:8.0f} POST/s (ledger in memory)")


if __name__ == "__main__":
    main()
