"""Request signing: HTTP Signature, JWT (P12 RS256 or shared-secret HS256), and MLE.

The signers follow the official SDK (the reference doc's vectors A, B and D; §3.3 for JWT).
:class:`CyberSourceAuth` plugs them into ``requests``: when message-level encryption applies
(:mod:`reconkit.mle`) it replaces the body by its encrypted envelope *before* signing, so that
the bytes signed are exactly the bytes sent, and it decrypts an encrypted answer in place.
HTTP Signature stays available but is deprecated: CyberSource's 2026 mandate moves merchants to
JWT with MLE (reference §3.1b).
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from joserfc import jws
from joserfc.jwk import RSAKey

from . import mle
from .config import Config
from .errors import ConfigError, MessageEncryptionError
from .keys import (
    CYBERSOURCE_MLE_ALIAS,
    P12Keys,
    certificate_by_alias,
    load_p12,
    load_private_key,
    public_key_of,
    read_pem_certificates,
    subject_serial_number,
)
from .secret import Secret

__all__ = ["CyberSourceAuth", "Keyring", "digest", "http_date", "jwt_claims", "jwt_token", "sign_request",
           "signing_string"]

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


def jwt_claims(config: Config, method: str, path: str, body: bytes | None, *, now: int | None = None,
               jti: str | None = None, response_kid: str | None = None) -> dict[str, Any]:
    """The SDK's JWT claims for one request (``Token.get_payload_claim_set``).

    The token expires 120 seconds after ``now``; POST/PUT/PATCH bodies are bound to it by a
    ``digest`` claim (base64 SHA-256 without the ``SHA-256=`` prefix); ``response_kid`` asks for
    an encrypted answer (``v-c-response-mle-kid``).
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
    if response_kid:
        claims["v-c-response-mle-kid"] = response_kid
    return claims


def jwt_token(config: Config, method: str, path: str, body: bytes | None, *, now: int | None = None,
              jti: str | None = None, response_kid: str | None = None) -> str:
    """A shared-secret (HS256) JWT for one request, with :func:`jwt_claims`."""
    claims = jwt_claims(config, method, path, body, now=now, jti=jti, response_kid=response_kid)
    header = {"kid": config.key_id, "alg": "HS256", "typ": "JWT"}
    signing_input = f"{_b64url(_compact(header))}.{_b64url(_compact(claims))}"
    mac = config.secret_key.hmac_sha256(signing_input.encode("ascii"))
    return f"{signing_input}.{_b64url(mac)}"


def jwt_rs256_token(config: Config, keys: P12Keys, method: str, path: str, body: bytes | None, *,
                    now: int | None = None, jti: str | None = None, response_kid: str | None = None) -> str:
    """A P12 (RS256) JWT: header ``kid`` = the signing certificate's subject serial number."""
    claims = jwt_claims(config, method, path, body, now=now, jti=jti, response_kid=response_kid)
    header = {"kid": keys.kid, "alg": "RS256", "typ": "JWT"}
    return jws.serialize_compact(header, _compact(claims), RSAKey.import_key(keys.private_key), algorithms=["RS256"])


@dataclass(frozen=True)
class Keyring:
    """The key material a config points at, opened once: the P12 (JWT RS256), CyberSource's
    request-MLE certificate and the response-MLE private key, each only when needed.

    ``repr`` names files and key ids, never a key or a password.
    """

    p12: P12Keys | None = None
    request_key: RSAPublicKey | None = None
    request_kid: str | None = None
    response_key: RSAPrivateKey | None = None
    response_kid: str | None = None

    @classmethod
    def load(cls, config: Config) -> Keyring:
        """Open the files ``config`` names.

        Raises
        ------
        ConfigError
            Naming the SDK setting whose file, password, alias or key id is wrong.
        """
        settings = config.mle
        p12 = None
        if config.jwt_key_type == "P12":
            assert config.key_file and config.key_password is not None and config.key_alias
            p12 = load_p12(config.key_file, config.key_password, config.key_alias)
        request_key = request_kid = None
        if settings.any_request:
            if settings.request_cert_path:
                certificates = read_pem_certificates(settings.request_cert_path, "mleForRequestPublicCertPath")
                # As the SDK: the alias's certificate, else the file's first.
                found = certificate_by_alias(certificates, settings.request_key_alias) or \
                    (certificates[0] if certificates else None)
                where, setting = settings.request_cert_path, "mleForRequestPublicCertPath"
            else:
                assert p12 is not None  # Config refuses request MLE with a shared secret and no certificate
                found = certificate_by_alias(list(p12.certificates), settings.request_key_alias)
                where, setting = str(p12.path), "requestMleKeyAlias"
            if found is None:
                raise ConfigError(setting, f"no certificate with CN {settings.request_key_alias!r} in {where} "
                                  "(CyberSource's MLE certificate)")
            request_kid = subject_serial_number(found)
            if not request_kid:
                raise ConfigError(setting, f"the MLE certificate in {where} has no subject serialNumber (its kid)")
            request_key = public_key_of(found, setting)
        response_key = response_kid = None
        if settings.any_response:
            assert settings.response_key_path
            response_key = load_private_key(settings.response_key_path, settings.response_key_password,
                                            setting="responseMlePrivateKeyFilePath",
                                            password_setting="responseMlePrivateKeyFilePassword")
            response_kid = settings.response_kid or _cybersource_response_kid(config)
        return cls(p12, request_key, request_kid, response_key, response_kid)


