"""Edge flows driven as a user types them: the real kubectl against the real control plane,
with configpin serving as the API server calls it."""

import json
import re
import time
from pathlib import Path
from typing import Any

from app.domain.labels import SNAPSHOT_SELECTOR
from app.kube.api import RawApi
from app.kube.keys import ensure_hmac_key
from devkit.kubectl import KubectlError, kubectl
from devkit.kubeobjects import configmap, create, eventually, get, items
from tests.e2e.conftest import Namespaces
from tests.e2e.test_pinning import seed, snapshot_data, wait_for_replica_sets, web_deployment
from tests.test_pinner_edges import service_account_volume

README = Path(__file__).resolve().parents[2] / "README.md"
PINS = "configpin.io/pins"


class Kubectl:
    def __init__(self, kubeconfig: str, namespace: str) -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace

    def __call__(self, *args: str, stdin: str | None = None) -> str:
        """Run kubectl in the namespace; its stdout and stderr (where warnings go)."""
        result = kubectl(self.kubeconfig, "-n", self.namespace, *args, stdin=stdin)
        return result.stdout + result.stderr

    def get(self, *args: str) -> dict[str, Any]:
        result = kubectl(self.kubeconfig, "-n", self.namespace, "get", *args, "-o", "json")
        found: dict[str, Any] = json.loads(result.stdout)
        return found

    def apply(self, manifest: dict[str, Any], *flags: str) -> str:
        return self("apply", "-f", "-", *flags, stdin=json.dumps(manifest))


def template(admin: RawApi, namespace: str) -> dict[str, Any]:
    deployment = get(admin, "apps/v1", "Deployment", namespace, "web")
    assert deployment is not None
    result: dict[str, Any] = deployment["spec"]["template"]
    return result


def config_volume(template_: dict[str, Any]) -> str:
    name: str = template_["spec"]["volumes"][0]["configMap"]["name"]
    return name


def edit_config(run: Kubectl, color: str) -> None:
    run("patch", "configmap", "app-config", "-p", json.dumps({"data": {"color": color}}))


def deployed(
    admin: RawApi,
    kubeconfig: str,
    namespaces: Namespaces,
) -> tuple[str, Kubectl]:
    """A fresh namespace with the sources, and the web Deployment applied with kubectl."""
    ns = namespaces.make()
    seed(admin, ns)
    run = Kubectl(kubeconfig, ns)
    run.apply(web_deployment(ns))
    return ns, run


def replace(run: Kubectl, manifest: dict[str, Any]) -> str:
    """`kubectl get -o json`, edit, `kubectl replace`: the manifest's spec over the stored
    object, retried while the deployment controller's status writes race it."""
    for _ in range(10):
        stored = run.get("deploy/web")
        stored["spec"] = manifest["spec"]
        try:
            return run("replace", "-f", "-", stdin=json.dumps(stored))
        except KubectlError as error:
            if "Conflict" not in error.stderr:
                raise
    raise AssertionError("kubectl replace kept conflicting")


def delete_for_good(run: Kubectl, configmap_name: str) -> None:
    """Delete a snapshot past its in-use finalizer, as `configpin release` or a hand edit
    lets happen."""
    run(
        "patch",
        "configmap",
        configmap_name,
        "--type=merge",
        "-p",
        '{"metadata":{"finalizers":null}}',
    )
    run("delete", "configmap", configmap_name)


def events(admin: RawApi, namespace: str, reason: str) -> list[dict[str, Any]]:
    return [e for e in items(admin, "v1", "Event", namespace) if e["reason"] == reason]


def test_undo_to_a_revision_that_differs_only_in_config_brings_that_config_back(
    admin: RawApi, admin_kubeconfig: str, namespaces: Namespaces
) -> None:
    ns, run = deployed(admin, admin_kubeconfig, namespaces)
    wait_for_replica_sets(admin, ns, 1)
    edit_config(run, "green")
    run("set", "env", "deploy/web", "FOO=bar")
    wait_for_replica_sets(admin, ns, 2)
    run("set", "env", "deploy/web", "FOO-")
    wait_for_replica_sets(admin, ns, 3)
    assert snapshot_data(admin, ns, "ConfigMap", config_volume(template(admin, ns))) == {
        "color": "green"
    }
    assert "rolled back" in run("rollout", "undo", "deploy/web", "--to-revision=1")
    volume = config_volume(template(admin, ns))
    assert snapshot_data(admin, ns, "ConfigMap", volume) == {"color": "blue"}


