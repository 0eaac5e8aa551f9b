"""The blue-green story's objects and what its Pods run with, for the demo and its test: an
Argo Rollout (blue-green, activeService and previewService, no auto-promotion) on Secret `db`
and ConfigMap `app-config`, opted in to roll-on-change."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from app.domain.lifecycle import referenced_names
from app.kube.api import RawApi
from devkit.kubectl import kubectl
from devkit.kubeobjects import b64, eventually, get, items

APP = "web"
SOURCES = frozenset({"db", "app-config"})
HASH_LABEL = "rollouts-pod-template-hash"
ROLLOUT_API = "argoproj.io/v1alpha1"


def sources(namespace: str, password: str, mode: str) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "db", "namespace": namespace},
            "type": "Opaque",
            "data": {"DB_PASSWORD": b64(password)},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "app-config", "namespace": namespace},
            "data": {"mode": mode},
        },
    ]


def services(namespace: str) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": f"{APP}-{role}", "namespace": namespace},
            "spec": {"selector": {"app": APP}, "ports": [{"port": 80, "targetPort": 8080}]},
        }
        for role in ("active", "preview")
    ]


def pod_template(image: str) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": APP}},
        "spec": {
            "containers": [
                {
                    "name": APP,
                    "image": image,
                    "envFrom": [{"secretRef": {"name": "db"}}],
                    "volumeMounts": [{"name": "config", "mountPath": "/etc/web"}],
                }
            ],
            "volumes": [{"name": "config", "configMap": {"name": "app-config"}}],
        },
    }


def rollout(namespace: str, image: str, replicas: int = 2) -> dict[str, Any]:
    return {
        "apiVersion": ROLLOUT_API,
        "kind": "Rollout",
        "metadata": {
            "name": APP,
            "namespace": namespace,
            "annotations": {"configpin.io/rollout-on-change": "true"},
        },
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": {"app": APP}},
            "template": pod_template(image),
            "strategy": {
                "blueGreen": {
                    "activeService": f"{APP}-active",
                    "previewService": f"{APP}-preview",
                    "autoPromotionEnabled": False,
                    "scaleDownDelaySeconds": 5,
                }
            },
        },
    }


def deployment(namespace: str, image: str, replicas: int = 2) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": APP,
            "namespace": namespace,
            "annotations": {"configpin.io/rollout-on-change": "true"},
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": APP}},
            "template": pod_template(image),
        },
    }


@dataclass(frozen=True)
class Revision:
    """A ReplicaSet of the Rollout: its image, the snapshots its template pins, and the
    names its Pods reference (each Pod's set of `db`/`app-config` references)."""

    hash: str
    image: str
    snapshots: frozenset[str]
    pods: Mapping[str, frozenset[str]]

    def pods_agree(self) -> bool:
        return all(names == self.snapshots for names in self.pods.values())


def app_references(obj: Mapping[str, Any]) -> frozenset[str]:
    """The `kind/name` of every reference to the story's sources or their snapshots."""
    return frozenset(
        f"{kind}/{name}"
        for kind, name in referenced_names(obj)
        if any(name == s or name.startswith(f"{s}-") for s in SOURCES)
    )


def revisions(api: RawApi, namespace: str) -> dict[str, Revision]:
    """The active and (while there is one) the preview revision, as the Rollout's
    status and its Services' selectors say."""
    found = get(api, ROLLOUT_API, "Rollout", namespace, APP)
    assert found is not None
    status = (found.get("status") or {}).get("blueGreen") or {}
    roles = {"active": status.get("activeSelector"), "preview": status.get("previewSelector")}
    replica_sets = {
        rs["metadata"]["labels"].get(HASH_LABEL): rs
        for rs in items(api, "apps/v1", "ReplicaSet", namespace, f"app={APP}")
    }
    pods = [
        p
        for p in items(api, "v1", "Pod", namespace, f"app={APP}")
        if not p["metadata"].get("deletionTimestamp")
    ]
    result = {}
    for role, pod_hash in roles.items():
        if not pod_hash or (role == "preview" and pod_hash == roles["active"]):
            continue
        rs = replica_sets[pod_hash]
        template = rs["spec"]["template"]
        result[role] = Revision(
            hash=pod_hash,
            image=template["spec"]["containers"][0]["image"],
            snapshots=app_references(template),
            pods={
                p["metadata"]["name"]: app_references(p)
                for p in pods
                if p["metadata"]["labels"].get(HASH_LABEL) == pod_hash
            },
        )
    return result


def live_references(api: RawApi, namespace: str) -> list[str]:
    """Pods that reference `db` or `app-config` themselves rather than a snapshot."""
    return sorted(
        p["metadata"]["name"]
        for p in items(api, "v1", "Pod", namespace, f"app={APP}")
        if any(ref.split("/", 1)[1] in SOURCES for ref in app_references(p))
    )


def settled(
    api: RawApi,
    namespace: str,
    preview: bool,
    replicas: int = 2,
    ready: Callable[[dict[str, Revision]], bool] = lambda found: True,
    what: str = "the Rollout's Pods",
) -> dict[str, Revision]:
    """Wait until there is a preview revision or not, as asked, every revision has all its
    Pods, and `ready` holds."""

    def complete() -> dict[str, Revision] | None:
        found = revisions(api, namespace)
        if ("preview" in found) != preview or any(len(r.pods) != replicas for r in found.values()):
            return None
        return found if ready(found) else None

    return eventually(complete, timeout=180, what=what)


def previous_scaled_down(api: RawApi, namespace: str, active: Revision) -> None:
    """Wait until only the active revision has Pods. Until scaleDownDelaySeconds have
    passed the previous ReplicaSet still runs, and Argo Rollouts switches an undo to it
    straight to active, with no preview to promote."""

    def only_active() -> bool:
        pods = items(api, "v1", "Pod", namespace, f"app={APP}")
        return {p["metadata"]["labels"].get(HASH_LABEL) for p in pods} == {active.hash}

    eventually(only_active, timeout=60, what="the previous revision's Pods to go")


def argo_rollouts(kubeconfig: str, namespace: str, *args: str) -> str:
    """`kubectl argo rollouts ARGS -n NAMESPACE`, through the plugin on kubectl's PATH."""
    return kubectl(kubeconfig, "argo", "rollouts", *args, "-n", namespace, timeout=180).stdout
