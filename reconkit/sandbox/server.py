"""The sandbox's HTTP server: CyberSource's protocol on loopback, with its authentication."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import socket
import ssl
import struct
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from .. import mle as _mle
from ..config import Config
from ..errors import FieldError, MessageEncryptionError
from .faults import PROXY_ERRORS, FaultPlan
from .keys import SandboxKeyFiles, SandboxKeys
from .reporting import Answer, ReportingDesk
from .state import RejectedError, SandboxState

__all__ = ["Sandbox", "SandboxCredentials", "SandboxKeyFiles"]

_SIG_PARAM = re.compile(r'(\w+)="([^"]*)"')
_ROUTES = [
    ("POST", re.compile(r"^/pts/v2/credits/?$"), "create"),
    ("GET", re.compile(r"^/pts/v2/credits/(\d{1,26})/?$"), "get"),
    ("POST", re.compile(r"^/pts/v2/credits/(\d{1,26})/voids/?$"), "void"),
    ("GET", re.compile(r"^/tss/v2/transactions/(\d{1,26})/?$"), "tss"),
    ("POST", re.compile(r"^/tss/v2/searches/?$"), "search"),
    ("GET", re.compile(r"^/reporting/v3/report-downloads/?$"), "report_download"),
    ("GET", re.compile(r"^/reporting/v3/reports/?$"), "reports"),
    ("GET", re.compile(r"^/reporting/v3/purchase-refund-details/?$"), "purchase_refund_details"),
    ("GET", re.compile(r"^/reporting/v3/report-definitions/?$"), "report_definitions"),
    ("GET", re.compile(r"^/reporting/v3/report-definitions/([^/]{1,256})/?$"), "report_definition"),
    ("PUT", re.compile(r"^/reporting/v3/report-subscriptions/?$"), "subscribe"),
    ("GET", re.compile(r"^/reporting/v3/report-subscriptions/?$"), "subscriptions"),
    ("GET", re.compile(r"^/reporting/v3/report-subscriptions/([^/]{1,256})/?$"), "subscription"),
    ("DELETE", re.compile(r"^/reporting/v3/report-subscriptions/([^/]{1,256})/?$"), "unsubscribe"),
]
_REPORTING = ("report_download", "reports", "purchase_refund_details", "report_definitions", "report_definition",
              "subscribe", "subscriptions", "subscription", "unsubscribe")
_MAX_SKEW = timedelta(minutes=15)
_BODY_METHODS = ("POST", "PUT", "PATCH")
_MAX_BODY = 1 << 20
"""The largest body read (1 MiB); CyberSource publishes no limit, a credit request is ~1 KB."""
_BODY_TIMEOUT = 10.0
"""Seconds a declared body may take to arrive before the request is refused."""
_LINGER_SECONDS = 1.0
"""How long an unread body is drained after a refusal, so that the refusal reaches the client."""
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_JWT_ALGORITHMS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
_JWT_LEEWAY = 60
"""Clock skew tolerated around ``iat`` and ``exp``, seconds."""
_JWT_MAX_LIFETIME = 3600
"""A token living longer than this is refused: its ``jti`` would have to be remembered that long."""
_MLE_MODES = ("optional", "required")
_MLE_REQUIRED = "JWT with message-level encryption is required (CyberSource's 2026 mandate)"
_MAX_SEARCH_LIMIT = 2500
"""The largest ``limit`` a search may ask for (documented)."""


@dataclass(frozen=True)
class SandboxCredentials:
    """The sandbox merchant's credentials (simulated money only)."""

    merchant_id: str
    key_id: str
    secret_key: str = field(repr=False)

    @classmethod
    def for_seed(cls, seed: int, merchant_id: str = "reconkit_sandbox") -> SandboxCredentials:
        """Deterministic credentials for a seed."""
        secret = base64.b64encode(hashlib.sha256(f"reconkit-sandbox-secret-{seed}".encode()).digest()).decode()
        key_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"reconkit-sandbox-key-{seed}"))
        return cls(merchant_id, key_id, secret)


def _error_body(status: int, reason: str, message: str, moment: datetime) -> dict[str, Any]:
    """CyberSource's error shapes: ``errorInformation`` for 404/405, flat fields for 400/5xx."""
    when = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if status in (404, 405):
        return {"submitTimeUtc": when, "status": str(status), "errorInformation": {"reason": reason,
                                                                                  "message": message}}
    return {"submitTimeUtc": when, "status": "SERVER_ERROR" if status >= 500 else "INVALID_REQUEST",
            "reason": reason, "message": message}


