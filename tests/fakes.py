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
second `create_snapshot` of the same content returns False (create-or-get).
"""

import copy
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from app.admission.sources import SourceUnavailableError
from app.domain.references import SourceKind
from app.domain.snapshots import SOURCE_KIND, snapshot_digest, source_name_of
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
        # (namespace, owner uid, pod template) of each ReplicaSet a Deployment controls,
        # and of each ControllerRevision a StatefulSet or DaemonSet controls.
        self.replica_sets: list[tuple[str, str, dict[str, Any]]] = []
        self.controller_revisions: list[tuple[str, str, dict[str, Any]]] = []
        self._failures: set[tuple[Action, Key]] = set()
        for obj in objects:
            self.add(obj)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "MemorySources":
        """From `{"namespaces": {name: labels}, "objects": [ConfigMap or Secret, ...]}`."""
        return cls(data.get("namespaces"), data.get("objects", ()))

    def add(self, obj: Mapping[str, Any]) -> None:
        """Store a ConfigMap or Secret (replacing one of the same namespace and name)."""
        self.objects[_key(obj)] = copy.deepcopy(dict(obj))

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

    def create_snapshot(self, snapshot: Mapping[str, Any]) -> bool:
        key = _key(snapshot)
        namespace, kind, _ = key
        self._maybe_fail("create", (namespace, kind, source_name_of(snapshot) or ""))
        existing = self.objects.get(key)
        if existing is not None:
            if snapshot_digest(existing) == snapshot_digest(snapshot):
                return False
            raise SourceUnavailableError(
                "create snapshot", kind, namespace, key[2], "the name is taken by another object"
            )
        self.objects[key] = copy.deepcopy(dict(snapshot))
        self.created.append(copy.deepcopy(dict(snapshot)))
        return True

    def revision_templates(
        self, namespace: str, kind: Rollbacks, owner_uid: str, match_labels: Mapping[str, str]
    ) -> list[Mapping[str, Any]]:
        revisions = {
            Rollbacks.NONE: [],
            Rollbacks.REPLICA_SETS: self.replica_sets,
            Rollbacks.CONTROLLER_REVISIONS: self.controller_revisions,
        }[kind]
        return [
            copy.deepcopy(template)
            for ns, uid, template in revisions
            if ns == namespace and uid == owner_uid
        ]

    def _maybe_fail(self, action: Action, key: Key) -> None:
        if (action, key) in self._failures:
            self._failures.discard((action, key))
            namespace, kind, name = key
            verb = "read" if action == "read" else "create snapshot of"
            raise SourceUnavailableError(verb, kind, namespace, name, "simulated API failure")


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
