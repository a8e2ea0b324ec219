"""JWT with a P12 key and message-level encryption, against the sandbox over real HTTP.

Expected values are derived independently of reconkit: JWS signatures are checked and JWEs
opened with ``cryptography``'s primitives (RSA PKCS#1 v1.5, RSA-OAEP-256, AES-GCM) as RFC 7515/7516
define them, and the JWT ``digest`` claim of the reference body is vector A's Digest (reference §3.2).
"""

from __future__ import annotations

import base64
import hashlib
import json
import traceback
from datetime import UTC, datetime, timedelta

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from reconkit import Client, Config
from reconkit.auth import CyberSourceAuth, Keyring, auth_headers, jwt_rs256_token
from reconkit.errors import AmbiguousOutcomeError, ConfigError, MessageEncryptionError
from reconkit.mle import MleSettings, decrypt_compact, encrypt_compact, envelope
from reconkit.sandbox import Sandbox
from reconkit.widgets.common import ConnectionBanner

from .conftest import CARD, START

BODY = (b'{"clientReferenceInformation":{"code":"RTS-Auth"},"paymentInformation":{"card":{"expirationYear":"2031",'
        b'"expirationMonth":"12","type":"001"},"instrumentIdentifier":{"id":"7010000000016241111"}},'
        b'"orderInformation":{"amountDetails":{"currency":"USD","totalAmount":"1.00"}},"processingInformation":'
        b'{"capture":"false","commerceIndicator":"internet"}}')
VECTOR_A_DIGEST = "jXgk23IdSuQYoy6blhyGbFXWjpin8thPqF0GbEC0uQM="
PASSWORD = "p12-password-Zq81"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _b64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _cert(key: rsa.RSAPrivateKey, cn: str, serial: str) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.SERIAL_NUMBER, serial)])
    now = datetime.now(UTC)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(7).not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=9))
            .sign(key, hashes.SHA256()))


@pytest.fixture(scope="module")
def p12(tmp_path_factory):
    """A P12 laid out as CyberSource's: merchant certificate + CyberSource_SJC_US, made here."""
    folder = tmp_path_factory.mktemp("keys")
    data = pkcs12.serialize_key_and_certificates(
        b"reconkit_test", KEY, _cert(KEY, "reconkit_test", "1234567890"),
        [_cert(OTHER_KEY, "CyberSource_SJC_US", "555")], serialization.BestAvailableEncryption(PASSWORD.encode()))
    (folder / "reconkit_test.p12").write_bytes(data)
    return folder


def _independent_jwe_open(token: str, key: rsa.RSAPrivateKey) -> tuple[dict, bytes]:
    """RFC 7516 compact JWE, RSA-OAEP-256 + A256GCM, opened with cryptography's primitives only."""
    protected, wrapped, iv, ciphertext, tag = token.split(".")
    cek = key.decrypt(_b64u(wrapped), padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(),
                                                   label=None))
    plaintext = AESGCM(cek).decrypt(_b64u(iv), _b64u(ciphertext) + _b64u(tag), protected.encode("ascii"))
    return json.loads(_b64u(protected)), plaintext


