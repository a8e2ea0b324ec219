"""One investigation as a widget-free model: the credits, the settlement read, the parameters, the
result, whether the result is still current, the recorded run and the break table's view.

``InvestigateApp`` (notebook 02), ``reconkit reconcile``, ``reconkit breaks record`` and the demo
all run the same pipeline through :class:`Investigation`::

    fetch (or read a credits file) ───────┐
    load settlement bytes (digests, failures) ─┼─> reconcile ──> record in the break book
    parameters (tolerance, as-of, grace) ─────┘        │
                                                       └─> view: filter, search, sort, page

The model holds its state explicitly and says when a result is *stale*: a result is current only
for the credits, the settlement bytes and the parameters it was computed from, and every change
after it names what changed. What a view has *chosen* but not yet read (ids typed, files picked)
is told to the model with :meth:`Investigation.choose_ids` and
:meth:`Investigation.choose_settlement`; :meth:`Investigation.reconcile` refuses to run on a
choice that was never fetched or loaded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import EllipsisType
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .credit import Credit
from .credits_file import CreditsFile
from .errors import FieldError, NotReadError
from .fetch import FetchResult
from .result import ReconResult

__all__ = ["ALL", "PBDR_REPORT", "BreakView", "FieldError", "Investigation", "LoadedFile", "NotReadError",
           "Parameters", "Pulled", "parse_as_of", "parse_grace_days", "parse_ids", "parse_tolerance", "sha256"]

ALL = "(all)"
"""The outcome or currency filter that keeps every break."""
SORT_COLUMNS = ("outcome", "amount_at_risk", "currency", "credit_id", "detail", "lines", "source_file",
                "batch_date", "settlement_rows", "reconciliation_id")
"""The break-table columns a view may sort by (``""`` keeps the table's own order: by currency, then
largest amount at risk)."""
_SORT_KEYS = {"amount_at_risk": "amount_sort", "lines": "source_line"}
_SEARCHED = ("credit_id", "reconciliation_id", "request_id")


# --- parameters: parsed in one place, with one rule set, each error naming its field ----------

def parse_ids(text: str) -> list[str]:
    """Ids pasted one per line or separated by commas, semicolons or spaces."""
    return [t for t in re.split(r"[\s,;]+", text) if t]


def parse_tolerance(value: str | Decimal | int) -> Decimal:
    """The amount tolerance: zero or a positive amount written with a dot (``0.05``); empty is 0.

    Raises
    ------
    FieldError
        ``field="tolerance"``, naming the value given.
    """
    if isinstance(value, Decimal | int) and not isinstance(value, bool):
        amount, text = Decimal(value), str(value)
    else:
        text = str(value).strip()
        if "," in text:
            raise FieldError("tolerance", f"“{text}” is not an amount: write the tolerance with a dot for "
                                          f"decimals, such as {text.replace(',', '.')}")
        try:
            amount = Decimal(text or "0")
        except InvalidOperation:
            raise FieldError("tolerance", f"“{text}” is not an amount such as 0.05") from None
    if not amount.is_finite() or amount < 0:
        raise FieldError("tolerance", f"“{text}” is not an amount such as 0.05 (the tolerance is zero or positive)")
    return amount


def parse_as_of(value: str | datetime | None) -> datetime | None:
    """The as-of moment (None for now): a date, or a date and time (UTC unless an offset is given).

    Raises
    ------
    FieldError
        ``field="as_of"``, naming the value given.
    """
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = (value or "").strip()
    if text.lower() in ("", "now"):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise FieldError("as_of", f"“{text}” is not a date: write a date and time such as 2026-11-05T00:00:00Z "
                                  "or 2026-11-05, or leave it empty for now") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_grace_days(value: str | float) -> float:
    """Days (0 or more, under 3650) before a missing credit is overdue; whole days come back as int.

    Raises
    ------
    FieldError
        ``field="grace_days"``, naming the value given.
    """
    try:
        days = float(value)
    except (TypeError, ValueError):
        days = -1.0
    if not 0 <= days < 3650:
        raise FieldError("grace_days", f"“{value}” is not a number of days such as 3")
    return int(days) if days.is_integer() else days


@dataclasses.dataclass(frozen=True)
class Parameters:
    """The reconciliation's parameters, parsed: ``as_of`` None measures ages from now."""

    tolerance: Decimal = Decimal("0.00")
    grace_days: float = 3
    as_of: datetime | None = None


