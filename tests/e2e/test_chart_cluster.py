"""The chart against the real API server: every rendered object of every values set passes a
server-side dry-run, and an installed release pins an opted-in Deployment through a
`configpin serve` that runs under the release's own ServiceAccount token, whose RBAC is
enough and no broader."""

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.kube.api import ApiError, RawApi, connect
from devkit.kubeobjects import (
    PLURALS,
    collection,
    configmap,
    create,
    delete,
    eventually,
    get,
    mounting_deployment,
)
from devkit.localwebhook import REPO_ROOT, Webhook, service_account_kubeconfig
from tests.chart.test_chart_render import VALUES
from tests.e2e.conftest import Namespaces

HELM = str(REPO_ROOT / "scripts" / "helm")
CHART = str(REPO_ROOT / "charts" / "configpin")
DRY_RUN_NAMESPACE = "pin-system"

# cert-manager and the Prometheus operator are not part of the local control plane: their
# kinds get schemaless stand-in CRDs, so the dry-run checks names, scopes and API groups, not
# the fields those operators validate.
STAND_IN_CRDS = {
    ("cert-manager.io", "Issuer", "issuers"),
    ("cert-manager.io", "Certificate", "certificates"),
    ("monitoring.coreos.com", "ServiceMonitor", "servicemonitors"),
}
CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration", "Namespace"}
PLURALS.update(
    {
        "Service": "services",
        "PodDisruptionBudget": "poddisruptionbudgets",
        "NetworkPolicy": "networkpolicies",
        "Issuer": "issuers",
        "Certificate": "certificates",
        "ServiceMonitor": "servicemonitors",
        "Job": "jobs",
    }
)


def helm(*args: str, kubeconfig: str | None = None) -> str:
    command = [HELM, *args] + (["--kubeconfig", kubeconfig] if kubeconfig else [])
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def stand_in_crds(admin: RawApi) -> Iterator[None]:
    crds = []
    for group, kind, plural in STAND_IN_CRDS:
        crd = {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}"},
            "spec": {
                "group": group,
                "scope": "Namespaced",
                "names": {
                    "kind": kind,
                    "plural": plural,
                    "singular": kind.lower(),
                    "listKind": f"{kind}List",
                },
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {
                            "openAPIV3Schema": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            }
                        },
                    }
                ],
            },
        }
        path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        if admin.get(f"{path}/{crd['metadata']['name']}") is None:
            admin.create(path, crd)
        crds.append(crd)
    for group, _, plural in STAND_IN_CRDS:
        eventually(
            lambda g=group, p=plural: _served(admin, g, p), what=f"{plural}.{group} to be served"
        )
    if get(admin, "v1", "Namespace", None, DRY_RUN_NAMESPACE) is None:
        create(
            admin,
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": DRY_RUN_NAMESPACE}},
        )
    yield
    for crd in crds:
        admin.request(
            "DELETE",
            f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}",
        )


def _served(admin: RawApi, group: str, plural: str) -> bool:
    try:
        resources = admin.request("GET", f"/apis/{group}/v1")["resources"]
    except ApiError:
        return False
    return any(r["name"] == plural for r in resources)


@pytest.mark.parametrize("case", sorted(VALUES))
def test_every_rendered_object_is_accepted_by_the_api_server(
    admin: RawApi, stand_in_crds: None, case: str, tmp_path: Path
) -> None:
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(VALUES[case]))
    rendered = helm(
        "template", "prod", CHART, "--namespace", DRY_RUN_NAMESPACE, "-f", str(values_file)
    )
    documents = [doc for doc in yaml.safe_load_all(rendered) if doc]
    assert documents
    for doc in documents:
        namespace = None if doc["kind"] in CLUSTER_SCOPED else DRY_RUN_NAMESPACE
        path = collection(doc["apiVersion"], doc["kind"], namespace)
        try:
            admin.request("POST", f"{path}?dryRun=All&fieldValidation=Strict", body=doc)
        except ApiError as error:
            pytest.fail(f"{case}: {doc['kind']} {doc['metadata']['name']} refused: {error}")


