"""Flatten 100,000 credit responses: ``credits_to_frame`` against ``pandas.json_normalize``
followed by the same dtype fixes (ids as text, exact Decimal amounts, UTC datetimes), same run.

    .venv/bin/python benchmarks/bench_flatten.py [--n 100000]
"""

from __future__ import annotations

import argparse
import json
import time
from decimal import Decimal

import pandas as pd

from reconkit import credits_to_frame


def responses(n: int) -> list[dict]:
    out = []
    for i in range(n):
        credit_id = f"{6760635718126158603955 + i:022d}"
        out.append({
            "_links": {"void": {"method": "POST", "href": f"/pts/v2/credits/{credit_id}/voids"},
                       "self": {"method": "GET", "href": f"/pts/v2/credits/{credit_id}"}},
            "clientReferenceInformation": {"code": f"refund-{i}"},
            "creditAmountDetails": {"currency": "USD", "creditAmount": f"{i % 9999 + 1}.{i % 100:02d}"},
            "id": credit_id,
            "orderInformation": {"amountDetails": {"currency": "USD"}},
            "paymentAccountInformation": {"card": {"type": "001"}},
            "paymentInformation": {"tokenizedCard": {"type": "001"},
                                   "instrumentIdentifier": {"id": "7010000000016241111", "state": "ACTIVE"},
                                   "card": {"type": "001"}},
            "processorInformation": {"paymentAccountReferenceNumber": "V0010013019326121174070050420",
                                     "approvalCode": "888888", "responseCode": "100"},
            "reconciliationId": f"{i:08d}EDTK9EXS",
            "status": "PENDING",
            "submitTimeUtc": "2023-02-10T21:12:52Z",
        })
    return out


def baseline(raw: list[dict]) -> pd.DataFrame:
    frame = pd.json_normalize(raw, sep=".")
    frame = frame.astype({c: "string" for c in frame.columns})
    frame["submitTimeUtc"] = pd.to_datetime(frame["submitTimeUtc"], utc=True, format="ISO8601")
    frame["creditAmountDetails.creditAmount"] = [Decimal(v) for v in frame["creditAmountDetails.creditAmount"]]
    return frame


def best(fn, data, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn(data)
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    raw = json.loads(json.dumps(responses(args.n)))
    ours = best(credits_to_frame, raw, args.repeat)
    base = best(baseline, raw, args.repeat)
    print(f"json_normalize + dtype fixes (baseline): {base:6.2f} s")
    print(f"credits_to_frame:                        {ours:6.2f} s  -> {ours / base:.2f}x baseline")


if __name__ == "__main__":
    main()
