"""Bulk fetch: thousands of credits by id, concurrently, resumably, with failures kept."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd

from .credit import FINAL_STATUSES, Credit, is_credit_id
from .errors import ApiError, NotIndexedYetError, ReconkitError

if TYPE_CHECKING:
    from .client import Client

__all__ = ["FAILED_COLUMNS", "NOT_INDEXED_COLUMNS", "FetchResult", "fetch_credits", "normalize_ids"]

FAILED_COLUMNS = ("id", "error", "http_status", "reason", "message", "attempts")
NOT_INDEXED_COLUMNS = ("id", "outcome", "status", "reconciliation_id", "created_at", "message", "attempts")
# Waits between rounds of asking again for credits not indexed yet: short first (a lag of
# seconds), never longer than this (TSS may lag minutes; no point asking every second).
_FIRST_WAIT, _LONGEST_WAIT = 1.0, 30.0


@dataclass(frozen=True)
class FetchResult:
    """What :func:`fetch_credits` got.

    Attributes
    ----------
    credits : list of Credit
        In input order (after stripping and de-duplication).
    failed : DataFrame
        One row per id that could not be fetched: ``id``, ``error`` (class), ``http_status``,
        ``reason``, ``message``, ``attempts`` (0 for an id that was never sent).
    from_cache : int
        How many credits came from the ledger's cache instead of the network (see the ``cache``
        parameter of :func:`fetch_credits` for what it serves).
    requested : int
        Distinct ids asked for; ``len(credits) + len(not_indexed) + len(failed) == requested``.
    not_indexed : DataFrame
        One row per id the ledger holds as created by this client but which neither the self
        link nor Transaction Details answered before ``index_wait`` ran out (see
        :class:`~reconkit.NotIndexedYetError`): ``id``, ``outcome`` (the ledger's), ``status``
        and ``reconciliation_id`` (the create response's), ``created_at``, ``message``,
        ``attempts``. Not a failure: read them again later.
    not_indexed_credits : list of Credit
        The create responses of those ids, as the ledger kept them (``source="create"``), where
        the create call answered with a credit.
    """

    credits: list[Credit]
    failed: pd.DataFrame
    from_cache: int
    requested: int
    not_indexed: pd.DataFrame = field(default_factory=lambda: _not_indexed_frame([]))
    not_indexed_credits: list[Credit] = field(default_factory=list)

    def to_frame(self, *, not_indexed: bool = False) -> pd.DataFrame:
        """The fetched credits flattened (see :func:`reconkit.credits_to_frame`).

        Parameters
        ----------
        not_indexed : bool
            Also the credits not indexed yet, from their create responses, after the fetched
            ones, with a last column ``indexed`` (False for them).
        """
        from .frames import credits_to_frame

        if not not_indexed:
            return credits_to_frame(self.credits)
        frame = credits_to_frame([*self.credits, *self.not_indexed_credits])
        frame["indexed"] = pd.array([True] * len(self.credits) + [False] * len(self.not_indexed_credits),
                                    dtype="boolean")
        return frame

    def left_out(self) -> pd.DataFrame:
        """Every id a reconciliation of :attr:`credits` leaves out, in ``failed``'s columns: the
        failures, then the credits not indexed yet (``error`` ``NotIndexedYetError``, HTTP 404)."""
        waiting = pd.DataFrame({"id": self.not_indexed["id"], "error": "NotIndexedYetError", "http_status": 404,
                                "reason": pd.NA, "message": self.not_indexed["message"],
                                "attempts": self.not_indexed["attempts"]}, columns=FAILED_COLUMNS)
        if waiting.empty:
            return self.failed.copy()
        if self.failed.empty:
            return waiting.astype(self.failed.dtypes.to_dict())
        return pd.concat([self.failed, waiting.astype(self.failed.dtypes.to_dict())], ignore_index=True)

    def __repr__(self) -> str:
        return (f"FetchResult(requested={self.requested}, credits={len(self.credits)}, "
                f"not_indexed={len(self.not_indexed)}, failed={len(self.failed)}, from_cache={self.from_cache})")


def _not_indexed_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=NOT_INDEXED_COLUMNS)
    return frame.astype({"id": "string", "outcome": "string", "status": "string", "reconciliation_id": "string",
                         "created_at": "string", "message": "string", "attempts": "Int64"})


def _not_indexed_row(exc: NotIndexedYetError, attempts: int) -> dict[str, Any]:
    created = exc.created
    return {"id": exc.credit_id, "outcome": exc.outcome, "status": None if created is None else created.status,
            "reconciliation_id": None if created is None else created.reconciliation_id,
            "created_at": exc.created_at, "message": str(exc), "attempts": attempts}


def normalize_ids(ids: Iterable[Any]) -> tuple[list[str], list[str]]:
    """Strip and de-duplicate ids, keeping input order; returns ``(valid, malformed)``."""
    seen: set[str] = set()
    valid, malformed = [], []
    for raw in ids:
        text = "" if raw is None else str(raw).strip()
        if text in seen:
            continue
        seen.add(text)
        (valid if is_credit_id(text) else malformed).append(text)
    return valid, malformed


def _failure(credit_id: str, exc: BaseException) -> dict[str, Any]:
    attempts = getattr(exc, "attempts", 1)
    if isinstance(exc, ApiError):
        return {"id": credit_id, "error": type(exc).__name__, "http_status": exc.http_status, "reason": exc.reason,
                "message": exc.message or str(exc), "attempts": attempts}
    return {"id": credit_id, "error": type(exc).__name__, "http_status": None, "reason": None,
            "message": str(exc), "attempts": attempts}


def fetch_credits(client: Client, ids: Iterable[Any], *, workers: int = 16, progress: bool = True,
                  cache: bool = True, refresh: bool = False, max_age: timedelta | None = None,
                  index_wait: timedelta = timedelta(0),
                  sleep: Callable[[float], Any] = time.sleep) -> FetchResult:
    """Fetch many credits through :meth:`Client.get_credit`, concurrently.

    Parameters
    ----------
    client : Client
    ids : iterable
        Credit ids; whitespace is stripped, duplicates dropped, malformed ids (not 1-26 digits)
        reported in ``failed`` without being sent.
    workers : int
        Requests in flight at once (the connection pool is at least this large).
    progress : bool
        A ``tqdm.auto`` bar (a widget in a notebook, text in a terminal).
    cache : bool
        Keep every response in the ledger's SQLite file, under this client's environment
        (:attr:`~reconkit.Config.ledger_environment`: the host, or the sandbox's database) and
        merchant id, and reuse what cannot have changed on the next call: a credit whose status is
        final (:data:`reconkit.credit.FINAL_STATUSES`: declined, voided, ...) is not fetched again;
        a ``PENDING`` or ``TRANSMITTED`` one always is, since it may have been voided or settled
        since. Another environment's or merchant's entries are never served.
    refresh : bool
        Refetch even what the cache holds.
    max_age : timedelta, optional
        Serve any cached entry younger than this, whatever its status, and refetch every older
        one: the caller accepts answers up to ``max_age`` old (e.g. to resume an interrupted
        fetch of thousands of pending credits without asking again).
    index_wait : timedelta
        How long to keep asking again for credits not indexed yet (created by this client, not
        readable yet: :class:`~reconkit.NotIndexedYetError`), waiting 1 s, 2 s, 4 s, ... (at most
        30 s) between rounds. The budget ends when either the client's clock
        (:attr:`~reconkit.Client.clock`: the sandbox's for a sandbox client) or the wall clock
        has moved ``index_wait`` since the first round ended. 0, the default, asks once; ids
        still not indexed at the end are in :attr:`FetchResult.not_indexed`, never dropped.
    sleep : callable
        Waits that many seconds between rounds; ``time.sleep`` by default. A test against a
        sandbox with a frozen clock passes ``lambda s: sandbox.advance(seconds=s)``.

    Returns
    -------
    FetchResult
    """
    if workers < 1:
        raise ValueError("workers must be at least 1")
    valid, malformed = normalize_ids(ids)
    failures: dict[str, dict[str, Any]] = {
        m: {"id": m, "error": "MalformedId", "http_status": None, "reason": "INVALID_ID",
            "message": f"{m!r} is not a credit id (1-26 digits); it was not sent", "attempts": 0}
        for m in malformed}
    ledger = client.ledger if cache else None
    scope = {"environment": client.config.ledger_environment, "merchant_id": client.config.merchant_id}
    results: dict[str, Credit] = {}
    if ledger is not None and not refresh:
        cached = ledger.cache_get_many(valid, max_age=max_age, final_statuses=FINAL_STATUSES, **scope)
        for credit_id, (raw, source) in cached.items():
            results[credit_id] = Credit(raw, source=source, http_status=200)
    from_cache = len(results)
    todo = [i for i in valid if i not in results]
    client.widen_pool(workers)
    bar = _progress(len(valid) + len(malformed), from_cache + len(malformed), progress)

    unsaved: list[Credit] = []

    def save(force: bool = False) -> None:
        # One transaction per batch: a commit per credit would cost more than the GET itself.
        if ledger is not None and unsaved and (force or len(unsaved) >= 64):
            ledger.cache_put(((c.id, c.raw, c.source, c.status) for c in unsaved), **scope)
            unsaved.clear()

    not_indexed: dict[str, NotIndexedYetError] = {}
    asked: dict[str, int] = {}

    def collect(credit_id: str, future: concurrent.futures.Future[Credit]) -> None:
        asked[credit_id] = asked.get(credit_id, 0) + 1
        not_indexed.pop(credit_id, None)
        try:
            credit = future.result()
        except NotIndexedYetError as exc:
            not_indexed[credit_id] = exc
        except (ReconkitError, ValueError) as exc:
            failures[credit_id] = _failure(credit_id, exc)
            # An id asked again after "not indexed yet" counts its earlier rounds too.
            failures[credit_id]["attempts"] += asked[credit_id] - 1
        else:
            results[credit_id] = credit
            unsaved.append(credit)

    pending: dict[concurrent.futures.Future[Credit], str] = {}
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reconkit-fetch")

    def run(ids: list[str], counted: bool) -> None:
        queue = iter(ids)
        # At most `workers` requests in flight and as many queued: memory stays flat for any N.
        for credit_id in queue:
            pending[pool.submit(client.get_credit, credit_id)] = credit_id
            if len(pending) >= 2 * workers:
                break
        while pending:
            done, _ = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                collect(pending.pop(future), future)
                save()
                if bar is not None:
                    bar.update(1 if counted else 0)
                    bar.set_postfix(done=len(results), not_indexed=len(not_indexed), failed=len(failures),
                                    refresh=False)
                next_id = next(queue, None)
                if next_id is not None:
                    pending[pool.submit(client.get_credit, next_id)] = next_id

    try:
        run(todo, True)
        _retry_not_indexed(client, not_indexed, index_wait, sleep, lambda ids: run(ids, False))
    except BaseException:
        # Ctrl-C or a bug: drop what has not started; what is in flight finishes and is kept.
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        for future, credit_id in pending.items():
            if future.done() and not future.cancelled():
                collect(credit_id, future)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        save(force=True)
        if bar is not None:
            bar.close()
    credits = [results[i] for i in valid if i in results]
    order = {value: index for index, value in enumerate([*valid, *malformed])}
    failed = pd.DataFrame(sorted(failures.values(), key=lambda row: order[row["id"]]), columns=FAILED_COLUMNS)
    failed = failed.astype({"id": "string", "error": "string", "reason": "string", "message": "string",
                            "http_status": "Int64", "attempts": "Int64"})
    waiting = [not_indexed[i] for i in valid if i in not_indexed]
    return FetchResult(credits, failed, from_cache, len(valid) + len(malformed),
                       _not_indexed_frame([_not_indexed_row(e, asked[e.credit_id]) for e in waiting]),
                       [e.created for e in waiting if e.created is not None])


def _retry_not_indexed(client: Client, not_indexed: dict[str, NotIndexedYetError], budget: timedelta,
                       sleep: Callable[[float], Any], ask: Callable[[list[str]], None]) -> None:
    """Ask again for the ids in ``not_indexed`` (which ``ask`` updates) until none is left or
    ``budget`` has passed on the client's clock or on the wall clock, whichever comes first."""
    if budget <= timedelta(0):
        return
    started, started_wall = client.clock(), time.monotonic()
    wait = _FIRST_WAIT
    while not_indexed:
        # Both clocks: a sandbox client's clock may be frozen (only advanced by `sleep`), and a
        # `sleep` that advances it returns at once on the wall clock.
        spent = max(client.clock() - started, timedelta(seconds=time.monotonic() - started_wall))
        left = (budget - spent).total_seconds()
        if left <= 0:
            return
        sleep(min(wait, left))
        wait = min(wait * 2, _LONGEST_WAIT)
        ask(list(not_indexed))


def _progress(total: int, initial: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="fetching credits", unit="credit", dynamic_ncols=True)


