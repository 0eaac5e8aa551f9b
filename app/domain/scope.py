"""Which objects and references configpin may pin (opt-in and opt-out rules)."""

from collections.abc import Iterable, Mapping
from typing import Any

from app.domain import labels

# Secret types whose consumers are the kubelet or the token controller, not the app.
LIVE_SECRET_TYPES = frozenset(
    {
        "kubernetes.io/service-account-token",
        "kubernetes.io/dockerconfigjson",
        "kubernetes.io/dockercfg",
    }
)

# ConfigMaps the platform publishes into every namespace and rewrites itself: the cluster
# CA (kube-root-ca.crt), Istio's and OpenShift's CA bundles. `CONFIGPIN_LIVE_SOURCES` adds more.
LIVE_SOURCE_NAMES = frozenset(
    {
        "configmap/kube-root-ca.crt",
        "configmap/istio-ca-root-cert",
        "configmap/openshift-service-ca.crt",
    }
)
CERT_MANAGER_CERTIFICATE = "cert-manager.io/certificate-name"


def namespace_never_touched(namespace: str, own_namespace: str | None) -> bool:
    return namespace in labels.NEVER_TOUCHED_NAMESPACES or namespace == own_namespace


def namespace_opted_in(namespace_labels: Mapping[str, str]) -> bool:
    return namespace_labels.get(labels.INJECT) == labels.INJECT_ENABLED


def _annotations(metadata: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return (metadata or {}).get("annotations") or {}


def opted_out(*metadatas: Mapping[str, Any] | None) -> bool:
    """True when any of these (workload, pod template, Pod) says `configpin.io/inject: "false"`."""
    return any(
        str(_annotations(m).get(labels.INJECT, "")).strip().lower() == labels.INJECT_DISABLED
        for m in metadatas
    )


def live_references(*metadatas: Mapping[str, Any] | None) -> frozenset[str]:
    """The `configmap/NAME` and `secret/NAME` keys listed in `configpin.io/live`."""
    keys: set[str] = set()
    for metadata in metadatas:
        keys.update(parse_live(_annotations(metadata).get(labels.LIVE, "")))
    return frozenset(keys)


def parse_live(value: object) -> Iterable[str]:
    if not isinstance(value, str):
        return ()
    parsed = []
    for item in value.split(","):
        kind, _, name = item.strip().partition("/")
        kind = kind.strip().lower().replace("configmaps", "configmap").replace("secrets", "secret")
        if kind in ("configmap", "secret") and name.strip():
            parsed.append(f"{kind}/{name.strip()}")
    return parsed


def source_stays_live(source: Mapping[str, Any], kind: str) -> bool:
    """A source opted out by annotation, a Secret type the platform itself consumes, a
    certificate cert-manager renews, or anything a controller owns: a controller rewrites
    it and expects the Pods to follow."""
    metadata = source.get("metadata") or {}
    if opted_out(metadata):
        return True
    owners = metadata.get("ownerReferences") or []
    if any(isinstance(o, Mapping) and o.get("controller") is True for o in owners):
        return True
    if kind != "secret":
        return False
    return source.get("type") in LIVE_SECRET_TYPES or CERT_MANAGER_CERTIFICATE in _annotations(
        metadata
    )
