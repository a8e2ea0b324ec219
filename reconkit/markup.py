"""HTML pieces shared by the apps and the Spark view: text made safe to show, amounts with their
digits, summary cards. No widgets here, so a compute backend can render without the UI."""

from __future__ import annotations

import html
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from .inert import escape_controls

__all__ = ["cards_html", "escape", "format_amount"]


def escape(value: Any, quote: bool = True) -> str:
    """Text shown in an app's page: HTML-escaped, and each control character (ESC, BEL, ...) shown as
    its escape, since text from files, servers and people may carry them."""
    return html.escape(escape_controls(str(value)), quote=quote)


def format_amount(value: Any) -> str:
    """An amount with thousands separators and the digits it carries (its currency's decimals)."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return ""
    if isinstance(value, Decimal) and not value.is_finite():
        return str(value)
    return f"{value:,}"


def cards_html(cards: list[tuple[str, Any]]) -> str:
    """Summary cards (a label over a figure each) as one HTML block; labels and figures are escaped."""
    card = ("<div style='display:inline-block;border:1px solid #ccc;border-radius:6px;padding:8px 14px;"
            "margin:4px;min-width:120px'><div style='color:#666'>{}</div><div style='font-size:22px'>{}</div>"
            "</div>")
    return ("<div class='reconkit-cards'>"
            + "".join(card.format(escape(label), escape(str(value))) for label, value in cards) + "</div>")
