"""Sources read from and snapshots written to the cluster, for the pinning sequence."""

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from app.admission.sources import SourceUnavailableError
from app.domain.references import SourceKind
from app.domain.snapshots import SOURCE_KIND
from app.domain.workloads import Rollbacks
from app.kube.api import ApiError, ApiUnreachableError, RawApi

RESOURCE = {"configmap": "configmaps", "secret": "secrets"}

# Namespace labels change rarely and the chart's namespaceSelector filters first; a short
# cache spares one API call per admission and follows an opt-out within this many seconds.
NAMESPACE_CACHE_SECONDS = 10.0


class ClusterSources:
    def __init__(self, api: RawApi, clock: Callable[[], float] = time.monotonic) -> None:
        self._api = api
        self._clock = clock
        self._namespaces: dict[str, tuple[float, Mapping[str, str] | None]] = {}
        self._lock = threading.Lock()

    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        now = self._clock()
        with self._lock:
            cached = self._namespaces.get(namespace)
        if cached is not None and cached[0] > now:
            return cached[1]
        obj = self._call(
            "read",
            "namespace",
            "",
            namespace,
            lambda: self._api.get(f"/api/v1/namespaces/{_segment(namespace)}"),
        )
        found = None if obj is None else dict((obj.get("metadata") or {}).get("labels") or {})
        with self._lock:
            self._namespaces[namespace] = (now + NAMESPACE_CACHE_SECONDS, found)
        return found

    def read(self, namespace: str, kind: SourceKind, name: str) -> Mapping[str, Any] | None:
        # A direct GET is a quorum read: an edit followed at once by a rollout is seen.
        path = f"/api/v1/namespaces/{_segment(namespace)}/{RESOURCE[kind]}/{_segment(name)}"
        found: Mapping[str, Any] | None = self._call(
            "read", kind, namespace, name, lambda: self._api.get(path)
        )
        return found

    def create_snapshot(self, snapshot: Mapping[str, Any]) -> Mapping[str, Any] | None:
        kind = SOURCE_KIND[snapshot["kind"]]
        namespace = snapshot["metadata"]["namespace"]
        name = snapshot["metadata"]["name"]
        collection = f"/api/v1/namespaces/{_segment(namespace)}/{RESOURCE[kind]}"
        existing, created = self._call(
            "create snapshot",
            kind,
            namespace,
            name,
            lambda: self._api.create_or_get(collection, snapshot),
        )
        return None if created else existing

    def revision_templates(
        self, namespace: str, kind: Rollbacks, owner_uid: str, selector: str
    ) -> list[Mapping[str, Any]]:
        if kind == Rollbacks.NONE:
            return []
        # The workload's own selector narrows the list to its revisions (and those of any
        # overlapping selector), matchLabels and matchExpressions alike; the controller
        # owner reference decides. Listing the whole namespace would cost every revision.
        path = (
            f"/apis/apps/v1/namespaces/{_segment(namespace)}/{kind.value}"
            f"?labelSelector={quote(selector, safe='')}"
        )
        listed = self._call(
            f"list {kind.value} of",
            "workload",
            namespace,
            owner_uid,
            lambda: self._api.request("GET", path),
        )
        owned = [
            item
            for item in listed.get("items", [])
            if any(
                owner.get("uid") == owner_uid and owner.get("controller") is True
                for owner in item.get("metadata", {}).get("ownerReferences") or []
            )
        ]
        if kind == Rollbacks.REPLICA_SETS:
            return [rs.get("spec", {}).get("template") or {} for rs in owned]
        return [_revision_template(revision) for revision in owned]

    @staticmethod
    def _call(action: str, kind: str, namespace: str, name: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except (ApiError, ApiUnreachableError) as error:
            raise SourceUnavailableError(action, kind, namespace, name, str(error)) from None


def _revision_template(revision: Mapping[str, Any]) -> Mapping[str, Any]:
    """A ControllerRevision's pod template. Its `data` is the strategic merge patch that
    `kubectl rollout undo` applies: `{"spec": {"template": {..., "$patch": "replace"}}}`."""
    template = dict(((revision.get("data") or {}).get("spec") or {}).get("template") or {})
    template.pop("$patch", None)
    return template


def _segment(value: str) -> str:
    """One URL path segment: names come from objects under review, not yet validated."""
    return quote(value, safe="")
