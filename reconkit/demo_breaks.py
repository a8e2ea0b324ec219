"""The break workflow over two sandbox days: day 1 is reconciled and recorded; the clock moves on
a day, the cut-off batches the credits that were still pending, a second settlement file
arrives, and day 2 carries the breaks forward, clears the timing differences by itself, and one
break is resolved by one analyst and signed off by another.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .breaks import BreakBook, BreakDiff
from .investigation import Investigation
from .sandbox import Sandbox
from .sandbox.scenario import populate
from .sandbox.settlement import SettlementBundle

__all__ = ["DAY1_DISCREPANCIES", "DAY2_DISCREPANCIES", "TwoDays", "run_two_days"]

DAY1_DISCREPANCIES = {"missing": 2, "amount": 3, "duplicate": 1, "unexpected": 2, "voided_settled": 1}
DAY2_DISCREPANCIES = {"missing": 1, "amount": 1, "unexpected": 1}
MAKER, CHECKER = "ann", "bob"


@dataclass(frozen=True)
class TwoDays:
    """What :func:`run_two_days` did: the two settlement bundles (with their ground truth), the
    two results, the book's file and run ids, the day-2 diff and the break resolved and signed off."""

    day1: SettlementBundle
    day2: SettlementBundle
    results: tuple[Any, Any]
    credits: list[dict[str, Any]]
    ledger: Path
    runs: tuple[int, int]
    diff: BreakDiff
    signed_off: str


def run_two_days(out_dir: Path, *, credits: int = 120, seed: int = 42,
                 say: Callable[[str], None] = print) -> TwoDays:
    """Run the two days against a fresh sandbox; write both settlement files, the book (in
    ``out_dir/ledger.sqlite3``) and its audit (CSV and Excel) under ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ledger = out_dir / "ledger.sqlite3"
    for stale in (ledger, ledger.with_name(ledger.name + "-wal"), ledger.with_name(ledger.name + "-shm")):
        stale.unlink(missing_ok=True)  # the demo's own book starts empty on every run
    start = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
    with Sandbox(start=start, seed=seed) as sandbox, tempfile.TemporaryDirectory() as scratch, \
            BreakBook(ledger, analyst=MAKER) as book:
        client = sandbox.client(ledger=str(Path(scratch) / "client.sqlite3"))
        scenario = populate(sandbox, client, credits, seed=seed, days=3)
        say(f"SANDBOX · simulated money · break workflow over two days · {len(scenario.credit_ids)} credits")

        # Day 1: the last day's credits are not batched yet, so they are missing within the grace period.
        day1 = sandbox.settlement(format="pbdr_csv", discrepancies=DAY1_DISCREPANCIES, seed=seed,
                                  out_dir=out_dir / "settlement", filename="day1_PaymentBatchDetailReport.csv")
        model = Investigation(client)  # the investigation the app and the CLI run, day after day
        result1 = _reconcile(model, scenario.credit_ids, day1.files, day1)
        run1 = model.record(book)
        say(f"day 1 ({day1.as_of:%Y-%m-%d %H:%M} UTC): run {run1}, {len(book.open())} open breaks")

        # Day 2: a day later the cut-off has batched them; the new batch date's file arrives.
        before = set(sandbox.state.batch_dates())
        sandbox.advance(timedelta(days=1))
        new_dates = sorted(set(sandbox.state.batch_dates()) - before)
        day2 = sandbox.settlement((new_dates[0], new_dates[-1]), format="pbdr_csv",
                                  discrepancies=DAY2_DISCREPANCIES, seed=seed + 1, out_dir=out_dir / "settlement",
                                  filename="day2_PaymentBatchDetailReport.csv", captures=0)
        result2 = _reconcile(model, scenario.credit_ids, [*day1.files, *day2.files], day2)
        run2 = model.record(book)
        diff = book.diff(run1, run2)
        say(f"day 2 ({day2.as_of:%Y-%m-%d %H:%M} UTC): run {run2} · {diff.summary_text()}")
        cleared = diff.cleared
        say(f"  cleared by the new file: {len(cleared)} "
            f"({int((cleared['status'] == 'timing_difference').sum())} timing differences, reason SETTLED)")
        say(f"  carried forward from day 1: {len(diff.still_open)} still open")
        say(f"  new on day 2: {len(diff.new)}")

        signed = _resolve_one(book, say)
        table = book.table()[["key", "status", "owner", "outcome", "amount_at_risk", "currency", "days_open",
                              "reason", "signed_off_by"]].head(15).astype(object)
        say("")
        say(table.where(table.notna(), "").to_string(index=False))
        aging = book.aging()
        say("")
        say("aging of open breaks (days since first seen / since submission):")
        say(aging[aging["breaks"] > 0].to_string(index=False))
        csv_path = book.export_audit(out_dir / "break_audit.csv")
        xlsx_path = book.export_audit(out_dir / "break_audit.xlsx")
        say(f"wrote {csv_path} and {xlsx_path} ({len(book.events())} changes)")
        sandbox_credits = sandbox.credits()
    return TwoDays(day1, day2, (result1, result2), sandbox_credits, ledger, (run1, run2), diff, signed)


def _reconcile(model: Investigation, ids: list[str], files: list[Path], bundle: SettlementBundle) -> Any:
    """The day's files read (digested), the credits fetched afresh, reconciled at the day's as-of."""
    model.load(files)
    model.fetch(ids, refresh=True, progress=sys.stderr.isatty())
    model.set_parameters(as_of=bundle.as_of, grace_days=bundle.grace_days)
    return model.reconcile()


def _resolve_one(book: BreakBook, say: Callable[[str], None]) -> str:
    """The maker investigates the largest open amount mismatch and resolves it; the checker signs off."""
    open_breaks = book.open()
    mismatches = open_breaks[open_breaks["outcome"] == "AMOUNT_MISMATCH"]
    key = str((mismatches if len(mismatches) else open_breaks)["key"].iloc[0])
    book.assign(key, MAKER)
    book.note(key, "processor confirms the short payment; the difference was re-sent in a separate credit")
    book.resolve(key, "PROCESSOR_CORRECTED", note="difference re-sent")
    state = book.sign_off(key, by=CHECKER, note="checked against the processor's statement")
    say(f"  {key}: resolved by {state.resolved_by} ({state.reason}), signed off by {state.signed_off_by}")
    return key
