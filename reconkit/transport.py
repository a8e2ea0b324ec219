"""How reconkit talks HTTP: a session that never follows a redirect, and the one read path.

Every request goes only where it was aimed. :class:`NoRedirectSession` refuses to follow a
redirect whatever a caller passes (``requests`` follows 301/302/303 as a GET and re-sends a
307/308 POST with its body and signature otherwise), and every call passes
``allow_redirects=False`` as well, so a plain ``requests.Session`` swapped in still follows none.
A 3xx is an answer like any other: to a read, :class:`~reconkit.errors.RedirectError` naming its
``Location``; to a POST, the caller's unknown outcome.

:func:`read` is the single request-and-retry function of every read (the client's GETs and
searches, the Reporting API's listings, pages and downloads). It retries what urllib3's
:class:`~urllib3.util.Retry` counts as retryable (429, 502, 503, 504, transport errors), within a
bound on attempts and on total time, re-signing each attempt (a JWT's ``jti`` is single-use, so
urllib3 cannot resend inside the adapter). POSTs that create something never come through here.
"""

from __future__ import annotations

import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, TypeVar

import requests
from urllib3.exceptions import MaxRetryError
from urllib3.util import Retry

from .errors import ApiError, NetworkError, ReconkitError, RedirectError, error_for_status
from .hosts import same_origin_url

if TYPE_CHECKING:
    from .client import Client

__all__ = ["RETRY_STATUSES", "Backoff", "NoRedirectSession", "json_object", "read", "redirect_location",
           "retry_after_seconds"]

log = logging.getLogger("reconkit")

RETRY_STATUSES = frozenset({429, 502, 503, 504})
"""The statuses a read is retried on."""
_DELAY_SECONDS = re.compile(r"[0-9]{1,9}(?:\.[0-9]{1,9})?")

T = TypeVar("T")


class NoRedirectSession(requests.Session):
    """A ``requests.Session`` that follows no redirect, whatever ``allow_redirects`` a call passes.

    ``requests`` resolves redirects in :meth:`requests.Session.send` through
    :meth:`resolve_redirects`; here that yields nothing, :meth:`get_redirect_target` sees no
    target and ``max_redirects`` is 0, so the 3xx response itself is returned to the caller.
    """

    def __init__(self) -> None:
        super().__init__()
        self.max_redirects = 0

    def get_redirect_target(self, resp: requests.Response) -> str | None:
        return None

    def resolve_redirects(self, resp: requests.Response, req: requests.PreparedRequest,
                          *args: Any, **kwargs: Any) -> Any:
        return iter(())

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        kwargs["allow_redirects"] = False
        return super().send(request, **kwargs)


