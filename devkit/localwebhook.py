"""configpin serving on loopback as the API server will call it: over TLS, under the chart's
ServiceAccount and RBAC (not as cluster admin), registered by URL with the chart's webhook
configuration."""

import base64
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx2 as httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from app.kube.api import RawApi
from devkit.kubeobjects import create, create_namespace, delete, eventually, get

REPO_ROOT = Path(__file__).resolve().parents[1]
SYSTEM_NAMESPACE = "configpin-system"
RELEASE = "configpin"


def helm_template(*values: str, show_only: list[str] | None = None) -> list[dict[str, Any]]:
    """The chart rendered by `scripts/helm template` with `--set` values."""
    args = [
        str(REPO_ROOT / "scripts" / "helm"),
        "template",
        RELEASE,
        str(REPO_ROOT / "charts" / "configpin"),
        "--namespace",
        SYSTEM_NAMESPACE,
    ]
    for value in values:
        args += ["--set", value]
    for template in show_only or []:
        args += ["--show-only", template]
    rendered = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def webhook_identity(
    admin: RawApi, admin_kubeconfig: str, workdir: Path, *chart_values: str
) -> str:
    """A kubeconfig holding a token of the chart's ServiceAccount, bound to the chart's RBAC:
    configpin runs with exactly what it will have in a cluster."""
    if get(admin, "v1", "Namespace", None, SYSTEM_NAMESPACE) is None:
        create_namespace(admin, SYSTEM_NAMESPACE)
    values = chart_values or ("tls.mode=cert-manager",)
    for obj in helm_template(
        *values, show_only=["templates/serviceaccount.yaml", "templates/rbac.yaml"]
    ):
        delete(admin, obj)
        create(admin, obj)
    return service_account_kubeconfig(
        admin, admin_kubeconfig, SYSTEM_NAMESPACE, RELEASE, workdir / "webhook.kubeconfig"
    )


def service_account_token(admin: RawApi, namespace: str, account: str) -> str:
    """A bearer token of `account`, valid for a day (TokenRequest)."""
    answer = admin.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
        body={
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 86400},
        },
    )
    token: str = answer["status"]["token"]
    return token


def service_account_kubeconfig(
    admin: RawApi, admin_kubeconfig: str, namespace: str, account: str, path: Path
) -> str:
    """A kubeconfig for the same cluster that authenticates with a token of `account`."""
    token = service_account_token(admin, namespace, account)
    cluster = yaml.safe_load(Path(admin_kubeconfig).read_text())["clusters"][0]["cluster"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "dev", "cluster": cluster}],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": account, "context": {"cluster": "dev", "user": account}}],
        "current-context": account,
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return str(path)


class Webhook:
    """`configpin serve` as a child process on a free loopback port, with certificates and
    an HMAC key from `configpin certs` (or those of `certs`, made for another replica)."""

    def __init__(
        self,
        kubeconfig: str,
        workdir: Path,
        env: Mapping[str, str] | None = None,
        entrypoint: tuple[str, ...] = (sys.executable, "-m", "app"),
        certs: Path | None = None,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.certs = certs or workdir / "certs"
        self.log = workdir / "webhook.log"
        self.env = dict(env or {})
        self.entrypoint = entrypoint
        self.workdir = workdir
        # Self-managed TLS: the server makes and rotates its own certificates.
        self.self_managed = self.env.get("CONFIGPIN_TLS_MODE") == "self-managed"
        if certs is None:
            make_certs = ("certs", "--out", str(self.certs), "--san", "127.0.0.1")
            subprocess.run(
                [sys.executable, "-m", "app", *make_certs],
                check=True,
                capture_output=True,
            )
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_bundle(self) -> str:
        return base64.b64encode((self.certs / "ca.crt").read_bytes()).decode()

    def start(self) -> None:
        env = {**os.environ, "CONFIGPIN_NAMESPACE": SYSTEM_NAMESPACE, **self.env}
        command = [
            *self.entrypoint,
            "serve",
            *("--host", "127.0.0.1", "--port", str(self.port)),
            *("--kubeconfig", self.kubeconfig, "--key-file", str(self.certs / "hmac.key")),
        ]
        if not self.self_managed:
            command += ["--cert", str(self.certs / "tls.crt"), "--key", str(self.certs / "tls.key")]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir, env=env
            )
        # A self-managed server's CA is only known once it made one: trust is checked by
        # the API server calling it, not here.
        verify: ssl.SSLContext | bool = (
            False
            if self.self_managed
            else ssl.create_default_context(cafile=str(self.certs / "ca.crt"))
        )

        def ready() -> bool:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"configpin serve exited:\n{self.log.read_text()[-3000:]}")
            try:
                return httpx.get(f"{self.url}/readyz", verify=verify, timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        eventually(ready, timeout=60, what="configpin serve to be ready")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def metric(self, name: str) -> dict[tuple[tuple[str, str], ...], float]:
        """The samples of metric `name` on /metrics, by their sorted label pairs."""
        trust = ssl.create_default_context(cafile=str(self.certs / "ca.crt"))
        text = httpx.get(f"{self.url}/metrics", verify=trust, timeout=10).text
        return {
            tuple(sorted(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name
        }

    def register(self, admin: RawApi) -> dict[str, Any]:
        """The chart's MutatingWebhookConfiguration, pointed at this process by URL."""
        return register_url(admin, self.url, self.ca_bundle)


def register_url(admin: RawApi, url: str, ca_bundle: str) -> dict[str, Any]:
    """The chart's MutatingWebhookConfiguration, pointed at `url` (trusting `ca_bundle`)."""
    config = helm_template(
        "tls.mode=cert-manager",
        f"webhook.url={url}",
        f"webhook.caBundle={ca_bundle}",
        show_only=["templates/mutatingwebhookconfiguration.yaml"],
    )[0]
    delete(admin, config)
    create(admin, config)
    time.sleep(1)  # the API server's informer on webhook configurations catches up
    return config
