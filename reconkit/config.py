"""Credentials and environment: ``Config``.

A config is built directly, from environment variables (and a ``.env`` file), or from the
official SDK's configuration dictionary. The shared secret is kept out of every ``repr``,
``str`` and error message.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError

__all__ = ["ENVIRONMENTS", "Config"]

ENVIRONMENTS = {
    "test": "https://apitest.cybersource.com",
    "production": "https://api.cybersource.com",
}
_PRODUCTION_HOSTS = {"api.cybersource.com", "api.in.cybersource.com"}
_AUTH_TYPES = ("http_signature", "jwt")
_ENV_VARS = {
    "merchant_id": "CYBERSOURCE_MERCHANT_ID",
    "key_id": "CYBERSOURCE_KEY_ID",
    "secret_key": "CYBERSOURCE_SECRET_KEY",
    "environment": "CYBERSOURCE_ENVIRONMENT",
    "auth_type": "CYBERSOURCE_AUTH_TYPE",
    "portfolio_id": "CYBERSOURCE_PORTFOLIO_ID",
}
_MERCHANT_ID = re.compile(r"^[A-Za-z0-9_\-.]{1,64}$")


@dataclass(frozen=True, repr=False)
class Config:
    """Where to send requests and how to sign them.

    Parameters
    ----------
    merchant_id : str
        The transacting merchant id (``v-c-merchant-id``).
    key_id : str
        The shared-secret key id (``keyid`` of the signature, ``kid`` of a JWT).
    secret_key : str
        The base64 shared secret. Never printed.
    environment : str
        ``"test"`` (apitest.cybersource.com, the default), ``"production"``, or a base URL such as
        ``"http://127.0.0.1:8765"`` for the local sandbox.
    auth_type : {"http_signature", "jwt"}
    portfolio_id : str, optional
        MetaKey portfolio: signs as the portfolio while transacting as ``merchant_id``.
    """

    merchant_id: str
    key_id: str
    secret_key: str = field(repr=False)
    environment: str = "test"
    auth_type: str = "http_signature"
    portfolio_id: str | None = None
    label: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        for name in ("merchant_id", "key_id", "secret_key", "environment", "auth_type"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(name, "is missing or empty")
        if not _MERCHANT_ID.match(self.merchant_id):
            raise ConfigError("merchant_id", "may only hold letters, digits, '_', '-' and '.' (1-64 characters)")
        try:
            decoded = base64.b64decode(self.secret_key.strip(), validate=True)
        except (binascii.Error, ValueError):
            decoded = b""
        if not decoded:
            raise ConfigError("secret_key", "is not valid base64 (the shared secret as CyberSource shows it)")
        auth = self.auth_type.strip().lower().replace("-", "_")
        if auth not in _AUTH_TYPES:
            raise ConfigError("auth_type", f"must be one of {', '.join(_AUTH_TYPES)}, not {self.auth_type!r}")
        object.__setattr__(self, "auth_type", auth)
        env = self.environment.strip()
        if env.lower() in ENVIRONMENTS:
            env = env.lower()
        else:
            parts = urlsplit(env)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(
                    "environment", f"must be 'test', 'production' or a base URL like http://127.0.0.1:8765, not {env!r}"
                )
            env = env.rstrip("/")
        object.__setattr__(self, "environment", env)
        if self.portfolio_id is not None and not str(self.portfolio_id).strip():
            object.__setattr__(self, "portfolio_id", None)

    # --- derived -------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """The scheme, host and port requests go to."""
        return ENVIRONMENTS.get(self.environment, self.environment)

    @property
    def host(self) -> str:
        """The ``Host`` header value: the host of :attr:`base_url`, with a non-default port."""
        parts = urlsplit(self.base_url)
        default = {"http": 80, "https": 443}[parts.scheme]
        host = parts.hostname or ""
        return host if parts.port in (None, default) else f"{host}:{parts.port}"

    @property
    def is_production(self) -> bool:
        """True when requests would reach a production CyberSource host."""
        return urlsplit(self.base_url).hostname in _PRODUCTION_HOSTS

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

    @property
    def secret_bytes(self) -> bytes:
        """The decoded shared secret (the HMAC key)."""
        return base64.b64decode(self.secret_key.strip())

    def __repr__(self) -> str:
        portfolio = f", portfolio_id={self.portfolio_id!r}" if self.portfolio_id else ""
        return (
            f"Config(merchant_id={self.merchant_id!r}, key_id={self.key_id!r}, secret_key='***', "
            f"environment={self.environment!r}, auth_type={self.auth_type!r}{portfolio})"
        )

    __str__ = __repr__

    # --- constructors --------------------------------------------------------------------
    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, dotenv: str | Path | None = ".env") -> Config:
        """Build a config from ``CYBERSOURCE_*`` variables, falling back to a ``.env`` file.

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
        values = dict(read_dotenv(dotenv)) if dotenv else {}
        values.update({k: v for k, v in (os.environ if environ is None else environ).items() if v != ""})
        kwargs: dict[str, Any] = {}
        for name, var in _ENV_VARS.items():
            if var in values:
                kwargs[name] = values[var]
        for name in ("merchant_id", "key_id", "secret_key"):
            if name not in kwargs:
                raise ConfigError(_ENV_VARS[name], "is not set (in the environment or in .env). Without credentials, "
                                  "work against the offline sandbox: reconkit.session.connect() starts it and "
                                  "returns a client, or run `reconkit sandbox` and set the variables it prints")
        try:
            return cls(**kwargs)
        except ConfigError as exc:
            raise ConfigError(_ENV_VARS.get(exc.field, exc.field), str(exc).split(": ", 1)[1]) from None

    @classmethod
    def from_sdk_dict(cls, d: Mapping[str, Any]) -> Config:
        """Build a config from the official SDK's configuration dictionary.

        Accepts ``merchantid``, ``merchant_keyid``, ``merchant_secretkey`` (or the common
        misspelling ``merchant_secret_key``), ``run_environment`` (a bare host),
        ``authentication_type``, ``use_metakey`` and ``portfolio_id``.
        """
        def need(*keys: str) -> Any:
            for key in keys:
                if d.get(key) not in (None, ""):
                    return d[key]
            raise ConfigError(keys[0], "is missing from the SDK configuration")

        host = str(need("run_environment")).strip()
        if "://" in host:
            environment = host
        elif host in ("apitest.cybersource.com",):
            environment = "test"
        elif host == "api.cybersource.com":
            environment = "production"
        else:
            environment = f"https://{host}"
        auth = str(d.get("authentication_type") or "http_signature").strip().lower()
        if auth == "jwt" and str(d.get("jwt_key_type", "")).upper() not in ("SHARED_SECRET",):
            raise ConfigError("jwt_key_type", "only SHARED_SECRET JWT is supported (P12 keys are not)")
        use_metakey = str(d.get("use_metakey", False)).strip().lower() in ("true", "1", "yes")
        portfolio = d.get("portfolio_id") if use_metakey else None
        if use_metakey and not portfolio:
            raise ConfigError("portfolio_id", "is required when use_metakey is true")
        return cls(
            merchant_id=str(need("merchantid")),
            key_id=str(need("merchant_keyid")),
            secret_key=str(need("merchant_secretkey", "merchant_secret_key")),
            environment=environment,
            auth_type=auth,
            portfolio_id=portfolio,
        )


def read_dotenv(path: str | Path) -> dict[str, str]:
    """Read ``KEY=VALUE`` lines of a ``.env`` file (missing file: empty dict).

    Raises
    ------
    ConfigError
        Naming the file and line of a line that is not ``KEY=VALUE``.
    """
    file = Path(path)
    if not file.is_file():
        return {}
    values: dict[str, str] = {}
    for number, raw in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):]
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{file}:{number}", "is not a KEY=VALUE line")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key.strip()] = value
    return values