def redirect_location(response: requests.Response) -> str | None:
    """The ``Location`` of a 3xx response (``""`` when it has none), or None when it is no 3xx."""
    if not 300 <= response.status_code < 400:
        return None
    return response.headers.get("Location", "")


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait, or None when there is none or it cannot be
    read (then the caller's backoff applies).

    A value is delay-seconds (``120``, also ``1.5``) or an HTTP-date in a known zone. Garbage,
    a date whose zone is unknown (``-0000``) and absurd values are unreadable, never an error.
    """
    if not value:
        return None
    text = value.strip()
    if _DELAY_SECONDS.fullmatch(text):
        seconds = float(text)
        return seconds if math.isfinite(seconds) else None
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment is None or moment.tzinfo is None:
        return None
    try:
        return max(0.0, (moment - datetime.now(UTC)).total_seconds())
    except OverflowError:
        return None


class Backoff:
    """Full-jitter exponential backoff: attempt ``n`` waits ``uniform(0, min(cap, base * 2**n))``.

    Thread-safe; a ``seed`` makes the waits repeatable.
    """

    def __init__(self, base: float, cap: float, seed: int | None = None) -> None:
        self.base = base
        self.cap = cap
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def __call__(self, attempt: int) -> float:
        with self._lock:
            return self._random.uniform(0, min(self.cap, self.base * (2 ** attempt)))


def _policy(retries: int) -> Retry:
    # Only reads come here, so any method may be retried; redirects are never followed.
    return Retry(total=retries, redirect=0, allowed_methods=None, status_forcelist=RETRY_STATUSES,
                 respect_retry_after_header=False, raise_on_status=False, raise_on_redirect=True)


def _failure(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return f"{type(exc).__name__} (the body ended before its Content-Length or chunked framing said)"
    return type(exc).__name__


def read(client: Client, method: str, path: str, *, data: bytes | None = None,
         headers: Mapping[str, str] | None = None,
         check: Callable[[requests.Response], T] | None = None) -> tuple[requests.Response, T | None]:
    """Send a read (a GET, or a search POST that creates nothing), retrying what may be retried.

    Parameters
    ----------
    client : Client
        Its ``session``, ``config.base_url``, ``timeout``, ``max_retries``, ``retry_deadline``
        and ``backoff`` are used.
    method, path : str
        ``path`` (with any query) is joined to the base URL and must stay on its host.
    data : bytes, optional
        The body, signed and sent as is on every attempt.
    headers : mapping, optional
        Extra headers (e.g. ``Accept``).
    check : callable, optional
        Reads a 2xx response into the value returned with it; a :class:`ReconkitError` it raises
        (a body that is not what was asked for) is retried like a 502.

    Returns
    -------
    (requests.Response, value)
        The 2xx response and what ``check`` made of it (None without ``check``).

    Raises
    ------
    RedirectError
        The server answered 3xx; it was not followed and nothing more was sent.
    ApiError
        Any other error status, at once, or a retryable one when the retries are spent.
    NetworkError
        The transport kept failing.
    """
    url = same_origin_url(client.config.base_url, path)
    where = path.split("?", 1)[0]
    policy = _policy(client.max_retries)
    deadline = time.monotonic() + client.retry_deadline
    attempt = 0
    while True:
        attempt += 1
        wait: float | None = None
        error: ReconkitError
        cause: BaseException | None = None
        try:
            response = client.session.request(method, url, data=data, headers=dict(headers or {}),
                                               timeout=client.timeout, allow_redirects=False)
        except requests.RequestException as exc:
            error = NetworkError(f"{method} {where} failed: {_failure(exc)}", attempts=attempt)
            # Kept as the cause: a caller tells a body cut short (ChunkedEncodingError) from no answer.
            cause = exc
        else:
            status = response.status_code
            location = redirect_location(response)
            if location is not None:
                raise RedirectError(status, location, correlation_id=response.headers.get("v-c-correlation-id"),
                                    method=method, path=where)
            if 200 <= status < 300:
                if check is None:
                    return response, None
                try:
                    return response, check(response)
                except ReconkitError as bad:
                    error = bad
            else:
                try:
                    body: Any = response.json()
                except ValueError:
                    body = response.text[:500]
                api_error = error_for_status(
                    status, body, correlation_id=response.headers.get("v-c-correlation-id"), method=method,
                    path=where, retry_after=retry_after_seconds(response.headers.get("Retry-After")))
                if not policy.is_retry(method, status):
                    api_error.attempts = attempt  # type: ignore[attr-defined]
                    raise api_error
                error, wait = api_error, api_error.retry_after
        _log_attempt(method, where, error, attempt)
        try:
            policy = policy.increment(method, url)
        except MaxRetryError:
            error.attempts = attempt  # type: ignore[attr-defined]
            raise error from cause
        if wait is None:
            wait = client.backoff(attempt)
        if time.monotonic() + wait > deadline:
            error.attempts = attempt  # type: ignore[attr-defined]
            raise error from cause
        time.sleep(wait)


def _log_attempt(method: str, path: str, error: Exception, attempt: int) -> None:
    status = error.http_status if isinstance(error, ApiError) else type(error).__name__
    log.debug("%s %s -> %s (attempt %d)", method, path, status, attempt)


def json_object(method: str, path: str) -> Callable[[requests.Response], dict[str, Any]]:
    """A ``check`` for :func:`read`: the body as a JSON object, else a retryable 502 ``BAD_RESPONSE``."""

    def parse(response: requests.Response) -> dict[str, Any]:
        try:
            parsed = response.json()
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            # An answer whose message-level encryption failed says why (reconkit.auth sets mle_error).
            message = getattr(response, "mle_error", None) or "the response body was not JSON"
            raise error_for_status(502, {"reason": "BAD_RESPONSE", "message": message},
                                   correlation_id=response.headers.get("v-c-correlation-id"), method=method,
                                   path=path.split("?", 1)[0])
        return parsed

    return parse
