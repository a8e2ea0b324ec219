"""Card-number facts shared by the client's validation, the sandbox and the batch form."""

from __future__ import annotations

__all__ = ["card_type_for", "luhn_ok"]


def luhn_ok(number: str) -> bool:
    """True when an all-digit card number passes the Luhn check."""
    total = 0
    for index, char in enumerate(reversed(number)):
        digit = int(char)
        if index % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def card_type_for(number: str) -> str:
    """CyberSource's three-digit card type from the number's prefix (001 Visa by default)."""
    if number.startswith("4"):
        return "001"
    if number[:2] in {"51", "52", "53", "54", "55", "22", "23", "24", "25", "26", "27"}:
        return "002"
    if number[:2] in {"34", "37"}:
        return "003"
    return "004" if number.startswith("6") else "001"