def test_replace_with_a_new_missing_envfrom_keeps_the_rest_pinned(
    admin: RawApi, admin_kubeconfig: str, namespaces: Namespaces
) -> None:
    ns, run = deployed(admin, admin_kubeconfig, namespaces)
    pinned = json.loads(template(admin, ns)["metadata"]["annotations"][PINS])
    manifest = web_deployment(ns, image="registry.example/web:2")
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    container["envFrom"].append({"configMapRef": {"name": "not-yet"}})
    output = replace(run, manifest)
    assert f"configmap {ns}/not-yet" in output  # kubectl shows the warning
    stored = template(admin, ns)
    assert stored["spec"]["containers"][0]["envFrom"][1]["configMapRef"]["name"] == "not-yet"
    assert json.loads(stored["metadata"]["annotations"][PINS]) == pinned  # nothing unpinned
    assert config_volume(stored) == pinned["configmap/app-config"]
    # Server-side apply of the same manifest keeps it so.
    run.apply(manifest, "--server-side", "--force-conflicts")
    assert template(admin, ns) == stored
    event = eventually(lambda: events(admin, ns, "SourceNotFound"), what="a SourceNotFound event")
    assert "not-yet" in event[0]["message"]


def test_platform_published_data_stays_live(
    admin: RawApi, admin_kubeconfig: str, namespaces: Namespaces
) -> None:
    ns = namespaces.make()
    seed(admin, ns)
    eventually(lambda: get(admin, "v1", "ConfigMap", ns, "kube-root-ca.crt"), what="the root CA")
    run = Kubectl(admin_kubeconfig, ns)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "debug", "namespace": ns},
        "spec": {
            "serviceAccountName": "default",
            "containers": [{"name": "shell", "image": "registry.example/shell:1"}],
            "volumes": [
                {"name": "config", "configMap": {"name": "app-config"}},
                {"name": "ca", "configMap": {"name": "kube-root-ca.crt"}},
            ],
        },
    }
    dry = kubectl(
        admin_kubeconfig,
        "-n",
        ns,
        "create",
        "--dry-run=server",
        "-o",
        "json",
        "-f",
        "-",
        stdin=json.dumps(pod),
    ).stdout
    if "kube-api-access-" not in dry:
        # The dev cluster runs without the ServiceAccount plugin: write its volume as it would.
        pod["spec"]["volumes"].append(service_account_volume())
    run("create", "-f", "-", stdin=json.dumps(pod))
    created = get(admin, "v1", "Pod", ns, "debug")
    assert created is not None
    volumes = {v["name"]: v for v in created["spec"]["volumes"]}
    assert volumes["config"]["configMap"]["name"].startswith("app-config-")
    assert volumes["ca"]["configMap"]["name"] == "kube-root-ca.crt"
    [access] = [v for name, v in volumes.items() if name.startswith("kube-api-access-")]
    assert access["projected"]["sources"][1]["configMap"]["name"] == "kube-root-ca.crt"
    assert set(json.loads(created["metadata"]["annotations"][PINS])) == {"configmap/app-config"}


def test_opting_a_pinned_deployment_out_unpins_it(
    admin: RawApi, admin_kubeconfig: str, namespaces: Namespaces
) -> None:
    ns, run = deployed(admin, admin_kubeconfig, namespaces)
    assert config_volume(template(admin, ns)) != "app-config"
    annotations = {"configpin.io/inject": "false"}
    opt_out = {"spec": {"template": {"metadata": {"annotations": annotations}}}}
    run("patch", "deploy/web", "-p", json.dumps(opt_out))
    stored = template(admin, ns)
    assert config_volume(stored) == "app-config"
    assert stored["spec"]["containers"][0]["envFrom"][0]["secretRef"]["name"] == "db"
    assert PINS not in stored["metadata"]["annotations"]


