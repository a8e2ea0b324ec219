"""Hostile requests over raw sockets: every one gets an HTTP answer in CyberSource's shapes and changes nothing.

Each row of a table is one request the sandbox once left unanswered or wrongly accepted. The checks
are the same for all: the status, the body's shape, no credit created or changed, and the sandbox
still serving a well-formed request afterwards.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconkit.auth import digest, http_date, jwt_token, sign_request
from reconkit.sandbox import Sandbox
from reconkit.sandbox.server import _MAX_BODY

from .conftest import START, examples

CREDIT = json.dumps({
    "clientReferenceInformation": {"code": "hostile-1"},
    "orderInformation": {"amountDetails": {"totalAmount": "10.00", "currency": "USD"}},
    "paymentInformation": {"card": {"number": "4111111111111111", "expirationMonth": "12",
                                    "expirationYear": "2031"}},
}, separators=(",", ":")).encode()
PATH = "/pts/v2/credits"

Headers = dict[str, str]


def _head(method: str, path: str, headers: Headers) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    return "\r\n".join(lines).encode("latin-1")


def _exchange(sb: Sandbox, method: str, path: str, headers: Headers, body: bytes = b"", *,
              half_close: bool = False) -> tuple[int, Any]:
    """Send raw bytes, read one HTTP answer; the socket timeout fails a request left unanswered."""
    with socket.create_connection((sb.host, sb.port), timeout=20) as sock:
        sock.sendall(_head(method, path, headers) + body)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        response = http.client.HTTPResponse(sock, method=method)
        response.begin()
        return response.status, json.loads(response.read())


def _signed(sb: Sandbox, method: str, path: str, body: bytes, *, date: str | None = None) -> Headers:
    headers = sign_request(sb.config, method, path, body, date or http_date())
    return headers | {"Content-Type": "application/json", "Content-Length": str(len(body))}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(sb: Sandbox, method: str, path: str, body: bytes, *, header: Any = None, claims: Any = None,
         signature: str | None = None) -> Headers:
    """A shared-secret JWT whose header, claims or signature a row replaces."""
    config = sb.config
    now = int(time.time())
    good_claims = {"iat": now, "exp": now + 120, "request-method": method, "request-host": config.host,
                   "request-resource-path": path, "iss": config.merchant_id, "jti": str(uuid.uuid4()),
                   "v-c-jwt-version": "2", "v-c-merchant-id": config.merchant_id}
    if method == "POST":
        good_claims |= {"digest": digest(body).removeprefix("SHA-256="), "digestAlgorithm": "SHA-256"}
    head = _b64url(json.dumps(header if header is not None else
                              {"kid": config.key_id, "alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64url(json.dumps(claims(good_claims) if claims else good_claims).encode())
    mac = _b64url(config.secret_key.hmac_sha256(f"{head}.{payload}".encode()))
    return {"Host": config.host, "Content-Type": "application/json", "Content-Length": str(len(body)),
            "Authorization": f"Bearer {head}.{payload}.{signature if signature is not None else mac}"}


@pytest.fixture(scope="module")
def sb():
    with Sandbox(start=START, seed=3) as sandbox:
        yield sandbox


def _credit(sb: Sandbox) -> str:
    status, body = _exchange(sb, "POST", PATH, _signed(sb, "POST", PATH, CREDIT), CREDIT)
    assert status == 201, body
    return body["id"]


def _assert_answer(sb: Sandbox, status: int, body: Any, expected: int, credits_before: list[dict]) -> None:
    assert status == expected, body
    if expected == 401:
        assert body == {"response": {"rmsg": "Authentication Failed"}}
    else:
        assert body["status"] == "INVALID_REQUEST" and body["reason"] and body["message"], body
    assert sb.credits() == credits_before, "a refused request changed the sandbox"
    # The sandbox still serves: a well-formed request on a fresh connection is answered.
    probe = "/pts/v2/credits/1"
    assert _exchange(sb, "GET", probe, _signed(sb, "GET", probe, b""))[0] == 404


TEN_GB = str(10 * 1024 ** 3)
Row = tuple[str, Callable[[Sandbox], tuple[Headers, bytes]], int]

SIGNATURE_ROWS: list[Row] = [
    ("Date ending in -0000 (time zone unknown)",
     lambda sb: (_signed(sb, "POST", PATH, CREDIT, date=http_date().replace("GMT", "-0000")), CREDIT), 401),
    ("Date that is no date", lambda sb: (_signed(sb, "POST", PATH, CREDIT, date="yesterday"), CREDIT), 401),
    ("Content-Length: abc", lambda sb: (_signed(sb, "POST", PATH, CREDIT) | {"Content-Length": "abc"}, CREDIT), 400),
    ("Content-Length: -1", lambda sb: (_signed(sb, "POST", PATH, CREDIT) | {"Content-Length": "-1"}, CREDIT), 400),
    ("Content-Length: 10 GB, signed, no body sent",
     lambda sb: (_signed(sb, "POST", PATH, CREDIT) | {"Content-Length": TEN_GB}, b""), 413),
    ("Content-Length: 10 GB, unsigned, no body sent",
     lambda sb: ({"Host": "x", "Content-Length": TEN_GB}, b""), 401),
    ("POST without Content-Length",
     lambda sb: ({k: v for k, v in _signed(sb, "POST", PATH, CREDIT).items() if k != "Content-Length"}, b""), 411),
    ("Transfer-Encoding: chunked",
     lambda sb: ({k: v for k, v in _signed(sb, "POST", PATH, CREDIT).items() if k != "Content-Length"}
                 | {"Transfer-Encoding": "chunked"}, b"0\r\n\r\n"), 411),
    ("body shorter than its Content-Length",
     lambda sb: (_signed(sb, "POST", PATH, CREDIT) | {"Content-Length": str(len(CREDIT) + 10)}, CREDIT), 400),
    ("paymentInformation as a list",
     lambda sb: (_signed(sb, "POST", PATH, body := CREDIT.replace(b'"paymentInformation":{', b'"paymentInformation":[{')
                                               .replace(b'"2031"}}', b'"2031"}}]')), body), 400),
    ("orderInformation as text",
     lambda sb: (_signed(sb, "POST", PATH, body := b'{"orderInformation":"10.00 USD"}'), body), 400),
    ("a JSON array as the body", lambda sb: (_signed(sb, "POST", PATH, b"[1,2]"), b"[1,2]"), 400),
    ("bytes that are not UTF-8", lambda sb: (_signed(sb, "POST", PATH, b"\xff\xfe{"), b"\xff\xfe{"), 400),
    ("search with limit \"abc\"",
     lambda sb: (_signed(sb, "POST", "/tss/v2/searches", body := b'{"query":"id:1","limit":"abc"}'), body), 400),
    ("search with limit 0",
     lambda sb: (_signed(sb, "POST", "/tss/v2/searches", body := b'{"query":"id:1","limit":0}'), body), 400),
    ("search with a number as query",
     lambda sb: (_signed(sb, "POST", "/tss/v2/searches", body := b'{"query":5}'), body), 400),
]


@pytest.mark.parametrize(("name", "build", "expected"), SIGNATURE_ROWS, ids=[r[0] for r in SIGNATURE_ROWS])
def test_hostile_signature_requests_get_an_answer(sb, name, build, expected):
    before = sb.credits()
    headers, body = build(sb)
    path = "/tss/v2/searches" if b"query" in body else PATH
    status, answer = _exchange(sb, "POST", path, headers, body, half_close=True)
    _assert_answer(sb, status, answer, expected, before)
    if expected == 400 and "details" in answer:
        assert all(d["field"] and d["reason"] for d in answer["details"])


def _credit_with(mutate: Callable[[dict], Any]) -> Callable[[dict], Any]:
    def claims(good: dict) -> Any:
        return mutate(dict(good))
    return claims


JWT_ROWS: list[tuple[str, Callable[[Sandbox], Headers]]] = [
    ("a list as the JWT header", lambda sb: _jwt(sb, "POST", PATH, CREDIT, header=["HS256"])),
    ("a 5-character signature", lambda sb: _jwt(sb, "POST", PATH, CREDIT, signature="abcde")),
    ("iat as a string", lambda sb: _jwt(sb, "POST", PATH, CREDIT,
                                        claims=_credit_with(lambda c: c | {"iat": str(c["iat"])}))),
    ("a list as the claims", lambda sb: _jwt(sb, "POST", PATH, CREDIT, claims=lambda c: [c])),
    ("alg none", lambda sb: _jwt(sb, "POST", PATH, CREDIT, header={"alg": "none", "kid": sb.config.key_id})),
    ("no jti", lambda sb: _jwt(sb, "POST", PATH, CREDIT, claims=_credit_with(lambda c: c | {"jti": ""}))),
    ("expired", lambda sb: _jwt(sb, "POST", PATH, CREDIT,
                                claims=_credit_with(lambda c: c | {"iat": c["iat"] - 600, "exp": c["iat"] - 480}))),
    ("a day-long lifetime", lambda sb: _jwt(sb, "POST", PATH, CREDIT,
                                            claims=_credit_with(lambda c: c | {"exp": c["iat"] + 86400}))),
    ("another merchant in the claims",
     lambda sb: _jwt(sb, "POST", PATH, CREDIT, claims=_credit_with(lambda c: c | {"v-c-merchant-id": "other"}))),
    ("a v-c-merchant-id header naming another merchant",
     lambda sb: _jwt(sb, "POST", PATH, CREDIT) | {"v-c-merchant-id": "other"}),
    ("signed for another path",
     lambda sb: _jwt(sb, "POST", PATH, CREDIT, claims=_credit_with(lambda c: c | {"request-resource-path": "/x"}))),
    ("signed for another host",
     lambda sb: _jwt(sb, "POST", PATH, CREDIT, claims=_credit_with(lambda c: c | {"request-host": "evil:1"}))),
    ("digest of another body",
     lambda sb: _jwt(sb, "POST", PATH, CREDIT + b" ") | {"Content-Length": str(len(CREDIT))}),
    ("two dots only", lambda sb: _jwt(sb, "POST", PATH, CREDIT) | {"Authorization": "Bearer .."}),
    ("not base64url", lambda sb: _jwt(sb, "POST", PATH, CREDIT) | {"Authorization": "Bearer a*b.c$d.e!f"}),
]


@pytest.mark.parametrize(("name", "build"), JWT_ROWS, ids=[r[0] for r in JWT_ROWS])
def test_hostile_jwts_are_refused_with_401(sb, name, build):
    before = sb.credits()
    status, answer = _exchange(sb, "POST", PATH, build(sb), CREDIT)
    _assert_answer(sb, status, answer, 401, before)


def test_a_well_formed_jwt_is_accepted_once_and_its_jti_not_again(sb):
    headers = _jwt(sb, "POST", PATH, CREDIT)
    status, answer = _exchange(sb, "POST", PATH, headers, CREDIT)
    assert status == 201, answer
    before = sb.credits()
    status, answer = _exchange(sb, "POST", PATH, headers, CREDIT)
    _assert_answer(sb, status, answer, 401, before)
    assert sb.auth_failures[-1] == "JWT jti was already used"


def test_reconkit_jwt_client_still_passes(sb):
    config = sb.config
    token = jwt_token(config, "GET", "/pts/v2/credits/1", None)
    headers = {"Host": config.host, "v-c-merchant-id": config.merchant_id, "Authorization": f"Bearer {token}"}
    status, answer = _exchange(sb, "GET", "/pts/v2/credits/1", headers)
    assert status == 404, answer


def test_signed_50_mb_body_is_refused_before_it_is_read(sb):
    big = b'{"pad":"' + b"x" * (50 * 1024 * 1024) + b'"}'
    headers = _signed(sb, "POST", PATH, big)
    before = sb.credits()
    # Only the first 256 KB go out: the answer comes without the sandbox waiting for the rest.
    status, answer = _exchange(sb, "POST", PATH, headers, big[: 256 * 1024], half_close=True)
    assert status == 413 and answer["reason"] == "REQUEST_TOO_LARGE"
    _assert_answer(sb, status, answer, 413, before)
    assert int(headers["Content-Length"]) > _MAX_BODY


def test_expect_100_is_not_answered_with_an_invitation_to_send_10_gb(sb):
    headers = _signed(sb, "POST", PATH, CREDIT) | {"Content-Length": TEN_GB, "Expect": "100-continue"}
    status, answer = _exchange(sb, "POST", PATH, headers)
    assert status == 413 and answer["reason"] == "REQUEST_TOO_LARGE"


def test_expect_100_then_a_small_body_is_served(sb):
    headers = _signed(sb, "POST", PATH, CREDIT) | {"Expect": "100-continue"}
    with socket.create_connection((sb.host, sb.port), timeout=20) as sock:
        sock.sendall(_head("POST", PATH, headers))
        # http.client skips interim answers, so the 100 is read by hand: status line, blank line.
        interim = sock.makefile("rb")
        assert interim.readline().split()[1] == b"100"
        assert interim.readline() == b"\r\n"
        sock.sendall(CREDIT)
        final = http.client.HTTPResponse(sock, method="POST")
        final.begin()
        assert final.status == 201 and json.loads(final.read())["status"] == "PENDING"


def test_body_at_the_cap_is_read_and_judged_on_its_content(sb):
    body = b'{"pad":"' + b"x" * (_MAX_BODY - 10) + b'"}'
    assert len(body) == _MAX_BODY
    status, answer = _exchange(sb, "POST", PATH, _signed(sb, "POST", PATH, body), body)
    assert status == 400 and answer["reason"] == "MISSING_FIELD"


@pytest.mark.parametrize("void_body", [
    b'{"clientReferenceInformation":"void-1"}',
    b'{"clientReferenceInformation":{"code":["void-1"]}}',
    b'{"clientReferenceInformation":{"code":"' + b"v" * 60 + b'"}}',
    b"[]",
    b"{not json",
])
def test_malformed_void_body_changes_nothing(sb, void_body):
    credit_id = _credit(sb)
    path = f"/pts/v2/credits/{credit_id}/voids"
    before = sb.credits()
    status, answer = _exchange(sb, "POST", path, _signed(sb, "POST", path, void_body), void_body)
    _assert_answer(sb, status, answer, 400, before)
    assert next(c for c in sb.credits() if c["id"] == credit_id)["status"] == "PENDING"
    good = b'{"clientReferenceInformation":{"code":"void-1"}}'
    status, answer = _exchange(sb, "POST", path, _signed(sb, "POST", path, good), good)
    assert status == 201 and answer["status"] == "VOIDED"
    assert answer["clientReferenceInformation"] == {"code": "void-1"}


def test_keep_alive_survives_a_refusal_without_a_body(sb):
    """A refusal that read the whole request keeps the connection usable for the next one."""
    probe = "/pts/v2/credits/1"
    bad = _signed(sb, "GET", probe, b"", date=http_date().replace("GMT", "-0000"))
    good = _signed(sb, "GET", probe, b"")
    with socket.create_connection((sb.host, sb.port), timeout=20) as sock:
        sock.sendall(_head("GET", probe, bad))
        first = http.client.HTTPResponse(sock, method="GET")
        first.begin()
        assert first.status == 401 and json.loads(first.read())["response"]
        sock.sendall(_head("GET", probe, good))
        second = http.client.HTTPResponse(sock, method="GET")
        second.begin()
        assert second.status == 404 and json.loads(second.read())["errorInformation"]["reason"] == "NOT_FOUND"


@pytest.mark.parametrize(("name", "raw", "expected"), [
    ("unknown method", b"FOO /pts/v2/credits HTTP/1.1\r\nHost: x\r\n\r\n", 501),
    ("garbage request line", b"hello\r\n\r\n", 400),
    ("HTTP/2.0 request line", b"GET /pts/v2/credits/1 HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    ("request line of 70 KB", b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 414),
    ("header line of 70 KB", b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", 431),
    ("150 headers", b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(150)) + b"\r\n", 431),
])
def test_protocol_errors_are_answered_in_cybersource_shape(sb, name, raw, expected):
    before = sb.credits()
    with socket.create_connection((sb.host, sb.port), timeout=20) as sock:
        sock.sendall(raw)
        response = http.client.HTTPResponse(sock)
        response.begin()
        body = json.loads(response.read())
    assert response.status == expected, name
    assert response.getheader("Content-Type") == "application/hal+json"
    assert body["reason"] or body["errorInformation"]["reason"]
    assert sb.credits() == before
    probe = "/pts/v2/credits/1"
    assert _exchange(sb, "GET", probe, _signed(sb, "GET", probe, b""))[0] == 404


_TEXT = st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=40)


@settings(max_examples=examples(60), deadline=None,  # each example is a raw socket exchange
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
       path=st.sampled_from([PATH, "/pts/v2/credits/1/voids", "/tss/v2/searches", "/tss/v2/transactions/1",
                             "/reporting/v3/report-downloads?reportDate=x", "/nowhere"]),
       length=st.one_of(st.none(), _TEXT, st.integers(-5, 10**12).map(str)),
       date=st.one_of(st.none(), _TEXT), token=st.one_of(st.none(), st.lists(_TEXT, max_size=4).map(".".join)),
       signed=st.booleans(), body=st.binary(max_size=200))
def test_any_request_gets_an_answer_and_changes_nothing(sb, method, path, length, date, token, signed, body):
    headers = _signed(sb, method, path, body) if signed else {"Host": sb.config.host}
    for name, value in (("Content-Length", length), ("Date", date)):
        if value is not None:
            headers[name] = value
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    before = sb.credits()
    with socket.create_connection((sb.host, sb.port), timeout=20) as sock:
        sock.sendall(_head(method, path, headers) + body)
        sock.shutdown(socket.SHUT_WR)
        response = http.client.HTTPResponse(sock, method=method)
        response.begin()
        answer = json.loads(response.read())
    assert response.status in (400, 401, 404, 411, 413), answer
    assert isinstance(answer, dict) and answer
    assert sb.credits() == before