def _not_utf8(value: Any) -> str | None:
    """The dotted path of the first text in a parsed JSON body that UTF-8 cannot encode (JSON's
    ``"\\ud800"`` escape makes a lone surrogate), or None."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in items:
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and not _encodable(key):
                return path or "body"
            if isinstance(child, str) and not _encodable(child):
                return where
            stack.append((where, child))
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _signed_header_lists(method: str) -> list[list[str]]:
    """The ``headers=`` lists CyberSource documents for ``method``, in order: ``date``, or
    ``v-c-date`` for clients that cannot set ``Date`` (reference §3.1)."""
    digest = ["digest"] if method in _BODY_METHODS else []
    return [["host", date, "request-target", *digest, "v-c-merchant-id"] for date in ("date", "v-c-date")]


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, delayed ACKs add ~40 ms each.
    disable_nagle_algorithm = True
    server: _Server
    # Per request (reset by _dispatch): the key an answer is encrypted to, and whether the body was.
    _response_mle: tuple[str, RSAPublicKey] | None = None
    _request_encrypted = False

    def log_message(self, format: str, *args: Any) -> None:
        return

    # --- plumbing ---------------------------------------------------------------------
    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None, *,
              content_type: str | None = None) -> None:
        self._answered = True
        data = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode("utf-8")
        encrypted = self._response_mle is not None and not isinstance(body, bytes)
        if encrypted:
            kid, key = self._response_mle  # type: ignore[misc]
            data = _mle.envelope("encryptedResponse", _mle.encrypt_compact(data, key, kid))
        if self._response_mle is not None or self._request_encrypted:
            self.server.sandbox._log_mle(self.command, self.path, self._request_encrypted, encrypted)
        self.send_response(status)
        self.send_header("Content-Type", content_type or ("text/html" if isinstance(body, bytes)
                                                          else "application/hal+json"))
        self.send_header("Content-Length", str(len(data)))
        self.send_header("v-c-correlation-id", self.server.sandbox._correlation_id())
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _reset(self) -> None:
        # SO_LINGER 0 makes close() send a RST, which is what a dropped connection looks like.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def _hang(self) -> None:
        self.server.sandbox._stopping.wait(self.server.sandbox.faults.hang_seconds)
        self._reset()

    def _truncated(self, status: int, body: Any) -> None:
        self._answered = True
        data = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/hal+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self._reset()

    def _error(self, status: int, reason: str, message: str) -> None:
        self._send(status, _error_body(status, reason, message, self.server.sandbox.state.now()))

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    # --- authentication ---------------------------------------------------------------
    def _authenticate(self, method: str) -> tuple[str | None, str]:
        """Check everything but the body: ``(None, digest)`` when authentic, else ``(reason, "")``.

        ``digest`` is the base64 SHA-256 the signature binds the body to (empty for GET): the
        body is read only after the headers proved who sent it, then compared with it.
        """
        authorization = self.headers.get("Authorization", "")
        if authorization.startswith("Bearer "):
            return self._verify_jwt(method, authorization[len("Bearer "):])
        sandbox = self.server.sandbox
        if sandbox.mle == "required":
            return f"HTTP Signature is not accepted: {_MLE_REQUIRED}", ""
        creds = sandbox.credentials
        merchant = self.headers.get("v-c-merchant-id")
        if merchant != creds.merchant_id:
            return "unknown merchant id", ""
        signature = self.headers.get("Signature")
        if not signature:
            return "no Signature or Authorization header", ""
        params = dict(_SIG_PARAM.findall(signature))
        if params.get("keyid") != creds.key_id:
            return "unknown key id", ""
        if params.get("algorithm") != "HmacSHA256":
            return "unsupported algorithm", ""
        names = params.get("headers", "").split()
        date = self.headers.get("Date") or self.headers.get("v-c-date")
        try:
            sent = parsedate_to_datetime(date or "")
        except (TypeError, ValueError):
            return "missing or malformed Date", ""
        if sent.tzinfo is None:
            # RFC 5322's "-0000" means "time zone unknown"; an HTTP date is always GMT.
            return "missing or malformed Date", ""
        if abs(datetime.now(UTC) - sent) > _MAX_SKEW:
            return "Date is more than 15 minutes off", ""
        if "(request-target)" in names:
            # CyberSource refuses the parenthesised name since 22 April 2024 (reference §3.1).
            return "(request-target) is no longer accepted; sign request-target", ""
        if names not in _signed_header_lists(method):
            return (f"signed headers must be exactly {' '.join(_signed_header_lists(method)[0])!r} "
                    "(or with v-c-date for date)"), ""
        lines = []
        for name in names:
            if name == "request-target":
                value = f"{method.lower()} {self.path}"
            elif name == "v-c-merchant-id":
                value = sandbox.portfolio_id if sandbox.portfolio_id else merchant
            else:
                value = self.headers.get(name)
                if value is None:
                    return f"signed header {name} is missing", ""
            lines.append(f"{name}: {value}")
        key = base64.b64decode(creds.secret_key)
        mac = base64.b64encode(hmac.new(key, "\n".join(lines).encode(), hashlib.sha256).digest()).decode()
        if not hmac.compare_digest(mac.encode(), params.get("signature", "").encode()):
            return "signature mismatch", ""
        return None, (self.headers.get("Digest") or "").removeprefix("SHA-256=")

    def _verify_jwt(self, method: str, token: str) -> tuple[str | None, str]:
        """CyberSource's shared-secret JWT: the merchant travels in the ``v-c-merchant-id`` claim.

        The HTTP headers it requires are only ``Host``, ``Content-Type`` and ``Authorization``
        (the official SDK sends no ``v-c-merchant-id`` header in JWT mode); a header that is sent
        must name the same merchant as the claim.
        """
        sandbox = self.server.sandbox
        creds = sandbox.credentials
        parts = token.split(".")
        if len(parts) != 3 or not all(_B64URL.fullmatch(part) for part in parts):
            return "malformed JWT", ""
        head, claims_part, sig = parts
        try:
            header = json.loads(_b64url_decode(head))
            claims = json.loads(_b64url_decode(claims_part))
            signature = _b64url_decode(sig)
        except (ValueError, UnicodeDecodeError):
            return "malformed JWT", ""
        if not isinstance(header, dict) or not isinstance(claims, dict):
            return "malformed JWT", ""
        if header.get("alg") == "RS256":
            keys = sandbox._keys
            if keys is None or header.get("kid") != keys.merchant_kid:
                return "unknown JWT key (kid is not the serial number of the merchant's certificate)", ""
            try:
                jws.deserialize_compact(token, RSAKey.import_key(keys.merchant_key.public_key()),
                                        algorithms=["RS256"])
            except (JoseError, ValueError):
                return "JWT signature mismatch", ""
        else:
            digestmod = _JWT_ALGORITHMS.get(str(header.get("alg")))
            if digestmod is None or header.get("kid") != creds.key_id:
                return "unknown JWT key or algorithm", ""
            mac = hmac.new(base64.b64decode(creds.secret_key), f"{head}.{claims_part}".encode(), digestmod).digest()
            if not hmac.compare_digest(mac, signature):
                return "JWT signature mismatch", ""
        issued, expires, jti = claims.get("iat"), claims.get("exp"), claims.get("jti")
        if not all(type(v) is int for v in (issued, expires)) or not isinstance(jti, str) or not jti:
            return "JWT claims iat, exp (integers) and jti (text) are required", ""
        merchant = claims.get("v-c-merchant-id")
        if merchant != creds.merchant_id or claims.get("iss") != (sandbox.portfolio_id or merchant):
            return "unknown merchant id", ""
        if self.headers.get("v-c-merchant-id", merchant) != merchant:
            return "v-c-merchant-id header disagrees with the JWT", ""
        now = int(time.time())
        if not (issued - _JWT_LEEWAY <= now <= expires + _JWT_LEEWAY) or expires - issued > _JWT_MAX_LIFETIME:
            return "JWT expired", ""
        if (claims.get("request-method") != method or claims.get("request-resource-path") != self.path
                or claims.get("request-host") != self.headers.get("Host")):
            return "JWT does not match the request", ""
        digest = claims.get("digest", "")
        if method in _BODY_METHODS and (not isinstance(digest, str) or claims.get("digestAlgorithm") != "SHA-256"):
            return "JWT digest does not match the body", ""
        response_kid = claims.get("v-c-response-mle-kid")
        found = _mle.operation(method, self.path)
        capable = found is not None and found[1] != "false"
        key = None
        if response_kid is not None:
            key = (sandbox._keys.response_public_keys() if sandbox._keys else {}).get(str(response_kid))
            if key is None:
                return f"v-c-response-mle-kid {response_kid!r} is no response key of this merchant", ""
        elif sandbox.mle == "required" and capable:
            return f"no v-c-response-mle-kid claim: {_MLE_REQUIRED}", ""
        if not sandbox._spend_jti(jti, expires + _JWT_LEEWAY):
            return "JWT jti was already used", ""
        if key is not None and capable:
            # Set only once the request is authentic; a refusal of the body (digest) clears it again.
            self._response_mle = (str(response_kid), key)
        return None, digest if method in _BODY_METHODS else ""

    # --- routing ----------------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        self._answered = self._lingering = False
        self._response_mle = None
        self._request_encrypted = False
        try:
            self._serve(method)
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception:  # the last line of defence: every request gets an answer
            self.close_connection = True
            if not self._answered:
                self._error(500, "SYSTEM_ERROR", "Error - General system failure.")

    def _content_length(self, method: str) -> tuple[int, tuple[int, str, str] | None]:
        """The declared body length, or the 400/411 refusal of a length that cannot be trusted."""
        if self.headers.get("Transfer-Encoding"):
            return 0, (411, "LENGTH_REQUIRED", "Transfer-Encoding is not supported; send Content-Length")
        declared = self.headers.get_all("Content-Length") or []
        if not declared:
            if method in _BODY_METHODS:
                return 0, (411, "LENGTH_REQUIRED", "Content-Length is required")
            return 0, None
        if len(set(declared)) != 1 or not declared[0].strip().isdigit() or not declared[0].strip().isascii():
            return 0, (400, "INVALID_REQUEST", "Content-Length must be one non-negative integer")
        return int(declared[0]), None

    def _read_body(self, length: int) -> bytes | None:
        """Exactly ``length`` bytes, or None when the client sends fewer within the timeout."""
        if not length:
            return b""
        self.connection.settimeout(_BODY_TIMEOUT)
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            return None
        finally:
            self.connection.settimeout(None)
        return body if len(body) == length else None

    def _refuse(self, status: int, reason: str, message: str, *, unread: bool) -> None:
        # A body left unread would be parsed as the next request: close the connection instead.
        if unread:
            self._discard_unread()
        self._error(status, reason, message)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Protocol-level refusals (bad request line, unknown method, oversized headers) in
        CyberSource's JSON error shape rather than http.server's HTML page."""
        self._answered = True
        self.close_connection = True
        # An unparsable request line leaves the version at HTTP/0.9, which would suppress the status line.
        self.request_version = self.protocol_version
        phrase = HTTPStatus(code).phrase if code in HTTPStatus._value2member_map_ else "Error"
        reason = phrase.upper().replace(" ", "_").replace("-", "_")
        data = json.dumps(_error_body(code, reason, message or phrase, self.server.sandbox.state.now()),
                          separators=(",", ":")).encode("utf-8")
        self.send_response(code, message)
        self.send_header("Content-Type", "application/hal+json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def parse_request(self) -> bool:
        # An HTTP/0.9 request line ("GET /") has no headers to wait for: http.server would read
        # headers that never come and hold the connection. Refuse it before reading any.
        self.requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        words = self.requestline.split()
        if len(words) == 2:
            self.command, self.path = words
            self.request_version, self.close_connection = "HTTP/0.9", True
            self.send_error(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, "HTTP/0.9 is not supported; send HTTP/1.1")
            return False
        return super().parse_request()

    def handle_expect_100(self) -> bool:
        # Invite only a body the sandbox will read; otherwise the final answer comes instead of 100.
        declared = (self.headers.get("Content-Length") or "").strip()
        if declared.isascii() and declared.isdigit() and int(declared) <= _MAX_BODY:
            return super().handle_expect_100()
        return True

    def _discard_unread(self) -> None:
        self.close_connection = True
        self._lingering = True

    def finish(self) -> None:
        super().finish()
        if getattr(self, "_lingering", False):
            self._linger()

    def _linger(self) -> None:
        # Closing with unread bytes makes the kernel send a RST, which can destroy the answer
        # before the client reads it: half-close, then drain a bounded amount first.
        try:
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(_LINGER_SECONDS)
            left = _MAX_BODY
            while left > 0 and (chunk := self.connection.recv(min(65536, left))):
                left -= len(chunk)
        except OSError:
            pass

    def _serve(self, method: str) -> None:
        sandbox = self.server.sandbox
        length, refusal = self._content_length(method)
        if refusal:
            return self._refuse(*refusal, unread=True)
        try:
            path = urlsplit(self.path).path
        except ValueError:  # e.g. "http://[" : not a request target
            return self._refuse(400, "INVALID_REQUEST", "The request target is not a URL path", unread=bool(length))
        endpoint, match = None, None
        for route_method, pattern, name in _ROUTES:
            found = pattern.match(path)
            if found and route_method == method:
                endpoint, match = name, found
                break
        sandbox._log(method, self.path, endpoint)
        fault, latency = sandbox.faults.draw(endpoint or "", method)
        if latency:
            time.sleep(latency)
        if endpoint is None:
            return self._refuse(404, "NOT_FOUND", "The requested resource does not exist.", unread=bool(length))
        reason, bound_digest = self._authenticate(method)
        if reason:
            sandbox._record_auth_failure(reason)
            if length:
                self._discard_unread()
            return self._send(401, {"response": {"rmsg": "Authentication Failed"}})
        if length > _MAX_BODY:
            return self._refuse(413, "REQUEST_TOO_LARGE", f"The request body exceeds {_MAX_BODY} bytes",
                                unread=True)
        body = self._read_body(length)
        if body is None:
            return self._refuse(400, "INVALID_REQUEST", "The body is shorter than its Content-Length", unread=True)
        if method in _BODY_METHODS:
            actual = base64.b64encode(hashlib.sha256(body).digest()).decode()
            if not hmac.compare_digest(actual.encode(), bound_digest.encode()):
                jwt = self.headers.get("Authorization", "").startswith("Bearer ")
                reason = "JWT digest does not match the body" if jwt else "Digest does not match the body"
                sandbox._record_auth_failure(reason)
                self._response_mle = None  # an authentication failure is answered in clear
                return self._send(401, {"response": {"rmsg": "Authentication Failed"}})
        if method in _BODY_METHODS:
            body, problem = self._open_envelope(method, body)
            if problem:
                return self._error(400, "INVALID_REQUEST", problem)
        if fault == "429":
            return self._send(429, {"status": "TOO_MANY_REQUESTS", "reason": "TOO_MANY_REQUESTS",
                                    "message": "Too many requests; retry later"},
                              {"Retry-After": sandbox.faults.retry_after})
        if fault == "502":
            return self._error(502, "SYSTEM_ERROR", "Error - General system failure.")
        if fault == "503":
            return self._error(503, "SERVICE_UNAVAILABLE", "The service is temporarily unavailable")
        if fault == "reset":
            return self._reset()
        if fault == "hang":
            return self._hang()
        if fault == "bad_json" and method == "GET":
            return self._send(200, b"<html><body>502 Bad Gateway</body></html>")
        proxy = PROXY_ERRORS.get(fault or "")
        if proxy is not None and not proxy.processed:
            return self._send(proxy.status, proxy.body)
        content_type = None
        try:
            status, payload = self._handle(endpoint, match, body)
        except RejectedError as rejection:
            status, payload = rejection.http_status, rejection.body
        if proxy is not None:
            return self._send(proxy.status, proxy.body)
        if isinstance(payload, Answer):
            status, payload, content_type = payload.status, payload.body, payload.content_type
        if fault == "lost":
            return self._hang()
        if fault == "truncated":
            return self._truncated(status, payload)
        if fault == "bad_json":
            return self._send(status, b"<html><body>502 Bad Gateway</body></html>")
        self._send(status, payload, content_type=content_type)

    def _open_envelope(self, method: str, body: bytes) -> tuple[bytes, str | None]:
        """The plaintext of an ``{"encryptedRequest": ...}`` body, or the body as sent; with the
        refusal of an envelope that does not decrypt, or of a plain body ``mle="required"`` forbids."""
        sandbox = self.server.sandbox
        token = _mle.encrypted_request_token(body)
        found = _mle.operation(method, self.path)
        capable = found is not None and found[1] != "false"
        if token is None:
            if body and capable and sandbox.mle == "required":
                return body, f"the body must be encrypted (encryptedRequest): {_MLE_REQUIRED}"
            return body, None
        if not capable or not self.headers.get("Authorization", "").startswith("Bearer "):
            return body, "encryptedRequest is accepted only with JWT, on an API that supports message-level encryption"
        keys = sandbox._keys
        if keys is None:
            return body, "encryptedRequest names no key of this sandbox (export its keys first)"
        try:
            plaintext, header = _mle.decrypt_compact(token, keys.mle_key)
        except MessageEncryptionError as exc:
            return body, f"encryptedRequest: {exc}"
        if header.get("kid") != keys.mle_kid:
            return body, f"encryptedRequest kid {header.get('kid')!r} is not CyberSource's MLE certificate"
        self._request_encrypted = True
        return plaintext, None

    def _handle(self, endpoint: str, match: re.Match[str] | None, body: bytes) -> tuple[int, Any]:
        sandbox = self.server.sandbox
        state = sandbox.state
        parsed: Any = {}
        if body:
            try:
                parsed = json.loads(body)
            except (ValueError, RecursionError):  # not JSON, not UTF-8, a 4300-digit number, nested too deep
                raise RejectedError(400, {"submitTimeUtc": state.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
                                          "status": "INVALID_REQUEST", "reason": "INVALID_DATA",
                                          "message": "The request body is not valid JSON",
                                          "details": [{"field": "body", "reason": "INVALID_DATA"}]}) from None
            bad_text = _not_utf8(parsed)
            if bad_text is not None:
                raise RejectedError(400, {"submitTimeUtc": state.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
                                          "status": "INVALID_REQUEST", "reason": "INVALID_DATA",
                                          "message": f"{bad_text} is not Unicode text (a lone surrogate)",
                                          "details": [{"field": bad_text, "reason": "INVALID_DATA"}]})
            if not isinstance(parsed, dict):
                raise RejectedError(400, {"status": "INVALID_REQUEST", "reason": "INVALID_DATA",
                                      "message": "The request body must be a JSON object",
                                      "details": [{"field": "body", "reason": "INVALID_DATA"}]})
        if endpoint in _REPORTING:
            answer = sandbox.reporting.answer(endpoint, parse_qs(urlsplit(self.path).query), parsed,
                                              match.group(1) if match and match.groups() else "",
                                              self.headers.get("Accept", "text/csv"))
            return answer.status, answer
        credit_id = match.group(1) if match and match.groups() else ""
        not_found = _error_body(404, "NOT_FOUND", "The requested resource does not exist.", state.now())
        if endpoint == "create":
            status, payload, _ = state.create_credit(parsed)
            return status, payload
        if endpoint == "get":
            if sandbox.self_link_status == 405:
                return 405, _error_body(405, "METHOD_NOT_ALLOWED", "GET is not supported for this resource.",
                                        state.now())
            found = state.get_credit(credit_id)
            return (200, found) if found else (404, not_found)
        if endpoint == "void":
            void = state.void_credit(credit_id, parsed)
            return (201, void) if void else (404, not_found)
        if endpoint == "tss":
            details = state.transaction_details(credit_id)
            if details is None:
                return 404, {"errors": [{"type": "notFound", "message": "The specified resource not found in the "
                                                                        "system. Retry later."}]}
            return 200, details
        return self._search(parsed)

    def _search(self, parsed: dict[str, Any]) -> tuple[int, Any]:
        """``POST /tss/v2/searches``: every body field checked first, each refusal naming its field."""
        state = self.server.sandbox.state
        query, limit, offset = parsed.get("query", ""), parsed.get("limit", 20), parsed.get("offset", 0)
        sort, zone_name = parsed.get("sort"), parsed.get("timezone") or "UTC"
        problems: list[tuple[str, str]] = []
        if not isinstance(query, str):
            problems.append(("query", "query must be text"))
        if type(limit) is not int or not 1 <= limit <= _MAX_SEARCH_LIMIT:
            problems.append(("limit", f"limit must be a whole number from 1 to {_MAX_SEARCH_LIMIT}"))
        if type(offset) is not int or offset < 0:
            problems.append(("offset", "offset must be a whole number, 0 or more"))
        if sort is not None and not isinstance(sort, str):
            problems.append(("sort", "sort must be text such as 'submitTimeUtc:desc'"))
        zone: tzinfo = UTC
        try:
            zone = ZoneInfo(zone_name) if isinstance(zone_name, str) else None  # type: ignore[assignment]
        except (ZoneInfoNotFoundError, ValueError):
            zone = None  # type: ignore[assignment]
        if zone is None:
            problems.append(("timezone", f"timezone {zone_name!r} is not a tz-database name"))
        if not problems:
            try:
                total, summaries = state.search(query, limit=limit, offset=offset, sort=sort, zone=zone)
            except FieldError as error:
                problems.append((error.field, str(error)))
        if problems:
            raise RejectedError(400, {"submitTimeUtc": state.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
                                      "status": "INVALID_REQUEST", "reason": "INVALID_DATA",
                                      "message": "Declined - " + "; ".join(message for _, message in problems),
                                      "details": [{"field": name, "reason": "INVALID_DATA"}
                                                  for name, _ in problems]})
        return 201, {"searchId": str(uuid.uuid4()), "save": bool(parsed.get("save", False)),
                     "name": parsed.get("name"), "timezone": zone_name, "query": query, "offset": offset,
                     "limit": limit, "sort": sort, "count": len(summaries), "totalCount": total,
                     "submitTimeUtc": state.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
                     "_embedded": {"transactionSummaries": summaries}}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True
    sandbox: Sandbox

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that leaves mid-handshake or mid-request is not the sandbox's error.
        if not isinstance(sys.exc_info()[1], (ssl.SSLError, ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


PROFILES = ("seed", "live_like")
_LIVE_INDEX_LAG = timedelta(minutes=2)
_SEED_TSS_DELAY = timedelta(minutes=5)


def _profile_settings(profile: str, self_link_status: int | None, tss_delay: timedelta | None,
                      index_lag: timedelta | None) -> tuple[int, timedelta, timedelta]:
    """The self-link status, Transaction Details lag and search lag of a profile."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}, not {profile!r}")
    if profile == "seed":
        if index_lag is not None:
            raise ValueError("index_lag applies to profile='live_like'; the seed profile's lag is tss_delay")
        status = 200 if self_link_status is None else self_link_status
        return status, _SEED_TSS_DELAY if tss_delay is None else tss_delay, timedelta(0)
    if tss_delay is not None:
        raise ValueError("tss_delay applies to profile='seed'; the live_like profile's lag is index_lag")
    if self_link_status not in (None, 405):
        raise ValueError(f"profile='live_like' serves no self link (405); self_link_status={self_link_status} "
                         "contradicts it")
    lag = _LIVE_INDEX_LAG if index_lag is None else index_lag
    if lag < timedelta(0):
        raise ValueError(f"index_lag must be 0 or more, not {lag}")
    return 405, lag, lag


class Sandbox:
    """A local, stateful double of CyberSource's test environment.

    Parameters
    ----------
    port : int
        0 picks a free port on ``host``.
    host : str
    seed : int
        Credentials, ids and faults are deterministic from it.
    start : datetime, optional
        Freeze the sandbox clock at this instant (it moves only with :meth:`advance`);
        by default it starts now and ticks.
    db : str
        ``":memory:"`` (default) or a SQLite file that survives restarts.
    tss_delay : timedelta, optional
        The ``"seed"`` profile's lag: Transaction Details answers 404 this long (sandbox time)
        after a credit's creation; 5 minutes by default.
    self_link_status : int, optional
        200, or 405 to act like a live API whose self link does not answer GETs. By default the
        profile's: 200 for ``"seed"``, 405 for ``"live_like"``.
    profile : {"seed", "live_like"}
        ``"seed"`` (the default) is the seed document's sandbox: the self link answers 200,
        Transaction Details lags creation by ``tss_delay`` and a search sees a credit at once.
        ``"live_like"`` acts out what CyberSource documents: no GET on a credit (the self link
        answers 405), and both Transaction Details and the transaction search index a credit only
        ``index_lag`` after its creation (404 and absent from search results before).
    index_lag : timedelta, optional
        The ``"live_like"`` indexing lag (sandbox time); two minutes by default, the lag the
        Transaction Details page warns of. Refused with the ``"seed"`` profile, whose lag is
        ``tss_delay``.
    faults : FaultPlan, optional
    portfolio_id : str, optional
        Expect MetaKey signatures from this portfolio.
    credentials : SandboxCredentials, optional
        Accept these instead of the seed's (e.g. the reference doc's test-vector merchant).
    id_salt : str
        See :class:`~reconkit.sandbox.state.SandboxState`; set when several processes share ``db``.
    report_ready_after : timedelta
        How long after its day ends (sandbox time) a daily report can be downloaded.
    report_queued_for : timedelta
        How long of that a report is ``QUEUED`` before it is ``RUNNING``.
    tls : ssl.SSLContext, optional
        Serve HTTPS with this server-side context (e.g. a throwaway self-signed certificate);
        :attr:`url` then starts with ``https://``.
    mle : {"optional", "required"}
        Message-level encryption. ``"optional"`` (the credits API's status today) takes encrypted
        and plain bodies and encrypts an answer when the JWT asks (``v-c-response-mle-kid``).
        ``"required"`` acts out the 2026 mandate: HTTP Signature is refused, and every call to an
        MLE API must send its body encrypted and ask for an encrypted answer; :attr:`config`
        is then JWT (P12) with MLE both ways.
    keys_dir : str, optional
        Where :attr:`key_files` writes the P12 and MLE keys (a private temporary folder, removed
        by :meth:`stop`, when not given).

    Examples
    --------
    >>> with Sandbox() as sb:                                   # doctest: +SKIP
    ...     credit = sb.client().create_credit("10.00", "USD", card={...})
    """

    def __init__(self, *, port: int = 0, host: str = "127.0.0.1", seed: int = 0, start: datetime | None = None,
                 db: str = ":memory:", tss_delay: timedelta | None = None,
                 self_link_status: int | None = None, profile: str = "seed", index_lag: timedelta | None = None,
                 faults: FaultPlan | None = None, portfolio_id: str | None = None,
                 cutoff: Any = None, merchant_id: str = "reconkit_sandbox",
                 credentials: SandboxCredentials | None = None, id_salt: str = "",
                 report_ready_after: timedelta = timedelta(hours=2),
                 report_queued_for: timedelta = timedelta(minutes=30), tls: ssl.SSLContext | None = None,
                 mle: str = "optional", keys_dir: str | None = None) -> None:
        from datetime import time as _time

        if mle not in _MLE_MODES:
            raise ValueError(f"mle must be one of {', '.join(_MLE_MODES)}, not {mle!r}")
        self_link_status, tss_delay, search_lag = _profile_settings(profile, self_link_status, tss_delay, index_lag)
        self.profile = profile
        self.mle = mle
        self._keys: SandboxKeys | None = None
        self._key_files: SandboxKeyFiles | None = None
        self._keys_dir = keys_dir
        self._keys_tmp: Any = None
        self.mle_log: list[tuple[str, str, bool, bool]] = []
        """(method, path, request encrypted, answer encrypted) of every call that used MLE."""

        self.host = host
        self.port = port
        self.seed = seed
        self.credentials = credentials or SandboxCredentials.for_seed(seed, merchant_id)
        merchant_id = self.credentials.merchant_id
        self.portfolio_id = portfolio_id
        self.tls = tls
        self.self_link_status = self_link_status
        self.faults = faults or FaultPlan(seed=seed)
        self.state = SandboxState(db, seed=seed, start=start, merchant_id=merchant_id,
                                  cutoff=cutoff or _time(0, 0), tss_delay=tss_delay, id_salt=id_salt,
                                  search_lag=search_lag)
        self.reporting = ReportingDesk(self.state, ready_after=report_ready_after, queued_for=report_queued_for)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._log_lock = threading.Lock()
        self._correlation = 0
        self.requests: list[tuple[str, str, str | None]] = []
        self.auth_failures: list[str] = []
        self._spent_jtis: dict[str, float] = {}

    # --- lifecycle --------------------------------------------------------------------
    def start(self) -> Sandbox:
        """Start serving in a background thread; returns self."""
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server((self.host, self.port), _Handler)
        self._server.sandbox = self
        if self.tls is not None:
            # The handshake runs on the first read, in the request's thread, not in the accept loop.
            self._server.socket = self.tls.wrap_socket(self._server.socket, server_side=True,
                                                       do_handshake_on_connect=False)
        self.port = self._server.server_address[1]
        # A short poll: stop() waits for the accept loop's next poll, and the default half second
        # was paid by every test that starts a sandbox.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), name=f"sandbox:{self.port}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (hung responses are released) and close the state."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.reporting.close()
        self.state.close()
        if self._keys_tmp is not None:
            self._keys_tmp.cleanup()
            self._keys_tmp = None

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (used by ``reconkit sandbox``)."""
        self.start()
        try:
            while not self._stopping.wait(0.5):
                pass
        finally:
            self.stop()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what users need --------------------------------------------------------------
    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:8765`` (``https://`` with ``tls``)."""
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    @property
    def identity(self) -> str:
        """What the ledger keys this sandbox's credits by: its database (see
        :attr:`SandboxState.instance <reconkit.sandbox.state.SandboxState>`), never its port, which
        changes with every start."""
        return f"sandbox:{self.state.instance}"

    @property
    def config(self) -> Config:
        """A ready :class:`reconkit.Config` for this sandbox (its :attr:`identity` keys the ledger):
        HTTP Signature with the shared secret, or, under ``mle="required"``, :meth:`jwt_config`."""
        if self.mle == "required":
            return self.jwt_config()
        return Config(merchant_id=self.credentials.merchant_id, key_id=self.credentials.key_id,
                      secret_key=self.credentials.secret_key, environment=self.url,
                      portfolio_id=self.portfolio_id, label="SANDBOX", identity=self.identity)

    @property
    def keys(self) -> SandboxKeys:
        """The generated key material (made on first use: three RSA 2048 keys)."""
        with self._log_lock:
            if self._keys is None:
                self._keys = SandboxKeys(self.portfolio_id or self.credentials.merchant_id)
            return self._keys

    @property
    def key_files(self) -> SandboxKeyFiles:
        """The client's key files, written on first use: the P12, the response key and CyberSource's
        MLE certificate (see :class:`~reconkit.sandbox.keys.SandboxKeyFiles`)."""
        keys = self.keys
        with self._log_lock:
            if self._key_files is None:
                directory = self._keys_dir
                if directory is None:
                    import tempfile

                    self._keys_tmp = tempfile.TemporaryDirectory(prefix="reconkit-sandbox-keys-")
                    directory = self._keys_tmp.name
                self._key_files = keys.export(directory, self.credentials.merchant_id)
            return self._key_files

    def sdk_config(self, *, key_type: str = "P12", request_mle: bool = True, response_mle: bool = True
                   ) -> dict[str, Any]:
        """The official SDK's configuration dictionary for JWT against this sandbox (reference §7.2)."""
        files = self.key_files
        d: dict[str, Any] = {"authentication_type": "JWT", "jwt_key_type": key_type,
                             "merchantid": self.credentials.merchant_id, "run_environment": self.url.split("://", 1)[1]}
        if key_type == "P12":
            d |= {"keys_directory": str(files.directory), "key_file_name": files.key_file_name,
                  "key_alias": self.portfolio_id or self.credentials.merchant_id, "key_password": files.password}
        else:
            d |= {"merchant_keyid": self.credentials.key_id, "merchant_secretkey": self.credentials.secret_key,
                  "mleForRequestPublicCertPath": str(files.mle_certificate)}
        if self.portfolio_id:
            d |= {"use_metakey": True, "portfolio_id": self.portfolio_id}
        if request_mle:
            d["enableRequestMLEForOptionalApisGlobally"] = True
        if response_mle:
            d |= {"enableResponseMleGlobally": True, "responseMlePrivateKeyFilePath": str(files.response_key),
                  "responseMlePrivateKeyFilePassword": files.password, "responseMleKID": files.response_kid}
        return d

    def jwt_config(self, *, key_type: str = "P12", request_mle: bool = True, response_mle: bool = True) -> Config:
        """A :class:`reconkit.Config` for JWT (``"P12"`` or ``"SHARED_SECRET"``) against this sandbox,
        with request and response MLE as asked, read from :meth:`sdk_config` as a user's would be."""
        config = Config.from_sdk_dict(self.sdk_config(key_type=key_type, request_mle=request_mle,
                                                      response_mle=response_mle))
        return Config(config.merchant_id, config.key_id, config.secret_key, self.url, "jwt", self.portfolio_id,
                      "SANDBOX", self.identity, jwt_key_type=config.jwt_key_type, key_file=config.key_file,
                      key_password=config.key_password, key_alias=config.key_alias, mle=config.mle)

    def client(self, **kwargs: Any) -> Any:
        """A :class:`reconkit.Client` pointed at this sandbox (ledger in memory unless given; intents
        stamped and lookup delays measured on the sandbox clock)."""
        from ..client import Client

        kwargs.setdefault("ledger", ":memory:")
        kwargs.setdefault("clock", self.now)
        return Client(self.config, **kwargs)

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> list[str]:
        """Move the sandbox clock forward (``advance(hours=25)``), running batch cut-offs."""
        return self.state.advance(delta if delta is not None else timedelta(**kwargs))

    def now(self) -> datetime:
        """The sandbox clock."""
        return self.state.now()

    def credits(self) -> list[dict[str, Any]]:
        """Every credit the sandbox holds, with status, batch and void columns."""
        return self.state.credits()

    def settlement(self, date_range: Any = None, **kwargs: Any) -> Any:
        """Generate settlement files for the credits held; see :func:`reconkit.sandbox.generate_settlement`."""
        from .settlement import generate_settlement

        return generate_settlement(self.state, date_range, **kwargs)

    def transaction_search_export(self, path: Any) -> Any:
        """Write the credits held as a Business Center transaction-search export; see
        :func:`reconkit.sandbox.exports.write_transaction_search`."""
        from .exports import write_transaction_search

        return write_transaction_search(self.state, path)

    def count(self, method: str, endpoint: str) -> int:
        """How many requests of ``method`` reached ``endpoint`` (``create``, ``get``, ``void``, ...)."""
        with self._log_lock:
            return sum(1 for m, _, e in self.requests if m == method and e == endpoint)

    # --- internals --------------------------------------------------------------------
    def _log(self, method: str, path: str, endpoint: str | None) -> None:
        with self._log_lock:
            self.requests.append((method, path, endpoint))

    def _log_mle(self, method: str, path: str, request: bool, response: bool) -> None:
        with self._log_lock:
            self.mle_log.append((method, path, request, response))

    def _record_auth_failure(self, reason: str) -> None:
        with self._log_lock:
            self.auth_failures.append(reason)

    def _spend_jti(self, jti: str, until: float) -> bool:
        """Remember a JWT id until its token expires; False if it is already spent."""
        now = time.time()
        with self._log_lock:
            if len(self._spent_jtis) > 1024:
                self._spent_jtis = {k: v for k, v in self._spent_jtis.items() if v >= now}
            if self._spent_jtis.get(jti, 0) >= now:
                return False
            self._spent_jtis[jti] = until
            return True

    def _correlation_id(self) -> str:
        with self._log_lock:
            self._correlation += 1
            return str(uuid.uuid5(uuid.NAMESPACE_OID, f"{self.seed}:{self._correlation}"))

    def __repr__(self) -> str:
        return f"Sandbox(url={self.url!r}, merchant_id={self.credentials.merchant_id!r})"
