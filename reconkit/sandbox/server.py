"""The sandbox's HTTP server: CyberSource's protocol on loopback, with its authentication."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import socket
import struct
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from ..config import Config
from .faults import PROXY_ERRORS, FaultPlan
from .state import RejectedError, SandboxState

__all__ = ["Sandbox", "SandboxCredentials"]

_SIG_PARAM = re.compile(r'(\w+)="([^"]*)"')
_ROUTES = [
    ("POST", re.compile(r"^/pts/v2/credits/?$"), "create"),
    ("GET", re.compile(r"^/pts/v2/credits/(\d{1,26})/?$"), "get"),
    ("POST", re.compile(r"^/pts/v2/credits/(\d{1,26})/voids/?$"), "void"),
    ("GET", re.compile(r"^/tss/v2/transactions/(\d{1,26})/?$"), "tss"),
    ("POST", re.compile(r"^/tss/v2/searches/?$"), "search"),
]
_MAX_SKEW = timedelta(minutes=15)


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


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, delayed ACKs add ~40 ms each.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    # --- plumbing ---------------------------------------------------------------------
    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/hal+json" if not isinstance(body, bytes) else "text/html")
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
        data = json.dumps(body, separators=(",", ":")).encode("utf-8")
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
    def _authenticate(self, method: str, body: bytes) -> str | None:
        """Return None when the request is authentic, else the reason it is not."""
        sandbox = self.server.sandbox
        creds = sandbox.credentials
        merchant = self.headers.get("v-c-merchant-id")
        if merchant != creds.merchant_id:
            return "unknown merchant id"
        authorization = self.headers.get("Authorization", "")
        if authorization.startswith("Bearer "):
            return self._verify_jwt(method, body, authorization[len("Bearer "):])
        signature = self.headers.get("Signature")
        if not signature:
            return "no Signature or Authorization header"
        params = dict(_SIG_PARAM.findall(signature))
        if params.get("keyid") != creds.key_id:
            return "unknown key id"
        if params.get("algorithm") != "HmacSHA256":
            return "unsupported algorithm"
        names = params.get("headers", "").split()
        date = self.headers.get("Date") or self.headers.get("v-c-date")
        try:
            sent = parsedate_to_datetime(date or "")
        except (TypeError, ValueError):
            return "missing or malformed Date"
        if abs(datetime.now(UTC) - sent) > _MAX_SKEW:
            return "Date is more than 15 minutes off"
        required = {"host", "v-c-merchant-id"} | ({"digest"} if method in ("POST", "PUT", "PATCH") else set())
        if not required <= set(names) or not ({"request-target", "(request-target)"} & set(names)):
            return "signature does not cover the required headers"
        if method in ("POST", "PUT", "PATCH"):
            expected = "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode()
            if self.headers.get("Digest") != expected:
                return "Digest does not match the body"
        lines = []
        for name in names:
            if name in ("request-target", "(request-target)"):
                value = f"{method.lower()} {self.path}"
            elif name == "v-c-merchant-id":
                value = sandbox.portfolio_id if sandbox.portfolio_id else merchant
            else:
                value = self.headers.get(name)
                if value is None:
                    return f"signed header {name} is missing"
            lines.append(f"{name}: {value}")
        key = base64.b64decode(creds.secret_key)
        mac = base64.b64encode(hmac.new(key, "\n".join(lines).encode(), hashlib.sha256).digest()).decode()
        if not hmac.compare_digest(mac, params.get("signature", "")):
            return "signature mismatch"
        return None

    def _verify_jwt(self, method: str, body: bytes, token: str) -> str | None:
        creds = self.server.sandbox.credentials
        try:
            head, claims_part, sig = token.split(".")
            header = json.loads(_b64url_decode(head))
            claims = json.loads(_b64url_decode(claims_part))
        except (ValueError, json.JSONDecodeError):
            return "malformed JWT"
        if header.get("alg") != "HS256" or header.get("kid") != creds.key_id:
            return "unknown JWT key or algorithm"
        mac = hmac.new(base64.b64decode(creds.secret_key), f"{head}.{claims_part}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(mac, _b64url_decode(sig)):
            return "JWT signature mismatch"
        now = time.time()
        if not (claims.get("iat", 0) - 900 <= now <= claims.get("exp", 0) + 60):
            return "JWT expired"
        if claims.get("request-method") != method or claims.get("request-resource-path") != self.path:
            return "JWT does not match the request"
        body_digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
        if method in ("POST", "PUT", "PATCH") and claims.get("digest") != body_digest:
            return "JWT digest does not match the body"
        return None

    # --- routing ----------------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        sandbox = self.server.sandbox
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = urlsplit(self.path).path
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
            return self._error(404, "NOT_FOUND", "The requested resource does not exist.")
        reason = self._authenticate(method, body)
        if reason:
            sandbox._record_auth_failure(reason)
            return self._send(401, {"response": {"rmsg": "Authentication Failed"}})
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
        try:
            status, payload = self._handle(endpoint, match, body)
        except RejectedError as rejection:
            status, payload = rejection.http_status, rejection.body
        if proxy is not None:
            return self._send(proxy.status, proxy.body)
        if fault == "lost":
            return self._hang()
        if fault == "truncated":
            return self._truncated(status, payload)
        if fault == "bad_json":
            return self._send(status, b"<html><body>502 Bad Gateway</body></html>")
        self._send(status, payload)

    def _handle(self, endpoint: str, match: re.Match[str] | None, body: bytes) -> tuple[int, Any]:
        sandbox = self.server.sandbox
        state = sandbox.state
        parsed: Any = {}
        if body:
            try:
                parsed = json.loads(body)
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise RejectedError(400, {"status": "INVALID_REQUEST", "reason": "INVALID_DATA",
                                      "message": "The request body is not valid JSON",
                                      "details": [{"field": "body", "reason": "INVALID_DATA"}]}) from None
            if not isinstance(parsed, dict):
                raise RejectedError(400, {"status": "INVALID_REQUEST", "reason": "INVALID_DATA",
                                      "message": "The request body must be a JSON object",
                                      "details": [{"field": "body", "reason": "INVALID_DATA"}]})
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
        query = str(parsed.get("query", ""))
        limit = int(parsed.get("limit", 20) or 20)
        summaries = state.search(query, min(max(limit, 1), 2500))
        return 201, {"searchId": str(uuid.uuid4()), "save": False, "name": parsed.get("name"), "query": query,
                     "count": len(summaries), "totalCount": len(summaries), "offset": 0, "limit": limit,
                     "_embedded": {"transactionSummaries": summaries}}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True
    sandbox: Sandbox


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
    tss_delay : timedelta
        Transaction Details answers 404 this long (sandbox time) after a credit's creation.
    self_link_status : int
        200, or 405 to act like a live API whose self link does not answer GETs.
    faults : FaultPlan, optional
    portfolio_id : str, optional
        Expect MetaKey signatures from this portfolio.
    credentials : SandboxCredentials, optional
        Accept these instead of the seed's (e.g. the reference doc's test-vector merchant).
    id_salt : str
        See :class:`~reconkit.sandbox.state.SandboxState`; set when several processes share ``db``.

    Examples
    --------
    >>> with Sandbox() as sb:                                   # doctest: +SKIP
    ...     credit = sb.client().create_credit("10.00", "USD", card={...})
    """

    def __init__(self, *, port: int = 0, host: str = "127.0.0.1", seed: int = 0, start: datetime | None = None,
                 db: str = ":memory:", tss_delay: timedelta = timedelta(minutes=5), self_link_status: int = 200,
                 faults: FaultPlan | None = None, portfolio_id: str | None = None,
                 cutoff: Any = None, merchant_id: str = "reconkit_sandbox",
                 credentials: SandboxCredentials | None = None, id_salt: str = "") -> None:
        from datetime import time as _time

        self.host = host
        self.port = port
        self.seed = seed
        self.credentials = credentials or SandboxCredentials.for_seed(seed, merchant_id)
        merchant_id = self.credentials.merchant_id
        self.portfolio_id = portfolio_id
        self.self_link_status = self_link_status
        self.faults = faults or FaultPlan(seed=seed)
        self.state = SandboxState(db, seed=seed, start=start, merchant_id=merchant_id,
                                  cutoff=cutoff or _time(0, 0), tss_delay=tss_delay, id_salt=id_salt)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._log_lock = threading.Lock()
        self._correlation = 0
        self.requests: list[tuple[str, str, str | None]] = []
        self.auth_failures: list[str] = []

    # --- lifecycle --------------------------------------------------------------------
    def start(self) -> Sandbox:
        """Start serving in a background thread; returns self."""
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server((self.host, self.port), _Handler)
        self._server.sandbox = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"sandbox:{self.port}",
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
        self.state.close()

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
        """The base URL, e.g. ``http://127.0.0.1:8765``."""
        return f"http://{self.host}:{self.port}"

    @property
    def config(self) -> Config:
        """A ready :class:`reconkit.Config` for this sandbox."""
        return Config(merchant_id=self.credentials.merchant_id, key_id=self.credentials.key_id,
                      secret_key=self.credentials.secret_key, environment=self.url,
                      portfolio_id=self.portfolio_id, label="SANDBOX")

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

    def count(self, method: str, endpoint: str) -> int:
        """How many requests of ``method`` reached ``endpoint`` (``create``, ``get``, ``void``, ...)."""
        with self._log_lock:
            return sum(1 for m, _, e in self.requests if m == method and e == endpoint)

    # --- internals --------------------------------------------------------------------
    def _log(self, method: str, path: str, endpoint: str | None) -> None:
        with self._log_lock:
            self.requests.append((method, path, endpoint))

    def _record_auth_failure(self, reason: str) -> None:
        with self._log_lock:
            self.auth_failures.append(reason)

    def _correlation_id(self) -> str:
        with self._log_lock:
            self._correlation += 1
            return str(uuid.uuid5(uuid.NAMESPACE_OID, f"{self.seed}:{self._correlation}"))

    def __repr__(self) -> str:
        return f"Sandbox(url={self.url!r}, merchant_id={self.credentials.merchant_id!r})"
