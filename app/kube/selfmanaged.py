"""Self-managed TLS at the edge: the Secret that holds the certificates, the caBundle of
the webhook configuration, and the files the server loads.

Every replica runs the same loop. The Secret is the one source of truth: replicas that
start together converge on whichever Secret was created first, and an update carries its
resourceVersion so a concurrent rotation loses cleanly and is read back on the next step.
Files are written only after the caBundle is published, so the API server never meets a
serving certificate whose CA it does not trust yet. (One race is left: a replica that read
the Secret just before another one rotated it can publish its stale caBundle once; its own
next step publishes the current one again.)
"""

import base64
import binascii
import datetime
import logging
import os
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from app.certs import Pem
from app.domain.rotation import Bundle, Lifetimes, next_bundle, split_certificates
from app.kube.api import ApiError, ApiUnreachableError, RawApi

log = logging.getLogger("configpin.tls")

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
TLS_CERT = "tls.crt"
TLS_KEY = "tls.key"
CA_BUNDLE = "ca-bundle.crt"  # the CAs to trust, published as the caBundle
WEBHOOK_CONFIGURATIONS = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"


class SelfManagedTLS:
    def __init__(
        self,
        api: RawApi,
        *,
        namespace: str,
        secret: str,
        sans: Sequence[str],
        cert_dir: Path,
        webhook_configuration: str | None,
        lifetimes: Lifetimes = Lifetimes(),  # noqa: B008 - frozen, so sharing it is safe
    ) -> None:
        """`webhook_configuration` None: the caBundle is managed elsewhere, never patched."""
        self._api = api
        self._namespace = namespace
        self._secret = secret
        self._sans = list(sans)
        self._cert_dir = cert_dir
        self._webhook_configuration = webhook_configuration
        self._lifetimes = lifetimes
        self._ready = False

    @property
    def cert_file(self) -> Path:
        return self._cert_dir / TLS_CERT

    @property
    def key_file(self) -> Path:
        return self._cert_dir / TLS_KEY

    @property
    def _secrets(self) -> str:
        return f"/api/v1/namespaces/{self._namespace}/secrets"

    def ensure(self, now: datetime.datetime) -> bool:
        """One reconcile step; True when the certificate files changed. Raises ApiError or
        ApiUnreachableError when the API fails (nothing is written to the files then)."""
        secret = self._api.get(f"{self._secrets}/{self._secret}")
        if secret is None:
            secret = self._create(now)
        rotation = next_bundle(_bundle_of(secret), now, self._sans, self._lifetimes)
        if rotation.changed:
            log.info(
                "renewing TLS Secret %s/%s: %s",
                self._namespace,
                self._secret,
                "; ".join(rotation.reasons),
            )
            try:
                self._api.request(
                    "PUT", f"{self._secrets}/{self._secret}", body=_updated(secret, rotation.bundle)
                )
            except ApiError as error:
                if error.status != 409:
                    raise
                log.info("TLS Secret changed by another replica meanwhile; reading it next step")
                return False
        self._publish(rotation.bundle.ca_bundle)
        changed = self._write_files(rotation.bundle.serving)
        self._ready = True
        return changed

    def wait_ready(self, stop: threading.Event, retry_interval: float = 2.0) -> bool:
        """Reconcile until the files are in place (the server loads them at start-up);
        False when `stop` was set first."""
        while not stop.is_set():
            self._step()
            if self._ready:
                return True
            stop.wait(retry_interval)
        return False

    def run(self, stop: threading.Event, interval: float) -> None:
        """Reconcile every `interval` seconds until `stop` is set; a failed step is logged
        and tried again on the next one."""
        while not stop.wait(interval):
            self._step()

    def _step(self) -> None:
        try:
            if self.ensure(datetime.datetime.now(datetime.UTC)):
                log.info("wrote a new serving certificate to %s", self._cert_dir)
        except (ApiError, ApiUnreachableError) as error:
            log.warning("self-managed TLS step failed: %s", error)
        except OSError as error:
            log.warning("cannot write the certificate files: %s", error.strerror)
        except Exception as error:
            # Only the type: a message could quote what failed to parse. The loop must
            # survive, or the certificate would silently expire.
            log.error("self-managed TLS step failed: %s", type(error).__name__)

    def _create(self, now: datetime.datetime) -> dict[str, Any]:
        """Create-or-get: replicas starting together all end up with the first Secret."""
        bundle = next_bundle(None, now, self._sans, self._lifetimes).bundle
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": self._secret,
                "namespace": self._namespace,
                "labels": {"app.kubernetes.io/managed-by": "configpin"},
            },
            "type": "Opaque",
            "data": _data(bundle),
        }
        secret, created = self._api.create_or_get(self._secrets, body)
        if created:
            log.info("created TLS Secret %s/%s with a new CA", self._namespace, self._secret)
        return secret

    def _publish(self, ca_bundle: bytes) -> None:
        """Write the caBundle into every webhook of the configuration that lacks it."""
        if self._webhook_configuration is None:
            return
        path = f"{WEBHOOK_CONFIGURATIONS}/{self._webhook_configuration}"
        config = self._api.get(path)
        if config is None:
            # Nothing calls the webhook without a configuration; it is patched once it exists.
            log.warning("webhook configuration %s not found", self._webhook_configuration)
            return
        encoded = base64.b64encode(ca_bundle).decode()
        operations: list[dict[str, Any]] = []
        for index, webhook in enumerate(config.get("webhooks") or []):
            if (webhook.get("clientConfig") or {}).get("caBundle") != encoded:
                # The test guards against the list changing order since it was read.
                operations += [
                    {"op": "test", "path": f"/webhooks/{index}/name", "value": webhook["name"]},
                    {
                        "op": "add",
                        "path": f"/webhooks/{index}/clientConfig/caBundle",
                        "value": encoded,
                    },
                ]
        if operations:
            self._api.request(
                "PATCH", path, body=operations, content_type="application/json-patch+json"
            )
            log.info(
                "wrote the caBundle into %d webhooks of %s",
                len(operations) // 2,
                self._webhook_configuration,
            )

    def _write_files(self, serving: Pem) -> bool:
        self._cert_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        changed = False
        # The key first: the reloader keeps the old pair while the two do not match.
        for path, content, mode in (
            (self.key_file, serving.key, 0o600),
            (self.cert_file, serving.cert, 0o644),
        ):
            if _read(path) != content:
                _write_atomically(path, content, mode)
                changed = True
        return changed


