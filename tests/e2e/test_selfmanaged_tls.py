"""Self-managed TLS against a real API server, as the chart's ServiceAccount with the RBAC
the chart grants in self-managed mode (not as cluster admin).

The chart is rendered under a name of its own (fullnameOverride) and bound to the session's
ServiceAccount, so its RBAC, Secret and webhook configuration sit beside the session's
objects instead of replacing them. Clocks are explicit: with lifetimes of seconds, a
minute of rotations runs in a few seconds of steps.
"""

import base64
import datetime
import logging
import os
import stat
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from app.domain.rotation import Lifetimes, service_sans
from app.kube.api import ApiError, RawApi, connect
from app.kube.selfmanaged import SelfManagedTLS
from devkit.kubeobjects import create, delete, eventually, get, update
from devkit.localwebhook import (
    RELEASE,
    SYSTEM_NAMESPACE,
    helm_template,
    service_account_kubeconfig,
)
from tests import tlscheck

NAME = "configpin-tls-e2e"
SECRET = f"{NAME}-tls"
VALUES = (
    "tls.mode=self-managed",
    f"fullnameOverride={NAME}",
    "serviceAccount.create=false",
    f"serviceAccount.name={RELEASE}",
    # Nothing serves this configuration: never let it stand in another test's way.
    "webhook.failurePolicy.deployments=Ignore",
    "webhook.failurePolicy.pods=Ignore",
)
HOST = f"{NAME}.{SYSTEM_NAMESPACE}.svc"  # the name the API server dials
# The CA is renewed with under 20 s left, the serving certificate with under 5 s.
SHORT = Lifetimes(ca=datetime.timedelta(seconds=60), serving=datetime.timedelta(seconds=15))
SECRET_KEYS = {"ca.crt", "ca.key", "tls.crt", "tls.key", "ca-bundle.crt"}


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def can(api: RawApi, verb: str, resource: str, name: str = "", namespace: str = "") -> bool:
    group, _, plural = resource.rpartition("/")
    review = api.create(
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {
                "resourceAttributes": {
                    "group": group,
                    "resource": plural,
                    "verb": verb,
                    "name": name,
                    "namespace": namespace,
                }
            },
        },
    )
    return bool(review["status"].get("allowed"))


@pytest.fixture(scope="module")
def identity(admin: RawApi, webhook_kubeconfig: str) -> Iterator[RawApi]:
    """The chart's ServiceAccount with the chart's self-managed RBAC."""
    rbac = helm_template(*VALUES, show_only=["templates/rbac.yaml"])
    for obj in rbac:
        delete(admin, obj)
        create(admin, obj)
    api = RawApi(connect(webhook_kubeconfig), timeout_seconds=10)
    # The authorizer learns of new bindings through an informer.
    eventually(
        lambda: (
            can(api, "update", "secrets", SECRET, SYSTEM_NAMESPACE)
            and can(
                api, "patch", "admissionregistration.k8s.io/mutatingwebhookconfigurations", NAME
            )
        ),
        timeout=30,
        what="the self-managed RBAC to take effect",
    )
    yield api
    for obj in rbac:
        delete(admin, obj)


@pytest.fixture
def webhook_config(admin: RawApi, identity: RawApi) -> Iterator[dict[str, Any]]:
    """A fresh start: the chart's webhook configuration without caBundle, and no Secret."""
    config = helm_template(*VALUES, show_only=["templates/mutatingwebhookconfiguration.yaml"])[0]
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": _secret_meta()}
    for obj in (config, secret):
        delete(admin, obj)
    eventually(lambda: read_secret(admin) is None, timeout=30, what="the old Secret to go")
    create(admin, config)
    yield config
    for obj in (config, secret):
        delete(admin, obj)


def _secret_meta() -> dict[str, str]:
    return {"name": SECRET, "namespace": SYSTEM_NAMESPACE}


def read_secret(admin: RawApi) -> dict[str, Any] | None:
    return get(admin, "v1", "Secret", SYSTEM_NAMESPACE, SECRET)


def secret_file(secret: Mapping[str, Any], key: str) -> bytes:
    return base64.b64decode(secret["data"][key])


def published_ca_bundles(admin: RawApi) -> list[bytes]:
    """The caBundle of each webhook in the configuration, as the API server has it."""
    config = get(
        admin, "admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", None, NAME
    )
    assert config is not None
    return [
        base64.b64decode(webhook["clientConfig"].get("caBundle", ""))
        for webhook in config["webhooks"]
    ]


def verifies(cert_file: Path, ca_bundle: bytes, now: datetime.datetime) -> bool:
    """Whether a client trusting `ca_bundle` accepts the served certificate for HOST."""
    return tlscheck.verifies(cert_file.read_bytes(), ca_bundle, now, HOST)


def tls(api: RawApi, cert_dir: Path, webhook_configuration: str | None = NAME) -> SelfManagedTLS:
    return SelfManagedTLS(
        api,
        namespace=SYSTEM_NAMESPACE,
        secret=SECRET,
        sans=service_sans(NAME, SYSTEM_NAMESPACE),
        cert_dir=cert_dir,
        webhook_configuration=webhook_configuration,
        lifetimes=SHORT,
    )


