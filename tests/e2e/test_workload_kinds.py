"""Every kind of the table on the real control plane, driven with the real kubectl: CREATE
pins, a re-apply of the same manifest changes nothing, an edit then a template change pins
the edit, `kubectl rollout undo` brings back the old revision's snapshots."""

import json
import ssl
import time
from typing import Any

import httpx2 as httpx
import pytest
import yaml

from app.domain.pinning import without_empty_fields
from app.kube.api import RawApi
from devkit.bluegreen import argo_rollouts
from devkit.kubectl import kubectl
from devkit.kubeobjects import (
    b64,
    configmap,
    create,
    eventually,
    get,
    items,
    secret,
    update,
)
from devkit.localwebhook import Webhook
from tests.e2e.conftest import Namespaces

PINS = "configpin.io/pins"
PASSWORD = "e2e-kinds-sentinel-password-5521"
GROUP_VERSION = {
    "StatefulSet": "apps/v1",
    "DaemonSet": "apps/v1",
    "ReplicaSet": "apps/v1",
    "Deployment": "apps/v1",
    "Job": "batch/v1",
    "CronJob": "batch/v1",
    "Rollout": "argoproj.io/v1alpha1",
}


def template(image: str, restart: str = "Always") -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": "web"}},
        "spec": {
            "restartPolicy": restart,
            "containers": [
                {
                    "name": "web",
                    "image": image,
                    "env": [
                        {
                            "name": "PASSWORD",
                            "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}},
                        }
                    ],
                    "volumeMounts": [{"name": "config", "mountPath": "/etc/web"}],
                }
            ],
            "volumes": [{"name": "config", "configMap": {"name": "app-config"}}],
        },
    }


def manifest(kind: str, namespace: str, image: str = "registry.example/web:1") -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": "web"}},
        "template": template(image),
    }
    if kind == "StatefulSet":
        spec |= {"serviceName": "web", "replicas": 1}
    if kind in ("ReplicaSet", "Rollout"):
        spec["replicas"] = 1
    if kind == "Rollout":
        spec["strategy"] = {"canary": {"steps": [{"setWeight": 50}]}}
    if kind == "Job":
        spec = {
            "parallelism": 2,
            "completions": 2,
            "template": template(image, restart="Never"),
        }
    return {
        "apiVersion": GROUP_VERSION[kind],
        "kind": kind,
        "metadata": {"name": "web", "namespace": namespace},
        "spec": spec,
    }


def apply(kubeconfig: str, obj: dict[str, Any]) -> str:
    """`kubectl apply -f` (client-side, as most people and tools still apply)."""
    result = kubectl(kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump(obj))
    return result.stdout + result.stderr


def seed(admin: RawApi, namespace: str) -> None:
    create(admin, configmap(namespace, "app-config", {"color": "blue"}))
    create(admin, secret(namespace, "db", {"password": PASSWORD}))


def edit_config(admin: RawApi, namespace: str, color: str) -> None:
    source = get(admin, "v1", "ConfigMap", namespace, "app-config")
    assert source is not None
    source["data"] = {"color": color}
    update(admin, source)


def refs(pod_template: dict[str, Any]) -> tuple[str, str]:
    """(the ConfigMap volume's name, the Secret env's name) of a web template or Pod."""
    spec = pod_template["spec"]
    env = spec["containers"][0]["env"][0]["valueFrom"]["secretKeyRef"]["name"]
    return spec["volumes"][0]["configMap"]["name"], env


def stored(admin: RawApi, kind: str, namespace: str, name: str = "web") -> dict[str, Any]:
    found = get(admin, GROUP_VERSION[kind], kind, namespace, name)
    assert found is not None, f"{kind} {namespace}/{name}"
    return found


def color_of(admin: RawApi, namespace: str, snapshot: str) -> str:
    obj = get(admin, "v1", "ConfigMap", namespace, snapshot)
    assert obj is not None and obj["immutable"] is True, snapshot
    assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "configpin"
    color: str = obj["data"]["color"]
    return color


