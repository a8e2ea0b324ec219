"""The sandbox's key material for JWT (P12) and message-level encryption, made as CyberSource's
Business Center makes it.

- The merchant's P12: an RSA private key, the merchant's certificate (subject CN = the signing
  id, ``serialNumber`` = the key id the JWT names) and CyberSource's request-MLE certificate
  (CN ``CyberSource_SJC_US``), whose private key only the sandbox holds.
- A separate response-MLE key pair for the merchant: the private key is exported (PEM) with its
  key id; the sandbox keeps the public half to encrypt answers to it.

Keys are generated once per sandbox (RSA 2048, as CyberSource's MLE uses) and written, with
owner-only permissions, to a directory of files a client or the official SDK reads.
"""

from __future__ import annotations

import os
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from ..keys import CYBERSOURCE_MLE_ALIAS

__all__ = ["SandboxKeyFiles", "SandboxKeys"]


def _certificate(key: RSAPrivateKey, common_name: str, serial_number: str) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                         x509.NameAttribute(NameOID.SERIAL_NUMBER, serial_number),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "reconkit sandbox (simulated)")])
    now = datetime.now(UTC)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=730)).sign(key, hashes.SHA256()))


def _rsa() -> RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass(frozen=True)
class SandboxKeyFiles:
    """Where a sandbox's client-side key files are, and what opens them (``repr`` masks the password).

    Attributes
    ----------
    directory : Path
        The ``keys_directory``.
    p12 : Path
        ``<directory>/<key_file_name>.p12``.
    key_file_name : str
        The P12's name without ``.p12`` (the merchant id, as the SDK defaults it).
    password : str
        Opens the P12 and the response key (``key_password``, ``responseMlePrivateKeyFilePassword``).
    response_key : Path
        The response-MLE private key (PKCS#8 PEM, encrypted with ``password``).
    response_kid : str
        Its key id (``responseMleKID``).
    mle_certificate : Path
        CyberSource's request-MLE certificate as PEM (``mleForRequestPublicCertPath``).
    """

    directory: Path
    p12: Path
    key_file_name: str
    password: str = field(repr=False)
    response_key: Path
    response_kid: str
    mle_certificate: Path


class SandboxKeys:
    """Generated keys: the merchant's signing key, the sandbox's request-MLE key and the
    merchant's response-MLE key, each with its certificate and key id."""

    def __init__(self, signer: str) -> None:
        self.signer = signer
        self.merchant_key = _rsa()
        self.merchant_kid = str(uuid.uuid4().int)[:19]
        self.merchant_certificate = _certificate(self.merchant_key, signer, self.merchant_kid)
        self.mle_key = _rsa()
        self.mle_kid = str(uuid.uuid4().int)[:19]
        self.mle_certificate = _certificate(self.mle_key, CYBERSOURCE_MLE_ALIAS, self.mle_kid)
        self.response_key = _rsa()
        self.response_kid = str(uuid.uuid4())
        self.password = secrets.token_urlsafe(16)

    def __repr__(self) -> str:
        return f"SandboxKeys(signer={self.signer!r}, kid={self.merchant_kid!r}, mle_kid={self.mle_kid!r})"

    def response_public_keys(self) -> dict[str, RSAPublicKey]:
        """The keys answers may be encrypted to, by ``v-c-response-mle-kid``: the separate response
        key, and the P12's own key (the SDK reads that kid from a CyberSource P12)."""
        return {self.response_kid: self.response_key.public_key(),
                self.merchant_kid: self.merchant_key.public_key()}

    def export(self, directory: str | os.PathLike[str], key_file_name: str) -> SandboxKeyFiles:
        """Write the P12, the response key and the MLE certificate into ``directory`` (0600 files)."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        secret = self.password.encode()
        p12 = pkcs12.serialize_key_and_certificates(
            key_file_name.encode(), self.merchant_key, self.merchant_certificate, [self.mle_certificate],
            serialization.BestAvailableEncryption(secret))
        response = self.response_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                   serialization.BestAvailableEncryption(secret))
        certificate = self.mle_certificate.public_bytes(serialization.Encoding.PEM)
        files = SandboxKeyFiles(folder, folder / f"{key_file_name}.p12", key_file_name, self.password,
                                folder / "response-mle-key.pem", self.response_kid, folder / "cybersource-mle.pem")
        for path, data in ((files.p12, p12), (files.response_key, response), (files.mle_certificate, certificate)):
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
        return files
