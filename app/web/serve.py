"""Serve the app over TLS with uvicorn, reloading a rotated certificate in place."""

import hashlib
import logging
import ssl
import tempfile
import threading
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp

log = logging.getLogger("configpin.tls")

# Secret volumes are updated by an atomic symlink swap that file watchers miss, so the
# files are polled; half a minute is far inside any renewal window.
CERT_POLL_SECONDS = 30.0


class CertificateReloader:
    """Loads the certificate into the live SSL context whenever the files change: new
    handshakes use the new certificate, open connections finish on the old one."""

    def __init__(self, context: ssl.SSLContext, cert: Path, key: Path) -> None:
        self._context = context
        self._cert = cert
        self._key = key
        self._fingerprint = self._read_fingerprint()
        self._stop = threading.Event()

    def _read_fingerprint(self) -> str:
        return hashlib.sha256(self._cert.read_bytes() + self._key.read_bytes()).hexdigest()

    def check(self) -> bool:
        """Reload when the files changed; True when a new certificate was loaded."""
        try:
            cert, key = self._cert.read_bytes(), self._key.read_bytes()
            fingerprint = hashlib.sha256(cert + key).hexdigest()
            if fingerprint == self._fingerprint:
                return False
            self._load(cert, key)
        except (OSError, ssl.SSLError) as error:
            # Mid-rotation the pair can be inconsistent for a moment: keep serving the old.
            log.warning("certificate not reloaded yet: %s", type(error).__name__)
            return False
        self._fingerprint = fingerprint
        log.info("reloaded the serving certificate from %s", self._cert)
        return True

    def _load(self, cert: bytes, key: bytes) -> None:
        """Load exactly the pair that was read, tried on a scratch context first: a failed
        load_cert_chain can leave the live context with a new certificate and the old key,
        which breaks every handshake."""
        with tempfile.TemporaryDirectory(prefix="configpin-tls-") as scratch:
            cert_file, key_file = Path(scratch) / "tls.crt", Path(scratch) / "tls.key"
            cert_file.write_bytes(cert)
            key_file.touch(mode=0o600)
            key_file.write_bytes(key)
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert_file, key_file)
            self._context.load_cert_chain(cert_file, key_file)

    def run(self, interval: float = CERT_POLL_SECONDS) -> None:
        while not self._stop.wait(interval):
            self.check()

    def stop(self) -> None:
        self._stop.set()


def serve(
    app: ASGIApp,
    host: str,
    port: int,
    cert: Path,
    key: Path,
    log_level: str,
    reload_seconds: float = CERT_POLL_SECONDS,
) -> None:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
        log_level=log_level.lower(),
        access_log=False,
        # The optional C event loop and HTTP parser (pinned dependencies): about twice the
        # requests per second of asyncio and h11 on the same core.
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=5,
        # The API server calls the webhook directly: there is no proxy whose headers to
        # trust, and the middleware that reads them would run on every review.
        proxy_headers=False,
    )
    config.load()
    assert config.ssl is not None
    config.ssl.minimum_version = ssl.TLSVersion.TLSv1_2
    reloader = CertificateReloader(config.ssl, cert, key)
    threading.Thread(
        target=reloader.run, args=(reload_seconds,), name="cert-reloader", daemon=True
    ).start()
    try:
        uvicorn.Server(config).run()
    finally:
        reloader.stop()
