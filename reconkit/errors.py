"""The one error tree of reconkit.

Every exception reconkit raises on purpose derives from :class:`ReconkitError`::

    ReconkitError
    ├── ConfigError                 a credential or setting is missing or malformed
    ├── MessageEncryptionError      a JWE (message-level encryption) does not decrypt or encrypt
    ├── ProductionGuardError        money would move on the production host without opt-in
    ├── AmbiguousOutcomeError       a POST was sent but its outcome is unknown (never resent)
    │   └── AmbiguousVoidError      a void was sent but whether the credit is voided is unknown
    ├── UnresolvedVoidError         a credit's earlier void is still unknown: look it up first
    ├── DuplicateReferenceError     a reference code already names an earlier credit in the ledger
    ├── NetworkError                the server could not be reached or kept failing (GETs only)
    ├── IncompleteReportError       a downloaded or paged report did not arrive whole
    ├── SettlementFormatError       a settlement file cannot be read (file, line, column, failures)
    │   └── SettlementEncodingError a settlement file's bytes are not text in the encoding read
    ├── DatabaseKindError           a file given as a ledger or sandbox database is another kind of file
    ├── CreditShapeError            a JSON document given as a credit is not one (also a ValueError)
    │   └── CreditsFileError        a credits file cannot be read (file, line, column, failures)
    ├── ReconciliationError         the engine's own invariants failed (rows in != rows out)
    ├── MissingExtraError           an optional part (PySpark) is not installed: names the command that installs it
    ├── FieldError                  an input or parameter cannot be used (names the field; a ValueError)
    │   └── NotReadError            reconcile was asked for inputs chosen but never fetched or loaded
    ├── BreakBookError              a break-workflow step is not allowed (also a ValueError)
    │   ├── BreakConflictError      the break changed since the caller last read it
    │   ├── IntakeError             a run failed an intake check and no override was given
    │   ├── BookIntegrityError      the book's hash chain or derived state disagrees with its log
    │   └── IdentityError           a name is empty or mixes scripts once normalised
    └── ApiError                    CyberSource answered with an error
        ├── InvalidRequestError     400
        ├── AuthenticationError     401
        ├── NotFoundError           404 (and 405 for an unsupported self link)
        │   ├── NotIndexedYetError  a credit this client created is not readable yet (TSS lags creation)
        │   ├── ReportNotReadyError a Reporting API report exists but is not generated yet
        │   ├── NoReportDataError   CyberSource has nothing for that report date or window
        │   └── ReportFailedError   CyberSource could not generate the report (status ERROR)
        ├── RedirectError           3xx to a read: never followed, nothing more sent
        ├── RateLimitError          429
        ├── ServerError             5xx
        └── DeclinedError           201 with ``status: DECLINED`` and ``errorInformation``

``str(error)`` is always one readable sentence; the secret never appears in it. Every error
survives ``pickle`` (multiprocessing, joblib, caches) with its attributes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from .breaks import IntakeCheck

__all__ = [
    "AmbiguousOutcomeError",
    "AmbiguousVoidError",
    "ApiError",
    "AuthenticationError",
    "BookIntegrityError",
    "BreakBookError",
    "BreakConflictError",
    "ConfigError",
    "CreditShapeError",
    "CreditsFileError",
    "DatabaseKindError",
    "DeclinedError",
    "DuplicateReferenceError",
    "FieldError",
    "IdentityError",
    "IncompleteReportError",
    "IntakeError",
    "InvalidRequestError",
    "MessageEncryptionError",
    "MissingExtraError",
    "NetworkError",
    "NoReportDataError",
    "NotFoundError",
    "NotIndexedYetError",
    "NotReadError",
    "ProductionGuardError",
    "RateLimitError",
    "ReconciliationError",
    "ReconkitError",
    "RedirectError",
    "ReportFailedError",
    "ReportNotReadyError",
    "ServerError",
    "SettlementEncodingError",
    "SettlementFormatError",
    "UnresolvedVoidError",
]


def _rebuild(cls: type[ReconkitError], args: tuple[Any, ...]) -> ReconkitError:
    error = cls.__new__(cls)
    error.args = args
    return error


class ReconkitError(Exception):
    """Base class of every error reconkit raises on purpose."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Exception pickles as cls(*args), which breaks every subclass whose __init__ takes other
        # arguments than its message; rebuild without calling __init__ and restore the attributes.
        return (_rebuild, (type(self), self.args), dict(self.__dict__))


