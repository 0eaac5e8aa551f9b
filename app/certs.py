"""A CA and a serving certificate for the webhook, and the HMAC key, made with cryptography."""

import datetime
import ipaddress
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_VALIDITY = datetime.timedelta(days=3650)
SERVING_VALIDITY = datetime.timedelta(days=365)
# Certificates start a little in the past so that a peer whose clock is behind accepts them.
BACKDATE = datetime.timedelta(minutes=5)


@dataclass(frozen=True)
class Pem:
    cert: bytes
    key: bytes


def _private_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_ca(
    common_name: str, now: datetime.datetime, validity: datetime.timedelta = CA_VALIDITY
) -> Pem:
    key = _private_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Pem(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def make_serving(
    ca: Pem,
    sans: Iterable[str],
    now: datetime.datetime,
    validity: datetime.timedelta = SERVING_VALIDITY,
) -> Pem:
    """A serving certificate signed by `ca`; each SAN is an IP address or a DNS name."""
    names = list(sans)
    if not names:
        raise ValueError("a serving certificate needs at least one --san")
    ca_cert = x509.load_pem_x509_certificate(ca.cert)
    ca_key = serialization.load_pem_private_key(ca.key, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key must be an EC key")
    key = _private_key()
    alt_names: list[x509.GeneralName] = []
    for san in names:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(san)))
        except ValueError:
            alt_names.append(x509.DNSName(san))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + validity)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return Pem(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def new_hmac_key() -> bytes:
    """256 random bits, hex-encoded so the key is plain text in a file or a Secret."""
    return secrets.token_hex(32).encode()


def write_bundle(out: Path, sans: Iterable[str], now: datetime.datetime) -> list[Path]:
    """ca.crt, ca.key, tls.crt, tls.key and hmac.key in `out`; private files are 0600."""
    out.mkdir(parents=True, exist_ok=True)
    ca = make_ca("configpin-ca", now)
    serving = make_serving(ca, sans, now)
    files = {
        "ca.crt": (ca.cert, 0o644),
        "ca.key": (ca.key, 0o600),
        "tls.crt": (serving.cert, 0o644),
        "tls.key": (serving.key, 0o600),
        "hmac.key": (new_hmac_key(), 0o600),
    }
    written = []
    for name, (content, mode) in files.items():
        path = out / name
        path.touch(mode=mode, exist_ok=True)
        path.chmod(mode)
        path.write_bytes(content)
        written.append(path)
    return written
