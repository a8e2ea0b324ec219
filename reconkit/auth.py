"""Request signing: HTTP Signature and JWT (shared secret), as pure functions.

Both follow the official SDK byte for byte (see the reference doc's vectors A, B and D).
:class:`CyberSourceAuth` plugs them into ``requests`` so that the bytes signed are exactly the
bytes sent.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from email.utils import formatdate
from typing import Any
from urllib.parse import urlsplit

import requests

from .config import Config

__all__ = ["CyberSourceAuth", "digest", "http_date", "jwt_token", "sign_request", "signing_string"]

_BODY_METHODS = ("POST", "PUT", "PATCH")


def http_date(timestamp: float | None = None) -> str:
    """An RFC 7231 date such as ``Fri, 10 Feb 2023 21:12:52 GMT``."""
    return formatdate(time.time() if timestamp is None else timestamp, usegmt=True)


def digest(body: bytes | None) -> str:
    """``SHA-256=`` + base64 of the plain SHA-256 of the exact body bytes."""
    return "SHA-256=" + base64.b64encode(hashlib.sha256(body or b"").digest()).decode("ascii")




def signing_string(headers: dict[str, str], names: list[str]) -> str:
    """The lines ``name: value`` joined by ``\\n``; ``headers`` keys are the lower-case names."""
    return "\n".join(f"{name}: {headers[name]}" for name in names)


def sign_request(config: Config, method: str, path: str, body: bytes | None, date: str) -> dict[str, str]:
    """Return the HTTP Signature headers for one request.

    Parameters
    ----------
    config : Config
    method : str
        The HTTP method, any case.
    path : str
        The request target, with its query string if any (``/pts/v2/credits``).
    body : bytes or None
        Exactly the bytes that will be sent.
    date : str
        An RFC 7231 date; the same value goes in the ``Date`` header.

    Returns
    -------
    dict
        ``Host``, ``Date``, ``v-c-merchant-id``, ``Digest`` (POST/PUT/PATCH only) and ``Signature``.
    """
    method = method.upper()
    sign = {
        "host": config.host,
        "date": date,
        "request-target": f"{method.lower()} {path}",
        "v-c-merchant-id": config.signing_merchant_id,
    }
    names = ["host", "date", "request-target"]
    headers = {"Host": config.host, "Date": date, "v-c-merchant-id": config.merchant_id}
    if method in _BODY_METHODS:
        sign["digest"] = headers["Digest"] = digest(body)
        names.append("digest")
    names.append("v-c-merchant-id")
    signature = base64.b64encode(config.secret_key.hmac_sha256(signing_string(sign, names).encode("utf-8")))
    signature = signature.decode("ascii")
    headers["Signature"] = (
        f'keyid="{config.key_id}", algorithm="HmacSHA256", headers="{" ".join(names)}", signature="{signature}"'
    )
    return headers


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _compact(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")


def jwt_token(config: Config, method: str, path: str, body: bytes | None, *, now: int | None = None,
              jti: str | None = None) -> str:
    """A shared-secret (HS256) JWT for one request, with the SDK's claims.

    The token expires 120 seconds after ``now``; POST/PUT/PATCH bodies are bound to it by a
    ``digest`` claim (base64 SHA-256 without the ``SHA-256=`` prefix).
    """
    method = method.upper()
    iat = int(time.time()) if now is None else int(now)
    claims: dict[str, Any] = {
        "iat": iat,
        "exp": iat + 120,
        "request-method": method,
        "request-host": config.host,
        "request-resource-path": path,
        "iss": config.signing_merchant_id,
        "jti": jti or str(uuid.uuid4()),
        "v-c-jwt-version": "2",
        "v-c-merchant-id": config.merchant_id,
    }
    if method in _BODY_METHODS:
        claims["digest"] = digest(body).removeprefix("SHA-256=")
        claims["digestAlgorithm"] = "SHA-256"
    header = {"kid": config.key_id, "alg": "HS256", "typ": "JWT"}
    signing_input = f"{_b64url(_compact(header))}.{_b64url(_compact(claims))}"
    mac = config.secret_key.hmac_sha256(signing_input.encode("ascii"))
    return f"{signing_input}.{_b64url(mac)}"


def auth_headers(config: Config, method: str, path: str, body: bytes | None, *,
                 date: str | None = None) -> dict[str, str]:
    """The authentication headers for ``config.auth_type`` (signature or bearer JWT)."""
    if config.auth_type == "jwt":
        return {"Host": config.host, "v-c-merchant-id": config.merchant_id,
                "Authorization": f"Bearer {jwt_token(config, method, path, body)}"}
    return sign_request(config, method, path, body, date or http_date())


class CyberSourceAuth(requests.auth.AuthBase):
    """A ``requests`` auth hook that signs the prepared request's exact body bytes."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        parts = urlsplit(request.url or "")
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        body = request.body
        if isinstance(body, str):
            body = body.encode("utf-8")
        request.headers.update(auth_headers(self.config, request.method or "GET", target, body))
        return request

    def __repr__(self) -> str:
        return f"CyberSourceAuth(merchant_id={self.config.merchant_id!r}, auth_type={self.config.auth_type!r})"
