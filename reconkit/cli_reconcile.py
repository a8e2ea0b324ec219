"""``reconkit reconcile``: credits (ids to fetch, or a credits file: credit JSON, a saved credits frame,
a Business Center transaction-search export) against settlement files.

Every argument and file is checked first (:func:`check_inputs`), before anything is read over the
network: a mistake costs no request and ends in one line naming the argument or file at fault
(``argparse.ArgumentTypeError``, which the command turns into exit status 2).
"""

from __future__ import annotations

import argparse
import glob
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd

from . import inert, investigation
from .cli_checks import output_file as _output
from .credits_file import CreditsFile, detect_credits_format
from .errors import CreditsFileError, SettlementFormatError
from .fetch import normalize_ids
from .investigation import FieldError, Investigation

__all__ = ["Inputs", "check_inputs", "investigate", "load_credits", "parse_as_of",
           "parse_grace_days", "parse_tolerance", "run_reconcile"]

SAVED_FRAME_COLUMNS = frozenset({"credit_id", "reconciliation_id", "status", "amount", "currency",
                                 "submit_time_utc"})
"""A credits CSV holding these columns is a saved credits frame, reconciled as it is. ``status`` is needed
(a voided credit expects no settlement); a blank ``reconciliation_id`` pairs by request id only."""
ID_COLUMNS = ("credit_id", "id", "request_id")
"""The column a CSV of credit ids is read from (else its first column)."""
_SWAPPED = "the credits come first: reconkit reconcile CREDITS SETTLEMENT..."

# --- argument types (argparse reports their errors as "argument --x: ..."); the rules are the
# investigation's own (reconkit.investigation), the same the app applies to its fields.


def _argument(parse: Any) -> Any:
    def parse_argument(text: str) -> Any:
        try:
            return parse(text)
        except FieldError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse_argument.__name__ = parse.__name__  # argparse names the type in "invalid <name> value"
    parse_argument.__doc__ = parse.__doc__
    return parse_argument


parse_tolerance = _argument(investigation.parse_tolerance)
parse_as_of = _argument(investigation.parse_as_of)
parse_grace_days = _argument(investigation.parse_grace_days)


# --- the checked inputs -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Inputs:
    """The reconcile command's inputs, every one checked.

    Attributes
    ----------
    credits : Path
    credit_ids : list of str or None
        The ids to fetch, when ``credits`` is a list of ids (else it is a saved credits frame).
    settlement : list of Path
        Every settlement file, globs expanded.
    as_of : datetime
    as_of_origin : str
        Where ``as_of`` came from, in words (printed with it).
    grace_days : float
    """

    credits: Path
    credit_ids: list[str] | None
    settlement: list[Path]
    output: Path | None
    excel: Path | None
    tolerance: Decimal
    grace_days: float
    as_of: datetime
    as_of_origin: str
    format: str
    allow_unfetched: bool = False
    encoding: str | None = None