def assert_pinned(admin: RawApi, namespace: str, pod_template: dict[str, Any], color: str) -> None:
    volume, env = refs(pod_template)
    assert volume.startswith("app-config-") and env.startswith("db-"), (volume, env)
    assert color_of(admin, namespace, volume) == color
    pins = json.loads(pod_template["metadata"]["annotations"][PINS])
    assert pins == {"configmap/app-config": volume, "secret/db": env}


def create_then_reapply(
    admin: RawApi, kubeconfig: str, namespace: str, kind: str
) -> dict[str, Any]:
    """`kubectl apply -f` pins the template to the sources' content (blue). The source is
    edited (green) and the same manifest applied again: kubectl sends the sources' names
    back, and nothing changes."""
    seed(admin, namespace)
    apply(kubeconfig, manifest(kind, namespace))
    first = stored(admin, kind, namespace)
    assert_pinned(admin, namespace, first["spec"]["template"], "blue")
    edit_config(admin, namespace, "green")
    apply(kubeconfig, manifest(kind, namespace))
    again = stored(admin, kind, namespace)
    # (The Argo Rollouts controller writes its Rollout back with `resources: {}`, which
    # the re-apply takes out: the same Pods. Its test checks that no revision is made.)
    assert without_empty_fields(again["spec"]["template"]) == without_empty_fields(
        first["spec"]["template"]
    )
    if kind != "Rollout":
        assert again["metadata"]["generation"] == first["metadata"]["generation"]
    return first


def revisions(admin: RawApi, namespace: str, owner: dict[str, Any]) -> list[dict[str, Any]]:
    """The ControllerRevisions `owner` controls, oldest first."""
    uid = owner["metadata"]["uid"]
    owned = [
        r
        for r in items(admin, "apps/v1", "ControllerRevision", namespace)
        if any(o["uid"] == uid for o in r["metadata"].get("ownerReferences", []))
    ]
    return sorted(owned, key=lambda r: int(r["revision"]))


def wait_for_revisions(
    admin: RawApi, namespace: str, owner: dict[str, Any], count: int
) -> list[dict[str, Any]]:
    def settled() -> list[dict[str, Any]] | None:
        found = revisions(admin, namespace, owner)
        return found if len(found) == count else None

    return eventually(settled, what=f"{count} ControllerRevisions of {owner['kind']}")


def pods(admin: RawApi, namespace: str, selector: str, count: int) -> list[dict[str, Any]]:
    def made() -> list[dict[str, Any]] | None:
        found = items(admin, "v1", "Pod", namespace, selector)
        return found if len(found) >= count else None

    return eventually(made, what=f"{count} Pods {selector}")


# --- StatefulSet and DaemonSet: templates with ControllerRevisions ---------------------------


@pytest.mark.parametrize("kind", ["StatefulSet", "DaemonSet"])
def test_create_reapply_edit_change_and_undo(
    admin: RawApi, admin_kubeconfig: str, namespaces: Namespaces, kind: str
) -> None:
    ns = namespaces.make()
    first = create_then_reapply(admin, admin_kubeconfig, ns, kind)
    wait_for_revisions(admin, ns, first, 1)
    if kind == "StatefulSet":
        [pod] = pods(admin, ns, "app=web", 1)
        assert refs(pod) == refs(first["spec"]["template"])
    time.sleep(1)
    assert len(revisions(admin, ns, first)) == 1  # the re-apply made no revision

    # A template change after the edit pins the edit.
    apply(admin_kubeconfig, manifest(kind, ns, image="registry.example/web:2"))
    second = stored(admin, kind, ns)
    assert_pinned(admin, ns, second["spec"]["template"], "green")
    wait_for_revisions(admin, ns, first, 2)

    # `kubectl rollout undo` applies the first ControllerRevision: its snapshots come back.
    kubectl(admin_kubeconfig, "rollout", "undo", f"{kind.lower()}/web", "-n", ns)
    undone = stored(admin, kind, ns)
    assert undone["spec"]["template"] == first["spec"]["template"]
    assert_pinned(admin, ns, undone["spec"]["template"], "blue")


