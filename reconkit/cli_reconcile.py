"""``reconkit reconcile``: credits (ids to fetch, or a saved credits frame) against settlement files."""

from __future__ import annotations

import argparse
from decimal import Decimal
from pathlib import Path

import pandas as pd

__all__ = ["load_credits", "run_reconcile"]


def load_credits(path: str | Path) -> pd.DataFrame:
    """A saved credits frame (.parquet, or .csv with the curated columns) or a CSV of ids to fetch.

    A CSV of ids is fetched through :func:`reconkit.session.connect`: the configured
    credentials, or the embedded sandbox when there are none.
    """
    path = Path(path)
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
        frame["amount"] = frame["amount"].map(lambda v: None if v is None or pd.isna(v) else Decimal(str(v)))
        return frame
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    if {"credit_id", "amount", "currency", "submit_time_utc"} <= set(frame.columns):
        frame = frame.replace({"": None})
        frame["amount"] = frame["amount"].map(lambda v: None if v is None else Decimal(v))
        frame["submit_time_utc"] = pd.to_datetime(frame["submit_time_utc"], utc=True)
        for column in frame.columns:
            if column not in ("amount", "submit_time_utc"):
                frame[column] = frame[column].astype("string")
        return frame
    column = next((c for c in ("credit_id", "id", "request_id") if c in frame.columns), frame.columns[0])
    from .session import connect

    with connect() as client:
        print(f"fetching {len(frame)} credit(s) from {client.config.environment_name} ({client.config.base_url})")
        result = client.fetch_credits(frame[column].tolist())
    if len(result.failed):
        print(f"{len(result.failed)} id(s) could not be fetched:")
        print(result.failed.to_string(index=False))
    return result.to_frame()


def run_reconcile(args: argparse.Namespace) -> int:
    """Run the ``reconcile`` command; prints the summary and writes the report(s)."""
    from .match import reconcile
    from .settlement import read_settlement

    credits = load_credits(args.credits)
    settlement = read_settlement(args.settlement, format=args.format)
    result = reconcile(credits, settlement, amount_tolerance=args.tolerance, grace_days=args.grace_days,
                       as_of=args.as_of)
    print(result.summary_text())
    result.to_html(args.output)
    print(f"wrote {args.output}")
    if args.excel:
        result.to_excel(args.excel)
        print(f"wrote {args.excel}")
    return 0


