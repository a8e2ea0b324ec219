"""``Credit``: one standalone credit as CyberSource returned it, raw JSON kept untouched."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .errors import CreditShapeError
from .money import parse_amount

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "AMOUNT_PATHS",
    "CURRENCY_PATHS",
    "FIELD_PATHS",
    "FINAL_STATUSES",
    "TIME_PATHS",
    "Credit",
    "Void",
    "credit_amount",
    "dig",
    "field_value",
    "is_credit_id",
    "json_text",
    "leaf_text",
    "parse_time",
    "read_field",
]


def is_credit_id(text: str) -> bool:
    """Whether ``text`` (already stripped) is a CyberSource credit id: 1 to 26 ASCII digits, the one
    rule the fetch, the link guard and the credits files apply."""
    return _CREDIT_ID.fullmatch(text) is not None


_CREDIT_ID = re.compile(r"[0-9]{1,26}")


def parse_time(value: Any) -> datetime | None:
    """Parse CyberSource's ``YYYY-MM-DDThh:mm:ssZ`` (or with an offset) into an aware UTC datetime."""
    if not value:
        return None
    text = str(value).strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


FINAL_STATUSES = frozenset({"DECLINED", "VOIDED", "FAILED", "CANCELLED", "REJECTED"})
"""Credit statuses that can no longer change, the only ones the fetch cache serves by default.

A ``PENDING`` credit can still be voided or transmitted. ``TRANSMITTED`` and ``COMPLETED``
are not final either: a void no longer succeeds once the credit was submitted to the processor
(reference: "a transaction can be voided only when CyberSource has not already submitted [it]"),
but the processor can still reject or return it, and Transaction Details keeps reporting its
settlement. Declined, voided, failed, cancelled and rejected credits move no money and have no
transition left. Any other status (the set is open) is treated as one that can change.
"""

_ICS_CREDIT = "applicationInformation.applications[ics_credit]"

FIELD_PATHS: dict[str, tuple[str, ...]] = {
    "credit_id": ("id",),
    "reconciliation_id": ("reconciliationId", f"{_ICS_CREDIT}.reconciliationId",
                          "processingInformation.reconciliationId"),
    "status": ("status", f"{_ICS_CREDIT}.status"),
    "submit_time_utc": ("submitTimeUtc", "submitTimeUTC"),
    "amount": ("creditAmountDetails.creditAmount", "orderInformation.amountDetails.totalAmount"),
    "currency": ("creditAmountDetails.currency", "orderInformation.amountDetails.currency"),
    "reference_code": ("clientReferenceInformation.code",),
    "transaction_id": ("clientReferenceInformation.transactionId",),
    "instrument_identifier_id": ("paymentInformation.instrumentIdentifier.id",
                                 "tokenInformation.instrumentIdentifier.id"),
    "card_type": ("paymentAccountInformation.card.type", "paymentInformation.card.type",
                  "paymentInformation.tokenizedCard.type"),
    "card_suffix": ("paymentAccountInformation.card.suffix", "paymentInformation.card.suffix"),
    "approval_code": ("processorInformation.approvalCode",),
    "response_code": ("processorInformation.responseCode",),
    "payment_account_reference": ("processorInformation.paymentAccountReferenceNumber",),
    "error_reason": ("errorInformation.reason",),
    "error_message": ("errorInformation.message",),
}
"""Where each credit field is read from, in both response shapes (the credit response and the self
link, then Transaction Details); the first path holding a non-blank value wins.

The one table :class:`Credit`'s properties and :func:`reconkit.credits_to_frame`'s curated
columns read through. ``applications[ics_credit]`` is the element of that list whose ``name`` is
``ics_credit``: Transaction Details nests the credit's own status and reconciliation id there.
"""

AMOUNT_PATHS = FIELD_PATHS["amount"]
"""Where a credit's amount sits: the credit response first, then Transaction Details."""
CURRENCY_PATHS = FIELD_PATHS["currency"]
TIME_PATHS = FIELD_PATHS["submit_time_utc"]
"""The credit response spells it ``Utc``, Transaction Details ``UTC``."""