def _cybersource_response_kid(config: Config) -> str:
    """The response key id read from a CyberSource-generated P12 given as the response key: the
    subject serial number of the certificate whose CN is the merchant (the portfolio under
    MetaKey), as ``MLEUtility.validate_and_auto_extract_response_mle_kid`` does."""
    path = config.mle.response_key_path or ""
    password = config.mle.response_key_password
    keys = load_p12(path, password if password is not None else config.key_password or Secret(""),
                    config.signing_merchant_id, file_setting="responseMlePrivateKeyFilePath",
                    password_setting="responseMlePrivateKeyFilePassword", alias_setting="responseMleKID")
    if certificate_by_alias(list(keys.certificates), CYBERSOURCE_MLE_ALIAS) is None:
        raise ConfigError("responseMleKID", f"is needed: {Path(path).name} is not a CyberSource P12 "
                          f"(no {CYBERSOURCE_MLE_ALIAS} certificate) to read it from")
    return keys.kid


def auth_headers(config: Config, method: str, path: str, body: bytes | None, *,
                 date: str | None = None, keyring: Keyring | None = None,
                 response_kid: str | None = None) -> dict[str, str]:
    """The authentication headers for ``config.auth_type`` (signature or bearer JWT)."""
    if config.auth_type == "jwt":
        if config.jwt_key_type == "P12":
            keys = (keyring or Keyring.load(config)).p12
            assert keys is not None
            token = jwt_rs256_token(config, keys, method, path, body, response_kid=response_kid)
        else:
            token = jwt_token(config, method, path, body, response_kid=response_kid)
        return {"Host": config.host, "v-c-merchant-id": config.merchant_id, "Authorization": f"Bearer {token}"}
    return sign_request(config, method, path, body, date or http_date())


class CyberSourceAuth(requests.auth.AuthBase):
    """A ``requests`` auth hook: encrypts the body when MLE applies, signs the exact bytes sent,
    and decrypts an encrypted answer in place.

    The key files are opened here, once, so a wrong file, password or alias is a
    :class:`~reconkit.errors.ConfigError` when the client is built, not at the first credit.
    A response that cannot be decrypted keeps an empty body and carries the reason in
    ``response.mle_error`` (a credit POST's outcome is then unknown, not lost).
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self.keyring = Keyring.load(config) if config.auth_type == "jwt" else Keyring()

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        parts = urlsplit(request.url or "")
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        method = (request.method or "GET").upper()
        body = request.body
        if isinstance(body, str):
            body = body.encode("utf-8")
        settings = self.config.mle
        keyring = self.keyring
        if body and keyring.request_key is not None and settings.encrypts_request(method, parts.path):
            assert keyring.request_kid is not None
            body = mle.envelope("encryptedRequest", mle.encrypt_compact(body, keyring.request_key,
                                                                        keyring.request_kid))
            request.body = body
            request.headers["Content-Length"] = str(len(body))
        response_kid = None
        if keyring.response_key is not None and settings.encrypts_response(method, parts.path):
            response_kid = keyring.response_kid
            request.register_hook("response", self._decrypt)
        request.headers.update(auth_headers(self.config, method, target, body, keyring=keyring,
                                            response_kid=response_kid))
        return request

    def _decrypt(self, response: requests.Response, **_: Any) -> requests.Response:
        """Replace an ``{"encryptedResponse": ...}`` body by its plaintext; a plain answer (the
        service may answer an error unencrypted) is left as it is, as the SDK leaves it."""
        token = mle.encrypted_response_token(response.content)
        response.mle_decrypted = False  # type: ignore[attr-defined]
        if token is None:
            return response
        assert self.keyring.response_key is not None
        try:
            plaintext, _header = mle.decrypt_compact(token, self.keyring.response_key)
        except MessageEncryptionError as exc:
            where = urlsplit(response.url or "").path
            response.mle_error = (  # type: ignore[attr-defined]
                f"the encrypted answer to {response.request.method} {where} does not decrypt with "
                f"responseMlePrivateKeyFilePath ({Path(self.config.mle.response_key_path or '').name}, "
                f"responseMleKID {self.keyring.response_kid!r}): {str(exc).removeprefix('the JWE does not decrypt ')}")
            response._content = b""
            return response
        response._content = plaintext
        response.headers["Content-Length"] = str(len(plaintext))
        response.mle_decrypted = True  # type: ignore[attr-defined]
        return response

    def __repr__(self) -> str:
        return (f"CyberSourceAuth(merchant_id={self.config.merchant_id!r}, auth_type={self.config.auth_type!r}, "
                f"scheme={self.config.auth_scheme!r})")