@pytest.mark.parametrize("kind", ["StatefulSet", "DaemonSet"])
def test_undo_to_a_revision_on_the_current_snapshots_ignores_a_pending_edit(
    admin: RawApi, admin_kubeconfig: str, namespaces: Namespaces, kind: str
) -> None:
    """v1 and v2 ran on the same config; the config is edited but not rolled out; undo to
    v1 is recognised among the ControllerRevisions and keeps the config v1 ran with."""
    ns = namespaces.make()
    seed(admin, ns)
    apply(admin_kubeconfig, manifest(kind, ns))
    first = stored(admin, kind, ns)
    apply(admin_kubeconfig, manifest(kind, ns, image="registry.example/web:2"))
    second = stored(admin, kind, ns)
    assert refs(second["spec"]["template"]) == refs(first["spec"]["template"])
    wait_for_revisions(admin, ns, first, 2)

    edit_config(admin, ns, "orange")
    kubectl(admin_kubeconfig, "rollout", "undo", f"{kind.lower()}/web", "-n", ns)
    undone = stored(admin, kind, ns)
    assert undone["spec"]["template"] == first["spec"]["template"]
    assert_pinned(admin, ns, undone["spec"]["template"], "blue")


# --- Jobs and CronJobs -----------------------------------------------------------------------


def test_a_jobs_pods_all_reference_its_snapshots_and_a_reapply_changes_nothing(
    admin: RawApi, admin_kubeconfig: str, namespaces: Namespaces
) -> None:
    ns = namespaces.make()
    # The template is immutable: the re-apply gets the pins back and is not refused.
    job = create_then_reapply(admin, admin_kubeconfig, ns, "Job")
    made = pods(admin, ns, "job-name=web", 2)
    assert {refs(pod) for pod in made} == {refs(job["spec"]["template"])}


def test_cronjob_runs_made_after_an_edit_see_it_while_a_running_job_keeps_its_snapshot(
    admin: RawApi, admin_kubeconfig: str, namespaces: Namespaces
) -> None:
    ns = namespaces.make()
    seed(admin, ns)
    job_template = manifest("Job", ns)["spec"]
    cronjob = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "nightly", "namespace": ns},
        "spec": {"schedule": "0 3 1 1 *", "jobTemplate": {"spec": job_template}},
    }
    apply(admin_kubeconfig, cronjob)
    kubectl(admin_kubeconfig, "create", "job", "run-1", "--from=cronjob/nightly", "-n", ns)
    run_1 = stored(admin, "Job", ns, "run-1")
    assert_pinned(admin, ns, run_1["spec"]["template"], "blue")

    edit_config(admin, ns, "green")
    kubectl(admin_kubeconfig, "create", "job", "run-2", "--from=cronjob/nightly", "-n", ns)
    run_2 = stored(admin, "Job", ns, "run-2")
    assert_pinned(admin, ns, run_2["spec"]["template"], "green")

    # run-1, made before the edit, keeps its snapshot in its template and its Pods.
    assert stored(admin, "Job", ns, "run-1")["spec"]["template"] == run_1["spec"]["template"]
    for pod in pods(admin, ns, "job-name=run-1", 2):
        assert refs(pod) == refs(run_1["spec"]["template"])
    # The CronJob itself is left as written.
    written = stored(admin, "CronJob", ns, "nightly")["spec"]["jobTemplate"]["spec"]["template"]
    assert refs(written) == ("app-config", "db")
    assert PINS not in (written["metadata"].get("annotations") or {})


# --- ReplicaSets ----------------------------------------------------------------------------


