"""``reconkit breaks``: the break book on the command line (record, list, show, assign, note,
resolve, sign-off, reopen, diff, aging, runs, audit)."""

from __future__ import annotations

import argparse
import os
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd

from .cli_checks import encoding, ledger_db, ledger_for, output_file
from .databases import has_break_book
from .inert import shown

__all__ = ["add_breaks_parser", "run_breaks"]

_LIST_COLUMNS = ["key", "status", "owner", "outcome", "amount_at_risk", "currency", "days_open", "open_bucket",
                 "days_since_submission", "category"]


def _ledger_path(args: argparse.Namespace) -> tuple[str, str]:
    """The ledger's path and where it came from, as the user would name it in a message."""
    from .ledger import DEFAULT_LEDGER_PATH

    if args.ledger:
        return args.ledger, "--ledger"
    if os.environ.get("RECONKIT_LEDGER"):
        return os.environ["RECONKIT_LEDGER"], "RECONKIT_LEDGER"
    return str(DEFAULT_LEDGER_PATH), "the default ledger"


def _book(args: argparse.Namespace, path: str) -> Any:
    from .breaks import BreakBook

    return BreakBook(path, analyst=args.analyst)


def _show_frame(frame: pd.DataFrame, empty: str) -> None:
    """Print a frame; its text (keys, names, notes, file names come from outside) with control
    characters shown as escapes, so none reaches the terminal raw."""
    if frame.empty:
        print(empty)
        return
    frame = frame.astype(object).map(lambda v: shown(v) if isinstance(v, str) else v)
    with pd.option_context("display.max_rows", None, "display.max_columns", None, "display.width", 200,
                           "display.max_colwidth", 60):
        print(frame.to_string(index=False))


def _record(args: argparse.Namespace) -> None:
    """Reconcile as ``reconkit reconcile`` does (the same checks, the ids fetched, the settlement
    bytes digested), show what recording the run would do and its intake checks, ask when a person
    is at the terminal, and record the run with the digests of the bytes read.

    Every argument and file is checked before the ledger is opened; a ledger not there yet is
    created only when the run is recorded (a dry run, a refusal or a "no" leave no file behind)."""
    from .cli_reconcile import check_inputs, investigate

    inputs = check_inputs(args)
    path, option = _ledger_path(args)
    exists = ledger_for(path, option, writes=True)
    model = investigate(inputs, ledger=":memory:" if args.dry_run else None)  # a dry run leaves no ledger
    assert model.result is not None
    print(model.result.summary_text())
    # A book not started yet is empty: an empty book in memory previews the run without creating the
    # file or adding the book's tables to a ledger that has none.
    with _book(args, path if has_break_book(path) else ":memory:") as book:
        preview = model.preview(book)
    _show_preview(preview)
    if args.dry_run:
        print("not recorded (--dry-run)")
        return
    if not preview.ok and args.override is None:
        failed = "; ".join(f"{c.name}: {c.message}" for c in preview.failed)
        raise argparse.ArgumentTypeError(f"not recorded: the run fails {len(preview.failed)} intake check(s) "
                                         f"({failed}); check the files, or pass --override REASON to record it "
                                         "anyway")
    if sys.stdin.isatty() and not args.yes and input("Record this run? [y/N] ").strip().lower() not in ("y", "yes"):
        print("not recorded")
        return
    with _book(args, path) as book:
        if not exists:
            print(f"created ledger {shown(path)}")
        run_id = model.record(book, override=args.override if not preview.ok else None)
        print(f"recorded run {run_id} ({len(book.open())} open breaks)"
              + (f", recorded anyway because: {shown(args.override)}" if not preview.ok else ""))
        if len(book.runs()) > 1:
            print(book.diff().summary_text())


def _show_preview(preview: Any) -> None:
    print(f"recording this run would: {shown(preview.effect)}")
    for check in preview.failed:
        print(f"INTAKE CHECK FAILED ({check.name}): {shown(check.message)}")


