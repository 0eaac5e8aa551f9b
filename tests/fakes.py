"""In-memory implementation of configpin's own `Sources` protocol, for tests.

This fakes configpin's port (`app.admission.sources.Sources`), not the Kubernetes client:
tests that talk to Kubernetes talk to the real control plane.

    from tests.fakes import MemorySources, config_map

    sources = MemorySources(
        namespaces={"shop": {"configpin.io/inject": "enabled"}},
        objects=[config_map("shop", "app-config", {"k": "v"})],
    )
    sources.fail_next("read", "secret", "shop", "db")  # the next read of secret shop/db fails
    ...
    sources.created  # snapshots created, in order (a dry-run must leave this empty)

A created snapshot is stored like any other object, so a later `read` finds it and a
second `create_snapshot` of the same content returns the existing object (create-or-get).

Where the pinning sequence relies on how kube-apiserver answers, the fake answers the same:
- a Secret is stored and read back with `data` only (`stringData` is merged into `data`,
  base64-encoded, as the API server does on write);
- a name that is not a DNS subdomain is refused on create, as a 422 would be;
- an object with `immutable: true` cannot have its content changed;
- a name already held is answered with the object holding it (whether it may be reused is
  the pinning sequence's decision, made with the key);
- ReplicaSets and ControllerRevisions (`add` one, or list them in `from_json`'s objects)
  are returned by `revision_templates` only when their labels match the selector and the
  workload is their controller (`ownerReferences[].controller: true`), as ClusterSources
  lists them.
"""

import base64
import copy
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from app.admission.sources import SourceUnavailableError
from app.domain.labels import is_object_name
from app.domain.references import SourceKind
from app.domain.snapshots import SOURCE_KIND, source_name_of
from app.domain.workloads import Rollbacks

Action = Literal["read", "create"]
Key = tuple[str, SourceKind, str]  # (namespace, kind, name)


class MemorySources:
    def __init__(
        self,
        namespaces: Mapping[str, Mapping[str, str]] | None = None,
        objects: Iterable[Mapping[str, Any]] = (),
    ) -> None:
        self.namespaces: dict[str, dict[str, str]] = {
            name: dict(ns_labels) for name, ns_labels in (namespaces or {}).items()
        }
        self.objects: dict[Key, dict[str, Any]] = {}
        self.created: list[dict[str, Any]] = []
        self.reads: list[Key] = []
        # Shorthand for a ReplicaSet a Deployment controls, and a ControllerRevision a
        # StatefulSet or DaemonSet controls: (namespace, owner uid, pod template); labelled
        # with the template's labels, as their controllers label them.
        self.replica_sets: list[tuple[str, str, dict[str, Any]]] = []
        self.controller_revisions: list[tuple[str, str, dict[str, Any]]] = []
        self.revision_objects: list[dict[str, Any]] = []  # ReplicaSets, ControllerRevisions
        self.revision_lookups: list[tuple[str, str, str]] = []  # each list call
        self._failures: set[tuple[Action, Key]] = set()
        for obj in objects:
            self.add(obj)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "MemorySources":
        """From `{"namespaces": {name: labels}, "objects": [ConfigMap or Secret, ...]}`."""
        return cls(data.get("namespaces"), data.get("objects", ()))

    def add(self, obj: Mapping[str, Any]) -> None:
        """Store a ConfigMap, Secret, ReplicaSet or ControllerRevision (replacing one of the
        same namespace and name, unless that one is immutable and its content would change)."""
        if obj["kind"] in _REVISION_KINDS.values():
            self.revision_objects.append(copy.deepcopy(dict(obj)))
            return
        stored = _as_stored(obj)
        key = _key(stored)
        if not is_object_name(key[2]):
            raise ValueError(f"{key[2]!r} is not a valid object name")
        existing = self.objects.get(key) or {}
        if existing.get("immutable") is True and any(
            existing.get(f) != stored.get(f) for f in _IMMUTABLE_FIELDS
        ):
            raise ValueError(f"{key[1]} {key[0]}/{key[2]} is immutable")
        self.objects[key] = stored

    def fail_next(self, action: Action, kind: SourceKind, namespace: str, name: str) -> None:
        """Make the next `read` of this source, or the next `create_snapshot` of a snapshot
        of it (`create`), raise SourceUnavailableError as an API failure would."""
        self._failures.add((action, (namespace, kind, name)))

    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        return self.namespaces.get(namespace)

    def read(self, namespace: str, kind: SourceKind, name: str) -> Mapping[str, Any] | None:
        key: Key = (namespace, kind, name)
        self._maybe_fail("read", key)
        self.reads.append(key)
        found = self.objects.get(key)
        return copy.deepcopy(found) if found is not None else None

    def create_snapshot(self, snapshot: Mapping[str, Any]) -> Mapping[str, Any] | None:
        key = _key(snapshot)
        namespace, kind, _ = key
        self._maybe_fail("create", (namespace, kind, source_name_of(snapshot) or ""))
        if not is_object_name(key[2]):
            raise SourceUnavailableError(
                "create snapshot", kind, namespace, key[2], "the API answered 422 Invalid"
            )
        existing = self.objects.get(key)
        if existing is not None:
            return copy.deepcopy(existing)
        self.objects[key] = _as_stored(snapshot)
        self.created.append(copy.deepcopy(dict(snapshot)))
        return None

    def revision_templates(
        self, namespace: str, kind: Rollbacks, owner_uid: str, selector: str
    ) -> list[Mapping[str, Any]]:
        self.revision_lookups.append((namespace, owner_uid, selector))
        if kind == Rollbacks.NONE:
            return []
        api_kind = _REVISION_KINDS[kind]
        shorthand = {
            Rollbacks.REPLICA_SETS: self.replica_sets,
            Rollbacks.CONTROLLER_REVISIONS: self.controller_revisions,
        }[kind]
        revisions = [
            *(r for r in self.revision_objects if r["kind"] == api_kind),
            *(_revision(api_kind, ns, uid, template) for ns, uid, template in shorthand),
        ]
        return [
            copy.deepcopy(_template_of(revision))
            for revision in revisions
            if revision["metadata"].get("namespace") == namespace
            and _selected(revision["metadata"].get("labels") or {}, selector)
            and any(
                owner.get("uid") == owner_uid and owner.get("controller") is True
                for owner in revision["metadata"].get("ownerReferences") or []
            )
        ]

    def _maybe_fail(self, action: Action, key: Key) -> None:
        if (action, key) in self._failures:
            self._failures.discard((action, key))
            namespace, kind, name = key
            verb = "read" if action == "read" else "create snapshot of"
            raise SourceUnavailableError(verb, kind, namespace, name, "simulated API failure")


