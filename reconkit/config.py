"""Credentials and environment: ``Config``.

A config is built directly, from environment variables (and a ``.env`` file), or from the
official SDK's configuration dictionary. The shared secret is kept out of every ``repr``,
``str`` and error message.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from urllib3.util import parse_url

from .errors import ConfigError
from .hosts import production_host, request_host
from .mle import MleSettings
from .secret import Secret

__all__ = ["ENVIRONMENTS", "Config"]

log = logging.getLogger("reconkit")

ENVIRONMENTS = {
    "test": "https://apitest.cybersource.com",
    "production": "https://api.cybersource.com",
}
_AUTH_TYPES = ("http_signature", "jwt")
_JWT_KEY_TYPES = ("P12", "SHARED_SECRET")
_SDK_DEFAULT_KEYS_DIRECTORY = "./resources"
"""Where the SDK looks for ``<key_file_name>.p12`` when ``keys_directory`` is not given."""
_ENV_VARS = {
    "merchant_id": "CYBERSOURCE_MERCHANT_ID",
    "key_id": "CYBERSOURCE_KEY_ID",
    "secret_key": "CYBERSOURCE_SECRET_KEY",
    "environment": "CYBERSOURCE_ENVIRONMENT",
    "auth_type": "CYBERSOURCE_AUTH_TYPE",
    "portfolio_id": "CYBERSOURCE_PORTFOLIO_ID",
    "jwt_key_type": "CYBERSOURCE_JWT_KEY_TYPE",
    "key_file": "CYBERSOURCE_KEY_FILE",
    "key_password": "CYBERSOURCE_KEY_PASSWORD",
}
_SECRET_VARS = frozenset({_ENV_VARS["secret_key"], _ENV_VARS["key_password"]})
_SDK_SECRET_KEYS = ("merchant_secretkey", "merchant_secret_key")
_MERCHANT_ID = re.compile(r"^[A-Za-z0-9_\-.]{1,64}$")
_IDENTITY = re.compile(r"^[a-z][a-z0-9]*:[A-Za-z0-9._:-]{1,200}$")
_PLAIN_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[A-Za-z0-9.\-\[\]:]+(/[A-Za-z0-9._~\-/]*)?$")


def _canonical_environment(environment: str) -> str:
    """``"test"``, ``"production"`` or a canonical base URL, decided on the host the HTTP stack
    will connect to. A production host is always reached as ``https://host``."""
    env = environment.strip()
    if env.lower() in ENVIRONMENTS:
        return env.lower()
    host = production_host(env)
    if host is not None:
        url = f"https://{host}"
        return "production" if url == ENVIRONMENTS["production"] else url
    expected = f"must be 'test', 'production' or a base URL like http://127.0.0.1:8765, not {env!r}"
    connects_to = request_host(env)
    if not connects_to or not _PLAIN_URL.match(env):
        # userinfo, a query, a fragment, backslashes or escapes make a URL mean two things
        raise ConfigError("environment", expected)
    parts = parse_url(env)
    if parts.scheme not in ("http", "https"):
        raise ConfigError("environment", expected)
    port = f":{parts.port}" if parts.port is not None else ""
    host_text = f"[{connects_to.strip('[]')}]" if ":" in connects_to else connects_to
    url = f"{parts.scheme}://{host_text}{port}{(parts.path or '').rstrip('/')}"
    for name, known in ENVIRONMENTS.items():
        if url == known:
            return name
    return url


def _masked_settings(values: Mapping[str, Any], secret_keys: frozenset[str] | tuple[str, ...]) -> dict[str, Any]:
    """A copy of ``values`` with every secret wrapped in :class:`Secret` (never raises)."""
    return {key: Secret(value) if key in secret_keys else value for key, value in values.items()}


