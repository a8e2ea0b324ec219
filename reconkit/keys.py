"""Key files for JWT and message-level encryption, read as the official SDK (0.0.80) reads them.

A CyberSource P12 (``<keys_directory>/<key_file_name>.p12``) holds the merchant's private key, the
merchant's certificate (subject CN = the merchant id, or the portfolio under MetaKey) and
CyberSource's request-MLE certificate (CN ``CyberSource_SJC_US``). A certificate is picked by
its CN (the "alias"); its key id (``kid``) is the ``serialNumber`` attribute of its *subject*,
not the X.509 serial number (``authenticationsdk/util/CertificateUtility.py``).

Every failure is a :class:`~reconkit.errors.ConfigError` naming the SDK setting at fault and the
file; a password never appears in one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key, pkcs12
from cryptography.x509.oid import NameOID

from .errors import ConfigError
from .secret import Secret

__all__ = ["CYBERSOURCE_MLE_ALIAS", "P12Keys", "certificate_by_alias", "common_name", "load_p12",
           "load_private_key", "read_pem_certificates", "subject_serial_number"]

CYBERSOURCE_MLE_ALIAS = "CyberSource_SJC_US"
"""The CN of CyberSource's request-MLE certificate in a P12 it generated (the SDK's default alias)."""


def common_name(certificate: x509.Certificate) -> str | None:
    """The subject's CN, or None."""
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


def subject_serial_number(certificate: x509.Certificate) -> str | None:
    """The subject's ``serialNumber`` attribute (the key id CyberSource expects), or None."""
    values = certificate.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    return str(values[0].value) if values else None


def certificate_by_alias(certificates: list[x509.Certificate], alias: str) -> x509.Certificate | None:
    """The first certificate whose CN equals ``alias`` ignoring case (as the SDK matches), or None."""
    for certificate in certificates:
        name = common_name(certificate)
        if name is not None and name.lower() == alias.lower():
            return certificate
    return None


@dataclass(frozen=True)
class P12Keys:
    """What a P12 file holds: the private key and every certificate, with the signing one picked.

    ``repr`` shows the file, the alias and the key id, never the key.
    """

    path: Path
    alias: str
    kid: str
    certificate: x509.Certificate = field(repr=False)
    certificates: tuple[x509.Certificate, ...] = field(repr=False)
    private_key: RSAPrivateKey = field(repr=False)


def _read(path: Path, setting: str) -> bytes:
    if not path.is_file():
        raise ConfigError(setting, f"{path} does not exist or is not a file")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(setting, f"{path} cannot be read ({exc.strerror})") from None


def load_p12(path: str | os.PathLike[str], password: Secret, alias: str, *,
             file_setting: str = "key_file_name", password_setting: str = "key_password",
             alias_setting: str = "key_alias") -> P12Keys:
    """Open a P12 and pick the certificate whose CN is ``alias``.

    Raises
    ------
    ConfigError
        The file is missing, the password does not open it, it holds no RSA private key, no
        certificate has CN ``alias``, or that certificate has no subject serial number.
    """
    file = Path(path)
    data = _read(file, file_setting)
    opened: Any = password.unlock(lambda secret: pkcs12.load_key_and_certificates(data, secret))
    if opened is None:
        raise ConfigError(password_setting, f"does not open {file} (a wrong password, or not a PKCS#12 file)")
    private_key, first, extra = opened
    certificates = tuple(([first] if first is not None else []) + list(extra or []))
    if not isinstance(private_key, RSAPrivateKey):
        raise ConfigError(file_setting, f"{file} holds no RSA private key (JWT RS256 needs one)")
    certificate = certificate_by_alias(list(certificates), alias)
    if certificate is None:
        held = ", ".join(repr(common_name(c)) for c in certificates) or "none"
        raise ConfigError(alias_setting, f"no certificate in {file} has CN {alias!r} (it holds CN {held})")
    kid = subject_serial_number(certificate)
    if not kid:
        raise ConfigError(file_setting, f"the certificate {alias!r} in {file} has no subject serialNumber "
                          "(CyberSource's key id)")
    return P12Keys(file, alias, kid, certificate, certificates, private_key)


def read_pem_certificates(path: str | os.PathLike[str], setting: str) -> list[x509.Certificate]:
    """Every certificate of a PEM file, in order."""
    file = Path(path)
    try:
        certificates = x509.load_pem_x509_certificates(_read(file, setting))
    except ValueError:
        raise ConfigError(setting, f"{file} is not a PEM certificate file") from None
    return list(certificates)


def load_private_key(path: str | os.PathLike[str], password: Secret | None, *, setting: str,
                     password_setting: str) -> RSAPrivateKey:
    """An RSA private key from a ``.p12``/``.pfx`` or a PEM (``.pem``/``.key``/``.p8``) file,
    as the SDK reads the response-MLE key."""
    file = Path(path)
    data = _read(file, setting)
    suffix = file.suffix.lower()
    if suffix in (".p12", ".pfx"):
        opened: Any = (password or Secret("")).unlock(lambda secret: pkcs12.load_key_and_certificates(data, secret))
        key = opened[0] if opened is not None else None
    elif suffix in (".pem", ".key", ".p8"):
        if password is None or password.is_blank():
            try:
                key = load_pem_private_key(data, None)
            except (ValueError, TypeError):
                key = None
        else:
            key = password.unlock(lambda secret: load_pem_private_key(data, secret))
    else:
        raise ConfigError(setting, f"{file}: unsupported key file type {suffix or '(none)'!r} "
                          "(use .p12, .pfx, .pem, .key or .p8)")
    if key is None:
        raise ConfigError(password_setting, f"does not open {file} (a wrong password, or not a private key file)")
    if not isinstance(key, RSAPrivateKey):
        raise ConfigError(setting, f"{file} holds no RSA private key (RSA-OAEP-256 needs one)")
    return key


def public_key_of(certificate: x509.Certificate, setting: str) -> RSAPublicKey:
    """The certificate's RSA public key (MLE wraps its content key with RSA-OAEP-256)."""
    key = certificate.public_key()
    if not isinstance(key, RSAPublicKey):
        raise ConfigError(setting, f"the certificate {common_name(certificate)!r} has no RSA public key")
    return key
