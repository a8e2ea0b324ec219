"""``Client``: issue, read back and void CyberSource standalone credits.

One pooled session that follows no redirect (:class:`reconkit.transport.NoRedirectSession`);
every body is serialized once and the same bytes are signed and sent. Reads (GETs and the
reference search) go through :func:`reconkit.transport.read`, retried on 429/502/503/504 and
transport errors with bounded exponential backoff and jitter; a credit POST is never resent, and
a 3xx, or a 5xx that is not CyberSource's own definite refusal, leaves its outcome unknown until
:meth:`Client.resolve_unknown` settles it. A link from a response is followed only when it is a
path on the configured host naming the credit asked about, and money moves on a production host
only with ``allow_production=True``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time  # noqa: F401  -- reads sleep with time.sleep (in .transport); callers patch it here
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests
from requests.adapters import HTTPAdapter

from . import ledger as _ledger
from .auth import CyberSourceAuth
from .cards import luhn_ok
from .config import Config
from .credit import Credit, Void, dig, is_credit_id
from .errors import (
    AmbiguousOutcomeError,
    AmbiguousVoidError,
    CreditShapeError,
    DeclinedError,
    FieldError,
    InvalidRequestError,
    NetworkError,
    NotFoundError,
    NotIndexedYetError,
    ProductionGuardError,
    error_for_status,
)
from .hosts import production_host, same_origin_url
from .money import CURRENCIES, format_amount, parse_amount
from .transport import Backoff, NoRedirectSession, json_object, read, redirect_location

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .fetch import FetchResult
    from .ledger import Ledger

__all__ = ["Client", "Resolution", "instrument_of", "own_link", "same_origin_path"]

log = logging.getLogger("reconkit")

_USER_AGENT = "reconkit/0.1 (+python-requests)"
SEARCH_DAYS = 30
"""How many days back a reference-code search looks by default (submitTimeUtc date math)."""
_CARD_TYPES = {"visa": "001", "mastercard": "002", "amex": "003", "discover": "004", "diners": "005",
               "jcb": "007", "maestro": "042", "cup": "062"}


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = value
    return base


def _not_sent(exc: requests.RequestException) -> bool:
    """True when the request provably never reached the server."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        text = repr(reason) if reason is not None else repr(exc)
        return "NewConnectionError" in text or "Failed to resolve" in text
    return False


_CREDITS = "/pts/v2/credits"
_SELF_LINKS = (f"{_CREDITS}/{{id}}", "/tss/v2/transactions/{id}")
"""What a credit's self link may be: the credit itself, or its Transaction Details."""
_VOID_LINKS = (f"{_CREDITS}/{{id}}/voids",)
_PLAIN_AMOUNT = re.compile(r"[0-9]+(?:\.[0-9]+)?|\.[0-9]+")
"""What an amount typed as text may look like: Decimal also reads 1e3, 1_000, +5 and other digits."""
_LINK = re.compile(r"/(?:pts|tss)(?:/[A-Za-z0-9_-]+)+")
_DEFINITE_502_REASONS = frozenset({"SYSTEM_ERROR", "INVALID_OR_MISSING_CONFIG"})


def same_origin_path(href: object, name: str) -> str:
    """``href`` when it is an absolute path under ``/pts/`` or ``/tss/`` on this host.

    Links come from responses; ``base_url + href`` must never reach another host (``@host/...``,
    ``//host``, ``https://...``), climb out (``..``) or smuggle a query or header.

    Raises
    ------
    CreditShapeError
        Naming the link; nothing is sent.
    """
    if not isinstance(href, str) or not _LINK.fullmatch(href):
        raise CreditShapeError(f"the {name} link {href!r} is not a path on this host (/pts/... or /tss/...); "
                               "it was not followed and nothing was sent")
    return href


def own_link(href: object, name: str, credit_id: object, allowed: Iterable[str]) -> str:
    """``href`` when it is a path on this host naming the credit it came with, and nothing else.

    A response's link is followed only to act on the credit asked about: a void link of credit A
    that names ``/pts/v2/credits/B/voids`` would void B while the ledger says A was voided.

    Parameters
    ----------
    href : object
        The link from the response.
    name : str
        Which link (``"self"``, ``"void"``), for the message.
    credit_id : object
        The id of the credit the link came with.
    allowed : iterable of str
        Templates with ``{id}``: the paths the link may be.

    Raises
    ------
    CreditShapeError
        Naming the link and the credit; nothing is sent.
    """
    path = same_origin_path(href, name)
    text = str(credit_id).strip() if credit_id is not None else ""
    if not is_credit_id(text):
        raise CreditShapeError(f"the credit's id {credit_id!r} is not a credit id (1-26 digits), so its {name} link "
                               f"{path!r} was not followed and nothing was sent")
    if path not in {template.format(id=text) for template in allowed}:
        raise CreditShapeError(f"the {name} link {path!r} of credit {text} names another resource than that "
                               "credit; it was not followed and nothing was sent")
    return path


