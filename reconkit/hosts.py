"""Which host a URL really reaches, and whether that host is CyberSource production.

The decision is made on what the HTTP stack will do, not on the text of a setting: the URL is
prepared exactly as ``requests`` prepares it (urllib3's parser, IDNA encoding, percent-decoding
of unreserved characters). A second, more lenient reading (NFKC, every percent escape decoded,
invisible characters dropped, ideographic full stops as dots) is taken as well, and a URL is
production when *either* reading lands on a ``cybersource.com`` host that is not a known test
host. Refusing a strange custom URL costs a config change; sending a test credit to production
costs real money.
"""

from __future__ import annotations

import contextlib
import re
import unicodedata
from urllib.parse import unquote

import idna
import requests
from urllib3.util import parse_url

__all__ = ["PRODUCTION_DOMAIN", "TEST_HOSTS", "is_production_host", "origin", "production_host", "request_host",
           "same_origin_url"]

PRODUCTION_DOMAIN = "cybersource.com"
TEST_HOSTS = frozenset({"apitest.cybersource.com"})
"""The only ``cybersource.com`` hosts that move no real money."""

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})


def _normalize(host: str) -> str:
    host = unicodedata.normalize("NFKC", host).translate(_DOTS).strip().lower().rstrip(".")
    with contextlib.suppress(idna.IDNAError, UnicodeError, ValueError):  # then the text as it is
        host = idna.encode(host, uts46=True).decode("ascii")
    return host.lower().rstrip(".")


def request_host(url: str) -> str | None:
    """The host ``requests`` connects to for ``url`` (lower-case, no trailing dot), or None when
    ``requests`` would refuse the URL before opening a socket."""
    prepared = requests.PreparedRequest()
    try:
        prepared.prepare_url(url, None)
        host = parse_url(prepared.url).host
    except (requests.RequestException, ValueError):
        return None
    return _normalize(host) if host else None


def _lenient_host(url: str) -> str:
    text = "".join(ch for ch in unicodedata.normalize("NFKC", url)
                   if unicodedata.category(ch) not in ("Cc", "Cf")).strip()
    match = _SCHEME.match(text)
    rest = (text[match.end():] if match else text).lstrip("/\\")
    authority = re.split(r"[/\\?#]", rest, maxsplit=1)[0]
    for _ in range(5):  # double-encoded escapes too
        decoded = unquote(authority)
        if decoded == authority:
            break
        authority = decoded
    authority = re.split(r"[/\\?#]", authority.rpartition("@")[2], maxsplit=1)[0]
    if authority.startswith("["):
        host = authority[1:].partition("]")[0]
    else:
        host = authority.rpartition(":")[0] if authority.count(":") == 1 else authority
    return _normalize(host)


def is_production_host(host: str | None) -> bool:
    """True for ``cybersource.com`` and every host under it except the known test hosts."""
    if not host:
        return False
    host = _normalize(host)
    under = host == PRODUCTION_DOMAIN or host.endswith("." + PRODUCTION_DOMAIN)
    return under and host not in TEST_HOSTS


def production_host(url: str) -> str | None:
    """The production host ``url`` reaches under either reading, or None when it reaches none."""
    for host in (request_host(url), _lenient_host(url)):
        if is_production_host(host):
            return host
    return None


_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` that ``requests`` connects to for ``url``, or None when it would
    refuse the URL (the port is the scheme's default when none is given)."""
    prepared = requests.PreparedRequest()
    try:
        prepared.prepare_url(url, None)
        parts = parse_url(prepared.url)
    except (requests.RequestException, ValueError):
        return None
    scheme = (parts.scheme or "").lower()
    if not parts.host or scheme not in _DEFAULT_PORTS:
        return None
    return scheme, _normalize(parts.host), parts.port or _DEFAULT_PORTS[scheme]


def same_origin_url(base_url: str, path: str) -> str:
    """``base_url + path``, once the URL the HTTP stack prepares from it is proved to reach the
    base URL's scheme, host and port.

    Raises
    ------
    CreditShapeError
        Naming the path and where it would have gone; nothing is sent.
    """
    from .errors import CreditShapeError

    url = base_url + path
    there, here = origin(url), origin(base_url)
    if there is None or there != here:
        where = f"{there[0]}://{there[1]}:{there[2]}" if there else "nowhere requests would send it"
        raise CreditShapeError(f"the path {path!r} would reach {where}, not {base_url}; it was not followed and "
                               "nothing was sent")
    return url