@pytest.mark.usefixtures("webhook_config")
def test_first_start_creates_the_secret_and_injects_the_ca_bundle(
    admin: RawApi, identity: RawApi, tmp_path: Path
) -> None:
    replica = tls(identity, tmp_path / "tls")
    now = utcnow()

    assert replica.ensure(now) is True

    secret = read_secret(admin)
    assert secret is not None
    assert secret["type"] == "Opaque"
    assert set(secret["data"]) == SECRET_KEYS
    ca_bundle = secret_file(secret, "ca-bundle.crt")
    assert published_ca_bundles(admin) == [ca_bundle, ca_bundle]  # both webhooks
    assert replica.cert_file.read_bytes() == secret_file(secret, "tls.crt")
    assert replica.key_file.read_bytes() == secret_file(secret, "tls.key")
    assert stat.S_IMODE(os.stat(replica.key_file).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(replica.cert_file).st_mode) == 0o644
    assert stat.S_IMODE(os.stat(tmp_path / "tls").st_mode) == 0o700
    assert verifies(replica.cert_file, ca_bundle, now)

    # A second step changes nothing: not the Secret, not the configuration, not the files.
    config = get(
        admin, "admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", None, NAME
    )
    assert config is not None
    files = (replica.cert_file.stat().st_mtime_ns, replica.key_file.stat().st_mtime_ns)

    assert replica.ensure(now + datetime.timedelta(seconds=1)) is False

    assert read_secret(admin) == secret
    again = get(
        admin, "admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", None, NAME
    )
    assert again is not None
    assert again["metadata"]["resourceVersion"] == config["metadata"]["resourceVersion"]
    assert (replica.cert_file.stat().st_mtime_ns, replica.key_file.stat().st_mtime_ns) == files


@pytest.mark.usefixtures("webhook_config")
def test_replicas_starting_together_share_the_first_secret(
    admin: RawApi, webhook_kubeconfig: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="configpin.tls")
    replicas = [
        tls(RawApi(connect(webhook_kubeconfig), timeout_seconds=10), tmp_path / f"replica-{i}")
        for i in range(4)
    ]
    start = threading.Barrier(len(replicas))
    now = utcnow()
    errors: list[BaseException] = []

    def run(replica: SelfManagedTLS) -> None:
        start.wait()
        try:
            replica.ensure(now)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(replica,)) for replica in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert caplog.text.count("created TLS Secret") == 1
    secret = read_secret(admin)
    assert secret is not None
    for replica in replicas:
        assert replica.cert_file.read_bytes() == secret_file(secret, "tls.crt")
        assert replica.ensure(now) is False
    assert read_secret(admin) == secret


