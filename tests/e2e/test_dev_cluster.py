"""The dev cluster behaves like a real one where the webhook's story needs it: Pods are
scheduled onto kwok's Nodes and become Running and Ready, carry the ServiceAccount
admission plugin's volume, and Deployments complete their rollouts and prune old
ReplicaSets. Driven with the real kubectl."""

import json
import time
from typing import Any

import yaml

from devkit.kubectl import kubectl
from devkit.kubeobjects import eventually
from tests.e2e.conftest import Namespaces

IMAGE = "registry.example/app:1"


def as_yaml(obj: dict[str, Any]) -> str:
    return yaml.safe_dump(obj)


def get_json(kubeconfig: str, *args: str) -> Any:
    return json.loads(kubectl(kubeconfig, "get", *args, "-o", "json").stdout)


def test_fake_nodes_are_schedulable_and_kwok_renews_their_leases(admin_kubeconfig: str) -> None:
    """kwok renews each Node's Lease as a kubelet does (every quarter of its duration);
    without that the node lifecycle controller taints a Node unreachable once its last
    status is older than the grace period, and the scheduler stops placing Pods there."""
    nodes = get_json(admin_kubeconfig, "nodes", "-l", "type=kwok")["items"]
    assert len(nodes) == 3
    for node in nodes:
        name = node["metadata"]["name"]
        assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
        assert [t for t in node["spec"].get("taints", []) if t["key"].startswith("node.")] == []
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready[0]["status"] == "True", name

    def renew_times() -> dict[str, str]:
        leases = get_json(admin_kubeconfig, "-n", "kube-node-lease", "leases")["items"]
        return {lease["metadata"]["name"]: lease["spec"]["renewTime"] for lease in leases}

    first = renew_times()
    assert sorted(first) == sorted(node["metadata"]["name"] for node in nodes)
    eventually(
        lambda: all(renewed != first[name] for name, renewed in renew_times().items()),
        timeout=30,
        what="every Node Lease to be renewed",
    )


def test_a_pod_is_scheduled_on_a_kwok_node_and_becomes_running_and_ready(
    admin_kubeconfig: str, namespaces: Namespaces
) -> None:
    ns = namespaces.make(opted_in=False)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "one", "namespace": ns},
        "spec": {"containers": [{"name": "app", "image": IMAGE}]},
    }
    kubectl(admin_kubeconfig, "apply", "-f", "-", stdin=as_yaml(pod))
    kubectl(admin_kubeconfig, "-n", ns, "wait", "--for=condition=Ready", "pod/one", "--timeout=60s")

    live = get_json(admin_kubeconfig, "-n", ns, "pod/one")
    assert live["status"]["phase"] == "Running"
    assert live["status"]["containerStatuses"][0]["state"]["running"]
    node = get_json(admin_kubeconfig, "node", live["spec"]["nodeName"])
    assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
    # The ServiceAccount admission plugin is on, as on every real cluster.
    assert live["spec"]["serviceAccountName"] == "default"
    projected = [v for v in live["spec"]["volumes"] if v["name"].startswith("kube-api-access-")]
    assert len(projected) == 1
    sources = projected[0]["projected"]["sources"]
    assert {
        "configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}
    } in sources


def test_a_restarted_deployment_completes_and_old_replica_sets_are_scaled_down_and_pruned(
    admin_kubeconfig: str, namespaces: Namespaces
) -> None:
    ns = namespaces.make(opted_in=False)
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {
            "replicas": 2,
            "revisionHistoryLimit": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": IMAGE}]},
            },
        },
    }

    def rollout_status() -> None:
        kubectl(admin_kubeconfig, "-n", ns, "rollout", "status", "deploy/web", "--timeout=90s")

    kubectl(admin_kubeconfig, "apply", "-f", "-", stdin=as_yaml(deployment))
    rollout_status()
    for _ in range(2):
        # kubectl stamps restartedAt to the second: two restarts within one second would
        # write the same template and roll nothing.
        time.sleep(1.1)
        kubectl(admin_kubeconfig, "-n", ns, "rollout", "restart", "deploy/web")
        rollout_status()

    live = get_json(admin_kubeconfig, "-n", ns, "deploy/web")
    assert live["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    assert live["status"]["updatedReplicas"] == 2
    assert live["status"]["readyReplicas"] == 2
    assert live["status"].get("unavailableReplicas", 0) == 0

    # Revision 1 is pruned (revisionHistoryLimit: 1 keeps one old ReplicaSet), revision 2
    # is kept scaled to zero, revision 3 runs both Pods.
    def pruned() -> dict[str, Any] | None:
        replica_sets = get_json(admin_kubeconfig, "-n", ns, "rs", "-l", "app=web")["items"]
        by_revision = {
            rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]: rs
            for rs in replica_sets
        }
        return by_revision if sorted(by_revision) == ["2", "3"] else None

    by_revision = eventually(pruned, what="only the ReplicaSets of revisions 2 and 3")
    old, current = by_revision["2"], by_revision["3"]
    assert old["spec"]["replicas"] == 0
    assert old["status"]["replicas"] == 0
    assert current["status"]["readyReplicas"] == 2

    # The old Pods are gone: kwok finishes their deletion as a kubelet would.
    def two_pods() -> list[dict[str, Any]] | None:
        pods: list[dict[str, Any]] = get_json(admin_kubeconfig, "-n", ns, "pods", "-l", "app=web")[
            "items"
        ]
        return pods if len(pods) == 2 else None

    pods = eventually(two_pods, what="the old Pods to be deleted")
    current_hash = current["metadata"]["labels"]["pod-template-hash"]
    assert [p["metadata"]["labels"]["pod-template-hash"] for p in pods] == [current_hash] * 2
    assert [p["status"]["phase"] for p in pods] == ["Running"] * 2