def _owned_by(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """The rows whose owner is ``name`` as identities compare (case, width, invisible characters)."""
    from .identity import same_person

    return frame[frame["owner"].map(lambda owner: isinstance(owner, str) and same_person(owner, name))]


def _list(book: Any, args: argparse.Namespace) -> None:
    if args.all:
        frame = book.table()
    elif args.status:
        frame = book.table(statuses=args.status)
    else:
        frame = book.open()
    if args.mine:
        frame = _owned_by(frame, book.analyst)
    if args.owner:
        frame = _owned_by(frame, args.owner)
    if args.new:
        frame = frame[frame["new"]]
    columns = _LIST_COLUMNS + (["reason", "signed_off_by"] if args.all or args.status else [])
    listed = frame[columns].astype(object)
    _show_frame(listed.where(listed.notna(), "-"), "no breaks")
    print(f"{len(frame)} break(s) · analyst {shown(book.analyst)}")


def _show(book: Any, args: argparse.Namespace) -> None:
    state = book.get(args.key)
    for name, value in state.to_dict().items():
        if name != "notes":
            print(f"{name:>14}: {'' if value is None else shown(value)}")
    print("         notes:" + ("" if state.notes else " none"))
    for note in state.notes:
        print(f"  {note.at}  {shown(note.author)}: {shown(note.text)}")
    print("        events:")
    for event in book.events(state.key):
        run = f" (run {event.run_id})" if event.run_id is not None else ""
        print(f"  {event.seq:>5}  {event.at}  {shown(event.actor):<10} {event.kind}{run}")


def _changed(state: Any) -> None:
    owner = f", owner {shown(state.owner)}" if state.owner else ""
    reason = f", reason {shown(state.reason)}" if state.reason else ""
    signed = f", signed off by {shown(state.signed_off_by)}" if state.signed_off_by else ""
    print(f"{shown(state.key)}: {state.status}{owner}{reason}{signed} (version {state.version})")


def run_breaks(args: argparse.Namespace) -> int:
    """Run one ``reconkit breaks`` action; returns the exit status."""
    action = args.action
    if action == "record":
        _record(args)
        return 0
    path, option = _ledger_path(args)
    ledger_for(path, option, writes=False)  # only record starts a book; the others act on one that is there
    if action == "audit":
        output_file(args.out, (".csv", ".xlsx"), "audit", [Path(path)])
    with _book(args, path) as book:
        if action == "list":
            _list(book, args)
        elif action == "show":
            _show(book, args)
        elif action == "assign":
            _changed(book.assign(args.key, args.owner, expected_version=args.expect))
        elif action == "note":
            _changed(book.note(args.key, args.text, expected_version=args.expect))
        elif action == "resolve":
            _changed(book.resolve(args.key, args.reason, status=args.status, note=args.note,
                                  expected_version=args.expect))
        elif action == "sign-off":
            _changed(book.sign_off(args.key, note=args.note, expected_version=args.expect))
        elif action == "reopen":
            _changed(book.reopen(args.key, args.why, expected_version=args.expect))
        elif action == "diff":
            diff = book.diff(args.run_a, args.run_b)
            print(diff.summary_text())
            _show_frame(diff.frame[diff.frame["change"] != "unchanged"], "nothing new, cleared or changed")
        elif action == "aging":
            frame = book.aging()
            _show_frame(frame[frame["breaks"] > 0], "no open breaks")
        elif action == "runs":
            _show_frame(book.runs(), "no runs recorded")
        elif action == "withdraw":
            keys = book.withdraw(args.run, args.reason)
            print(f"withdrew run {args.run}: {len(keys)} break(s) put back as they were before it")
        elif action == "verify":
            proved = book.verify()
            print(f"the book verifies: {proved.events} events chained, {proved.breaks} breaks as their log "
                  f"says; head {proved.head}")
        elif action == "audit":
            print(f"wrote {book.export_audit(args.out)} ({len(book.events())} changes)")
    return 0


def add_breaks_parser(commands: Any) -> None:
    """Register ``reconkit breaks`` on the ``reconkit`` command's subparsers."""
    from .breaks import CLOSED, Reason, Status
    from .cli_reconcile import parse_as_of, parse_grace_days, parse_tolerance
    from .settlement import FORMATS as SETTLEMENT_FORMATS

    breaks = commands.add_parser("breaks", help="the break book: breaks carried from run to run",
                                 description="Breaks carried from run to run, with status, owner, notes and sign-off. "
                                             "Who acts comes from --as, else RECONKIT_ANALYST, else the OS user.")
    breaks.add_argument("--ledger", type=ledger_db,
                        help="the ledger file (default $RECONKIT_LEDGER or data/reconkit.sqlite3); only record "
                             "creates one, and says so")
    breaks.add_argument("--as", dest="analyst", help="act as this analyst")
    actions = breaks.add_subparsers(dest="action", required=True)

    record = actions.add_parser("record", help="reconcile (as reconcile does) and carry the breaks into the book",
                                description="Every argument and file is checked as by reconkit reconcile; credit "
                                            "ids are fetched; the run records the SHA-256 of the bytes read.")
    record.add_argument("credits", help="a CSV of credit ids (fetched) or a credits file (as for reconcile)")
    record.add_argument("settlement", nargs="+", help="settlement files or globs")
    record.add_argument("--tolerance", type=parse_tolerance, default=Decimal("0.00"),
                        help="largest difference still MATCHED, e.g. 0.01 (default 0.00)")
    record.add_argument("--grace-days", type=parse_grace_days, default=None,
                        help="days a missing credit is pending (default: the samples' manifest, else 3)")
    record.add_argument("--as-of", type=parse_as_of,
                        help="ISO date or time the ages are measured at (default: the samples' as-of for the "
                             "shipped samples, else now; printed either way)")
    record.add_argument("--format", default="auto", choices=SETTLEMENT_FORMATS, metavar="FORMAT",
                        help="settlement format, one of " + ", ".join(SETTLEMENT_FORMATS) + " (default auto)")
    record.add_argument("--encoding", type=encoding, metavar="ENCODING",
                        help="the settlement files' text encoding when not UTF-8, e.g. latin-1 (default UTF-8)")
    record.add_argument("--allow-unfetched", action="store_true",
                        help="record even when some credit ids could not be fetched (default: stop)")
    record.add_argument("--override", metavar="REASON",
                        help="record a run that fails an intake check (another merchant, dates outside the "
                             "credits' window, ...) anyway, for this reason (kept in the audit)")
    record.add_argument("--dry-run", action="store_true", help="show what the run would do; record nothing")
    record.add_argument("--yes", action="store_true", help="do not ask before recording (asked only at a terminal)")

    listing = actions.add_parser("list", help="open breaks, largest amount at risk first")
    listing.add_argument("--all", action="store_true", help="closed ones too")
    listing.add_argument("--status", action="append", choices=[s.value for s in Status],
                         help="only breaks with this status (repeatable)")
    listing.add_argument("--mine", action="store_true", help="only breaks I own")
    listing.add_argument("--owner", help="only this owner's breaks")
    listing.add_argument("--new", action="store_true", help="only breaks the latest run saw first")

    show = actions.add_parser("show", help="one break: state, notes and history")
    show.add_argument("key", help="a break key, a credit id, or the start of a key")

    def change(name: str, help_text: str) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, help=help_text)
        parser.add_argument("key", help="a break key, a credit id, or the start of a key")
        parser.add_argument("--expect", type=int, metavar="VERSION",
                            help="act only if the break is still at this version")
        return parser

    change("assign", "give a break an owner").add_argument("owner", help="who owns it from now on")
    change("note", "add a note").add_argument("text", help="the note (notes are never edited)")
    resolve = change("resolve", "close a break with a reason code")
    resolve.add_argument("--reason", required=True, help=f"one of {', '.join(r.value for r in Reason)}")
    resolve.add_argument("--status", default=Status.RESOLVED.value, choices=sorted(CLOSED), help="how it closes")
    resolve.add_argument("--note", help="what was found (required with reason OTHER)")
    change("sign-off", "sign off a closed break (not its resolver)").add_argument("--note", help="what was checked")
    change("reopen", "reopen a closed break").add_argument("why", help="why it is open again")

    diff = actions.add_parser("diff", help="new, cleared, changed and still-open breaks between two runs")
    diff.add_argument("run_a", type=int, nargs="?", help="the earlier run (default: the one before run_b)")
    diff.add_argument("run_b", type=int, nargs="?", help="the later run (default: the latest)")
    actions.add_parser("aging", help="open breaks by age bucket")
    actions.add_parser("runs", help="the runs recorded")
    withdraw = actions.add_parser("withdraw", help="withdraw the last run recorded, putting its breaks back")
    withdraw.add_argument("run", type=int, help="the run's id (see runs)")
    withdraw.add_argument("--reason", required=True, help="why the run was wrong (kept in the audit)")
    actions.add_parser("verify", help="prove the book's log: its hash chain, guards and derived state")
    audit = actions.add_parser("audit", help="export every change with who and when")
    audit.add_argument("out", help="a .csv or .xlsx file")
    breaks.set_defaults(func=run_breaks)
