"""Signing reproduces the reference doc's vectors byte for byte."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from reconkit import Config, sign_request
from reconkit.auth import digest, jwt_token

from .conftest import SEED_SECRET, examples

DATE = "Fri, 10 Feb 2023 21:12:52 GMT"
CONFIG = Config("reconkit_test", "00000000-1111-2222-3333-444444444444", SEED_SECRET, "test")
BODY = (b'{"clientReferenceInformation":{"code":"RTS-Auth"},"paymentInformation":{"card":{"expirationYear":"2031",'
        b'"expirationMonth":"12","type":"001"},"instrumentIdentifier":{"id":"7010000000016241111"}},'
        b'"orderInformation":{"amountDetails":{"currency":"USD","totalAmount":"1.00"}},"processingInformation":'
        b'{"capture":"false","commerceIndicator":"internet"}}')
KEY = 'keyid="00000000-1111-2222-3333-444444444444", algorithm="HmacSHA256"'


def test_body_is_the_reference_body():
    assert len(BODY) == 346
    assert hashlib.sha256(BODY).hexdigest() == "8d7824db721d4ae418a32e9b961c866c55d68e98a7f2d84fa85d066c40b4b903"


def test_vector_a_post_credit():
    headers = sign_request(CONFIG, "POST", "/pts/v2/credits", BODY, DATE)
    assert headers == {
        "Host": "apitest.cybersource.com",
        "Date": DATE,
        "v-c-merchant-id": "reconkit_test",
        "Digest": "SHA-256=jXgk23IdSuQYoy6blhyGbFXWjpin8thPqF0GbEC0uQM=",
        "Signature": KEY + ', headers="host date request-target digest v-c-merchant-id", '
                           'signature="Gz2SNYnmR7GV7pqRg99ucnAYEsmOco7odAfcF2LgUQg="',
    }


def test_vector_b_get_credit_has_no_digest():
    headers = sign_request(CONFIG, "GET", "/pts/v2/credits/6760635718126158603955", None, DATE)
    assert "Digest" not in headers
    assert headers["Signature"] == KEY + ', headers="host date request-target v-c-merchant-id", ' \
                                         'signature="7WD9Zqc0rgJSWA9y19VF5QuO6YjC+o8HqI52doo9nrs="'


def test_vector_d_void():
    body = b'{"clientReferenceInformation":{"code":"RTS-Auth"}}'
    headers = sign_request(CONFIG, "POST", "/pts/v2/credits/6760635718126158603955/voids", body, DATE)
    assert headers["Digest"] == "SHA-256=ZtIP7zJ95CRBih5JFWjoGw7JuI1fGAKmvEZxS7ZL+L0="
    assert headers["Signature"].endswith('signature="NH0rEYBdIKbjbOHMFW9Tah/b9OvuDjCS47jt/bTgtHU="')


def test_other_separators_change_the_signature():
    loose = json.dumps(json.loads(BODY)).encode()
    assert sign_request(CONFIG, "POST", "/pts/v2/credits", loose, DATE)["Signature"] != \
        sign_request(CONFIG, "POST", "/pts/v2/credits", BODY, DATE)["Signature"]


def test_host_keeps_a_non_default_port():
    config = Config("m", "k", SEED_SECRET, "http://127.0.0.1:8765")
    assert sign_request(config, "GET", "/x", None, DATE)["Host"] == "127.0.0.1:8765"
    assert Config("m", "k", SEED_SECRET, "https://example.com:443").host == "example.com"


def test_metakey_signs_as_portfolio_but_sends_merchant():
    config = Config("reconkit_test", CONFIG.key_id, SEED_SECRET, "test", portfolio_id="portfolio_x")
    headers = sign_request(config, "GET", "/pts/v2/credits/1", None, DATE)
    assert headers["v-c-merchant-id"] == "reconkit_test"
    line = f"host: apitest.cybersource.com\ndate: {DATE}\nrequest-target: get /pts/v2/credits/1\n" \
           "v-c-merchant-id: portfolio_x"
    expected = base64.b64encode(hmac.new(base64.b64decode(SEED_SECRET), line.encode(), hashlib.sha256).digest())
    assert f'signature="{expected.decode()}"' in headers["Signature"]


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def test_jwt_verifies_with_the_secret_and_binds_the_body():
    token = jwt_token(CONFIG, "post", "/pts/v2/credits", BODY, now=1676063572, jti="fixed")
    head, claims, sig = token.split(".")
    mac = hmac.new(base64.b64decode(SEED_SECRET), f"{head}.{claims}".encode(), hashlib.sha256).digest()
    assert _b64url_decode(sig) == mac
    assert json.loads(_b64url_decode(head)) == {"kid": CONFIG.key_id, "alg": "HS256", "typ": "JWT"}
    payload = json.loads(_b64url_decode(claims))
    assert payload["digest"] == digest(BODY).removeprefix("SHA-256=")
    assert payload["digestAlgorithm"] == "SHA-256"
    assert payload["exp"] - payload["iat"] == 120
    assert payload["request-method"] == "POST" and payload["request-resource-path"] == "/pts/v2/credits"
    assert payload["iss"] == "reconkit_test" and payload["v-c-jwt-version"] == "2"
    wrong = hmac.new(b"not the secret", f"{head}.{claims}".encode(), hashlib.sha256).digest()
    assert _b64url_decode(sig) != wrong


@settings(max_examples=examples(50), deadline=None)  # each example signs and verifies both ways; 50 covers the methods and paths
@given(body=st.binary(max_size=300), path=st.from_regex(r"/[a-z0-9/]{0,30}", fullmatch=True),
       method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"]))
def test_signatures_verify_for_any_request(body, path, method):
    """Property: recomputing the HMAC over the listed headers gives the signature sent."""
    headers = sign_request(CONFIG, method, path, body, DATE)
    params = dict(p.split("=", 1) for p in headers["Signature"].replace('"', "").split(", "))
    values = {"host": headers["Host"], "date": DATE, "request-target": f"{method.lower()} {path}",
              "digest": headers.get("Digest"), "v-c-merchant-id": headers["v-c-merchant-id"]}
    line = "\n".join(f"{n}: {values[n]}" for n in params["headers"].split())
    mac = base64.b64encode(hmac.new(base64.b64decode(SEED_SECRET), line.encode(), hashlib.sha256).digest()).decode()
    assert params["signature"] == mac
    assert ("Digest" in headers) == (method in ("POST", "PUT", "PATCH"))