def _refuse(message: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(message)


def _read_text(path: Path, role: str) -> str:
    if not path.exists():
        raise _refuse(f"{role} file {path}: no such file")
    if not path.is_file():
        raise _refuse(f"{role} file {path}: is a directory, not a file")
    data = path.read_bytes()
    if not data.strip():
        raise _refuse(f"{role} file {path}: is empty")
    if b"\x00" in data[:4096] or data.startswith(b"PK\x03\x04"):
        raise _refuse(f"{role} file {path}: is not a CSV (binary content)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _refuse(f"{role} file {path}: is not a CSV (not UTF-8 text)") from None


def _looks_like_settlement(path: Path) -> bool:
    from .settlement import read_settlement

    try:
        _, _failures = read_settlement(path, errors="collect")
    except (SettlementFormatError, ValueError, OSError):
        return False
    return True


def _credit_ids(path: Path) -> list[str] | None:
    """The ids of a credits CSV of ids, or None for a credits file (:func:`reconkit.read_credits`'s
    formats, read by :func:`load_credits`); refuses anything else."""
    if path.is_file():
        try:
            detect_credits_format(path.read_bytes(), str(path))
        except CreditsFileError:
            pass  # not a credits file: a list of ids, or refused below in the command's words
        else:
            return None
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        try:
            columns = set(pq.read_schema(path).names)
        except (OSError, ValueError) as exc:
            raise _refuse(f"credits file {path}: is not a Parquet file ({exc})") from None
        missing = sorted(SAVED_FRAME_COLUMNS - columns)
        if missing:
            raise _refuse(f"credits file {path}: a saved credits frame needs the columns {', '.join(missing)}")
        return None
    text = _read_text(path, "credits")
    first = text.lstrip().splitlines()[0].strip()
    if path.suffix.lower() in (".xml", ".json", ".xlsx") or first.startswith(("<", "{", "[")):
        raise _refuse(f"credits file {path}: is not a CSV of credits ({_SWAPPED})")
    headerless = bool(normalize_ids([first.split(",")[0].strip('"')])[0])
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, header=None if headerless else "infer",
                            skip_blank_lines=True)
    except (ValueError, pd.errors.ParserError) as exc:
        raise _refuse(f"credits file {path}: is not a readable CSV ({str(exc).splitlines()[0]})") from None
    if frame.empty:
        raise _refuse(f"credits file {path}: has a header but no rows")
    columns = {str(c) for c in frame.columns}
    if columns >= SAVED_FRAME_COLUMNS:
        return None
    if columns & (SAVED_FRAME_COLUMNS - set(ID_COLUMNS)):  # part of a saved frame is not a list of ids
        missing = ", ".join(sorted(SAVED_FRAME_COLUMNS - columns))
        raise _refuse(f"credits file {path}: looks like a saved credits frame but lacks the column(s) {missing} "
                      f"(a saved frame needs {', '.join(sorted(SAVED_FRAME_COLUMNS))}; a list of ids needs one "
                      "column of ids)")
    column = next((c for c in ID_COLUMNS if c in columns), frame.columns[0])
    valid, _ = normalize_ids(frame[column].tolist())
    if not valid:
        hint = f"; it looks like a settlement file ({_SWAPPED})" if _looks_like_settlement(path) else ""
        name = str(column) if len(str(column)) <= 40 else str(column)[:37] + "..."
        raise _refuse(f"credits file {path}: column {name!r} holds no credit ids (1-26 digits){hint}")
    return valid


def _settlement_paths(patterns: list[str], credits: Path) -> list[Path]:
    paths: list[Path] = []
    for pattern in patterns:
        found = sorted(glob.glob(pattern)) if any(ch in pattern for ch in "*?[") else [pattern]
        if not found:
            raise _refuse(f"settlement {pattern!r}: no file matches")
        for name in found:
            path = Path(name)
            if not path.is_file():
                raise _refuse(f"settlement file {path}: " + ("is a directory, not a file" if path.exists()
                                                             else "no such file"))
            if path.stat().st_size == 0:
                raise _refuse(f"settlement file {path}: is empty")
            if path.resolve() == credits.resolve():
                raise _refuse(f"settlement file {path}: is the credits file too ({_SWAPPED})")
            paths.append(path)
    return paths


def _manifest_for(paths: list[Path]) -> tuple[Path, dict[str, Any]] | None:
    """The sample manifest describing every one of ``paths``, if there is one."""
    folders = {p.resolve().parent for p in paths}
    if len(folders) != 1:
        return None
    manifest = next(iter(folders)) / "manifest.json"
    try:
        content = json.loads(manifest.read_text(encoding="utf-8"))
        described = {entry["file"] for entry in content["files"]}
        content["as_of"] = investigation.parse_as_of(content["as_of"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return (manifest, content) if {p.name for p in paths} <= described else None


def check_inputs(args: argparse.Namespace, *, now: datetime | None = None) -> Inputs:
    """Check every argument and file of ``reconkit reconcile``; nothing is fetched.

    The as-of is ``--as-of``, else the as-of of the sample manifest (``manifest.json`` beside the
    settlement files, as in ``data/sample/``) that describes every settlement file given, else now.

    Raises
    ------
    argparse.ArgumentTypeError
        One sentence naming the argument or file at fault.
    """
    credits = Path(args.credits)
    credit_ids = _credit_ids(credits)
    if credit_ids is None:
        load_credits(credits)  # every row checked now, before any settlement is read or id fetched
    settlement = _settlement_paths(list(args.settlement), credits)
    # A settlement report with a request-id column passes for a list of ids: was it meant the other way round?
    if credit_ids is not None and _looks_like_settlement(credits):
        unreadable = next((p for p in settlement if not _looks_like_settlement(p)), None)
        if unreadable is not None:
            raise _refuse(f"credits file {credits} is a settlement file and settlement file {unreadable} is not "
                          f"({_SWAPPED})")
    output = _output(getattr(args, "output", None), (".html", ".htm"), "-o/--output", [credits, *settlement])
    excel = _output(getattr(args, "excel", None), (".xlsx",), "--excel", [credits, *settlement])
    manifest = _manifest_for(settlement)
    grace_days = args.grace_days
    if args.as_of is not None:
        as_of, origin = args.as_of, "given by --as-of"
    elif manifest is not None and manifest[1]["as_of"] is not None:
        as_of, origin = manifest[1]["as_of"], f"the samples' as-of, from {manifest[0]}"
        if grace_days is None and isinstance(manifest[1].get("grace_days"), int | float):
            grace_days = manifest[1]["grace_days"]
    else:
        as_of = (now or datetime.now(UTC)).replace(microsecond=0)
        origin = "now, as no --as-of was given: ages and MISSING_OVERDUE are measured from this moment"
    return Inputs(credits, credit_ids, settlement, output, excel, args.tolerance,
                  3 if grace_days is None else grace_days, as_of, origin, args.format,
                  bool(getattr(args, "allow_unfetched", False)), getattr(args, "encoding", None))


# --- running -------------------------------------------------------------------------------------


def load_credits(path: str | Path) -> pd.DataFrame:
    """A credits file (:func:`reconkit.read_credits`); a CSV of ids is fetched by :func:`investigate`
    instead.

    Raises
    ------
    argparse.ArgumentTypeError
        Naming the file, line and column at fault.
    """
    try:
        return CreditsFile.read(path).frame
    except CreditsFileError as exc:
        raise _refuse(str(exc)) from None


def investigate(inputs: Inputs, *, ledger: str | None = None) -> Investigation:
    """Run the investigation of ``inputs`` through :class:`reconkit.investigation.Investigation`, as
    the app does: settlement read (bytes digested, unreadable rows collected) before any fetch,
    the credit ids fetched through :func:`reconkit.session.connect` (or the saved frame used),
    then reconciled. Says on stdout what it read and fetched.

    ``ledger`` is the ledger the fetch keeps the credits in (default ``data/reconkit.sqlite3``;
    ``":memory:"`` for a run that must leave no file); creating it is said on stdout.

    Raises
    ------
    argparse.ArgumentTypeError
        Some ids could not be fetched and ``inputs.allow_unfetched`` is false.
    """
    from .session import connect, data_dir

    model = Investigation()
    model.set_parameters(tolerance=inputs.tolerance, grace_days=inputs.grace_days, as_of=inputs.as_of)
    # Local, so before any fetch. Unreadable records are not fatal: they reach the engine, which gives a
    # credit whose only settlement row failed to read UNREADABLE_SETTLEMENT naming file and line.
    model.load(inputs.settlement, format=inputs.format, encoding=inputs.encoding)
    print(f"AS OF {inputs.as_of.isoformat()} — {inputs.as_of_origin}", flush=True)
    failures = model.read_failures
    if failures is not None and len(failures):
        lines = failures[["source_file", "source_line"]].drop_duplicates()
        print(f"UNREADABLE: {len(lines)} settlement line(s) could not be read; first: "
              f"{inert.shown(Path(lines['source_file'].iloc[0]).name)} line {lines['source_line'].iloc[0]} — "
              f"{inert.shown(failures['reason'].iloc[0])}", flush=True)
    if inputs.credit_ids is None:
        try:  # read through the model: the run records the credits file's digest
            read = model.use_credits_file(inputs.credits)
        except CreditsFileError as exc:
            raise _refuse(str(exc)) from None
        print(f"read {len(read.frame)} credit(s) from {inert.shown(str(inputs.credits))} ({read.format}, "
              f"SHA-256 {read.sha256[:12]})", flush=True)
        model.reconcile()
        return model
    fetch_ledger = ledger or str(data_dir() / "reconkit.sqlite3")
    new = fetch_ledger != ":memory:" and not Path(fetch_ledger).exists()
    with connect(ledger=fetch_ledger) as client:
        if new:
            print(f"created ledger {inert.shown(fetch_ledger)} (it keeps the credits fetched)")
        model.client = client
        print(f"fetching {len(inputs.credit_ids)} credit(s) from {client.config.environment_name} "
              f"({client.config.base_url})")
        fetched = model.fetch(inputs.credit_ids)
        left_out = fetched.left_out()  # failures and credits not indexed yet: both missing from the result
        if len(left_out):
            _unfetched(left_out, len(fetched.credits), inputs)
        model.reconcile()
        model.client = None  # closed with the connection; the model keeps what it read
    return model


def _unfetched(failed: pd.DataFrame, fetched: int, inputs: Inputs) -> None:
    """Say which ids could not be fetched (listed in a CSV beside the report, else on stdout) and
    stop unless ``--allow-unfetched``: a report would call those credits absent from settlement."""
    if inputs.output is not None:
        listed = inputs.output.with_name(f"{inputs.output.stem}_unfetched.csv")
        inert.frame(failed).to_csv(listed, index=False)  # ids and server messages: no cell runs as a formula
        print(f"wrote {listed}")
        where = f"listed in {listed}"
    else:
        first = zip(failed["id"].head(3), failed["message"].head(3), strict=True)
        where = "first: " + inert.shown(", ".join(f"{i} ({m})" for i, m in first))
    waiting = int((failed["error"] == "NotIndexedYetError").sum())
    of_which = f", {waiting} of them not indexed yet" if waiting else ""
    counted = f"{len(failed)} of {len(failed) + fetched} credit id(s) could not be fetched{of_which} ({where})"
    if not inputs.allow_unfetched:
        raise _refuse(f"{counted}; nothing done: fix the ids or the connection, or pass --allow-unfetched to "
                      "reconcile without them")
    print(f"UNFETCHED: {counted}; the result leaves them out (--allow-unfetched)", flush=True)


def run_reconcile(args: argparse.Namespace) -> int:
    """Run the ``reconcile`` command: check, read, fetch, reconcile, print the summary, write the reports."""
    inputs = check_inputs(args)
    result = investigate(inputs).result
    assert result is not None
    print(result.summary_text())
    _write_reports(result, inputs)
    return 0


def _write_reports(result: Any, inputs: Inputs) -> None:
    assert inputs.output is not None
    result.to_html(inputs.output)
    print(f"wrote {inputs.output}")
    if inputs.excel:
        result.to_excel(inputs.excel)
        print(f"wrote {inputs.excel}")
