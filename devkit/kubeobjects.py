"""Raw Kubernetes object helpers for the end-to-end tests and the demo: seeding objects and
reading state. What a user does with kubectl (rollouts, undo, scale, apply, diff, dry-runs)
goes through the real kubectl (devkit.kubectl) instead."""

import base64
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from app.kube.api import ApiError, RawApi

T = TypeVar("T")

PLURALS = {
    "Namespace": "namespaces",
    "ConfigMap": "configmaps",
    "Secret": "secrets",
    "Pod": "pods",
    "ServiceAccount": "serviceaccounts",
    "Deployment": "deployments",
    "ReplicaSet": "replicasets",
    "StatefulSet": "statefulsets",
    "DaemonSet": "daemonsets",
    "ControllerRevision": "controllerrevisions",
    "Job": "jobs",
    "CronJob": "cronjobs",
    "Rollout": "rollouts",
    "CustomResourceDefinition": "customresourcedefinitions",
    "ClusterRole": "clusterroles",
    "ClusterRoleBinding": "clusterrolebindings",
    "Role": "roles",
    "RoleBinding": "rolebindings",
    "MutatingWebhookConfiguration": "mutatingwebhookconfigurations",
    "Event": "events",
}


def collection(api_version: str, kind: str, namespace: str | None) -> str:
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    scope = f"/namespaces/{namespace}" if namespace else ""
    return f"{prefix}{scope}/{PLURALS[kind]}"


def path_of(obj: Mapping[str, Any]) -> str:
    meta = obj["metadata"]
    return f"{collection(obj['apiVersion'], obj['kind'], meta.get('namespace'))}/{meta['name']}"


def create(api: RawApi, obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    return api.request(
        "POST", collection(obj["apiVersion"], obj["kind"], meta.get("namespace")), body=obj
    )


def update(api: RawApi, obj: Mapping[str, Any]) -> dict[str, Any]:
    return api.request("PUT", path_of(obj), body=obj)


def get(
    api: RawApi, api_version: str, kind: str, namespace: str | None, name: str
) -> dict[str, Any] | None:
    return api.get(f"{collection(api_version, kind, namespace)}/{name}")


def items(
    api: RawApi, api_version: str, kind: str, namespace: str, selector: str = ""
) -> list[dict[str, Any]]:
    query = f"?labelSelector={selector}" if selector else ""
    found: list[dict[str, Any]] = api.request(
        "GET", collection(api_version, kind, namespace) + query
    ).get("items", [])
    return found


def delete(api: RawApi, obj: Mapping[str, Any]) -> None:
    try:
        api.request("DELETE", path_of(obj))
    except ApiError as error:
        if error.status != 404:
            raise


def eventually(check: Callable[[], T | None], timeout: float = 60, what: str = "condition") -> T:
    """Poll until `check` returns something truthy; the controllers work asynchronously."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


def create_namespace(
    api: RawApi, name: str, labels: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Create a Namespace and wait for its `default` ServiceAccount, as a user's tooling
    does: until the controller has made it, the ServiceAccount admission plugin refuses
    every Pod that names no other account."""
    obj = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": dict(labels or {})},
    }
    create(api, obj)
    eventually(
        lambda: get(api, "v1", "ServiceAccount", name, "default"),
        timeout=30,
        what=f"the default ServiceAccount of namespace {name}",
    )
    return obj


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def create_with_warnings(api: RawApi, obj: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Create `obj` and return it with the admission warnings the client was shown."""
    meta = obj["metadata"]
    path = collection(obj["apiVersion"], obj["kind"], meta.get("namespace"))
    created, headers = api.request_with_headers("POST", path, body=obj)
    return created, [value for name, value in headers if name.lower() == "warning"]


def configmap(namespace: str, name: str, data: dict[str, str], **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, **meta},
        "data": data,
    }


def secret(namespace: str, name: str, data: dict[str, str], **meta: Any) -> dict[str, Any]:
    """An Opaque Secret; `data` is given as text and stored base64-encoded."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, **meta},
        "type": "Opaque",
        "data": {key: b64(value) for key, value in data.items()},
    }


def mounting_deployment(
    namespace: str, name: str, config: str, replicas: int = 1
) -> dict[str, Any]:
    """A one-container Deployment mounting the ConfigMap `config`."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [{"name": "app", "image": "registry.example/app:1"}],
                    "volumes": [{"name": "config", "configMap": {"name": config}}],
                },
            },
        },
    }


def sources_deployment(
    namespace: str, name: str, sources: Sequence[Mapping[str, Any]], replicas: int = 1
) -> dict[str, Any]:
    """A Deployment whose one container takes every ConfigMap and Secret of `sources` as
    environment (`envFrom`): one reference, so one snapshot, per source."""
    env_from = [
        {
            "configMapRef" if s["kind"] == "ConfigMap" else "secretRef": {
                "name": s["metadata"]["name"]
            }
        }
        for s in sources
    ]
    deployment = mounting_deployment(namespace, name, "unused", replicas)
    template = deployment["spec"]["template"]["spec"]
    template["containers"][0]["envFrom"] = env_from
    template.pop("volumes")
    return deployment


def unmanaged_owner(api: RawApi, namespace: str, name: str) -> dict[str, Any]:
    """A controlling ownerReference to a new ConfigMap: an owner that exists (the garbage
    collector deletes a Pod whose owner does not) and that no controller acts on (a
    ReplicaSet would delete or release Pods it did not make)."""
    owner = create(api, configmap(namespace, name, {}))
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": name,
        "uid": owner["metadata"]["uid"],
        "controller": True,
    }