def dig(obj: Any, *path: str) -> Any:
    """The value at ``path`` in nested mappings, or None where any step is missing.

    A step ``key[name]`` picks the element of the list at ``key`` whose ``"name"`` is ``name``.
    """
    for key in path:
        if key.endswith("]") and "[" in key:
            key, _, wanted = key[:-1].partition("[")
            items = obj.get(key) if isinstance(obj, Mapping) else None
            obj = next((i for i in items if isinstance(i, Mapping) and i.get("name") == wanted), None) \
                if isinstance(items, list) else None
            continue
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def json_text(value: Any) -> str:
    """Compact JSON text, as a list leaf is kept."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def leaf_text(value: Any) -> str | None:
    """A JSON leaf as the text a credits frame holds: strings unchanged, ``true``/``false``,
    numbers as JSON writes them, lists as compact JSON; None for null and for an object (which
    is no leaf)."""
    kind = type(value)
    if kind is str or value is None:
        return value
    if kind is bool:
        return "true" if value else "false"
    if kind is float:
        return json.dumps(value)
    if kind is list or kind is tuple:
        return json_text(value)
    if isinstance(value, Mapping):
        return None
    return str(value)


def field_value(name: str, text: str | None) -> str | None:
    """The curated value of field ``name`` from one leaf's text: stripped, a currency upper-cased,
    blank as None."""
    if text is None:
        return None
    value = text.strip()
    if not value:
        return None
    return value.upper() if name == "currency" else value


def read_field(raw: Mapping[str, Any], name: str) -> str | None:
    """Field ``name`` of a raw credit, read through :data:`FIELD_PATHS` (first non-blank path)."""
    for path in FIELD_PATHS[name]:
        value = field_value(name, leaf_text(dig(raw, *path.split("."))))
        if value is not None:
            return value
    return None


def credit_amount(text: str | None) -> Decimal | None:
    """A credit's amount from its field text, exact; the one amount parser of credits.

    Raises
    ------
    CreditShapeError
        When the text is not a finite decimal number (``"NaN"``, ``"Infinity"``, ``"12,50"``).
    """
    if text is None:
        return None
    try:
        return parse_amount(text, allow_negative=True)
    except ValueError as exc:
        raise CreditShapeError(str(exc)) from None


@dataclass(frozen=True)
class Credit:
    """A credit as returned by ``POST /pts/v2/credits``, the self link, or Transaction Details.

    Attributes
    ----------
    raw : dict
        The response body exactly as parsed; nothing is dropped.
    source : str
        ``"create"``, ``"self_link"`` or ``"tss"``: which call produced ``raw``.
    http_status : int
    correlation_id : str or None
        The ``v-c-correlation-id`` response header.
    """

    raw: dict[str, Any]
    source: str = "create"
    http_status: int = 201
    correlation_id: str | None = field(default=None, compare=False)

    @property
    def id(self) -> str:
        """The 22-digit request id, as text."""
        return read_field(self.raw, "credit_id") or ""

    @property
    def status(self) -> str | None:
        """``PENDING``, ``DECLINED``, ``VOIDED``, ... (an open set: compare as text)."""
        return read_field(self.raw, "status")

    @property
    def reconciliation_id(self) -> str | None:
        """The id the processor receives and settlement files carry."""
        return read_field(self.raw, "reconciliation_id")

    @property
    def amount(self) -> Decimal | None:
        """The credited amount, exact.

        Raises
        ------
        CreditShapeError
            When the response's amount is not a finite decimal number.
        """
        return credit_amount(read_field(self.raw, "amount"))

    @property
    def currency(self) -> str | None:
        """ISO 4217 code of :attr:`amount`."""
        return read_field(self.raw, "currency")

    @property
    def submit_time(self) -> datetime | None:
        """``submitTimeUtc`` (credit) or ``submitTimeUTC`` (Transaction Details), aware UTC."""
        return parse_time(read_field(self.raw, "submit_time_utc"))

    @property
    def reference_code(self) -> str | None:
        """``clientReferenceInformation.code``: the merchant's reference."""
        return read_field(self.raw, "reference_code")

    @property
    def transaction_id(self) -> str | None:
        """``clientReferenceInformation.transactionId``, when the response echoes it."""
        return read_field(self.raw, "transaction_id")

    @property
    def links(self) -> dict[str, dict[str, str]]:
        """``_links``: ``{"self": {"href", "method"}, "void": {...}}``."""
        links = self.raw.get("_links")
        return dict(links) if isinstance(links, Mapping) else {}

    @property
    def self_href(self) -> str:
        """The self link, or ``/pts/v2/credits/{id}`` when the response has none."""
        href = dig(self.links, "self", "href")
        return str(href) if href and self.source != "tss" else f"/pts/v2/credits/{self.id}"

    @property
    def void_href(self) -> str:
        """The void link, or ``/pts/v2/credits/{id}/voids``."""
        href = dig(self.links, "void", "href")
        return str(href) if href else f"/pts/v2/credits/{self.id}/voids"

    @property
    def error_reason(self) -> str | None:
        """``errorInformation.reason`` of a declined credit."""
        return read_field(self.raw, "error_reason")

    @property
    def error_message(self) -> str | None:
        """``errorInformation.message`` of a declined credit."""
        return read_field(self.raw, "error_message")

    def to_frame(self) -> pd.DataFrame:
        """This credit as a one-row DataFrame (see :func:`reconkit.credits_to_frame`)."""
        from .frames import credits_to_frame

        return credits_to_frame([self])

    def to_series(self) -> pd.Series:
        """This credit as a Series of its curated and raw fields."""
        return self.to_frame().iloc[0]

    def __repr__(self) -> str:
        return (
            f"Credit(id={self.id!r}, status={self.status!r}, reconciliation_id={self.reconciliation_id!r}, "
            f"amount={self.amount!r}, currency={self.currency!r}, source={self.source!r})"
        )


@dataclass(frozen=True)
class Void:
    """The answer to ``POST /pts/v2/credits/{id}/voids``; ``raw`` kept untouched."""

    raw: dict[str, Any]
    credit_id: str
    correlation_id: str | None = field(default=None, compare=False)

    @property
    def id(self) -> str:
        """The void's own request id."""
        return str(self.raw.get("id", ""))

    @property
    def status(self) -> str | None:
        """``VOIDED``, ``CANCELLED`` or ``FAILED``."""
        return self.raw.get("status")