def sha256(data: bytes) -> str:
    """The SHA-256 of ``data``, as hex."""
    return hashlib.sha256(data).hexdigest()


@dataclasses.dataclass(frozen=True)
class LoadedFile:
    """A settlement file as it was read: its name (its path, for a file on disk), its size and
    the SHA-256 of the very bytes read."""

    file: str
    size: int
    sha256: str
    format: str = ""
    rows: int = 0
    unreadable: int = 0
    """Rows (failing cells) that could not be read."""

    @classmethod
    def read(cls, name: str, data: bytes, frame: pd.DataFrame | None = None,
             failures: pd.DataFrame | None = None) -> LoadedFile:
        """The record of ``data`` read under ``name`` (into ``frame``, with ``failures``)."""
        fmt = str(frame["report_format"].iloc[0]) if frame is not None and len(frame) else ""
        return cls(name, len(data), sha256(data), fmt, 0 if frame is None else len(frame),
                   0 if failures is None else len(failures))

    def as_input(self) -> dict[str, Any]:
        """What :meth:`reconkit.breaks.BreakBook.record` keeps of it."""
        return {"file": self.file, "bytes": self.size, "sha256": self.sha256}


Source = str | os.PathLike[str] | tuple[str, bytes]
"""A settlement input: a path on disk (read when loaded) or ``(name, bytes)`` (an upload)."""


def _source_key(source: Source) -> tuple[str, str]:
    """How a chosen input is told apart: a path by its resolved path (its bytes are read at load),
    an upload by its name and content."""
    if isinstance(source, tuple):
        return source[0], sha256(bytes(source[1]))
    return "path", os.path.realpath(os.fspath(source))


PBDR_REPORT = "PaymentBatchDetailReport_Daily"
"""The Reporting API report :meth:`Investigation.pull` downloads, one per day."""


@dataclasses.dataclass(frozen=True)
class Pulled:
    """What :meth:`Investigation.pull` got: the files kept, and the days with no settlement or whose
    report is not ready yet."""

    files: list[Path]
    empty: list[date]
    waiting: list[date]


@dataclasses.dataclass(frozen=True)
class BreakView:
    """What the break table shows: filters, id search, order and page (0-based)."""

    outcome: str = ALL
    currency: str = ALL
    search: tuple[str, ...] = ()
    sort_by: str = ""
    descending: bool = False
    page: int = 0
    page_size: int = 25


# --- the model ----------------------------------------------------------------------------------

