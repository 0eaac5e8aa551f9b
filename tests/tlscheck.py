"""Certificate trust as a TLS client sees it, for the rotation tests."""

import datetime

from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError


def verifies(cert_pem: bytes, ca_bundle: bytes, now: datetime.datetime, host: str) -> bool:
    """Whether a client trusting `ca_bundle` accepts `cert_pem` for `host` at `now`."""
    if not ca_bundle:
        return False
    verifier = (
        PolicyBuilder()
        .store(Store(x509.load_pem_x509_certificates(ca_bundle)))
        .time(now)
        .build_server_verifier(x509.DNSName(host))
    )
    try:
        verifier.verify(x509.load_pem_x509_certificate(cert_pem), [])
    except VerificationError:
        return False
    return True
