"""The webhook refuses TLS below 1.2 (the client here is willing to speak 1.0 and 1.1)."""

import socket
import ssl
import warnings

import pytest

from devkit.localwebhook import Webhook


def handshake(port: int, lowest: ssl.TLSVersion, highest: ssl.TLSVersion) -> str:
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE  # only the protocol version is under test
    client.set_ciphers("DEFAULT@SECLEVEL=0")  # let OpenSSL offer the old versions at all
    client.minimum_version, client.maximum_version = lowest, highest
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        client.wrap_socket(raw) as tls,
    ):
        version = tls.version()
    assert version is not None
    return version


def test_tls_1_1_is_refused_and_1_2_accepted(webhook: Webhook) -> None:
    with warnings.catch_warnings(), pytest.raises(ssl.SSLError):
        warnings.simplefilter("ignore", DeprecationWarning)  # naming TLS 1.0/1.1 warns
        handshake(webhook.port, ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1)
    assert handshake(webhook.port, ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
