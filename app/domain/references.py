"""Find every ConfigMap and Secret reference in a PodSpec (the reference walker).

The walker works on the raw dict of a PodSpec so that a patch built from its pointers
applies to the exact bytes the API server sent. Every field that can name a ConfigMap
or Secret is listed below, either as pinned or as deliberately live; a test reflects over
the Kubernetes client's models and fails when the PodSpec grows a field in neither list.
"""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from app.domain.pointer import join

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
    field: str  # the field path, as in PINNED_FIELDS / LIVE_FIELDS
    optional: bool
    live_by_default: bool

    @property
    def source_key(self) -> str:
        """The key used in `configpin.io/live` and `configpin.io/pins`: `configmap/NAME`."""
        return f"{self.kind}/{self.name}"


def find_references(pod_spec: Mapping[str, Any], base: str) -> list[Reference]:
    """All references in `pod_spec`, whose own pointer is `base`, in a stable order (by pointer)."""
    found: list[Reference] = []
    for field, kind in (PINNED_FIELDS | LIVE_FIELDS).items():
        live = field in LIVE_FIELDS
        for segments, holder in _resolve(pod_spec, field.split(".")[:-1], []):
            name_key = field.rsplit(".", 1)[1]
            name = holder.get(name_key)
            if not isinstance(name, str) or not name:
                continue
            found.append(
                Reference(
                    kind=kind,
                    name=name,
                    pointer=join(base, [*segments, name_key]),
                    field=field,
                    optional=holder.get("optional") is True,
                    live_by_default=live,
                )
            )
    found.sort(key=lambda r: _pointer_order(r.pointer))
    return found


def _resolve(
    node: Any, parts: list[str], prefix: list[str | int]
) -> Iterator[tuple[list[str | int], Mapping[str, Any]]]:
    """Yield (segments, mapping) for every mapping that `parts` reaches from `node`."""
    if not parts:
        if isinstance(node, Mapping):
            yield prefix, node
        return
    if not isinstance(node, Mapping):
        return
    head, rest = parts[0], parts[1:]
    if head.endswith("[]"):
        items = node.get(head[:-2])
        if isinstance(items, list):
            for index, item in enumerate(items):
                yield from _resolve(item, rest, [*prefix, head[:-2], index])
    elif head in node:
        yield from _resolve(node[head], rest, [*prefix, head])


def _pointer_order(pointer: str) -> list[tuple[int, str]]:
    # Numeric segments compare as numbers so that containers/10 sorts after containers/9.
    return [(int(s), "") if s.isdigit() else (-1, s) for s in pointer.split("/")]
