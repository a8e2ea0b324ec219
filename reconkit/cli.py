"""The ``reconkit`` command: the sandbox, settlement generation, reconciliation and the demo."""

from __future__ import annotations

import argparse
import ssl
import sys
from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import NoReturn

from .cli_checks import (
    check_folder,
    count,
    discrepancy,
    encoding,
    iso_date,
    non_negative,
    port,
    positive_count,
    retry_after,
    sandbox_db,
    sandbox_to_read,
)
from .errors import ReconkitError, SettlementEncodingError
from .inert import shown
from .investigation import FieldError, NotReadError

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (usage is one ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _triggers_help() -> str:
    from .sandbox import TRIGGERS

    lines = ["amount triggers (exact totalAmount, any currency):"]
    for amount, (behaviour, reason, _message) in TRIGGERS.items():
        effect = {"decline": "201 DECLINED", "invalid": "400 INVALID_REQUEST", "server": "502 SERVER_ERROR",
                  "timeout": "502 SERVER_ERROR after creating the credit"}[behaviour]
        lines.append(f"  {amount:>8}  {effect} {reason}")
    return "\n".join(lines)


def _cmd_sandbox(args: argparse.Namespace) -> int:
    from .sandbox import FaultPlan, Sandbox

    if args.action == "settlement":
        return _cmd_settlement(args)
    if args.profile == "live_like" and args.self_link_405:
        raise argparse.ArgumentTypeError("--self-link-405: the live_like profile already answers the self link 405")
    if args.profile == "live_like" and args.tss_delay_minutes is not None:
        raise argparse.ArgumentTypeError("--tss-delay-minutes applies to --profile seed; the live_like profile's "
                                         "lag is --index-lag-minutes")
    if args.profile == "seed" and args.index_lag_minutes is not None:
        raise argparse.ArgumentTypeError("--index-lag-minutes applies to --profile live_like; the seed profile's "
                                         "lag is --tss-delay-minutes")
    try:
        faults = FaultPlan.parse(args.fault or [], latency_ms=args.latency_ms, jitter_ms=args.jitter_ms,
                                 retry_after=args.retry_after, hang_seconds=args.hang_seconds, seed=args.seed)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--fault: {exc}") from None
    tls = _tls_context(args.tls_cert, args.tls_key)
    _check_address(args.host, args.port)
    created = args.db != ":memory:" and not Path(args.db).exists()
    if created:
        check_folder(str(Path(args.db).parent), "--db")
        Path(args.db).parent.mkdir(parents=True, exist_ok=True)
    sandbox = Sandbox(port=args.port, host=args.host, seed=args.seed, db=args.db,
                      start=args.start, profile=args.profile,
                      index_lag=None if args.index_lag_minutes is None else timedelta(minutes=args.index_lag_minutes),
                      tss_delay=None if args.tss_delay_minutes is None else timedelta(minutes=args.tss_delay_minutes),
                      self_link_status=405 if args.self_link_405 else None, faults=faults, tls=tls)
    sandbox.start()
    creds = sandbox.credentials
    if created:
        print(f"created sandbox database {args.db}")
    print(f"reconkit sandbox (simulated money) listening on {sandbox.url}")
    print(f"  CYBERSOURCE_ENVIRONMENT={sandbox.url}")
    print(f"  CYBERSOURCE_MERCHANT_ID={creds.merchant_id}")
    print(f"  CYBERSOURCE_KEY_ID={creds.key_id}")
    print(f"  CYBERSOURCE_SECRET_KEY={creds.secret_key}   (sandbox-only key, seed {args.seed})")
    if tls is not None:
        print(f"  REQUESTS_CA_BUNDLE={Path(args.tls_cert).resolve()}   (reconkit's client then trusts the "
              f"certificate; the official SDK: run_environment {args.host}:{sandbox.port}, ssl_verify 0)")
    print(_triggers_help())
    print("Ctrl-C to stop.", flush=True)
    try:
        sandbox.serve_forever()
    except KeyboardInterrupt:
        sandbox.stop()
    return 0


def _check_address(host: str, port: int) -> None:
    """Refuse an address the server could not listen on, before any file is created for it."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise argparse.ArgumentTypeError(f"--host {host}: not an address to listen on ({exc})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise argparse.ArgumentTypeError(f"--port {port} on --host {host}: cannot listen there "
                                             f"({exc.strerror or exc})") from None


def _tls_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    """The server's TLS context from a PEM certificate (and its key, unless the file holds both)."""
    if cert is None:
        if key is not None:
            raise argparse.ArgumentTypeError("--tls-key needs --tls-cert")
        return None
    for option, path in (("--tls-cert", cert), ("--tls-key", key)):
        if path is not None and not Path(path).is_file():
            raise argparse.ArgumentTypeError(f"{option} {path}: " + ("is not a file" if Path(path).exists()
                                                                     else "no such file"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        named = f"--tls-cert {cert}" + (f" with --tls-key {key}" if key else "")
        raise argparse.ArgumentTypeError(f"{named}: not a PEM certificate with its private key ({exc.reason or exc})"
                                         ) from None
    return context


def _cmd_settlement(args: argparse.Namespace) -> int:
    from .sandbox.settlement import generate_settlement
    from .sandbox.state import SandboxState

    sandbox_to_read(args.db, "--db")
    # The truth is not settlement: beside the settlement files a glob over them would read it as a report.
    out = check_folder(args.out, "--out")
    truth_folder = check_folder(args.truth, "--truth") if args.truth else out.parent / "truth"
    if not args.truth:
        check_folder(str(truth_folder), "--out")
    if truth_folder.resolve() == out.resolve():
        raise argparse.ArgumentTypeError(f"--truth {truth_folder}: is the --out folder; the ground truth would be "
                                         "read as a settlement file there")
    date_range = None
    if args.date_from or args.date_to:
        date_range = (args.date_from or args.date_to, args.date_to or args.date_from)
        if date_range[0] > date_range[1]:
            raise argparse.ArgumentTypeError(f"--from {date_range[0]} is after --to {date_range[1]}")
    state = SandboxState(args.db, seed=args.seed)
    try:
        if args.advance_hours:
            state.advance(timedelta(hours=args.advance_hours))
        bundle = generate_settlement(state, date_range, format=args.format,
                                     discrepancies=dict(args.discrepancy or []), seed=args.seed,
                                     out_dir=args.out, grace_days=args.grace_days)
    finally:
        state.close()
    truth_folder.mkdir(parents=True, exist_ok=True)
    for path in bundle.files:
        print(f"wrote {path}")
    for kind, asked in (args.discrepancy or []):
        if isinstance(asked, int) and bundle.injected.get(kind, 0) < asked:  # a count, not a rate
            print(f"NOTE: --discrepancy {kind}={asked}: only {bundle.injected.get(kind, 0)} injected (too few "
                  "credits in the range to carry more)")
    truth = bundle.write_truth(truth_folder / f"{bundle.files[0].stem}_truth.csv")
    print(f"wrote {truth} (ground truth: {bundle.outcome_counts()})")
    return 0


def _cmd_reconcile(args: argparse.Namespace) -> int:
    from .cli_reconcile import run_reconcile

    return run_reconcile(args)


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(out_dir=check_folder(args.out, "--out"), credits=args.credits, seed=args.seed,
                    execute_notebook=not args.no_notebook)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``reconkit`` command."""
    from .cli_reconcile import parse_as_of, parse_grace_days, parse_tolerance
    from .sandbox.faults import ENDPOINTS, FAULT_KINDS
    from .sandbox.settlement import DISCREPANCY_KINDS, FORMATS
    from .settlement import FORMATS as SETTLEMENT_FORMATS

    parser = _Parser(prog="reconkit", description="Refund reconciliation for CyberSource credits.")
    commands = parser.add_subparsers(dest="command", required=True)

    sandbox = commands.add_parser(
        "sandbox", help="run the offline CyberSource sandbox", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="A local server speaking CyberSource's credit API with simulated money.",
        epilog=_triggers_help() + f"\n\nfault kinds: {', '.join(FAULT_KINDS)}; endpoints: {', '.join(ENDPOINTS)}"
        "\nexample: reconkit sandbox --fault get:429=0.1 --fault reset=0.02 --latency-ms 20")
    sandbox.add_argument("--port", type=port, default=8765, help="port to listen on (default 8765; 0 picks a free one)")
    sandbox.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sandbox.add_argument("--seed", type=int, default=0, help="seed of the credentials, ids and faults (default 0)")
    sandbox.add_argument("--db", default=":memory:", type=sandbox_db,
                         help="SQLite file to keep credits across restarts (created if absent, and said so)")
    sandbox.add_argument("--start", type=parse_as_of, help="freeze the sandbox clock at this ISO time")
    sandbox.add_argument("--tss-delay-minutes", type=non_negative, default=None,
                         help="minutes Transaction Details answers 404 after a credit is created (default 5)")
    sandbox.add_argument("--self-link-405", action="store_true", help="answer GET on the self link with 405")
    sandbox.add_argument("--profile", choices=("seed", "live_like"), default="seed",
                         help="seed (default): the self link answers 200, a search sees a credit at once; "
                              "live_like: no GET on a credit (405), Transaction Details and search index a "
                              "credit only after --index-lag-minutes")
    sandbox.add_argument("--index-lag-minutes", type=non_negative, default=None,
                         help="the live_like profile's indexing lag in sandbox minutes (default 2)")
    sandbox.add_argument("--fault", action="append", metavar="[ENDPOINT:]KIND=RATE",
                         help="inject a fault at this rate, e.g. get:429=0.1 (repeatable; kinds and endpoints below)")
    sandbox.add_argument("--latency-ms", type=non_negative, default=0.0,
                         help="latency added to every answer (default 0)")
    sandbox.add_argument("--jitter-ms", type=non_negative, default=0.0,
                         help="random extra latency up to this (default 0)")
    sandbox.add_argument("--retry-after", default="1", type=retry_after,
                         help="Retry-After header of 429/503 faults (default 1)")
    sandbox.add_argument("--hang-seconds", type=non_negative, default=30.0,
                         help="how long a 'hang' fault holds the connection (default 30)")
    sandbox.add_argument("--tls-cert", metavar="PEM",
                         help="serve https with this certificate (PEM; with its key unless --tls-key is given)")
    sandbox.add_argument("--tls-key", metavar="PEM", help="the certificate's private key (PEM)")
    actions = sandbox.add_subparsers(dest="action", required=False)
    settlement = actions.add_parser("settlement", help="write settlement files for the credits a sandbox holds")
    settlement.add_argument("--db", required=True, type=sandbox_db, help="the sandbox's SQLite file")
    settlement.add_argument("--seed", type=int, default=0, help="seed of the injected discrepancies (default 0)")
    settlement.add_argument("--format", choices=FORMATS, default="pbdr_csv", help="report format (default pbdr_csv)")
    settlement.add_argument("--out", default="out/settlement",
                            help="folder to write the settlement files into (default out/settlement)")
    settlement.add_argument("--truth", metavar="FOLDER",
                            help="folder to write the ground truth (<file>_truth.csv) into, never the --out "
                                 "folder (default: truth/ beside it, e.g. out/truth)")
    settlement.add_argument("--from", dest="date_from", type=iso_date,
                            help="first batch date (ISO), default the first batch")
    settlement.add_argument("--to", dest="date_to", type=iso_date,
                            help="last batch date (ISO), default the last batch")
    settlement.add_argument("--discrepancy", action="append", metavar="KIND=N", type=discrepancy,
                            help=f"kinds: {', '.join(DISCREPANCY_KINDS)}; a count, or a rate such as 0.05")
    settlement.add_argument("--grace-days", type=count, default=3,
                            help="grace period the ground truth assumes (default 3)")
    settlement.add_argument("--advance-hours", type=non_negative, default=0.0,
                            help="advance the sandbox clock first (runs batch cut-offs)")
    sandbox.set_defaults(func=_cmd_sandbox)

    reconcile = commands.add_parser(
        "reconcile", help="reconcile credits against settlement files",
        description="Every argument and file is checked before anything is fetched.")
    reconcile.add_argument("credits", help="a CSV of credit ids (fetched through the client), or a credits file: "
                                           "saved credit responses (.json), a saved credits frame (.csv/.parquet "
                                           "with credit_id, reconciliation_id, status, amount, currency, "
                                           "submit_time_utc) or a Business Center transaction-search export (.csv)")
    reconcile.add_argument("settlement", nargs="+", help="settlement files or globs")
    reconcile.add_argument("-o", "--output", default="report.html", help="the HTML report (default report.html)")
    reconcile.add_argument("--excel", help="also write the breaks workbook here (.xlsx)")
    reconcile.add_argument("--tolerance", type=parse_tolerance, default=Decimal("0.00"),
                           help="amount difference still counted as MATCHED, e.g. 0.01 (default 0.00)")
    reconcile.add_argument("--grace-days", type=parse_grace_days, default=None,
                           help="days a credit may wait for settlement before it is overdue (default: the "
                                "samples' manifest, else 3)")
    reconcile.add_argument("--as-of", type=parse_as_of,
                           help="ISO date or time the ages are measured at (default: the samples' as-of when "
                                "the settlement files are the shipped samples, else now; printed either way)")
    reconcile.add_argument("--format", default="auto", choices=SETTLEMENT_FORMATS, metavar="FORMAT",
                           help="settlement format, one of " + ", ".join(SETTLEMENT_FORMATS)
                           + " (default auto: detected from each file's content)")
    reconcile.add_argument("--encoding", type=encoding, metavar="ENCODING",
                           help="the settlement files' text encoding when not UTF-8, e.g. latin-1 (default UTF-8)")
    reconcile.add_argument("--allow-unfetched", action="store_true",
                           help="write the report even when some credit ids could not be fetched (they are "
                                "left out, counted in the report; default: stop with exit status 2)")
    reconcile.set_defaults(func=_cmd_reconcile)

    demo = commands.add_parser("demo", help="run the whole investigation offline against the sandbox")
    demo.add_argument("--out", default="out", help="folder to write the reports into (default out)")
    demo.add_argument("--credits", type=positive_count, default=300,
                      help="how many test credits to issue, 1 or more (default 300)")
    demo.add_argument("--seed", type=int, default=42, help="seed of the scenario and discrepancies (default 42)")
    demo.add_argument("--no-notebook", action="store_true", help="skip executing notebook 02")
    demo.set_defaults(func=_cmd_demo)

    from .cli_breaks import add_breaks_parser

    add_breaks_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``reconkit`` command; returns the exit status (2: bad input, said in one line on stderr)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except argparse.ArgumentTypeError as exc:
        print(f"reconkit {args.command}: error: {shown(str(exc))}", file=sys.stderr)
    except SettlementEncodingError as exc:
        # The library advises its Python argument; here the advice is the option, where there is one.
        how = f"pass --encoding {exc.suggestion}" if hasattr(args, "encoding") else None
        print(f"reconkit: {shown(exc.advised(how))}", file=sys.stderr)
    except (ReconkitError, FieldError, NotReadError, OSError) as exc:
        # A message may quote a file name or id read from outside: no raw control character reaches the terminal.
        print(f"reconkit: {shown(str(exc))}", file=sys.stderr)
    return 2