def test_a_bare_replicaset_is_pinned_and_a_deployments_are_never_sent(
    admin: RawApi, admin_kubeconfig: str, namespaces: Namespaces, webhook: Webhook
) -> None:
    ns = namespaces.make()
    replica_set = create_then_reapply(admin, admin_kubeconfig, ns, "ReplicaSet")
    [pod] = pods(admin, ns, "app=web", 1)
    assert refs(pod) == refs(replica_set["spec"]["template"])
    apply(admin_kubeconfig, manifest("ReplicaSet", ns, image="registry.example/web:2"))
    changed = stored(admin, "ReplicaSet", ns)["spec"]["template"]
    assert_pinned(admin, ns, changed, "green")  # a template change pins the edit

    deployment = manifest("Deployment", ns)
    deployment["metadata"]["name"] = "app"
    deployment["spec"]["selector"] = {"matchLabels": {"app": "app"}}
    deployment["spec"]["template"]["metadata"]["labels"] = {"app": "app"}
    replica_set_reviews = metric(webhook, 'configpin_admission_reviews_total{kind="ReplicaSet"')
    apply(admin_kubeconfig, deployment)
    owned = eventually(
        lambda: items(admin, "apps/v1", "ReplicaSet", ns, "app=app"), what="the Deployment's RS"
    )
    pods(admin, ns, "app=app", 1)
    assert refs(owned[0]["spec"]["template"]) == refs(
        stored(admin, "Deployment", ns, "app")["spec"]["template"]
    )
    # The API server's matchConditions kept the Deployment's ReplicaSet from the webhook.
    assert f"CREATE ReplicaSet {ns}/web:" in webhook.log.read_text()
    time.sleep(1)  # the deployment controller's later writes to its ReplicaSet
    assert (
        metric(webhook, 'configpin_admission_reviews_total{kind="ReplicaSet"')
        == replica_set_reviews
    )


def test_pods_of_a_controller_outside_the_table_are_admitted_unchanged_and_counted(
    admin: RawApi, namespaces: Namespaces, webhook: Webhook
) -> None:
    ns = namespaces.make()
    seed(admin, ns)
    owner = create(admin, configmap(ns, "owner", {}))  # any kind outside the table
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "worker",
            "namespace": ns,
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "name": "owner",
                    "uid": owner["metadata"]["uid"],
                    "controller": True,
                }
            ],
        },
        "spec": template("registry.example/web:1")["spec"],
    }
    counted = 'configpin_unpinned_pods_total{owner_kind="ConfigMap"}'
    before = metric(webhook, counted)
    admitted = create(admin, pod)
    assert refs(admitted) == ("app-config", "db")
    assert metric(webhook, counted) == before + 1


def metric(webhook: Webhook, prefix: str) -> float:
    """The sum of the webhook's samples whose line starts with `prefix`."""
    context = ssl.create_default_context(cafile=str(webhook.certs / "ca.crt"))
    text = httpx.get(f"{webhook.url}/metrics", verify=context, timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)
    )


# --- Argo Rollouts' Rollout, with the cluster's CRD and controller ---------------------------


@pytest.fixture(scope="module")
def rollouts_served(admin_kubeconfig: str) -> None:
    """scripts/dev-cluster applies the Argo Rollouts CRDs and runs its controller: wait until
    kubectl can use the Rollout API. The CRD is the cluster's: it is never deleted here."""
    eventually(
        lambda: (
            kubectl(
                admin_kubeconfig,
                "wait",
                "--for=condition=Established",
                "crd/rollouts.argoproj.io",
                check=False,
            ).returncode
            == 0
            and kubectl(admin_kubeconfig, "get", "rollouts", "-A", check=False).returncode == 0
        ),
        what="the Rollout CRD to be served",
    )


def rollout_replica_sets(admin: RawApi, namespace: str) -> list[dict[str, Any]]:
    """The ReplicaSets the Argo Rollouts controller made for the Rollout."""
    return [
        replica_set
        for replica_set in items(admin, "apps/v1", "ReplicaSet", namespace, "app=web")
        if [o["kind"] for o in replica_set["metadata"].get("ownerReferences", [])] == ["Rollout"]
    ]


