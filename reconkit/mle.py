"""Message-level encryption (MLE): which calls are encrypted, and the JWE both ways.

CyberSource's MLE is JWE compact serialization, RSA-OAEP-256 key wrap and A256GCM content
encryption (reference §3.1b). Following the official SDK 0.0.80
(``authenticationsdk/util/MLEUtility.py``):

- a request body is replaced by ``{"encryptedRequest": "<JWE>"}`` (``json.dumps`` with its
  default separators), the JWE's protected header being ``alg``, ``enc``, ``kid`` (the subject
  serial number of CyberSource's MLE certificate) and ``iat``; the JWT's ``digest`` is over
  these encrypted bytes, the ones sent;
- a response is encrypted when the JWT carries a ``v-c-response-mle-kid`` claim; the body is then
  exactly ``{"encryptedResponse": "<JWE>"}``, decrypted with the merchant's response key;
- whether a call is encrypted follows the SDK's flags and ``mapToControlMLEonAPI``, keyed by the
  SDK's operation ids (``create_credit``, ...), see :data:`OPERATIONS`.

The JOSE work is done by joserfc; this module only fixes the algorithms and the shapes.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey
from joserfc.registry import HeaderParameter

from .errors import ConfigError, MessageEncryptionError
from .keys import CYBERSOURCE_MLE_ALIAS
from .secret import Secret

__all__ = [
    "OPERATIONS",
    "MleSettings",
    "decrypt_compact",
    "encrypt_compact",
    "encrypted_request_token",
    "encrypted_response_token",
    "envelope",
    "operation",
]

ALGORITHMS = ("RSA-OAEP-256", "A256GCM")
"""The only key-wrap and content algorithms MLE uses; anything else is refused."""
_REGISTRY = jwe.JWERegistry(header_registry={"iat": HeaderParameter("issued at", "int")}, algorithms=list(ALGORITHMS))

OPERATIONS: tuple[tuple[str, re.Pattern[str], str, str], ...] = (
    ("POST", re.compile(r"^/pts/v2/credits/?$"), "create_credit", "optional"),
    ("POST", re.compile(r"^/pts/v2/credits/[^/]+/voids/?$"), "void_credit", "optional"),
    ("GET", re.compile(r"^/tss/v2/transactions/[^/]+/?$"), "get_transaction", "optional"),
    ("POST", re.compile(r"^/tss/v2/searches/?$"), "create_search", "optional"),
    ("GET", re.compile(r"^/tss/v2/searches/[^/]+/?$"), "get_search", "optional"),
    ("GET", re.compile(r"^/reporting/v3/report-downloads/?$"), "download_report", "false"),
    ("GET", re.compile(r"^/reporting/v3/reports/?$"), "search_reports", "false"),
    ("GET", re.compile(r"^/reporting/v3/purchase-refund-details/?$"), "get_purchase_and_refund_details", "false"),
)
"""(method, path, the SDK's operation id, its ``inbound_mle_status``) as in the SDK's ``CyberSource/api``
modules. The self link ``GET /pts/v2/credits/{id}`` is no SDK operation: it is never encrypted."""


def operation(method: str, path: str) -> tuple[str, str] | None:
    """The SDK's ``(operation id, inbound MLE status)`` of a call, or None (query string ignored)."""
    bare = path.split("?", 1)[0]
    for verb, pattern, name, status in OPERATIONS:
        if verb == method.upper() and pattern.match(bare):
            return name, status
    return None


def _flag(d: Mapping[str, Any], key: str, default: bool = False) -> bool:
    value = d.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in ("true", "false"):
        raise ConfigError(key, f"must be true or false, not {value!r}")
    return text == "true"


def _control_map(value: Any) -> tuple[dict[str, bool], dict[str, bool]]:
    """``mapToControlMLEonAPI`` split into its request and response halves, as the SDK splits it:
    a bool or ``"true"`` is the request leg; ``"req::resp"`` sets either side or both."""
    requests_: dict[str, bool] = {}
    responses: dict[str, bool] = {}
    if value is None:
        return requests_, responses
    if not isinstance(value, Mapping):
        raise ConfigError("mapToControlMLEonAPI", "must be a mapping of SDK operation ids to true/false")
    for api, setting in value.items():
        if isinstance(setting, bool):
            requests_[str(api)] = setting
            continue
        if not isinstance(setting, str):
            raise ConfigError(f"mapToControlMLEonAPI.{api}", f"must be true, false or 'req::resp', not {setting!r}")
        parts = setting.split("::")
        if len(parts) > 2 or not all(p.strip().lower() in ("", "true", "false") for p in parts) or \
                not any(p.strip() for p in parts):
            raise ConfigError(f"mapToControlMLEonAPI.{api}", f"must be 'true', 'false' or 'req::resp' "
                              f"with each side true, false or empty, not {setting!r}")
        if parts[0].strip():
            requests_[str(api)] = parts[0].strip().lower() == "true"
        if len(parts) == 2 and parts[1].strip():
            responses[str(api)] = parts[1].strip().lower() == "true"
    return requests_, responses


@dataclass(frozen=True)
class MleSettings:
    """The SDK's MLE settings (reference §7.2), under their reconkit names.

    Parameters
    ----------
    request_optional : bool
        ``enableRequestMLEForOptionalApisGlobally`` (alias ``useMLEGlobally``).
    disable_request_mandatory : bool
        ``disableRequestMLEForMandatoryApisGlobally``.
    request_map, response_map : tuple of (operation id, bool)
        ``mapToControlMLEonAPI``, split into its request and response legs (pairs, so that a
        config stays hashable).
    request_key_alias : str
        ``requestMleKeyAlias`` (alias ``mleKeyAlias``): CN of CyberSource's MLE certificate.
    request_cert_path : str, optional
        ``mleForRequestPublicCertPath``: a PEM holding that certificate (else it comes from the P12).
    response : bool
        ``enableResponseMleGlobally``.
    response_kid : str, optional
        ``responseMleKID``; read from a CyberSource P12 given as the response key when absent.
    response_key_path : str, optional
        ``responseMlePrivateKeyFilePath`` (``.p12``, ``.pfx``, ``.pem``, ``.key`` or ``.p8``).
    response_key_password : Secret, optional
        ``responseMlePrivateKeyFilePassword``. Never printed.
    """

    request_optional: bool = False
    disable_request_mandatory: bool = False
    request_map: tuple[tuple[str, bool], ...] = ()
    response_map: tuple[tuple[str, bool], ...] = ()
    request_key_alias: str = CYBERSOURCE_MLE_ALIAS
    request_cert_path: str | None = None
    response: bool = False
    response_kid: str | None = None
    response_key_path: str | None = None
    response_key_password: Secret | None = field(default=None, repr=False)

    @classmethod
    def from_sdk_dict(cls, d: Mapping[str, Any]) -> MleSettings:
        """Read the SDK's MLE keys (unknown keys are ignored, as the SDK ignores them)."""
        enable, alias = d.get("enableRequestMLEForOptionalApisGlobally"), d.get("useMLEGlobally")
        if enable is not None and alias is not None and _flag(d, "enableRequestMLEForOptionalApisGlobally") \
                != _flag(d, "useMLEGlobally"):
            raise ConfigError("useMLEGlobally", "and enableRequestMLEForOptionalApisGlobally must have the same value")
        key = "enableRequestMLEForOptionalApisGlobally" if enable is not None else "useMLEGlobally"
        request_map, response_map = _control_map(d.get("mapToControlMLEonAPI"))
        if d.get("responseMlePrivateKey") is not None:
            raise ConfigError("responseMlePrivateKey", "a key object is not read by reconkit; give "
                              "responseMlePrivateKeyFilePath")
        alias_text = str(d.get("requestMleKeyAlias") or d.get("mleKeyAlias") or "").strip()
        password = d.get("responseMlePrivateKeyFilePassword")
        return cls(
            request_optional=_flag(d, key),
            disable_request_mandatory=_flag(d, "disableRequestMLEForMandatoryApisGlobally"),
            request_map=tuple(request_map.items()), response_map=tuple(response_map.items()),
            request_key_alias=alias_text or CYBERSOURCE_MLE_ALIAS,
            request_cert_path=str(d.get("mleForRequestPublicCertPath") or "").strip() or None,
            response=_flag(d, "enableResponseMleGlobally"),
            response_kid=str(d.get("responseMleKID") or "").strip() or None,
            response_key_path=str(d.get("responseMlePrivateKeyFilePath") or "").strip() or None,
            response_key_password=Secret(password) if password is not None else None,
        )

    @property
    def any_request(self) -> bool:
        """True when some call may be sent encrypted."""
        return self.request_optional or any(on for _, on in self.request_map)

    @property
    def any_response(self) -> bool:
        """True when some answer may come back encrypted."""
        return self.response or any(on for _, on in self.response_map)

    def encrypts_request(self, method: str, path: str) -> bool:
        """Whether this call's body is encrypted (``MLEUtility.check_is_mle_for_api``)."""
        found = operation(method, path)
        if found is None:
            return False
        name, status = found
        enabled = (status == "optional" and self.request_optional) or \
                  (status == "mandatory" and not self.disable_request_mandatory)
        return dict(self.request_map).get(name, enabled)

    def encrypts_response(self, method: str, path: str) -> bool:
        """Whether this call asks for an encrypted answer (``check_is_response_mle_for_api``)."""
        found = operation(method, path)
        if found is None:
            return False
        return dict(self.response_map).get(found[0], self.response)

    def __repr__(self) -> str:
        on = [name for name, value in (("request", self.any_request), ("response", self.any_response)) if value]
        return f"MleSettings({'+'.join(on) or 'off'}, request_key_alias={self.request_key_alias!r})"


def encrypt_compact(plaintext: bytes, public_key: RSAPublicKey, kid: str, *, now: int | None = None) -> str:
    """A JWE compact token of ``plaintext`` to ``public_key``, with the SDK's protected header."""
    header = {"alg": ALGORITHMS[0], "enc": ALGORITHMS[1], "kid": kid, "iat": int(time.time() if now is None else now)}
    return jwe.encrypt_compact(header, plaintext, RSAKey.import_key(public_key), registry=_REGISTRY)


def decrypt_compact(token: str, private_key: RSAPrivateKey) -> tuple[bytes, dict[str, Any]]:
    """The plaintext and protected header of a JWE compact token.

    Raises
    ------
    MessageEncryptionError
        The token is malformed, uses other algorithms, was tampered with, or is not for this key.
    """
    try:
        found = jwe.decrypt_compact(token, RSAKey.import_key(private_key), registry=_REGISTRY)
    except (JoseError, ValueError, TypeError) as exc:
        reason = str(exc).split(": ", 1)[-1] or type(exc).__name__
        raise MessageEncryptionError(f"the JWE does not decrypt ({reason}): tampered, or encrypted to "
                                     "another key") from None
    if found.plaintext is None:
        raise MessageEncryptionError("the JWE has no content")
    return found.plaintext, dict(found.protected)


def envelope(name: str, token: str) -> bytes:
    """``{"<name>": "<token>"}`` as the SDK writes it (``json.dumps`` default separators)."""
    return json.dumps({name: token}).encode("utf-8")


def _token(body: bytes | str | None, name: str) -> str | None:
    if not body:
        return None
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if isinstance(parsed, dict) and len(parsed) == 1 and isinstance(parsed.get(name), str):
        return parsed[name]
    return None


def encrypted_response_token(body: bytes | str | None) -> str | None:
    """The JWE of a body that is exactly ``{"encryptedResponse": "<JWE>"}``, else None
    (``MLEUtility.check_is_mle_encrypted_response``)."""
    return _token(body, "encryptedResponse")


def encrypted_request_token(body: bytes | str | None) -> str | None:
    """The JWE of a body that is exactly ``{"encryptedRequest": "<JWE>"}``, else None."""
    return _token(body, "encryptedRequest")
