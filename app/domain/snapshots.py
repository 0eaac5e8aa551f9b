"""Snapshot objects: immutable copies of a source's content, made in its namespace."""

from collections.abc import Mapping
from typing import Any

from app.domain import labels
from app.domain.naming import content_digest, snapshot_name
from app.domain.references import SourceKind

API_KIND: dict[SourceKind, str] = {"configmap": "ConfigMap", "secret": "Secret"}
SOURCE_KIND: dict[str, SourceKind] = {"ConfigMap": "configmap", "Secret": "secret"}


def is_snapshot(obj: Mapping[str, Any]) -> bool:
    meta_labels = (obj.get("metadata") or {}).get("labels") or {}
    return meta_labels.get(labels.MANAGED_BY) == labels.MANAGER and labels.DIGEST in meta_labels


def build_snapshot(key: bytes, kind: SourceKind, source: Mapping[str, Any]) -> dict[str, Any]:
    """The snapshot of `source`: its exact data, binaryData and type, and configpin's
    metadata only (the source's labels are not copied: a tool selecting by label, a
    dashboard sidecar say, would otherwise load the config twice)."""
    meta = source.get("metadata") or {}
    source_name = meta["name"]
    digest = content_digest(key, kind, source)
    snapshot_labels = {labels.MANAGED_BY: labels.MANAGER, labels.DIGEST: digest}
    if labels.is_label_value(source_name):
        snapshot_labels[labels.SOURCE] = source_name
    annotations = {labels.SOURCE_NAME: source_name}
    if meta.get("uid"):
        annotations[labels.SOURCE_UID] = meta["uid"]
    if meta.get("resourceVersion"):
        annotations[labels.SOURCE_RESOURCE_VERSION] = meta["resourceVersion"]
    metadata: dict[str, Any] = {"name": snapshot_name(source_name, digest)}
    if meta.get("namespace"):
        metadata["namespace"] = meta["namespace"]
    metadata |= {
        "labels": snapshot_labels,
        "annotations": annotations,
        "finalizers": [labels.IN_USE_FINALIZER],
    }
    snapshot: dict[str, Any] = {"apiVersion": "v1", "kind": API_KIND[kind], "metadata": metadata}
    if kind == "secret" and source.get("type"):
        snapshot["type"] = source["type"]
    for field in ("data", "binaryData"):
        if source.get(field):
            snapshot[field] = dict(source[field])  # values are strings: a shallow copy is a copy
    snapshot["immutable"] = True
    return snapshot


def verified_source(
    obj: Mapping[str, Any], kind: SourceKind, namespace: str, key: bytes
) -> str | None:
    """The source `obj` is a snapshot of, when it really is one: labelled as configpin's,
    immutable, of the right kind, and named after the digest of its own content recomputed
    under the key for that source in `namespace`. None for anything else: labels and
    annotations can be written by anyone, only the key proves the name."""
    source = source_name_of(obj)
    if (
        source is None
        or not labels.is_object_name(source)
        or not is_snapshot(obj)
        or obj.get("kind") != API_KIND[kind]
        or obj.get("immutable") is not True
    ):
        return None
    as_source = {**obj, "metadata": {"namespace": namespace, "name": source}}
    name = (obj.get("metadata") or {}).get("name")
    for bound in (True, False):
        if name == snapshot_name(source, content_digest(key, kind, as_source, bound=bound)):
            return source
    return None


def source_name_of(snapshot: Mapping[str, Any]) -> str | None:
    value = ((snapshot.get("metadata") or {}).get("annotations") or {}).get(labels.SOURCE_NAME)
    return value if isinstance(value, str) else None
