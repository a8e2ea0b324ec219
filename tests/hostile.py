"""In-process hostile servers on 127.0.0.1 and interception of name resolution, for the tests of
what the client sends where (tests/test_request_paths.py, tests/test_report_completeness.py)."""

from __future__ import annotations

import contextlib
import http.client
import socket
import socketserver
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from reconkit import Client, Config
from reconkit.sandbox.server import SandboxCredentials

Answer = tuple[int, dict[str, str], bytes]
"""A status, headers and body; ``Content-Length`` is added unless the headers say otherwise."""
RAW = -1
"""A status meaning the body is the raw bytes to write on the socket, which is then closed."""

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


class HostileServer:
    """An HTTP/1.1 server on 127.0.0.1 that answers every request with ``respond(method, path,
    headers, body)`` and records ``(method, path)`` of each request it reads."""

    def __init__(self, respond: Callable[[str, str, Any, bytes], Answer]) -> None:
        self.respond = respond
        self.requests: list[tuple[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                outer.requests.append((self.command, self.path))
                status, headers, data = outer.respond(self.command, self.path, self.headers, body)
                if status == RAW:
                    self.wfile.write(data)
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if not any(k.lower() in ("content-length", "transfer-encoding") for k in headers):
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._any()

            def do_POST(self) -> None:
                self._any()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def count(self, method: str | None = None, prefix: str = "") -> int:
        return sum(1 for m, p in self.requests if (method is None or m == method) and p.startswith(prefix))

    def __enter__(self) -> HostileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class Trap:
    """Where every name that is not loopback resolves: a TCP server that counts connections and
    closes them. ``lookups`` holds each non-loopback name asked for."""

    def __init__(self) -> None:
        self.connections: list[tuple[str, int]] = []
        self.lookups: list[str] = []
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                outer.connections.append(self.client_address)
                self.request.settimeout(0.5)
                with contextlib.suppress(OSError):
                    self.request.recv(65536)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def install(self, monkeypatch: Any) -> None:
        """Resolve every non-loopback name to this trap (so nothing can leave the machine)."""
        real = socket.getaddrinfo

        def resolve(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            name = host.decode() if isinstance(host, bytes) else str(host)
            if name in _LOOPBACK:
                return real(host, port, *args, **kwargs)
            self.lookups.append(name)
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", self.port))]

        monkeypatch.setattr(socket, "getaddrinfo", resolve)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class ForwardingProxy(HostileServer):
    """Forwards every request to ``upstream`` as it came (headers, Host and signature included)
    and relays the answer, except that ``intercept(method, path)`` may replace the answer after
    the request was forwarded (the upstream carried it out; its answer is lost)."""

    def __init__(self, upstream: str, intercept: Callable[[str, str], Answer | None]) -> None:
        host, port = upstream.removeprefix("http://").split(":")

        def respond(method: str, path: str, headers: Any, body: bytes) -> Answer:
            connection = http.client.HTTPConnection(host, int(port), timeout=10)
            try:
                sent = {k: v for k, v in headers.items() if k.lower() not in ("connection", "content-length")}
                connection.request(method, path, body=body or None, headers=sent)
                upstream_answer = connection.getresponse()
                data = upstream_answer.read()
                relayed = {k: v for k, v in upstream_answer.getheaders()
                           if k.lower() not in ("content-length", "transfer-encoding", "connection")}
                status = upstream_answer.status
            finally:
                connection.close()
            replaced = intercept(method, path)
            return replaced if replaced is not None else (status, relayed, data)

        super().__init__(respond)


def client_for(url: str, tmp_path: Any, **options: Any) -> Client:
    """A client of ``url`` with sandbox-shaped credentials and a ledger under ``tmp_path``."""
    creds = SandboxCredentials.for_seed(1)
    config = Config(creds.merchant_id, creds.key_id, creds.secret_key, url)
    options.setdefault("backoff_base", 0.001)
    options.setdefault("timeout", (2, 5))
    return Client(config, ledger=str(tmp_path / "ledger.sqlite3"), **options)
