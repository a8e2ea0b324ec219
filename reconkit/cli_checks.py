"""The ``reconkit`` command's argument checks, in one place: argparse ``type=`` functions for numbers,
ports, dates and databases, and the file checks the commands share.

A ``type=`` function's error reaches the user as ``argument --option: <message>``, before the command
does anything; the checks a command makes later raise :class:`argparse.ArgumentTypeError` naming the
option themselves. Either way the command ends with one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import math
import os
from datetime import date
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Literal

from .databases import database_kind, has_break_book, require_database, row_count
from .errors import DatabaseKindError

__all__ = ["check_folder", "count", "discrepancy", "encoding", "iso_date", "ledger_db", "ledger_for",
           "non_negative", "output_file", "port", "positive_count", "retry_after", "sandbox_db", "sandbox_to_read"]


def _refuse(message: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(message)


def _number(text: str, kind: type[int] | type[float], low: float, high: float, words: str) -> Any:
    """``text`` as ``kind`` within ``[low, high]`` and finite, else a refusal saying it is not ``words``."""
    try:
        number = kind(text)
    except ValueError:
        number = None
    if number is None or not (math.isfinite(number) and low <= number <= high):
        raise _refuse(f"{text!r} is not {words}")
    return number


def port(text: str) -> int:
    """A TCP port, 0 (any free one) to 65535."""
    return _number(text, int, 0, 65535, "a port: a whole number from 0 (any free port) to 65535")


def non_negative(text: str) -> float:
    """A finite number, 0 or more (milliseconds, seconds, minutes, hours)."""
    return _number(text, float, 0, math.inf, "a number, 0 or more")


def count(text: str) -> int:
    """A whole number, 0 or more."""
    return _number(text, int, 0, math.inf, "a whole number, 0 or more")


def positive_count(text: str) -> int:
    """A whole number, 1 or more."""
    return _number(text, int, 1, math.inf, "a whole number, 1 or more")


def iso_date(text: str) -> date:
    """A calendar date written as ISO, such as 2026-11-02 (a day that exists)."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise _refuse(f"{text!r} is not a date: write an ISO date such as 2026-11-02") from None


def discrepancy(spec: str) -> tuple[str, float]:
    """``--discrepancy kind=count`` (a whole number) or ``kind=rate`` (a fraction from 0 to under 1)."""
    from .sandbox.settlement import DISCREPANCY_KINDS

    kind, sep, value = spec.partition("=")
    amount: float | None
    try:
        amount = float(value) if "." in value else int(value)
    except ValueError:
        amount = None
    # A rate is below 1; 2.0 is a count written with a dot; nan, inf, 1.5 and negatives are neither.
    usable = amount is not None and math.isfinite(amount) and amount >= 0 and (
        isinstance(amount, int) or amount < 1 or float(amount).is_integer())
    if not sep or kind not in DISCREPANCY_KINDS or not usable:
        raise _refuse(f"{spec!r} is not kind=count or kind=rate (a count such as 3, or a rate from 0 to under 1 "
                      f"such as 0.05) with a kind among {', '.join(DISCREPANCY_KINDS)}")
    assert amount is not None
    return kind, amount


def encoding(text: str) -> str:
    """A text encoding Python knows, such as latin-1, cp1252 or utf-16."""
    import codecs

    try:
        codec = codecs.lookup(text.strip())
    except LookupError:
        codec = None
    if codec is None or not getattr(codec, "_is_text_encoding", True):  # hex, base64, zlib: bytes to bytes
        raise _refuse(f"{text!r} is not a text encoding: write one such as latin-1, cp1252 or utf-16")
    return codec.name


def retry_after(text: str) -> str:
    """A ``Retry-After`` header value: whole seconds, or an HTTP date."""
    value = text.strip()
    if value.isdigit():
        return value
    try:
        parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        raise _refuse(f"{text!r} is not a Retry-After value: whole seconds such as 1, or an HTTP date") from None
    return value


def _database(text: str, kind: Literal["ledger", "sandbox"]) -> str:
    try:
        require_database(text, kind)
    except DatabaseKindError as exc:
        raise _refuse(str(exc)) from None
    return text


def ledger_db(text: str) -> str:
    """``--ledger``: a reconkit ledger, or a file not there yet (whether it may be created is the
    command's to say: :func:`ledger_for`)."""
    return _database(text, "ledger")


def sandbox_db(text: str) -> str:
    """``--db``: a sandbox's database, or a file not there yet (the sandbox creates it)."""
    if text != ":memory:" and Path(text).is_dir():
        raise _refuse(f"{text}: is a folder, not a sandbox database file")
    return _database(text, "sandbox")


def sandbox_to_read(path: str, option: str) -> None:
    """A sandbox database a command reads from: there, of the sandbox's kind, holding credits (a
    missing one is not created just to be found empty)."""
    if path == ":memory:":
        raise _refuse(f"{option} :memory: holds nothing to read: give the sandbox's database file")
    kind, _ = database_kind(path)
    if kind == "missing":
        raise _refuse(f"{option} {path}: no such sandbox database")
    try:
        require_database(path, "sandbox")
    except DatabaseKindError as exc:
        raise _refuse(f"{option} {exc}") from None
    if kind == "new" or row_count(path, "credits") == 0:
        raise _refuse(f"{option} {path}: the sandbox holds no credits, so there are none to settle (issue some "
                      "first: reconkit demo, or the notebooks against this database)")


def ledger_for(path: str, option: str, *, writes: bool) -> bool:
    """Check the ledger a ``breaks`` action uses; returns whether it exists already.

    Only an action that ``writes`` a new book (``breaks record``) may start a ledger: any other use of
    a ledger that is not there (a typo, the wrong folder) is refused rather than answered "no breaks"
    from a file created for it. ``option`` names where the path came from (``--ledger``,
    ``RECONKIT_LEDGER``, the default ledger).
    """
    try:
        require_database(path, "ledger")
    except DatabaseKindError as exc:
        raise _refuse(f"{option} {exc}") from None
    if writes:
        return database_kind(path)[0] == "ledger"
    if not os.path.exists(path):
        raise _refuse(f"{option} {path}: no such ledger (only reconkit breaks record starts one)")
    if not has_break_book(path):
        raise _refuse(f"{option} {path}: holds no break book yet (reconkit breaks record starts one)")
    return True


def check_folder(value: str, option: str) -> Path:
    """A folder to write into: it may not exist yet, but it must not be a file."""
    path = Path(value)
    for part in (path, *path.parents):
        if part.exists():
            if not part.is_dir():
                raise _refuse(f"{option} {value}: {part} is a file, not a folder")
            break
    return path


def output_file(value: str | None, suffixes: tuple[str, ...], option: str, inputs: list[Path]) -> Path | None:
    """A file to write: its name ends in one of ``suffixes``, its folder exists, it is no input."""
    if value is None:
        return None
    path = Path(value)
    if path.suffix.lower() not in suffixes:
        raise _refuse(f"{option} {value}: the file name must end in {' or '.join(suffixes)}")
    if not path.resolve().parent.is_dir():
        raise _refuse(f"{option} {value}: folder {path.parent} does not exist")
    if path.is_dir():
        raise _refuse(f"{option} {value}: is a folder, not a file")
    if any(path.resolve() == p.resolve() for p in inputs):
        raise _refuse(f"{option} {value}: would overwrite an input file")
    return path