def test_crafted_pins_then_set_image_keep_the_named_configmap(
    admin: RawApi, admin_kubeconfig: str, namespaces: Namespaces
) -> None:
    ns = namespaces.make()
    seed(admin, ns)
    create(admin, configmap(ns, "canary-config", {"color": "canary"}))
    run = Kubectl(admin_kubeconfig, ns)
    crafted = web_deployment(ns)
    spec = crafted["spec"]["template"]["spec"]
    spec["volumes"][0]["configMap"]["name"] = "canary-config"
    spec["volumes"][1]["projected"]["sources"][0]["configMap"]["name"] = "canary-config"
    crafted["spec"]["template"]["metadata"]["annotations"] = {
        PINS: json.dumps({"configmap/app-config": "canary-config"})
    }
    run.apply(crafted)
    assert snapshot_data(admin, ns, "ConfigMap", config_volume(template(admin, ns))) == {
        "color": "canary"
    }
    run("set", "image", "deploy/web", "web=registry.example/web:2")
    assert snapshot_data(admin, ns, "ConfigMap", config_volume(template(admin, ns))) == {
        "color": "canary"
    }


def test_undo_to_a_deleted_snapshot_recreates_it_or_warns(
    admin: RawApi, admin_kubeconfig: str, namespaces: Namespaces
) -> None:
    ns, run = deployed(admin, admin_kubeconfig, namespaces)
    blue = config_volume(template(admin, ns))
    wait_for_replica_sets(admin, ns, 1)
    edit_config(run, "green")
    run("rollout", "restart", "deploy/web")
    wait_for_replica_sets(admin, ns, 2)
    green = config_volume(template(admin, ns))

    # The source holds revision 1's content again: the deleted snapshot is made again.
    delete_for_good(run, blue)
    edit_config(run, "blue")
    run("rollout", "undo", "deploy/web")
    assert config_volume(template(admin, ns)) == blue
    assert snapshot_data(admin, ns, "ConfigMap", blue) == {"color": "blue"}

    # Back to revision 2, whose content the source no longer holds: a warning and an Event.
    delete_for_good(run, green)
    output = run("rollout", "undo", "deploy/web")
    assert f"configmap {ns}/{green}" in output
    assert config_volume(template(admin, ns)) == green
    event = eventually(lambda: events(admin, ns, "SourceNotFound"), what="a SourceNotFound event")
    assert green in event[0]["message"]


def test_undo_with_a_match_expressions_selector_brings_back_the_old_config(
    admin: RawApi, admin_kubeconfig: str, namespaces: Namespaces
) -> None:
    ns = namespaces.make()
    seed(admin, ns)
    run = Kubectl(admin_kubeconfig, ns)
    manifest = web_deployment(ns)
    manifest["spec"]["selector"] = {
        "matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]
    }
    run.apply(manifest)
    [first] = wait_for_replica_sets(admin, ns, 1)
    run("set", "image", "deploy/web", "web=registry.example/web:2")
    wait_for_replica_sets(admin, ns, 2)
    edit_config(run, "orange")
    run("rollout", "undo", "deploy/web")
    time.sleep(2)
    newest = wait_for_replica_sets(admin, ns, 2)[-1]
    assert newest["metadata"]["name"] == first["metadata"]["name"]
    volume = config_volume(template(admin, ns))
    assert snapshot_data(admin, ns, "ConfigMap", volume) == {"color": "blue"}


def test_the_readme_clean_up_command_selects_snapshots_only(
    admin: RawApi, admin_kubeconfig: str, namespaces: Namespaces
) -> None:
    ns = namespaces.make()
    seed(admin, ns)
    ensure_hmac_key(admin, ns, "configpin-hmac")  # as configpin keeps its key
    run = Kubectl(admin_kubeconfig, ns)
    run.apply(web_deployment(ns))
    [command] = re.findall(r"`(kubectl delete cm,secret -A -l \S+)`", README.read_text())
    selector = command.split("-l ", 1)[1]
    assert selector == SNAPSHOT_SELECTOR
    listed = kubectl(
        admin_kubeconfig, *command.split()[1:], "--dry-run=server", "-o", "name"
    ).stdout.split()
    pins = json.loads(template(admin, ns)["metadata"]["annotations"][PINS])
    for snapshot in pins.values():
        assert any(line.endswith(f"/{snapshot}") for line in listed), (snapshot, listed)
    assert "secret/configpin-hmac" not in listed
    assert items(admin, "v1", "ConfigMap", ns, SNAPSHOT_SELECTOR)  # the dry-run deleted nothing
