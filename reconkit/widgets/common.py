"""Pieces both apps share: the connection banner, error capture, small HTML helpers."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from typing import Any

import ipywidgets as w

from ..config import Config
from ..errors import ApiError, ReconkitError, SettlementFormatError
from ..markup import escape
from ..report import frame_html

__all__ = ["App", "ConnectionBanner", "describe_error", "escape", "guarded", "json_html", "status_badge", "table_html"]

log = logging.getLogger("reconkit.widgets")


_COLOURS = {"SANDBOX": ("#1e7e34", "local sandbox, simulated money"),
            "TEST": ("#b8860b", "CyberSource test environment (apitest), no real money"),
            "PRODUCTION": ("#b00020", "PRODUCTION: real money"),
            "CUSTOM": ("#555555", "a custom CyberSource endpoint")}
_STATUS = {"PENDING": "#1e7e34", "TRANSMITTED": "#1e7e34", "COMPLETED": "#1e7e34", "VOIDED": "#555555",
           "DECLINED": "#b00020", "FAILED": "#b00020"}


class ConnectionBanner(w.HTML):
    """Which environment the app talks to, in colour, with the merchant id and the authentication
    scheme (HTTP Signature says it is deprecated; never a secret)."""

    def __init__(self, config: Config) -> None:
        name = config.environment_name
        colour, what = _COLOURS.get(name, _COLOURS["CUSTOM"])
        super().__init__(
            f'<div class="reconkit-banner" style="background:{colour};color:white;padding:6px 10px;'
            f'border-radius:4px;font-weight:600">{escape(name)} · merchant '
            f'{escape(config.merchant_id)} · {escape(what)} · '
            f'{escape(config.base_url)} · <span class="reconkit-auth">{escape(config.auth_scheme)}</span></div>')
        self.environment = name
        self.auth_scheme = config.auth_scheme


_TABLE_CSS = ("<style>.reconkit-table table{border-collapse:collapse;font-size:12px}"
              ".reconkit-table td,.reconkit-table th{border:1px solid #ddd;padding:2px 6px;white-space:nowrap;"
              "text-align:left;vertical-align:top}.reconkit-wrap td:nth-child(5){white-space:normal;"
              "min-width:380px}</style>")


def table_html(frame: Any, *, wrap_fifth: bool = False, **options: Any) -> str:
    """A DataFrame for an app: compact, scrolling sideways instead of squeezing columns
    (``wrap_fifth``: the fifth column, a sentence, wraps)."""
    classes = "reconkit-table reconkit-wrap" if wrap_fifth else "reconkit-table"
    return f"{_TABLE_CSS}<div class='{classes}' style='overflow-x:auto;max-width:100%'>" \
           f"{frame_html(frame, **options)}</div>"


def status_badge(status: str | None) -> str:
    """A coloured status word."""
    text = status or "UNKNOWN"
    colour = _STATUS.get(text.upper(), "#b8860b")
    return f'<b style="color:{colour}">{escape(text)}</b>'


def json_html(raw: Any) -> str:
    """Pretty JSON in a <pre>."""
    return f"<pre style='font-size:12px'>{escape(json.dumps(raw, indent=2, sort_keys=True))}</pre>"


def describe_error(exc: BaseException) -> str:
    """One readable HTML block for an error: CyberSource's reason and message, not a traceback."""
    if isinstance(exc, ApiError):
        lines = [f"<b>{escape(type(exc).__name__)}</b> (HTTP {exc.http_status})"]
        if exc.reason:
            lines.append(f"reason: <code>{escape(exc.reason)}</code>")
        if exc.message:
            lines.append(f"message: {escape(exc.message)}")
        for detail in exc.details:
            lines.append(f"field <code>{escape(str(detail.get('field')))}</code>: "
                         f"{escape(str(detail.get('reason')))}")
        if exc.correlation_id:
            lines.append(f"correlation id (for CyberSource support): <code>{escape(exc.correlation_id)}</code>")
        body = "<br>".join(lines)
    elif isinstance(exc, SettlementFormatError) and exc.failure_cases is not None:
        body = escape(str(exc)) + table_html(exc.failure_cases.head(50))
    elif isinstance(exc, ReconkitError | ValueError):
        body = escape(str(exc))
    else:
        body = f"<b>{escape(type(exc).__name__)}</b>: {escape(str(exc))}"
    return f'<div class="reconkit-error" style="border-left:4px solid #b00020;padding:4px 8px">{body}</div>'


class App(w.VBox):
    """What both apps share: ``self.error`` (an HTML widget each app creates) and
    :meth:`show_error`, which :func:`guarded` callbacks report to."""

    error: w.HTML

    def show_error(self, exc: BaseException) -> None:
        """Show an exception readably in the app."""
        self.error.value = describe_error(exc)


def guarded(method: Callable[..., Any]) -> Callable[..., Any]:
    """Catch what a callback or observer raises and show it in the app: ipywidgets would only log it."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            log.debug("callback %s failed", method.__name__, exc_info=True)
            self.show_error(exc)
            return None

    return wrapper
