"""Find every ConfigMap and Secret reference in a PodSpec (the reference walker).

The walker works on the raw dict of a PodSpec so that a patch built from its pointers
applies to the exact bytes the API server sent. Every field that can name a ConfigMap
or Secret is listed below, either as pinned or as deliberately live; a test reflects over
the Kubernetes client's models and fails when the PodSpec grows a field in neither list.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from app.domain.pointer import escape

SourceKind = Literal["configmap", "secret"]

CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")

# Field paths in PodSpec JSON names; `[]` marks a list. The last segment names the field
# holding the referenced object's name.
_CONTAINER_FIELDS: tuple[tuple[str, SourceKind], ...] = (
    ("env[].valueFrom.configMapKeyRef.name", "configmap"),
    ("env[].valueFrom.secretKeyRef.name", "secret"),
    ("envFrom[].configMapRef.name", "configmap"),
    ("envFrom[].secretRef.name", "secret"),
)
PINNED_FIELDS: dict[str, SourceKind] = {
    f"{c}[].{leaf}": kind for c in CONTAINER_LISTS for leaf, kind in _CONTAINER_FIELDS
}
PINNED_FIELDS |= {
    "volumes[].configMap.name": "configmap",
    "volumes[].secret.secretName": "secret",
    "volumes[].projected.sources[].configMap.name": "configmap",
    "volumes[].projected.sources[].secret.name": "secret",
}

# Recognised and left alone: credentials the kubelet or a volume plugin uses, not
# application config, and rotating them must not need a rollout.
LIVE_FIELDS: dict[str, SourceKind] = {
    "imagePullSecrets[].name": "secret",
    "volumes[].csi.nodePublishSecretRef.name": "secret",
    "volumes[].flexVolume.secretRef.name": "secret",
    "volumes[].cephfs.secretRef.name": "secret",
    "volumes[].cinder.secretRef.name": "secret",
    "volumes[].rbd.secretRef.name": "secret",
    "volumes[].iscsi.secretRef.name": "secret",
    "volumes[].azureFile.secretName": "secret",
    "volumes[].scaleIO.secretRef.name": "secret",
    "volumes[].storageos.secretRef.name": "secret",
}

# Fields whose names mention secrets or config maps but reference no API object.
NOT_REFERENCES = frozenset({"volumes[].cephfs.secretFile"})


class Reference(NamedTuple):
    """One place in a PodSpec that names a ConfigMap or Secret. A named tuple: several are
    made on every Pod review, at a fifth of a frozen dataclass's cost."""

    kind: SourceKind
    name: str
    pointer: str  # RFC 6901 pointer to the name field, from the object's root
    optional: bool
    live_by_default: bool


# The projected volume the ServiceAccount admission plugin adds to every Pod (the token, the
# cluster CA `kube-root-ca.crt`, the namespace): platform data, live as a whole, so that a
# CA rotation reaches running Pods.
SERVICE_ACCOUNT_VOLUME_PREFIX = "kube-api-access-"


def find_references(pod_spec: Mapping[str, Any], base: str) -> list[Reference]:
    """All references in `pod_spec`, whose own pointer is `base`, in a stable order."""
    found: list[Reference] = []
    _walk(pod_spec, _FIELD_TREE, base, found)
    platform = _service_account_volumes(pod_spec, base)
    if not platform:
        return found
    return [
        ref._replace(live_by_default=True) if ref.pointer.startswith(platform) else ref
        for ref in found
    ]


def _service_account_volumes(pod_spec: Mapping[str, Any], base: str) -> tuple[str, ...]:
    """Pointer prefixes of the service-account token volumes (`kube-api-access-*`)."""
    volumes = pod_spec.get("volumes")
    if not isinstance(volumes, list):
        return ()
    prefixes = []
    for index, volume in enumerate(volumes):
        if not isinstance(volume, dict):
            continue
        name, projected = volume.get("name"), volume.get("projected")
        sources = projected.get("sources") if isinstance(projected, dict) else None
        if (
            isinstance(name, str)
            and name.startswith(SERVICE_ACCOUNT_VOLUME_PREFIX)
            and isinstance(sources, list)
            and any(isinstance(s, dict) and "serviceAccountToken" in s for s in sources)
        ):
            prefixes.append(f"{base}/volumes/{index}/")
    return tuple(prefixes)


@dataclass(frozen=True)
class _Leaf:
    """A field holding a referenced object's name."""

    kind: SourceKind
    live_by_default: bool


# The field paths as a tree, so a pod spec is walked once whatever the number of fields.
# Each node lists its branches in field order, with the pointer segment escaped once:
# (how the field holds its value, field name, "/escaped-name", child node or leaf).
_LEAF, _LIST, _MAP = 0, 1, 2
_Node = tuple[tuple[int, str, str, Any], ...]  # the last item: a _Leaf or a _Node


def _field_tree() -> _Node:
    nested: dict[str, Any] = {}
    for field, kind in (PINNED_FIELDS | LIVE_FIELDS).items():
        *parents, leaf = field.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = _Leaf(kind, field in LIVE_FIELDS)

    def compile_node(node: dict[str, Any]) -> _Node:
        branches: list[tuple[int, str, str, Any]] = []
        for key, child in node.items():
            if isinstance(child, _Leaf):
                branches.append((_LEAF, key, f"/{escape(key)}", child))
            elif key.endswith("[]"):
                branches.append((_LIST, key[:-2], f"/{escape(key[:-2])}", compile_node(child)))
            else:
                branches.append((_MAP, key, f"/{escape(key)}", compile_node(child)))
        return tuple(branches)

    return compile_node(nested)


_FIELD_TREE = _field_tree()


def _walk(node: Any, tree: _Node, pointer: str, found: list[Reference]) -> None:
    # The hot path of every review: plain tuples and dict lookups, nothing computed twice.
    # Decoded JSON holds plain dicts and lists; checking for `dict` is a C call where an
    # ABC check (`Mapping`) costs several times more.
    if not isinstance(node, dict):
        return
    for how, key, segment, branch in tree:
        value = node.get(key)
        if value is None:
            continue
        if how == _LEAF:
            if isinstance(value, str) and value:
                found.append(
                    Reference(
                        kind=branch.kind,
                        name=value,
                        pointer=pointer + segment,
                        optional=node.get("optional") is True,
                        live_by_default=branch.live_by_default,
                    )
                )
        elif how == _LIST:
            if isinstance(value, list):
                prefix = pointer + segment
                for index, item in enumerate(value):
                    _walk(item, branch, f"{prefix}/{index}", found)
        else:
            _walk(value, branch, pointer + segment, found)
