"""Fault injection for the sandbox: seeded, per-endpoint rates."""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["ENDPOINTS", "FAULT_KINDS", "PROXY_ERRORS", "FaultPlan", "ProxyError"]


@dataclass(frozen=True)
class ProxyError:
    """An error answered by something in front of CyberSource (a proxy or load balancer), not by
    CyberSource: no JSON error body, so the client cannot know whether the request was processed.

    Attributes
    ----------
    status : int
    body : bytes
        Sent as ``text/html``.
    processed : bool
        Whether the sandbox processes the request first (the upstream answer was lost behind
        the proxy) or not at all (the proxy never forwarded it).
    """

    status: int
    body: bytes
    processed: bool


PROXY_ERRORS = {
    "html_502": ProxyError(502, b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad "
                                b"Gateway</h1></center><hr><center>nginx</center></body></html>", processed=True),
    "html_503": ProxyError(503, b"<html><body><h1>503 Service Unavailable</h1>No server is available to handle "
                                b"this request.</body></html>", processed=False),
    "bare_500": ProxyError(500, b"", processed=False),
}
"""Proxy and load-balancer errors by fault kind."""

FAULT_KINDS = ("429", "502", "503", "reset", "hang", "truncated", "bad_json", "lost", *PROXY_ERRORS)
"""``lost`` applies to POSTs only: the request is processed, then the response never comes.
``html_502`` (processed first), ``html_503`` and ``bare_500`` (not processed) are
:data:`PROXY_ERRORS`."""
ENDPOINTS = ("create", "get", "void", "tss", "search")


@dataclass
class FaultPlan:
    """What goes wrong, how often, and how slowly.

    Parameters
    ----------
    rates : mapping
        ``{endpoint: {kind: rate}}`` with endpoints from :data:`ENDPOINTS` or ``"*"`` for all,
        kinds from :data:`FAULT_KINDS`, rates between 0 and 1 (their sum at most 1).
    latency_ms, jitter_ms : float
        Added to every response: ``latency_ms + uniform(0, jitter_ms)``.
    retry_after : str
        The ``Retry-After`` header value sent with a 429.
    hang_seconds : float
        How long a hung response stalls before the connection is closed.
    seed : int
        Same seed, same sequence of faults.
    """

    rates: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    retry_after: str = "1"
    hang_seconds: float = 30.0
    seed: int = 0

    def __post_init__(self) -> None:
        for endpoint, kinds in self.rates.items():
            if endpoint != "*" and endpoint not in ENDPOINTS:
                raise ValueError(f"unknown endpoint {endpoint!r}; expected one of {', '.join(ENDPOINTS)} or '*'")
            for kind, rate in kinds.items():
                if kind not in FAULT_KINDS:
                    raise ValueError(f"unknown fault {kind!r}; expected one of {', '.join(FAULT_KINDS)}")
                if not 0 <= rate <= 1:
                    raise ValueError(f"fault rate {kind}={rate} is not between 0 and 1")
            if sum(kinds.values()) > 1 + 1e-9:
                raise ValueError(f"fault rates of {endpoint!r} add up to more than 1")
        self._random = random.Random(self.seed)
        self._lock = threading.Lock()

    @classmethod
    def uniform(cls, rate: float, kinds: tuple[str, ...] = ("429", "502", "503", "reset", "hang", "bad_json"),
                endpoints: tuple[str, ...] = ("*",), **kw: float | str | int) -> FaultPlan:
        """``rate`` spread evenly over ``kinds`` on ``endpoints``."""
        share = rate / len(kinds)
        return cls(rates={e: {k: share for k in kinds} for e in endpoints}, **kw)  # type: ignore[arg-type]

    @classmethod
    def parse(cls, specs: list[str], **kw: float | str | int) -> FaultPlan:
        """Read command-line specs ``[endpoint:]kind=rate`` such as ``get:429=0.1`` or ``reset=0.05``."""
        rates: dict[str, dict[str, float]] = {}
        for spec in specs:
            target, sep, value = spec.partition("=")
            if not sep:
                raise ValueError(f"fault {spec!r} is not [endpoint:]kind=rate")
            endpoint, _, kind = target.rpartition(":")
            try:
                rate = float(value)
            except ValueError:
                raise ValueError(f"fault {spec!r}: rate {value!r} is not a number between 0 and 1") from None
            rates.setdefault(endpoint or "*", {})[kind] = rate
        return cls(rates=rates, **kw)  # type: ignore[arg-type]

    def draw(self, endpoint: str, method: str) -> tuple[str | None, float]:
        """Pick this request's fault (or None) and its latency in seconds."""
        kinds = dict(self.rates.get("*", {}))
        kinds.update(self.rates.get(endpoint, {}))
        if method != "POST":
            kinds.pop("lost", None)
        with self._lock:
            roll = self._random.random()
            latency = (self.latency_ms + self._random.uniform(0, self.jitter_ms)) / 1000.0
        for kind, rate in kinds.items():
            if roll < rate:
                return kind, latency
            roll -= rate
        return None, latency