RELEASE = "pin-helm"
FULLNAME = f"{RELEASE}-configpin"
RELEASE_NAMESPACE = "pin-helm-system"


@pytest.fixture(scope="module")
def installed(
    admin: RawApi, admin_kubeconfig: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Webhook]:
    """`helm install` with webhook.url pointing at a local `configpin serve` that runs with a
    token of the release's ServiceAccount."""
    workdir = tmp_path_factory.mktemp("helm-install")
    server = Webhook("", workdir)
    helm(
        "install",
        RELEASE,
        CHART,
        "--namespace",
        RELEASE_NAMESPACE,
        "--create-namespace",
        "--set",
        f"webhook.url={server.url}",
        "--set",
        f"webhook.caBundle={server.ca_bundle}",
        # No node runs the uninstall hook's Job here; test_lifecycle.py runs it.
        "--set",
        "controller.releaseOnUninstall=false",
        "--wait=false",
        kubeconfig=admin_kubeconfig,
    )
    try:
        server.kubeconfig = service_account_kubeconfig(
            admin, admin_kubeconfig, RELEASE_NAMESPACE, FULLNAME, workdir / "release.kubeconfig"
        )
        server.env["CONFIGPIN_NAMESPACE"] = RELEASE_NAMESPACE
        # Every review in the log: this server is called after the tests' own webhook
        # pinned the object, and an unchanged review is logged at DEBUG.
        server.env["CONFIGPIN_LOG_LEVEL"] = "DEBUG"
        server.start()
        time.sleep(1)  # the API server's informer on webhook configurations catches up
        yield server
    finally:
        server.stop()
        helm("uninstall", RELEASE, "--namespace", RELEASE_NAMESPACE, kubeconfig=admin_kubeconfig)
        delete(
            admin,
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": RELEASE_NAMESPACE}},
        )


def test_installed_release_pins_an_opted_in_deployment(
    admin: RawApi, installed: Webhook, namespaces: Namespaces
) -> None:
    ns = namespaces.make()
    create(admin, configmap(ns, "app-config", {"k": "v"}))
    deployment = create(admin, mounting_deployment(ns, "web", "app-config"))
    assert deployment["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"].startswith(
        "app-config-"
    )
    reviews = installed.log.read_text()
    assert f"Deployment {ns}/web" in reviews, (
        "the release's webhook configuration called this server"
    )


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("DELETE", "/api/v1/namespaces/{ns}/configmaps/app-config", None),
        (
            "PUT",
            "/api/v1/namespaces/{ns}/configmaps/app-config",
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "app-config"},
                "data": {},
            },
        ),
        ("GET", "/api/v1/namespaces/{ns}/secrets", None),
        ("GET", "/api/v1/namespaces/{ns}/pods", None),
        (
            "POST",
            "/apis/apps/v1/namespaces/{ns}/deployments",
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}},
        ),
        (
            "PATCH",
            "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/configpin",
            [{"op": "test", "path": "/metadata", "value": {}}],
        ),
    ],
)
def test_the_release_identity_is_refused_what_it_does_not_need(
    admin: RawApi, installed: Webhook, namespaces: Namespaces, method: str, path: str, body: Any
) -> None:
    ns = namespaces.make()
    create(admin, configmap(ns, "app-config", {"k": "v"}))
    identity = RawApi(connect(installed.kubeconfig), timeout_seconds=10)
    content_type = "application/json-patch+json" if method == "PATCH" else "application/json"
    with pytest.raises(ApiError) as refused:
        identity.request(method, path.format(ns=ns), body=body, content_type=content_type)
    assert refused.value.status == 403
    # ...while what the server does need is allowed.
    assert identity.get(f"/api/v1/namespaces/{ns}/configmaps/app-config") is not None