def rollout_replica_set(admin: RawApi, namespace: str, image: str) -> dict[str, Any]:
    """The Rollout's ReplicaSet for its template with `image`, once the controller made it."""

    def made() -> dict[str, Any] | None:
        for replica_set in rollout_replica_sets(admin, namespace):
            if replica_set["spec"]["template"]["spec"]["containers"][0]["image"] == image:
                return replica_set
        return None

    return eventually(made, timeout=120, what=f"the Rollout's ReplicaSet of {image}")


def test_a_rollout_is_pinned_on_create_and_update_and_undo_keeps_its_snapshots(
    admin: RawApi, admin_kubeconfig: str, namespaces: Namespaces, rollouts_served: None
) -> None:
    ns = namespaces.make()
    first = create_then_reapply(admin, admin_kubeconfig, ns, "Rollout")
    # The controller's ReplicaSet, and so its Pods, carry the pinned template.
    v1 = rollout_replica_set(admin, ns, "registry.example/web:1")
    assert refs(v1["spec"]["template"]) == refs(first["spec"]["template"])
    argo_rollouts(admin_kubeconfig, ns, "status", "web", "--timeout", "150s")
    # The re-apply after the edit made no new revision.
    assert [rs["metadata"]["name"] for rs in rollout_replica_sets(admin, ns)] == [
        v1["metadata"]["name"]
    ]
    # A template change after the edit pins the edit.
    apply(admin_kubeconfig, manifest("Rollout", ns, image="registry.example/web:2"))
    second = stored(admin, "Rollout", ns)
    assert_pinned(admin, ns, second["spec"]["template"], "green")
    v2 = rollout_replica_set(admin, ns, "registry.example/web:2")
    assert refs(v2["spec"]["template"]) == refs(second["spec"]["template"])
    argo_rollouts(admin_kubeconfig, ns, "status", "web", "--timeout", "150s")
    # v3 on the same config as v2, then an edit that is not rolled out.
    apply(admin_kubeconfig, manifest("Rollout", ns, image="registry.example/web:3"))
    third = stored(admin, "Rollout", ns)
    assert refs(third["spec"]["template"]) == refs(second["spec"]["template"])
    rollout_replica_set(admin, ns, "registry.example/web:3")
    argo_rollouts(admin_kubeconfig, ns, "status", "web", "--timeout", "150s")
    edit_config(admin, ns, "orange")

    # `kubectl argo rollouts undo` writes v2's ReplicaSet template back, less its hash label.
    # It is recognised among the Rollout's ReplicaSets: v2 comes back on green.
    argo_rollouts(admin_kubeconfig, ns, "undo", "web")
    # (The ReplicaSet's template carries the Pod defaults that a custom resource lacks.)
    undone = stored(admin, "Rollout", ns)["spec"]["template"]
    assert undone["spec"]["containers"][0]["image"] == "registry.example/web:2"
    assert refs(undone) == refs(second["spec"]["template"])
    assert_pinned(admin, ns, undone, "green")


def test_a_rollout_with_a_workload_ref_is_left_alone_with_a_warning(
    admin: RawApi, admin_kubeconfig: str, namespaces: Namespaces, rollouts_served: None
) -> None:
    ns = namespaces.make()
    seed(admin, ns)
    rollout = manifest("Rollout", ns)
    del rollout["spec"]["template"]
    rollout["spec"]["workloadRef"] = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}
    output = apply(admin_kubeconfig, rollout)
    assert "configpin: Rollout not pinned" in output and "spec.workloadRef" in output
    assert "template" not in stored(admin, "Rollout", ns)["spec"]


def test_no_secret_value_in_the_webhook_log(webhook: Webhook) -> None:
    log = webhook.log.read_text()
    assert "admission" in log, "the log should show the reviews"
    assert PASSWORD not in log and b64(PASSWORD) not in log
