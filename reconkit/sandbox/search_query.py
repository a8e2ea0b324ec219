"""The Transaction Search query language, as the sandbox understands it.

CyberSource documents ``POST /tss/v2/searches`` queries as ``field:value`` terms joined by
``AND`` / ``OR``, quoted values, ranges with an inclusive ``[`` / ``]`` or exclusive ``{`` / ``}``
bound, and date math on ``submitTimeUtc`` (``NOW``, ``/DAY`` rounding, ``+7DAYS``); the official
sample is ``submitTimeUtc:[NOW/DAY-7DAYS TO NOW/DAY+1DAY}``. This module parses that into a
predicate over one transaction (a mapping of field name to value) and parses ``sort``.

Where the documentation is silent the sandbox chooses, and says so here:

- ``AND`` binds tighter than ``OR``; parentheses group; keywords are upper case only.
- A range over a text field compares the text; ``*`` is an open bound; ``field:*`` means "has a value".
- Time bounds are date math from ``NOW``, ISO 8601 timestamps (a zone is required; ``Z`` works) or
  epoch milliseconds; ``/DAY`` and the other roundings use the search's ``timezone``.
- At most :data:`MAX_TERMS` terms and :data:`MAX_DEPTH` nested parentheses.

Every refusal is a :class:`~reconkit.errors.FieldError` whose ``field`` is ``query`` or ``sort``
and whose message names the 1-based character position of the offending token.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from ..errors import FieldError

__all__ = ["FIELDS", "MAX_DEPTH", "MAX_TERMS", "Predicate", "parse_query", "parse_sort", "sort_records"]

FIELDS: dict[str, tuple[str, str]] = {
    "id": ("id", "text"),
    "reconciliationId": ("reconciliationId", "text"),
    "applicationInformation.applications.reconciliationId": ("reconciliationId", "text"),
    "clientReferenceInformation.code": ("clientReferenceInformation.code", "text"),
    "merchantId": ("merchantId", "text"),
    "submitTimeUtc": ("submitTimeUtc", "time"),
    "orderInformation.amountDetails.totalAmount": ("orderInformation.amountDetails.totalAmount", "amount"),
    "orderInformation.amountDetails.currency": ("orderInformation.amountDetails.currency", "text"),
    "paymentInformation.card.suffix": ("paymentInformation.card.suffix", "text"),
}
"""Query field -> (the record key it reads, its kind: ``text``, ``time`` or ``amount``)."""
MAX_TERMS = 20
"""The most terms one query may hold (a sandbox limit; the docs name none)."""
MAX_DEPTH = 10
"""The deepest nesting of parentheses (a sandbox limit; the docs name none)."""

Predicate = Callable[[Mapping[str, Any]], bool]

_PUNCT = "()[]{}"
_KEYWORDS = ("AND", "OR", "TO")
_UNITS = {"SECOND": "seconds", "MINUTE": "minutes", "HOUR": "hours", "DAY": "days", "MONTH": "months",
          "YEAR": "years"}
_MATH_STEP = re.compile(r"/([A-Z]+)|([+-])(\d{1,9})([A-Z]+)")


@dataclass(frozen=True)
class _Token:
    kind: str  # "word", "quoted" or one of _PUNCT
    text: str
    at: int  # 0-based offset into the query


def _fail(field: str, at: int, message: str) -> FieldError:
    return FieldError(field, f"{field}: {message} at position {at + 1}")


def _tokens(query: str) -> list[_Token]:
    out: list[_Token] = []
    i = 0
    while i < len(query):
        char = query[i]
        if char.isspace():
            i += 1
        elif char in _PUNCT:
            out.append(_Token(char, char, i))
            i += 1
        elif char == '"':
            start, i, text = i, i + 1, []
            while i < len(query) and query[i] != '"':
                if query[i] == "\\" and i + 1 < len(query):
                    i += 1
                text.append(query[i])
                i += 1
            if i >= len(query):
                raise _fail("query", start, "unterminated quoted value")
            out.append(_Token("quoted", "".join(text), start))
            i += 1
        else:
            start = i
            while i < len(query) and not query[i].isspace() and query[i] not in _PUNCT and query[i] != '"':
                i += 1
            out.append(_Token("word", query[start:i], start))
    return out


def _add_months(moment: datetime, months: int) -> datetime:
    year, month = divmod(moment.month - 1 + months, 12)
    year += moment.year
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def _round(moment: datetime, unit: str) -> datetime:
    keep = ("YEAR", "MONTH", "DAY", "HOUR", "MINUTE", "SECOND").index(unit)
    fields = {"month": 1, "day": 1, "hour": 0, "minute": 0, "second": 0, "microsecond": 0}
    return moment.replace(**dict(list(fields.items())[keep:]))


def _date_math(text: str, at: int, now: datetime, zone: tzinfo) -> datetime:
    """``NOW`` followed by roundings (``/DAY``) and shifts (``-7DAYS``), applied left to right."""
    moment = now.astimezone(zone)
    i = 3
    while i < len(text):
        step = _MATH_STEP.match(text, i)
        unit = step and (step.group(1) or step.group(4))
        singular = unit[:-1] if unit and unit.endswith("S") and unit[:-1] in _UNITS else unit
        if step is None or singular not in _UNITS:
            raise _fail("query", at + i, f"bad date math {text[i:]!r} (expected /DAY or +N DAYS, HOURS, MINUTES)")
        try:
            if step.group(1):
                moment = _round(moment, singular)
            else:
                amount = int(step.group(3)) * (-1 if step.group(2) == "-" else 1)
                name = _UNITS[singular]
                if name in ("months", "years"):
                    moment = _add_months(moment, amount * (12 if name == "years" else 1))
                else:
                    moment = moment + timedelta(**{name: amount})
        except (OverflowError, ValueError):
            raise _fail("query", at + i,
                        f"date math {text[:step.end()]!r} leaves the calendar (years 1 to 9999)") from None
        i = step.end()
    return moment


def _too_far(token: _Token) -> FieldError:
    return _fail("query", token.at, f"epoch milliseconds {token.text[:20]!r} lie outside the years 1 to 9999")


def _time_value(token: _Token, now: datetime, zone: tzinfo) -> datetime:
    text = token.text
    if token.kind == "word" and text.startswith("NOW"):
        return _date_math(text, token.at, now, zone)
    if text.isascii() and text.isdigit():
        try:  # 17 digits reach past 9999 already; longer ones never get to int()
            if len(text) > 17:
                raise OverflowError
            return datetime.fromtimestamp(int(text) / 1000, tz=zone)
        except (OverflowError, ValueError, OSError):
            raise _too_far(token) from None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise _fail("query", token.at, f"{text!r} is not a time (NOW date math, ISO 8601 or epoch ms)") from None
    if moment.tzinfo is None:
        raise _fail("query", token.at, f"time {text!r} has no zone (add Z or an offset)")
    return moment


def _value(kind: str, token: _Token, now: datetime, zone: tzinfo) -> Any:
    if kind == "time":
        return _time_value(token, now, zone)
    if kind == "amount":
        try:
            amount = Decimal(token.text)
        except InvalidOperation:
            amount = None
        if amount is None or not amount.is_finite():
            raise _fail("query", token.at, f"{token.text!r} is not an amount")
        return amount
    return token.text


class _Parser:
    def __init__(self, query: str, now: datetime, zone: tzinfo) -> None:
        self.query, self.now, self.zone = query, now, zone
        self.tokens = _tokens(query)
        self.i = 0
        self.terms = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, expected: str) -> _Token:
        token = self.peek()
        if token is None:
            raise _fail("query", len(self.query), f"expected {expected}, found the end of the query")
        self.i += 1
        return token

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token is not None and token.kind == "word" and token.text == word:
            self.i += 1
            return True
        return False

    def parse(self) -> Predicate:
        if not self.tokens:
            raise _fail("query", 0, "the query is empty")
        predicate = self.either(0)
        token = self.peek()
        if token is not None:
            raise _fail("query", token.at, f"expected AND or OR, found {token.text!r}")
        return predicate

    def either(self, depth: int) -> Predicate:
        parts = [self.both(depth)]
        while self.keyword("OR"):
            parts.append(self.both(depth))
        return parts[0] if len(parts) == 1 else (lambda record: any(p(record) for p in parts))

    def both(self, depth: int) -> Predicate:
        parts = [self.term(depth)]
        while self.keyword("AND"):
            parts.append(self.term(depth))
        return parts[0] if len(parts) == 1 else (lambda record: all(p(record) for p in parts))

    def term(self, depth: int) -> Predicate:
        token = self.take("a field:value term")
        if token.kind == "(":
            if depth >= MAX_DEPTH:
                raise _fail("query", token.at, f"parentheses nested deeper than {MAX_DEPTH}")
            inner = self.either(depth + 1)
            close = self.take("')'")
            if close.kind != ")":
                raise _fail("query", close.at, f"expected ')', found {close.text!r}")
            return inner
        field, colon, rest = token.text.partition(":")
        if token.kind != "word" or not colon or token.text in _KEYWORDS:
            raise _fail("query", token.at, f"expected a field:value term, found {token.text!r}")
        if field not in FIELDS:
            raise _fail("query", token.at, f"unknown field {field!r} (searchable: {', '.join(FIELDS)})")
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise _fail("query", token.at, f"more than {MAX_TERMS} terms")
        key, kind = FIELDS[field]
        if rest:
            value_token = _Token("word", rest, token.at + len(field) + 1)
        else:
            value_token = self.take(f"a value for {field}")
            if value_token.kind in "[{":
                return self.range(key, kind, value_token)
            if value_token.kind != "quoted":
                raise _fail("query", value_token.at, f"expected a value for {field}, found {value_token.text!r}")
        if value_token.kind == "word" and value_token.text == "*":
            return lambda record: record.get(key) is not None
        wanted = _value(kind, value_token, self.now, self.zone)
        return lambda record: record.get(key) is not None and record[key] == wanted

    def range(self, key: str, kind: str, opening: _Token) -> Predicate:
        low = self.bound(kind)
        to = self.take("TO")
        if to.kind != "word" or to.text != "TO":
            raise _fail("query", to.at, f"expected TO, found {to.text!r}")
        high = self.bound(kind)
        closing = self.take("']' or '}'")
        if closing.kind not in "]}":
            raise _fail("query", closing.at, f"expected ']' or '}}' to close the range, found {closing.text!r}")
        low_inclusive, high_inclusive = opening.kind == "[", closing.kind == "]"

        def inside(record: Mapping[str, Any]) -> bool:
            value = record.get(key)
            if value is None:
                return False
            above = low is None or (value >= low if low_inclusive else value > low)
            below = high is None or (value <= high if high_inclusive else value < high)
            return above and below

        return inside

    def bound(self, kind: str) -> Any:
        token = self.take("a range bound")
        if token.kind not in ("word", "quoted") or (token.kind == "word" and token.text in _KEYWORDS):
            raise _fail("query", token.at, f"expected a range bound, found {token.text!r}")
        if token.kind == "word" and token.text == "*":
            return None
        return _value(kind, token, self.now, self.zone)


def parse_query(query: str, now: datetime, zone: tzinfo) -> Predicate:
    """Parse a Transaction Search ``query`` into a predicate over one record.

    Parameters
    ----------
    query : str
        The documented syntax, e.g. ``clientReferenceInformation.code:"A 1" AND
        submitTimeUtc:[NOW/DAY-7DAYS TO NOW/DAY+1DAY}``.
    now : datetime
        What ``NOW`` means (the sandbox clock), timezone-aware.
    zone : tzinfo
        The search's ``timezone``: ``/DAY`` rounds to midnight there.

    Returns
    -------
    Predicate
        Takes a mapping keyed by :data:`FIELDS`' record keys (times aware, amounts ``Decimal``).

    Raises
    ------
    FieldError
        ``field`` is ``query``; the message names the position of the bad token.
    """
    return _Parser(query, now, zone).parse()


def parse_sort(sort: str) -> list[tuple[str, bool]]:
    """``"id:asc, submitTimeUtc:desc"`` -> ``[("id", False), ("submitTimeUtc", True)]`` (record key, descending).

    Raises
    ------
    FieldError
        ``field`` is ``sort``; the message names the position of the bad key.
    """
    keys: list[tuple[str, bool]] = []
    at = 0
    for part in sort.split(","):
        field, colon, direction = part.strip().partition(":")
        where = at + len(part) - len(part.lstrip())
        if field not in FIELDS:
            raise _fail("sort", where, f"unknown sort field {field!r} (sortable: {', '.join(FIELDS)})")
        if direction.strip().lower() not in (("asc", "desc") if colon else ("",)):
            raise _fail("sort", where, f"sort direction for {field} must be asc or desc, not {direction.strip()!r}")
        keys.append((FIELDS[field][0], direction.strip().lower() == "desc"))
        at += len(part) + 1
    return keys


def sort_records(records: list[dict[str, Any]], keys: list[tuple[str, bool]]) -> list[dict[str, Any]]:
    """Sort by several keys, each ascending or descending; a missing value sorts after any value
    in ascending order (before, descending). Stable: ties keep the records' given order."""
    out = list(records)
    for key, descending in reversed(keys):
        out.sort(key=lambda r, k=key: (r.get(k) is None, r.get(k) if r.get(k) is not None else ""),
                 reverse=descending)
    return out
