"""Self-signed OPC UA application instance certificates (what ``edge-agent opcua-cert`` writes).

OPC UA (Part 6 §6.2.2) wants the application URI as a URI SubjectAltName and the host name as a
DNS (or IP) SubjectAltName; servers reject a client whose certificate URI differs from the
ApplicationUri it announces. The certificate is written as DER when the file name ends in ``.der``
(the OPC UA convention), PEM otherwise; the private key always as unencrypted PKCS#8 PEM with mode 0600.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from asyncua.crypto.cert_gen import (
    dump_private_key_as_pem,
    generate_private_key,
    generate_self_signed_app_certificate,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID


def generate_self_signed_cert(
    cert_path: str | Path,
    key_path: str | Path,
    application_uri: str,
    hostname: str,
    *,
    days: int = 365,
    common_name: str | None = None,
) -> None:
    """Write a new RSA-2048 key and a self-signed certificate valid for ``days`` days.

    The certificate carries ``application_uri`` (URI SAN) and ``hostname`` (DNS SAN, or IP SAN for an
    address), and may be used by a client and by a server (both extended key usages). Raises
    ValueError for an empty URI or host name; existing files are overwritten.
    """
    if not application_uri or ":" not in application_uri:
        raise ValueError(f"{application_uri=} must be a URI such as urn:edge-agent:gw-1")
    if not hostname:
        raise ValueError("hostname must not be empty (use the gateway's host name or IP address)")
    if days < 1:
        raise ValueError(f"{days=} must be at least 1")
    key = generate_private_key()
    alt_names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(application_uri)]
    try:
        alt_names.append(x509.IPAddress(ipaddress.ip_address(hostname)))
    except ValueError:
        alt_names.append(x509.DNSName(hostname))
    cert = generate_self_signed_app_certificate(
        key,
        common_name or application_uri,
        {},
        alt_names,
        extended=[ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH],
        days=days,
    )
    cert_path, key_path = Path(cert_path), Path(key_path)
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    key_path.parent.mkdir(parents=True, exist_ok=True)
    encoding = Encoding.DER if cert_path.suffix.lower() == ".der" else Encoding.PEM
    cert_path.write_bytes(cert.public_bytes(encoding))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(dump_private_key_as_pem(key))


CERTIFICATE_SUFFIXES = (".der", ".pem", ".crt", ".cer")


def trusted_certificates_der(directory: str | Path) -> set[bytes]:
    """The DER bytes of every certificate (``*.der``, ``*.pem``, ``*.crt``, ``*.cer``) in ``directory``.

    A file that does not parse raises ValueError naming it; an empty trust list is allowed (it trusts
    nothing).
    """
    trusted: set[bytes] = set()
    for path in sorted(Path(directory).iterdir()):
        if path.suffix.lower() not in CERTIFICATE_SUFFIXES or not path.is_file():
            continue
        data = path.read_bytes()
        try:
            cert = (x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data
                    else x509.load_der_x509_certificate(data))
        except ValueError as exc:
            raise ValueError(f"trusted certificate {path} is neither DER nor PEM: {exc}") from None
        trusted.add(cert.public_bytes(Encoding.DER))
    return trusted


def thumbprint(der: bytes) -> str:
    """SHA-1 thumbprint of a DER certificate as hex, the way OPC UA tools display it."""
    return x509.load_der_x509_certificate(der).fingerprint(hashes.SHA1()).hex()