def _credit_id(value: object) -> str:
    credit_id = str(value).strip()
    if not is_credit_id(credit_id):
        raise ValueError(f"{value!r} is not a credit id (1-26 digits)")
    return credit_id


def _definite_refusal(status: int, body: Any) -> bool:
    """True for CyberSource's own definite 5xx refusal of a credit (nothing was created).

    Only a 502 with CyberSource's JSON error body, a non-timeout reason and no request id is
    definite; an HTML page from a proxy or load balancer, a bare 500, a 503 or a timeout may
    stand in front of a credit that was created.
    """
    return (status == 502 and isinstance(body, dict) and body.get("status") == "SERVER_ERROR"
            and body.get("reason") in _DEFINITE_502_REASONS and not body.get("id"))


def instrument_of(body: Mapping[str, Any]) -> str:
    """The payment instrument of a credit request as one string (``card:4111...``, ``customer:...``)."""
    payment = body.get("paymentInformation") or {}
    for kind in ("instrumentIdentifier", "paymentInstrument", "customer"):
        token = dig(payment, kind, "id")
        if token:
            return f"{kind}:{token}"
    return f"card:{dig(payment, 'card', 'number') or ''}"


@dataclass(frozen=True)
class Resolution:
    """What a lookup of an unknown outcome found.

    Attributes
    ----------
    reference_code : str
        The credit's reference code, or the void's.
    outcome : str
        The ledger outcome now. Of a credit: ``created``, ``declined``, ``not_created`` or still
        ``unknown_outcome``; of a void: ``voided``, ``not_voided`` or still ``unknown_outcome``.
    credit : Credit or None
        The credit found (the newest when several share the reference code); for a void, the
        credit read back.
    matches : int
        How many credits carry the reference code (for a void: 1, or 0 when its credit cannot be
        read back).
    action : str
        ``"credit"`` (the outcome of a credit POST) or ``"void"`` (of a void of ``credit_id``).
    credit_id : str or None
        The id of the credit found, or of the credit a void named (also when it cannot be read
        back).
    """

    reference_code: str
    outcome: str
    credit: Credit | None
    matches: int
    action: str = "credit"
    credit_id: str | None = None


