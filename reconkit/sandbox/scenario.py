"""A realistic day-by-day mix of test credits, for the demo, the sample data and the tests."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from ..errors import DeclinedError

if TYPE_CHECKING:
    from ..client import Client
    from ..credit import Credit
    from .server import Sandbox

__all__ = ["Scenario", "populate"]

_CARDS = [("4111111111111111", "001"), ("5555555555554444", "002"), ("4444444444444448", "001"),
          ("5200000000000007", "002")]
_CURRENCIES = [("USD", 0.6), ("EUR", 0.2), ("GBP", 0.12), ("JPY", 0.08)]


@dataclass
class Scenario:
    """What :func:`populate` issued: credit ids in order, and which were declined or voided."""

    credit_ids: list[str] = field(default_factory=list)
    declined: list[str] = field(default_factory=list)
    voided: list[str] = field(default_factory=list)


def _amount(rng: random.Random, currency: str) -> str:
    if currency == "JPY":
        return str(rng.randint(5, 3000) * 10)
    return f"{rng.randint(100, 50000) / 100:.2f}"


def populate(sandbox: Sandbox, client: Client, n: int = 300, *, seed: int = 0, days: int = 3,
             decline_rate: float = 0.03, void_rate: float = 0.04, progress: bool = False) -> Scenario:
    """Issue ``n`` credits over ``days`` sandbox days, with declines and voids, running each batch.

    Credits are spread evenly over the days; the clock moves on between them, so each day's
    cut-off batches that day's credits. The last day's credits stay unbatched (``PENDING``).
    """
    rng = random.Random(f"scenario:{seed}")
    scenario = Scenario()
    if n < 0 or days < 1:
        raise ValueError(f"populate: n={n} credits over days={days}: n must be 0 or more and days 1 or more")
    issued = 0
    for day in range(days):
        count = n * (day + 1) // days - n * day // days  # exactly n in all, the days as even as whole numbers go
        step = timedelta(hours=12) / max(count, 1)
        for _ in range(count):
            currency = rng.choices([c for c, _ in _CURRENCIES], [w for _, w in _CURRENCIES])[0]
            number, card_type = rng.choice(_CARDS)
            declined = rng.random() < decline_rate
            amount = "2005.00" if declined else _amount(rng, currency)
            if declined and currency == "JPY":
                currency = "USD"
            card = {"number": number, "expiration_month": "12", "expiration_year": "2031", "type": card_type}
            credit: Credit
            try:
                credit = client.create_credit(amount, currency, card=card,
                                              reference_code=f"refund-{seed}-{issued:05d}")
            except DeclinedError as exc:
                credit = exc.credit
                scenario.declined.append(credit.id)
            else:
                if rng.random() < void_rate:
                    client.void_credit(credit)
                    scenario.voided.append(credit.id)
            scenario.credit_ids.append(credit.id)
            issued += 1
            sandbox.advance(step)
        if day < days - 1:
            until_next = timedelta(hours=24) - step * count
            sandbox.advance(until_next)
    return scenario