@dataclass(frozen=True, repr=False, init=False)
class Config:
    """Where to send requests and how to sign them.

    Parameters
    ----------
    merchant_id : str
        The transacting merchant id (``v-c-merchant-id``).
    key_id : str
        The shared-secret key id (``keyid`` of the signature, ``kid`` of a JWT).
    secret_key : str or Secret
        The base64 shared secret, kept as a :class:`~reconkit.secret.Secret`. Never printed.
    environment : str
        ``"test"`` (apitest.cybersource.com, the default), ``"production"``, or a base URL such as
        ``"http://127.0.0.1:8765"`` for the local sandbox. Any URL whose host is production
        (however it is spelled) is production.
    auth_type : {"http_signature", "jwt"}
    portfolio_id : str, optional
        MetaKey portfolio: signs as the portfolio while transacting as ``merchant_id``.
    label : str, optional
        The name the apps show for the environment (the sandbox's ``"SANDBOX"``).
    jwt_key_type : {"P12", "SHARED_SECRET"}, optional
        For ``auth_type="jwt"``: RS256 with the P12's private key, or HS256 with the shared secret.
        By default P12 when ``key_file`` is given, else SHARED_SECRET.
    key_file : str, optional
        The P12 (``<keys_directory>/<key_file_name>.p12``); with it ``key_id``/``secret_key`` are
        not needed.
    key_password : str or Secret, optional
        The P12's password (the SDK's default: the merchant id). Never printed.
    key_alias : str, optional
        CN of the signing certificate in the P12; the SDK forces it to the merchant id (the
        portfolio under MetaKey), and so does reconkit when it is not given.
    mle : MleSettings, optional
        Message-level encryption (JWT only); see :mod:`reconkit.mle`.
    identity : str, optional
        A stable name for the server behind a local ``environment`` URL whose port changes from
        run to run (the embedded sandbox passes its database's), e.g. ``"sandbox:3f2a..."``. The
        ledger keys credits, voids and the fetch cache by :attr:`ledger_environment`, so they
        outlive the port. Not a URL, and never given for production.
    """

    merchant_id: str
    key_id: str | None
    secret_key: Secret
    environment: str = "test"
    auth_type: str = "http_signature"
    portfolio_id: str | None = None
    label: str | None = field(default=None, compare=False)
    identity: str | None = None
    jwt_key_type: str | None = None
    key_file: str | None = None
    key_password: Secret | None = None
    key_alias: str | None = None
    mle: MleSettings = field(default_factory=MleSettings)

    def __init__(self, merchant_id: str, key_id: str | None = None, secret_key: str | Secret | None = None,
                 environment: str = "test", auth_type: str = "http_signature", portfolio_id: str | None = None,
                 label: str | None = None, identity: str | None = None, *, jwt_key_type: str | None = None,
                 key_file: str | os.PathLike[str] | None = None, key_password: str | Secret | None = None,
                 key_alias: str | None = None, mle: MleSettings | None = None) -> None:
        # The plain text must not outlive this line in a frame that can raise.
        object.__setattr__(self, "secret_key", Secret(secret_key))
        object.__setattr__(self, "key_password", Secret(key_password) if key_password is not None else None)
        del secret_key, key_password
        for name, value in (("merchant_id", merchant_id), ("key_id", key_id), ("environment", environment),
                            ("auth_type", auth_type), ("portfolio_id", portfolio_id), ("label", label),
                            ("identity", identity), ("jwt_key_type", jwt_key_type),
                            ("key_file", os.fspath(key_file) if key_file is not None else None),
                            ("key_alias", key_alias), ("mle", mle or MleSettings())):
            object.__setattr__(self, name, value)
        for name in ("merchant_id", "environment", "auth_type"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(name, "is missing or empty")
        if not _MERCHANT_ID.match(self.merchant_id):
            raise ConfigError("merchant_id", "may only hold letters, digits, '_', '-' and '.' (1-64 characters)")
        auth = self.auth_type.strip().lower().replace("-", "_")
        if auth not in _AUTH_TYPES:
            raise ConfigError("auth_type", f"must be one of {', '.join(_AUTH_TYPES)}, not {self.auth_type!r}")
        object.__setattr__(self, "auth_type", auth)
        self._check_keys()
        object.__setattr__(self, "environment", _canonical_environment(self.environment))
        if self.portfolio_id is not None and not str(self.portfolio_id).strip():
            object.__setattr__(self, "portfolio_id", None)
        if self.identity is not None:
            # A URL here could file one host's credits under another's key; production is keyed by its host.
            if not isinstance(self.identity, str) or not _IDENTITY.match(self.identity):
                raise ConfigError("identity", "must be a name like 'sandbox:<id>' (letters, digits and "
                                  "':._-', not a URL)")
            if self.is_production:
                raise ConfigError("identity", "is for a local server; a production host is keyed by its URL")

    def _check_keys(self) -> None:
        """The key material the scheme needs is there (files are opened by :mod:`reconkit.auth`)."""
        key_type = None
        if self.auth_type == "jwt":
            key_type = str(self.jwt_key_type or ("P12" if self.key_file else "SHARED_SECRET")).strip().upper()
            if key_type not in _JWT_KEY_TYPES:
                raise ConfigError("jwt_key_type", f"must be P12 or SHARED_SECRET, not {self.jwt_key_type!r}")
        object.__setattr__(self, "jwt_key_type", key_type)
        if key_type == "P12":
            if not self.key_file or not str(self.key_file).strip():
                raise ConfigError("key_file_name", "is needed for JWT with a P12 key (jwt_key_type P12)")
            if self.key_alias is None or not self.key_alias.strip():
                object.__setattr__(self, "key_alias", self.signing_merchant_id)
            if self.key_password is None or self.key_password.is_blank():
                object.__setattr__(self, "key_password", Secret(self.merchant_id))  # the SDK's default
        else:
            if not isinstance(self.key_id, str) or not self.key_id.strip():
                raise ConfigError("key_id", "is missing or empty")
            if self.secret_key.is_blank():
                raise ConfigError("secret_key", "is missing or empty")
            if not self.secret_key.is_base64():
                raise ConfigError("secret_key", "is not valid base64 (the shared secret as CyberSource shows it)")
        mle = self.mle
        if (mle.any_request or mle.any_response) and self.auth_type != "jwt":
            which = "useMLEGlobally" if mle.any_request else "enableResponseMleGlobally"
            raise ConfigError(which, "message-level encryption needs authentication_type JWT "
                              "(CyberSource offers no MLE with HTTP Signature)")
        if mle.any_request and key_type == "SHARED_SECRET" and not mle.request_cert_path:
            raise ConfigError("mleForRequestPublicCertPath", "is needed for request MLE with jwt_key_type "
                              "SHARED_SECRET (there is no P12 to take CyberSource's certificate from)")
        if mle.any_response:
            if not mle.response_key_path:
                raise ConfigError("responseMlePrivateKeyFilePath", "is needed when response MLE is enabled")
            p12 = Path(mle.response_key_path).suffix.lower() in (".p12", ".pfx")
            if not p12 and not mle.response_kid:
                raise ConfigError("responseMleKID", "is needed when the response key is not a CyberSource P12")

    # --- derived -------------------------------------------------------------------------
    @property
    def auth_scheme(self) -> str:
        """The scheme in words, for banners and reprs (no secret): e.g. ``"JWT (P12, RS256) + MLE
        request/response"`` or ``"HTTP Signature (deprecated)"``."""
        if self.auth_type != "jwt":
            return "HTTP Signature (deprecated)"
        scheme = "JWT (P12, RS256)" if self.jwt_key_type == "P12" else "JWT (shared secret, HS256)"
        legs = [leg for leg, on in (("request", self.mle.any_request), ("response", self.mle.any_response)) if on]
        return f"{scheme} + MLE {'/'.join(legs)}" if legs else scheme

    @property
    def base_url(self) -> str:
        """The scheme, host and port requests go to."""
        return ENVIRONMENTS.get(self.environment, self.environment)

    @property
    def ledger_environment(self) -> str:
        """The environment as the ledger keys credits, voids and the fetch cache: :attr:`identity`
        when given (the embedded sandbox: its database, whatever its port), else :attr:`base_url`
        (a CyberSource host, or a local URL as given)."""
        return self.identity or self.base_url

    @property
    def host(self) -> str:
        """The ``Host`` header value: the host of :attr:`base_url`, with a non-default port."""
        parts = urlsplit(self.base_url)
        default = {"http": 80, "https": 443}[parts.scheme]
        host = parts.hostname or ""
        return host if parts.port in (None, default) else f"{host}:{parts.port}"

    @property
    def is_production(self) -> bool:
        """True when requests would reach a production CyberSource host (see :mod:`reconkit.hosts`)."""
        return production_host(self.base_url) is not None

    @property
    def environment_name(self) -> str:
        """``"PRODUCTION"``, ``"TEST"``, ``"SANDBOX"`` (the local double) or ``"CUSTOM"``."""
        if self.is_production:
            return "PRODUCTION"
        if self.label:
            return self.label
        if self.base_url == ENVIRONMENTS["test"]:
            return "TEST"
        return "CUSTOM"

    @property
    def signing_merchant_id(self) -> str:
        """The id that signs: the MetaKey portfolio when one is configured."""
        return self.portfolio_id or self.merchant_id

    def __repr__(self) -> str:
        portfolio = f", portfolio_id={self.portfolio_id!r}" if self.portfolio_id else ""
        if self.jwt_key_type == "P12":
            keys = f"key_file={self.key_file!r}, key_alias={self.key_alias!r}, key_password='***'"
        else:
            keys = f"key_id={self.key_id!r}, secret_key='***'"
        return (
            f"Config(merchant_id={self.merchant_id!r}, {keys}, environment={self.environment!r}, "
            f"auth_type={self.auth_type!r}, scheme={self.auth_scheme!r}{portfolio})"
        )

    __str__ = __repr__

    # --- constructors --------------------------------------------------------------------
    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, dotenv: str | Path | None = ".env") -> Config:
        """Build a config from ``CYBERSOURCE_*`` variables, falling back to a ``.env`` file.

        With ``CYBERSOURCE_AUTH_TYPE=jwt`` and ``CYBERSOURCE_KEY_FILE`` (the ``.p12``; its password in
        ``CYBERSOURCE_KEY_PASSWORD``), the JWT is signed with the P12 key and no shared secret is
        needed. Message-level encryption is configured with :meth:`from_sdk_dict`.

        Parameters
        ----------
        environ : mapping, optional
            Defaults to ``os.environ``; its values win over the ``.env`` file.
        dotenv : path or None
            The ``.env`` file to read (``None`` reads none).

        Raises
        ------
        ConfigError
            Naming the variable that is missing or malformed.
        """
        # First statement: only our variables, the secret wrapped; the caller's mapping is not kept.
        environ = _masked_settings({k: v for k, v in (os.environ if environ is None else environ).items()
                                    if k in _ENV_VARS.values() and v != ""}, _SECRET_VARS)
        values = {**(read_dotenv(dotenv) if dotenv else {}), **environ}
        kwargs: dict[str, Any] = {name: values[var] for name, var in _ENV_VARS.items() if var in values}
        p12 = str(kwargs.get("auth_type", "")).strip().lower() == "jwt" and (
            str(kwargs.get("jwt_key_type", "")).strip().upper() == "P12"
            or ("key_file" in kwargs and "jwt_key_type" not in kwargs))
        for name in ("merchant_id",) if p12 else ("merchant_id", "key_id", "secret_key"):
            if name not in kwargs:
                raise ConfigError(_ENV_VARS[name], "is not set (in the environment or in .env). Without credentials, "
                                  "work against the offline sandbox: reconkit.session.connect() starts it and "
                                  "returns a client, or run `reconkit sandbox` and set the variables it prints")
        try:
            return cls(**kwargs)
        except ConfigError as exc:
            field_name = "key_file" if exc.field == "key_file_name" else exc.field
            raise ConfigError(_ENV_VARS.get(field_name, field_name), str(exc).split(": ", 1)[1]) from None

    @classmethod
    def from_sdk_dict(cls, d: Mapping[str, Any]) -> Config:
        """Build a config from the official SDK's configuration dictionary (reference §7.2).

        Reads ``merchantid``, ``run_environment`` (a bare host), ``authentication_type``
        (``http_signature`` or ``jwt``), ``use_metakey``/``portfolio_id``; for a shared secret
        ``merchant_keyid`` and ``merchant_secretkey`` (or the misspelling ``merchant_secret_key``);
        for JWT ``jwt_key_type`` (``P12``, the SDK's default, or ``SHARED_SECRET``) and, for P12,
        ``keys_directory`` (default ``./resources``), ``key_file_name`` (default the merchant id),
        ``key_password`` (default the merchant id) and ``key_alias``; and the MLE keys of
        :meth:`reconkit.mle.MleSettings.from_sdk_dict`.
        """
        secret_keys = (*_SDK_SECRET_KEYS, "key_password", "responseMlePrivateKeyFilePassword")
        d = _masked_settings(d, secret_keys)  # the caller's dict, secrets and all, is not kept

        def given(*keys: str) -> Any:
            for key in keys:
                value = d.get(key)
                if not (value is None or value == "" or (isinstance(value, Secret) and value.is_blank())):
                    return value
            return None

        def need(*keys: str) -> Any:
            value = given(*keys)
            if value is None:
                raise ConfigError(keys[0], "is missing from the SDK configuration")
            return value

        host = str(need("run_environment")).strip()
        environment = host if "://" in host else f"https://{host}"
        auth = str(d.get("authentication_type") or "http_signature").strip().lower()
        use_metakey = str(d.get("use_metakey", False)).strip().lower() in ("true", "1", "yes")
        portfolio = d.get("portfolio_id") if use_metakey else None
        if use_metakey and not portfolio:
            raise ConfigError("portfolio_id", "is required when use_metakey is true")
        merchant = str(need("merchantid"))
        p12: dict[str, Any] = {}
        key_type = None
        if auth == "jwt":
            key_type = str(d.get("jwt_key_type") or "P12").strip().upper()
            if key_type == "P12":
                directory = str(given("keys_directory") or _SDK_DEFAULT_KEYS_DIRECTORY)
                name = str(given("key_file_name") or merchant)
                # The SDK replaces any other key_alias by the signing id (with a warning); so does reconkit.
                alias = str(portfolio or merchant)
                if given("key_alias") not in (None, alias):
                    log.warning("key_alias %r ignored: the SDK signs with the certificate of %r", given("key_alias"),
                                alias)
                p12 = {"key_file": os.path.join(directory, name + ".p12"), "key_password": given("key_password"),
                       "key_alias": alias}
        shared = key_type != "P12"
        return cls(
            merchant_id=merchant,
            key_id=str(need("merchant_keyid")) if shared else given("merchant_keyid"),
            secret_key=need(*_SDK_SECRET_KEYS) if shared else given(*_SDK_SECRET_KEYS),
            environment=environment,
            auth_type=auth,
            portfolio_id=portfolio,
            jwt_key_type=key_type,
            mle=MleSettings.from_sdk_dict(d),
            **p12,
        )


def _dotenv_pairs(text: str) -> tuple[dict[str, Any], int | None]:
    """``KEY=VALUE`` pairs of a ``.env`` text (secrets wrapped) and the first bad line number.

    Never raises: the caller raises, so no frame holding a raw line can show up in a traceback.
    """
    values: dict[str, Any] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        if not sep or not key.strip():
            return values, number
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key.strip()] = Secret(value) if key.strip() in _SECRET_VARS else value
    return values, None


def read_dotenv(path: str | Path) -> dict[str, Any]:
    """Read ``KEY=VALUE`` lines of a ``.env`` file (missing file: empty dict); the secret comes
    back as a :class:`Secret`.

    Raises
    ------
    ConfigError
        Naming the file and line of a line that is not ``KEY=VALUE``.
    """
    file = Path(path)
    if not file.is_file():
        return {}
    values, bad = _dotenv_pairs(file.read_text(encoding="utf-8"))
    if bad is not None:
        raise ConfigError(f"{file}:{bad}", "is not a KEY=VALUE line")
    return values
