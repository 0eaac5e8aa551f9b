"""A rotated certificate is served without a restart, including the kubelet's symlink swap."""

import datetime
import os
import socket
import ssl
import threading
from pathlib import Path

from app.certs import make_ca, make_serving
from app.web.serve import CertificateReloader

NOW = datetime.datetime.now(datetime.UTC)


def kubelet_layout(root: Path, version: str, cert: bytes, key: bytes) -> None:
    """What a Secret volume looks like: files behind `..data`, a symlink swapped atomically."""
    versioned = root / f"..{version}"
    versioned.mkdir()
    (versioned / "tls.crt").write_bytes(cert)
    (versioned / "tls.key").write_bytes(key)
    (root / "..data_tmp").symlink_to(versioned.name)
    os.replace(root / "..data_tmp", root / "..data")
    for name in ("tls.crt", "tls.key"):
        if not (root / name).is_symlink():
            (root / name).symlink_to(f"..data/{name}")


def served_certificate(context: ssl.SSLContext) -> bytes:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]

        def accept() -> None:
            connection, _ = server.accept()
            try:
                with context.wrap_socket(connection, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                pass

        thread = threading.Thread(target=accept)
        thread.start()
        client = ssl.create_default_context()
        client.check_hostname = False
        client.verify_mode = ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", port)) as raw, client.wrap_socket(raw) as tls:
            der = tls.getpeercert(binary_form=True)
        thread.join()
    assert der is not None
    return der


def test_a_swapped_secret_volume_is_served_on_the_next_check(tmp_path: Path) -> None:
    ca = make_ca("test-ca", NOW)
    first, second = make_serving(ca, ["127.0.0.1"], NOW), make_serving(ca, ["127.0.0.1"], NOW)
    kubelet_layout(tmp_path, "v1", first.cert, first.key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    reloader = CertificateReloader(context, tmp_path / "tls.crt", tmp_path / "tls.key")
    before = served_certificate(context)

    assert reloader.check() is False
    kubelet_layout(tmp_path, "v2", second.cert, second.key)
    assert reloader.check() is True
    after = served_certificate(context)
    assert after != before
    assert ssl.DER_cert_to_PEM_cert(after).strip() == second.cert.decode().strip()
    assert reloader.check() is False


def test_a_half_written_pair_keeps_the_old_certificate(tmp_path: Path) -> None:
    ca = make_ca("test-ca", NOW)
    first, second = make_serving(ca, ["127.0.0.1"], NOW), make_serving(ca, ["127.0.0.1"], NOW)
    (tmp_path / "tls.crt").write_bytes(first.cert)
    (tmp_path / "tls.key").write_bytes(first.key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    reloader = CertificateReloader(context, tmp_path / "tls.crt", tmp_path / "tls.key")
    before = served_certificate(context)

    (tmp_path / "tls.crt").write_bytes(second.cert)  # the key is not there yet
    assert reloader.check() is False
    assert served_certificate(context) == before
    (tmp_path / "tls.key").write_bytes(second.key)
    assert reloader.check() is True
    assert served_certificate(context) != before