class Client:
    """A CyberSource client for standalone credits.

    Parameters
    ----------
    config : Config, optional
        Defaults to :meth:`Config.from_env`.
    allow_production : bool
        Must be True for :meth:`create_credit` / :meth:`void_credit` to reach production.
    timeout : (float, float)
        Connect and read timeouts in seconds.
    ledger : Ledger, path or None
        Where credit intents and outcomes are written; ``None`` uses the default ledger file
        (opened on first use).
    max_retries : int
        Retries of a GET after the first attempt.
    retry_deadline : float
        Total seconds a GET may spend retrying.
    pool_size : int
        Connections kept per host; at least the number of fetch workers.
    clock : callable, optional
        Returns the current aware UTC time; intents are stamped with it and the lookup delay is
        measured on it (a sandbox client passes the sandbox clock). Defaults to the wall clock.
    tss_delay : timedelta
        How long after sending a credit a search that finds nothing proves it was not created:
        Transaction Details is fed asynchronously and CyberSource advises retrying a 404 five
        minutes later, several times. Deciding sooner invites a second credit. After a void
        with an unknown outcome, how long a credit read back as not ``VOIDED`` must wait
        before the void is taken for not done.
    """

    def __init__(self, config: Config | None = None, *, allow_production: bool = False,
                 timeout: tuple[float, float] = (5.0, 30.0), ledger: Ledger | str | None = None,
                 max_retries: int = 4, retry_deadline: float = 30.0, pool_size: int = 32,
                 backoff_base: float = 0.2, backoff_cap: float = 5.0, seed: int | None = None,
                 clock: Callable[[], datetime] | None = None, tss_delay: timedelta = timedelta(minutes=15)) -> None:
        self.config = config if config is not None else Config.from_env()
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self.tss_delay = tss_delay
        self.allow_production = allow_production
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry_deadline = retry_deadline
        self.backoff = Backoff(backoff_base, backoff_cap, seed)
        """How long a read waits before its next attempt (full jitter); :func:`reconkit.transport.read` calls it."""
        self._ledger_arg = ledger
        self._ledger: Ledger | None = None
        self._ledger_lock = threading.Lock()
        # Follows no redirect, whatever a call asks; every call says allow_redirects=False too.
        self.session: requests.Session = NoRedirectSession()
        self.pool_size = 0
        """Connections kept per host (:meth:`widen_pool` raises it for a fetch with more workers)."""
        self.widen_pool(max(pool_size, 1))
        self.session.auth = CyberSourceAuth(self.config)
        self.session.headers.update({
            "User-Agent": _USER_AGENT,
            "Accept": "application/hal+json;charset=utf-8",
            "Content-Type": "application/json;charset=utf-8",
        })

    def __repr__(self) -> str:
        return f"Client(environment={self.config.environment_name}, base_url={self.config.base_url!r}, " \
               f"merchant_id={self.config.merchant_id!r}, auth={self.config.auth_scheme!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def widen_pool(self, size: int) -> None:
        """Keep at least ``size`` connections per host, so that ``size`` threads never wait for one."""
        if size > self.pool_size:
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=size, max_retries=0)
            self.session.mount("http://", adapter)
            self.session.mount("https://", adapter)
            self.pool_size = size

    def close(self) -> None:
        """Close the pooled connections."""
        self.session.close()

    @property
    def ledger(self) -> Ledger:
        """The ledger this client writes to (opened on first use)."""
        with self._ledger_lock:
            if self._ledger is None:
                arg = self._ledger_arg
                self._ledger = arg if isinstance(arg, _ledger.Ledger) else _ledger.Ledger(arg)
            return self._ledger

    # --- transport ---------------------------------------------------------------------
    @property
    def backoff_base(self) -> float:
        """The first retry's longest wait in seconds (doubling each retry up to :attr:`backoff_cap`)."""
        return self.backoff.base

    @property
    def backoff_cap(self) -> float:
        """The longest wait between two attempts of a read, in seconds."""
        return self.backoff.cap

    def _url(self, path: str) -> str:
        """The URL of ``path`` on this client's host; refused (nothing sent) if it would reach another."""
        return same_origin_url(self.config.base_url, path)

    def _encode(self, body: Mapping[str, Any] | None) -> bytes | None:
        if body is None:
            return None
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def _parse(self, response: requests.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            return None

    def _get(self, path: str) -> tuple[dict[str, Any], requests.Response]:
        """GET with bounded retries; returns the parsed JSON body and the response."""
        return self._read("GET", path)

    def _read(self, method: str, path: str, body: Mapping[str, Any] | None = None
              ) -> tuple[dict[str, Any], requests.Response]:
        """A read (a GET, or a search POST that creates nothing) through :func:`reconkit.transport.read`;
        a 2xx whose body is not a JSON object is retried like a 502. Returns the parsed body and the
        response."""
        response, parsed = read(self, method, path, data=self._encode(body), check=json_object(method, path))
        assert parsed is not None
        return parsed, response

    def _post(self, path: str, body: Mapping[str, Any], *, reference_code: str | None,
              transaction_id: str | None) -> tuple[int, Any, requests.Response]:
        """POST exactly once. Raises AmbiguousOutcomeError when it may have been processed."""
        data = self._encode(body)
        url = self._url(path)
        try:
            response = self.session.post(url, data=data, timeout=self.timeout, allow_redirects=False)
        except requests.RequestException as exc:
            log.info("POST %s -> %s", path, type(exc).__name__)
            if _not_sent(exc):
                raise NetworkError(f"POST {path} could not connect to {self.config.base_url}; nothing was sent") \
                    from None
            raise AmbiguousOutcomeError(
                f"POST {path} got no answer ({type(exc).__name__}).", reference_code=reference_code,
                transaction_id=transaction_id, path=path) from None
        log.info("POST %s -> %s", path, response.status_code)
        location = redirect_location(response)
        if location is not None:
            # The POST arrived and was answered; what came of it is not known, and the redirect is
            # not followed (it would re-send the signed body, or turn it into a GET, elsewhere).
            target = f"to {location!r}" if location else "without a Location"
            raise AmbiguousOutcomeError(
                f"POST {path} answered HTTP {response.status_code} redirecting {target}, which was not followed.",
                reference_code=reference_code, transaction_id=transaction_id, path=path)
        mle_error = getattr(response, "mle_error", None)
        if mle_error:
            # Processed or not, the answer cannot be read: the outcome is unknown, never retried.
            raise AmbiguousOutcomeError(f"POST {path} answered HTTP {response.status_code}, but {mle_error}.",
                                        reference_code=reference_code, transaction_id=transaction_id, path=path)
        parsed = self._parse(response)
        if 200 <= response.status_code < 300 and not isinstance(parsed, dict):
            raise AmbiguousOutcomeError(
                f"POST {path} answered HTTP {response.status_code} with an unreadable body.",
                reference_code=reference_code, transaction_id=transaction_id, path=path)
        return response.status_code, parsed, response

    # --- credits ----------------------------------------------------------------------
    def _guard(self, action: str, path: str) -> None:
        """Refuse a money-moving POST to a production host (decided on the URL the HTTP stack
        will connect to) unless the client was built with ``allow_production=True``."""
        host = production_host(self._url(path))
        if host is not None and not self.allow_production:
            raise ProductionGuardError(
                f"{action} would move real money on production ({host}); create the Client with "
                "allow_production=True to do that on purpose"
            )

    def build_credit_request(self, amount: str | Decimal | int, currency: str, *,
                             instrument_identifier: str | None = None, card: Mapping[str, Any] | None = None,
                             payment_instrument: str | None = None, customer: str | None = None,
                             reference_code: str | None = None, transaction_id: str | None = None,
                             commerce_indicator: str = "internet", **extra: Any) -> dict[str, Any]:
        """Validate the inputs of :meth:`create_credit` and return the request body it would send.

        Raises
        ------
        InvalidRequestError
            With ``details`` naming each field at fault; nothing is sent.
        """
        problems: list[dict[str, str]] = []

        def bad(field: str, reason: str) -> None:
            problems.append({"field": field, "reason": reason})

        code = str(currency or "").strip().upper()
        if code not in CURRENCIES:
            bad("orderInformation.amountDetails.currency", f"{currency!r} is not an ISO 4217 currency code")
        total = None
        try:
            if isinstance(amount, str) and not _PLAIN_AMOUNT.fullmatch(amount.strip()):
                raise ValueError(f"amount {amount!r} is not a plain decimal amount such as 12.50 "
                                 "(no exponent, sign, separators or spaces)")
            total = parse_amount(amount, code if code in CURRENCIES else None)
            if total <= 0:
                bad("orderInformation.amountDetails.totalAmount", "must be greater than zero")
        except ValueError as exc:
            bad("orderInformation.amountDetails.totalAmount", str(exc))
        payment: dict[str, Any] = {}
        card = dict(card or {})
        number = str(card.get("number", "") or "").replace(" ", "")
        sources = [name for name, present in (("instrument_identifier", instrument_identifier),
                                              ("card", number), ("payment_instrument", payment_instrument),
                                              ("customer", customer)) if present]
        if len(sources) != 1:
            bad("paymentInformation", "exactly one payment source is required (instrument identifier, card number, "
                f"payment instrument or customer); got {', '.join(sources) or 'none'}")
        if instrument_identifier:
            payment["instrumentIdentifier"] = {"id": str(instrument_identifier).strip()}
        if payment_instrument:
            payment["paymentInstrument"] = {"id": str(payment_instrument).strip()}
        if customer:
            payment["customer"] = {"id": str(customer).strip()}
        if card:
            card_body: dict[str, str] = {}
            if number:
                if not number.isdigit() or not 12 <= len(number) <= 19 or not luhn_ok(number):
                    bad("paymentInformation.card.number", "is not a valid card number (12-19 digits, Luhn)")
                card_body["number"] = number
            month = str(card.get("expiration_month", card.get("expirationMonth", "")) or "").strip()
            year = str(card.get("expiration_year", card.get("expirationYear", "")) or "").strip()
            if number or month or year:
                if not (month.isdigit() and 1 <= int(month) <= 12):
                    bad("paymentInformation.card.expirationMonth", "must be a month 01-12")
                else:
                    month = f"{int(month):02d}"
                if not (year.isdigit() and len(year) == 4):
                    bad("paymentInformation.card.expirationYear", "must be a four-digit year")
                card_body["expirationMonth"] = month
                card_body["expirationYear"] = year
            card_type = str(card.get("type", "") or "").strip()
            if card_type:
                card_type = _CARD_TYPES.get(card_type.lower(), card_type)
                if not (card_type.isdigit() and len(card_type) == 3):
                    bad("paymentInformation.card.type", "must be a three-digit card type such as 001 (Visa)")
                card_body["type"] = card_type
            payment["card"] = card_body
        reference_code = reference_code or f"rk-{uuid.uuid4().hex[:24]}"
        transaction_id = transaction_id or uuid.uuid4().hex[:30]
        if len(reference_code) > 59:
            bad("clientReferenceInformation.code", "is longer than 59 characters")
        if len(transaction_id) > 30:
            bad("clientReferenceInformation.transactionId", "is longer than 30 characters")
        if problems:
            raise InvalidRequestError(400, {"status": "INVALID_REQUEST", "reason": "INVALID_DATA",
                                            "message": "The request was not sent: it is invalid",
                                            "details": problems}, method="POST", path="/pts/v2/credits")
        assert total is not None
        body: dict[str, Any] = {
            "clientReferenceInformation": {"code": reference_code, "transactionId": transaction_id},
            "processingInformation": {"commerceIndicator": commerce_indicator},
            "paymentInformation": payment,
            "orderInformation": {"amountDetails": {"totalAmount": format_amount(total, code), "currency": code}},
        }
        return _deep_merge(body, extra)

    def create_credit(self, amount: str | Decimal | int, currency: str, *, instrument_identifier: str | None = None,
                      card: Mapping[str, Any] | None = None, payment_instrument: str | None = None,
                      customer: str | None = None, reference_code: str | None = None,
                      transaction_id: str | None = None, commerce_indicator: str = "internet",
                      **extra: Any) -> Credit:
        """Issue a standalone credit (``POST /pts/v2/credits``), exactly once.

        Parameters
        ----------
        amount : str, int or Decimal
            Positive, with at most the currency's minor units. Floats are refused.
        currency : str
            ISO 4217 code.
        instrument_identifier, card, payment_instrument, customer
            Exactly one payment source. ``card`` is a dict with ``number``, ``expiration_month``,
            ``expiration_year`` and ``type``; with a token it may carry only expiry and type.
        reference_code, transaction_id : str, optional
            Generated and unique when not given; they are how an ambiguous outcome is looked up.
        commerce_indicator : str
        **extra
            Further request fields in CyberSource's JSON names, merged into the body.

        Returns
        -------
        Credit

        Raises
        ------
        InvalidRequestError
            Invalid input (nothing sent) or a 400 from the server.
        DeclinedError
            The server created the credit with ``status: DECLINED``; ``error.credit`` holds it.
        AmbiguousOutcomeError
            Sent, but no usable answer came back; it is not resent.
        ProductionGuardError
            Production without ``allow_production=True``.
        """
        self._guard("create_credit", _CREDITS)
        body = self.build_credit_request(
            amount, currency, instrument_identifier=instrument_identifier, card=card,
            payment_instrument=payment_instrument, customer=customer, reference_code=reference_code,
            transaction_id=transaction_id, commerce_indicator=commerce_indicator, **extra)
        ref = body["clientReferenceInformation"]["code"]
        txn = body["clientReferenceInformation"]["transactionId"]
        details = body["orderInformation"]["amountDetails"]
        ledger = self.ledger
        ledger.record_intent(reference_code=ref, transaction_id=txn, amount=details["totalAmount"],
                             currency=details["currency"], environment=self.config.ledger_environment,
                             merchant_id=self.config.merchant_id, instrument=instrument_of(body), at=self.clock())
        try:
            status, parsed, response = self._post(_CREDITS, body, reference_code=ref, transaction_id=txn)
        except AmbiguousOutcomeError as exc:
            ledger.record_outcome(ref, _ledger.UNKNOWN, error=str(exc))
            raise
        except NetworkError as exc:
            ledger.record_outcome(ref, _ledger.NOT_SENT, error=str(exc))
            raise
        correlation = response.headers.get("v-c-correlation-id")
        if not 200 <= status < 300:
            error = error_for_status(status, parsed if parsed is not None else response.text[:500],
                                     correlation_id=correlation, method="POST", path=_CREDITS)
            if status >= 500 and not _definite_refusal(status, parsed):
                ledger.record_outcome(ref, _ledger.UNKNOWN, credit_id=(parsed or {}).get("id")
                                      if isinstance(parsed, dict) else None, error=str(error))
                raise AmbiguousOutcomeError(
                    f"POST {_CREDITS} answered HTTP {status} without CyberSource's definite refusal"
                    f"{f' ({error.reason})' if error.reason else ''}.", reference_code=ref,
                    transaction_id=txn, path=_CREDITS) from error
            ledger.record_outcome(ref, _ledger.REJECTED, error=str(error), raw=parsed if isinstance(parsed, dict)
                                  else None)
            raise error
        credit = Credit(parsed, source="create", http_status=status, correlation_id=correlation)
        if (credit.status or "").upper() == "DECLINED" or credit.error_reason:
            ledger.record_outcome(ref, _ledger.DECLINED, credit_id=credit.id, status=credit.status,
                                  reconciliation_id=credit.reconciliation_id, raw=parsed,
                                  error=f"{credit.error_reason}: {credit.error_message}")
            raise DeclinedError(status, parsed, credit=credit, correlation_id=correlation, method="POST",
                                path=_CREDITS)
        ledger.record_outcome(ref, _ledger.CREATED, credit_id=credit.id, status=credit.status,
                              reconciliation_id=credit.reconciliation_id, raw=parsed)
        return credit

    def get_credit(self, credit_or_id: Credit | str) -> Credit:
        """Read a credit back: its ``_links.self`` first, Transaction Details when that is 404/405.

        The returned credit's ``source`` says which answered (``"self_link"`` or ``"tss"``).

        Raises
        ------
        NotIndexedYetError
            Neither answers it yet, but the ledger holds the credit as created by this client (in
            this environment and merchant): Transaction Details has not indexed it yet. The error
            carries the create response's state (``created``) and outcome. A subclass of
            :class:`NotFoundError`.
        NotFoundError
            Neither the self link nor Transaction Details knows the id, and neither does the ledger.
        CreditShapeError
            The credit's self link is not a path on this host naming that credit (nothing is sent),
            or the answer is another credit than the one asked for.
        """
        if isinstance(credit_or_id, Credit):
            href = own_link(credit_or_id.self_href, "self", credit_or_id.id, _SELF_LINKS)
            credit_id = str(credit_or_id.id).strip()
        else:
            credit_id = _credit_id(credit_or_id)
            href = f"{_CREDITS}/{credit_id}"
        tss = own_link(f"/tss/v2/transactions/{credit_id}", "Transaction Details", credit_id, _SELF_LINKS)
        try:
            body, response = self._get(href)
            source = "self_link"
        except NotFoundError:
            try:
                body, response = self._get(tss)
            except NotFoundError as missing:
                raise self._not_indexed_yet(credit_id, missing) from None
            source = "tss"
        answered = body.get("id")
        if answered is not None and str(answered).strip() != credit_id:
            raise CreditShapeError(f"GET {href if source == 'self_link' else tss} answered with credit {answered!r} "
                                   f"when credit {credit_id} was asked for; it was not taken for it")
        return Credit(body, source=source, http_status=response.status_code,
                      correlation_id=response.headers.get("v-c-correlation-id"))

    def _not_indexed_yet(self, credit_id: str, missing: NotFoundError) -> NotFoundError:
        """``missing`` as a :class:`NotIndexedYetError` when the ledger holds ``credit_id`` as created
        by this client; ``missing`` itself otherwise."""
        ledger = self._ledger_if_any()
        row = None if ledger is None else ledger.credit_by_id(
            credit_id, environment=self.config.ledger_environment, merchant_id=self.config.merchant_id)
        if row is None:
            return missing
        created = None
        if row["outcome"] in (_ledger.CREATED, _ledger.DECLINED) and row.get("raw_json"):
            created = Credit(json.loads(row["raw_json"]), source="create", http_status=201)
        return NotIndexedYetError(missing.http_status, missing.body, credit_id=credit_id, outcome=row["outcome"],
                                  created=created, created_at=row["intent_at"], correlation_id=missing.correlation_id,
                                  method=missing.method, path=missing.path)

    def _ledger_if_any(self) -> Ledger | None:
        """The ledger when one is open, was given, or exists at the default path: a read must not
        create a ledger file just to find nothing in it."""
        with self._ledger_lock:
            if self._ledger is not None or self._ledger_arg is not None:
                pass
            elif not Path(os.environ.get("RECONKIT_LEDGER") or _ledger.DEFAULT_LEDGER_PATH).exists():
                return None
        return self.ledger

    def void_credit(self, credit_or_id: Credit | str, *, reference_code: str | None = None) -> Void:
        """Void a credit before it is batched (``POST`` to its void link), exactly once.

        It is written to the ledger's voids as unknown before it is sent and again when what came of
        it is known, so a process that dies on the wire leaves it unknown. A void sent without a
        usable answer (a timeout, a proxy's page, a 5xx that is not CyberSource's definite refusal)
        is never resent: it is an unknown outcome that :meth:`resolve_unknown` settles by reading
        the credit back, and until then the credit cannot be voided again.

        Raises
        ------
        InvalidRequestError
            For example ``NOT_VOIDABLE`` once the credit was batched.
        AmbiguousVoidError
            Sent, but no usable answer came back.
        UnresolvedVoidError
            An earlier void of this credit still has an unknown outcome (nothing is sent).
        CreditShapeError
            The credit's void link is not a path on this host naming that credit (nothing is sent).
        ProductionGuardError
            Production without ``allow_production=True``.
        """
        if isinstance(credit_or_id, Credit):
            credit_id, href = credit_or_id.id, credit_or_id.void_href
            reference_code = reference_code or credit_or_id.reference_code
        else:
            credit_id = _credit_id(credit_or_id)
            href = f"{_CREDITS}/{credit_id}/voids"
        href = own_link(href, "void", credit_id, _VOID_LINKS)
        credit_id = str(credit_id).strip()
        self._guard("void_credit", href)
        scope = {"environment": self.config.ledger_environment, "merchant_id": self.config.merchant_id}
        ledger = self.ledger
        reference_code = reference_code or f"void-{credit_id}"
        body = {"clientReferenceInformation": {"code": reference_code}}
        ledger.begin_void(credit_id, reference_code=reference_code, sent_at=self.clock(), **scope)
        # Whatever comes of the POST, a cached copy of this credit may now be stale.
        ledger.cache_forget(credit_id, **scope)

        def unknown(message: str) -> AmbiguousVoidError:
            error = AmbiguousVoidError(message, credit_id=credit_id, reference_code=reference_code, path=href)
            ledger.record_void(credit_id, _ledger.UNKNOWN, error=str(error), **scope)
            return error

        try:
            status, parsed, response = self._post(href, body, reference_code=reference_code, transaction_id=None)
        except AmbiguousOutcomeError as exc:
            raise unknown(exc.what) from None
        except NetworkError as exc:
            ledger.record_void(credit_id, _ledger.NOT_SENT, error=str(exc), **scope)
            raise
        correlation = response.headers.get("v-c-correlation-id")
        if not 200 <= status < 300:
            error = error_for_status(status, parsed if parsed is not None else response.text[:500],
                                     correlation_id=correlation, method="POST", path=href)
            if status >= 500 and not _definite_refusal(status, parsed):
                raise unknown(f"POST {href} answered HTTP {status} without CyberSource's definite refusal"
                              f"{f' ({error.reason})' if error.reason else ''}.") from error
            ledger.record_void(credit_id, _ledger.REJECTED, error=str(error), **scope)
            raise error
        void = Void(parsed, credit_id=credit_id, correlation_id=correlation)
        ledger.record_void(credit_id, _ledger.VOIDED if (void.status or "").upper() == "VOIDED" else _ledger.REJECTED,
                           status=void.status, **scope)
        if void.status:
            ledger.update_status(credit_id, void.status)
        return void

    def find_credits_by_reference(self, reference_code: str, *, days: int = SEARCH_DAYS) -> list[Credit]:
        """Look credits up by ``clientReferenceInformation.code`` (``POST /tss/v2/searches``).

        A search creates nothing, so it is retried like a GET (429, 502-504, transport errors);
        it never raises :class:`AmbiguousOutcomeError`. This is how an unknown outcome is resolved.

        Parameters
        ----------
        reference_code : str
            Sent quoted, so that spaces, colons or ``AND`` in a code are text, not query syntax.
        days : int
            The search covers credits submitted from ``days`` days before today (UTC) to the end
            of today, bounded as CyberSource's own sample bounds it
            (``submitTimeUtc:[NOW/DAY-7DAYS TO NOW/DAY+1DAY}``); an older credit is not found.
        """
        if type(days) is not int or days < 1:
            raise FieldError("days", f"days must be a whole number of days, 1 or more, not {days!r}")
        quoted = reference_code.replace("\\", "\\\\").replace('"', '\\"')
        body = {"save": False, "name": "reconkit lookup", "timezone": "UTC",
                "query": f'clientReferenceInformation.code:"{quoted}" AND '
                         f"submitTimeUtc:[NOW/DAY-{days}DAYS TO NOW/DAY+1DAY}}",
                "offset": 0, "limit": 100, "sort": "submitTimeUtc:desc"}
        parsed, _response = self._read("POST", "/tss/v2/searches", body)
        summaries = (parsed.get("_embedded") or {}).get("transactionSummaries") or []
        return [Credit(s, source="tss") for s in summaries
                if isinstance(s, dict) and dig(s, "clientReferenceInformation", "code") == reference_code]

    def resolve_unknown(self, reference_code: str | None = None) -> list[Resolution]:
        """Look up credits and voids whose outcome is unknown and write what was found to the ledger.

        Each unknown credit of this environment and merchant (or only ``reference_code``) is
        searched by its reference code. Found: the ledger row becomes ``created`` (or
        ``declined``) with the credit's id. Not found once :attr:`tss_delay` has passed since the
        intent (by :attr:`clock`): ``not_created``, and it is safe to issue again. Not found
        sooner: it stays unknown. Intents left by a process that died first become unknown.

        Each unknown void (or only the one sent with ``reference_code``) is settled by reading its
        credit back: ``VOIDED`` means the void was done (``voided``); any other status once
        :attr:`tss_delay` has passed since the void was sent means it was not (``not_voided``,
        and the credit may be voided again); sooner, it stays unknown.

        Returns
        -------
        list of Resolution
            One per row looked up, with its new ledger outcome: credits first, then voids.
        """
        ledger = self.ledger
        ledger.mark_abandoned_intents()
        if reference_code is not None:
            row = ledger.credit(reference_code)
            rows = [row] if row is not None and row["outcome"] == _ledger.UNKNOWN else []
        else:
            rows = ledger.unknown_outcomes(self.config.ledger_environment, self.config.merchant_id)
        resolved = []
        for row in rows:
            reference = row["reference_code"]
            intent_at = datetime.fromisoformat(row["intent_at"])
            # the search is bounded by date: reach back past the day it was sent, however long ago,
            # or an old credit would look never created
            days = max(SEARCH_DAYS, (self.clock().date() - intent_at.astimezone(UTC).date()).days + 2)
            found = self.find_credits_by_reference(reference, days=days)
            if found:
                credit = found[0]
                declined = (credit.status or "").upper() in ("DECLINED", "FAILED")
                outcome = _ledger.DECLINED if declined else _ledger.CREATED
                ledger.record_outcome(reference, outcome, credit_id=credit.id, status=credit.status,
                                      reconciliation_id=credit.reconciliation_id, raw=credit.raw,
                                      error=f"found by reference code after an unknown outcome ({len(found)} match"
                                            f"{'es' if len(found) > 1 else ''})")
                resolved.append(Resolution(reference, outcome, credit, len(found), credit_id=credit.id))
                continue
            if self.clock() - intent_at >= self.tss_delay:
                ledger.record_outcome(reference, _ledger.NOT_CREATED,
                                      error=f"no credit with this reference code {self.tss_delay} after it was sent")
                resolved.append(Resolution(reference, _ledger.NOT_CREATED, None, 0))
            else:
                resolved.append(Resolution(reference, _ledger.UNKNOWN, None, 0))
        return resolved + self._resolve_unknown_voids(reference_code)

    def _resolve_unknown_voids(self, reference_code: str | None) -> list[Resolution]:
        ledger = self.ledger
        scope = {"environment": self.config.ledger_environment, "merchant_id": self.config.merchant_id}
        resolved = []
        for row in ledger.unknown_voids(**scope):
            if reference_code is not None and row["reference_code"] != reference_code:
                continue
            try:
                credit: Credit | None = self.get_credit(row["credit_id"])
            except NotFoundError:  # no such credit (yet): the void cannot have voided it
                credit = None
            status = credit.status if credit is not None else None
            if (status or "").upper() == "VOIDED":
                outcome, error = _ledger.VOIDED, "the credit read back is VOIDED after an unknown void outcome"
            elif self.clock() - datetime.fromisoformat(row["sent_at"]) >= self.tss_delay:
                found = f"still {status or 'without a status'}" if credit is not None else "not found"
                outcome, error = _ledger.NOT_VOIDED, f"the credit is {found} {self.tss_delay} after the void was sent"
            else:
                outcome, error = _ledger.UNKNOWN, None
            if outcome != _ledger.UNKNOWN:
                ledger.record_void(row["credit_id"], outcome, status=status, error=error, **scope)
                if status:
                    ledger.update_status(row["credit_id"], status)
            resolved.append(Resolution(row["reference_code"], outcome, credit, int(credit is not None), "void",
                                       row["credit_id"]))
        return resolved

    def fetch_credits(self, ids: Iterable[str], **kwargs: Any) -> FetchResult:
        """Fetch many credits concurrently; see :func:`reconkit.fetch.fetch_credits`."""
        from .fetch import fetch_credits

        return fetch_credits(self, ids, **kwargs)

    def download_report(self, name: str, report_date: Any, format: str = "csv", **kwargs: Any) -> Any:
        """Download a Reporting API report as settlement; see :func:`reconkit.reporting.download_report`."""
        from .reporting import download_report

        return download_report(self, name, report_date, format, **kwargs)

    def purchase_refund_details(self, start: Any, end: Any, **kwargs: Any) -> Any:
        """Pull purchase-and-refund details as settlement; see :func:`reconkit.reporting.purchase_refund_details`."""
        from .reporting import purchase_refund_details

        return purchase_refund_details(self, start, end, **kwargs)
