"""Bulk fetch: thousands of credits by id, concurrently, resumably, with failures kept."""

from __future__ import annotations

import concurrent.futures
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd

from .credit import FINAL_STATUSES, Credit
from .errors import ApiError, ReconkitError

if TYPE_CHECKING:
    from .client import Client

__all__ = ["FAILED_COLUMNS", "FetchResult", "fetch_credits", "normalize_ids"]

FAILED_COLUMNS = ("id", "error", "http_status", "reason", "message", "attempts")
_ID = re.compile(r"^\d{1,26}$")


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
        Distinct ids asked for; ``len(credits) + len(failed) == requested``.
    """

    credits: list[Credit]
    failed: pd.DataFrame
    from_cache: int
    requested: int

    def to_frame(self) -> pd.DataFrame:
        """The fetched credits flattened (see :func:`reconkit.credits_to_frame`)."""
        from .frames import credits_to_frame

        return credits_to_frame(self.credits)

    def __repr__(self) -> str:
        return (f"FetchResult(requested={self.requested}, credits={len(self.credits)}, failed={len(self.failed)}, "
                f"from_cache={self.from_cache})")


def normalize_ids(ids: Iterable[Any]) -> tuple[list[str], list[str]]:
    """Strip and de-duplicate ids, keeping input order; returns ``(valid, malformed)``."""
    seen: set[str] = set()
    valid, malformed = [], []
    for raw in ids:
        text = "" if raw is None else str(raw).strip()
        if text in seen:
            continue
        seen.add(text)
        (valid if _ID.match(text) else malformed).append(text)
    return valid, malformed


def _failure(credit_id: str, exc: BaseException) -> dict[str, Any]:
    attempts = getattr(exc, "attempts", 1)
    if isinstance(exc, ApiError):
        return {"id": credit_id, "error": type(exc).__name__, "http_status": exc.http_status, "reason": exc.reason,
                "message": exc.message or str(exc), "attempts": attempts}
    return {"id": credit_id, "error": type(exc).__name__, "http_status": None, "reason": None,
            "message": str(exc), "attempts": attempts}


def fetch_credits(client: Client, ids: Iterable[Any], *, workers: int = 16, progress: bool = True,
                  cache: bool = True, refresh: bool = False, max_age: timedelta | None = None) -> FetchResult:
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

    def collect(credit_id: str, future: concurrent.futures.Future[Credit]) -> None:
        try:
            credit = future.result()
        except (ReconkitError, ValueError) as exc:
            failures[credit_id] = _failure(credit_id, exc)
        else:
            results[credit_id] = credit
            unsaved.append(credit)

    pending: dict[concurrent.futures.Future[Credit], str] = {}
    queue = iter(todo)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reconkit-fetch")
    try:
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
                    bar.update(1)
                    bar.set_postfix(done=len(results), failed=len(failures), refresh=False)
                next_id = next(queue, None)
                if next_id is not None:
                    pending[pool.submit(client.get_credit, next_id)] = next_id
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
    return FetchResult(credits, failed, from_cache, len(valid) + len(malformed))


def _progress(total: int, initial: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="fetching credits", unit="credit", dynamic_ncols=True)