class ConfigError(ReconkitError):
    """A configuration value is missing or malformed.

    Parameters
    ----------
    field : str
        The name of the offending setting (never its value when it is a secret).
    message : str
        What is wrong and what was expected.
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class MessageEncryptionError(ReconkitError):
    """A message-level encryption (MLE, JWE) step failed: a response could not be decrypted with the
    configured response key, or a request could not be encrypted. The message names the setting
    at fault (``responseMlePrivateKeyFilePath``, ``requestMleKeyAlias``, ...), never a key."""


class ProductionGuardError(ReconkitError):
    """Raised when a money-moving call targets production without ``allow_production=True``."""


class AmbiguousOutcomeError(ReconkitError):
    """A POST reached the wire but no answer came back; the outcome is unknown.

    reconkit never resends such a request. Look the credit up by its reference code or
    transaction id before deciding to issue it again.

    Attributes
    ----------
    what : str
        What happened, in one sentence (the message without the advice that follows it).
    """

    def __init__(self, message: str, *, reference_code: str | None, transaction_id: str | None,
                 method: str = "POST", path: str = "", advice: str | None = None) -> None:
        self.what = message
        self.reference_code = reference_code
        self.transaction_id = transaction_id
        self.method = method
        self.path = path
        super().__init__(f"{message} " + (advice or (
            f"The outcome of {method} {path} is unknown and it was not resent; look it up by reference code "
            f"{reference_code!r} / transaction id {transaction_id!r} before issuing it again.")))


class AmbiguousVoidError(AmbiguousOutcomeError):
    """A void POST reached the wire but no usable answer came back: whether the credit is voided
    is unknown.

    reconkit never resends it. :meth:`reconkit.Client.resolve_unknown` reads the credit back:
    ``VOIDED`` means the void was done; any other status once the lookup delay has passed means
    it was not.

    Attributes
    ----------
    credit_id : str
        The credit the void named.
    """

    def __init__(self, message: str, *, credit_id: str, reference_code: str | None, path: str = "") -> None:
        self.credit_id = credit_id
        super().__init__(
            message, reference_code=reference_code, transaction_id=None, path=path,
            advice=f"Void outcome unknown: whether credit {credit_id} is voided is not known and the void was "
                   "not resent; look the credit up (Client.resolve_unknown, or Look it up in the app) before "
                   "voiding it again.")


class UnresolvedVoidError(ReconkitError):
    """A void of this credit was sent earlier and its outcome is still unknown; nothing was sent.

    Attributes
    ----------
    credit_id : str
    sent_at : str
        When the earlier void was sent (ISO 8601, UTC).
    """

    def __init__(self, credit_id: str, *, sent_at: str) -> None:
        self.credit_id = credit_id
        self.sent_at = sent_at
        super().__init__(
            f"the void of credit {credit_id} sent at {sent_at[:19]} UTC has an unknown outcome; look the credit "
            "up (Client.resolve_unknown, or Look it up in the app) before voiding it again, so nothing was sent.")


class DuplicateReferenceError(ReconkitError):
    """A reference code that the ledger already holds for an earlier credit (nothing was sent).

    Attributes
    ----------
    reference_code : str
    credit_id : str or None
        The earlier credit's id (None while its outcome is unknown or it was never created).
    outcome : str
        The earlier credit's ledger outcome (``created``, ``unknown_outcome``, ...).
    """

    def __init__(self, reference_code: str, *, credit_id: str | None, outcome: str,
                 amount: str | None = None, currency: str | None = None) -> None:
        self.reference_code = reference_code
        self.credit_id = credit_id
        self.outcome = outcome
        earlier = f"credit {credit_id}" if credit_id else "a credit with no id yet"
        what = f" of {amount} {currency}" if amount and currency else ""
        super().__init__(
            f"reference code {reference_code!r} was already used for {earlier}{what} (outcome {outcome}); "
            "a reference code names one credit, so nothing was sent.")


class NetworkError(ReconkitError):
    """The server could not be reached, or a GET kept failing at the transport level.

    For a POST this is raised only when the request provably never left (connection refused),
    so nothing was created.
    """

    def __init__(self, message: str, *, attempts: int = 1) -> None:
        self.attempts = attempts
        super().__init__(message)


class IncompleteReportError(ReconkitError):
    """A report from the Reporting API did not arrive whole: a body shorter or longer than its
    ``Content-Length``, a body with no framing to check it by, XML that is not well-formed, CSV
    that ends mid-record, pages that repeat or do not advance, or more pages than the budget.

    Nothing of it is returned, and nothing is saved as if it were complete.

    Attributes
    ----------
    report : str
        Which report: its name and date, or the purchase-and-refund window.
    problem : str
        What is wrong with it, in words.
    """

    def __init__(self, report: str, problem: str = "it did not arrive whole") -> None:
        self.report = report
        self.problem = problem
        super().__init__(f"{report} is incomplete: {problem}; nothing was returned or saved as complete.")


class SettlementFormatError(ReconkitError):
    """A settlement file could not be read.

    Attributes
    ----------
    file, line, column : where the problem is (line is 1-based; any may be None)
    expected : what the reader expected there
    failure_cases : pandas.DataFrame or None
        For row-level problems, one row per failing input row with ``source_file``,
        ``source_line``, ``column``, ``value`` and ``reason`` (pandera's failure-cases pattern).
    """

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 column: str | None = None, expected: str | None = None,
                 failure_cases: pd.DataFrame | None = None) -> None:
        self.file = file
        self.line = line
        self.column = column
        self.expected = expected
        self.failure_cases = failure_cases
        where = ", ".join(
            part for part in (
                f"file {file}" if file else "",
                f"line {line}" if line is not None else "",
                f"column {column!r}" if column else "",
            ) if part
        )
        text = f"{where}: {message}" if where else message
        if expected:
            text += f" (expected {expected})"
        super().__init__(text)


class SettlementEncodingError(SettlementFormatError):
    """A settlement file's bytes are not text in the encoding it was read with.

    The message advises the Python argument (``encoding='latin-1'``); a front end with its own
    way of saying it (the command line's ``--encoding``) words the advice with :meth:`advised`.

    Attributes
    ----------
    encoding : str
        The encoding tried.
    suggestion : str
        The encoding the advice proposes.
    """

    def __init__(self, message: str, *, file: str | None, line: int | None, encoding: str,
                 suggestion: str = "latin-1") -> None:
        self.problem = message
        self.encoding = encoding
        self.suggestion = suggestion
        super().__init__(f"{message}; {self._advice(f'pass encoding={suggestion!r}')}", file=file, line=line,
                         expected=f"{encoding} text")

    def _advice(self, how: str) -> str:
        return f"if the file is Latin-1 (Windows-1252), {how}"

    def advised(self, how: str | None) -> str:
        """The message with the advice worded as ``how`` (e.g. ``"pass --encoding latin-1"``), or with
        none when ``how`` is None (a front end that cannot choose an encoding)."""
        where = ", ".join(part for part in (f"file {self.file}" if self.file else "",
                                            f"line {self.line}" if self.line is not None else "") if part)
        advice = f"; {self._advice(how)}" if how else ""
        return f"{where}: {self.problem}{advice} (expected {self.encoding} text)"


class DatabaseKindError(ReconkitError):
    """A file given as a reconkit database (the ledger, a sandbox's database) is not one: not SQLite
    at all, the other kind of reconkit database, or some other application's SQLite file.

    Attributes
    ----------
    path : str
        The file at fault.
    expected : str
        The kind wanted, ``"ledger"`` or ``"sandbox"``.
    found : str
        What the file is, in words ("not an SQLite database", "a reconkit sandbox database", ...).
    """

    def __init__(self, path: str, expected: str, found: str) -> None:
        self.path = path
        self.expected = expected
        self.found = found
        wanted = "a reconkit ledger" if expected == "ledger" else "a reconkit sandbox database"
        super().__init__(f"{path}: is {found}, not {wanted}")


class CreditShapeError(ReconkitError, ValueError):
    """A document handed over as a credit response is not one (an error body, a list, ...)."""


class CreditsFileError(CreditShapeError):
    """A credits file (saved credit JSON, a saved credits frame, a transaction-search export) could
    not be read, or holds rows that are not credits.

    Attributes
    ----------
    file, line, column : where the (first) problem is (line is 1-based; any may be None)
    failure_cases : pandas.DataFrame or None
        Every failing row: ``source_file``, ``source_line``, ``column``, ``value``, ``reason``.
    """

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 column: str | None = None, failure_cases: pd.DataFrame | None = None) -> None:
        self.file = file
        self.line = line
        self.column = column
        self.failure_cases = failure_cases
        where = ", ".join(part for part in (f"credits file {file}" if file else "",
                                            f"line {line}" if line is not None else "",
                                            f"column {column}" if column else "") if part)
        super().__init__(f"{where}: {message}" if where else message)


class ReconciliationError(ReconkitError):
    """The reconciliation engine found its own invariants broken (a row lost or duplicated)."""


class MissingExtraError(ReconkitError, ImportError):
    """An optional part of reconkit is not installed in this environment.

    Parameters
    ----------
    extra : str
        The pyproject extra that provides it (``spark``).
    module : str
        The module that could not be imported (``pyspark``).
    make_target : str
        The ``make`` target that installs the extra into the project's ``.venv``.

    Notes
    -----
    In IPython and Jupyter the error shows as its one sentence, not a traceback: an analyst who
    opens the Spark notebook without PySpark needs the command, not reconkit's call stack.
    """

    def __init__(self, extra: str, module: str, make_target: str) -> None:
        super().__init__(f"{module} is not installed: run `make {make_target}` in the reconkit folder "
                         f"(or `pip install 'reconkit[{extra}]'`), then restart the kernel", name=module)
        self.extra = extra
        self.module = module
        self.make_target = make_target

    def _render_traceback_(self) -> list[str]:
        # IPython shows these lines instead of the traceback (the hook ipyparallel's errors use).
        return [f"{type(self).__name__}: {self}"]


class BreakBookError(ReconkitError, ValueError):
    """A break-workflow step is not allowed: an unknown break, a missing reason, a signer who
    is also the resolver, a closed break resolved again."""


class BreakConflictError(BreakBookError):
    """The break changed (someone else wrote to it) since the version the caller acted on."""


class IntakeError(BreakBookError):
    """A run was not recorded: it failed one or more intake checks
    (:meth:`reconkit.breaks.BreakBook.preview`) and no ``override`` reason was given.

    Attributes
    ----------
    checks : tuple of IntakeCheck
        The failed checks, each with its ``name`` and ``message``.
    """

    def __init__(self, checks: tuple[IntakeCheck, ...]) -> None:
        self.checks = tuple(checks)
        named = "; ".join(f"{c.name}: {c.message}" for c in self.checks)
        super().__init__(f"the run was not recorded because it fails {len(self.checks)} intake check(s) "
                         f"({named}); check the inputs, or record it with override=\"<why>\" to keep it anyway")


class BookIntegrityError(BreakBookError):
    """The break book fails :meth:`reconkit.breaks.BreakBook.verify`: an event does not chain
    to the one before it, a stored state is not the replay of the log, or a guard trigger is
    missing or altered. The book refuses to act until it is repaired; ``export_audit`` still
    works so what is there can be exported.

    Attributes
    ----------
    event_id : int or None
        The sequence number of the first event that disagrees.
    key : str or None
        The first break whose stored state disagrees with its events.
    """

    def __init__(self, problem: str, *, event_id: int | None = None, key: str | None = None) -> None:
        self.event_id = event_id
        self.key = key
        super().__init__(f"the break book fails verification: {problem}; it will not act until this is looked "
                         "into: export what is there with BreakBook.export_audit(path) and tell whoever keeps "
                         "the ledger")


class IdentityError(BreakBookError):
    """A name given as who acts (``by=``) or as an owner is empty once normalised (only
    invisible characters) or mixes scripts (a Cyrillic ``а`` among Latin letters)."""


@dataclass(frozen=True)
class _ErrorBody:
    status: str | None
    reason: str | None
    message: str | None
    details: list[dict[str, Any]]


def _parse_error_body(body: Any) -> _ErrorBody:
    """Read every documented CyberSource error shape into one tuple of fields."""
    if not isinstance(body, dict):
        return _ErrorBody(None, None, None, [])
    status = body.get("status")
    reason = body.get("reason")
    message = body.get("message")
    details = body.get("details") or []
    info = body.get("errorInformation")
    if isinstance(info, dict):
        reason = reason or info.get("reason")
        message = message or info.get("message")
        details = details or info.get("details") or []
    response = body.get("response")
    if isinstance(response, dict) and "rmsg" in response:
        message = message or response.get("rmsg")
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        reason = reason or errors[0].get("type")
        message = message or errors[0].get("message")
    if not isinstance(details, list):
        details = []
    return _ErrorBody(
        None if status is None else str(status),
        None if reason is None else str(reason).strip(),
        None if message is None else str(message),
        [d for d in details if isinstance(d, dict)],
    )


class ApiError(ReconkitError):
    """CyberSource (or the sandbox) answered with an error.

    Attributes
    ----------
    http_status : int
    status, reason, message : str or None
        CyberSource's own fields, from whichever error shape the body had.
    details : list of dict
        ``[{"field": ..., "reason": ...}]`` for validation errors.
    correlation_id : str or None
        The ``v-c-correlation-id`` response header: quote it to CyberSource support.
    body : Any
        The parsed body, or the raw text when it was not JSON.
    """

    def __init__(self, http_status: int, body: Any = None, *, correlation_id: str | None = None,
                 method: str = "", path: str = "", retry_after: float | None = None) -> None:
        parsed = _parse_error_body(body)
        self.http_status = http_status
        self.status = parsed.status
        self.reason = parsed.reason
        self.message = parsed.message
        self.details = parsed.details
        self.correlation_id = correlation_id
        self.body = body
        self.method = method
        self.path = path
        self.retry_after = retry_after
        super().__init__(self._sentence())

    def _sentence(self) -> str:
        what = f"{self.method} {self.path} " if self.method else ""
        text = f"{what}failed with HTTP {self.http_status}"
        if self.reason:
            text += f" {self.reason}"
        if self.message:
            text += f": {self.message.rstrip('.')}"
        if self.details:
            fields = "; ".join(f"{d.get('field')} {d.get('reason')}" for d in self.details)
            text += f" ({fields})"
        if self.correlation_id:
            text += f" [correlation id {self.correlation_id}]"
        return text + "."


class InvalidRequestError(ApiError):
    """HTTP 400: the request was refused (missing field, invalid data, duplicate, ...)."""


class AuthenticationError(ApiError):
    """HTTP 401: the signature, key or merchant id was not accepted."""


class NotFoundError(ApiError):
    """HTTP 404 (or 405 on an unsupported self link): no such resource (yet)."""


class NotIndexedYetError(NotFoundError):
    """A credit the ledger says this client created cannot be read back yet.

    CyberSource documents no GET for a credit; the fallback, Transaction Details, is "not intended
    for real-time" and may lag creation by minutes. So a 404 for an id the ledger holds means
    "not indexed yet", not "no such credit": read it again later.

    Attributes
    ----------
    credit_id : str
    outcome : str
        The ledger's outcome of the create call (``created``, ``declined``, ``unknown_outcome``).
    created : Credit or None
        The create response's own state as the ledger kept it (``source="create"``), when the
        create call answered with a credit.
    created_at : str or None
        When the credit was sent (the ledger's ``intent_at``, ISO 8601).
    """

    def __init__(self, http_status: int, body: Any = None, *, credit_id: str, outcome: str,
                 created: Any = None, created_at: str | None = None, **kw: Any) -> None:
        self.credit_id = credit_id
        self.outcome = outcome
        self.created = created
        self.created_at = created_at
        super().__init__(http_status, body, **kw)

    def _sentence(self) -> str:
        status = getattr(self.created, "status", None)
        state = f"{self.outcome}, status {status}" if status else self.outcome
        when = f" at {self.created_at}" if self.created_at else ""
        return (f"credit {self.credit_id} is not indexed yet: the ledger has it sent{when} ({state}), but "
                f"{super()._sentence()[:-1]}; Transaction Details lags creation, so read it again later.")


class ReportNotReadyError(NotFoundError):
    """The report exists but is not generated yet (``status`` e.g. ``PENDING``, ``RUNNING``)."""


class NoReportDataError(NotFoundError):
    """CyberSource has nothing for that report date or time window."""


class ReportFailedError(NotFoundError):
    """CyberSource could not generate the report (status ``ERROR``): unlike a report that is not
    ready yet, waiting will not bring it."""


class RedirectError(ApiError):
    """A 3xx answer to a read. reconkit follows no redirect: nothing more was sent.

    Attributes
    ----------
    location : str
        The ``Location`` the server named (empty when it named none).
    """

    def __init__(self, http_status: int, location: str, **kw: Any) -> None:
        self.location = location
        target = f"to {location!r}" if location else "without a Location"
        super().__init__(http_status, {"reason": "REDIRECT", "message": (
            f"the server redirected {target}; reconkit follows no redirect, so nothing more was sent")}, **kw)


class RateLimitError(ApiError):
    """HTTP 429: too many requests; ``retry_after`` holds the server's advice in seconds."""


class ServerError(ApiError):
    """HTTP 5xx from CyberSource or a gateway in front of it."""


class DeclinedError(ApiError):
    """A 201 whose ``status`` is ``DECLINED``: the credit resource exists but moves no money.

    ``credit`` holds the :class:`reconkit.Credit` that was created, so it is never lost.
    """

    def __init__(self, http_status: int, body: Any = None, *, credit: Any = None, **kw: Any) -> None:
        self.credit = credit
        super().__init__(http_status, body, **kw)


def error_for_status(http_status: int, body: Any, **kw: Any) -> ApiError:
    """Build the most specific :class:`ApiError` subclass for an HTTP status."""
    cls: type[ApiError]
    if http_status == 400:
        cls = InvalidRequestError
    elif http_status == 401:
        cls = AuthenticationError
    elif http_status in (404, 405):
        cls = NotFoundError
    elif http_status == 429:
        cls = RateLimitError
    elif http_status >= 500:
        cls = ServerError
    else:
        cls = ApiError
    return cls(http_status, body, **kw)


class FieldError(ReconkitError, ValueError):
    """A value cannot be used: ``field`` names it (``ids``, ``files``, ``tolerance``, ``as_of``,
    ``grace_days``, ...), the message says why in words."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field

    def __eq__(self, other: object) -> bool:  # the same refusal of the same field (a copy from a pickle too)
        return type(other) is type(self) and (self.field, str(self)) == (other.field, str(other))

    def __hash__(self) -> int:
        return hash((type(self), self.field, str(self)))


class NotReadError(FieldError):
    """Reconcile was asked for inputs chosen since the last fetch or load, which were never read.

    ``fields`` holds one :class:`FieldError` per input at fault (``ids``, ``files``); ``steps``
    names the clicks that read them ("Fetch and Load settlement")."""

    def __init__(self, fields: Sequence[FieldError]) -> None:
        what = " and ".join("fetch the credit ids" if f.field == "ids" else "load the settlement files"
                            for f in fields)
        super().__init__(fields[0].field if fields else "inputs",
                         f"not reconciled: the inputs chosen were not read yet ({what} first)")
        self.fields = list(fields)

    @property
    def steps(self) -> str:
        return " and ".join("Fetch" if f.field == "ids" else "Load settlement" for f in self.fields)
