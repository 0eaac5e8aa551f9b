"""Self-managed TLS: decide the next CA, serving certificate and caBundle. No I/O.

The order of a CA rotation is what keeps the webhook reachable: a new CA first joins the
published caBundle next to the old one, and only on a later step does the serving
certificate switch to it, so the API server never meets a certificate it does not trust.
The old CA leaves the bundle when it expires.
"""

import datetime
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from app.certs import Pem, make_ca, make_serving

CA_NAME = "configpin-ca"
ZERO = datetime.timedelta(0)


@dataclass(frozen=True)
class Lifetimes:
    """Validity of new certificates; each is renewed once less than `renew_fraction` of
    its validity remains (the same rule as cert-manager's default of 2/3 through)."""

    ca: datetime.timedelta = datetime.timedelta(days=3650)
    serving: datetime.timedelta = datetime.timedelta(days=90)
    renew_fraction: float = 1 / 3

    def __post_init__(self) -> None:
        if not 0 < self.renew_fraction < 1:
            raise ValueError("renew_fraction must be between 0 and 1")
        if not ZERO < self.serving < self.ca:
            # A serving certificate never outlives its CA: a longer one would be cut short
            # and found due for renewal again at once.
            raise ValueError("the serving validity must be positive and shorter than the CA's")

    def renew_ca(self, cert: x509.Certificate, now: datetime.datetime) -> bool:
        return _remaining(cert, now) < self.ca * self.renew_fraction

    def renew_serving(self, cert: x509.Certificate, now: datetime.datetime) -> bool:
        return _remaining(cert, now) < self.serving * self.renew_fraction


@dataclass(frozen=True)
class Bundle:
    """What the TLS Secret holds. Fields may hold anything (a Secret can be edited by
    hand): what does not parse is replaced."""

    ca: Pem
    serving: Pem
    trusted: tuple[bytes, ...]  # one PEM certificate each: the published caBundle

    @property
    def ca_bundle(self) -> bytes:
        return b"".join(self.trusted)


@dataclass(frozen=True)
class Rotation:
    bundle: Bundle
    new_ca: bool = False
    new_serving: bool = False
    ca_bundle_changed: bool = False
    reasons: tuple[str, ...] = ()  # for logs; never key material

    @property
    def changed(self) -> bool:
        return self.new_ca or self.new_serving or self.ca_bundle_changed


def service_sans(service: str, namespace: str) -> list[str]:
    """The names the API server may use for a Service (it dials `<svc>.<ns>.svc`)."""
    return [
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
    ]


def split_certificates(pem: bytes) -> tuple[bytes, ...]:
    """The certificates of a PEM bundle, one PEM each; () when it does not parse."""
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError:
        return ()
    return tuple(cert.public_bytes(serialization.Encoding.PEM) for cert in certs)


def next_bundle(
    current: Bundle | None,
    now: datetime.datetime,
    sans: Sequence[str],
    lifetimes: Lifetimes = Lifetimes(),  # frozen, so one shared default is safe
) -> Rotation:
    """One step towards a bundle that is valid at `now` and names `sans`."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if not sans:
        raise ValueError("a serving certificate needs at least one SAN")
    old_ca = _usable_ca(current.ca, now) if current else None
    published = {cert for pem in current.trusted if (cert := _cert(pem))} if current else set()
    reasons: list[str] = []

    if current is not None and old_ca is not None and not lifetimes.renew_ca(old_ca, now):
        ca, ca_cert = current.ca, old_ca
    else:
        reasons.append("no usable CA" if old_ca is None else "the CA expires soon")
        ca = make_ca(f"{CA_NAME}@{int(now.timestamp())}", now, lifetimes.ca)
        ca_cert = x509.load_pem_x509_certificate(ca.cert)

    # Sign with a CA the API server already trusts: a new CA waits for a later step,
    # unless no trusted CA is left to sign with (first start, or everything expired).
    issuer, issuer_cert = ca, ca_cert
    if current and old_ca and old_ca in published and ca_cert not in published:
        issuer, issuer_cert = current.ca, old_ca

    serving = current.serving if current else None
    problem = _serving_problem(serving, issuer_cert, now, sans, lifetimes)
    if problem is not None or serving is None:
        reasons.append(problem or "no serving certificate")
        # Never valid beyond its issuer: the chain would break before the renewal.
        validity = min(lifetimes.serving, _remaining(issuer_cert, now))
        serving = make_serving(issuer, sans, now, validity)

    old_trusted = current.trusted if current else ()
    trusted = [pem for pem in old_trusted if (cert := _cert(pem)) and _remaining(cert, now) > ZERO]
    if len(trusted) < len(old_trusted):
        reasons.append("expired or unreadable certificates leave the caBundle")
    if ca_cert not in {_cert(pem) for pem in trusted}:
        trusted.append(ca.cert)

    return Rotation(
        bundle=Bundle(ca=ca, serving=serving, trusted=tuple(trusted)),
        new_ca=ca_cert is not old_ca,
        new_serving=problem is not None,
        ca_bundle_changed=tuple(trusted) != old_trusted,
        reasons=tuple(reasons),
    )


def _remaining(cert: x509.Certificate, now: datetime.datetime) -> datetime.timedelta:
    return cert.not_valid_after_utc - now


def _cert(pem: bytes) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError:
        return None


def _matching_key(pair: Pem, cert: x509.Certificate) -> bool:
    try:
        key = serialization.load_pem_private_key(pair.key, password=None)
    except (ValueError, TypeError):
        return False
    return isinstance(key, ec.EllipticCurvePrivateKey) and key.public_key() == cert.public_key()


def _usable_ca(pair: Pem, now: datetime.datetime) -> x509.Certificate | None:
    cert = _cert(pair.cert)
    if cert is None or not _matching_key(pair, cert) or _remaining(cert, now) <= ZERO:
        return None
    return cert


def _serving_problem(
    serving: Pem | None,
    issuer: x509.Certificate,
    now: datetime.datetime,
    sans: Sequence[str],
    lifetimes: Lifetimes,
) -> str | None:
    """Why the serving certificate must be re-issued, or None when it is fine."""
    cert = _cert(serving.cert) if serving else None
    if serving is None or cert is None or not _matching_key(serving, cert):
        return "no usable serving certificate"
    if lifetimes.renew_serving(cert, now):
        return "the serving certificate expires soon"
    if _names(cert) != _normalized(sans):
        return "the serving certificate names other hosts"
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return "the serving certificate is not signed by the current CA"
    return None


def _normalized(sans: Iterable[str]) -> set[str]:
    names = set()
    for san in sans:
        try:
            names.add(str(ipaddress.ip_address(san)))
        except ValueError:
            names.add(san.lower())
    return names


def _names(cert: x509.Certificate) -> set[str]:
    try:
        alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    dns = alt.get_values_for_type(x509.DNSName)
    ips = alt.get_values_for_type(x509.IPAddress)
    return _normalized([*dns, *(str(ip) for ip in ips)])