@pytest.mark.usefixtures("webhook_config")
def test_short_lifetimes_rotate_and_the_served_certificate_stays_trusted(
    admin: RawApi, identity: RawApi, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two and a half CA lifetimes in two-second steps. At every step the files verify
    against the caBundle in the webhook configuration, both the one published before the
    step and the one after it. The logs say why, and hold no key material."""
    caplog.set_level(logging.DEBUG)
    replica = tls(identity, tmp_path / "tls")
    start = now = utcnow()
    cas: set[bytes] = set()
    servings: set[bytes] = set()
    largest_bundle = 0
    before: bytes | None = None
    while now < start + datetime.timedelta(seconds=150):
        replica.ensure(now)
        [after, other] = published_ca_bundles(admin)
        assert after == other
        assert verifies(replica.cert_file, after, now), now - start
        if before is not None:
            assert verifies(replica.cert_file, before, now), now - start
        secret = read_secret(admin)
        assert secret is not None
        assert secret_file(secret, "ca-bundle.crt") == after
        cas.add(secret_file(secret, "ca.crt"))
        servings.add(replica.cert_file.read_bytes())
        largest_bundle = max(largest_bundle, len(x509.load_pem_x509_certificates(after)))
        before = after
        now += datetime.timedelta(seconds=2)

    assert len(cas) >= 3  # the CA rotated at least twice
    assert len(servings) >= 10
    assert largest_bundle == 2  # old and new CA overlapped, and old ones left
    assert len(x509.load_pem_x509_certificates(before or b"")) <= 2
    assert "the CA expires soon" in caplog.text
    assert "the serving certificate expires soon" in caplog.text
    key = replica.key_file.read_bytes()
    key_body = b"".join(key.splitlines()[1:-1]).decode()
    for leak in ("PRIVATE KEY", key_body[:24], base64.b64encode(key).decode()[:24]):
        assert leak not in caplog.text


@pytest.mark.usefixtures("webhook_config")
def test_a_concurrent_update_loses_cleanly_and_is_read_again(
    admin: RawApi, identity: RawApi, webhook_kubeconfig: str, tmp_path: Path
) -> None:
    replica_dir = tmp_path / "tls"
    now = utcnow()
    assert tls(identity, replica_dir).ensure(now)
    first = read_secret(admin)
    assert first is not None

    class OtherReplicaWritesFirst(RawApi):
        """Just before this replica's update, another writer changes the Secret."""

        raced = False

        def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
            if method == "PUT" and path.endswith(f"/secrets/{SECRET}") and not self.raced:
                self.raced = True
                current = read_secret(admin)
                assert current is not None
                current["metadata"].setdefault("annotations", {})["e2e/touched"] = "yes"
                update(admin, current)
            return super().request(method, path, **kwargs)

    racing = OtherReplicaWritesFirst(connect(webhook_kubeconfig), timeout_seconds=10)
    replica = tls(racing, replica_dir)
    due = now + datetime.timedelta(seconds=12)  # the serving certificate is due

    assert replica.ensure(due) is False  # lost: 409, nothing written
    assert racing.raced
    assert replica.cert_file.read_bytes() == secret_file(first, "tls.crt")

    assert replica.ensure(due) is True  # read again, renewed
    renewed = read_secret(admin)
    assert renewed is not None
    assert renewed["metadata"]["annotations"]["e2e/touched"] == "yes"
    assert secret_file(renewed, "tls.crt") != secret_file(first, "tls.crt")
    assert replica.cert_file.read_bytes() == secret_file(renewed, "tls.crt")


def test_a_ca_bundle_managed_elsewhere_is_left_alone(
    admin: RawApi, identity: RawApi, webhook_config: dict[str, Any], tmp_path: Path
) -> None:
    replica = tls(identity, tmp_path / "tls", webhook_configuration=None)

    assert replica.ensure(utcnow()) is True

    assert read_secret(admin) is not None
    assert published_ca_bundles(admin) == [b"", b""]


def test_the_chart_rbac_is_enough_and_no_more(identity: RawApi) -> None:
    mwc = "admissionregistration.k8s.io/mutatingwebhookconfigurations"
    for verb, resource, name, namespace in [
        ("get", "secrets", SECRET, SYSTEM_NAMESPACE),
        ("create", "secrets", "", SYSTEM_NAMESPACE),
        ("update", "secrets", SECRET, SYSTEM_NAMESPACE),
        ("get", mwc, NAME, ""),
        ("patch", mwc, NAME, ""),
    ]:
        assert can(identity, verb, resource, name, namespace), (verb, resource, name)
    for verb, resource, name, namespace in [
        ("update", "secrets", f"{NAME}-hmac-key", SYSTEM_NAMESPACE),
        ("update", "secrets", SECRET, "default"),
        ("patch", "secrets", SECRET, SYSTEM_NAMESPACE),
        ("delete", "secrets", SECRET, SYSTEM_NAMESPACE),
        ("list", "secrets", "", SYSTEM_NAMESPACE),
        ("patch", mwc, "someone-elses-webhook", ""),
        ("update", mwc, NAME, ""),
        ("delete", mwc, NAME, ""),
    ]:
        assert not can(identity, verb, resource, name, namespace), (verb, resource, name)


@pytest.mark.usefixtures("webhook_config")
def test_without_the_webhook_rights_no_file_is_written(
    admin: RawApi, secrets_only: RawApi, tmp_path: Path
) -> None:
    """Files follow the published caBundle: when it cannot be published, the step fails
    with the API's error and the server keeps what it serves."""
    replica = tls(secrets_only, tmp_path / "tls")

    with pytest.raises(ApiError) as failure:
        replica.ensure(utcnow())

    assert failure.value.status == 403
    assert read_secret(admin) is not None  # the Secret was made, the caBundle not written
    assert published_ca_bundles(admin) == [b"", b""]
    assert not replica.cert_file.exists() and not replica.key_file.exists()


@pytest.fixture
def secrets_only(admin: RawApi, admin_kubeconfig: str, tmp_path: Path) -> Iterator[RawApi]:
    """A ServiceAccount that may read and write Secrets in the namespace, and nothing else."""
    account = "tls-e2e-secrets-only"
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": account, "namespace": SYSTEM_NAMESPACE},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": account, "namespace": SYSTEM_NAMESPACE},
            "rules": [
                {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "create", "update"]}
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": account, "namespace": SYSTEM_NAMESPACE},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
            "subjects": [
                {"kind": "ServiceAccount", "name": account, "namespace": SYSTEM_NAMESPACE}
            ],
        },
    ]
    for obj in objects:
        delete(admin, obj)
        create(admin, obj)
    path = service_account_kubeconfig(
        admin, admin_kubeconfig, SYSTEM_NAMESPACE, account, tmp_path / "secrets-only.kubeconfig"
    )
    api = RawApi(connect(path), timeout_seconds=10)
    eventually(
        lambda: can(api, "update", "secrets", SECRET, SYSTEM_NAMESPACE),
        timeout=30,
        what="the Role to take effect",
    )
    yield api
    for obj in objects:
        delete(admin, obj)