class Investigation:
    """One investigation: credits, settlement, parameters, result, staleness, recorded run, view.

    Parameters
    ----------
    client : Client, optional
        Fetches the credits (:meth:`fetch`) and keeps the run log in its ledger; not needed for a
        saved credits frame (:meth:`use_credits`).
    page_size : int
        Break-table rows per page of :attr:`view`.

    Attributes
    ----------
    fetch_result : FetchResult or None
        The last fetch, with its failures.
    credits : DataFrame or None
        The credits frame reconciled.
    credits_file : CreditsFile or None
        The credits file the credits were read from (:meth:`use_credits_file`), with the SHA-256 of
        the bytes read; None for fetched credits.
    settlement, read_failures : DataFrame or None
        The settlement rows read and the rows that could not be read (file, line, column, reason).
    files : list of LoadedFile
        The settlement inputs read, with the SHA-256 of the bytes read.
    parameters : Parameters
        The last valid parameters given (:attr:`parameter_errors` holds the ones refused since).
    result : ReconResult or None
        The last result; :attr:`stale` says whether it is still current.
    result_files : list of LoadedFile
        The settlement inputs :attr:`result` was computed from.
    run_id : str or None
        The result's name (exports carry it).
    recorded_run : int or None
        The break book's id of the run :meth:`record` recorded for :attr:`result`.
    cleared : str
        Why the last result was removed (new credits or settlement), until a new one is computed.
    view : BreakView
    """

    def __init__(self, client: Any = None, *, page_size: int = 25) -> None:
        self.client = client
        self.fetch_result: FetchResult | None = None
        self.credits: pd.DataFrame | None = None
        self.credits_by_id: dict[str, Credit] = {}
        self.credits_file: CreditsFile | None = None
        self.environment: str | None = None
        self.settlement: pd.DataFrame | None = None
        self.read_failures: pd.DataFrame | None = None
        self.files: list[LoadedFile] = []
        self.parameters = Parameters()
        self.parameter_errors: dict[str, FieldError] = {}
        self.result: ReconResult | None = None
        self.result_files: list[LoadedFile] = []
        self.run_id: str | None = None
        self.recorded_run: int | None = None
        self.cleared = ""
        self.view = BreakView(page_size=page_size)
        self._runs = 0
        self._fetched_ids: tuple[str, ...] | None = None
        self._loaded: tuple[tuple[str, str], ...] | None = None
        self._chosen: dict[str, Any] = {}
        self._sources: list[Source] = []
        self._generation = {"credits": 0, "settlement": 0}
        self._result_inputs: dict[str, Any] | None = None
        self._positions: np.ndarray | None = None
        self._result_credits_file: CreditsFile | None = None

    # --- what the result was computed from ------------------------------------------------
    def _inputs(self) -> dict[str, Any]:
        """Every input by the name the staleness reason gives it."""
        parameters = dataclasses.asdict(self.parameters)
        for field, error in self.parameter_errors.items():  # a refused value differs from any valid one
            parameters[field] = ("refused", str(error))
        return {"credits fetched": self._generation["credits"], "settlement loaded": self._generation["settlement"],
                "credits file": None if self.credits_file is None else self.credits_file.sha256,
                "credit ids": self._chosen.get("ids", self._fetched_ids),
                "settlement files": self._chosen.get("files", self._loaded),
                "amount tolerance": parameters["tolerance"], "grace days": parameters["grace_days"],
                "as of": parameters["as_of"]}

    @property
    def stale_reasons(self) -> list[str]:
        """The inputs that changed since :attr:`result` was computed (empty while it is current)."""
        if self.result is None or self._result_inputs is None:
            return []
        now = self._inputs()
        return [name for name, value in self._result_inputs.items() if now[name] != value]

    @property
    def stale(self) -> bool:
        """Whether :attr:`result` no longer matches the inputs."""
        return bool(self.stale_reasons)

    @property
    def current(self) -> ReconResult | None:
        """:attr:`result` while it is current, else None."""
        return self.result if self.result is not None and not self.stale else None

    def _clear_result(self, why: str) -> None:
        if self.result is not None:
            self.cleared = why
        self.result, self._result_inputs, self.result_files = None, None, []
        self.run_id, self.recorded_run, self._positions = None, None, None
        self._result_credits_file = None

    # --- 1 · credits ----------------------------------------------------------------------------
    def choose_ids(self, ids: Iterable[str]) -> None:
        """The ids the view now holds (not fetched yet): the result goes stale if they differ."""
        self._chosen["ids"] = tuple(ids)

    def fetch(self, ids: Iterable[str] | None = None, **fetch_options: Any) -> FetchResult:
        """Fetch ``ids`` (default: the ids chosen) through the client, replacing the credits and
        clearing the result; ids that fail are in :attr:`fetch_result` ``.failed``, credits not
        indexed yet in its ``.not_indexed`` (``fetch_options`` such as ``index_wait`` go to
        :func:`~reconkit.fetch.fetch_credits`).

        Raises
        ------
        FieldError
            ``ids``: no id was given.
        """
        ids = tuple(self._chosen.get("ids", ()) if ids is None else ids)
        self._chosen["ids"] = ids
        self.fetch_result, self.credits, self.credits_by_id, self._fetched_ids = None, None, {}, None
        self.credits_file = None
        self._generation["credits"] += 1
        self._clear_result("the credits were fetched again")
        if not ids:
            raise FieldError("ids", "paste credit ids, upload a CSV of ids, or take them from the ledger first")
        if self.client is None:
            raise ValueError("an investigation without a client cannot fetch credits")
        self._fetched_ids = ids
        result = self.client.fetch_credits(list(ids), **fetch_options)
        self.fetch_result = result
        self.credits_by_id = {c.id: c for c in result.credits}
        self.credits = result.to_frame() if result.credits else None
        self.environment = self.client.config.environment_name
        return result

    def submission_days(self) -> tuple[date, date] | None:
        """The first and last day (UTC) the fetched credits were submitted on, if any."""
        if self.credits is None:
            return None
        submitted = pd.to_datetime(self.credits["submit_time_utc"], utc=True).dropna()
        return (submitted.min().date(), submitted.max().date()) if len(submitted) else None

    def use_credits(self, frame: pd.DataFrame | None, *, environment: str | None = None) -> None:
        """Reconcile a saved credits frame instead of fetching (clears the result; None: no credits)."""
        self.fetch_result, self.credits_by_id, self.credits_file = None, {}, None
        self.credits, self.environment = frame, environment
        self._fetched_ids = None
        self._chosen.pop("ids", None)
        self._generation["credits"] += 1
        self._clear_result("other credits were given")

    def use_credits_file(self, source: Any, *, name: str | None = None) -> CreditsFile:
        """Read a credits file (credit JSON, a saved credits frame, or a Business Center
        transaction-search export; see :func:`reconkit.read_credits`) in place of the credits
        fetched or read before, and clear the result. The bytes' SHA-256 goes with every run
        recorded from these credits.

        Raises
        ------
        CreditsFileError
            Naming the file, line and column at fault; the earlier credits are gone all the same
            (a result never mixes them with a file that failed).
        """
        self.use_credits(None)  # the old credits go first, whatever the file holds
        read = CreditsFile.read(source, name=name)
        self.credits, self.credits_file = read.frame, read
        return read

    @property
    def unfetched(self) -> int:
        """How many ids of the last fetch are left out of its credits: failed or not indexed yet."""
        return 0 if self.fetch_result is None else len(self.fetch_result.failed) + self.not_indexed

    @property
    def not_indexed(self) -> int:
        """How many ids of the last fetch were created by this client but are not indexed yet
        (see :class:`~reconkit.NotIndexedYetError`): not failures, but not in the credits either."""
        return 0 if self.fetch_result is None else len(self.fetch_result.not_indexed)

    # --- 2 · settlement -------------------------------------------------------------------------
    def choose_settlement(self, sources: Iterable[Source]) -> None:
        """The settlement inputs the view now holds (not loaded yet): the result goes stale if they
        differ from the ones loaded."""
        self._sources = list(sources)
        self._chosen["files"] = tuple(_source_key(s) for s in self._sources)

    def load(self, sources: Iterable[Source] | None = None, *, format: str = "auto",
             encoding: str | None = None) -> list[LoadedFile]:
        """Read ``sources`` (default: the ones chosen) as settlement, in place of what was loaded:
        each path's bytes are read once, digested and parsed from those very bytes, collecting
        unreadable rows in :attr:`read_failures`. The result is cleared.

        ``encoding`` is the text files' encoding when it is not UTF-8 (``"latin-1"``, ...), as for
        :func:`reconkit.read_settlement`.

        Raises
        ------
        FieldError
            ``files``: nothing was given.
        SettlementFormatError
            A file cannot be read at all, or two inputs hold the same bytes.
        """
        from .settlement import read_settlement, refuse_copies

        chosen = self._sources if sources is None else list(sources)
        self.choose_settlement(chosen)
        self.discard_settlement("other settlement was loaded")
        items: list[tuple[str, bytes]] = []
        seen: set[str] = set()
        for source in chosen:
            if isinstance(source, tuple):
                items.append((source[0], bytes(source[1])))
                continue
            path = os.fspath(source)
            if os.path.realpath(path) not in seen:  # a file named twice is read once, as read_settlement does
                seen.add(os.path.realpath(path))
                items.append((path, _read_file(path)))
        if not items:
            raise FieldError("files", "upload settlement files or choose some first")
        refuse_copies(items)  # a file given twice, under any name, would count its rows twice
        frames, failures = [], []
        for name, data in items:  # parsed from the bytes digested: the record is of what was read
            frame, failed = read_settlement(data, format, name=name, errors="collect", encoding=encoding)
            frames.append(frame)
            failures.append(failed)
        self.settlement = pd.concat(frames, ignore_index=True)
        self.read_failures = pd.concat(failures, ignore_index=True)
        self.files = [LoadedFile.read(name, data, frame, failed)
                      for (name, data), frame, failed in zip(items, frames, failures, strict=True)]
        self._loaded = self._chosen["files"]
        return self.files

    def pull(self, first: date, last: date, folder: Path, *, source: str = "report") -> Pulled:
        """Pull settlement from CyberSource's Reporting API for the days ``first`` to ``last``
        (inclusive), keep the files in ``folder`` and load them, in place of what was loaded.

        ``source`` ``"report"`` downloads the daily Payment Batch Detail report of each day
        (:data:`PBDR_REPORT`); ``"details"`` pulls purchase and refund details over the days.

        Raises
        ------
        FieldError
            ``pull_to``: ``last`` before ``first``; ``pull_from``: CyberSource has nothing for the days.
        """
        from .errors import NoReportDataError, ReportNotReadyError

        self.discard_settlement("settlement was pulled from CyberSource")
        if last < first:
            raise FieldError("pull_to", f"“to” ({last}) is before “from” ({first})")
        frames, empty, waiting = [], [], []
        if source == "report":
            day = first
            while day <= last:  # a daily report is dated the day after the day it covers (its end date)
                try:
                    frames.append(self.client.download_report(PBDR_REPORT, day + timedelta(days=1), "csv",
                                                              data_dir=folder))
                except NoReportDataError:
                    empty.append(day)
                except ReportNotReadyError:
                    waiting.append(day)
                day += timedelta(days=1)
        else:
            start = datetime.combine(first, datetime.min.time(), tzinfo=UTC)
            frames.append(self.client.purchase_refund_details(start, start + timedelta(days=(last - first).days + 1),
                                                              data_dir=folder))
        if not frames:
            why = "its reports are not ready yet" if waiting else "it has none"
            raise FieldError("pull_from", f"CyberSource has no settlement for {first} to {last}: {why}")
        # Each file kept (a details pull pages over several) is read back as any file is: the run
        # records the bytes read.
        paths = [Path(str(f)) for frame in frames for f in frame["source_file"].drop_duplicates()]
        self.load(paths)
        return Pulled(paths, empty, waiting)

    def discard_settlement(self, why: str) -> None:
        """Forget the settlement loaded (and the result), e.g. before other settlement is fetched."""
        self.settlement, self.read_failures, self.files, self._loaded = None, None, [], None
        self._generation["settlement"] += 1
        self._clear_result(why)

    # --- 3 · parameters -------------------------------------------------------------------------
    def set_parameters(self, *, tolerance: str | Decimal | None = None, grace_days: str | float | None = None,
                       as_of: str | datetime | EllipsisType | None = ...) -> Parameters:
        """Change some parameters (text as typed, or values). A value refused stays refused (and
        the result stale) until a valid one is given.

        Raises
        ------
        FieldError
            The first value refused (all are kept in :attr:`parameter_errors`).
        """
        parsers: dict[str, tuple[Any, Callable[[Any], Any]]] = {}
        if tolerance is not None:
            parsers["tolerance"] = (tolerance, parse_tolerance)
        if grace_days is not None:
            parsers["grace_days"] = (grace_days, parse_grace_days)
        if not isinstance(as_of, EllipsisType):
            parsers["as_of"] = (as_of, parse_as_of)
        values, first = {}, None
        for field, (given, parse) in parsers.items():
            try:
                values[field] = parse(given)
                self.parameter_errors.pop(field, None)
            except FieldError as exc:
                self.parameter_errors[field] = exc
                first = first or exc
        self.parameters = dataclasses.replace(self.parameters, **values)
        if first is not None:
            raise first
        return self.parameters

    # --- 4 · reconcile and record ---------------------------------------------------------------
    def refusals(self) -> list[FieldError]:
        """Why :meth:`reconcile` would refuse now, one error per field at fault."""
        problems = list(self.parameter_errors.values())
        if self._fetched_ids is not None and self._chosen.get("ids", self._fetched_ids) != self._fetched_ids:
            problems.append(FieldError("ids", f"these credit ids were not fetched (the last fetch read "
                                              f"{len(self._fetched_ids):,} id(s))"))
        if self._loaded is not None and self._chosen.get("files", self._loaded) != self._loaded:
            chosen = ", ".join(Path(key).name if kind == "path" else kind for kind, key in self._chosen["files"])
            loaded = ", ".join(Path(f.file).name for f in self.files)
            problems.append(FieldError("files", f"the files chosen ({chosen or 'none'}) are not the ones loaded "
                                                f"({loaded})"))
        return problems

    def reconcile(self) -> ReconResult:
        """Reconcile the credits and settlement read with the parameters, under a new
        :attr:`run_id`; the run is logged in the client's ledger.

        Raises
        ------
        NotReadError
            The ids or files chosen were not fetched or loaded (nothing changes).
        FieldError
            A parameter was refused, or credits or settlement are missing (the result is cleared).
        """
        from .match import reconcile

        problems = self.refusals()
        unread = [p for p in problems if p.field in ("ids", "files")]
        if unread:
            raise NotReadError(unread)
        self._clear_result("a new reconciliation was started")
        self.cleared = ""
        if problems:
            raise problems[0]
        if self.credits is None:
            raise FieldError("ids", "fetch the credits first (step 1)")
        if self.settlement is None:
            raise FieldError("files", "load settlement files first (step 2)")
        inputs = self._inputs()
        result = reconcile(self.credits, self.settlement, amount_tolerance=self.parameters.tolerance,
                           grace_days=self.parameters.grace_days, as_of=self.parameters.as_of,
                           failures=self.read_failures, environment=self.environment)
        result.parameters["unfetched_ids"] = self.unfetched  # the reports' Parameters say it when not 0
        result.parameters["not_indexed_ids"] = self.not_indexed
        if self.credits_file is not None:  # the run names the credits' bytes, as it names the settlement's
            result.parameters["credits_file"] = f"{self.credits_file.file} (SHA-256 {self.credits_file.sha256})"
        elif self.client is not None and "merchant_id" not in self.credits:
            # Fetched credits do not carry their merchant; the break book's intake checks the
            # settlement's merchant ids against the one they were fetched for.
            result.parameters["merchant_id"] = self.client.config.merchant_id
        if self.client is not None:  # the ledger keeps every run's parameters and counts
            self.client.ledger.record_run(result.parameters, result.counts())
        self._runs += 1
        self.result, self._result_inputs, self.result_files = result, inputs, list(self.files)
        self._result_credits_file = self.credits_file
        self.run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{self._runs}"
        self.view = BreakView(page_size=self.view.page_size)  # a new result is seen whole, from page 1
        return result

    def record_inputs(self) -> list[dict[str, Any]]:
        """The settlement inputs of :attr:`result` as the break book keeps them (name, bytes, SHA-256)."""
        credits = [self._result_credits_file.as_input()] if self._result_credits_file is not None else []
        return [*credits, *(f.as_input() for f in self.result_files)]

    def preview(self, book: Any) -> Any:
        """What recording :attr:`result` in ``book`` would do, and the intake checks it passes or
        fails (:meth:`reconkit.BreakBook.preview`); nothing is written.

        Raises
        ------
        ValueError
            There is no current result.
        """
        return book.preview(self._current_or_refuse(), inputs=self.record_inputs())

    def record(self, book: Any, *, override: str | None = None) -> int:
        """Record :attr:`result` in ``book`` with the digests of the bytes it was computed from.

        Parameters
        ----------
        book : BreakBook
        override : str, optional
            Why a run that fails an intake check is recorded anyway (kept with the run and in the
            audit); without it such a run is refused.

        Raises
        ------
        ValueError
            There is no current result.
        reconkit.IntakeError
            The run fails an intake check and no ``override`` was given; nothing is recorded.
        """
        run = book.record(self._current_or_refuse(), inputs=self.record_inputs(), override=override)
        self.recorded_run = run
        return run

    def _current_or_refuse(self) -> ReconResult:
        result = self.current
        if result is None:
            raise ValueError("reconcile first" if self.result is None else
                             f"the result is stale ({', '.join(self.stale_reasons)} changed): reconcile again")
        return result

    # --- 5 · the break table: filter, search, sort, page --------------------------------------
    def set_view(self, **changes: Any) -> BreakView:
        """Change the view (``outcome``, ``currency``, ``search`` (text or ids), ``sort_by``,
        ``descending``, ``page``); any change but ``page`` goes back to the first page."""
        if isinstance(changes.get("search"), str):
            changes["search"] = tuple(parse_ids(changes["search"]))
        if "sort_by" in changes and changes["sort_by"] not in ("", *SORT_COLUMNS):
            raise FieldError("sort_by", f"cannot sort by “{changes['sort_by']}”")
        if set(changes) - {"page"}:
            changes.setdefault("page", 0)
            self._positions = None
        self.view = dataclasses.replace(self.view, **changes)
        return self.view

    def positions(self) -> np.ndarray:
        """Positions in the result's break table that pass the view's filters, in its order (Arrow
        kernels, so 100,000 breaks filter without building a pandas frame)."""
        if self.result is None:
            return np.array([], dtype=np.int64)
        if self._positions is None:
            self._positions = _positions(self.result.break_table, self.view)
        return self._positions

    @property
    def pages(self) -> int:
        """Pages of the filtered breaks (at least 1)."""
        return max(1, -(-len(self.positions()) // self.view.page_size))

    def page_positions(self) -> np.ndarray:
        """The positions on the view's page (the page is clamped to the pages there are)."""
        page = min(max(self.view.page, 0), self.pages - 1)
        if page != self.view.page:
            self.view = dataclasses.replace(self.view, page=page)
        size = self.view.page_size
        return self.positions()[page * size:(page + 1) * size]

    def filtered_breaks(self) -> pd.DataFrame:
        """The break table under the view's filters, in its order."""
        if self.result is None:
            return pd.DataFrame()
        return self.result.breaks_frame(self.result.break_table.take(pa.array(self.positions(), pa.int64())))

    def filter_description(self, labels: Mapping[str, str] | None = None) -> str:
        """The view's filters and order in words, for a filtered export's parameters."""
        labels = labels or {}
        view, shown = self.view, len(self.positions())
        order = (f"{labels.get(view.sort_by, view.sort_by)}, {'descending' if view.descending else 'ascending'}"
                 if view.sort_by else "currency, then largest amount at risk")
        total = 0 if self.result is None else self.result.break_table.num_rows
        outcome = "(all breaks)" if view.outcome == ALL else view.outcome
        return (f"outcome = {outcome}; currency = {view.currency}; "
                f"search = {', '.join(view.search) if view.search else '(none)'}; order = {order}; "
                f"{shown:,} of {total:,} break(s)")


def _read_file(path: str) -> bytes:
    from .errors import SettlementFormatError

    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise SettlementFormatError(f"cannot read the file: {exc.strerror or exc}", file=path) from None


def _positions(table: pa.Table, view: BreakView) -> np.ndarray:
    keep = pa.array(np.ones(table.num_rows, dtype=bool))
    if view.outcome and view.outcome != ALL:
        keep = pc.and_(keep, pc.equal(table.column("outcome"), view.outcome))
    if view.currency and view.currency != ALL:
        keep = pc.and_(keep, pc.equal(table.column("currency"), view.currency))
    if view.search:
        hit = pa.array(np.zeros(table.num_rows, dtype=bool))
        for needle in view.search:
            for column in _SEARCHED:
                found = pc.match_substring(table.column(column), needle, ignore_case=True)
                hit = pc.or_(hit, pc.fill_null(found, False))
        keep = pc.and_(keep, hit)
    positions = np.flatnonzero(np.asarray(pc.fill_null(keep, False).to_numpy(zero_copy_only=False)))
    return positions[_order(table.take(pa.array(positions, pa.int64())), view)]


def _order(table: pa.Table, view: BreakView) -> np.ndarray:
    """The view's sort of ``table``'s rows (amounts compared across currencies in major units;
    blanks last; ties in the table's own order)."""
    if not view.sort_by:
        return np.arange(table.num_rows, dtype=np.int64)
    column = _SORT_KEYS.get(view.sort_by, view.sort_by)
    if column == "amount_sort":
        digits = np.asarray(table.column("minor_units").to_numpy(zero_copy_only=False), dtype=np.float64)
        key = pc.divide(pc.cast(table.column("amount_at_risk_minor"), pa.float64()), pa.array(10.0 ** digits))
    else:
        key = table.column(column)
    if pa.types.is_dictionary(key.type):  # sentences are stored once per distinct text
        key = pc.cast(key, key.type.value_type)
    if view.sort_by == "source_file":
        key = pc.replace_substring_regex(key, r"^.*[\\/]", "")
    order = "descending" if view.descending else "ascending"
    keyed = pa.table({"key": key, "row": pa.array(np.arange(table.num_rows, dtype=np.int64))})
    return np.asarray(pc.sort_indices(keyed, sort_keys=[("key", order, "at_end"), ("row", "ascending", "at_end")]))
