"""`configpin serve` with self-managed TLS, called by the real API server while its serving
certificate and CA rotate: the renewals are picked up without a restart and every call
in between succeeds."""

import json
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.kube.api import RawApi
from devkit.kubeobjects import configmap, create, delete, eventually, get, mounting_deployment
from devkit.localwebhook import RELEASE, Webhook, helm_template
from tests.e2e.conftest import Namespaces

NAME = "configpin-rotating"
VALUES = (
    "tls.mode=self-managed",
    f"fullnameOverride={NAME}",
    "serviceAccount.create=false",
    f"serviceAccount.name={RELEASE}",
    # Fail closed, so that a call the API server cannot make (an untrusted certificate)
    # shows as a refused Deployment.
    "webhook.failurePolicy.deployments=Fail",
    "webhook.failurePolicy.pods=Ignore",
)
# Serving certificates last 24 s (renewed with under 8 s left), the CA 75 s: within a
# minute and a half the server renews its certificate several times and its CA once.
LIFETIMES = {"CONFIGPIN_TLS_SERVING_VALIDITY": "PT24S", "CONFIGPIN_TLS_CA_VALIDITY": "PT75S"}
RUN_SECONDS = 90


def served_certificate(port: int) -> bytes:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # only reading which certificate is served
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as sock,
        context.wrap_socket(sock) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


@pytest.fixture
def rotating_webhook(admin: RawApi, webhook_kubeconfig: str, tmp_path: Path) -> Iterator[Webhook]:
    for obj in helm_template(*VALUES, show_only=["templates/rbac.yaml"]):
        delete(admin, obj)
        create(admin, obj)
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": f"{NAME}-tls", "namespace": "configpin-system"},
    }
    delete(admin, secret)
    server = Webhook(
        webhook_kubeconfig,
        tmp_path,
        env={
            "CONFIGPIN_TLS_MODE": "self-managed",
            "CONFIGPIN_TLS_SECRET": f"{NAME}-tls",
            "CONFIGPIN_WEBHOOK_CONFIGURATION": NAME,
            "CONFIGPIN_SERVICE_NAME": NAME,
            "CONFIGPIN_TLS_EXTRA_SANS": json.dumps(["127.0.0.1"]),
            "CONFIGPIN_CERT_DIR": str(tmp_path / "tls"),
            "CONFIGPIN_TLS_CHECK_SECONDS": "1",
            "CONFIGPIN_TLS_RELOAD_SECONDS": "1",
            **LIFETIMES,
        },
    )
    config = helm_template(
        *VALUES,
        f"webhook.url={server.url}",
        show_only=["templates/mutatingwebhookconfiguration.yaml"],
    )[0]
    delete(admin, config)
    create(admin, config)  # without a caBundle: the server injects its own
    server.start()
    try:
        yield server
    finally:
        server.stop()
        delete(admin, config)
        delete(admin, secret)
        for obj in helm_template(*VALUES, show_only=["templates/rbac.yaml"]):
            delete(admin, obj)


def test_rotation_is_picked_up_live_and_the_api_server_keeps_calling(
    admin: RawApi, namespaces: Namespaces, rotating_webhook: Webhook
) -> None:
    def injected() -> bool:
        config = get(
            admin, "admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", None, NAME
        )
        return bool(config and all(w["clientConfig"].get("caBundle") for w in config["webhooks"]))

    eventually(injected, timeout=30, what="the caBundle to be injected")
    time.sleep(2)  # the API server's informer on webhook configurations catches up
    ns = namespaces.make()
    create(admin, configmap(ns, "app-config", {"k": "v"}))
    assert rotating_webhook.process is not None
    pid = rotating_webhook.process.pid
    certificates: list[bytes] = []
    bundles: set[str] = set()
    calls = 0
    deadline = time.monotonic() + RUN_SECONDS
    while time.monotonic() < deadline:
        served = served_certificate(rotating_webhook.port)
        if not certificates or certificates[-1] != served:
            certificates.append(served)
        config = get(
            admin, "admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", None, NAME
        )
        assert config is not None
        bundles.add(config["webhooks"][0]["clientConfig"]["caBundle"])
        # Each Deployment goes through this webhook (failurePolicy Fail): an untrusted
        # certificate or a server down would refuse it.
        name = f"web-{calls}"
        created = create(admin, mounting_deployment(ns, name, "app-config", replicas=0))
        assert created["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"].startswith(
            "app-config-"
        )
        calls += 1
        time.sleep(1)
    assert rotating_webhook.process is not None and rotating_webhook.process.pid == pid
    assert rotating_webhook.process.poll() is None, "the server restarted"
    assert len(certificates) >= 3, (
        f"expected several renewals, saw {len(certificates)} certificates"
    )
    assert len(bundles) >= 2, "expected the CA to rotate (a new caBundle)"
    assert calls >= RUN_SECONDS // 3
