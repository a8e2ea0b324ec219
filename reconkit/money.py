"""Exact money: ``Decimal`` amounts and ISO 4217 minor units.

Amounts arrive as strings and stay exact; comparisons happen in integer minor units of the
currency (JPY 0, USD 2, KWD 3). Binary floats are refused outright.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

__all__ = ["CURRENCIES", "format_amount", "minor_units", "parse_amount"]

# ISO 4217 active codes with their minor units (exponent); 2 is the default.
_EXPONENT_OVERRIDES = {
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0,
    "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    "CLF": 4, "UYW": 4,
}
_TWO_DECIMALS = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD BTN BWP BYN BZD "
    "CAD CDF CHF CNY COP CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD "
    "GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD "
    "MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP "
    "PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS "
    "TMT TOP TRY TTD TWD TZS UAH USD UYU UZS VES WST XCD YER ZAR ZMW ZWG"
).split()
CURRENCIES: dict[str, int] = {code: 2 for code in _TWO_DECIMALS} | _EXPONENT_OVERRIDES
"""ISO 4217 alphabetic code -> number of minor-unit digits."""


def minor_units(currency: str) -> int:
    """Return the number of decimal places of ``currency``.

    Raises
    ------
    ValueError
        If ``currency`` is not an ISO 4217 code.
    """
    code = str(currency).strip().upper()
    if code not in CURRENCIES:
        raise ValueError(f"{currency!r} is not an ISO 4217 currency code")
    return CURRENCIES[code]


def parse_amount(value: object, currency: str | None = None, *, allow_negative: bool = False) -> Decimal:
    """Parse an amount exactly.

    Parameters
    ----------
    value : str, int or Decimal
        The amount. Floats are refused: they have already lost exactness.
    currency : str, optional
        When given, the amount may not have more decimals than the currency's minor units.
    allow_negative : bool
        Settlement files sign credits; requests never do.

    Returns
    -------
    Decimal

    Raises
    ------
    ValueError
        With a sentence naming the value and what was expected.
    """
    if isinstance(value, float):
        raise ValueError(f"amount {value!r} is a binary float; pass it as a string such as '12.50'")
    if isinstance(value, bool) or value is None:
        raise ValueError(f"amount {value!r} is not a number")
    text = str(value).strip()
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"amount {value!r} is not a decimal number") from None
    if not amount.is_finite():
        raise ValueError(f"amount {value!r} is not a finite number")
    if amount < 0 and not allow_negative:
        raise ValueError(f"amount {value!r} is negative; amounts must be positive")
    if currency is not None:
        digits = minor_units(currency)
        exponent = amount.as_tuple().exponent
        if isinstance(exponent, int) and -exponent > digits and amount != amount.quantize(Decimal(1).scaleb(-digits)):
            raise ValueError(
                f"amount {value!r} has more than {digits} decimal places, the minor units of {currency.upper()}"
            )
    return amount


def format_amount(amount: Decimal | int, currency: str, *, minor: bool = False) -> str:
    """Show an amount with exactly the currency's decimals (``minor=True``: ``amount`` is in minor units)."""
    digits = minor_units(currency)
    value = Decimal(amount).scaleb(-digits) if minor else Decimal(amount)
    return f"{value.quantize(Decimal(1).scaleb(-digits)):f}"