def _independent_jws_check(token: str, public_key: rsa.RSAPublicKey) -> tuple[dict, dict]:
    """RFC 7515 RS256: PKCS#1 v1.5 SHA-256 over ``header.payload``; raises when it does not verify."""
    head, payload, signature = token.split(".")
    public_key.verify(_b64u(signature), f"{head}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return json.loads(_b64u(head)), json.loads(_b64u(payload))


# --- JWT with a P12 key ------------------------------------------------------------------------
def test_p12_jwt_is_rs256_with_the_certificate_serial_as_kid_and_vector_a_digest(p12):
    config = Config.from_sdk_dict({"authentication_type": "JWT", "merchantid": "reconkit_test",
                                   "run_environment": "apitest.cybersource.com", "keys_directory": str(p12),
                                   "key_password": PASSWORD})
    assert config.key_file == str(p12 / "reconkit_test.p12") and config.jwt_key_type == "P12"
    token = jwt_rs256_token(config, Keyring.load(config).p12, "POST", "/pts/v2/credits", BODY, now=1676063572,
                            jti="fixed")
    header, claims = _independent_jws_check(token, KEY.public_key())
    assert header == {"kid": "1234567890", "alg": "RS256", "typ": "JWT"}
    assert claims == {"digest": VECTOR_A_DIGEST, "digestAlgorithm": "SHA-256", "iat": 1676063572,
                      "exp": 1676063572 + 120, "request-method": "POST", "request-host": "apitest.cybersource.com",
                      "request-resource-path": "/pts/v2/credits", "iss": "reconkit_test", "jti": "fixed",
                      "v-c-jwt-version": "2", "v-c-merchant-id": "reconkit_test"}


@settings(max_examples=25, deadline=None)
@given(body=st.binary(max_size=2000), path=st.from_regex(r"/[a-z0-9/]{1,40}", fullmatch=True))
def test_any_p12_signature_verifies_and_binds_the_body(p12, body, path):
    config = Config("reconkit_test", environment="test", auth_type="jwt", key_file=p12 / "reconkit_test.p12",
                    key_password=PASSWORD)
    headers = auth_headers(config, "POST", path, body, keyring=CyberSourceAuth(config).keyring)
    _, claims = _independent_jws_check(headers["Authorization"].removeprefix("Bearer "), KEY.public_key())
    assert claims["digest"] == base64.b64encode(hashlib.sha256(body).digest()).decode()
    assert claims["request-resource-path"] == path


# --- JWE both ways ------------------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(body=st.binary(max_size=5000))
def test_any_body_encrypts_to_what_rfc7516_opens_and_back(body):
    token = encrypt_compact(body, KEY.public_key(), "kid-1", now=1700000000)
    header, plaintext = _independent_jwe_open(token, KEY)
    assert plaintext == body
    assert header == {"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": "kid-1", "iat": 1700000000}
    assert decrypt_compact(token, KEY)[0] == body


def test_a_tampered_or_misaddressed_jwe_is_refused_by_name():
    token = encrypt_compact(b'{"a":1}', KEY.public_key(), "k")
    parts = token.split(".")
    parts[3] = parts[3][:-2] + ("AA" if parts[3][-2:] != "AA" else "BB")
    with pytest.raises(MessageEncryptionError, match="does not decrypt"):
        decrypt_compact(".".join(parts), KEY)
    with pytest.raises(MessageEncryptionError, match="another key"):
        decrypt_compact(token, OTHER_KEY)


# --- over HTTP against the sandbox --------------------------------------------------------------
@pytest.fixture
def required():
    with Sandbox(start=START, mle="required") as sb:
        yield sb


def _wire(client: Client) -> list[requests.Response]:
    seen: list[requests.Response] = []
    client.session.hooks["response"].append(lambda r, **_: seen.append(r))
    return seen


def test_a_credit_round_trips_with_p12_jwt_and_mle_both_ways(required):
    client = required.client()
    assert "JWT (P12, RS256) + MLE request/response" in repr(client)
    wire = _wire(client)
    credit = client.create_credit("12.34", "USD", card=CARD)
    assert credit.status == "PENDING" and credit.id
    sent = json.loads(wire[0].request.body)
    assert list(sent) == ["encryptedRequest"]  # the SDK's shape, nothing in clear
    header, plaintext = _independent_jwe_open(sent["encryptedRequest"], required.keys.mle_key)
    assert header["kid"] == required.keys.mle_kid and header["alg"] == "RSA-OAEP-256" and header["enc"] == "A256GCM"
    assert json.loads(plaintext)["orderInformation"]["amountDetails"] == {"totalAmount": "12.34", "currency": "USD"}
    assert wire[0].mle_decrypted is True and json.loads(wire[0].content)["id"] == credit.id
    assert required.mle_log == [("POST", "/pts/v2/credits", True, True)]
    void = client.void_credit(credit)
    assert void.status == "VOIDED"
    assert required.mle_log[-1] == ("POST", f"/pts/v2/credits/{credit.id}/voids", True, True)
    assert required.auth_failures == []


def test_the_mandate_refuses_http_signature_and_plain_bodies(required):
    signed = Client(Config(required.credentials.merchant_id, required.credentials.key_id,
                           required.credentials.secret_key, required.url), ledger=":memory:")
    assert "HTTP Signature (deprecated)" in repr(signed)
    with pytest.raises(Exception) as refused:
        signed.create_credit("1.00", "USD", card=CARD)
    assert "401" in str(refused.value) or "Authentication" in str(refused.value)
    assert required.auth_failures == ["HTTP Signature is not accepted: JWT with message-level encryption is "
                                      "required (CyberSource's 2026 mandate)"]
    plain = Client(required.jwt_config(request_mle=False), ledger=":memory:")
    with pytest.raises(Exception, match="must be encrypted"):
        plain.create_credit("1.00", "USD", card=CARD)
    assert required.credits() == []


def test_a_tampered_envelope_with_a_valid_jwt_is_refused(required):
    config = required.jwt_config()
    keyring = CyberSourceAuth(config).keyring
    token = encrypt_compact(BODY, keyring.request_key, keyring.request_kid).split(".")
    token[3] = token[3][:-2] + ("AA" if token[3][-2:] != "AA" else "BB")
    body = envelope("encryptedRequest", ".".join(token))
    headers = auth_headers(config, "POST", "/pts/v2/credits", body, keyring=keyring, response_kid=keyring.response_kid)
    answer = requests.post(required.url + "/pts/v2/credits", data=body, timeout=10,
                           headers=headers | {"Content-Type": "application/json"})
    assert answer.status_code == 400
    # The refusal itself comes encrypted to the response key the JWT named.
    _, refusal = _independent_jwe_open(answer.json()["encryptedResponse"], required.keys.response_key)
    assert "encryptedRequest: the JWE does not decrypt" in json.loads(refusal)["message"]
    assert required.credits() == []


def test_an_answer_encrypted_to_another_key_is_an_unknown_outcome_naming_the_setting(required, tmp_path):
    wrong = tmp_path / "not-my-response-key.pem"
    wrong.write_bytes(OTHER_KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
    good = required.jwt_config()
    config = Config(good.merchant_id, environment=good.environment, auth_type="jwt", key_file=good.key_file,
                    key_password=good.key_password, identity=good.identity,
                    mle=MleSettings(request_optional=True, response=True, response_kid=required.key_files.response_kid,
                                    response_key_path=str(wrong)))
    client = Client(config, ledger=":memory:")
    with pytest.raises(AmbiguousOutcomeError, match=r"responseMlePrivateKeyFilePath \(not-my-response-key\.pem"):
        client.create_credit("1.00", "USD", card=CARD)
    assert len(required.credits()) == 1  # the sandbox did create it: the outcome is unknown, never retried
    assert len(client.ledger.unknown_outcomes(config.ledger_environment, config.merchant_id)) == 1


@pytest.mark.parametrize(("change", "setting"), [
    ({"key_password": "wrong"}, "key_password"),
    ({"key_file_name": "nobody"}, "key_file_name"),
    ({"requestMleKeyAlias": "NoSuchAlias"}, "requestMleKeyAlias"),
    ({"responseMlePrivateKeyFilePassword": "wrong"}, "responseMlePrivateKeyFilePassword"),
])
def test_a_wrong_key_setting_is_named_when_the_client_is_built(required, change, setting):
    d = required.sdk_config() | change
    with pytest.raises(ConfigError) as error:
        Client(Config.from_sdk_dict(d), ledger=":memory:")
    assert error.value.field == setting
    assert "wrong" not in str(error.value).replace("a wrong password", "")  # the password is not echoed
    # Every frame from reconkit's entry point down, with its locals (the test's own dict holds the password).
    text = "".join(traceback.TracebackException(type(error.value), error.value, error.tb.tb_next,
                                                capture_locals=True).format())
    assert required.key_files.password not in text


def test_shared_secret_jwt_with_request_mle_from_the_pem_certificate(required):
    client = Client(required.jwt_config(key_type="SHARED_SECRET"), ledger=":memory:")
    assert "JWT (shared secret, HS256) + MLE request/response" in repr(client)
    assert client.create_credit("2.00", "USD", card=CARD).status == "PENDING"
    assert required.mle_log == [("POST", "/pts/v2/credits", True, True)]


def test_optional_mle_takes_plain_and_encrypted_and_answers_as_asked():
    with Sandbox(start=START) as sb:
        assert sb.client().create_credit("1.00", "USD", card=CARD).status == "PENDING"  # HTTP Signature
        Client(sb.jwt_config(response_mle=False), ledger=":memory:").create_credit("1.00", "USD", card=CARD)
        Client(sb.jwt_config(request_mle=False), ledger=":memory:").create_credit("1.00", "USD", card=CARD)
        assert sb.mle_log == [("POST", "/pts/v2/credits", True, False), ("POST", "/pts/v2/credits", False, True)]
        assert len(sb.credits()) == 3 and sb.auth_failures == []


# --- configuration ------------------------------------------------------------------------------
def test_the_sdk_keys_and_defaults_are_honoured():
    base = {"authentication_type": "jwt", "merchantid": "m1", "run_environment": "apitest.cybersource.com"}
    config = Config.from_sdk_dict(base)
    assert (config.key_file, config.key_alias, config.jwt_key_type) == ("./resources/m1.p12", "m1", "P12")
    assert config.key_password is not None and config.key_password == "m1"  # the SDK's default password
    mapped = Config.from_sdk_dict(base | {"mapToControlMLEonAPI": {"create_credit": "false::true"},
                                          "useMLEGlobally": True, "responseMlePrivateKeyFilePath": "r.pem",
                                          "responseMleKID": "k"})
    assert not mapped.mle.encrypts_request("POST", "/pts/v2/credits")
    assert mapped.mle.encrypts_request("POST", "/pts/v2/credits/1/voids")
    assert mapped.mle.encrypts_response("POST", "/pts/v2/credits") and not mapped.mle.response
    assert not mapped.mle.encrypts_request("GET", "/reporting/v3/reports")  # the SDK marks reporting "false"
    with pytest.raises(ConfigError, match="useMLEGlobally"):
        Config.from_sdk_dict(base | {"useMLEGlobally": True, "enableRequestMLEForOptionalApisGlobally": False})
    with pytest.raises(ConfigError, match="useMLEGlobally: message-level encryption needs authentication_type JWT"):
        Config.from_sdk_dict(base | {"authentication_type": "http_signature", "merchant_keyid": "k",
                                     "merchant_secretkey": "AAAA", "useMLEGlobally": True})
    with pytest.raises(ConfigError, match="responseMleKID"):
        Config.from_sdk_dict(base | {"enableResponseMleGlobally": True, "responseMlePrivateKeyFilePath": "r.pem"})
    with pytest.raises(ConfigError, match=r"mapToControlMLEonAPI\.create_credit"):
        Config.from_sdk_dict(base | {"mapToControlMLEonAPI": {"create_credit": "yes"}})


def test_secrets_never_print(required):
    files = required.key_files
    config = required.jwt_config()
    client = Client(config, ledger=":memory:")
    texts = [repr(config), str(config), repr(client), repr(client.session.auth), repr(CyberSourceAuth(config).keyring),
             repr(files), repr(required.keys), repr(config.mle), ConnectionBanner(config).value]
    for text in texts:
        assert files.password not in text


def test_the_banner_names_the_scheme_and_deprecates_http_signature():
    with Sandbox(start=START) as sb:
        assert "HTTP Signature (deprecated)" in ConnectionBanner(sb.config).value
        assert "JWT (P12, RS256) + MLE request/response" in ConnectionBanner(sb.jwt_config()).value


def test_an_authentication_failure_is_answered_in_clear(required):
    config = required.jwt_config()
    keyring = CyberSourceAuth(config).keyring
    body = envelope("encryptedRequest", encrypt_compact(BODY, keyring.request_key, keyring.request_kid))
    headers = auth_headers(config, "POST", "/pts/v2/credits", body, keyring=keyring, response_kid=keyring.response_kid)
    answer = requests.post(required.url + "/pts/v2/credits", data=body + b" ", timeout=10,
                           headers=headers | {"Content-Type": "application/json"})
    assert answer.status_code == 401 and answer.json() == {"response": {"rmsg": "Authentication Failed"}}
    assert required.auth_failures == ["JWT digest does not match the body"] and required.mle_log == []


def test_reads_under_the_mandate_decrypt_transaction_details_and_searches():
    with Sandbox(start=START, mle="required", self_link_status=405, tss_delay=timedelta(0)) as sb:
        client = sb.client()
        credit = client.create_credit("7.00", "EUR", card=CARD)
        read = client.get_credit(credit.id)  # the self link answers 405: Transaction Details, encrypted
        assert (read.source, read.id) == ("tss", credit.id)
        found = client.find_credits_by_reference(credit.reference_code)
        assert [c.id for c in found] == [credit.id]
        assert ("GET", f"/tss/v2/transactions/{credit.id}", False, True) in sb.mle_log
        assert ("POST", "/tss/v2/searches", True, True) in sb.mle_log
        assert sb.auth_failures == []


def test_a_p12_config_from_the_environment_needs_no_shared_secret():
    with Sandbox(start=START) as sb:
        files = sb.key_files
        environ = {"CYBERSOURCE_MERCHANT_ID": sb.credentials.merchant_id, "CYBERSOURCE_AUTH_TYPE": "jwt",
                   "CYBERSOURCE_KEY_FILE": str(files.p12), "CYBERSOURCE_KEY_PASSWORD": files.password,
                   "CYBERSOURCE_ENVIRONMENT": sb.url}
        config = Config.from_env(environ, dotenv=None)
        assert config.auth_scheme == "JWT (P12, RS256)" and files.password not in repr(config)
        assert Client(config, ledger=":memory:").create_credit("3.00", "USD", card=CARD).status == "PENDING"
        assert sb.auth_failures == []
        with pytest.raises(ConfigError, match="CYBERSOURCE_KEY_FILE"):
            Config.from_env({k: v for k, v in environ.items() if k != "CYBERSOURCE_KEY_FILE"}
                            | {"CYBERSOURCE_JWT_KEY_TYPE": "P12"}, dotenv=None)


def _forged(sb: Sandbox, header: dict, key: bytes | rsa.RSAPrivateKey) -> dict[str, str]:
    """Headers of a credit POST whose JWT (claims as the SDK's) is signed by ``key`` under ``header``."""
    import hmac as hmac_

    from reconkit.auth import jwt_claims
    config = sb.jwt_config(request_mle=False, response_mle=False)
    claims = jwt_claims(config, "POST", "/pts/v2/credits", BODY)
    signing_input = (base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=") + b"." +
                     base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"="))
    if isinstance(key, bytes):
        signature = hmac_.new(key, signing_input, hashlib.sha256).digest()
    else:
        signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    token = signing_input + b"." + base64.urlsafe_b64encode(signature).rstrip(b"=")
    return {"Authorization": f"Bearer {token.decode()}", "Host": config.host, "Content-Type": "application/json"}


def test_forged_p12_jwts_are_refused():
    with Sandbox(start=START) as sb:
        kid = sb.keys.merchant_kid
        public_pem = sb.keys.merchant_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                                    serialization.PublicFormat.SubjectPublicKeyInfo)
        cases = [({"kid": kid, "alg": "RS256", "typ": "JWT"}, OTHER_KEY),      # right kid, another key
                 ({"kid": kid, "alg": "HS256", "typ": "JWT"}, public_pem),     # algorithm confusion
                 ({"kid": "0000", "alg": "RS256", "typ": "JWT"}, sb.keys.merchant_key)]  # unknown kid
        for header, key in cases:
            answer = requests.post(sb.url + "/pts/v2/credits", data=BODY, headers=_forged(sb, header, key), timeout=10)
            assert answer.status_code == 401, header
        assert sb.auth_failures == ["JWT signature mismatch", "unknown JWT key or algorithm",
                                    "unknown JWT key (kid is not the serial number of the merchant's certificate)"]
        genuine = _forged(sb, {"kid": kid, "alg": "RS256", "typ": "JWT"}, sb.keys.merchant_key)
        assert requests.post(sb.url + "/pts/v2/credits", data=BODY, headers=genuine, timeout=10).status_code == 201