def blue_green(namespace: str, image: str) -> list[dict[str, Any]]:
    """A Rollout with a blue-green strategy that waits to be promoted, and its Services."""
    services = [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
        }
        for name in ("web-active", "web-preview")
    ]
    rollout = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image}]},
            },
            "strategy": {
                "blueGreen": {
                    "activeService": "web-active",
                    "previewService": "web-preview",
                    "autoPromotionEnabled": False,
                    "scaleDownDelaySeconds": 3,
                }
            },
        },
    }
    return [*services, rollout]


def test_a_blue_green_rollout_pauses_on_a_preview_and_promote_completes_it(
    admin_kubeconfig: str, namespaces: Namespaces
) -> None:
    ns = namespaces.make(opted_in=False)

    def argo(*args: str) -> str:
        return kubectl(admin_kubeconfig, "argo", "rollouts", "-n", ns, *args).stdout

    def template_hash(service: str) -> str:
        selector = get_json(admin_kubeconfig, "-n", ns, "service", service)["spec"]["selector"]
        return str(selector.get("rollouts-pod-template-hash", ""))

    def ready_pods_by_hash() -> dict[str, int]:
        pods = get_json(admin_kubeconfig, "-n", ns, "pods", "-l", "app=web")["items"]
        counts: dict[str, int] = {}
        for pod in pods:
            ready = [c for c in pod["status"].get("conditions", []) if c["type"] == "Ready"]
            if pod["status"]["phase"] == "Running" and ready and ready[0]["status"] == "True":
                pod_hash = pod["metadata"]["labels"]["rollouts-pod-template-hash"]
                counts[pod_hash] = counts.get(pod_hash, 0) + 1
        return counts

    manifests = "---\n".join(as_yaml(obj) for obj in blue_green(ns, "registry.example/web:1"))
    kubectl(admin_kubeconfig, "apply", "-f", "-", stdin=manifests)
    assert argo("status", "web", "--timeout=90s").strip().endswith("Healthy")
    blue = template_hash("web-active")
    assert blue and template_hash("web-preview") == blue
    assert ready_pods_by_hash() == {blue: 2}

    argo("set", "image", "web", "web=registry.example/web:2")
    eventually(
        lambda: argo("status", "web", "--watch=false").startswith("Paused"),
        timeout=90,
        what="the Rollout to pause on its preview",
    )

    def preview_moved() -> str | None:
        preview = template_hash("web-preview")
        return preview if preview != blue else None

    green = eventually(preview_moved, what="the preview Service to select the new Pods")
    # The preview ReplicaSet runs beside the active one, which still takes the traffic.
    eventually(lambda: ready_pods_by_hash() == {blue: 2, green: 2}, what="both Pod sets Ready")
    assert template_hash("web-active") == blue

    argo("promote", "web")
    assert argo("status", "web", "--timeout=90s").strip().endswith("Healthy")
    assert template_hash("web-active") == green
    # After scaleDownDelaySeconds the old ReplicaSet is scaled down and its Pods go.
    eventually(lambda: ready_pods_by_hash() == {green: 2}, what="the old Pods to go")
    image = get_json(admin_kubeconfig, "-n", ns, "rollout", "web")["spec"]["template"]["spec"]
    assert image["containers"][0]["image"] == "registry.example/web:2"
