"""``Credit``: one standalone credit as CyberSource returned it, raw JSON kept untouched."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .money import parse_amount

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["AMOUNT_PATHS", "CURRENCY_PATHS", "FINAL_STATUSES", "TIME_PATHS", "Credit", "Void", "credit_application",
           "dig", "parse_time"]


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

AMOUNT_PATHS = ("creditAmountDetails.creditAmount", "orderInformation.amountDetails.totalAmount")
"""Where a credit's amount sits: the credit response first, then Transaction Details."""
CURRENCY_PATHS = ("creditAmountDetails.currency", "orderInformation.amountDetails.currency")
TIME_PATHS = ("submitTimeUtc", "submitTimeUTC")
"""The credit response spells it ``Utc``, Transaction Details ``UTC``."""


def dig(obj: Any, *path: str) -> Any:
    """The value at ``path`` in nested mappings, or None where any step is missing."""
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _first(raw: Mapping[str, Any], paths: tuple[str, ...]) -> Any:
    for path in paths:
        value = dig(raw, *path.split("."))
        if value not in (None, ""):
            return value
    return None


def credit_application(raw: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ``ics_credit`` entry of a Transaction Details response, if any."""
    apps = dig(raw, "applicationInformation", "applications")
    if isinstance(apps, list):
        for app in apps:
            if isinstance(app, Mapping) and app.get("name") == "ics_credit":
                return app
    return None


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
        return str(self.raw.get("id", "")).strip()

    @property
    def status(self) -> str | None:
        """``PENDING``, ``DECLINED``, ``VOIDED``, ... (an open set: compare as text)."""
        status = self.raw.get("status")
        if status is None and self.source == "tss":
            app = credit_application(self.raw)
            status = app.get("status") if app else None
        return None if status is None else str(status)

    @property
    def reconciliation_id(self) -> str | None:
        """The id the processor receives and settlement files carry."""
        value = self.raw.get("reconciliationId")
        if value in (None, ""):
            app = credit_application(self.raw)
            value = app.get("reconciliationId") if app else None
        if value in (None, ""):
            value = dig(self.raw, "processingInformation", "reconciliationId")
        return None if value in (None, "") else str(value).strip()

    @property
    def amount(self) -> Decimal | None:
        """The credited amount, exact."""
        value = _first(self.raw, AMOUNT_PATHS)
        return None if value is None else parse_amount(value, allow_negative=True)

    @property
    def currency(self) -> str | None:
        """ISO 4217 code of :attr:`amount`."""
        value = _first(self.raw, CURRENCY_PATHS)
        return None if value is None else str(value).strip().upper()

    @property
    def submit_time(self) -> datetime | None:
        """``submitTimeUtc`` (credit) or ``submitTimeUTC`` (Transaction Details), aware UTC."""
        return parse_time(_first(self.raw, TIME_PATHS))

    @property
    def reference_code(self) -> str | None:
        """``clientReferenceInformation.code``: the merchant's reference."""
        return dig(self.raw, "clientReferenceInformation", "code")

    @property
    def transaction_id(self) -> str | None:
        """``clientReferenceInformation.transactionId``, when the response echoes it."""
        return dig(self.raw, "clientReferenceInformation", "transactionId")

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
        return dig(self.raw, "errorInformation", "reason")

    @property
    def error_message(self) -> str | None:
        """``errorInformation.message`` of a declined credit."""
        return dig(self.raw, "errorInformation", "message")

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