_IMMUTABLE_FIELDS = ("data", "binaryData", "type", "immutable")
_REVISION_KINDS = {
    Rollbacks.REPLICA_SETS: "ReplicaSet",
    Rollbacks.CONTROLLER_REVISIONS: "ControllerRevision",
}


def _revision(kind: str, namespace: str, owner_uid: str, template: Any) -> dict[str, Any]:
    """A ReplicaSet or ControllerRevision as its controller makes it, from the shorthand."""
    metadata = {
        "namespace": namespace,
        "labels": (template.get("metadata") or {}).get("labels") or {},
        "ownerReferences": [{"uid": owner_uid, "controller": True}],
    }
    if kind == "ReplicaSet":
        return {"kind": kind, "metadata": metadata, "spec": {"template": template}}
    patch = {"spec": {"template": {**template, "$patch": "replace"}}}
    return {"kind": kind, "metadata": metadata, "data": patch}


def _template_of(revision: Mapping[str, Any]) -> Mapping[str, Any]:
    """The pod template, as ClusterSources reads it from a ReplicaSet or a ControllerRevision."""
    if revision["kind"] == "ReplicaSet":
        template: Mapping[str, Any] = revision["spec"]["template"]
        return template
    return {k: v for k, v in revision["data"]["spec"]["template"].items() if k != "$patch"}


def _as_stored(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The object as the API server stores and returns it: `stringData` merged into `data`."""
    stored = copy.deepcopy(dict(obj))
    string_data = stored.pop("stringData", None)
    if string_data:
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in string_data.items()}
        stored["data"] = {**(stored.get("data") or {}), **encoded}
    return stored


def _selected(object_labels: Mapping[str, str], selector: str) -> bool:
    """Whether the labels match a `labelSelector` query (`k=v`, `k in (a,b)`, `k notin (a)`,
    `k`, `!k`, joined by commas), as the API server selects."""
    for term in re.findall(r"[^,(]+(?:\([^)]*\))?", selector):
        term = term.strip()
        if match := re.fullmatch(r"(\S+) (in|notin) \((.*)\)", term):
            key, operator, values = match.group(1), match.group(2), match.group(3).split(",")
            found = key in object_labels and object_labels[key] in values
            if found != (operator == "in"):
                return False
        elif "=" in term:
            key, _, value = term.partition("=")
            if object_labels.get(key) != value:
                return False
        elif term.startswith("!"):
            if term[1:] in object_labels:
                return False
        elif term not in object_labels:
            return False
    return True


def _key(obj: Mapping[str, Any]) -> Key:
    metadata = obj.get("metadata") or {}
    return (metadata.get("namespace", ""), SOURCE_KIND[obj["kind"]], metadata["name"])


def config_map(namespace: str, name: str, data: Mapping[str, str], **meta: Any) -> dict[str, Any]:
    """A ConfigMap as the API server returns it; `meta` adds metadata fields."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, **meta},
        "data": dict(data),
    }


def secret(
    namespace: str,
    name: str,
    data: Mapping[str, str],
    type_: str = "Opaque",
    **meta: Any,
) -> dict[str, Any]:
    """A Secret as the API server returns it (`data` values already base64)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, **meta},
        "type": type_,
        "data": dict(data),
    }
