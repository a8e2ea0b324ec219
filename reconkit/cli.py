"""The ``reconkit`` command: the sandbox, settlement generation, reconciliation and the demo."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from .errors import ReconkitError

__all__ = ["main"]


def _triggers_help() -> str:
    from .sandbox import TRIGGERS

    lines = ["amount triggers (exact totalAmount, any currency):"]
    for amount, (behaviour, reason, _message) in TRIGGERS.items():
        effect = {"decline": "201 DECLINED", "invalid": "400 INVALID_REQUEST", "server": "502 SERVER_ERROR",
                  "timeout": "502 SERVER_ERROR after creating the credit"}[behaviour]
        lines.append(f"  {amount:>8}  {effect} {reason}")
    return "\n".join(lines)


def _parse_when(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _discrepancies(specs: list[str]) -> dict[str, float]:
    result: dict[str, float] = {}
    for spec in specs:
        kind, sep, value = spec.partition("=")
        if not sep:
            raise SystemExit(f"--discrepancy {spec!r} is not kind=count or kind=rate")
        result[kind] = float(value) if "." in value else int(value)
    return result


def _cmd_sandbox(args: argparse.Namespace) -> int:
    from .sandbox import FaultPlan, Sandbox

    if args.action == "settlement":
        return _cmd_settlement(args)
    faults = FaultPlan.parse(args.fault or [], latency_ms=args.latency_ms, jitter_ms=args.jitter_ms,
                             retry_after=args.retry_after, hang_seconds=args.hang_seconds, seed=args.seed)
    sandbox = Sandbox(port=args.port, host=args.host, seed=args.seed, db=args.db,
                      start=_parse_when(args.start) if args.start else None,
                      tss_delay=timedelta(minutes=args.tss_delay_minutes),
                      self_link_status=405 if args.self_link_405 else 200, faults=faults)
    sandbox.start()
    creds = sandbox.credentials
    print(f"reconkit sandbox (simulated money) listening on {sandbox.url}")
    print(f"  CYBERSOURCE_ENVIRONMENT={sandbox.url}")
    print(f"  CYBERSOURCE_MERCHANT_ID={creds.merchant_id}")
    print(f"  CYBERSOURCE_KEY_ID={creds.key_id}")
    print(f"  CYBERSOURCE_SECRET_KEY={creds.secret_key}   (sandbox-only key, seed {args.seed})")
    print(_triggers_help())
    print("Ctrl-C to stop.", flush=True)
    try:
        sandbox.serve_forever()
    except KeyboardInterrupt:
        sandbox.stop()
    return 0


def _cmd_settlement(args: argparse.Namespace) -> int:
    from .sandbox.settlement import generate_settlement
    from .sandbox.state import SandboxState

    if args.db == ":memory:":
        raise SystemExit("settlement needs the sandbox's --db file (a memory sandbox keeps nothing to read)")
    if not Path(args.db).is_file():
        raise SystemExit(f"{args.db}: no such sandbox database")
    state = SandboxState(args.db, seed=args.seed)
    try:
        if args.advance_hours:
            state.advance(timedelta(hours=args.advance_hours))
        date_range = None
        if args.date_from or args.date_to:
            date_range = (date.fromisoformat(args.date_from or args.date_to),
                          date.fromisoformat(args.date_to or args.date_from))
        bundle = generate_settlement(state, date_range, format=args.format,
                                     discrepancies=_discrepancies(args.discrepancy or []), seed=args.seed,
                                     out_dir=args.out, grace_days=args.grace_days)
    finally:
        state.close()
    for path in bundle.files:
        print(f"wrote {path}")
    truth = bundle.write_truth(Path(args.out) / f"{bundle.files[0].stem}_truth.csv")
    print(f"wrote {truth} (ground truth: {bundle.outcome_counts()})")
    return 0


def _cmd_reconcile(args: argparse.Namespace) -> int:
    from .cli_reconcile import run_reconcile

    return run_reconcile(args)


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(out_dir=Path(args.out), credits=args.credits, seed=args.seed,
                    execute_notebook=not args.no_notebook)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``reconkit`` command."""
    from .sandbox.faults import ENDPOINTS, FAULT_KINDS
    from .sandbox.settlement import DISCREPANCY_KINDS, FORMATS

    parser = argparse.ArgumentParser(prog="reconkit", description="Refund reconciliation for CyberSource credits.")
    commands = parser.add_subparsers(dest="command", required=True)

    sandbox = commands.add_parser(
        "sandbox", help="run the offline CyberSource sandbox", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="A local server speaking CyberSource's credit API with simulated money.",
        epilog=_triggers_help() + f"\n\nfault kinds: {', '.join(FAULT_KINDS)}; endpoints: {', '.join(ENDPOINTS)}"
        "\nexample: reconkit sandbox --fault get:429=0.1 --fault reset=0.02 --latency-ms 20")
    sandbox.add_argument("--port", type=int, default=8765)
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--seed", type=int, default=0)
    sandbox.add_argument("--db", default=":memory:", help="SQLite file to keep credits across restarts")
    sandbox.add_argument("--start", help="freeze the sandbox clock at this ISO time")
    sandbox.add_argument("--tss-delay-minutes", type=float, default=5.0)
    sandbox.add_argument("--self-link-405", action="store_true", help="answer GET on the self link with 405")
    sandbox.add_argument("--fault", action="append", metavar="[ENDPOINT:]KIND=RATE")
    sandbox.add_argument("--latency-ms", type=float, default=0.0)
    sandbox.add_argument("--jitter-ms", type=float, default=0.0)
    sandbox.add_argument("--retry-after", default="1")
    sandbox.add_argument("--hang-seconds", type=float, default=30.0)
    actions = sandbox.add_subparsers(dest="action", required=False)
    settlement = actions.add_parser("settlement", help="write settlement files for the credits a sandbox holds")
    settlement.add_argument("--db", required=True, help="the sandbox's SQLite file")
    settlement.add_argument("--seed", type=int, default=0)
    settlement.add_argument("--format", choices=FORMATS, default="pbdr_csv")
    settlement.add_argument("--out", default="out/settlement")
    settlement.add_argument("--from", dest="date_from")
    settlement.add_argument("--to", dest="date_to")
    settlement.add_argument("--discrepancy", action="append", metavar="KIND=N",
                            help=f"kinds: {', '.join(DISCREPANCY_KINDS)}; a count, or a rate such as 0.05")
    settlement.add_argument("--grace-days", type=int, default=3)
    settlement.add_argument("--advance-hours", type=float, default=0.0,
                            help="advance the sandbox clock first (runs batch cut-offs)")
    sandbox.set_defaults(func=_cmd_sandbox)

    reconcile = commands.add_parser("reconcile", help="reconcile credits against settlement files")
    reconcile.add_argument("credits", help="a CSV of credit ids (fetched through the client) or a saved credits "
                                           "frame (.csv/.parquet with a credit_id column and amounts)")
    reconcile.add_argument("settlement", nargs="+", help="settlement files or globs")
    reconcile.add_argument("-o", "--output", default="report.html")
    reconcile.add_argument("--excel", help="also write the workbook here")
    reconcile.add_argument("--tolerance", default="0.00")
    reconcile.add_argument("--grace-days", type=int, default=3)
    reconcile.add_argument("--as-of", help="ISO time the ages are measured at (default: now)")
    reconcile.add_argument("--format", default="auto")
    reconcile.set_defaults(func=_cmd_reconcile)

    demo = commands.add_parser("demo", help="run the whole investigation offline against the sandbox")
    demo.add_argument("--out", default="out")
    demo.add_argument("--credits", type=int, default=300)
    demo.add_argument("--seed", type=int, default=42)
    demo.add_argument("--no-notebook", action="store_true", help="skip executing notebook 02")
    demo.set_defaults(func=_cmd_demo)

    from .cli_breaks import add_breaks_parser

    add_breaks_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``reconkit`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ReconkitError as exc:
        print(f"reconkit: {exc}", file=sys.stderr)
        return 2
