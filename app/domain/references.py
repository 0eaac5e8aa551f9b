"""Find every ConfigMap and Secret reference in a PodSpec (the reference walker).

The walker works on the raw dict of a PodSpec so that a patch built from its pointers
applies to the exact bytes the API server sent. Every field that can name a ConfigMap
or Secret is listed below, either as pinned or as deliberately live; a test reflects over
the Kubernetes client's models and fails when the PodSpec grows a field in neither list.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

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


@dataclass(frozen=True)
class Reference:
    """One place in a PodSpec that names a ConfigMap or Secret."""

    kind: SourceKind
    name: str
    pointer: str  # RFC 6901 pointer to the name field, from the object's root
    optional: bool
    live_by_default: bool


def find_references(pod_spec: Mapping[str, Any], base: str) -> list[Reference]:
    """All references in `pod_spec`, whose own pointer is `base`, in a stable order."""
    found: list[Reference] = []
    _walk(pod_spec, _FIELD_TREE, base, found)
    return found


@dataclass(frozen=True)
class _Leaf:
    """A field holding a referenced object's name."""

    kind: SourceKind
    live_by_default: bool


# The field paths as a tree, so a pod spec is walked once whatever the number of fields:
# {"volumes[]": {"configMap": {"name": _Leaf(...)}}, ...}
_Tree = dict[str, "_Tree | _Leaf"]


def _field_tree() -> _Tree:
    tree: _Tree = {}
    for field, kind in (PINNED_FIELDS | LIVE_FIELDS).items():
        *parents, leaf = field.split(".")
        node = tree
        for part in parents:
            child = node.setdefault(part, {})
            assert isinstance(child, dict)
            node = child
        node[leaf] = _Leaf(kind, field in LIVE_FIELDS)
    return tree


_FIELD_TREE = _field_tree()


def _walk(node: Any, tree: _Tree, pointer: str, found: list[Reference]) -> None:
    if not isinstance(node, Mapping):
        return
    for key, branch in tree.items():
        if isinstance(branch, _Leaf):
            name = node.get(key)
            if isinstance(name, str) and name:
                found.append(
                    Reference(
                        kind=branch.kind,
                        name=name,
                        pointer=f"{pointer}/{escape(key)}",
                        optional=node.get("optional") is True,
                        live_by_default=branch.live_by_default,
                    )
                )
        elif key.endswith("[]"):
            items = node.get(key[:-2])
            if isinstance(items, list):
                prefix = f"{pointer}/{escape(key[:-2])}"
                for index, item in enumerate(items):
                    _walk(item, branch, f"{prefix}/{index}", found)
        elif key in node:
            _walk(node[key], branch, f"{pointer}/{escape(key)}", found)