def _bundle_of(secret: Mapping[str, Any]) -> Bundle | None:
    data = secret.get("data") or {}
    decoded: dict[str, bytes] = {}
    for key in (CA_CERT, CA_KEY, TLS_CERT, TLS_KEY, CA_BUNDLE):
        try:
            decoded[key] = base64.b64decode(data.get(key) or "", validate=True)
        except (binascii.Error, TypeError):
            decoded[key] = b""
    if not decoded[CA_CERT] or not decoded[CA_KEY]:
        return None
    return Bundle(
        ca=Pem(decoded[CA_CERT], decoded[CA_KEY]),
        serving=Pem(decoded[TLS_CERT], decoded[TLS_KEY]),
        trusted=split_certificates(decoded[CA_BUNDLE]),
    )


def _data(bundle: Bundle) -> dict[str, str]:
    raw = {
        CA_CERT: bundle.ca.cert,
        CA_KEY: bundle.ca.key,
        TLS_CERT: bundle.serving.cert,
        TLS_KEY: bundle.serving.key,
        CA_BUNDLE: bundle.ca_bundle,
    }
    return {key: base64.b64encode(value).decode() for key, value in raw.items()}


def _updated(secret: Mapping[str, Any], bundle: Bundle) -> dict[str, Any]:
    """The Secret as read (its resourceVersion makes the update conditional) with the new
    bundle; its type is kept, as a type cannot change."""
    return {**secret, "data": {**(secret.get("data") or {}), **_data(bundle)}}


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _write_atomically(path: Path, content: bytes, mode: int) -> None:
    """Readers see the old file or the new one, never a partial one. mkstemp creates the
    file 0600, so a key is never readable by others, not even for a moment."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(content)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
